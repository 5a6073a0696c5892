-- Per-account leases on upstream credentials. A gateway instance holds an
-- account's lease while it refreshes the account's OAuth tokens (refresh
-- tokens rotate, so two refreshes at once lose the account) and an owner's
-- edit holds it while it rewrites the account. Not a foreign key: a lease
-- may outlive its account by its few seconds of life.
CREATE TABLE credential_leases (
    account_id TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
