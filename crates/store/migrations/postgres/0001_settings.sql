-- The PostgreSQL store mirrors migrations/sqlite table by table, column by column, so both
-- backends behave the same (crates/store/tests/conformance.rs runs one suite against both).
-- Times the store writes are RFC 3339 text as in SQLite (they compare in time order); outbox and
-- lease clocks are Unix milliseconds (BIGINT). Every integer is BIGINT (Rust i64).
--
-- Settings: one sparse layer of key/value pairs per scope. Secrets are AES-256-GCM ciphertext
-- in `secret`; plain values in `value`; never both.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE users (
    code       TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);

CREATE TABLE accounts (
    name       TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);

CREATE TABLE settings (
    scope  TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT,
    secret BYTEA,
    set_at TEXT NOT NULL,
    PRIMARY KEY (scope, key),
    CHECK ((value IS NULL) <> (secret IS NULL))
);

-- Refresh tokens of delegated flows, encrypted like secrets.
CREATE TABLE refresh_tokens (
    cache_key  TEXT PRIMARY KEY,
    secret     BYTEA NOT NULL,
    updated_at TEXT NOT NULL
);
