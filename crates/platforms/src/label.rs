//! A session's run as its platform names it, for people: `#1003, retry 1` (a GitLab pipeline
//! retried once), `search-indexer #42` (a Jenkins build), `site.yml on web-3.internal: Back up
//! the orders database` (an Ansible task). The API's `run_label` and the dashboard show it.
//!
//! Each platform's wording is one row of [`naming`]; the stored ids and attempts stay as the
//! intake and worker need them (a Jenkins job path as the run, [`OUTCOME_ATTEMPT`] for an
//! outcome without an attempt of its own).

use crate::OUTCOME_ATTEMPT;
use pipeguard_core::event::Platform;

/// What a session knows of its run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunRef<'a> {
    pub platform: Option<Platform>,
    pub workflow: &'a str,
    /// The failed run.
    pub run_id: &'a str,
    /// The run being verified: a heal can start a new one (a bigger runner).
    pub current_run: &'a str,
    pub first_attempt: i64,
    pub current_attempt: i64,
    pub heal_attempts: i64,
}

/// How a platform counts the repeats of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Repeat {
    /// Attempts of the same run counted from 1, named from the second: "attempt 2".
    Attempt,
    /// Repeats in place counted from 0: "retry 1" (GitLab, Buildkite), "rerun 1" (CircleCI).
    InPlace(&'static str),
    /// Each repeat is a new build numbered by the attempt: "rebuilt as #43".
    NewBuild(&'static str),
    /// One report, never repeated (an Ansible task).
    Never,
}

struct Naming {
    /// The failed run's name.
    run: fn(&RunRef) -> String,
    repeat: Repeat,
    /// A run a heal started, by its id: "new pipeline #1010".
    new_run: fn(&str) -> String,
}

/// Each platform's words for its runs (from the platforms' own interfaces and documentation;
/// see each module's header for what a run and an attempt are there).
fn naming(p: Option<Platform>) -> Naming {
    use Platform as P;
    match p {
        Some(P::Github) => Naming {
            run: |r| named(r.workflow, format!("run {}", r.run_id)),
            repeat: Repeat::Attempt,
            new_run: |id| format!("new run {id}"),
        },
        Some(P::Gitlab) => Naming {
            run: |r| format!("#{}", r.run_id),
            repeat: Repeat::InPlace("retry"),
            new_run: |id| format!("new pipeline #{id}"),
        },
        Some(P::Circleci) => Naming {
            // `<pipeline id>/<workflow name>`: the workflow, in a pipeline shown by its id's start.
            run: |r| {
                let (pipeline, workflow) = r.run_id.split_once('/').unwrap_or((r.run_id, ""));
                let workflow = if workflow.is_empty() {
                    r.workflow
                } else {
                    workflow
                };
                named(workflow, format!("in pipeline {}", short(pipeline)))
            },
            repeat: Repeat::InPlace("rerun"),
            new_run: |id| format!("new pipeline {}", short(id.split('/').next().unwrap_or(id))),
        },
        Some(P::Buildkite) => Naming {
            run: |r| format!("build #{}", r.run_id),
            repeat: Repeat::InPlace("retry"),
            new_run: |id| format!("new build #{id}"),
        },
        Some(P::Azure) => Naming {
            run: |r| named(r.workflow, format!("run {}", r.run_id)),
            repeat: Repeat::Attempt,
            new_run: |id| format!("new run {id}"),
        },
        // The run is the job's full path and the attempt its build number.
        Some(P::Jenkins) => Naming {
            run: |r| {
                let job = r.run_id.rsplit('/').next().unwrap_or(r.run_id);
                format!("{job} #{}", r.first_attempt)
            },
            repeat: Repeat::NewBuild("#"),
            new_run: |id| format!("new job {id}"),
        },
        // The repository and workflow are the builder; the attempt is the build number.
        Some(P::Buildbot) => Naming {
            run: |r| named(r.workflow, format!("#{}", r.first_attempt)),
            repeat: Repeat::NewBuild("#"),
            new_run: |id| format!("new build {id}"),
        },
        // The run is the revision built; the attempt is the build id.
        Some(P::Teamcity) => Naming {
            run: |r| named(r.workflow, format!("build {}", r.first_attempt)),
            repeat: Repeat::NewBuild("build "),
            new_run: |rev| format!("new revision {}", short(rev)),
        },
        // `<host>/<task>/<report digest>`; the task may hold slashes, the host and digest do not.
        Some(P::Ansible) => Naming {
            run: |r| {
                let playbook = r.workflow.rsplit('/').next().unwrap_or(r.workflow);
                match r.run_id.split_once('/') {
                    Some((host, rest)) => {
                        let task = rest.rsplit_once('/').map_or(rest, |(t, _)| t);
                        format!("{playbook} on {host}: {task}")
                    }
                    None => named(playbook, r.run_id.to_string()),
                }
            },
            repeat: Repeat::Never,
            new_run: |id| format!("new report {id}"),
        },
        // `<job>#<build>`, the build possibly empty.
        Some(P::Generic | P::Command) | None => Naming {
            run: |r| match r.run_id.split_once('#') {
                Some((job, "")) => job.to_string(),
                Some((job, build)) => format!("{job} #{build}"),
                None => named(r.workflow, format!("run {}", r.run_id)),
            },
            repeat: Repeat::Attempt,
            new_run: |id| format!("new run {id}"),
        },
    }
}

/// "CI run 123", or "run 123" without a workflow name.
fn named(workflow: &str, what: String) -> String {
    if workflow.is_empty() {
        what
    } else {
        format!("{workflow} {what}")
    }
}

/// A long id (a UUID, a commit) by its first eight characters.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// The attempt as the platform counts it. An outcome reported without an attempt of its own
/// ([`OUTCOME_ATTEMPT`]) is the attempt after the heals: the first plus one per heal.
pub fn attempt(r: &RunRef) -> i64 {
    if r.current_attempt >= i64::from(OUTCOME_ATTEMPT) {
        r.first_attempt + r.heal_attempts
    } else {
        r.current_attempt
    }
}

/// The run and its repeats as the platform names them.
pub fn run_label(r: &RunRef) -> String {
    let n = naming(r.platform);
    let run = (n.run)(r);
    if !r.current_run.is_empty() && r.current_run != r.run_id && n.repeat != Repeat::Never {
        return format!("{run}, {}", (n.new_run)(r.current_run));
    }
    let attempt = attempt(r);
    match n.repeat {
        Repeat::Attempt if attempt > 1 => format!("{run}, attempt {attempt}"),
        Repeat::InPlace(noun) if attempt > 1 => format!("{run}, {noun} {}", attempt - 1),
        Repeat::NewBuild(prefix) if attempt != r.first_attempt => {
            format!("{run}, rebuilt as {prefix}{attempt}")
        }
        _ => run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<'a>(p: Platform, workflow: &'a str, id: &'a str, attempts: (i64, i64, i64)) -> String {
        run_label(&RunRef {
            platform: Some(p),
            workflow,
            run_id: id,
            current_run: id,
            first_attempt: attempts.0,
            current_attempt: attempts.1,
            heal_attempts: attempts.2,
        })
    }

    const HEALED: i64 = OUTCOME_ATTEMPT as i64;

    #[test]
    fn github_names_the_workflow_run_and_its_attempt() {
        assert_eq!(run(Platform::Github, "CI", "123", (1, 1, 0)), "CI run 123");
        assert_eq!(
            run(Platform::Github, "CI", "123", (1, 2, 1)),
            "CI run 123, attempt 2"
        );
        assert_eq!(
            run(Platform::Github, "", "123", (2, 3, 1)),
            "run 123, attempt 3"
        );
    }

    #[test]
    fn gitlab_counts_retries_of_a_pipeline_never_the_outcome_stand_in() {
        assert_eq!(run(Platform::Gitlab, "main", "1003", (1, 1, 0)), "#1003");
        assert_eq!(
            run(Platform::Gitlab, "main", "1003", (1, 2, 1)),
            "#1003, retry 1"
        );
        // A passed pipeline reports OUTCOME_ATTEMPT: one heal made it retry 1.
        assert_eq!(
            run(Platform::Gitlab, "main", "1003", (1, HEALED, 1)),
            "#1003, retry 1"
        );
        assert_eq!(
            run(Platform::Gitlab, "main", "1003", (2, HEALED, 2)),
            "#1003, retry 3"
        );
    }

    #[test]
    fn circleci_names_the_workflow_in_its_pipeline_and_counts_reruns() {
        let id = "5034460f-c7c4-4c43-9457-de07e2029e7b/build-and-test";
        assert_eq!(
            run(Platform::Circleci, "build-and-test", id, (1, 1, 0)),
            "build-and-test in pipeline 5034460f"
        );
        assert_eq!(
            run(Platform::Circleci, "build-and-test", id, (1, HEALED, 1)),
            "build-and-test in pipeline 5034460f, rerun 1"
        );
    }

    #[test]
    fn jenkins_names_the_job_and_build_number_and_the_rebuild() {
        let job = "acme/search-indexer";
        assert_eq!(
            run(Platform::Jenkins, job, job, (42, 42, 0)),
            "search-indexer #42"
        );
        assert_eq!(
            run(Platform::Jenkins, job, job, (42, 43, 1)),
            "search-indexer #42, rebuilt as #43"
        );
    }

    #[test]
    fn ansible_names_the_playbook_host_and_task() {
        let id = "web-3.internal/Back up the orders database/774de885bc83";
        assert_eq!(
            run(Platform::Ansible, "playbooks/site.yml", id, (1, 1, 0)),
            "site.yml on web-3.internal: Back up the orders database"
        );
        // A task name with a slash keeps it.
        let id = "db-1/Copy /etc/hosts/0123456789ab";
        assert_eq!(
            run(Platform::Ansible, "site.yml", id, (1, 1, 0)),
            "site.yml on db-1: Copy /etc/hosts"
        );
    }

    #[test]
    fn buildkite_names_the_build_and_its_job_retries() {
        assert_eq!(
            run(Platform::Buildkite, "Shop", "42", (1, 1, 0)),
            "build #42"
        );
        assert_eq!(
            run(Platform::Buildkite, "Shop", "42", (1, 2, 1)),
            "build #42, retry 1"
        );
        assert_eq!(
            run(Platform::Buildkite, "Shop", "42", (1, HEALED, 1)),
            "build #42, retry 1"
        );
    }

    #[test]
    fn azure_names_the_pipeline_run_and_its_attempt() {
        assert_eq!(
            run(Platform::Azure, "shop-ci", "2727068", (1, 1, 0)),
            "shop-ci run 2727068"
        );
        assert_eq!(
            run(Platform::Azure, "shop-ci", "2727068", (1, HEALED, 1)),
            "shop-ci run 2727068, attempt 2"
        );
    }

    #[test]
    fn teamcity_names_the_configuration_and_build_ids() {
        let rev = "0bbf3b1e5b2f6f0c0d2a3b4c5d6e7f8091a2b3c4";
        assert_eq!(
            run(Platform::Teamcity, "Build", rev, (8134, 8134, 0)),
            "Build build 8134"
        );
        assert_eq!(
            run(Platform::Teamcity, "Build", rev, (8134, 8140, 1)),
            "Build build 8134, rebuilt as build 8140"
        );
    }

    #[test]
    fn buildbot_names_the_builder_and_build_numbers() {
        assert_eq!(
            run(Platform::Buildbot, "runtests", "17", (12, 12, 0)),
            "runtests #12"
        );
        assert_eq!(
            run(Platform::Buildbot, "runtests", "17", (12, 13, 1)),
            "runtests #12, rebuilt as #13"
        );
    }

    #[test]
    fn generic_names_the_job_and_build() {
        assert_eq!(
            run(Platform::Generic, "nightly", "nightly#17", (1, 1, 0)),
            "nightly #17"
        );
        assert_eq!(
            run(Platform::Generic, "nightly", "nightly#", (1, 1, 0)),
            "nightly"
        );
        assert_eq!(run(Platform::Command, "", "local", (1, 1, 0)), "run local");
    }

    #[test]
    fn a_run_the_heal_started_is_named_after_the_failed_one() {
        let r = RunRef {
            platform: Some(Platform::Gitlab),
            workflow: "main",
            run_id: "1003",
            current_run: "1010",
            first_attempt: 1,
            current_attempt: 2,
            heal_attempts: 1,
        };
        assert_eq!(run_label(&r), "#1003, new pipeline #1010");
        let gh = RunRef {
            platform: Some(Platform::Github),
            workflow: "ci.yml",
            run_id: "17",
            current_run: "23",
            ..r
        };
        assert_eq!(run_label(&gh), "ci.yml run 17, new run 23");
    }

    #[test]
    fn the_attempt_is_never_the_stand_in() {
        let r = RunRef {
            first_attempt: 1,
            current_attempt: HEALED,
            heal_attempts: 2,
            ..Default::default()
        };
        assert_eq!(attempt(&r), 3);
        assert_eq!(
            attempt(&RunRef {
                current_attempt: 4,
                ..r
            }),
            4
        );
    }
}
