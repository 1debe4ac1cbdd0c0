-- The audit trail. Entries are inserted unsealed (seq, prev_hash and hash NULL) inside the
-- transaction of the audited work; the sealer chains them in id order afterwards.
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    seq BIGINT UNIQUE,
    prev_hash TEXT,
    hash TEXT
);
CREATE INDEX audit_log_unsealed ON audit_log (id) WHERE seq IS NULL;
CREATE INDEX audit_log_action ON audit_log (action, id);

-- Retention: when a session's payload, logs and evidence were removed (its statistics stay).
ALTER TABLE sessions ADD COLUMN purged_at BIGINT;
CREATE INDEX sessions_repository ON sessions (repository);
CREATE INDEX jobs_session ON jobs (session_id);
CREATE INDEX deliveries_session ON deliveries (session_id);
CREATE INDEX deliveries_received ON deliveries (received_at);
