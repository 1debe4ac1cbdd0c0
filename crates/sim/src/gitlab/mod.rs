//! GitLab CI: pipelines whose jobs run by stage or `needs`, job retries that make new job ids,
//! pipeline retries that keep the pipeline id, new pipelines with variables, traces, and
//! Pipeline Hook / Job Hook deliveries with `X-Gitlab-Token`.

mod api;
mod notes;
mod payload;
mod repo;
mod state;

pub use notes::{MergeRequest, Note, Noteable, User};
pub use repo::Issue;
pub use state::{GitlabState, Job, JobStatus, Pipeline, Project, Refusal, SimRunner};

use crate::core::ratelimit::RateLimit;
use crate::core::scenario::{RunSpec, SpecError};
use crate::core::sim::{start, Sim, Timeout};
use crate::core::webhook::WebhookTarget;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct GitlabConfig {
    /// The token the API expects as `PRIVATE-TOKEN`.
    pub token: String,
    /// Deliveries carry the target's secret as `X-Gitlab-Token`.
    pub webhook: Option<WebhookTarget>,
    /// Group path → its direct members (subgroups inherit them).
    pub groups: BTreeMap<String, Vec<User>>,
    /// Users outside any group (`GET /users?username=` finds these and group members).
    pub users: Vec<User>,
    /// The API's rate limit (429 with `Retry-After` and `RateLimit-Reset`); `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
}

impl Default for GitlabConfig {
    fn default() -> Self {
        GitlabConfig {
            token: "sim-gitlab-token".into(),
            webhook: None,
            groups: BTreeMap::new(),
            users: Vec::new(),
            rate_limit: None,
        }
    }
}

impl GitlabConfig {
    pub fn token(mut self, t: impl Into<String>) -> Self {
        self.token = t.into();
        self
    }

    pub fn webhook(mut self, url: impl Into<String>, secret: impl Into<String>) -> Self {
        self.webhook = Some(WebhookTarget::new(url, secret));
        self
    }

    /// Adds a user who belongs to no group.
    pub fn user(mut self, u: User) -> Self {
        self.users.push(u);
        self
    }

    /// Every user the stand-in knows: those added and the groups' members.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.iter().chain(self.groups.values().flatten())
    }

    /// `limit` API calls, then 429 until the window resets `pause` later.
    pub fn rate_limit(mut self, limit: u32, pause: Duration) -> Self {
        self.rate_limit = Some(RateLimit { limit, pause });
        self
    }

    /// Makes `members` the direct members of group `path`.
    pub fn group(mut self, path: &str, members: &[User]) -> Self {
        self.groups.insert(path.to_string(), members.to_vec());
        self
    }
}

pub type GitlabSim = Sim<GitlabState>;

impl Sim<GitlabState> {
    pub async fn start(config: GitlabConfig) -> std::io::Result<GitlabSim> {
        let webhook = config.webhook.clone();
        start(webhook, |base| GitlabState::new(config, base), api::routes).await
    }

    /// Starts a `push` pipeline of `spec` on `spec.branch` (`spec.repo` is the project path);
    /// returns the pipeline id. The spec becomes the project's definition: retries and new
    /// pipelines continue its script.
    pub async fn start_run(&self, spec: RunSpec) -> Result<u64, SpecError> {
        spec.validate()?;
        Ok(self
            .update(|st| {
                let branch = spec.branch.clone();
                let script = st.define(spec);
                st.new_pipeline(script, &branch, "push", Vec::new())
            })
            .await)
    }

    /// Adds a finished pipeline to the project's history: created `ago`, its jobs played out
    /// at once; while it has failed, a person retries it the next of `retries` later (each
    /// retry makes new jobs, the failed ones stay listed with `include_retried`). Returns its id.
    pub async fn add_past_pipeline(
        &self,
        spec: RunSpec,
        ago: Duration,
        retries: &[Duration],
    ) -> Result<u64, SpecError> {
        spec.validate()?;
        let created_at = time::OffsetDateTime::now_utc() - ago;
        Ok(self
            .update(|st| st.past_pipeline(spec, created_at, retries))
            .await)
    }

    /// A person retries past pipeline `id`'s failed jobs `gap` after it ended (see
    /// [`Self::add_past_pipeline`]).
    pub async fn retry_past_pipeline(&self, id: u64, gap: Duration) {
        self.update(|st| st.retry_past(id, gap))
            .await
            .expect("a past pipeline with a failed job");
    }

    /// Calls refused so far because the rate limit was used up.
    pub async fn rate_limited(&self) -> u32 {
        self.inspect(|st| st.rate.refused).await
    }

    /// Opens merge request `!iid` of `project` whose head is `sha`.
    pub async fn open_merge_request(&self, project: &str, iid: u64, sha: &str) {
        let mr = MergeRequest {
            project: project.to_string(),
            iid,
            sha: sha.to_string(),
        };
        self.update(|st| st.merge_requests.push(mr)).await;
    }

    /// `author` writes `text` on a merge request or commit of `project`: the note is kept and
    /// a `Note Hook` delivered (returns once it was answered).
    pub async fn write_note(&self, project: &str, on: Noteable, author: &User, text: &str) {
        let d = self
            .update(|st| {
                st.notes.push(Note {
                    project: project.to_string(),
                    on: on.clone(),
                    body: text.to_string(),
                    author: Some(author.clone()),
                });
                notes::note_hook(st, project, &on, author, text)
            })
            .await;
        self.shared.outbox.send(vec![d]);
        self.shared.outbox.drained().await;
    }

    /// Puts a file in a project's repository (for the files API, e.g. `.gitlab/CODEOWNERS`).
    pub async fn put_file(&self, project: &str, path: &str, text: &str) {
        self.update(|st| {
            st.files
                .insert((project.to_string(), path.to_string()), text.to_string());
        })
        .await
    }

    /// Adds a user `GET /users?username=` finds.
    pub async fn add_user(&self, u: User) {
        self.update(|st| st.config.users.push(u)).await
    }

    /// The issues filed so far, in order.
    pub async fn issues(&self) -> Vec<Issue> {
        self.inspect(|st| st.issues.clone()).await
    }

    /// The notes written by pipeguard's token (no author), oldest first.
    pub async fn answers(&self) -> Vec<Note> {
        self.inspect(|st| {
            st.notes
                .iter()
                .filter(|n| n.author.is_none())
                .cloned()
                .collect()
        })
        .await
    }

    pub async fn pipeline(&self, id: u64) -> Option<Pipeline> {
        self.inspect(|st| st.pipelines.get(&id).cloned()).await
    }

    /// Every job of the pipeline, retried ones included, oldest first.
    pub async fn jobs(&self, pipeline: u64) -> Vec<Job> {
        self.inspect(|st| {
            let ids = st.pipelines.get(&pipeline).map(|p| p.jobs.clone());
            ids.unwrap_or_default()
                .iter()
                .map(|id| st.jobs[id].clone())
                .collect()
        })
        .await
    }

    /// Registers an active runner; it takes the jobs of `projects` before any shared runner
    /// does (none: a shared runner).
    pub async fn add_runner(&self, id: u64, description: &str, projects: &[&str]) {
        self.update(|st| {
            st.runners.push(SimRunner {
                id,
                description: description.to_string(),
                paused: false,
                projects: projects.iter().map(|p| p.to_string()).collect(),
            })
        })
        .await
    }

    /// The runner's state, as `PUT /runners/:id` left it.
    pub async fn runner(&self, id: u64) -> Option<SimRunner> {
        self.inspect(|st| st.runners.iter().find(|r| r.id == id).cloned())
            .await
    }

    /// Waits until no job of the pipeline is unfinished, and returns the pipeline.
    pub async fn wait_pipeline(&self, id: u64, timeout: Duration) -> Result<Pipeline, Timeout> {
        self.wait_until(timeout, |st| {
            st.pipelines
                .get(&id)
                .is_some_and(|p| !matches!(p.status.as_str(), "created" | "running"))
        })
        .await?;
        Ok(self.pipeline(id).await.expect("the pipeline exists"))
    }
}
