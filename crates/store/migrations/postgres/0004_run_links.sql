-- Runs a heal started anew (a new pipeline with a bigger runner, a bumped cache key): their
-- deliveries are the outcome of the session that started them, not new failures.
CREATE TABLE run_links (
    platform TEXT NOT NULL,
    repository TEXT NOT NULL,
    run_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (platform, repository, run_id)
);
