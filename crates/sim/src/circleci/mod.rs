//! CircleCI: pipelines of workflows of jobs; a workflow rerun (`from_failed` or `jobs`) is a
//! new workflow whose id the answer gives, refused while the workflow is not finished; new
//! pipelines with parameters; v1.1 step output behind `output_url`; signed
//! `workflow-completed` / `job-completed` deliveries.

mod api;
mod payload;
mod state;

pub use state::{short_slug, CircleciState, Job, Pipeline, Project, Refusal, Rerun, Workflow};

use crate::core::scenario::{RunSpec, SpecError};
use crate::core::sim::{start, Sim, Timeout};
use crate::core::webhook::WebhookTarget;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct CircleciConfig {
    /// The personal API token the API expects as `Circle-Token`.
    pub token: String,
    pub webhook: Option<WebhookTarget>,
    /// Items per page of v2 lists.
    pub page_size: usize,
}

impl Default for CircleciConfig {
    fn default() -> Self {
        CircleciConfig {
            token: "sim-circleci-token".into(),
            webhook: None,
            page_size: 20,
        }
    }
}

impl CircleciConfig {
    pub fn token(mut self, t: impl Into<String>) -> Self {
        self.token = t.into();
        self
    }

    pub fn webhook(mut self, url: impl Into<String>, secret: impl Into<String>) -> Self {
        self.webhook = Some(WebhookTarget::new(url, secret));
        self
    }
}

pub type CircleciSim = Sim<CircleciState>;

impl Sim<CircleciState> {
    pub async fn start(config: CircleciConfig) -> std::io::Result<CircleciSim> {
        let webhook = config.webhook.clone();
        start(
            webhook,
            |base| CircleciState::new(config, base),
            api::routes,
        )
        .await
    }

    /// Starts a pipeline (triggered by a push) running the workflow `spec.workflow` of project
    /// `spec.repo` (`gh/org/repo`); returns the pipeline id. The spec becomes that workflow's
    /// script: reruns and new pipelines continue it.
    pub async fn start_run(&self, spec: RunSpec) -> Result<String, SpecError> {
        spec.validate()?;
        Ok(self
            .update(|st| {
                let (slug, branch) = (spec.repo.clone(), spec.branch.clone());
                let script = st.define(spec);
                st.new_pipeline(&slug, &branch, "webhook", BTreeMap::new(), &[script])
            })
            .await)
    }

    /// Adds a workflow to the project (new pipelines run every workflow of it).
    pub async fn define_workflow(&self, spec: RunSpec) -> Result<(), SpecError> {
        spec.validate()?;
        self.update(|st| {
            st.define(spec);
        })
        .await;
        Ok(())
    }

    pub async fn pipeline(&self, id: &str) -> Option<Pipeline> {
        self.inspect(|st| st.pipelines.get(id).cloned()).await
    }

    pub async fn workflow(&self, id: &str) -> Option<Workflow> {
        self.inspect(|st| st.workflows.get(id).cloned()).await
    }

    /// Waits until every workflow of the pipeline finished; returns them, oldest first.
    pub async fn wait_pipeline(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<Vec<Workflow>, Timeout> {
        let done = |st: &CircleciState| {
            st.pipelines
                .get(id)
                .is_some_and(|p| p.workflows.iter().all(|w| st.workflows[w].terminal()))
        };
        self.wait_until(timeout, done).await?;
        Ok(self
            .inspect(|st| {
                let p = &st.pipelines[id];
                p.workflows
                    .iter()
                    .map(|w| st.workflows[w].clone())
                    .collect()
            })
            .await)
    }
}
