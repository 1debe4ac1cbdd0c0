//! pipeguard's own platform clients (crates/platforms) against the simulators: what they get
//! right, and the divergences docs/platform-semantics.md describes. The divergence tests pin
//! the clients' current behaviour: when a client is fixed, its test here changes with it.

mod common;

use common::WAIT;
use pipeguard_core::event::FailureEvent;
use pipeguard_platforms::{circleci, github, gitlab, jenkins, Ci, Parsed, PlatformError, RunState};
use pipeguard_sim::{Delivery, JobSpec, Model, Outcome, RunSpec, Sim};
use std::time::Duration;

const TOKEN: &str = "client-test-token";
const FAST: Duration = Duration::from_millis(1);

/// The failures pipeguard parses from the deliveries made so far (recorded, not sent).
async fn failures<S: Model>(
    sim: &Sim<S>,
    parse: impl Fn(&Delivery) -> Option<Parsed>,
) -> Vec<FailureEvent> {
    sim.deliveries()
        .await
        .iter()
        .filter_map(|d| match parse(&d.delivery) {
            Some(Parsed::Failure(ev)) => Some(*ev),
            _ => None,
        })
        .collect()
}

fn gh_parse(d: &Delivery) -> Option<Parsed> {
    github::parse_event(&d.event, &d.body).ok()
}

fn github_client(sim: &pipeguard_sim::github::GithubSim) -> github::GithubClient {
    github::GithubClient::new(
        &pipeguard_platforms::settings::Section {
            api_url: sim.base_url(),
            token: Some(TOKEN.into()),
            user: None,
            ..Default::default()
        },
        &pipeguard_platforms::api::HttpOptions {
            tries: 1,
            backoff: FAST,
            ..Default::default()
        },
    )
}

async fn github_sim(mode: pipeguard_sim::github::DispatchMode) -> pipeguard_sim::github::GithubSim {
    let config = pipeguard_sim::github::GithubConfig::default()
        .token(TOKEN)
        .dispatch(mode);
    pipeguard_sim::github::GithubSim::start(config)
        .await
        .unwrap()
}

#[tokio::test]
async fn github_client_reads_logs_through_the_redirect_and_sees_the_run_complete() {
    let sim = github_sim(pipeguard_sim::github::DispatchMode::RunDetails).await;
    let spec = RunSpec::new("octo/app", "ci.yml")
        .job(JobSpec::new("build"))
        .job(JobSpec::new("test").fails("npm ERR! network ECONNRESET"));
    let run = sim.start_run(spec).await.unwrap();
    sim.wait_run(run, WAIT).await.unwrap();
    let fails = failures(&sim, gh_parse).await;
    let ev = fails
        .iter()
        .find(|e| e.jobs.is_empty())
        .expect("the workflow_run failure");
    let gh = github_client(&sim);
    let logs = gh.failed_logs(ev).await.unwrap();
    assert_eq!(logs.len(), 1);
    assert!(String::from_utf8_lossy(&logs[0].log).contains("ECONNRESET"));
    // The blob is on the storage origin: reached there, without the token.
    let storage = sim.storage_url();
    let requests = sim.requests().await;
    let blob = requests
        .iter()
        .find(|r| r.path().starts_with("/_blobs/"))
        .expect("the log was downloaded from storage");
    assert_eq!(
        blob.header("host"),
        storage.strip_prefix("http://"),
        "{storage}"
    );
    assert_eq!(blob.header("authorization"), None);
    assert!(matches!(
        gh.run_state(ev).await.unwrap(),
        RunState::Completed {
            attempt: 1,
            success: false,
            ..
        }
    ));
}

/// A green attempt's successful jobs, each with its workflow's name and log: one listing of
/// the attempt's jobs, then one log download per successful job (skipped jobs cost nothing).
#[tokio::test]
async fn github_client_reads_the_successful_jobs_of_a_green_attempt() {
    let sim = github_sim(pipeguard_sim::github::DispatchMode::RunDetails).await;
    let spec = RunSpec::new("octo/app", "ci.yml")
        .job(JobSpec::new("build").then(Outcome::pass().with_log("compiled 12 crates")))
        .job(JobSpec::new("test").then(Outcome::pass().with_log("ok: 40 passed")));
    let run = sim.start_run(spec).await.unwrap();
    sim.wait_run(run, WAIT).await.unwrap();
    let before = sim.requests().await.len();
    let ev = FailureEvent {
        repository: "octo/app".into(),
        run_id: run.to_string(),
        attempt: 1,
        ..Default::default()
    };
    let mut jobs = github_client(&sim).green_jobs(&ev).await.unwrap();
    jobs.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["build", "test"]);
    assert!(String::from_utf8_lossy(&jobs[0].log).contains("compiled 12 crates"));
    assert!(String::from_utf8_lossy(&jobs[1].log).contains("ok: 40 passed"));
    let workflow = &jobs[0].workflow;
    assert!(!workflow.is_empty() && *workflow == jobs[1].workflow);
    let api_calls = sim.requests().await[before..]
        .iter()
        .filter(|r| !r.path().starts_with("/_blobs/"))
        .count();
    assert_eq!(api_calls, 3, "one listing, one log call per job");
}

/// A failure of a job without a model: the newest green run of the same workflow on the
/// failure's branch (another workflow's green runs and the failing run are not it), else none
/// there and the default branch's; one listing, one jobs call and one log per job asked for.
#[tokio::test]
async fn github_client_finds_the_last_green_run_of_a_workflow_on_a_branch() {
    let sim = github_sim(pipeguard_sim::github::DispatchMode::RunDetails).await;
    let green = |wf: &str, branch: &str, log: &str| {
        RunSpec::new("octo/app", wf)
            .branch(branch)
            .job(JobSpec::new("build").then(Outcome::pass().with_log(log)))
            .job(JobSpec::new("lint").then(Outcome::pass().with_log("lint clean")))
    };
    let main_green = sim
        .start_run(green("ci.yml", "main", "built on main"))
        .await
        .unwrap();
    sim.wait_run(main_green, WAIT).await.unwrap();
    let other = sim
        .start_run(green("nightly.yml", "main", "nightly"))
        .await
        .unwrap();
    sim.wait_run(other, WAIT).await.unwrap();
    let failing = RunSpec::new("octo/app", "ci.yml")
        .branch("feature")
        .job(JobSpec::new("build").fails("error[E0308]: mismatched types"));
    let failed = sim.start_run(failing).await.unwrap();
    sim.wait_run(failed, WAIT).await.unwrap();
    let ev = failures(&sim, gh_parse)
        .await
        .into_iter()
        .find(|e| e.run_id == failed.to_string())
        .expect("the failure's delivery");
    let gh = github_client(&sim);
    let jobs = ["build".to_string()];
    assert!(gh
        .last_green(&ev, "feature", &jobs)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        gh.default_branch(&ev).await.unwrap().as_deref(),
        Some("main")
    );
    let before = sim.requests().await.len();
    let found = gh.last_green(&ev, "main", &jobs).await.unwrap().unwrap();
    assert_eq!(found.run_id, main_green.to_string());
    let names: Vec<&str> = found.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["build"], "only the jobs asked for");
    assert!(String::from_utf8_lossy(&found.jobs[0].log).contains("built on main"));
    let api_calls = sim.requests().await[before..]
        .iter()
        .filter(|r| !r.path().starts_with("/_blobs/"))
        .count();
    assert_eq!(api_calls, 3, "one listing, one jobs call, one log");
}

/// GitLab's success Pipeline Hook names the ref (the failure's workflow): its successful
/// jobs and their traces are the green run learned.
#[tokio::test]
async fn gitlab_client_reads_the_successful_jobs_of_a_green_pipeline() {
    use pipeguard_sim::gitlab::{GitlabConfig, GitlabSim};
    let sim = GitlabSim::start(GitlabConfig::default().token(TOKEN))
        .await
        .unwrap();
    let spec = RunSpec::new("grp/app", "main")
        .job(JobSpec::new("build").then(Outcome::pass().with_log("compiled 3 targets")))
        .job(JobSpec::new("test").then(Outcome::pass().with_log("ok: 12 passed")));
    let id = sim.start_run(spec).await.unwrap();
    sim.wait_pipeline(id, WAIT).await.unwrap();
    let success = sim
        .deliveries()
        .await
        .iter()
        .find_map(
            |d| match gitlab::parse_event(&d.delivery.event, &d.delivery.body) {
                Ok(Parsed::Success {
                    repository,
                    workflow: Some(workflow),
                    run_id,
                    attempt,
                    ..
                }) => Some(FailureEvent {
                    repository,
                    workflow,
                    run_id,
                    attempt,
                    ..Default::default()
                }),
                _ => None,
            },
        )
        .expect("a success Pipeline Hook naming its ref");
    assert_eq!(success.workflow, "main");
    let client = gitlab::GitlabClient::new(
        &pipeguard_platforms::settings::Section {
            api_url: sim.base_url(),
            token: Some(TOKEN.into()),
            user: None,
            ..Default::default()
        },
        &pipeguard_platforms::api::HttpOptions {
            tries: 1,
            backoff: FAST,
            ..Default::default()
        },
    );
    let mut jobs = client.green_jobs(&success).await.unwrap();
    jobs.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["build", "test"]);
    assert!(String::from_utf8_lossy(&jobs[0].log).contains("compiled 3 targets"));
    assert!(jobs.iter().all(|j| j.workflow == "main"));
}

/// GitHub refuses a second re-run while the attempt the first started is in progress: the
/// client reports it as "wait" (busy), and the next job's re-run goes once the attempt ended.
#[tokio::test]
async fn github_client_waits_for_the_running_attempt_before_the_next_job() {
    let sim = github_sim(pipeguard_sim::github::DispatchMode::RunDetails).await;
    let spec = RunSpec::new("octo/app", "ci.yml")
        .job(
            JobSpec::new("it-a")
                .fails("ETIMEDOUT")
                .passes()
                .duration_ms(300),
        )
        .job(JobSpec::new("it-b").fails("ETIMEDOUT").passes())
        .job(JobSpec::new("unit").fails("assertion failed"));
    let run = sim.start_run(spec).await.unwrap();
    sim.wait_run(run, WAIT).await.unwrap();
    let fails = failures(&sim, gh_parse).await;
    let run_ev = fails.iter().find(|e| e.jobs.is_empty()).unwrap().clone();
    let job = |name: &str| {
        fails
            .iter()
            .flat_map(|e| e.jobs.clone())
            .find(|j| j.name == name)
            .unwrap()
    };
    let gh = github_client(&sim);
    gh.retry(&run_ev, &[job("it-a")], false).await.unwrap();
    let err = gh.retry(&run_ev, &[job("it-b")], false).await.unwrap_err();
    assert!(
        matches!(&err, PlatformError::Busy { message, .. } if message.contains("already running")),
        "{err}"
    );
    let after = sim.wait_run(run, WAIT).await.unwrap();
    assert_eq!(after.latest().runs, ["it-a"], "attempt 2 re-ran it-a only");
    let mut ev2 = run_ev.clone();
    ev2.attempt = 2;
    gh.retry(&ev2, &[job("it-b")], false).await.unwrap();
    let after = sim.wait_run(run, WAIT).await.unwrap();
    assert_eq!(after.attempts.len(), 3);
    assert_eq!(after.latest().runs, ["it-b"], "attempt 3 re-ran it-b");
}

/// A server that answers 204 gives no run id: the run is found by listing the workflow's
/// dispatched runs; a server that refuses `return_run_details` gets the dispatch without it.
#[tokio::test]
async fn github_client_finds_dispatched_runs_without_run_details() {
    use pipeguard_sim::github::DispatchMode;
    let spec = || {
        RunSpec::new("octo/app", "scale.yml")
            .parameter("runner", "small")
            .job(JobSpec::new("test").fails("Killed (out of memory)"))
    };
    for mode in [
        DispatchMode::RunDetails,
        DispatchMode::NoContent,
        DispatchMode::RejectsRunDetails,
    ] {
        let sim = github_sim(mode).await;
        sim.start_run(spec()).await.unwrap();
        let before = sim.inspect(|st| st.runs.len()).await;
        let ev = FailureEvent {
            repository: "octo/app".into(),
            branch: Some("main".into()),
            ..Default::default()
        };
        let inputs = [("runner".to_string(), "large".to_string())];
        let done = github_client(&sim)
            .rerun_with(&ev, Some("scale.yml"), &inputs)
            .await
            .unwrap();
        let newest = sim
            .inspect(|st| st.runs.keys().max().copied().unwrap())
            .await;
        assert_eq!(
            sim.inspect(|st| st.runs.len()).await,
            before + 1,
            "{mode:?}: one run started"
        );
        assert_eq!(
            done.new_run_id,
            Some(newest.to_string()),
            "{mode:?}: the run to follow is the dispatched one"
        );
    }
}

/// A re-run whose answer was lost did start: the client sends it once and reads the run to
/// know, instead of repeating it into GitHub's refusal.
#[tokio::test]
async fn github_client_sends_a_rerun_once_and_sees_a_lost_answer_worked() {
    let sim = github_sim(pipeguard_sim::github::DispatchMode::RunDetails).await;
    let job = JobSpec::new("t")
        .fails("ETIMEDOUT")
        .passes()
        .duration_ms(500);
    let run = sim
        .start_run(RunSpec::new("octo/app", "ci.yml").job(job))
        .await
        .unwrap();
    sim.wait_run(run, WAIT).await.unwrap();
    let ev = failures(&sim, gh_parse)
        .await
        .into_iter()
        .find(|e| e.jobs.is_empty())
        .unwrap();
    sim.inject(pipeguard_sim::Fault::lose_answer("rerun-failed-jobs", 502))
        .await;
    let client = github::GithubClient::new(
        &pipeguard_platforms::settings::Section {
            api_url: sim.base_url(),
            token: Some(TOKEN.into()),
            user: None,
            ..Default::default()
        },
        &pipeguard_platforms::api::HttpOptions {
            tries: 3,
            backoff: FAST,
            ..Default::default()
        },
    );
    client.retry(&ev, &[], true).await.unwrap();
    let reruns = sim
        .requests()
        .await
        .iter()
        .filter(|r| r.path().ends_with("/rerun-failed-jobs"))
        .count();
    assert_eq!(reruns, 1, "sent once");
    assert_eq!(
        sim.run(run).await.unwrap().attempts.len(),
        2,
        "attempt 2 runs"
    );
}

fn jenkins_client(
    sim: &pipeguard_sim::jenkins::JenkinsSim,
    secret: &str,
) -> jenkins::JenkinsClient {
    jenkins::JenkinsClient::new(
        &pipeguard_platforms::settings::Section {
            api_url: sim.base_url(),
            token: Some(secret.into()),
            user: Some("pipeguard".into()),
            ..Default::default()
        },
        &pipeguard_platforms::api::HttpOptions {
            tries: 1,
            backoff: FAST,
            ..Default::default()
        },
    )
}

fn jk_parse(d: &Delivery) -> Option<Parsed> {
    jenkins::parse_delivery(&d.body).ok().map(|x| x.parsed)
}

/// Someone else's build can start (and finish) before the one pipeguard queued: the queue
/// item tells which build is the heal's, and its state is read, not `lastBuild`'s.
#[tokio::test]
async fn jenkins_client_follows_its_own_queued_build() {
    use pipeguard_sim::jenkins::{JenkinsConfig, JenkinsSim};
    let sim = JenkinsSim::start(JenkinsConfig::default().credentials("pipeguard", TOKEN))
        .await
        .unwrap();
    let spec = RunSpec::new("team/api", "Jenkinsfile").job(
        JobSpec::new("Test")
            .duration_ms(200)
            .fails("Connection reset by peer")
            .passes(),
    );
    let first = sim.start_run(spec).await.unwrap();
    sim.wait_item(first, WAIT).await.unwrap();
    let ev = failures(&sim, jk_parse).await.remove(0);
    let alice = sim
        .trigger_build("team/api", &[], "Started by user alice")
        .await
        .unwrap();
    sim.wait_until(WAIT, |st| st.queue[&alice].build.is_some())
        .await
        .unwrap();
    let client = jenkins_client(&sim, TOKEN);
    let retried = client.retry_tracked(&ev, &[], true).await.unwrap();
    assert_eq!(retried.attempt, Some(3), "{}", retried.detail);
    let ours = sim.inspect(|st| *st.queue.keys().max().unwrap()).await;
    let build = sim.wait_item(ours, WAIT).await.unwrap();
    assert_eq!(build.number, 3);
    let mut state = client.attempt_state(&ev, 3).await.unwrap();
    for _ in 0..100 {
        if matches!(state, RunState::Completed { .. }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        state = client.attempt_state(&ev, 3).await.unwrap();
    }
    assert!(
        matches!(
            state,
            RunState::Completed {
                attempt: 3,
                success: true,
                ..
            }
        ),
        "{state:?}"
    );
}

/// Inputs the job does not declare would be dropped by Jenkins: the client refuses them
/// before queueing anything.
#[tokio::test]
async fn jenkins_client_refuses_overrides_the_job_does_not_declare() {
    use pipeguard_sim::jenkins::{JenkinsConfig, JenkinsSim};
    let sim = JenkinsSim::start(JenkinsConfig::default().credentials("pipeguard", TOKEN))
        .await
        .unwrap();
    let spec = RunSpec::new("team/api", "Jenkinsfile")
        .parameter("LABEL", "small")
        .job(JobSpec::new("Test").fails("No space left on device"));
    let first = sim.start_run(spec).await.unwrap();
    sim.wait_item(first, WAIT).await.unwrap();
    let ev = failures(&sim, jk_parse).await.remove(0);
    let queued = sim.inspect(|st| st.queue.len()).await;
    let overrides = [
        ("LABEL".to_string(), "large".to_string()),
        ("WIPE_WORKSPACE".to_string(), "true".to_string()),
    ];
    let err = jenkins_client(&sim, TOKEN)
        .rerun_with(&ev, None, &overrides)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PlatformError::NotConfigured(m) if m.contains("WIPE_WORKSPACE")),
        "{err}"
    );
    assert_eq!(
        sim.inspect(|st| st.queue.len()).await,
        queued,
        "nothing queued"
    );
    let done = jenkins_client(&sim, TOKEN)
        .rerun_with(&ev, None, &overrides[..1])
        .await
        .unwrap();
    let item = sim
        .inspect(|st| st.queue.values().last().unwrap().clone())
        .await;
    assert_eq!(item.parameters["LABEL"], "large");
    assert!(item.dropped.is_empty());
    assert!(done.new_attempt.is_some(), "{}", done.detail);
}

/// The crumb is bound to the web session: with a password (not an API token) the client
/// sends the session cookie back with its POST.
#[tokio::test]
async fn jenkins_client_with_a_password_keeps_the_crumbs_session() {
    use pipeguard_sim::jenkins::{JenkinsConfig, JenkinsSim};
    let config = JenkinsConfig {
        password: Some("hunter2".into()),
        ..JenkinsConfig::default()
    };
    let sim = JenkinsSim::start(config.credentials("pipeguard", TOKEN))
        .await
        .unwrap();
    let first = sim
        .start_run(RunSpec::new("app", "Jenkinsfile").job(JobSpec::new("T").fails("x")))
        .await
        .unwrap();
    sim.wait_item(first, WAIT).await.unwrap();
    let ev = failures(&sim, jk_parse).await.remove(0);
    let retried = jenkins_client(&sim, "hunter2")
        .retry_tracked(&ev, &[], true)
        .await
        .unwrap();
    assert_eq!(retried.attempt, Some(2), "{}", retried.detail);
}

#[tokio::test]
async fn gitlab_client_retries_a_job_and_sees_the_pipeline_succeed() {
    use pipeguard_sim::gitlab::{GitlabConfig, GitlabSim};
    let sim = GitlabSim::start(GitlabConfig::default().token(TOKEN))
        .await
        .unwrap();
    let spec = RunSpec::new("grp/app", "main")
        .job(
            JobSpec::new("test")
                .stage("test")
                .fails("dial tcp: i/o timeout")
                .passes(),
        )
        .job(JobSpec::new("deploy").stage("deploy"));
    let id = sim.start_run(spec).await.unwrap();
    sim.wait_pipeline(id, WAIT).await.unwrap();
    let ev = failures(&sim, |d| gitlab::parse_event(&d.event, &d.body).ok())
        .await
        .into_iter()
        .find(|e| e.attempt == 1 && e.jobs.len() == 1 && e.url.is_some())
        .expect("the Pipeline Hook failure");
    let client = gitlab::GitlabClient::new(
        &pipeguard_platforms::settings::Section {
            api_url: sim.base_url(),
            token: Some(TOKEN.into()),
            user: None,
            ..Default::default()
        },
        &pipeguard_platforms::api::HttpOptions {
            tries: 1,
            backoff: FAST,
            ..Default::default()
        },
    );
    let logs = client.failed_logs(&ev).await.unwrap();
    assert!(String::from_utf8_lossy(&logs[0].log).contains("i/o timeout"));
    client
        .retry(
            &ev,
            &logs.iter().map(|l| l.job.clone()).collect::<Vec<_>>(),
            false,
        )
        .await
        .unwrap();
    sim.wait_pipeline(id, WAIT).await.unwrap();
    assert!(matches!(
        client.run_state(&ev).await.unwrap(),
        RunState::Completed { success: true, .. }
    ));
}

#[tokio::test]
async fn circleci_client_reruns_from_failed_and_follows_the_new_workflow() {
    use pipeguard_sim::circleci::{CircleciConfig, CircleciSim};
    let sim = CircleciSim::start(CircleciConfig::default().token(TOKEN))
        .await
        .unwrap();
    let spec = RunSpec::new("gh/acme/api", "build-test")
        .job(
            JobSpec::new("test")
                .fails("ECONNREFUSED 127.0.0.1:5432")
                .passes(),
        )
        .job(JobSpec::new("lint"));
    let pipeline = sim.start_run(spec).await.unwrap();
    sim.wait_pipeline(&pipeline, WAIT).await.unwrap();
    let ev = failures(&sim, |d| {
        circleci::parse_delivery(&d.body).ok().map(|x| x.parsed)
    })
    .await
    .into_iter()
    .find(|e| e.jobs.is_empty())
    .unwrap();
    let client = circleci::CircleciClient::new(
        &pipeguard_platforms::settings::Section {
            api_url: sim.base_url(),
            token: Some(TOKEN.into()),
            user: None,
            ..Default::default()
        },
        &pipeguard_platforms::api::HttpOptions {
            tries: 1,
            backoff: FAST,
            ..Default::default()
        },
    );
    let logs = client.failed_logs(&ev).await.unwrap();
    assert!(String::from_utf8_lossy(&logs[0].log).contains("ECONNREFUSED"));
    client.retry(&ev, &[], true).await.unwrap();
    let wfs = sim.wait_pipeline(&pipeline, WAIT).await.unwrap();
    assert_eq!(wfs.len(), 2);
    assert!(matches!(
        client.run_state(&ev).await.unwrap(),
        RunState::Completed { success: true, .. }
    ));
}
