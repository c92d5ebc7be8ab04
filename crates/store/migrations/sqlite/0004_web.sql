-- The admin web UI and REST API (kurir-web): local admin users, their sessions, and API keys.
--
-- Nothing here can be used to sign in if the database leaks: passwords and API key secrets are
-- argon2id hashes (PHC strings, salt included); sessions are stored as the SHA-256 of a 256-bit
-- random token (a fast hash is enough for a token nobody can guess, and it is looked up on
-- every request). The CSRF token of a session is not a credential on its own and is kept plain
-- so that every form can be checked against it.
CREATE TABLE admin_users (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_login    TEXT
);

CREATE TABLE admin_sessions (
    token_hash TEXT PRIMARY KEY,
    admin      TEXT NOT NULL REFERENCES admin_users (name) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE INDEX admin_sessions_admin ON admin_sessions (admin);

-- An API key is `kurir_<id>_<secret>`: the id finds the row, the secret is checked against the
-- argon2 hash. Revoking deletes the row.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    last_used   TEXT
);
