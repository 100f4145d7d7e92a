-- The first schema. Timestamps are unix milliseconds (UTC) in INTEGER columns.
-- Columns holding secrets contain sealed values ("v1:" + base64(nonce || ciphertext)),
-- never plaintext.

CREATE TABLE accounts (
    id                TEXT    NOT NULL PRIMARY KEY,
    email             TEXT    NOT NULL,
    pool              TEXT    NOT NULL CHECK (pool IN ('antigravity', 'code-assist', 'gemini-api')),
    refresh_token     TEXT    NOT NULL, -- sealed
    access_token      TEXT,             -- sealed
    access_expires_at INTEGER,
    project_id        TEXT,
    tier              TEXT,
    state             TEXT    NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'disabled', 'blocked')),
    state_reason      TEXT,
    state_url         TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (pool, email)
) STRICT;

CREATE INDEX accounts_email ON accounts (email);

CREATE TABLE settings (
    key        TEXT    NOT NULL PRIMARY KEY,
    value      TEXT    NOT NULL, -- JSON
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE client_keys (
    id            TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    prefix        TEXT    NOT NULL, -- the first characters of the secret, for display and lookup
    secret_sha256 TEXT    NOT NULL UNIQUE, -- hex; the secret itself is never stored
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
) STRICT;

CREATE INDEX client_keys_prefix ON client_keys (prefix);

CREATE TABLE audit_log (
    id      INTEGER NOT NULL PRIMARY KEY,
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    subject TEXT    NOT NULL,
    detail  TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE request_log (
    id             INTEGER NOT NULL PRIMARY KEY,
    at             INTEGER NOT NULL,
    api            TEXT    NOT NULL,
    client_model   TEXT    NOT NULL,
    upstream_model TEXT    NOT NULL,
    account_id     TEXT,   -- no foreign key: the log outlives removed accounts
    status         INTEGER NOT NULL,
    latency_ms     INTEGER NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    error_class    TEXT
) STRICT;

CREATE INDEX request_log_at ON request_log (at);
