//! The Build REST API 7.1 (builds, timeline, logs, build and stage retries) and the Pipelines
//! Runs API for new runs.

use crate::api::{encode, ApiClient, Auth, HttpOptions, LOG_TAIL_BYTES};
use crate::settings::Section;
use crate::webhook::{label_char, valid_path};
use crate::{parse_time_ms, require, Ci, JobLog, PlatformError, Rerun, RunState, OUTCOME_ATTEMPT};
use async_trait::async_trait;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform, Runner};
use pipeguard_core::policy::Capabilities;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap};

const NO_TOKEN: &str = "PIPEGUARD_AZURE_TOKEN is not set; retries and new runs need a personal access token with Build (read & execute)";

const VERSION: &str = "api-version=7.1";

pub struct AzureClient {
    api: ApiClient,
}

#[derive(Deserialize)]
struct IdRef {
    id: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiBuild {
    #[serde(default)]
    status: String,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    finish_time: Option<String>,
    #[serde(default)]
    source_branch: Option<String>,
    #[serde(default)]
    source_version: Option<String>,
    #[serde(default)]
    definition: Option<IdRef>,
}

#[derive(Deserialize)]
struct Timeline {
    #[serde(default)]
    records: Vec<Record>,
}

#[derive(Deserialize)]
struct Issue {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    id: String,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    name: String,
    /// A stage's reference name (YAML `stage:`), what the stage retry takes.
    #[serde(default)]
    identifier: Option<String>,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    attempt: Option<u32>,
    #[serde(default)]
    log: Option<IdRef>,
    #[serde(default)]
    issues: Option<Vec<Issue>>,
    /// The agent a job ran on, as the pool lists it.
    #[serde(default)]
    worker_name: Option<String>,
    /// The project's agent queue the job ran from: it leads to the agent's pool.
    #[serde(default)]
    queue_id: Option<u64>,
}

impl Record {
    fn failed(&self) -> bool {
        self.result.as_deref() == Some("failed")
    }

    fn errors(&self) -> impl Iterator<Item = &str> {
        self.issues
            .iter()
            .flatten()
            .filter(|i| i.kind.as_deref() == Some("error"))
            .filter_map(|i| i.message.as_deref())
    }

    /// The agent a job ran on, with the queue it came from as
    /// `{org}/{project}/_apis/distributedtask/queues/{id}` (what taking it out starts from).
    fn runner(&self, ev: &FailureEvent) -> Option<Runner> {
        let name = self
            .worker_name
            .as_deref()
            .filter(|n| !n.trim().is_empty())?;
        let queue = match (project_api(ev), self.queue_id) {
            (Ok(project), Some(q)) => Some(format!("{project}{QUEUES}{q}")),
            _ => None,
        };
        Runner::new(Some(name), queue)
    }
}

const QUEUES: &str = "/_apis/distributedtask/queues/";

/// A project's agent queue and the pool behind it (`Queues - Get`).
#[derive(Deserialize)]
struct AgentQueue {
    pool: PoolRef,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PoolRef {
    id: u64,
    #[serde(default)]
    is_hosted: bool,
}

#[derive(Deserialize)]
struct Agents {
    #[serde(default)]
    value: Vec<Agent>,
}

#[derive(Deserialize)]
struct Agent {
    id: u64,
    #[serde(default)]
    name: String,
}

/// `(/{org}/{project}, queue id)` of a runner's id as [`Record::runner`] writes it.
fn queue_of(runner: &Runner) -> Option<(&str, &str)> {
    let (project, queue) = runner.id.as_deref()?.split_once(QUEUES)?;
    let segments: Vec<&str> = project.strip_prefix('/')?.split('/').collect();
    let safe = segments.len() >= 2
        && segments
            .iter()
            .all(|s| !s.is_empty() && *s != "." && *s != ".." && !s.contains(['?', '#', '\\']));
    let numeric = !queue.is_empty() && queue.bytes().all(|b| b.is_ascii_digit());
    (safe && numeric).then_some((project, queue))
}

/// The timeline as a tree: records by id, to walk from a job up to its stage.
struct Tree<'a> {
    by_id: HashMap<&'a str, &'a Record>,
    records: &'a [Record],
}

impl<'a> Tree<'a> {
    fn new(records: &'a [Record]) -> Tree<'a> {
        Tree {
            by_id: records.iter().map(|r| (r.id.as_str(), r)).collect(),
            records,
        }
    }

    /// The stage a record belongs to (Job → Phase → Stage).
    fn stage_of(&self, r: &'a Record) -> Option<&'a Record> {
        let mut cur = r;
        for _ in 0..8 {
            cur = self.by_id.get(cur.parent_id.as_deref()?)?;
            if cur.kind == "Stage" {
                return Some(cur);
            }
        }
        None
    }

    fn failed_jobs(&self) -> impl Iterator<Item = &'a Record> {
        self.records
            .iter()
            .filter(|r| r.kind == "Job" && r.failed())
    }

    fn failed_tasks(&self, job: &'a Record) -> impl Iterator<Item = &'a Record> {
        self.records.iter().filter(move |r| {
            r.kind == "Task" && r.failed() && r.parent_id.as_deref() == Some(job.id.as_str())
        })
    }

    /// The run's attempt: the highest attempt of its stages and jobs.
    fn attempt(&self) -> u32 {
        self.records
            .iter()
            .filter(|r| matches!(r.kind.as_str(), "Stage" | "Phase" | "Job"))
            .filter_map(|r| r.attempt)
            .max()
            .unwrap_or(1)
            .clamp(1, OUTCOME_ATTEMPT - 1)
    }
}

/// `/{org}/{project}` (or the collection path), each segment checked and encoded.
fn project_api(ev: &FailureEvent) -> Result<String, PlatformError> {
    if !valid_path(&ev.repository, 2..=4, label_char) {
        return Err(PlatformError::Permanent(format!(
            "{:?} is not an Azure DevOps organization/project",
            ev.repository
        )));
    }
    Ok(ev
        .repository
        .split('/')
        .map(|s| format!("/{}", encode(s)))
        .collect())
}

fn build_api(ev: &FailureEvent) -> Result<String, PlatformError> {
    if ev.run_id.is_empty() || !ev.run_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PlatformError::Permanent(format!(
            "run id {:?} is not an Azure build id",
            ev.run_id
        )));
    }
    Ok(format!(
        "{}/_apis/build/builds/{}",
        project_api(ev)?,
        ev.run_id
    ))
}

impl AzureClient {
    pub fn new(s: &Section, http: &HttpOptions) -> AzureClient {
        // A personal access token goes as the Basic auth password with an empty user.
        let auth = s
            .token
            .clone()
            .map(|t| Auth::Basic(String::new(), Some(t)))
            .unwrap_or(Auth::None);
        AzureClient {
            api: ApiClient::new(&s.api_url, auth, http.clone()),
        }
    }

    async fn build(&self, ev: &FailureEvent) -> Result<ApiBuild, PlatformError> {
        let path = format!("{}?{VERSION}", build_api(ev)?);
        self.api.get_json("get build", &path).await
    }

    async fn timeline(&self, ev: &FailureEvent) -> Result<Vec<Record>, PlatformError> {
        let path = format!("{}/timeline?{VERSION}", build_api(ev)?);
        let t: Timeline = self.api.get_json("get build timeline", &path).await?;
        Ok(t.records)
    }

    async fn log(&self, ev: &FailureEvent, id: u64) -> Result<Vec<u8>, PlatformError> {
        let path = format!("{}/logs/{id}?{VERSION}", build_api(ev)?);
        Ok(self
            .api
            .log_tail("build log", &path)
            .await?
            .unwrap_or_default())
    }

    /// A failed job's text: its failed tasks' logs (else its own log), then the error issues
    /// the timeline records, which are all there is when an agent was lost.
    async fn job_log(
        &self,
        ev: &FailureEvent,
        tree: &Tree<'_>,
        job: &Record,
    ) -> Result<Vec<u8>, PlatformError> {
        let tasks: Vec<&Record> = tree.failed_tasks(job).collect();
        let mut ids: Vec<u64> = tasks
            .iter()
            .filter_map(|t| t.log.as_ref().map(|l| l.id))
            .collect();
        if ids.is_empty() {
            ids.extend(job.log.as_ref().map(|l| l.id));
        }
        let mut out = Vec::new();
        for id in ids {
            out.extend(self.log(ev, id).await?);
            if !out.ends_with(b"\n") && !out.is_empty() {
                out.push(b'\n');
            }
        }
        for msg in std::iter::once(job).chain(tasks).flat_map(|r| r.errors()) {
            out.extend_from_slice(format!("##[error]{msg}\n").as_bytes());
        }
        if out.len() > LOG_TAIL_BYTES {
            out.drain(..out.len() - LOG_TAIL_BYTES);
        }
        Ok(out)
    }

    /// The stages to retry so that exactly the failed jobs `wanted` run again; refused when a
    /// stage also holds a failed job that must not be re-run, or when there are no stages.
    fn stages_for(tree: &Tree<'_>, wanted: &BTreeSet<&str>) -> Result<Vec<String>, PlatformError> {
        let mut stages: Vec<(&Record, Vec<&str>)> = Vec::new();
        for job in tree
            .failed_jobs()
            .filter(|j| wanted.contains(j.id.as_str()))
        {
            let stage = tree
                .stage_of(job)
                .filter(|s| s.identifier.as_deref().is_some_and(|i| !i.is_empty()))
                .ok_or_else(|| {
                    PlatformError::Permanent(format!(
                        "job {:?} has no stage to retry alone (classic pipelines retry the whole build)",
                        job.name
                    ))
                })?;
            match stages.iter_mut().find(|(s, _)| s.id == stage.id) {
                Some((_, jobs)) => jobs.push(job.id.as_str()),
                None => stages.push((stage, vec![job.id.as_str()])),
            }
        }
        if stages.is_empty() {
            return Err(PlatformError::Permanent(
                "none of the jobs to retry is a failed job of this build".into(),
            ));
        }
        for (stage, _) in &stages {
            let others: Vec<&str> = tree
                .failed_jobs()
                .filter(|j| !wanted.contains(j.id.as_str()))
                .filter(|j| tree.stage_of(j).is_some_and(|s| s.id == stage.id))
                .map(|j| j.name.as_str())
                .collect();
            if !others.is_empty() {
                return Err(PlatformError::Permanent(format!(
                    "stage {:?} also has failed job(s) {} that must not be re-run, and Azure retries a stage's failed jobs together",
                    stage.name,
                    others.join(", ")
                )));
            }
        }
        Ok(stages
            .into_iter()
            .filter_map(|(s, _)| s.identifier.clone())
            .collect())
    }

    /// Starts a new run of the build's pipeline on its branch and commit with
    /// `templateParameters` (a bigger pool, a cache-key version).
    pub async fn new_run(
        &self,
        ev: &FailureEvent,
        parameters: &[(String, String)],
    ) -> Result<Rerun, PlatformError> {
        require(self.api.has_credentials(), NO_TOKEN)?;
        let b = self.build(ev).await?;
        let definition = b.definition.map(|d| d.id).ok_or_else(|| {
            PlatformError::Permanent("the build names no pipeline definition".into())
        })?;
        let branch = b
            .source_branch
            .or_else(|| {
                ev.branch.as_deref().map(|b| match b.starts_with("refs/") {
                    true => b.to_string(),
                    false => format!("refs/heads/{b}"),
                })
            })
            .ok_or_else(|| PlatformError::Permanent("the build names no branch".into()))?;
        let mut repo = json!({"refName": branch});
        if let Some(v) = b.source_version.or_else(|| ev.head_sha.clone()) {
            repo["version"] = Value::from(v);
        }
        let params: Map<String, Value> = parameters
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        let body = json!({
            "resources": {"repositories": {"self": repo}},
            "templateParameters": params,
        });
        let path = format!(
            "{}/_apis/pipelines/{definition}/runs?{VERSION}",
            project_api(ev)?
        );
        let r: Value = self
            .api
            .call_once("run pipeline", Method::POST, &path, Some(&body))
            .await?
            .json()
            .await
            .unwrap_or(Value::Null);
        let id = r["id"].as_u64().map(|i| i.to_string());
        Ok(Rerun {
            detail: format!(
                "POST {} -> run {}",
                self.api.url(&path),
                id.as_deref().unwrap_or("(no id)")
            ),
            new_run_id: id,
            ..Default::default()
        })
    }
}

#[async_trait]
impl Ci for AzureClient {
    fn platform(&self) -> Platform {
        Platform::Azure
    }

    fn capabilities(&self, _event: &FailureEvent) -> Capabilities {
        Capabilities {
            retry: self.api.has_credentials(),
            ..Default::default()
        }
    }

    async fn run_state(&self, ev: &FailureEvent) -> Result<RunState, PlatformError> {
        let b = self.build(ev).await?;
        let finished = parse_time_ms(b.finish_time.as_deref());
        let result = b.result.as_deref().unwrap_or("");
        if b.status == "completed" && matches!(result, "succeeded" | "partiallySucceeded") {
            return Ok(RunState::Completed {
                attempt: OUTCOME_ATTEMPT,
                success: true,
                finished_at_ms: finished,
            });
        }
        let records = self.timeline(ev).await?;
        let attempt = Tree::new(&records).attempt();
        Ok(match b.status.as_str() {
            "completed" => RunState::Completed {
                attempt,
                success: false,
                finished_at_ms: finished,
            },
            // notStarted, inProgress, cancelling, postponed
            _ => RunState::InProgress { attempt },
        })
    }

    async fn failed_logs(&self, ev: &FailureEvent) -> Result<Vec<JobLog>, PlatformError> {
        let records = self.timeline(ev).await?;
        let tree = Tree::new(&records);
        let mut out = Vec::new();
        for job in tree.failed_jobs() {
            let log = self.job_log(ev, &tree, job).await?;
            out.push(JobLog {
                job: FailedJob {
                    id: job.id.clone(),
                    name: job.name.clone(),
                    stage: tree.stage_of(job).map(|s| s.name.clone()),
                    environment: None,
                    platform_reason: None,
                    runner: job.runner(ev),
                },
                log,
            });
        }
        Ok(out)
    }

    /// Every failed job at once with the build retry; some of them with the retry of their
    /// stages, when no other failed job shares those stages.
    async fn retry(
        &self,
        ev: &FailureEvent,
        jobs: &[FailedJob],
        all_failed: bool,
    ) -> Result<String, PlatformError> {
        require(self.api.has_credentials(), NO_TOKEN)?;
        let wanted: BTreeSet<&str> = jobs
            .iter()
            .map(|j| j.id.as_str())
            .filter(|i| !i.is_empty())
            .collect();
        if all_failed || wanted.is_empty() {
            let path = format!("{}?retry=true&{VERSION}", build_api(ev)?);
            self.api
                .call_once("retry build", Method::PATCH, &path, Some(&json!({})))
                .await?;
            return Ok(format!("PATCH {}", self.api.url(&path)));
        }
        let records = self.timeline(ev).await?;
        let stages = Self::stages_for(&Tree::new(&records), &wanted)?;
        let body = json!({"state": "retry", "forceRetryAllJobs": false});
        let mut done = Vec::new();
        for stage in stages {
            let path = format!("{}/stages/{}?{VERSION}", build_api(ev)?, encode(&stage));
            self.api
                .call_once("retry stage", Method::PATCH, &path, Some(&body))
                .await?;
            done.push(format!("PATCH {}", self.api.url(&path)));
        }
        Ok(done.join("; "))
    }

    fn can_take_out_runners(&self) -> bool {
        self.api.has_credentials()
    }

    /// Disables the agent in its pool (`PATCH …/distributedtask/pools/{pool}/agents/{id}`,
    /// `enabled: false`): it finishes its job and gets no other. The job's queue gives the
    /// pool, the pool's agents by name give the id. Microsoft-hosted agents are not ours to
    /// disable. The token needs Agent Pools (read & manage).
    async fn take_out_runner(&self, runner: &Runner) -> Result<String, PlatformError> {
        require(self.api.has_credentials(), NO_TOKEN)?;
        let (project, queue) = queue_of(runner).ok_or_else(|| {
            PlatformError::Permanent(format!(
                "agent {} has no agent queue to find its pool by",
                runner.name
            ))
        })?;
        let q: AgentQueue = self
            .api
            .get_json(
                "get agent queue",
                &format!("{project}{QUEUES}{queue}?{VERSION}"),
            )
            .await?;
        if q.pool.is_hosted {
            return Err(PlatformError::Permanent(format!(
                "agent {} is Microsoft-hosted: its pool cannot be changed",
                runner.name
            )));
        }
        let org = &project[..project.rfind('/').unwrap_or(project.len())];
        let pool = format!("{org}/_apis/distributedtask/pools/{}/agents", q.pool.id);
        let agents: Agents = self
            .api
            .get_json(
                "find agent",
                &format!("{pool}?agentName={}&{VERSION}", encode(&runner.name)),
            )
            .await?;
        let agent = agents
            .value
            .iter()
            .find(|a| a.name == runner.name)
            .ok_or_else(|| {
                PlatformError::Permanent(format!("no agent {} in pool {}", runner.name, q.pool.id))
            })?;
        let path = format!("{pool}/{}?{VERSION}", agent.id);
        let body = json!({"id": agent.id, "enabled": false});
        self.api
            .call("disable agent", Method::PATCH, &path, Some(&body))
            .await?;
        Ok(format!("PATCH {path} enabled=false"))
    }

    fn can_rerun_with(&self) -> bool {
        self.api.has_credentials()
    }

    /// A retry keeps the run's parameters, so a new run of the pipeline carries them.
    async fn rerun_with(
        &self,
        ev: &FailureEvent,
        _workflow: Option<&str>,
        inputs: &[(String, String)],
    ) -> Result<Rerun, PlatformError> {
        self.new_run(ev, inputs).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use wiremock::matchers::{body_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const BUILD: &str = "/org/My%20Project/_apis/build/builds/7";

    fn client(uri: &str) -> AzureClient {
        AzureClient::new(
            &Section {
                api_url: uri.to_string(),
                token: Some("pat".into()),
                ..Default::default()
            },
            &HttpOptions {
                tries: 1,
                backoff: Duration::from_millis(1),
                ..Default::default()
            },
        )
    }

    fn event() -> FailureEvent {
        FailureEvent {
            repository: "org/My Project".into(),
            run_id: "7".into(),
            attempt: 1,
            branch: Some("main".into()),
            ..Default::default()
        }
    }

    fn rec(id: &str, parent: Option<&str>, kind: &str, name: &str, result: &str) -> Value {
        json!({"id": id, "parentId": parent, "type": kind, "name": name,
               "identifier": if kind == "Stage" { json!(name.to_lowercase()) } else { Value::Null },
               "state": "completed", "result": result, "attempt": 1, "issues": null})
    }

    /// Stage Test: jobs unit (failed, flaky network) and integ (failed, bug); stage Deploy:
    /// job prod (failed); stage Build: job compile (succeeded).
    fn timeline() -> Value {
        let mut unit = rec("j-unit", Some("p-test"), "Job", "unit", "failed");
        unit["log"] = json!({"id": 10});
        unit["issues"] = json!([{"type": "error", "message": "We stopped hearing from agent Hosted Agent."},
                                {"type": "warning", "message": "not this"}]);
        let mut task = rec("t-unit", Some("j-unit"), "Task", "cargo test", "failed");
        task["log"] = json!({"id": 11});
        unit["workerName"] = json!("build-vm-07");
        unit["queueId"] = json!(4);
        let mut integ = rec("j-integ", Some("p-test"), "Job", "integ", "failed");
        integ["log"] = json!({"id": 20});
        integ["workerName"] = json!("build-vm-07");
        let mut prod = rec("j-prod", Some("p-deploy"), "Job", "prod", "failed");
        prod["log"] = json!({"id": 30});
        prod["attempt"] = json!(2);
        json!({"records": [
            rec("s-build", None, "Stage", "Build", "succeeded"),
            rec("p-build", Some("s-build"), "Phase", "compile", "succeeded"),
            rec("j-compile", Some("p-build"), "Job", "compile", "succeeded"),
            rec("s-test", None, "Stage", "Test", "failed"),
            rec("p-test", Some("s-test"), "Phase", "tests", "failed"),
            unit, task, integ,
            rec("s-deploy", None, "Stage", "Deploy", "failed"),
            rec("p-deploy", Some("s-deploy"), "Phase", "prod", "failed"),
            prod,
        ]})
    }

    async fn mount_timeline(mock: &MockServer) {
        Mock::given(method("GET"))
            .and(path(format!("{BUILD}/timeline")))
            .and(query_param("api-version", "7.1"))
            // ":pat" in Basic auth.
            .and(header("authorization", "Basic OnBhdA=="))
            .respond_with(ResponseTemplate::new(200).set_body_json(timeline()))
            .mount(mock)
            .await;
    }

    #[tokio::test]
    async fn failed_jobs_with_their_failed_tasks_logs_stage_and_errors() {
        let mock = MockServer::start().await;
        mount_timeline(&mock).await;
        for (id, text) in [(11, "task log\n"), (20, "integ log"), (30, "prod log")] {
            Mock::given(method("GET"))
                .and(path(format!("{BUILD}/logs/{id}")))
                .respond_with(ResponseTemplate::new(200).set_body_string(text))
                .expect(1)
                .mount(&mock)
                .await;
        }
        // The job's own log is not needed when a task's failed.
        Mock::given(method("GET"))
            .and(path(format!("{BUILD}/logs/10")))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&mock)
            .await;
        let logs = client(&mock.uri()).failed_logs(&event()).await.unwrap();
        let got: Vec<(&str, Option<&str>, String)> = logs
            .iter()
            .map(|l| {
                (
                    l.job.name.as_str(),
                    l.job.stage.as_deref(),
                    String::from_utf8_lossy(&l.log).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "unit",
                    Some("Test"),
                    "task log\n##[error]We stopped hearing from agent Hosted Agent.\n".into()
                ),
                ("integ", Some("Test"), "integ log\n".into()),
                ("prod", Some("Deploy"), "prod log\n".into()),
            ]
        );
        // The timeline names the agent and its queue; a job without `workerName` has none.
        let runners: Vec<_> = logs
            .iter()
            .map(|l| {
                l.job
                    .runner
                    .as_ref()
                    .map(|r| (r.name.as_str(), r.id.as_deref()))
            })
            .collect();
        assert_eq!(
            runners,
            [
                Some((
                    "build-vm-07",
                    Some("/org/My%20Project/_apis/distributedtask/queues/4")
                )),
                Some(("build-vm-07", None)),
                None,
            ]
        );
        mock.verify().await;
    }

    fn agent(id: Option<&str>) -> Runner {
        Runner {
            name: "build-vm-07".into(),
            id: id.map(str::to_string),
        }
    }

    const QUEUE: &str = "/org/My%20Project/_apis/distributedtask/queues/4";

    async fn mount_queue(mock: &MockServer, hosted: bool) {
        Mock::given(method("GET"))
            .and(path("/org/My%20Project/_apis/distributedtask/queues/4"))
            .and(query_param("api-version", "7.1"))
            .and(header("authorization", "Basic OnBhdA=="))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": 4, "name": "Linux builders", "projectId": "16dcfeeb-d8fd-495c-917b-fec46cb44fbb",
                "pool": {"id": 12, "name": "Linux builders", "isHosted": hosted}})))
            .mount(mock)
            .await;
    }

    #[tokio::test]
    async fn an_agent_is_disabled_in_the_pool_of_its_queue() {
        let mock = MockServer::start().await;
        mount_queue(&mock, false).await;
        Mock::given(method("GET"))
            .and(path("/org/_apis/distributedtask/pools/12/agents"))
            .and(query_param("agentName", "build-vm-07"))
            .and(query_param("api-version", "7.1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"count": 1,
                "value": [{"id": 31, "name": "build-vm-07", "enabled": true, "status": "online"}]})))
            .mount(&mock)
            .await;
        Mock::given(method("PATCH"))
            .and(path("/org/_apis/distributedtask/pools/12/agents/31"))
            .and(query_param("api-version", "7.1"))
            .and(header("authorization", "Basic OnBhdA=="))
            .and(body_json(json!({"id": 31, "enabled": false})))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"id": 31, "enabled": false})),
            )
            .expect(1)
            .mount(&mock)
            .await;
        let c = client(&mock.uri());
        assert!(c.can_take_out_runners());
        let call = c.take_out_runner(&agent(Some(QUEUE))).await.unwrap();
        assert_eq!(
            call,
            "PATCH /org/_apis/distributedtask/pools/12/agents/31?api-version=7.1 enabled=false"
        );
        mock.verify().await;
    }

    #[tokio::test]
    async fn hosted_unknown_and_unplaced_agents_are_refused() {
        let mock = MockServer::start().await;
        mount_queue(&mock, true).await;
        Mock::given(method("PATCH"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&mock)
            .await;
        let c = client(&mock.uri());
        let hosted = c.take_out_runner(&agent(Some(QUEUE))).await.unwrap_err();
        assert!(hosted.to_string().contains("Microsoft-hosted"), "{hosted}");
        for id in [
            None,
            Some("/org/_apis/distributedtask/queues/4"),
            Some("/org/../_apis/distributedtask/queues/4"),
            Some("/org/p/_apis/distributedtask/queues/4?x=1"),
            Some("https://elsewhere.example/org/p/_apis/distributedtask/queues/4"),
        ] {
            assert!(
                matches!(
                    c.take_out_runner(&agent(id)).await,
                    Err(PlatformError::Permanent(_))
                ),
                "{id:?}"
            );
        }
        let none = AzureClient::new(&Section::default(), &HttpOptions::default());
        assert!(!none.can_take_out_runners());
        mock.verify().await;
    }

    #[tokio::test]
    async fn run_state_reads_the_timeline_attempt() {
        let mock = MockServer::start().await;
        mount_timeline(&mock).await;
        Mock::given(method("GET"))
            .and(path(BUILD))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"id": 7, "status": "inProgress", "result": null})),
            )
            .up_to_n_times(1)
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path(BUILD))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": 7, "status": "completed", "result": "failed",
                "finishTime": "2024-12-02T10:09:00Z"})))
            .up_to_n_times(1)
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path(BUILD))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"id": 7, "status": "completed", "result": "partiallySucceeded"}),
            ))
            .mount(&mock)
            .await;
        let c = client(&mock.uri());
        assert_eq!(
            c.run_state(&event()).await.unwrap(),
            RunState::InProgress { attempt: 2 }
        );
        assert!(matches!(
            c.run_state(&event()).await.unwrap(),
            RunState::Completed {
                attempt: 2,
                success: false,
                finished_at_ms: Some(_)
            }
        ));
        assert!(matches!(
            c.run_state(&event()).await.unwrap(),
            RunState::Completed {
                attempt: OUTCOME_ATTEMPT,
                success: true,
                ..
            }
        ));
    }

    fn job(id: &str) -> FailedJob {
        FailedJob {
            id: id.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_stage_is_retried_alone_when_its_failed_jobs_are_all_transient() {
        let mock = MockServer::start().await;
        mount_timeline(&mock).await;
        Mock::given(method("PATCH"))
            .and(path(format!("{BUILD}/stages/deploy")))
            .and(query_param("api-version", "7.1"))
            .and(body_json(
                json!({"state": "retry", "forceRetryAllJobs": false}),
            ))
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&mock)
            .await;
        Mock::given(method("PATCH"))
            .and(path(format!("{BUILD}/stages/test")))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&mock)
            .await;
        let c = client(&mock.uri());
        let done = c.retry(&event(), &[job("j-prod")], false).await.unwrap();
        assert!(done.contains("/stages/deploy?api-version=7.1"), "{done}");
        // unit shares stage Test with integ, a failure that must not run again.
        let err = c
            .retry(&event(), &[job("j-unit")], false)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PlatformError::Permanent(m) if m.contains("integ")),
            "{err}"
        );
        mock.verify().await;
    }

    #[tokio::test]
    async fn every_failed_job_is_the_build_retry() {
        let mock = MockServer::start().await;
        Mock::given(method("PATCH"))
            .and(path(BUILD))
            .and(query_param("retry", "true"))
            .and(query_param("api-version", "7.1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 7})))
            .expect(1)
            .mount(&mock)
            .await;
        let done = client(&mock.uri())
            .retry(&event(), &[job("j-unit"), job("j-integ")], true)
            .await
            .unwrap();
        assert!(
            done.starts_with("PATCH ") && done.contains("retry=true"),
            "{done}"
        );
        mock.verify().await;
    }

    #[tokio::test]
    async fn a_new_run_of_the_pipeline_with_template_parameters() {
        let mock = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(BUILD))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": 7, "status": "completed", "result": "failed", "definition": {"id": 5},
                "sourceBranch": "refs/heads/main", "sourceVersion": "abc"})))
            .mount(&mock)
            .await;
        Mock::given(method("POST"))
            .and(path("/org/My%20Project/_apis/pipelines/5/runs"))
            .and(query_param("api-version", "7.1"))
            .and(body_json(json!({
                "resources": {"repositories": {"self": {"refName": "refs/heads/main", "version": "abc"}}},
                "templateParameters": {"pool": "large"}
            })))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"id": 8, "state": "inProgress"})),
            )
            .expect(1)
            .mount(&mock)
            .await;
        let r = client(&mock.uri())
            .rerun_with(&event(), None, &[("pool".into(), "large".into())])
            .await
            .unwrap();
        assert_eq!(r.new_run_id.as_deref(), Some("8"));
        mock.verify().await;
    }

    #[test]
    fn paths_are_checked_and_encoded() {
        assert_eq!(build_api(&event()).unwrap(), BUILD);
        let server = FailureEvent {
            repository: "tfs/DefaultCollection/Proj".into(),
            ..event()
        };
        assert_eq!(
            build_api(&server).unwrap(),
            "/tfs/DefaultCollection/Proj/_apis/build/builds/7"
        );
        let bad = FailureEvent {
            run_id: "7?x=1".into(),
            ..event()
        };
        assert!(build_api(&bad).is_err());
        let bad = FailureEvent {
            repository: "org/..".into(),
            ..event()
        };
        assert!(build_api(&bad).is_err());
    }
}
