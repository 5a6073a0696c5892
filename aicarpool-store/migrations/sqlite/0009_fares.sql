-- Account fees, each change dated by the local day it applies from (NULL
-- amount and period end the fee), and each group's closed monthly
-- statements, kept whole so later changes of prices, fees or members
-- never reach them. The first close of a month wins.
CREATE TABLE account_fees (
    account_id       TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- YYYY-MM-DD in the server's time zone.
    from_day         TEXT NOT NULL,
    amount_micro_usd INTEGER,
    period           TEXT,
    PRIMARY KEY (account_id, from_day)
);

CREATE TABLE fare_statements (
    group_id  TEXT NOT NULL REFERENCES carpool_groups (id) ON DELETE CASCADE,
    -- YYYY-MM.
    month     TEXT NOT NULL,
    statement TEXT NOT NULL,
    closed_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, month)
);
