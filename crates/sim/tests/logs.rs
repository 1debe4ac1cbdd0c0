//! The sample logs are diagnosed by pipeguard's analyzer as they say, alone and as each
//! simulator frames them (fetched with pipeguard's own clients).

mod common;

use common::WAIT;
use pipeguard_core::analysis::Analyzer;
use pipeguard_core::event::FailureEvent;
use pipeguard_platforms::{circleci, github, gitlab, jenkins, Ci, JobLog, Parsed};
use pipeguard_sim::logs::{sample, SAMPLES};
use pipeguard_sim::{Delivery, JobSpec, Model, RunSpec, Sim};
use std::time::Duration;

const TOKEN: &str = "logs-test-token";

#[test]
fn each_sample_gets_its_category_and_decision() {
    let analyzer = Analyzer::builtin();
    for s in SAMPLES {
        let d = analyzer.analyze(s.log.as_bytes());
        assert_eq!(
            d.category.as_str(),
            s.category,
            "{}: {}",
            s.category,
            d.summary
        );
        assert_eq!(
            d.transient, s.transient,
            "{}: confidence {}",
            s.category, d.confidence
        );
    }
}

/// One job per sample, named after its category.
fn spec(repo: &str, workflow: &str) -> RunSpec {
    SAMPLES
        .iter()
        .fold(RunSpec::new(repo, workflow), |spec, s| {
            spec.job(JobSpec::new(s.category).fails(s.log))
        })
}

/// Every fetched log is diagnosed as the sample of the job's name.
fn check(logs: &[JobLog], name_of: impl Fn(&JobLog) -> String) {
    let analyzer = Analyzer::builtin();
    assert_eq!(logs.len(), SAMPLES.len());
    for l in logs {
        let name = name_of(l);
        let want = sample(&name).unwrap_or_else(|| panic!("no sample for {name}"));
        let d = analyzer.analyze(&l.log);
        assert_eq!(d.category.as_str(), want.category, "{name}: {}", d.summary);
        assert_eq!(d.transient, want.transient, "{name}");
    }
}

async fn failure<S: Model>(
    sim: &Sim<S>,
    parse: impl Fn(&Delivery) -> Option<Parsed>,
    pick: impl Fn(&FailureEvent) -> bool,
) -> FailureEvent {
    sim.deliveries()
        .await
        .iter()
        .find_map(|d| match parse(&d.delivery) {
            Some(Parsed::Failure(ev)) if pick(&ev) => Some(*ev),
            _ => None,
        })
        .expect("a failure delivery")
}

#[tokio::test]
async fn github_framing() {
    use pipeguard_sim::github::{GithubConfig, GithubSim};
    let sim = GithubSim::start(GithubConfig::default().token(TOKEN))
        .await
        .unwrap();
    let run = sim.start_run(spec("octo/app", "ci.yml")).await.unwrap();
    sim.wait_run(run, WAIT).await.unwrap();
    let ev = failure(
        &sim,
        |d| github::parse_event(&d.event, &d.body).ok(),
        |e| e.jobs.is_empty(),
    )
    .await;
    let client = github::GithubClient::new(
        &pipeguard_platforms::settings::Section {
            api_url: sim.base_url(),
            token: Some(TOKEN.into()),
            user: None,
            ..Default::default()
        },
        &pipeguard_platforms::api::HttpOptions {
            tries: 1,
            backoff: Duration::from_millis(1),
            ..Default::default()
        },
    );
    check(&client.failed_logs(&ev).await.unwrap(), |l| {
        l.job.name.clone()
    });
}

#[tokio::test]
async fn gitlab_framing() {
    use pipeguard_sim::gitlab::{GitlabConfig, GitlabSim};
    let sim = GitlabSim::start(GitlabConfig::default().token(TOKEN))
        .await
        .unwrap();
    let id = sim.start_run(spec("grp/app", "main")).await.unwrap();
    sim.wait_pipeline(id, WAIT).await.unwrap();
    let ev = failure(
        &sim,
        |d| gitlab::parse_event(&d.event, &d.body).ok(),
        |e| e.url.is_some(),
    )
    .await;
    let client = gitlab::GitlabClient::new(
        &pipeguard_platforms::settings::Section {
            api_url: sim.base_url(),
            token: Some(TOKEN.into()),
            user: None,
            ..Default::default()
        },
        &pipeguard_platforms::api::HttpOptions {
            tries: 1,
            backoff: Duration::from_millis(1),
            ..Default::default()
        },
    );
    check(&client.failed_logs(&ev).await.unwrap(), |l| {
        l.job.name.clone()
    });
}

#[tokio::test]
async fn circleci_framing() {
    use pipeguard_sim::circleci::{CircleciConfig, CircleciSim};
    let sim = CircleciSim::start(CircleciConfig::default().token(TOKEN))
        .await
        .unwrap();
    let p = sim
        .start_run(spec("gh/acme/api", "build-test"))
        .await
        .unwrap();
    sim.wait_pipeline(&p, WAIT).await.unwrap();
    let ev = failure(
        &sim,
        |d| circleci::parse_delivery(&d.body).ok().map(|x| x.parsed),
        |e| e.jobs.is_empty(),
    )
    .await;
    let client = circleci::CircleciClient::new(
        &pipeguard_platforms::settings::Section {
            api_url: sim.base_url(),
            token: Some(TOKEN.into()),
            user: None,
            ..Default::default()
        },
        &pipeguard_platforms::api::HttpOptions {
            tries: 1,
            backoff: Duration::from_millis(1),
            ..Default::default()
        },
    );
    check(&client.failed_logs(&ev).await.unwrap(), |l| {
        l.job.name.clone()
    });
}

#[tokio::test]
async fn jenkins_framing() {
    use pipeguard_sim::jenkins::{JenkinsConfig, JenkinsSim};
    let sim = JenkinsSim::start(JenkinsConfig::default().credentials("pipeguard", TOKEN))
        .await
        .unwrap();
    for s in SAMPLES {
        let job = RunSpec::new(s.category, "Jenkinsfile").job(JobSpec::new("Build").fails(s.log));
        let item = sim.start_run(job).await.unwrap();
        sim.wait_item(item, WAIT).await.unwrap();
    }
    let client = jenkins::JenkinsClient::new(
        &pipeguard_platforms::settings::Section {
            api_url: sim.base_url(),
            token: Some(TOKEN.into()),
            user: Some("pipeguard".into()),
            ..Default::default()
        },
        &pipeguard_platforms::api::HttpOptions {
            tries: 1,
            backoff: Duration::from_millis(1),
            ..Default::default()
        },
    );
    let mut logs = Vec::new();
    for s in SAMPLES {
        let ev = failure(
            &sim,
            |d| jenkins::parse_delivery(&d.body).ok().map(|x| x.parsed),
            |e| e.repository == s.category,
        )
        .await;
        logs.extend(client.failed_logs(&ev).await.unwrap());
    }
    check(&logs, |l| l.job.name.clone());
}
