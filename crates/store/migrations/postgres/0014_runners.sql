-- Jobs per runner (GitHub runner, GitLab runner, Buildkite agent, Jenkins node), passed or
-- failed, for telling a bad runner from its pool. One row per job: a redelivery or the
-- worker's later diagnosis of the same job updates it instead of counting it twice.
-- `runner_id` is what the platform's API takes (GitLab runner id, Buildkite org/agent id).
-- `category` is set once the failure was diagnosed; failures are unrelated when they differ
-- in (repository, category).
CREATE TABLE runner_jobs (
    platform TEXT NOT NULL,
    job_id TEXT NOT NULL,
    runner TEXT NOT NULL,
    runner_id TEXT,
    repository TEXT NOT NULL,
    failed BIGINT NOT NULL,
    category TEXT,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (platform, job_id)
);
CREATE INDEX runner_jobs_seen ON runner_jobs (platform, seen_at);

-- What was decided about a runner: suspect (its failures far above its pool's) and
-- quarantined (taken out through the platform's API). A release by an operator clears both and
-- restarts its counts from `released_at`.
CREATE TABLE runners (
    platform TEXT NOT NULL,
    name TEXT NOT NULL,
    suspect BIGINT NOT NULL DEFAULT 0,
    quarantined BIGINT NOT NULL DEFAULT 0,
    detail TEXT,
    changed_at BIGINT NOT NULL,
    released_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (platform, name)
);
