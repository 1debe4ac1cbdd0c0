-- Why a quarantined test's ticket could not be filed yet (it is tried again from the queue);
-- cleared once the ticket is filed.
ALTER TABLE quarantine ADD COLUMN ticket_error TEXT;
