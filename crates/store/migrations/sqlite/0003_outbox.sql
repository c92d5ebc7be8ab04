-- Outgoing mail (kurir-outbox): the durable outbox.
--
-- A message is accepted (the CLI returns, the SMTP listener answers 250) only after its row has
-- committed; the database runs with synchronous = FULL, so that commit is fsync'd. Workers lease
-- rows (`leased_until`, `lease_token`) before sending; a worker that dies leaves a lease that
-- expires, and the row goes back to the queue. `raw` is the complete RFC 5322 message as it will
-- be sent (Graph MIME form and SMTP DATA send the same bytes).
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY,
    -- The Kurir user whose effective settings send it (ERP user code, e.g. ANNA or WEBSHOP).
    sender_user   TEXT NOT NULL,
    -- Where it came from: cli, listener:<local user>, api, …
    origin        TEXT NOT NULL,
    from_addr     TEXT,
    -- Envelope recipients, JSON array of addresses (To + Cc + Bcc).
    recipients    TEXT NOT NULL,
    subject       TEXT,
    message_id    TEXT,
    size          INTEGER NOT NULL,
    raw           BLOB NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'cancelled')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    -- Unix milliseconds (integers compare correctly; RFC 3339 text with fractions does not).
    next_attempt_at INTEGER NOT NULL,
    leased_until  INTEGER,
    lease_token   TEXT,
    last_error    TEXT,
    -- How it went out (graph, smtp-xoauth2, smtp) and the server's answer, once sent.
    via           TEXT,
    server_reply  TEXT,
    created_at    TEXT NOT NULL,
    sent_at       TEXT
);
-- The workers' question: what is due? (queued and due, or sending with an expired lease)
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_sender ON outbox (sender_user, id);

-- Local credentials for the SMTP submission listener: a legacy component (the webshop) logs in
-- with AUTH PLAIN/LOGIN as `name`, and its mail is sent as Kurir user `kurir_user`. Only an
-- argon2id hash of the password is stored.
CREATE TABLE listener_users (
    name        TEXT PRIMARY KEY,
    kurir_user  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    last_login  TEXT
);
