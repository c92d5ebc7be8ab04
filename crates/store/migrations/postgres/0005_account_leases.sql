-- Which instance takes in an incoming-mail account right now (MessageStore::try_lease_account):
-- taken over with one atomic INSERT … ON CONFLICT … DO UPDATE … WHERE expired, against the
-- database's clock, so instances on machines with drifting clocks still agree.
CREATE TABLE account_leases (
    account      TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,
    leased_until BIGINT NOT NULL,
    acquired_at  TEXT NOT NULL
);
