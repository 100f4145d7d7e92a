-- What the request log needs to explain a request without its content: the route it
-- came in on, how many upstream calls it took, and agm's own share of its latency.
ALTER TABLE request_log ADD COLUMN route TEXT NOT NULL DEFAULT '';
ALTER TABLE request_log ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE request_log ADD COLUMN overhead_us INTEGER;
