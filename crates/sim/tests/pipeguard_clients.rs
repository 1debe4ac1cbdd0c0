//! pipeguard's own platform clients (crates/platforms) against the simulators: what they get
//! right, and the divergences docs/platform-semantics.md describes. The divergence tests pin
//! the clients' current behaviour: when a client is fixed, its test here changes with it.

mod common;

use common::WAIT;
use pipeguard_core::event::FailureEvent;
use pipeguard_platforms::{circleci, github, gitlab, jenkins, Ci, Parsed, PlatformError, RunState};
use pipeguard_sim::{Delivery, JobSpec, Model, RunSpec, Sim};
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
    assert!(matches!(
        gh.run_state(ev).await.unwrap(),
        RunState::Completed {
            attempt: 1,
            success: false,
            ..
        }
    ));
}

/// Divergence: the client re-runs transient jobs one by one, but GitHub refuses the second
/// re-run while the attempt the first one started is in progress.
#[tokio::test]
async fn github_client_second_per_job_rerun_is_refused_while_the_first_runs() {
    let sim = github_sim(pipeguard_sim::github::DispatchMode::RunDetails).await;
    let spec = RunSpec::new("octo/app", "ci.yml")
        .job(JobSpec::new("it-a").fails("ETIMEDOUT").passes())
        .job(JobSpec::new("it-b").fails("ETIMEDOUT").passes())
        .job(JobSpec::new("unit").fails("assertion failed"));
    let run = sim.start_run(spec).await.unwrap();
    sim.wait_run(run, WAIT).await.unwrap();
    let fails = failures(&sim, gh_parse).await;
    let run_ev = fails.iter().find(|e| e.jobs.is_empty()).unwrap().clone();
    let transient: Vec<_> = fails
        .iter()
        .flat_map(|e| e.jobs.clone())
        .filter(|j| j.name.starts_with("it-"))
        .collect();
    assert_eq!(transient.len(), 2);
    let err = github_client(&sim)
        .retry(&run_ev, &transient, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PlatformError::Refused { status: 403, message } if message.contains("This workflow is already running")),
        "{err}"
    );
    let after = sim.wait_run(run, WAIT).await.unwrap();
    assert_eq!(
        after.latest().runs,
        ["it-a"],
        "only the first job was re-run"
    );
}

/// Divergence: on a server that answers 204, the client gets no run id (and escalates),
/// though the run can be found by listing the workflow's runs; a server that refuses the
/// unknown key makes the dispatch fail.
#[tokio::test]
async fn github_client_dispatch_without_run_details() {
    use pipeguard_sim::github::DispatchMode;
    let spec = || {
        RunSpec::new("octo/app", "scale.yml")
            .parameter("runner", "small")
            .job(JobSpec::new("test").fails("Killed (out of memory)"))
    };
    for (mode, expect_id) in [
        (DispatchMode::RunDetails, true),
        (DispatchMode::NoContent, false),
    ] {
        let sim = github_sim(mode).await;
        sim.start_run(spec()).await.unwrap();
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
        assert_eq!(done.new_run_id.is_some(), expect_id, "{mode:?}");
        assert_eq!(
            sim.inspect(|st| st.dispatches.len()).await,
            1,
            "{mode:?}: the run started either way"
        );
    }
    let sim = github_sim(DispatchMode::RejectsRunDetails).await;
    sim.start_run(spec()).await.unwrap();
    let ev = FailureEvent {
        repository: "octo/app".into(),
        branch: Some("main".into()),
        ..Default::default()
    };
    let err = github_client(&sim)
        .rerun_with(&ev, Some("scale.yml"), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PlatformError::Refused { status: 422, .. }),
        "{err}"
    );
}

/// Divergence: re-run calls are repeated after a 5xx. When GitHub started the attempt but
/// the answer was lost, the repeat is refused (the attempt is running) and the client reports
/// a failure although the re-run is under way.
#[tokio::test]
async fn github_client_repeats_a_rerun_whose_answer_was_lost() {
    let sim = github_sim(pipeguard_sim::github::DispatchMode::RunDetails).await;
    // The job lasts long enough for the client's repeats to meet the running attempt.
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
    let err = client.retry(&ev, &[], true).await.unwrap_err();
    assert!(
        matches!(&err, PlatformError::Refused { message, .. } if message.contains("already running")),
        "{err}"
    );
    assert_eq!(
        sim.run(run).await.unwrap().attempts.len(),
        2,
        "yet attempt 2 runs"
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

/// Divergence: the client follows `lastBuild`, which can be a build someone else started;
/// the build it queued is the queue item's `executable.number`.
#[tokio::test]
async fn jenkins_client_follows_last_build_which_may_not_be_its_own() {
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
    client.retry(&ev, &[], true).await.unwrap();
    let state = client.run_state(&ev).await.unwrap();
    assert_eq!(
        state,
        RunState::InProgress { attempt: 2 },
        "alice's build, not ours"
    );
    let ours = sim.inspect(|st| *st.queue.keys().max().unwrap()).await;
    let build = sim.wait_item(ours, WAIT).await.unwrap();
    assert_eq!(build.number, 3);
}

/// Divergence: overrides the job does not declare are dropped by Jenkins, yet the client
/// reports them as sent.
#[tokio::test]
async fn jenkins_client_overrides_not_declared_are_dropped() {
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
    let overrides = [
        ("LABEL".to_string(), "large".to_string()),
        ("WIPE_WORKSPACE".to_string(), "true".to_string()),
    ];
    let done = jenkins_client(&sim, TOKEN)
        .rerun_with(&ev, None, &overrides)
        .await
        .unwrap();
    assert!(done.detail.contains("2 parameter(s)"), "{}", done.detail);
    let item = sim
        .inspect(|st| st.queue.values().last().unwrap().clone())
        .await;
    assert_eq!(item.dropped, ["WIPE_WORKSPACE"]);
    assert_eq!(item.parameters["LABEL"], "large");
}

/// Divergence: the crumb is bound to the web session; the client keeps no cookie, so with
/// a password (not an API token) its POST is refused.
#[tokio::test]
async fn jenkins_client_with_a_password_loses_the_crumbs_session() {
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
    let err = jenkins_client(&sim, "hunter2")
        .retry(&ev, &[], true)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PlatformError::Refused { message, .. } if message.contains("No valid crumb")),
        "{err}"
    );
    jenkins_client(&sim, TOKEN)
        .retry(&ev, &[], true)
        .await
        .unwrap();
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
