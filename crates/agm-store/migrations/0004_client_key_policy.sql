-- Per-client-key policy and usage attribution. Each limit is NULL when not set.
ALTER TABLE client_keys ADD COLUMN models         TEXT;    -- model patterns, comma-separated ("gemini-*,claude-sonnet-4-5")
ALTER TABLE client_keys ADD COLUMN rpm            INTEGER; -- requests per minute
ALTER TABLE client_keys ADD COLUMN concurrency    INTEGER; -- requests in flight at once
ALTER TABLE client_keys ADD COLUMN daily_tokens   INTEGER; -- tokens in + out per UTC day
ALTER TABLE client_keys ADD COLUMN daily_requests INTEGER; -- requests per UTC day
ALTER TABLE client_keys ADD COLUMN expires_at     INTEGER; -- unix milliseconds
-- The client key a request came with (its id; no foreign key: the log outlives keys).
ALTER TABLE request_log ADD COLUMN key_id TEXT;
