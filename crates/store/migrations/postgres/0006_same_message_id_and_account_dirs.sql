-- A message is a duplicate only when it is the same message: the same content (content_hash),
-- or a server id already recorded. Since this migration `dedupe_key` is `blake3:<content hash>`
-- for every new row; rows recorded before it keep their `mid:<Message-ID>` (or content) keys and
-- are still found through their `content_hash`. A different message that carries a Message-ID
-- the account already has is stored as a message of its own and points at the earliest such row.
ALTER TABLE messages ADD COLUMN same_message_id_as BIGINT REFERENCES messages (id);
CREATE INDEX messages_account_content_hash ON messages (account, content_hash);
CREATE INDEX messages_account_message_id ON messages (account, message_id);

-- The directory of an account under `<data>/import`, `<data>/spool` and `<data>/locks`, assigned
-- once and kept: two account names that clean to the same file name ("Orders A", "Orders_A")
-- must not share a directory. `dir_key` is the name in lower case, unique, because Windows file
-- systems do not tell "Orders" from "orders".
CREATE TABLE account_dirs (
    account  TEXT PRIMARY KEY,
    dir_name TEXT NOT NULL,
    dir_key  TEXT NOT NULL UNIQUE
);
