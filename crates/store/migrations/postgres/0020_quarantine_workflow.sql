-- The workflow (pipeline) a quarantined test was seen failing in: only its green runs count as
-- the test's passes. NULL (quarantines from before, tests never seen failing) counts the green
-- runs of every workflow of the repository, as before.
ALTER TABLE quarantine ADD COLUMN workflow TEXT;
