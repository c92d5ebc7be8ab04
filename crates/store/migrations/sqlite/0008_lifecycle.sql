-- Unattended for years (issue #16): retention, quarantine actions with their audit trail, and
-- the alarms already notified.
--
-- Retention removes a message's raw MIME once it is processed and old (raw = X'', raw_path
-- NULL, raw_purged_at set: the CHECK of 0002 wants exactly one of raw/raw_path non-NULL) and
-- keeps the metadata longer; a sent outbox entry's MIME the same way.
ALTER TABLE messages ADD COLUMN raw_purged_at TEXT;
ALTER TABLE outbox ADD COLUMN raw_purged_at TEXT;
-- An acknowledged import document whose file retention removed from the import folder.
ALTER TABLE import_queue ADD COLUMN file_purged_at TEXT;

-- A quarantined message an administrator dealt with ("mark handled", with a note): it stays
-- quarantined (the reason is kept) but no longer waits for anyone, and retention may purge it.
ALTER TABLE messages ADD COLUMN handled_at TEXT;
ALTER TABLE messages ADD COLUMN handled_by TEXT;
ALTER TABLE messages ADD COLUMN handled_note TEXT;

-- Who did what to which message (reprocess, mark handled, forward, delete), and when.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT
);
CREATE INDEX audit_log_subject ON audit_log (subject, id);

-- Alarms notified to the administrator: one row per alarm while it lasts (key = kind and
-- subject), so each is sent once, repeated at most daily, and a "resolved" notice goes out when
-- its row is no longer among the current alarms.
CREATE TABLE notified_alarms (
    alarm_key  TEXT PRIMARY KEY,
    severity   TEXT NOT NULL,
    message    TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_sent  TEXT NOT NULL
);

-- How far the ERP's webhook has been told (the last message and import id announced).
CREATE TABLE webhook_cursor (
    feed    TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
);
