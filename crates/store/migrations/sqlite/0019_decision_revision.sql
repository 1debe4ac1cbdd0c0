-- Where each decided failure ran (its workflow, branch and commit): a later green run of the
-- same workflow on the same branch for another commit records the outcome fixed_by_push.
ALTER TABLE decisions ADD COLUMN workflow TEXT;
ALTER TABLE decisions ADD COLUMN branch TEXT;
ALTER TABLE decisions ADD COLUMN head_sha TEXT;
CREATE INDEX decisions_branch ON decisions (repository, workflow, branch);
