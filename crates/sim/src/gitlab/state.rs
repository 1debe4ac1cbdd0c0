//! GitLab CI's state: projects, pipelines and jobs. A retried job is a new job (new id) in the
//! same pipeline; the old one is marked retried and jobs it skipped are processed again.

use super::payload;
use super::GitlabConfig;
use crate::core::graph::{self, End, Phase, Step};
use crate::core::ratelimit::RateWindow;
use crate::core::scenario::{RunSpec, Script};
use crate::core::sim::{Advance, Model};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Created,
    Pending,
    Running,
    Success,
    Failed,
    Canceled,
    Skipped,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Created => "created",
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Success => "success",
            JobStatus::Failed => "failed",
            JobStatus::Canceled => "canceled",
            JobStatus::Skipped => "skipped",
        }
    }

    pub fn finished(self) -> bool {
        matches!(
            self,
            JobStatus::Success | JobStatus::Failed | JobStatus::Canceled | JobStatus::Skipped
        )
    }
}

#[derive(Debug, Clone)]
pub struct Project {
    pub id: u64,
    pub path: String,
    pub(crate) script: usize,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub id: u64,
    pub iid: u64,
    pub project: String,
    pub git_ref: String,
    pub sha: String,
    /// `push`, `api`…
    pub source: String,
    /// `created`, `running`, `success`, `failed`, `canceled`.
    pub status: String,
    pub variables: Vec<(String, String)>,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
    /// Every job ever created in the pipeline, retried ones included, oldest first.
    pub jobs: Vec<u64>,
    pub(crate) script: usize,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: u64,
    pub pipeline_id: u64,
    pub name: String,
    pub stage: String,
    pub environment: Option<String>,
    pub status: JobStatus,
    /// Replaced by a retry (GitLab lists it only with `include_retried`).
    pub retried: bool,
    pub failure_reason: Option<String>,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
    pub log: String,
    /// The runner that picked the job up (its id), once started.
    pub runner: Option<u64>,
    pub(crate) until: Option<(Instant, bool, Option<String>)>,
}

/// A registered runner. A paused one picks up no new job.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRunner {
    pub id: u64,
    pub description: String,
    pub paused: bool,
    /// The projects it takes jobs of before any shared runner does (empty: shared).
    pub projects: Vec<String>,
}

impl Job {
    fn phase(&self) -> Phase {
        match (self.status, &self.until) {
            (JobStatus::Running, Some((until, success, _))) => Phase::Running {
                until: *until,
                success: *success,
            },
            (JobStatus::Success, _) => Phase::Done(End::Success),
            (JobStatus::Skipped, _) => Phase::Done(End::Skipped),
            (JobStatus::Failed | JobStatus::Canceled, _) => Phase::Done(End::Failure),
            _ => Phase::Waiting,
        }
    }
}

/// Why GitLab refused a call: the HTTP status and its `message`.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

fn refusal(status: u16, message: &str) -> Refusal {
    Refusal {
        status,
        message: message.to_string(),
    }
}

pub struct GitlabState {
    pub config: GitlabConfig,
    pub projects: Vec<Project>,
    pub pipelines: BTreeMap<u64, Pipeline>,
    pub jobs: BTreeMap<u64, Job>,
    /// Runners jobs are picked up by; with none, jobs name no runner.
    pub runners: Vec<SimRunner>,
    pub(crate) scripts: Vec<Script>,
    pub(crate) base_url: String,
    pub merge_requests: Vec<super::notes::MergeRequest>,
    /// Notes and commit comments, oldest first.
    pub notes: Vec<super::notes::Note>,
    /// `(group, user id)` of each group membership asked about.
    pub membership_lookups: Vec<(String, u64)>,
    /// Repository files by (project path, file path): what the files API serves.
    pub files: BTreeMap<(String, String), String>,
    pub issues: Vec<super::repo::Issue>,
    /// The pipeline status last announced by a Pipeline Hook.
    hooked: BTreeMap<u64, String>,
    /// The API's rate-limit window.
    pub(crate) rate: RateWindow,
    next_pipeline: u64,
    next_job: u64,
}

impl GitlabState {
    pub(crate) fn new(config: GitlabConfig, base_url: &str) -> GitlabState {
        GitlabState {
            config,
            projects: Vec::new(),
            pipelines: BTreeMap::new(),
            jobs: BTreeMap::new(),
            runners: Vec::new(),
            scripts: Vec::new(),
            merge_requests: Vec::new(),
            notes: Vec::new(),
            membership_lookups: Vec::new(),
            files: BTreeMap::new(),
            issues: Vec::new(),
            base_url: base_url.to_string(),
            hooked: BTreeMap::new(),
            rate: RateWindow::default(),
            next_pipeline: 1000,
            next_job: 5000,
        }
    }

    /// The project by numeric id or path (`group/sub/project`).
    pub(crate) fn project(&self, id_or_path: &str) -> Option<&Project> {
        self.projects
            .iter()
            .find(|p| p.path == id_or_path || p.id.to_string() == id_or_path)
    }

    /// Makes `spec` the project's pipeline definition (fresh execution counts).
    pub(crate) fn define(&mut self, spec: RunSpec) -> usize {
        self.scripts.push(Script::new(spec.clone()));
        let script = self.scripts.len() - 1;
        match self.projects.iter_mut().find(|p| p.path == spec.repo) {
            Some(p) => p.script = script,
            None => {
                let id = 100 + self.projects.len() as u64;
                self.projects.push(Project {
                    id,
                    path: spec.repo,
                    script,
                });
            }
        }
        script
    }

    /// A new pipeline of the project's definition on `git_ref`.
    pub(crate) fn new_pipeline(
        &mut self,
        script: usize,
        git_ref: &str,
        source: &str,
        variables: Vec<(String, String)>,
    ) -> u64 {
        let spec = self.scripts[script].spec.clone();
        let now = OffsetDateTime::now_utc();
        self.next_pipeline += 1;
        let id = self.next_pipeline;
        let iid = 1 + self
            .pipelines
            .values()
            .filter(|p| p.project == spec.repo)
            .count() as u64;
        let jobs = spec
            .jobs
            .iter()
            .map(|j| self.new_job(id, &j.name, script))
            .collect();
        self.pipelines.insert(
            id,
            Pipeline {
                id,
                iid,
                project: spec.repo.clone(),
                git_ref: git_ref.to_string(),
                sha: spec.sha.clone(),
                source: source.to_string(),
                status: "created".into(),
                variables,
                created_at: now - spec.started_ago,
                started_at: None,
                finished_at: None,
                updated_at: now,
                jobs,
                script,
            },
        );
        id
    }

    fn new_job(&mut self, pipeline_id: u64, name: &str, script: usize) -> u64 {
        let spec = self.scripts[script].spec.job_spec(name).cloned();
        self.next_job += 1;
        let id = self.next_job;
        self.jobs.insert(
            id,
            Job {
                id,
                pipeline_id,
                name: name.to_string(),
                stage: spec
                    .as_ref()
                    .and_then(|j| j.stage.clone())
                    .unwrap_or_else(|| "test".into()),
                environment: spec.and_then(|j| j.environment),
                status: JobStatus::Created,
                retried: false,
                failure_reason: None,
                created_at: OffsetDateTime::now_utc(),
                started_at: None,
                finished_at: None,
                log: String::new(),
                runner: None,
                until: None,
            },
        );
        id
    }

    /// The active runner that picks up a job of `project`: one assigned to the project,
    /// else the first shared one.
    fn pick_runner(&self, project: &str) -> Option<u64> {
        let active = || self.runners.iter().filter(|r| !r.paused);
        active()
            .find(|r| r.projects.iter().any(|p| p == project))
            .or_else(|| active().find(|r| r.projects.is_empty()))
            .map(|r| r.id)
    }

    /// The pipeline's current jobs (not retried), in the definition's order.
    pub fn latest_jobs(&self, pipeline_id: u64) -> Vec<u64> {
        let p = &self.pipelines[&pipeline_id];
        let spec = &self.scripts[p.script].spec;
        spec.jobs
            .iter()
            .filter_map(|s| {
                p.jobs
                    .iter()
                    .rev()
                    .find(|id| self.jobs[id].name == s.name && !self.jobs[id].retried)
                    .copied()
            })
            .collect()
    }

    /// What each of `ids` waits for (indexes into `ids`): its `needs`, or else every job of
    /// the stages before its own.
    fn needs(&self, pipeline_id: u64, ids: &[u64]) -> Vec<Vec<usize>> {
        let spec = &self.scripts[self.pipelines[&pipeline_id].script].spec;
        let mut stages: Vec<&str> = Vec::new();
        for id in ids {
            if !stages.contains(&self.jobs[id].stage.as_str()) {
                stages.push(&self.jobs[id].stage);
            }
        }
        let rank = |id: &u64| stages.iter().position(|s| *s == self.jobs[id].stage);
        ids.iter()
            .map(|id| {
                let explicit = spec.job_spec(&self.jobs[id].name).map(|j| &j.needs);
                match explicit {
                    Some(n) if !n.is_empty() => (0..ids.len())
                        .filter(|i| n.contains(&self.jobs[&ids[*i]].name))
                        .collect(),
                    _ => (0..ids.len())
                        .filter(|i| rank(&ids[*i]) < rank(id))
                        .collect(),
                }
            })
            .collect()
    }

    /// Retries one finished, not yet retried job: a new job with a new id; the jobs it had
    /// skipped are processed again. Returns the new job's id.
    pub(crate) fn retry_job(&mut self, job_id: u64) -> Result<u64, Refusal> {
        let job = self
            .jobs
            .get(&job_id)
            .ok_or_else(|| refusal(404, "404 Job Not Found"))?;
        let retryable = !job.retried
            && matches!(
                job.status,
                JobStatus::Success | JobStatus::Failed | JobStatus::Canceled
            );
        if !retryable {
            return Err(refusal(403, "403 Forbidden - Job is not retryable"));
        }
        let (pipeline_id, name) = (job.pipeline_id, job.name.clone());
        let script = self.pipelines[&pipeline_id].script;
        let new_id = self.new_job(pipeline_id, &name, script);
        self.jobs.get_mut(&job_id).expect("checked").retried = true;
        self.jobs.get_mut(&new_id).expect("new").status = JobStatus::Pending;
        let p = self
            .pipelines
            .get_mut(&pipeline_id)
            .expect("job's pipeline");
        p.jobs.push(new_id);
        self.reset_skipped(pipeline_id, new_id);
        self.update_status(pipeline_id);
        Ok(new_id)
    }

    /// Jobs skipped because of `job` (directly or not) go back to `created`.
    fn reset_skipped(&mut self, pipeline_id: u64, job: u64) {
        let ids = self.latest_jobs(pipeline_id);
        let needs = self.needs(pipeline_id, &ids);
        let mut after: HashSet<usize> = ids.iter().position(|i| *i == job).into_iter().collect();
        loop {
            let before = after.len();
            for (i, n) in needs.iter().enumerate() {
                if n.iter().any(|x| after.contains(x)) {
                    after.insert(i);
                }
            }
            if after.len() == before {
                break;
            }
        }
        for i in after {
            let j = self.jobs.get_mut(&ids[i]).expect("listed job");
            if j.status == JobStatus::Skipped {
                j.status = JobStatus::Created;
                j.started_at = None;
                j.finished_at = None;
            }
        }
    }

    /// Retries the pipeline's failed and canceled jobs; the pipeline keeps its id.
    pub(crate) fn retry_pipeline(&mut self, pipeline_id: u64) -> Result<(), Refusal> {
        let failed: Vec<u64> = self
            .latest_jobs(pipeline_id)
            .into_iter()
            .filter(|id| {
                matches!(
                    self.jobs[id].status,
                    JobStatus::Failed | JobStatus::Canceled
                )
            })
            .collect();
        if failed.is_empty() {
            return Err(refusal(403, "403 Forbidden"));
        }
        for id in failed {
            self.retry_job(id)?;
        }
        Ok(())
    }

    /// Cancels the pipeline's unfinished jobs.
    pub(crate) fn cancel(&mut self, pipeline_id: u64) {
        let now = OffsetDateTime::now_utc();
        for id in self.latest_jobs(pipeline_id) {
            let j = self.jobs.get_mut(&id).expect("listed job");
            if !j.status.finished() {
                j.status = JobStatus::Canceled;
                j.finished_at = Some(now);
                j.until = None;
            }
        }
        self.update_status(pipeline_id);
    }

    /// How many times a job of this name was retried in its pipeline.
    pub fn retries_count(&self, job: &Job) -> usize {
        self.pipelines[&job.pipeline_id]
            .jobs
            .iter()
            .filter(|id| self.jobs[id].name == job.name && self.jobs[id].retried)
            .count()
    }
}

impl Model for GitlabState {
    fn advance(&mut self, now: Instant) -> Advance {
        let mut adv = Advance::default();
        let ids: Vec<u64> = self.pipelines.keys().copied().collect();
        for id in ids {
            self.advance_pipeline(id, now, &mut adv);
        }
        adv
    }
}

impl GitlabState {
    fn advance_pipeline(&mut self, pipeline_id: u64, now: Instant, adv: &mut Advance) {
        let wall = OffsetDateTime::now_utc();
        let ids = self.latest_jobs(pipeline_id);
        let needs = self.needs(pipeline_id, &ids);
        let phases: Vec<Phase> = ids.iter().map(|id| self.jobs[id].phase()).collect();
        let steps = graph::due(&phases, &needs, now);
        for step in &steps {
            let id = match *step {
                Step::Start(i) => self.start_job(ids[i], now, wall),
                Step::Finish(i, _) => self.finish_job(ids[i], None, wall),
                Step::Skip(i) => self.finish_job(ids[i], Some(JobStatus::Skipped), wall),
            };
            adv.deliveries.push(payload::job_hook(self, id));
        }
        let phases: Vec<Phase> = ids.iter().map(|id| self.jobs[id].phase()).collect();
        adv.due(graph::next_deadline(&phases));
        let status = self.update_status(pipeline_id);
        if self.hooked.get(&pipeline_id) != Some(&status) {
            self.hooked.insert(pipeline_id, status);
            adv.deliveries
                .push(payload::pipeline_hook(self, pipeline_id));
        }
    }

    /// Sets the pipeline's status from its current jobs: `running` while one is unfinished;
    /// then `failed` if one failed, `canceled` if one was canceled, else `success`.
    pub(crate) fn update_status(&mut self, pipeline_id: u64) -> String {
        let wall = OffsetDateTime::now_utc();
        let ids = self.latest_jobs(pipeline_id);
        let st: Vec<JobStatus> = ids.iter().map(|id| self.jobs[id].status).collect();
        let s = if st.iter().any(|s| !s.finished()) {
            "running"
        } else if st.contains(&JobStatus::Failed) {
            "failed"
        } else if st.contains(&JobStatus::Canceled) {
            "canceled"
        } else {
            "success"
        };
        let p = self.pipelines.get_mut(&pipeline_id).expect("pipeline");
        if p.status != s {
            p.status = s.to_string();
            p.updated_at = wall;
            if s == "running" {
                p.started_at.get_or_insert(wall);
                p.finished_at = None;
            } else {
                p.finished_at = Some(wall);
            }
        }
        s.to_string()
    }

    fn start_job(&mut self, id: u64, now: Instant, wall: OffsetDateTime) -> u64 {
        let project = self.pipelines[&self.jobs[&id].pipeline_id].project.clone();
        let runner = self.pick_runner(&project);
        let job = self.jobs.get_mut(&id).expect("listed job");
        job.runner = runner;
        let script = self.pipelines[&job.pipeline_id].script;
        let s = &mut self.scripts[script];
        let outcome = s.next_outcome(&job.name);
        let duration = s
            .spec
            .job_spec(&job.name)
            .map(|j| j.duration)
            .unwrap_or_default();
        job.status = JobStatus::Running;
        job.started_at = Some(wall);
        job.log = outcome.log;
        job.until = Some((now + duration, outcome.success, outcome.reason));
        id
    }

    /// Ends a running job with its planned outcome, or skips it (`to`).
    fn finish_job(&mut self, id: u64, to: Option<JobStatus>, wall: OffsetDateTime) -> u64 {
        let job = self.jobs.get_mut(&id).expect("listed job");
        let planned = job.until.take();
        job.status = match (to, &planned) {
            (Some(s), _) => s,
            (None, Some((_, true, _))) => JobStatus::Success,
            (None, _) => JobStatus::Failed,
        };
        if job.status == JobStatus::Failed {
            let reason = planned.and_then(|p| p.2);
            job.failure_reason = Some(reason.unwrap_or_else(|| "script_failure".into()));
        }
        job.finished_at = Some(wall);
        id
    }
}

// Past pipelines for a history (`pipeguard import`), played out at once.
impl GitlabState {
    /// A finished pipeline created at `created_at`, its jobs played out at once (no
    /// deliveries): while it has failed, a person retries it the next of `retries` later.
    pub(crate) fn past_pipeline(
        &mut self,
        spec: RunSpec,
        created_at: OffsetDateTime,
        retries: &[Duration],
    ) -> u64 {
        let branch = spec.branch.clone();
        let script = self.define(spec);
        let id = self.new_pipeline(script, &branch, "push", Vec::new());
        self.pipelines.get_mut(&id).expect("new").created_at = created_at;
        self.play_at_once(id, created_at);
        for gap in retries {
            if self.retry_past(id, *gap).is_err() {
                break;
            }
        }
        id
    }

    /// A person retries the past pipeline's failed jobs `gap` after it ended; played out at
    /// once. Refused when no job failed.
    pub(crate) fn retry_past(&mut self, id: u64, gap: Duration) -> Result<(), Refusal> {
        let ended = self.pipelines[&id].finished_at;
        self.retry_pipeline(id)?;
        self.play_at_once(id, ended.unwrap_or_else(OffsetDateTime::now_utc) + gap);
        Ok(())
    }

    /// Runs the pipeline's unfinished jobs from `start`, each after those it waits for, with
    /// the script's next outcomes. Returns when the pipeline ended.
    fn play_at_once(&mut self, id: u64, start: OffsetDateTime) -> OffsetDateTime {
        let ids = self.latest_jobs(id);
        let needs = self.needs(id, &ids);
        let mut end = start;
        for _ in 0..ids.len() {
            for (i, job) in ids.iter().enumerate() {
                if self.jobs[job].status.finished() {
                    continue;
                }
                let before: Vec<&Job> = needs[i].iter().map(|k| &self.jobs[&ids[*k]]).collect();
                if before.iter().any(|j| !j.status.finished()) {
                    continue;
                }
                let blocked = before.iter().any(|j| j.status != JobStatus::Success);
                let from = before.iter().filter_map(|j| j.finished_at).max();
                let done = self.play_job(*job, from.unwrap_or(start).max(start), blocked);
                end = end.max(done);
            }
        }
        let status = self.update_status(id);
        // Nothing to announce: the history is in the past.
        self.hooked.insert(id, status);
        let p = self.pipelines.get_mut(&id).expect("pipeline");
        p.started_at.get_or_insert(start);
        p.finished_at = Some(end);
        p.updated_at = end;
        end
    }

    fn play_job(&mut self, id: u64, from: OffsetDateTime, skip: bool) -> OffsetDateTime {
        let script = self.pipelines[&self.jobs[&id].pipeline_id].script;
        let name = self.jobs[&id].name.clone();
        let s = &mut self.scripts[script];
        let took = s.spec.job_spec(&name).map(|j| j.duration);
        let outcome = (!skip).then(|| s.next_outcome(&name));
        let job = self.jobs.get_mut(&id).expect("listed job");
        let done = from + took.filter(|_| !skip).unwrap_or_default();
        job.created_at = from;
        job.started_at = (!skip).then_some(from);
        job.finished_at = Some(done);
        job.status = match &outcome {
            None => JobStatus::Skipped,
            Some(o) if o.success => JobStatus::Success,
            Some(_) => JobStatus::Failed,
        };
        if let Some(o) = outcome {
            if !o.success {
                job.failure_reason = Some(o.reason.unwrap_or_else(|| "script_failure".into()));
            }
            job.log = o.log;
        }
        done
    }
}
