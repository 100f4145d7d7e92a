-- Context scaling: when agm shrank a request's upstream copy to fit the model's window,
-- how ("standard; cut=12345 tokens"); NULL when the request went as the client sent it.
ALTER TABLE request_log ADD COLUMN context_scaled TEXT;
