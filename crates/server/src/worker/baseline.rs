//! Reading a failure against its job's green runs: the model of each job's recent green logs
//! (learned by [`learn`]) turns `analyze` into `analyze_against`, and the stored diagnosis
//! marks each evidence line `new: true|false` with the green runs it was compared against.
//!
//! Learning is bounded: a job's model is updated at most once per [`LEARN_EVERY_MS`], and only
//! for workflows that had a failure session within [`FAILED_WITHIN_MS`]; a green log is read
//! once, streamed, into at most 3 runs × 5,000 templates.

use crate::Shared;
use pipeguard_core::analysis::{Baseline, Hints};
use pipeguard_core::event::{FailureEvent, Platform};
use pipeguard_core::heal::JobDiagnosis;
use pipeguard_platforms::JobLog;
use pipeguard_store::{now_ms, BaselineKey, SessionRecord, Store, StoreError};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};

/// A job's model is updated at most this often (one green log read per job per period).
pub const LEARN_EVERY_MS: i64 = 10 * 60_000;
/// Green runs are learned only for workflows that failed within this window.
pub const FAILED_WITHIN_MS: i64 = 30 * 86_400_000;

/// Green runs read at once: during a burst of success webhooks the others are skipped rather
/// than queued, so learning never holds more than this many sets of logs nor spends API calls
/// faster than this many downloads at a time.
static LEARNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// What [`learn`] did with a green log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Folded into the job's model.
    Folded,
    /// The model was updated less than [`LEARN_EVERY_MS`] ago.
    TooSoon,
    /// The workflow had no failure session within [`FAILED_WITHIN_MS`]: nothing to compare.
    NeverFails,
}

/// Folds one green run's log into its job's model, within the bounds above.
pub async fn learn(
    store: &Store,
    key: &BaselineKey,
    run_id: &str,
    log: Vec<u8>,
) -> Result<Learned, StoreError> {
    let now = now_ms();
    let since = now - FAILED_WITHIN_MS;
    if !store
        .failed_since(&key.platform, &key.repository, &key.workflow, since)
        .await?
    {
        return Ok(Learned::NeverFails);
    }
    let stored = store.baseline(key).await?;
    if stored
        .as_ref()
        .is_some_and(|b| now - b.updated_at < LEARN_EVERY_MS)
    {
        return Ok(Learned::TooSoon);
    }
    // An unreadable model (another template version) is learned afresh.
    let mut model = stored
        .and_then(|b| Baseline::from_bytes(b.model.as_bytes()).ok())
        .unwrap_or_default();
    let run = run_id.to_string();
    let model = tokio::task::spawn_blocking(move || model.learn(run, &log[..]).map(|()| model))
        .await
        .map_err(|e| StoreError::Invalid(format!("learning failed: {e}")))?
        .map_err(|e| StoreError::Invalid(format!("learning failed: {e}")))?;
    let runs: Vec<String> = model.runs().iter().map(|r| r.id.clone()).collect();
    let bytes = String::from_utf8(model.to_bytes()).expect("the model is JSON");
    store.put_baseline(key, &bytes, &runs).await?;
    Ok(Learned::Folded)
}

/// A green run attempt a success delivery announced.
#[derive(Debug, Clone)]
pub struct Green {
    pub platform: Platform,
    pub repository: String,
    pub workflow: String,
    pub run_id: String,
    pub attempt: u32,
}

/// Learns each successful job of a green attempt, when its workflow failed within
/// [`FAILED_WITHIN_MS`]; else no API call is made. Errors are logged: learning is best effort.
pub async fn learn_green(st: Shared, g: Green) {
    let since = now_ms() - FAILED_WITHIN_MS;
    let platform = g.platform.as_str();
    match st
        .store
        .failed_since(platform, &g.repository, &g.workflow, since)
        .await
    {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => return tracing::warn!("green run not learned: {e}"),
    }
    let Some(ci) = st.ci(g.platform, &g.repository) else {
        return;
    };
    let Ok(_permit) = LEARNING.try_acquire() else {
        return tracing::debug!(run = %g.run_id, "green run not learned: two are being read");
    };
    let event = FailureEvent {
        platform: Some(g.platform),
        repository: g.repository.clone(),
        run_id: g.run_id.clone(),
        attempt: g.attempt,
        workflow: g.workflow.clone(),
        ..Default::default()
    };
    let jobs = match ci.green_jobs(&event).await {
        Ok(jobs) => jobs,
        Err(e) => return tracing::warn!(run = %g.run_id, "green run not learned: {e}"),
    };
    for j in jobs {
        let key = BaselineKey {
            platform: platform.to_string(),
            repository: g.repository.clone(),
            workflow: g.workflow.clone(),
            job: j.name,
        };
        if let Err(e) = learn(&st.store, &key, &g.run_id, j.log).await {
            tracing::warn!(run = %g.run_id, job = %key.job, "green run not learned: {e}");
        }
    }
}

/// Jobs of one failure learned on demand at most (one log download each).
pub const ON_DEMAND_JOBS: usize = 3;
/// On-demand look-ups per repository per hour at most: a burst of failures of jobs without
/// a model spends at most this many sets of calls.
pub const ON_DEMAND_PER_HOUR: usize = 6;
const HOUR_MS: i64 = 3_600_000;

/// Per repository, when its recent on-demand look-ups started.
#[derive(Default)]
pub struct Lookups(std::sync::Mutex<BTreeMap<String, VecDeque<i64>>>);

impl Lookups {
    /// Whether `repository` may spend another look-up at `now` (and counts it).
    pub fn allow(&self, repository: &str, now: i64) -> bool {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, seen| seen.back().is_some_and(|&t| now - t < HOUR_MS));
        let seen = all.entry(repository.to_string()).or_default();
        while seen.front().is_some_and(|&t| now - t >= HOUR_MS) {
            seen.pop_front();
        }
        if seen.len() >= ON_DEMAND_PER_HOUR {
            return false;
        }
        seen.push_back(now);
        true
    }
}

/// A failure of jobs without a model: the last green run of the same workflow on the same
/// branch, else on the default branch, is read once and learned. At most
/// `3 + ON_DEMAND_JOBS` calls on the branch and 2 more for the default branch; best effort.
async fn learn_on_demand(st: &Shared, s: &SessionRecord, mut jobs: Vec<String>) {
    let Some(ci) = Platform::parse(&s.platform).and_then(|p| st.ci(p, &s.repository)) else {
        return;
    };
    jobs.truncate(ON_DEMAND_JOBS);
    if !st.green_lookups.allow(&s.repository, now_ms()) {
        return tracing::debug!(session = %s.id, "no green run looked up: the hourly cap is spent");
    }
    let Ok(_permit) = LEARNING.try_acquire() else {
        return tracing::debug!(session = %s.id, "no green run looked up: two are being read");
    };
    let ev = &s.event;
    let mut found = None;
    if let Some(branch) = ev.branch.as_deref() {
        found = ci.last_green(ev, branch, &jobs).await.transpose();
    }
    if !matches!(found, Some(Ok(_))) {
        let default = ci.default_branch(ev).await.ok().flatten();
        if let Some(d) = default.filter(|d| Some(d.as_str()) != ev.branch.as_deref()) {
            found = ci.last_green(ev, &d, &jobs).await.transpose();
        }
    }
    let green = match found {
        Some(Ok(g)) => g,
        Some(Err(e)) => return tracing::debug!(session = %s.id, "no green run looked up: {e}"),
        None => return,
    };
    for j in green.jobs {
        if let Err(e) = learn(&st.store, &key(s, &j.name), &green.run_id, j.log).await {
            tracing::warn!(session = %s.id, job = %j.name, "green run not learned: {e}");
        }
    }
}

/// The model key of one job of a session.
pub fn key(s: &SessionRecord, job: &str) -> BaselineKey {
    BaselineKey {
        platform: s.platform.clone(),
        repository: s.repository.clone(),
        workflow: s.workflow.clone(),
        job: job.to_string(),
    }
}

/// One job's evidence against its green runs.
#[derive(Debug, Clone, Default)]
pub(super) struct Against {
    /// Evidence line number → whether no green run printed it.
    new: Vec<(usize, bool)>,
    new_lines: usize,
    green_runs: Vec<String>,
}

/// Per diagnosed job (same order), its comparison when the job has a model.
pub(super) type Marks = Vec<Option<Against>>;

/// Each log through the analyzer, against its job's model when there is one; off the async
/// threads, as scanning a large log is CPU work. A model that cannot be read is ignored:
/// the analysis then stands as without one.
pub(super) async fn diagnose(
    st: &Shared,
    s: &SessionRecord,
    logs: Vec<JobLog>,
) -> Result<(Vec<JobDiagnosis>, Marks), super::JobError> {
    let mut models = load_models(st, s, &logs).await;
    let missing: Vec<String> = logs
        .iter()
        .zip(&models)
        .filter(|(_, m)| m.is_none())
        .map(|(l, _)| l.job.name.clone())
        .collect();
    if !missing.is_empty() {
        learn_on_demand(st, s, missing).await;
        models = load_models(st, s, &logs).await;
    }
    let shared = st.clone();
    tokio::task::spawn_blocking(move || {
        logs.into_iter()
            .zip(models)
            .map(|(l, model)| one(&shared, l, model))
            .unzip()
    })
    .await
    .map_err(|e| super::JobError::Fatal(format!("analysis failed: {e}")))
}

/// Each job's model, when it has one that can be read.
async fn load_models(st: &Shared, s: &SessionRecord, logs: &[JobLog]) -> Vec<Option<Baseline>> {
    let mut models = Vec::with_capacity(logs.len());
    for l in logs {
        let stored = st
            .store
            .baseline(&key(s, &l.job.name))
            .await
            .inspect_err(|e| tracing::warn!("green-run model unavailable: {e}"))
            .ok()
            .flatten();
        models.push(stored.and_then(|b| Baseline::from_bytes(b.model.as_bytes()).ok()));
    }
    models
}

fn one(st: &Shared, l: JobLog, model: Option<Baseline>) -> (JobDiagnosis, Option<Against>) {
    let hints = Hints {
        exit_code: None,
        platform_reason: l.job.platform_reason.clone(),
    };
    let compared = model.filter(|m| !m.is_empty()).and_then(|m| {
        st.analyzer
            .analyze_against(&l.log[..], &hints, &m, |_| {})
            .ok()
    });
    let Some(c) = compared else {
        let diagnosis = st.analyzer.analyze_with(&l.log, &hints);
        return (
            JobDiagnosis {
                diagnosis,
                job: l.job,
            },
            None,
        );
    };
    let flags = c.evidence_new.unwrap_or_default();
    let against = Against {
        new: c
            .diagnosis
            .evidence
            .iter()
            .map(|e| e.line)
            .zip(flags)
            .collect(),
        new_lines: c.new_lines,
        green_runs: c.green_runs,
    };
    let d = JobDiagnosis {
        diagnosis: c.diagnosis,
        job: l.job,
    };
    (d, Some(against))
}

/// Marks the stored diagnosis: each job's evidence lines gain `new`, and so do the run's
/// (taken from the job they came from), which also gains `baseline: {green_runs, new_lines}`.
pub(super) fn attach(diagnosis: &mut Value, marks: &Marks) {
    let top = diagnosis["evidence"].clone();
    // The job the run's diagnosis came from; else the first job compared.
    let (mut chosen, mut exact) = (None, false);
    let jobs = diagnosis["jobs"].as_array_mut().map(|j| j.iter_mut());
    for (job, against) in jobs.into_iter().flatten().zip(marks) {
        let Some(a) = against else { continue };
        let evidence = &mut job["diagnosis"]["evidence"];
        if !exact && (chosen.is_none() || *evidence == top) {
            (chosen, exact) = (Some(a), *evidence == top);
        }
        mark(evidence, a);
    }
    if let Some(a) = chosen {
        mark(&mut diagnosis["evidence"], a);
        diagnosis["baseline"] = json!({"green_runs": a.green_runs, "new_lines": a.new_lines});
    }
}

fn mark(evidence: &mut Value, a: &Against) {
    for e in evidence.as_array_mut().into_iter().flatten() {
        let line = e["line"].as_u64().unwrap_or(0) as usize;
        if let Some(&(_, new)) = a.new.iter().find(|(l, _)| *l == line) {
            e["new"] = json!(new);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn against(new: &[(usize, bool)], run: &str) -> Option<Against> {
        Some(Against {
            new: new.to_vec(),
            new_lines: new.iter().filter(|(_, n)| *n).count(),
            green_runs: vec![run.to_string()],
        })
    }

    #[test]
    fn each_evidence_line_is_marked_from_the_job_the_run_diagnosis_came_from() {
        let lint = json!([{"line": 3, "text": "noise"}]);
        let build = json!([{"line": 3, "text": "reset"}, {"line": 9, "text": "cause"}]);
        let mut d = json!({
            "evidence": build,
            "jobs": [{"diagnosis": {"evidence": lint}}, {"diagnosis": {"evidence": build}}],
        });
        let marks = vec![
            against(&[(3, true)], "lint-green"),
            against(&[(3, false), (9, true)], "build-green"),
        ];
        attach(&mut d, &marks);
        assert_eq!(d["evidence"][0]["new"], false);
        assert_eq!(d["evidence"][1]["new"], true);
        assert_eq!(
            d["baseline"],
            json!({"green_runs": ["build-green"], "new_lines": 1})
        );
        assert_eq!(d["jobs"][0]["diagnosis"]["evidence"][0]["new"], true);
        assert_eq!(d["jobs"][1]["diagnosis"]["evidence"][0]["new"], false);
    }

    #[test]
    fn on_demand_look_ups_are_capped_per_repository_and_hour() {
        let l = Lookups::default();
        let t0 = 1_000_000;
        for k in 0..ON_DEMAND_PER_HOUR as i64 {
            assert!(l.allow("o/a", t0 + k));
        }
        assert!(!l.allow("o/a", t0 + 100), "the hour's look-ups are spent");
        assert!(l.allow("o/b", t0 + 100), "another repository has its own");
        assert!(
            l.allow("o/a", t0 + HOUR_MS),
            "an hour later the first one expired"
        );
        assert!(!l.allow("o/a", t0 + HOUR_MS), "and only that one");
    }

    #[test]
    fn without_a_model_nothing_is_marked() {
        let before = json!({
            "evidence": [{"line": 1, "text": "x"}],
            "jobs": [{"diagnosis": {"evidence": [{"line": 1, "text": "x"}]}}],
        });
        let mut d = before.clone();
        attach(&mut d, &vec![None]);
        assert_eq!(d, before);
    }
}
