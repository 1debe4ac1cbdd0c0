-- The key an audit entry was sealed with (an HMAC chain). NULL: sealed before this
-- migration, with the unkeyed SHA-256 chain, which the first keyed entry links on from.
ALTER TABLE audit_log ADD COLUMN chain_key TEXT;
