-- Settings as the seed has them: one sparse layer of key/value pairs per scope
-- ('system', 'user:ANNA', 'account:Monitor-to-Monitor', 'webshop'). Secrets are AES-256-GCM
-- ciphertext in `secret`; plain values in `value`; never both.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
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
    secret BLOB,
    set_at TEXT NOT NULL,
    PRIMARY KEY (scope, key),
    CHECK ((value IS NULL) <> (secret IS NULL))
);

-- Refresh tokens of delegated flows (device code, username/password), encrypted like secrets,
-- so that a restart does not force a new interactive sign-in.
CREATE TABLE refresh_tokens (
    cache_key  TEXT PRIMARY KEY,
    secret     BLOB NOT NULL,
    updated_at TEXT NOT NULL
);
