-- Incoming mail (kurir-intake): every message taken in from an account, exactly once.
--
-- `messages` holds one row per distinct message of an account. `dedupe_key` is the normalised
-- Message-ID, or `sha256:<hash of the raw MIME>` when there is none, so the same message seen
-- again under a new server id (UIDVALIDITY changed, a Graph move gave it a new id) is recognised
-- instead of stored twice. Raw MIME is inline in `raw` up to a size limit, otherwise in a file
-- under the data dir (`raw_path`, relative), written and synced before the row commits.
CREATE TABLE messages (
    id           INTEGER PRIMARY KEY,
    account      TEXT NOT NULL,
    dedupe_key   TEXT NOT NULL,
    message_id   TEXT,
    content_hash TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('stored', 'quarantined')),
    reason       TEXT,
    handler      TEXT NOT NULL,
    from_addr    TEXT,
    to_addrs     TEXT,
    subject      TEXT,
    date         TEXT,
    size         INTEGER NOT NULL,
    attachments  TEXT NOT NULL DEFAULT '[]',
    raw          BLOB,
    raw_path     TEXT,
    first_server_id TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    UNIQUE (account, dedupe_key),
    CHECK ((raw IS NULL) <> (raw_path IS NULL))
);
CREATE INDEX messages_account_received ON messages (account, id);

-- Every server id a message was seen under (IMAP `UIDVALIDITY:UID`, POP3 UIDL, Graph id) and
-- whether the server-side step (move to the processed/quarantine folder, POP3 DELE) is known to be
-- done. A listed server id that is already here is never fetched again, only moved.
CREATE TABLE message_server_ids (
    account    TEXT NOT NULL,
    server_id  TEXT NOT NULL,
    message    INTEGER NOT NULL REFERENCES messages (id),
    state      TEXT NOT NULL CHECK (state IN ('stored', 'done')),
    seen_at    TEXT NOT NULL,
    PRIMARY KEY (account, server_id)
);

-- The import queue the ERP picks up: documents extracted by an account type's handler. The file
-- is first written under `<data>/import/<account>/.staging/` and renamed into
-- `<data>/import/<account>/` only after this row has committed (state 'staged' -> 'ready'), so the
-- ERP never sees a document whose message is not stored, nor one twice.
CREATE TABLE import_queue (
    id          INTEGER PRIMARY KEY,
    account     TEXT NOT NULL,
    message     INTEGER NOT NULL REFERENCES messages (id),
    kind        TEXT NOT NULL,
    file_name   TEXT NOT NULL,
    content_type TEXT,
    size        INTEGER NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('staged', 'ready', 'picked_up')),
    created_at  TEXT NOT NULL,
    UNIQUE (account, file_name)
);

-- One health record per account: what the scheduler and `kurir messages`/the web UI show.
CREATE TABLE intake_health (
    account        TEXT PRIMARY KEY,
    last_attempt   TEXT,
    last_success   TEXT,
    last_error     TEXT,
    last_error_at  TEXT,
    failures       INTEGER NOT NULL DEFAULT 0,
    taken_in_total INTEGER NOT NULL DEFAULT 0
);
