-- Live views ask for sessions changed since a time, twice a second per open dashboard.
CREATE INDEX sessions_updated ON sessions (updated_at);
