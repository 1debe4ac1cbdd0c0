-- Past runs `pipeguard import` read and found nothing to measure in (never re-run, or a re-run
-- that was cancelled): a later import skips them while `seen` (the run's updated_at as its
-- platform lists it) is unchanged, and reads them again once people ran them again.
CREATE TABLE imported_runs (
    platform TEXT NOT NULL,
    repository TEXT NOT NULL,
    run_id TEXT NOT NULL,
    seen TEXT NOT NULL,
    read_at BIGINT NOT NULL,
    PRIMARY KEY (platform, repository, run_id)
);
