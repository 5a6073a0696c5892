-- The request log's failover path, and what its retention leaves of old
-- records: hourly sums per key, account and model, so total quotas,
-- monthly reports and rebuilt limit counters sum the same after the
-- records themselves are gone. Reports read `usage_facts`, both as one.
ALTER TABLE usage_records ADD COLUMN failed_over TEXT;

CREATE TABLE usage_rollups (
    at                    BIGINT NOT NULL,
    key_id                TEXT NOT NULL,
    user_id               TEXT NOT NULL,
    group_id              TEXT NOT NULL,
    -- '' for none, so the hour's identity is one unique key.
    account_id            TEXT NOT NULL,
    model                 TEXT NOT NULL,
    requests              BIGINT NOT NULL,
    input_tokens          BIGINT NOT NULL,
    output_tokens         BIGINT NOT NULL,
    cache_write_5m_tokens BIGINT NOT NULL,
    cache_write_1h_tokens BIGINT NOT NULL,
    cache_read_tokens     BIGINT NOT NULL,
    cost_micro_usd        BIGINT NOT NULL,
    errors                BIGINT NOT NULL,
    estimated             BIGINT NOT NULL,
    partial               BIGINT NOT NULL,
    PRIMARY KEY (key_id, at, account_id, model)
);
CREATE INDEX rollups_by_user ON usage_rollups (user_id, at);
CREATE INDEX rollups_by_group ON usage_rollups (group_id, at);
CREATE INDEX rollups_by_account ON usage_rollups (account_id, at);

CREATE VIEW usage_facts AS
    SELECT at, key_id, user_id, group_id, account_id, model, 1::BIGINT AS requests,
           input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
           cache_read_tokens, cost_micro_usd, CASE WHEN status >= 400 THEN 1 ELSE 0 END::BIGINT AS errors,
           CASE WHEN accuracy = 'estimated' THEN 1 ELSE 0 END::BIGINT AS estimated, CASE WHEN accuracy = 'partial' THEN 1 ELSE 0 END::BIGINT AS partial
    FROM usage_records
    UNION ALL
    SELECT at, key_id, user_id, group_id, NULLIF(account_id, ''), model, requests,
           input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
           cache_read_tokens, cost_micro_usd, errors, estimated, partial
    FROM usage_rollups;
