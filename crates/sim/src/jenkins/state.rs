//! Jenkins' state: jobs, the build queue and builds. A trigger makes a queue item; after the
//! quiet period, and once the job's running build is done (no concurrent builds), the item
//! becomes the job's next build. Whose build finishes first is whoever's started first.

use super::payload;
use super::JenkinsConfig;
use crate::core::graph::{self, End, Phase, Step};
use crate::core::scenario::{RunSpec, Script};
use crate::core::sim::{Advance, Model};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct JobDef {
    /// Full name: `folder/job`.
    pub path: String,
    /// Declared parameters and their defaults; others sent with a build are dropped.
    pub parameters: BTreeMap<String, String>,
    pub next_build: u64,
    pub(crate) script: usize,
}

#[derive(Debug, Clone)]
pub struct QueueItem {
    pub id: u64,
    pub job: String,
    pub parameters: BTreeMap<String, String>,
    /// Parameters sent but not declared by the job (Jenkins drops them).
    pub dropped: Vec<String>,
    pub cause: String,
    pub queued_at: OffsetDateTime,
    /// The build this item became, once it left the queue.
    pub build: Option<u64>,
    pub(crate) ready_at: Instant,
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub phase: Phase,
    pub log: String,
}

#[derive(Debug, Clone)]
pub struct Build {
    pub job: String,
    pub number: u64,
    pub queue_id: u64,
    pub parameters: BTreeMap<String, String>,
    pub cause: String,
    pub building: bool,
    /// `SUCCESS` or `FAILURE` once done.
    pub result: Option<String>,
    pub timestamp: OffsetDateTime,
    pub duration_ms: i64,
    pub stages: Vec<Stage>,
}

pub struct JenkinsState {
    pub config: JenkinsConfig,
    pub jobs: BTreeMap<String, JobDef>,
    pub queue: BTreeMap<u64, QueueItem>,
    /// Builds by job, then number.
    pub builds: BTreeMap<(String, u64), Build>,
    pub(crate) scripts: Vec<Script>,
    pub(crate) base_url: String,
    next_queue_id: u64,
}

impl JenkinsState {
    pub(crate) fn new(config: JenkinsConfig, base_url: &str) -> JenkinsState {
        JenkinsState {
            config,
            jobs: BTreeMap::new(),
            queue: BTreeMap::new(),
            builds: BTreeMap::new(),
            scripts: Vec::new(),
            base_url: base_url.to_string(),
            next_queue_id: 100,
        }
    }

    /// Defines (or redefines) the job `spec.repo`: its stages are the spec's jobs, its
    /// parameters the spec's. Build numbers go on.
    pub(crate) fn define(&mut self, spec: RunSpec) {
        self.scripts.push(Script::new(spec.clone()));
        let script = self.scripts.len() - 1;
        let next_build = self.jobs.get(&spec.repo).map_or(1, |j| j.next_build);
        self.jobs.insert(
            spec.repo.clone(),
            JobDef {
                path: spec.repo.clone(),
                parameters: spec.parameters.clone(),
                next_build,
                script,
            },
        );
    }

    /// Queues a build of `job`: declared parameters take the given values or their defaults,
    /// undeclared ones are dropped. Returns the queue item id.
    pub(crate) fn enqueue(
        &mut self,
        job: &str,
        given: Vec<(String, String)>,
        cause: &str,
        now: Instant,
    ) -> Option<u64> {
        let def = self.jobs.get(job)?;
        let mut parameters = def.parameters.clone();
        let mut dropped = Vec::new();
        for (k, v) in given {
            match parameters.get_mut(&k) {
                Some(slot) => *slot = v,
                None => dropped.push(k),
            }
        }
        self.next_queue_id += 1;
        let id = self.next_queue_id;
        self.queue.insert(
            id,
            QueueItem {
                id,
                job: job.to_string(),
                parameters,
                dropped,
                cause: cause.to_string(),
                queued_at: OffsetDateTime::now_utc(),
                build: None,
                ready_at: now + self.config.quiet_period,
            },
        );
        Some(id)
    }

    pub fn last_build(&self, job: &str) -> Option<&Build> {
        self.builds
            .range((job.to_string(), 0)..=(job.to_string(), u64::MAX))
            .next_back()
            .map(|(_, b)| b)
    }

    /// Why a waiting item has not started, as the queue API says it.
    pub fn why(&self, item: &QueueItem, now: Instant) -> Option<String> {
        if item.build.is_some() {
            return None;
        }
        if now < item.ready_at {
            let left = (item.ready_at - now).as_secs_f64();
            return Some(format!("In the quiet period. Expires in {left:.1} sec"));
        }
        self.last_build(&item.job)
            .filter(|b| b.building)
            .map(|b| format!("Build #{} is already in progress", b.number))
    }
}

impl Model for JenkinsState {
    fn advance(&mut self, now: Instant) -> Advance {
        let mut adv = Advance::default();
        self.start_ready_items(now, &mut adv);
        let building: Vec<(String, u64)> = self
            .builds
            .iter()
            .filter(|(_, b)| b.building)
            .map(|(k, _)| k.clone())
            .collect();
        for key in building {
            self.advance_build(&key, now, &mut adv);
        }
        // A build that just finished lets the next queued one start.
        self.start_ready_items(now, &mut adv);
        adv
    }
}

impl JenkinsState {
    /// Items past their quiet period become builds, oldest first, one at a time per job.
    fn start_ready_items(&mut self, now: Instant, adv: &mut Advance) {
        let waiting: Vec<u64> = self
            .queue
            .values()
            .filter(|q| q.build.is_none())
            .map(|q| q.id)
            .collect();
        for id in waiting {
            let item = &self.queue[&id];
            if now < item.ready_at {
                adv.due(Some(item.ready_at));
                continue;
            }
            if self.last_build(&item.job).is_some_and(|b| b.building) {
                continue;
            }
            let key = self.start_build(id);
            adv.deliveries
                .push(payload::notification(self, &key, "STARTED"));
            self.advance_build(&key, now, adv);
        }
    }

    fn start_build(&mut self, queue_id: u64) -> (String, u64) {
        let item = self.queue[&queue_id].clone();
        let def = self.jobs.get_mut(&item.job).expect("queued job exists");
        let number = def.next_build;
        def.next_build += 1;
        let spec = &self.scripts[def.script].spec;
        let stages = spec
            .jobs
            .iter()
            .map(|j| Stage {
                name: j.name.clone(),
                phase: Phase::Waiting,
                log: String::new(),
            })
            .collect();
        let key = (item.job.clone(), number);
        self.builds.insert(
            key.clone(),
            Build {
                job: item.job,
                number,
                queue_id,
                parameters: item.parameters,
                cause: item.cause,
                building: true,
                result: None,
                timestamp: OffsetDateTime::now_utc(),
                duration_ms: 0,
                stages,
            },
        );
        self.queue.get_mut(&queue_id).expect("item").build = Some(number);
        key
    }

    fn advance_build(&mut self, key: &(String, u64), now: Instant, adv: &mut Advance) {
        let script = self.jobs[&key.0].script;
        let s = &mut self.scripts[script];
        let b = self.builds.get_mut(key).expect("building");
        let names: Vec<String> = b.stages.iter().map(|st| st.name.clone()).collect();
        let needs: Vec<Vec<usize>> = names
            .iter()
            .map(|n| {
                let deps = s
                    .spec
                    .job_spec(n)
                    .map(|j| j.needs.clone())
                    .unwrap_or_default();
                deps.iter()
                    .filter_map(|d| names.iter().position(|x| x == d))
                    .collect()
            })
            .collect();
        let phases: Vec<Phase> = b.stages.iter().map(|st| st.phase).collect();
        for step in graph::due(&phases, &needs, now) {
            match step {
                Step::Start(i) => {
                    let outcome = s.next_outcome(&names[i]);
                    let d = s
                        .spec
                        .job_spec(&names[i])
                        .map(|j| j.duration)
                        .unwrap_or_default();
                    b.stages[i].log = outcome.log;
                    b.stages[i].phase = Phase::Running {
                        until: now + d,
                        success: outcome.success,
                    };
                }
                Step::Finish(i, end) => b.stages[i].phase = Phase::Done(end),
                Step::Skip(i) => b.stages[i].phase = Phase::Done(End::Skipped),
            }
        }
        let phases: Vec<Phase> = b.stages.iter().map(|st| st.phase).collect();
        adv.due(graph::next_deadline(&phases));
        if phases.iter().all(|p| matches!(p, Phase::Done(_))) {
            let failed = phases.contains(&Phase::Done(End::Failure));
            b.building = false;
            b.result = Some(if failed { "FAILURE" } else { "SUCCESS" }.into());
            b.duration_ms =
                ((OffsetDateTime::now_utc() - b.timestamp).whole_milliseconds() as i64).max(1);
            adv.deliveries
                .push(payload::notification(self, key, "COMPLETED"));
            adv.deliveries
                .push(payload::notification(self, key, "FINALIZED"));
        }
    }
}
