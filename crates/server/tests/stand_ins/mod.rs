//! Each CI platform's stand-in (crates/sim) wired to a pipeguard server both ways, behind one
//! interface, so that one scenario runs unchanged against every platform.

use crate::common::*;
use pipeguard_core::event::Platform;
use pipeguard_server::config::Config;
use pipeguard_sim::circleci::{CircleciConfig, CircleciSim};
use pipeguard_sim::github::{GithubConfig, GithubSim};
use pipeguard_sim::gitlab::{GitlabConfig, GitlabSim};
use pipeguard_sim::jenkins::{JenkinsConfig, JenkinsSim};
use pipeguard_sim::{
    Fault, JobSpec, RecordedRequest, RunSpec, SentDelivery, Signing, WebhookTarget,
};
use serde_json::Value;
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(20);

/// What differs between the platforms, as data: where the stand-in's runs live, the
/// credentials both sides share and the intake the deliveries go to.
pub struct Row {
    pub platform: Platform,
    pub repo: &'static str,
    pub workflow: &'static str,
    pub user: Option<&'static str>,
    pub token: &'static str,
    pub secret: &'static str,
    /// How the platform's API re-runs one failed job of a finished run.
    pub retry: &'static str,
    /// Where a deploy runs: Jenkins tells only the job's name, not its stages.
    pub deploy_repo: &'static str,
}

pub const ROWS: &[Row] = &[
    Row {
        platform: Platform::Github,
        repo: REPO,
        workflow: "ci.yml",
        user: None,
        token: "ghs_testtoken",
        secret: SECRET,
        retry: "/rerun-failed-jobs",
        deploy_repo: REPO,
    },
    Row {
        platform: Platform::Gitlab,
        repo: "grp/sub/proj",
        workflow: ".gitlab-ci.yml",
        user: None,
        token: "glpat-sim",
        secret: "gl-secret",
        retry: "/retry",
        deploy_repo: "grp/sub/proj",
    },
    Row {
        platform: Platform::Jenkins,
        repo: "team/api",
        workflow: "Jenkinsfile",
        user: Some("pg"),
        token: "jt-token",
        secret: "jenkins-secret",
        retry: "/build",
        deploy_repo: "team/deploy-production",
    },
    Row {
        platform: Platform::Circleci,
        repo: "gh/acme/api",
        workflow: "build-and-test",
        user: None,
        token: "circle-api-token",
        secret: "circle-signing-secret",
        retry: "/rerun",
        deploy_repo: "gh/acme/api",
    },
];

/// The calls that start work again on some platform: re-runs, retries, rebuilds, new
/// pipelines and dispatched workflows.
const HEAL_CALLS: &[&str] = &[
    "/rerun-failed-jobs",
    "/rerun",
    "/retry",
    "/build",
    "/buildWithParameters",
    "/pipeline",
    "/dispatches",
];

pub fn is_heal_call(r: &RecordedRequest) -> bool {
    r.method == "POST" && HEAL_CALLS.iter().any(|s| r.path().ends_with(s))
}

pub enum AnySim {
    Github(GithubSim),
    Gitlab(GitlabSim),
    Jenkins(JenkinsSim),
    Circleci(CircleciSim),
}

/// Calls the same method on whichever stand-in it is.
macro_rules! on {
    ($sim:expr, $s:ident => $e:expr) => {
        match $sim {
            AnySim::Github($s) => $e,
            AnySim::Gitlab($s) => $e,
            AnySim::Jenkins($s) => $e,
            AnySim::Circleci($s) => $e,
        }
    };
}

impl AnySim {
    async fn start(row: &Row) -> AnySim {
        let t = row.token;
        let sim = match row.platform {
            Platform::Github => AnySim::Github(
                GithubSim::start(GithubConfig::default().token(t))
                    .await
                    .unwrap(),
            ),
            Platform::Gitlab => AnySim::Gitlab(
                GitlabSim::start(GitlabConfig::default().token(t))
                    .await
                    .unwrap(),
            ),
            Platform::Jenkins => AnySim::Jenkins(
                JenkinsSim::start(JenkinsConfig::default().credentials(row.user.unwrap(), t))
                    .await
                    .unwrap(),
            ),
            Platform::Circleci => AnySim::Circleci(
                CircleciSim::start(CircleciConfig::default().token(t))
                    .await
                    .unwrap(),
            ),
            other => panic!("no stand-in for {other:?}"),
        };
        sim
    }

    pub fn base_url(&self) -> String {
        on!(self, s => s.base_url())
    }

    pub async fn requests(&self) -> Vec<RecordedRequest> {
        on!(self, s => s.requests().await)
    }

    pub async fn deliveries(&self) -> Vec<SentDelivery> {
        on!(self, s => s.deliveries().await)
    }

    pub async fn set_webhook(&self, target: Option<WebhookTarget>) {
        on!(self, s => s.set_webhook(target).await)
    }

    pub async fn inject(&self, fault: Fault) {
        on!(self, s => s.inject(fault).await)
    }

    async fn start_run(&self, spec: RunSpec) {
        match self {
            AnySim::Github(s) => drop(s.start_run(spec).await.unwrap()),
            AnySim::Gitlab(s) => drop(s.start_run(spec).await.unwrap()),
            AnySim::Jenkins(s) => drop(s.start_run(spec).await.unwrap()),
            AnySim::Circleci(s) => drop(s.start_run(spec).await.unwrap()),
        }
    }
}

/// One platform's stand-in and a pipeguard server that heals it.
pub struct Stand {
    pub row: &'static Row,
    pub sim: AnySim,
    pub app: TestApp,
}

impl Stand {
    pub async fn start(row: &'static Row) -> Stand {
        Self::start_with(row, |_| {}).await
    }

    pub async fn start_with(row: &'static Row, tweak: impl FnOnce(&mut Config)) -> Stand {
        let sim = AnySim::start(row).await;
        let url = sim.base_url();
        let app = TestApp::start_with(|c| {
            let s = c.platform_mut(row.platform);
            s.api_url = url;
            s.token = Some(row.token.into());
            s.user = row.user.map(Into::into);
            s.webhook_secret = Some(row.secret.into());
            c.worker.verify_poll_seconds = 1;
            tweak(c);
        })
        .await;
        let stand = Stand { row, sim, app };
        stand.deliver_with(row.secret).await;
        stand
    }

    pub fn name(&self) -> &'static str {
        self.row.platform.as_str()
    }

    /// Points the stand-in's webhook at the server's intake, signed with `secret`.
    pub async fn deliver_with(&self, secret: &str) {
        let url = format!("{}/webhooks/{}", self.app.base, self.name());
        self.sim
            .set_webhook(Some(WebhookTarget::new(url, secret)))
            .await;
    }

    /// Starts a run of `jobs` in the row's repository, on `main`.
    pub async fn run(&self, jobs: Vec<JobSpec>) {
        self.run_in(self.row.repo, jobs).await;
    }

    pub async fn run_in(&self, repo: &str, jobs: Vec<JobSpec>) {
        let spec = jobs
            .into_iter()
            .fold(RunSpec::new(repo, self.row.workflow), RunSpec::job);
        self.sim.start_run(spec).await;
    }

    pub async fn heal_calls(&self) -> Vec<RecordedRequest> {
        let all = self.sim.requests().await;
        all.into_iter().filter(is_heal_call).collect()
    }

    /// The only session, once `pred` holds for it.
    pub async fn session(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            let list = self.app.get("/api/v1/sessions").await;
            let sessions = list["sessions"].as_array().cloned().unwrap_or_default();
            assert!(sessions.len() <= 1, "{}: {sessions:#?}", self.name());
            if let Some(id) = sessions.first().and_then(|s| s["id"].as_str()) {
                last = self.app.get(&format!("/api/v1/sessions/{id}")).await;
                if pred(&last) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{}: the session never got there: {last:#}", self.name());
    }

    pub async fn session_status(&self, status: &str) -> Value {
        self.session(|s| s["status"] == status).await
    }

    /// Posts a delivery the stand-in sent once more, as sent or without its credential.
    pub async fn resend(&self, sent: &SentDelivery, credential: bool) -> reqwest::Response {
        let d = &sent.delivery;
        let dropped = match d.signing {
            Signing::Hmac { header, .. } | Signing::Token { header } => Some(header),
            Signing::Query { .. } => None,
        };
        let mut url = sent.url.clone().expect("the delivery was sent");
        if !credential && dropped.is_none() {
            url = url.split('?').next().unwrap_or_default().to_string();
        }
        let mut req = reqwest::Client::new().post(url).body(d.body.clone());
        for (k, v) in &d.headers {
            if credential || dropped.is_none_or(|h| !h.eq_ignore_ascii_case(k)) {
                req = req.header(k, v);
            }
        }
        req.send().await.unwrap()
    }

    pub async fn stop(self) {
        self.app.stop().await;
    }
}
