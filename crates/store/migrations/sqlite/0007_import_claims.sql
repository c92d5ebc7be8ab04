-- The ERP's side of the import queue (issue #16.5): an entry is claimed for a while by one
-- consumer (claim_token until claimed_until, milliseconds since the epoch by the database's
-- clock) and acknowledged once (state 'picked_up', acked_at); an acknowledged entry is never
-- offered again.
ALTER TABLE import_queue ADD COLUMN claim_token TEXT;
ALTER TABLE import_queue ADD COLUMN claimed_until INTEGER;
ALTER TABLE import_queue ADD COLUMN acked_at TEXT;
