-- Per session, the decision pipeguard made (or, in observe mode, would have made) on a failure
-- and what a later re-run of the same run said about it: the figures behind readiness.
-- `would_retry` is 0 or 1; `outcome` is confirmed, contradicted, missed or NULL (no evidence);
-- `rerun_at` is when a person re-ran it (NULL when nobody did, or pipeguard did).
CREATE TABLE decisions (
    session_id TEXT PRIMARY KEY,
    repository TEXT NOT NULL,
    platform TEXT NOT NULL,
    mode TEXT NOT NULL,
    would_retry BIGINT NOT NULL,
    outcome TEXT,
    failed_at BIGINT NOT NULL,
    rerun_at BIGINT,
    decided_at BIGINT NOT NULL
);
CREATE INDEX decisions_repository ON decisions (repository, failed_at);

-- Per repository, the healing mode set through the API; it overrides the configuration file's.
CREATE TABLE repository_modes (
    repository TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
