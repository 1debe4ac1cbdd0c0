//! GitHub Actions' state: workflow runs, their attempts and jobs, caches, dispatches; and how a
//! re-run makes a new attempt.

use super::payload;
use super::GithubConfig;
use crate::core::graph::{self, End, Phase, Step};
use crate::core::ratelimit::RateWindow;
use crate::core::scenario::{RunSpec, Script};
use crate::core::sim::{Advance, Model};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;

/// GitHub refuses re-runs of runs created longer ago than this.
pub const RERUN_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    InProgress,
    Completed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
        }
    }
}

/// A conclusion that makes the run fail.
pub fn failed(conclusion: Option<&str>) -> bool {
    matches!(
        conclusion,
        Some("failure" | "cancelled" | "timed_out" | "startup_failure")
    )
}

#[derive(Debug, Clone)]
pub struct Run {
    pub id: u64,
    pub repo: String,
    /// The workflow file (`ci.yml`).
    pub workflow: String,
    pub workflow_id: u64,
    pub name: String,
    pub branch: String,
    pub sha: String,
    /// `push`, `workflow_dispatch`…
    pub event: String,
    pub run_number: u64,
    pub created_at: OffsetDateTime,
    pub inputs: BTreeMap<String, String>,
    pub attempts: Vec<Attempt>,
    pub(crate) script: usize,
}

impl Run {
    pub fn latest(&self) -> &Attempt {
        self.attempts.last().expect("a run has its first attempt")
    }

    pub fn attempt(&self, n: u32) -> Option<&Attempt> {
        self.attempts.iter().find(|a| a.number == n)
    }
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub number: u32,
    pub status: Status,
    pub conclusion: Option<String>,
    pub started_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// The jobs this attempt lists, in the workflow's order: those it runs and those it keeps
    /// from the attempt before (their `run_attempt` is older).
    pub jobs: Vec<u64>,
    /// The jobs this attempt runs (all of them for attempt 1).
    pub runs: Vec<String>,
    pub(crate) announced: bool,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: u64,
    pub run_id: u64,
    /// The attempt in which this job executed.
    pub run_attempt: u32,
    pub name: String,
    pub status: Status,
    pub conclusion: Option<String>,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub completed_at: Option<OffsetDateTime>,
    pub log: String,
    pub(crate) until: Option<(Instant, bool)>,
}

impl Job {
    fn phase(&self) -> Phase {
        match (self.status, &self.until) {
            (Status::Queued, _) => Phase::Waiting,
            (Status::InProgress, Some((until, success))) => Phase::Running {
                until: *until,
                success: *success,
            },
            (Status::InProgress, None) => Phase::Waiting,
            (Status::Completed, _) => Phase::Done(match self.conclusion.as_deref() {
                Some("success") => End::Success,
                Some("skipped") => End::Skipped,
                _ => End::Failure,
            }),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Workflow {
    pub id: u64,
    pub repo: String,
    pub file: String,
    pub(crate) script: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cache {
    pub id: u64,
    pub repo: String,
    pub git_ref: String,
    pub key: String,
    pub size_in_bytes: u64,
    pub created_at: OffsetDateTime,
}

/// A `workflow_dispatch` the API accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    pub repo: String,
    pub workflow: String,
    pub git_ref: String,
    pub inputs: BTreeMap<String, String>,
    pub run_id: u64,
}

/// Why GitHub refused a call: the HTTP status and its message.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
        }
    }
}

/// Which jobs a re-run runs again.
#[derive(Debug, Clone, PartialEq)]
pub enum Rerun {
    All,
    Failed,
    Job(u64),
}

pub struct GithubState {
    pub config: GithubConfig,
    pub runs: BTreeMap<u64, Run>,
    pub jobs: BTreeMap<u64, Job>,
    pub workflows: Vec<Workflow>,
    pub caches: BTreeMap<u64, Cache>,
    pub dispatches: Vec<Dispatch>,
    pub(crate) scripts: Vec<Script>,
    pub(crate) base_url: String,
    pub app_log: super::app::AppLog,
    /// Check runs by id.
    pub check_runs: BTreeMap<u64, super::checks::CheckRun>,
    /// `(org/team, user)` of each team membership asked about.
    pub membership_lookups: Vec<(String, String)>,
    /// While set, every job that depends on what is down (its script prints this log for one
    /// of its executions) fails with it, whatever its script says for this execution; the
    /// script still counts the execution.
    pub outage: Option<String>,
    /// Repository files by (owner/repo, path): what the contents API serves.
    pub files: BTreeMap<(String, String), String>,
    pub issues: Vec<super::repo::Issue>,
    /// The REST API's rate-limit window: calls counted in it and when it resets.
    pub(crate) rate: RateWindow,
    next_id: u64,
}

impl GithubState {
    pub(crate) fn new(config: GithubConfig, base_url: &str) -> GithubState {
        GithubState {
            config,
            runs: BTreeMap::new(),
            jobs: BTreeMap::new(),
            workflows: Vec::new(),
            caches: BTreeMap::new(),
            dispatches: Vec::new(),
            scripts: Vec::new(),
            base_url: base_url.to_string(),
            app_log: Default::default(),
            check_runs: BTreeMap::new(),
            membership_lookups: Vec::new(),
            outage: None,
            files: BTreeMap::new(),
            issues: Vec::new(),
            rate: RateWindow::default(),
            next_id: 7_000_000_000,
        }
    }

    /// Where issues are shown: github.com's form on the stand-in's address.
    pub(crate) fn html_base(&self) -> String {
        self.base_url.trim_end_matches('/').to_string()
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Makes `spec` the workflow's script from now on (fresh execution counts).
    pub(crate) fn define(&mut self, spec: RunSpec) -> usize {
        self.scripts.push(Script::new(spec.clone()));
        let script = self.scripts.len() - 1;
        match self
            .workflows
            .iter_mut()
            .find(|w| w.repo == spec.repo && w.file == spec.workflow)
        {
            Some(w) => w.script = script,
            None => {
                let id = self.id();
                self.workflows.push(Workflow {
                    id,
                    repo: spec.repo.clone(),
                    file: spec.workflow.clone(),
                    script,
                });
            }
        }
        script
    }

    pub(crate) fn workflow(&self, repo: &str, file_or_id: &str) -> Option<&Workflow> {
        self.workflows
            .iter()
            .find(|w| w.repo == repo && (w.file == file_or_id || w.id.to_string() == file_or_id))
    }

    /// Starts a run of `script` (attempt 1, every job queued).
    pub(crate) fn start_run(
        &mut self,
        script: usize,
        event: &str,
        branch: &str,
        inputs: BTreeMap<String, String>,
    ) -> u64 {
        let spec = self.scripts[script].spec.clone();
        let now = OffsetDateTime::now_utc();
        let created_at = now - spec.started_ago;
        let workflow_id = self
            .workflow(&spec.repo, &spec.workflow)
            .map(|w| w.id)
            .unwrap_or_default();
        let run_number = 1 + self
            .runs
            .values()
            .filter(|r| r.workflow_id == workflow_id)
            .count() as u64;
        let id = self.id();
        let names: Vec<String> = spec.jobs.iter().map(|j| j.name.clone()).collect();
        let jobs = names.iter().map(|n| self.new_job(id, 1, n)).collect();
        self.runs.insert(
            id,
            Run {
                id,
                repo: spec.repo.clone(),
                workflow: spec.workflow.clone(),
                workflow_id,
                name: display_name(&spec.workflow),
                branch: branch.to_string(),
                sha: spec.sha.clone(),
                event: event.to_string(),
                run_number,
                created_at,
                inputs,
                attempts: vec![new_attempt(1, jobs, names, now)],
                script,
            },
        );
        id
    }

    fn new_job(&mut self, run_id: u64, attempt: u32, name: &str) -> u64 {
        let id = self.id();
        self.jobs.insert(
            id,
            Job {
                id,
                run_id,
                run_attempt: attempt,
                name: name.to_string(),
                status: Status::Queued,
                conclusion: None,
                created_at: OffsetDateTime::now_utc(),
                started_at: None,
                completed_at: None,
                log: String::new(),
                until: None,
            },
        );
        id
    }

    /// A re-run: the next attempt, in which the chosen jobs and every job that needs them run
    /// again and the others keep their result.
    pub(crate) fn rerun(&mut self, run_id: u64, which: Rerun) -> Result<u32, Refusal> {
        let run = self.runs.get(&run_id).ok_or_else(not_found)?;
        let latest = run.latest();
        if latest.status != Status::Completed {
            return Err(Refusal::new(403, "This workflow is already running"));
        }
        if run.attempts.len() as u32 >= self.config.max_attempts {
            return Err(Refusal::new(
                403,
                "This workflow run has reached the maximum number of attempts and cannot be re-run",
            ));
        }
        if OffsetDateTime::now_utc() - run.created_at > RERUN_WINDOW {
            return Err(Refusal::new(
                403,
                "Unable to retry this workflow run because it was created over a month ago",
            ));
        }
        let spec = &self.scripts[run.script].spec;
        let latest_jobs: HashMap<String, u64> = latest
            .jobs
            .iter()
            .filter_map(|id| self.jobs.get(id).map(|j| (j.name.clone(), *id)))
            .collect();
        let chosen: Vec<String> = match which {
            Rerun::All => spec.jobs.iter().map(|j| j.name.clone()).collect(),
            Rerun::Failed => latest_jobs
                .iter()
                .filter(|(_, id)| failed(self.jobs[*id].conclusion.as_deref()))
                .map(|(n, _)| n.clone())
                .collect(),
            Rerun::Job(id) => match self.jobs.get(&id) {
                Some(j) if j.run_id == run_id => vec![j.name.clone()],
                _ => return Err(not_found()),
            },
        };
        if chosen.is_empty() {
            return Err(Refusal::new(
                403,
                "This workflow run has no failed jobs to re-run",
            ));
        }
        let again = spec.with_dependents(&chosen);
        let names: Vec<String> = spec.jobs.iter().map(|j| j.name.clone()).collect();
        let number = latest.number + 1;
        let mut jobs = Vec::new();
        let mut runs = Vec::new();
        for n in &names {
            if again.contains(n) || !latest_jobs.contains_key(n) {
                jobs.push(self.new_job(run_id, number, n));
                runs.push(n.clone());
            } else {
                jobs.push(latest_jobs[n]);
            }
        }
        let now = OffsetDateTime::now_utc();
        let run = self.runs.get_mut(&run_id).expect("checked above");
        run.attempts.push(new_attempt(number, jobs, runs, now));
        Ok(number)
    }
}

// Past runs for a history (`pipeguard import`), played out at once.
impl GithubState {
    /// A finished run created at `created_at`, its attempts played out at once (no deliveries):
    /// after each failed attempt, a person re-runs its failed jobs the next of `reruns` later.
    pub(crate) fn past_run(
        &mut self,
        spec: RunSpec,
        created_at: OffsetDateTime,
        reruns: &[Duration],
    ) -> Result<u64, Refusal> {
        let branch = spec.branch.clone();
        let script = self.define(spec);
        let id = self.start_run(script, "push", &branch, BTreeMap::new());
        self.runs.get_mut(&id).expect("started").created_at = created_at;
        let mut at = self.play_at_once(id, created_at);
        for gap in reruns {
            if self.runs[&id].latest().conclusion.as_deref() == Some("success") {
                break;
            }
            self.rerun(id, Rerun::Failed)?;
            at += *gap;
            at = self.play_at_once(id, at);
        }
        Ok(id)
    }

    /// Runs the latest attempt's queued jobs from `start`, each after the jobs it needs, with
    /// the script's next outcomes; completes the attempt. Returns when it ended.
    fn play_at_once(&mut self, run_id: u64, start: OffsetDateTime) -> OffsetDateTime {
        let run = &self.runs[&run_id];
        let (ids, script) = (run.latest().jobs.clone(), run.script);
        let by_name: HashMap<String, u64> = ids
            .iter()
            .map(|id| (self.jobs[id].name.clone(), *id))
            .collect();
        let mut end = start;
        // Jobs come in the workflow's order; a need later in it waits for another pass.
        for _ in 0..ids.len() {
            for id in &ids {
                if self.jobs[id].status == Status::Completed {
                    continue;
                }
                let needs = self.scripts[script]
                    .spec
                    .job_spec(&self.jobs[id].name)
                    .map(|j| j.needs.clone())
                    .unwrap_or_default();
                let needed: Vec<&Job> = needs.iter().map(|n| &self.jobs[&by_name[n]]).collect();
                if needed.iter().any(|j| j.status != Status::Completed) {
                    continue;
                }
                let blocked = needed
                    .iter()
                    .any(|j| j.conclusion.as_deref() != Some("success"));
                let from = needed
                    .iter()
                    .filter_map(|j| j.completed_at)
                    .max()
                    .unwrap_or(start)
                    .max(start);
                let done = self.play_job(*id, script, from, blocked);
                end = end.max(done);
            }
        }
        let failure = ids
            .iter()
            .any(|id| failed(self.jobs[id].conclusion.as_deref()));
        let a = self.attempt_mut(run_id);
        a.started_at = start;
        a.updated_at = end;
        a.status = Status::Completed;
        a.conclusion = Some(if failure { "failure" } else { "success" }.into());
        a.announced = true;
        end
    }

    fn play_job(
        &mut self,
        id: u64,
        script: usize,
        from: OffsetDateTime,
        skip: bool,
    ) -> OffsetDateTime {
        let name = self.jobs[&id].name.clone();
        let s = &mut self.scripts[script];
        let (outcome, took) = if skip {
            (None, Duration::ZERO)
        } else {
            let took = s
                .spec
                .job_spec(&name)
                .map(|j| j.duration)
                .unwrap_or_default();
            (Some(s.next_outcome(&name)), took)
        };
        let job = self.jobs.get_mut(&id).expect("listed job");
        let done = from + took;
        job.created_at = from;
        job.started_at = Some(from);
        job.completed_at = Some(done);
        job.status = Status::Completed;
        job.conclusion = Some(
            match &outcome {
                None => "skipped",
                Some(o) if o.success => "success",
                Some(_) => "failure",
            }
            .into(),
        );
        job.log = outcome.map(|o| o.log).unwrap_or_default();
        done
    }
}

fn new_attempt(number: u32, jobs: Vec<u64>, runs: Vec<String>, now: OffsetDateTime) -> Attempt {
    Attempt {
        number,
        status: Status::Queued,
        conclusion: None,
        started_at: now,
        updated_at: now,
        jobs,
        runs,
        announced: false,
    }
}

pub(crate) fn not_found() -> Refusal {
    Refusal::new(404, "Not Found")
}

/// `ci.yml` → `ci`: the run's `name` when the workflow file names none.
fn display_name(file: &str) -> String {
    file.trim_end_matches(".yml")
        .trim_end_matches(".yaml")
        .to_string()
}

impl Model for GithubState {
    fn advance(&mut self, now: Instant) -> Advance {
        let mut adv = Advance::default();
        let active: Vec<u64> = self
            .runs
            .values()
            .filter(|r| r.latest().status != Status::Completed)
            .map(|r| r.id)
            .collect();
        for id in active {
            self.advance_run(id, now, &mut adv);
        }
        adv
    }
}

impl GithubState {
    fn advance_run(&mut self, run_id: u64, now: Instant, adv: &mut Advance) {
        let wall = OffsetDateTime::now_utc();
        let run = &self.runs[&run_id];
        let (job_ids, script) = (run.latest().jobs.clone(), run.script);
        if !run.latest().announced {
            // `requested` while queued, then `in_progress` as the jobs start.
            self.attempt_mut(run_id).announced = true;
            adv.deliveries
                .push(payload::run_delivery(self, run_id, "requested"));
            self.attempt_mut(run_id).status = Status::InProgress;
            adv.deliveries
                .push(payload::run_delivery(self, run_id, "in_progress"));
        }
        let index: HashMap<&str, usize> = job_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (self.jobs[id].name.as_str(), i))
            .collect();
        let spec = &self.scripts[script].spec;
        let needs: Vec<Vec<usize>> = job_ids
            .iter()
            .map(|id| {
                let deps = spec.job_spec(&self.jobs[id].name).map(|j| j.needs.clone());
                deps.unwrap_or_default()
                    .iter()
                    .filter_map(|n| index.get(n.as_str()).copied())
                    .collect()
            })
            .collect();
        let phases: Vec<Phase> = job_ids.iter().map(|id| self.jobs[id].phase()).collect();
        for step in graph::due(&phases, &needs, now) {
            let (i, action) = match step {
                Step::Start(i) => (i, self.start_job(job_ids[i], script, now, wall)),
                Step::Finish(i, end) => (i, self.end_job(job_ids[i], end, wall)),
                Step::Skip(i) => (i, self.end_job(job_ids[i], End::Skipped, wall)),
            };
            adv.deliveries
                .push(payload::job_delivery(self, job_ids[i], action));
        }
        let phases: Vec<Phase> = job_ids.iter().map(|id| self.jobs[id].phase()).collect();
        adv.due(graph::next_deadline(&phases));
        if phases.iter().all(|p| matches!(p, Phase::Done(_))) {
            let failure = job_ids
                .iter()
                .any(|id| failed(self.jobs[id].conclusion.as_deref()));
            let a = self.attempt_mut(run_id);
            a.status = Status::Completed;
            a.conclusion = Some(if failure { "failure" } else { "success" }.into());
            a.updated_at = wall;
            adv.deliveries
                .push(payload::run_delivery(self, run_id, "completed"));
        }
    }

    fn attempt_mut(&mut self, run_id: u64) -> &mut Attempt {
        let run = self.runs.get_mut(&run_id).expect("active run");
        run.attempts
            .last_mut()
            .expect("a run has its first attempt")
    }

    fn start_job(
        &mut self,
        id: u64,
        script: usize,
        now: Instant,
        wall: OffsetDateTime,
    ) -> &'static str {
        let job = self.jobs.get_mut(&id).expect("listed job");
        let s = &mut self.scripts[script];
        let mut outcome = s.next_outcome(&job.name);
        if let Some(log) = &self.outage {
            let spec = s.spec.job_spec(&job.name);
            if spec.is_some_and(|j| j.outcomes.iter().any(|o| o.log == *log)) {
                outcome = crate::Outcome::fail(log.clone());
            }
        }
        let duration = s
            .spec
            .job_spec(&job.name)
            .map(|j| j.duration)
            .unwrap_or_default();
        job.status = Status::InProgress;
        job.started_at = Some(wall);
        job.log = outcome.log;
        job.until = Some((now + duration, outcome.success));
        "in_progress"
    }

    fn end_job(&mut self, id: u64, end: End, wall: OffsetDateTime) -> &'static str {
        let job = self.jobs.get_mut(&id).expect("listed job");
        job.status = Status::Completed;
        job.conclusion = Some(
            match end {
                End::Success => "success",
                End::Failure => "failure",
                End::Skipped => "skipped",
            }
            .into(),
        );
        job.started_at.get_or_insert(wall);
        job.completed_at = Some(wall);
        job.until = None;
        let run = self.runs.get_mut(&job.run_id).expect("job's run");
        run.attempts.last_mut().expect("attempt").updated_at = wall;
        "completed"
    }
}
