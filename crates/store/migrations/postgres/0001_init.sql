-- Healing sessions: one per failed run attempt that started healing.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    repository TEXT NOT NULL,
    run_id TEXT NOT NULL,
    first_attempt BIGINT NOT NULL,
    current_attempt BIGINT NOT NULL,
    heal_attempts BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    category TEXT,
    confidence DOUBLE PRECISION,
    fingerprint TEXT,
    strategy TEXT,
    transient BIGINT,
    diagnosis TEXT,
    plan TEXT,
    reason TEXT,
    event TEXT NOT NULL,
    workflow TEXT NOT NULL DEFAULT '',
    head_sha TEXT,
    failed_at BIGINT NOT NULL,
    finished_at BIGINT,
    time_to_green_ms BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (platform, repository, run_id, first_attempt)
);
CREATE INDEX sessions_run ON sessions (platform, repository, run_id);
CREATE INDEX sessions_created ON sessions (created_at);

-- Every accepted delivery, so a redelivery gets the same answer and changes nothing.
CREATE TABLE deliveries (
    platform TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    session_id TEXT,
    status_code BIGINT NOT NULL,
    response TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (platform, delivery_id)
);

-- The durable work queue. A running job whose lease expired is taken again (crash recovery).
CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    session_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    run_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    tries BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX jobs_ready ON jobs (status, run_at);

-- Platform actions; the primary key makes each heal attempt call the platform at most once.
CREATE TABLE actions (
    session_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, attempt, target)
);

-- What happened to a session, in order, for humans reading the history.
CREATE TABLE session_log (
    id BIGSERIAL PRIMARY KEY,
    session_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX session_log_session ON session_log (session_id);
