-- API tokens: only a hash of each token is kept; the token itself is shown once at creation.
CREATE TABLE api_tokens (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);

-- A human's decision on a plan: one per person per heal attempt, so four-eyes approval
-- counts distinct people, and a later plan of the same session starts from none.
CREATE TABLE approvals (
    session_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    approver TEXT NOT NULL,
    decision TEXT NOT NULL,
    comment TEXT,
    at BIGINT NOT NULL,
    PRIMARY KEY (session_id, attempt, approver)
);
