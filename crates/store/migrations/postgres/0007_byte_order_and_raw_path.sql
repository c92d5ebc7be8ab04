-- One SQL text for both databases (crates/store/src/sql): text that is sorted or compared
-- by order sorts in byte order, as SQLite's does, and `messages` has SQLite's `raw_path`
-- column (always NULL here: PostgreSQL keeps raw MIME in `raw`).
ALTER TABLE messages ADD COLUMN raw_path TEXT;

ALTER TABLE users ALTER COLUMN code TYPE TEXT COLLATE "C";
ALTER TABLE accounts ALTER COLUMN name TYPE TEXT COLLATE "C";
ALTER TABLE settings ALTER COLUMN scope TYPE TEXT COLLATE "C";
ALTER TABLE settings ALTER COLUMN key TYPE TEXT COLLATE "C";
ALTER TABLE messages ALTER COLUMN received_at TYPE TEXT COLLATE "C";
ALTER TABLE message_server_ids ALTER COLUMN seen_at TYPE TEXT COLLATE "C";
ALTER TABLE message_server_ids ALTER COLUMN server_id TYPE TEXT COLLATE "C";
ALTER TABLE intake_health ALTER COLUMN account TYPE TEXT COLLATE "C";
ALTER TABLE listener_users ALTER COLUMN name TYPE TEXT COLLATE "C";
ALTER TABLE admin_users ALTER COLUMN name TYPE TEXT COLLATE "C";
ALTER TABLE admin_sessions ALTER COLUMN admin TYPE TEXT COLLATE "C";
ALTER TABLE admin_sessions ALTER COLUMN expires_at TYPE TEXT COLLATE "C";
ALTER TABLE api_keys ALTER COLUMN name TYPE TEXT COLLATE "C";
