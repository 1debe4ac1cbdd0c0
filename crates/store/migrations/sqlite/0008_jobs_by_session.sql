-- A session's jobs run one at a time: claiming checks for a running job of the session.
CREATE INDEX jobs_session_status ON jobs (session_id, status);
