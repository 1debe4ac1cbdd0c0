//! CircleCI's state: projects, pipelines, workflows and jobs. A rerun is a new workflow (new
//! id, same name, same pipeline) in which the chosen jobs and their dependents run again and
//! the others are carried over.

use super::payload;
use super::CircleciConfig;
use crate::core::graph::{self, End, Phase, Step};
use crate::core::scenario::{RunSpec, Script};
use crate::core::sim::{Advance, Model};
use serde_json::Value;
use std::collections::BTreeMap;
use time::OffsetDateTime;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Project {
    /// `gh/org/repo`.
    pub slug: String,
    pub id: String,
    /// Workflow name → its script.
    pub(crate) workflows: BTreeMap<String, usize>,
    pub(crate) next_job_number: u64,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub id: String,
    pub number: u64,
    pub project: String,
    pub branch: String,
    pub revision: String,
    pub parameters: BTreeMap<String, Value>,
    /// `webhook` (a push) or `api`.
    pub trigger: String,
    pub created_at: OffsetDateTime,
    /// Its workflows, reruns included, oldest first.
    pub workflows: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Workflow {
    pub id: String,
    pub name: String,
    pub pipeline_id: String,
    /// `running`, `failing`, `success`, `failed`.
    pub status: String,
    pub created_at: OffsetDateTime,
    pub stopped_at: Option<OffsetDateTime>,
    /// The workflow this one reruns.
    pub rerun_of: Option<String>,
    /// Its jobs in the config's order: those it runs and those carried over.
    pub jobs: Vec<String>,
    pub(crate) script: usize,
}

impl Workflow {
    pub fn terminal(&self) -> bool {
        !matches!(self.status.as_str(), "running" | "failing" | "on_hold")
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub name: String,
    /// Given when the job starts.
    pub job_number: Option<u64>,
    /// The workflow the job ran in.
    pub workflow_id: String,
    pub phase: Phase,
    pub started_at: Option<OffsetDateTime>,
    pub stopped_at: Option<OffsetDateTime>,
    pub log: String,
}

impl Job {
    /// The v2 API's status: jobs waiting on, or blocked by, their requirements are `blocked`.
    pub fn status(&self) -> &'static str {
        match self.phase {
            Phase::Waiting | Phase::Done(End::Skipped) => "blocked",
            Phase::Running { .. } => "running",
            Phase::Done(End::Success) => "success",
            Phase::Done(End::Failure) => "failed",
        }
    }
}

/// Why CircleCI refused a call: HTTP status and `message`.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

pub(crate) fn refusal(status: u16, message: &str) -> Refusal {
    Refusal {
        status,
        message: message.to_string(),
    }
}

/// What a rerun runs again.
#[derive(Debug, Clone, PartialEq)]
pub enum Rerun {
    All,
    FromFailed,
    Jobs(Vec<String>),
}

pub struct CircleciState {
    pub config: CircleciConfig,
    pub projects: Vec<Project>,
    pub pipelines: BTreeMap<String, Pipeline>,
    pub workflows: BTreeMap<String, Workflow>,
    pub jobs: BTreeMap<String, Job>,
    pub(crate) scripts: Vec<Script>,
    pub(crate) base_url: String,
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `gh/o/r`, `github/o/r` → `gh/o/r`.
pub fn short_slug(slug: &str) -> String {
    match slug.split_once('/') {
        Some(("github", rest)) => format!("gh/{rest}"),
        Some(("bitbucket", rest)) => format!("bb/{rest}"),
        _ => slug.to_string(),
    }
}

impl CircleciState {
    pub(crate) fn new(config: CircleciConfig, base_url: &str) -> CircleciState {
        CircleciState {
            config,
            projects: Vec::new(),
            pipelines: BTreeMap::new(),
            workflows: BTreeMap::new(),
            jobs: BTreeMap::new(),
            scripts: Vec::new(),
            base_url: base_url.to_string(),
        }
    }

    pub fn project(&self, slug: &str) -> Option<&Project> {
        let slug = short_slug(slug);
        self.projects.iter().find(|p| p.slug == slug)
    }

    /// Makes `spec` the project's workflow `spec.workflow` (fresh execution counts).
    pub(crate) fn define(&mut self, spec: RunSpec) -> usize {
        let slug = short_slug(&spec.repo);
        let name = spec.workflow.clone();
        self.scripts.push(Script::new(spec));
        let script = self.scripts.len() - 1;
        if self.project(&slug).is_none() {
            self.projects.push(Project {
                slug: slug.clone(),
                id: uuid(),
                workflows: BTreeMap::new(),
                next_job_number: 1,
            });
        }
        let p = self
            .projects
            .iter_mut()
            .find(|p| p.slug == slug)
            .expect("added");
        p.workflows.insert(name, script);
        script
    }

    /// A new pipeline running `scripts`' workflows. Returns its id.
    pub(crate) fn new_pipeline(
        &mut self,
        slug: &str,
        branch: &str,
        trigger: &str,
        parameters: BTreeMap<String, Value>,
        scripts: &[usize],
    ) -> String {
        let slug = short_slug(slug);
        let number = 1 + self
            .pipelines
            .values()
            .filter(|p| p.project == slug)
            .count() as u64;
        let id = uuid();
        let revision = scripts
            .first()
            .map(|s| self.scripts[*s].spec.sha.clone())
            .unwrap_or_default();
        let workflows = scripts
            .iter()
            .map(|s| {
                let names = self.scripts[*s].spec.jobs.iter().map(|j| j.name.clone());
                let names: Vec<String> = names.collect();
                let wf = uuid();
                let jobs = names.iter().map(|n| self.new_job(n, &wf)).collect();
                let name = self.scripts[*s].spec.workflow.clone();
                self.insert_workflow(&wf, &name, &id, None, jobs, *s);
                wf
            })
            .collect();
        self.pipelines.insert(
            id.clone(),
            Pipeline {
                id: id.clone(),
                number,
                project: slug,
                branch: branch.to_string(),
                revision,
                parameters,
                trigger: trigger.to_string(),
                created_at: OffsetDateTime::now_utc(),
                workflows,
            },
        );
        id
    }

    fn new_job(&mut self, name: &str, workflow_id: &str) -> String {
        let id = uuid();
        self.jobs.insert(
            id.clone(),
            Job {
                id: id.clone(),
                name: name.to_string(),
                job_number: None,
                workflow_id: workflow_id.to_string(),
                phase: Phase::Waiting,
                started_at: None,
                stopped_at: None,
                log: String::new(),
            },
        );
        id
    }

    fn insert_workflow(
        &mut self,
        id: &str,
        name: &str,
        pipeline: &str,
        rerun_of: Option<String>,
        jobs: Vec<String>,
        script: usize,
    ) {
        self.workflows.insert(
            id.to_string(),
            Workflow {
                id: id.to_string(),
                name: name.to_string(),
                pipeline_id: pipeline.to_string(),
                status: "running".into(),
                created_at: OffsetDateTime::now_utc(),
                stopped_at: None,
                rerun_of,
                jobs,
                script,
            },
        );
    }

    /// Reruns a finished workflow as a new one. Returns the new workflow's id.
    pub(crate) fn rerun(&mut self, workflow_id: &str, which: Rerun) -> Result<String, Refusal> {
        let wf = self
            .workflows
            .get(workflow_id)
            .ok_or_else(|| refusal(404, "Workflow not found"))?;
        if !wf.terminal() {
            return Err(refusal(
                400,
                "Workflow must be in a terminal state to be rerun",
            ));
        }
        let chosen: Vec<String> = match &which {
            Rerun::All => wf.jobs.iter().map(|j| self.jobs[j].name.clone()).collect(),
            Rerun::FromFailed => wf
                .jobs
                .iter()
                .filter(|j| self.jobs[*j].phase == Phase::Done(End::Failure))
                .map(|j| self.jobs[j].name.clone())
                .collect(),
            Rerun::Jobs(ids) => {
                if ids.iter().any(|id| !wf.jobs.contains(id)) {
                    return Err(refusal(400, "Job ids must belong to the workflow"));
                }
                ids.iter().map(|id| self.jobs[id].name.clone()).collect()
            }
        };
        if chosen.is_empty() {
            return Err(refusal(400, "There are no failed jobs to rerun"));
        }
        let (name, pipeline, script) = (wf.name.clone(), wf.pipeline_id.clone(), wf.script);
        let old: Vec<String> = wf.jobs.clone();
        let again = self.scripts[script].spec.with_dependents(&chosen);
        let new_id = uuid();
        let jobs = old
            .iter()
            .map(|j| {
                let n = self.jobs[j].name.clone();
                if again.contains(&n) {
                    self.new_job(&n, &new_id)
                } else {
                    j.clone()
                }
            })
            .collect();
        self.insert_workflow(
            &new_id,
            &name,
            &pipeline,
            Some(workflow_id.to_string()),
            jobs,
            script,
        );
        let p = self
            .pipelines
            .get_mut(&pipeline)
            .expect("workflow's pipeline");
        p.workflows.push(new_id.clone());
        Ok(new_id)
    }
}

impl Model for CircleciState {
    fn advance(&mut self, now: Instant) -> Advance {
        let mut adv = Advance::default();
        let running: Vec<String> = self
            .workflows
            .values()
            .filter(|w| !w.terminal())
            .map(|w| w.id.clone())
            .collect();
        for id in running {
            self.advance_workflow(&id, now, &mut adv);
        }
        adv
    }
}

impl CircleciState {
    fn advance_workflow(&mut self, wf_id: &str, now: Instant, adv: &mut Advance) {
        let wall = OffsetDateTime::now_utc();
        let (ids, script) = {
            let w = &self.workflows[wf_id];
            (w.jobs.clone(), w.script)
        };
        let spec = &self.scripts[script].spec;
        let names: Vec<String> = ids.iter().map(|j| self.jobs[j].name.clone()).collect();
        let needs: Vec<Vec<usize>> = names
            .iter()
            .map(|n| {
                let deps = spec
                    .job_spec(n)
                    .map(|j| j.needs.clone())
                    .unwrap_or_default();
                deps.iter()
                    .filter_map(|d| names.iter().position(|x| x == d))
                    .collect()
            })
            .collect();
        let phases: Vec<Phase> = ids.iter().map(|j| self.jobs[j].phase).collect();
        for step in graph::due(&phases, &needs, now) {
            match step {
                Step::Start(i) => self.start_job(&ids[i], script, now, wall),
                Step::Finish(i, end) => {
                    self.end_job(&ids[i], end, wall);
                    adv.deliveries
                        .push(payload::job_completed(self, wf_id, &ids[i]));
                }
                Step::Skip(i) => self.end_job(&ids[i], End::Skipped, wall),
            }
        }
        let phases: Vec<Phase> = ids.iter().map(|j| self.jobs[j].phase).collect();
        adv.due(graph::next_deadline(&phases));
        let failing = phases.contains(&Phase::Done(End::Failure));
        let done = phases.iter().all(|p| matches!(p, Phase::Done(_)));
        let w = self.workflows.get_mut(wf_id).expect("workflow");
        w.status = match (done, failing) {
            (true, true) => "failed",
            (true, false) => "success",
            (false, true) => "failing",
            (false, false) => "running",
        }
        .into();
        if done {
            w.stopped_at = Some(wall);
            adv.deliveries
                .push(payload::workflow_completed(self, wf_id));
        }
    }

    fn start_job(&mut self, id: &str, script: usize, now: Instant, wall: OffsetDateTime) {
        let job = self.jobs.get_mut(id).expect("listed job");
        let s = &mut self.scripts[script];
        let outcome = s.next_outcome(&job.name);
        let d = s
            .spec
            .job_spec(&job.name)
            .map(|j| j.duration)
            .unwrap_or_default();
        let slug = short_slug(&s.spec.repo);
        let p = self
            .projects
            .iter_mut()
            .find(|p| p.slug == slug)
            .expect("project");
        job.job_number = Some(p.next_job_number);
        p.next_job_number += 1;
        job.phase = Phase::Running {
            until: now + d,
            success: outcome.success,
        };
        job.started_at = Some(wall);
        job.log = outcome.log;
    }

    fn end_job(&mut self, id: &str, end: End, wall: OffsetDateTime) {
        let job = self.jobs.get_mut(id).expect("listed job");
        job.phase = Phase::Done(end);
        if end != End::Skipped {
            job.stopped_at = Some(wall);
        }
    }
}
