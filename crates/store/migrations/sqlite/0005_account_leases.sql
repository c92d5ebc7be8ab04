-- Which instance takes in an incoming-mail account right now (MessageStore::try_lease_account).
-- One row per account; a holder whose lease expired (leased_until, Unix ms, in the past) can be
-- replaced by another. With SQLite there is one machine, but a second `kurir serve` on the same
-- data directory is kept out the same way as a second instance on PostgreSQL.
CREATE TABLE account_leases (
    account      TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,
    leased_until INTEGER NOT NULL,
    acquired_at  TEXT NOT NULL
);
