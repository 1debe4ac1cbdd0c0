-- What healed a failure (by fingerprint) on hosts of one OS family, learned by the host
-- loop: offered to the analyst first, and replayed without one (gated and verified again).
CREATE TABLE host_fixes (
    fingerprint TEXT NOT NULL,
    os_family TEXT NOT NULL,
    -- JSON arrays of command lines.
    fixes TEXT NOT NULL,
    diagnostics TEXT NOT NULL,
    verification TEXT NOT NULL,
    healed BIGINT NOT NULL,
    last_host TEXT NOT NULL,
    first_healed_at BIGINT NOT NULL,
    last_healed_at BIGINT NOT NULL,
    PRIMARY KEY (fingerprint, os_family, fixes)
);
