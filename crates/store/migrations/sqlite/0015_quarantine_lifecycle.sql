-- A quarantined test's lifecycle: who owns it, when it is released at the latest, the
-- first-attempt green runs of its repository since it was quarantined (or last failed), and
-- the ticket filed for it. Quarantines from before get the default 14 days from now.
ALTER TABLE quarantine ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE quarantine ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE quarantine ADD COLUMN passes_since BIGINT NOT NULL DEFAULT 0;
ALTER TABLE quarantine ADD COLUMN ticket_id TEXT;
ALTER TABLE quarantine ADD COLUMN ticket_url TEXT;
UPDATE quarantine SET expires_at = added_at + 14 * 86400000 WHERE expires_at = 0;
-- Housekeeping looks for expired quarantines.
CREATE INDEX quarantine_expires ON quarantine (expires_at);
