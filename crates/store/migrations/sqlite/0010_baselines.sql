-- Per job, the model of its recent green runs (templates of their logs), sealed like logs when
-- encryption is on. `id` is the job's key (platform, repository, workflow, job) as one text, so
-- key rotation walks the table like the others; `green_runs` is a JSON array of run ids.
CREATE TABLE baselines (
    id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    repository TEXT NOT NULL,
    workflow TEXT NOT NULL,
    job TEXT NOT NULL,
    model TEXT NOT NULL,
    green_runs TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- Retention deletes models by age and by repository.
CREATE INDEX baselines_updated ON baselines (updated_at);
CREATE INDEX baselines_repository ON baselines (repository);
