-- The audit trail. Entries are inserted unsealed (seq, prev_hash and hash NULL) inside the
-- transaction of the audited work; the sealer chains them in id order afterwards. Only the
-- unsealed index is touched by an insert, to keep intake fast.
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    seq BIGINT,
    prev_hash TEXT,
    hash TEXT
);
CREATE INDEX audit_log_unsealed ON audit_log (id) WHERE seq IS NULL;
CREATE UNIQUE INDEX audit_log_seq ON audit_log (seq) WHERE seq IS NOT NULL;

-- Retention: when a session's payload, logs and evidence were removed (its statistics stay).
-- Purges walk sessions by id rather than add indexes every intake would maintain.
ALTER TABLE sessions ADD COLUMN purged_at BIGINT;
