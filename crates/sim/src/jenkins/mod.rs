//! Jenkins: a job's builds come from queue items (`201` + `Location: …/queue/item/{n}/`), which
//! show `executable.number` once the build starts; builds of one job run one at a time, so a
//! build someone else triggered can come first. Basic auth, a crumb bound to the web session,
//! `consoleText`, and the Notification plugin's deliveries.

mod api;
mod payload;
mod state;

pub use state::{Build, JenkinsState, JobDef, QueueItem, Stage};

use crate::core::scenario::{RunSpec, SpecError};
use crate::core::sim::{start, Sim, Timeout};
use crate::core::webhook::WebhookTarget;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct JenkinsConfig {
    pub user: String,
    /// The user's API token (basic auth password).
    pub api_token: String,
    /// The user's password, when logging in with it should work too.
    pub password: Option<String>,
    /// CSRF protection (the crumb issuer); on by default in Jenkins.
    pub csrf: bool,
    /// Requests authenticated with an API token need no crumb (Jenkins 2.96 and later).
    pub crumb_exempts_api_tokens: bool,
    /// How long a queue item waits before it may start (Jenkins: 5 s by default).
    pub quiet_period: Duration,
    /// Notification plugin target; the secret goes in `X-Pipeguard-Token`.
    pub webhook: Option<WebhookTarget>,
    /// Put the secret in the URL as `?token=` instead (the plugin itself cannot set headers).
    pub token_in_query: bool,
}

impl Default for JenkinsConfig {
    fn default() -> Self {
        JenkinsConfig {
            user: "pipeguard".into(),
            api_token: "sim-jenkins-api-token".into(),
            password: None,
            csrf: true,
            crumb_exempts_api_tokens: true,
            quiet_period: Duration::from_millis(20),
            webhook: None,
            token_in_query: false,
        }
    }
}

impl JenkinsConfig {
    pub fn credentials(mut self, user: impl Into<String>, api_token: impl Into<String>) -> Self {
        self.user = user.into();
        self.api_token = api_token.into();
        self
    }

    pub fn webhook(mut self, url: impl Into<String>, secret: impl Into<String>) -> Self {
        self.webhook = Some(WebhookTarget::new(url, secret));
        self
    }
}

pub type JenkinsSim = Sim<JenkinsState>;

impl Sim<JenkinsState> {
    pub async fn start(config: JenkinsConfig) -> std::io::Result<JenkinsSim> {
        let webhook = config.webhook.clone();
        start(webhook, |base| JenkinsState::new(config, base), api::routes).await
    }

    /// Defines the job `spec.repo` (stages = the spec's jobs, parameters = the spec's) and
    /// queues a build started by an SCM change. Returns the queue item id.
    pub async fn start_run(&self, spec: RunSpec) -> Result<u64, SpecError> {
        spec.validate()?;
        Ok(self
            .update(|st| {
                let job = spec.repo.clone();
                st.define(spec);
                st.enqueue(&job, Vec::new(), "Started by an SCM change", Instant::now())
                    .expect("just defined")
            })
            .await)
    }

    /// Queues a build of an existing job as someone else would (another user, a timer…).
    /// Returns the queue item id, or `None` for an unknown job.
    pub async fn trigger_build(
        &self,
        job: &str,
        parameters: &[(&str, &str)],
        cause: &str,
    ) -> Option<u64> {
        let given = parameters
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.update(|st| st.enqueue(job, given, cause, Instant::now()))
            .await
    }

    pub async fn queue_item(&self, id: u64) -> Option<QueueItem> {
        self.inspect(|st| st.queue.get(&id).cloned()).await
    }

    pub async fn build(&self, job: &str, number: u64) -> Option<Build> {
        self.inspect(|st| st.builds.get(&(job.to_string(), number)).cloned())
            .await
    }

    /// Waits until queue item `id` became a build and that build finished; returns it.
    pub async fn wait_item(&self, id: u64, timeout: Duration) -> Result<Build, Timeout> {
        let done = |st: &JenkinsState| {
            let q = st.queue.get(&id)?;
            let b = st.builds.get(&(q.job.clone(), q.build?))?;
            (!b.building).then(|| b.clone())
        };
        self.wait_until(timeout, |st| done(st).is_some()).await?;
        Ok(self.inspect(done).await.expect("checked"))
    }
}
