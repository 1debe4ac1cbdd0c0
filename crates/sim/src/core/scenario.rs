//! Scenarios: what a run's jobs are, how long they take and how each of their executions ends.
//!
//! A job's outcomes are a script read one entry per execution of that job (its first run, its
//! first re-run…), whichever way the platform re-executes it: a new attempt, a retried job, a
//! rebuild, a new pipeline. The last entry repeats.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// How one execution of a job ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub success: bool,
    /// The job's log (its own lines; each platform frames it as its runner would).
    pub log: String,
    /// The platform's own failure reason where it has one (GitLab `failure_reason`, e.g.
    /// `runner_system_failure`); `None` means the platform's default for a failed script.
    pub reason: Option<String>,
}

impl Outcome {
    pub fn pass() -> Outcome {
        Outcome {
            success: true,
            log: "all good".into(),
            reason: None,
        }
    }

    pub fn fail(log: impl Into<String>) -> Outcome {
        Outcome {
            success: false,
            log: log.into(),
            reason: None,
        }
    }

    pub fn with_log(mut self, log: impl Into<String>) -> Outcome {
        self.log = log.into();
        self
    }

    pub fn with_reason(mut self, reason: impl Into<String>) -> Outcome {
        self.reason = Some(reason.into());
        self
    }
}

/// One job (GitLab job, GitHub job, CircleCI job, Jenkins stage).
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub name: String,
    /// Jobs that must succeed before this one starts (GitHub `needs`, GitLab `needs`, CircleCI
    /// `requires`, Jenkins stage order). A failed or skipped need skips this job.
    pub needs: Vec<String>,
    pub duration: Duration,
    /// GitLab stage (defaults to `test`).
    pub stage: Option<String>,
    /// Deployment environment (GitLab `environment:name`).
    pub environment: Option<String>,
    /// Outcome of each execution; the last repeats, none means every execution passes.
    pub outcomes: Vec<Outcome>,
}

impl JobSpec {
    /// A job that passes in 10 ms.
    pub fn new(name: impl Into<String>) -> JobSpec {
        JobSpec {
            name: name.into(),
            needs: Vec::new(),
            duration: Duration::from_millis(10),
            stage: None,
            environment: None,
            outcomes: Vec::new(),
        }
    }

    pub fn needs(mut self, names: &[&str]) -> JobSpec {
        self.needs.extend(names.iter().map(|n| n.to_string()));
        self
    }

    pub fn duration(mut self, d: Duration) -> JobSpec {
        self.duration = d;
        self
    }

    pub fn duration_ms(self, ms: u64) -> JobSpec {
        self.duration(Duration::from_millis(ms))
    }

    pub fn stage(mut self, stage: impl Into<String>) -> JobSpec {
        self.stage = Some(stage.into());
        self
    }

    pub fn environment(mut self, env: impl Into<String>) -> JobSpec {
        self.environment = Some(env.into());
        self
    }

    /// Appends the outcome of the next execution.
    pub fn then(mut self, outcome: Outcome) -> JobSpec {
        self.outcomes.push(outcome);
        self
    }

    /// The next execution fails with `log`.
    pub fn fails(self, log: impl Into<String>) -> JobSpec {
        self.then(Outcome::fail(log))
    }

    /// The next execution passes.
    pub fn passes(self) -> JobSpec {
        self.then(Outcome::pass())
    }

    /// The outcome of execution `n` (0 = the first).
    pub fn outcome(&self, n: usize) -> Outcome {
        self.outcomes
            .get(n)
            .or(self.outcomes.last())
            .cloned()
            .unwrap_or_else(Outcome::pass)
    }
}

/// A run to start: a GitHub workflow run, a GitLab pipeline, a CircleCI pipeline with one
/// workflow, a Jenkins build.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// `owner/repo` (GitHub), `group/project` (GitLab), `gh/org/repo` (CircleCI), the job's full
    /// name `folder/job` (Jenkins).
    pub repo: String,
    /// GitHub: the workflow file (`ci.yml`); CircleCI: the workflow name; GitLab and Jenkins:
    /// only shown.
    pub workflow: String,
    pub branch: String,
    pub sha: String,
    pub jobs: Vec<JobSpec>,
    /// How long ago the run started (GitHub refuses re-runs after 30 days).
    pub started_ago: Duration,
    /// Declared inputs/parameters with their defaults: GitHub `workflow_dispatch` inputs (others
    /// are refused), Jenkins build parameters (others are dropped), CircleCI pipeline parameters.
    pub parameters: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("the run has no jobs")]
    NoJobs,
    #[error("job {0:?} is defined twice")]
    Duplicate(String),
    #[error("job {job:?} needs {need:?}, which is not a job of the run")]
    UnknownNeed { job: String, need: String },
    #[error("the jobs' needs form a cycle through {0:?}")]
    Cycle(String),
    #[error("{0} is empty")]
    Empty(&'static str),
}

impl RunSpec {
    pub fn new(repo: impl Into<String>, workflow: impl Into<String>) -> RunSpec {
        RunSpec {
            repo: repo.into(),
            workflow: workflow.into(),
            branch: "main".into(),
            sha: "3f786850e387550fdab836ed7e6dc881de23001b".into(),
            jobs: Vec::new(),
            started_ago: Duration::ZERO,
            parameters: BTreeMap::new(),
        }
    }

    pub fn branch(mut self, b: impl Into<String>) -> RunSpec {
        self.branch = b.into();
        self
    }

    pub fn sha(mut self, s: impl Into<String>) -> RunSpec {
        self.sha = s.into();
        self
    }

    pub fn job(mut self, job: JobSpec) -> RunSpec {
        self.jobs.push(job);
        self
    }

    pub fn started_ago(mut self, d: Duration) -> RunSpec {
        self.started_ago = d;
        self
    }

    pub fn parameter(mut self, name: impl Into<String>, default: impl Into<String>) -> RunSpec {
        self.parameters.insert(name.into(), default.into());
        self
    }

    /// Checks names are unique and needs form a graph without cycles.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.repo.trim().is_empty() {
            return Err(SpecError::Empty("repo"));
        }
        if self.workflow.trim().is_empty() {
            return Err(SpecError::Empty("workflow"));
        }
        if self.jobs.is_empty() {
            return Err(SpecError::NoJobs);
        }
        let mut names = HashSet::new();
        for j in &self.jobs {
            if j.name.trim().is_empty() {
                return Err(SpecError::Empty("job name"));
            }
            if !names.insert(j.name.as_str()) {
                return Err(SpecError::Duplicate(j.name.clone()));
            }
        }
        for j in &self.jobs {
            if let Some(n) = j.needs.iter().find(|n| !names.contains(n.as_str())) {
                return Err(SpecError::UnknownNeed {
                    job: j.name.clone(),
                    need: n.clone(),
                });
            }
        }
        // Kahn's algorithm: whatever cannot be ordered is on a cycle.
        let mut left: Vec<&JobSpec> = self.jobs.iter().collect();
        let mut done: HashSet<&str> = HashSet::new();
        while !left.is_empty() {
            let before = left.len();
            left.retain(|j| {
                let ready = j.needs.iter().all(|n| done.contains(n.as_str()));
                if ready {
                    done.insert(j.name.as_str());
                }
                !ready
            });
            if left.len() == before {
                return Err(SpecError::Cycle(left[0].name.clone()));
            }
        }
        Ok(())
    }

    pub fn job_spec(&self, name: &str) -> Option<&JobSpec> {
        self.jobs.iter().find(|j| j.name == name)
    }

    /// `names` and every job that needs one of them, directly or not.
    pub fn with_dependents(&self, names: &[String]) -> HashSet<String> {
        let mut set: HashSet<String> = names.iter().cloned().collect();
        loop {
            let before = set.len();
            for j in &self.jobs {
                if j.needs.iter().any(|n| set.contains(n)) {
                    set.insert(j.name.clone());
                }
            }
            if set.len() == before {
                return set;
            }
        }
    }
}

/// A scenario being played: its spec and how often each job has executed so far.
#[derive(Debug, Clone)]
pub struct Script {
    pub spec: RunSpec,
    executions: HashMap<String, usize>,
}

impl Script {
    pub fn new(spec: RunSpec) -> Script {
        Script {
            spec,
            executions: HashMap::new(),
        }
    }

    /// The outcome of `job`'s next execution, counting it.
    pub fn next_outcome(&mut self, job: &str) -> Outcome {
        let n = self.executions.entry(job.to_string()).or_default();
        let outcome = self
            .spec
            .job_spec(job)
            .map(|j| j.outcome(*n))
            .unwrap_or_else(Outcome::pass);
        *n += 1;
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_script_and_the_last_repeats() {
        let spec = RunSpec::new("o/r", "ci.yml").job(JobSpec::new("t").fails("boom").passes());
        let mut s = Script::new(spec);
        assert!(!s.next_outcome("t").success);
        assert!(s.next_outcome("t").success);
        assert!(s.next_outcome("t").success);
    }

    #[test]
    fn invalid_specs_are_refused() {
        let base = || RunSpec::new("o/r", "ci.yml");
        assert_eq!(base().validate(), Err(SpecError::NoJobs));
        let dup = base().job(JobSpec::new("a")).job(JobSpec::new("a"));
        assert_eq!(dup.validate(), Err(SpecError::Duplicate("a".into())));
        let unknown = base().job(JobSpec::new("a").needs(&["b"]));
        assert!(matches!(
            unknown.validate(),
            Err(SpecError::UnknownNeed { .. })
        ));
        let cycle = base()
            .job(JobSpec::new("a").needs(&["b"]))
            .job(JobSpec::new("b").needs(&["a"]));
        assert!(matches!(cycle.validate(), Err(SpecError::Cycle(_))));
    }

    #[test]
    fn dependents_are_transitive() {
        let spec = RunSpec::new("o/r", "ci.yml")
            .job(JobSpec::new("build"))
            .job(JobSpec::new("test").needs(&["build"]))
            .job(JobSpec::new("deploy").needs(&["test"]))
            .job(JobSpec::new("lint"));
        let set = spec.with_dependents(&["build".into()]);
        assert_eq!(set.len(), 3);
        assert!(!set.contains("lint"));
    }
}
