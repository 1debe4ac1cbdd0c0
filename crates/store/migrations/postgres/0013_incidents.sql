-- Incidents: one outage (a cause and the external target it failed on) across repositories.
-- Their sessions are held, probed by one canary at a time and released in a paced wave.
CREATE TABLE incidents (
    id BIGSERIAL PRIMARY KEY,
    cause TEXT NOT NULL,
    target TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    closed_at BIGINT,
    closed_by TEXT,
    -- The session whose re-run probes the cause now, if one does.
    canary_session TEXT,
    canaries BIGINT NOT NULL DEFAULT 0,
    next_canary_at BIGINT NOT NULL,
    sessions_released BIGINT NOT NULL DEFAULT 0,
    released_at BIGINT,
    escalated_at BIGINT
);
-- At most one open incident per cause, whichever replica saw it first.
CREATE UNIQUE INDEX incidents_open_cause ON incidents (cause, target) WHERE closed_at IS NULL;

-- The external target a session's failure named, and the incident that held it.
ALTER TABLE sessions ADD COLUMN target TEXT;
ALTER TABLE sessions ADD COLUMN incident_id BIGINT;
CREATE INDEX sessions_cause ON sessions (category, target, failed_at);
CREATE INDEX sessions_incident ON sessions (incident_id, status);
