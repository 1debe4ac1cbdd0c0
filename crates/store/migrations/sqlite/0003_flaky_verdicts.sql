-- Per-test outcomes per repository, for flaky-test detection. One row per (session, test):
-- a session's outcome counts once for each failing test it named, however often it is seen.
CREATE TABLE test_observations (
    session_id TEXT NOT NULL,
    test TEXT NOT NULL,
    repository TEXT NOT NULL,
    flaky BIGINT NOT NULL,
    time_lost_ms BIGINT NOT NULL,
    observed_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, test)
);

-- The per-test totals of test_observations, kept in the same transaction.
CREATE TABLE test_stats (
    repository TEXT NOT NULL,
    test TEXT NOT NULL,
    runs BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    flaky_failures BIGINT NOT NULL DEFAULT 0,
    time_lost_ms BIGINT NOT NULL DEFAULT 0,
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    PRIMARY KEY (repository, test)
);

-- Tests an operator declared flaky: their failures are retried at once.
CREATE TABLE quarantine (
    repository TEXT NOT NULL,
    test TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    added_at BIGINT NOT NULL,
    PRIMARY KEY (repository, test)
);

-- A human's category for a session, with the evidence the learned classifier trains on and
-- what pipeguard had said, for measuring agreement. The latest verdict of a session wins.
CREATE TABLE verdicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL UNIQUE,
    category TEXT NOT NULL,
    diagnosed_category TEXT,
    diagnosed_by TEXT,
    note TEXT NOT NULL DEFAULT '',
    evidence TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
