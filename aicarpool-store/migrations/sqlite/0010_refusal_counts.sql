-- The gateway's own refusals by reason, counted in reports beside errors:
-- rollups keep one count per reason so the counts outlive the records,
-- and `usage_facts` gives records (0 or 1) and rollups alike.
ALTER TABLE usage_rollups ADD COLUMN refused_rate_limit INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN refused_quota INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN refused_budget INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN refused_concurrency INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN refused_fair_share INTEGER NOT NULL DEFAULT 0;

DROP VIEW usage_facts;
CREATE VIEW usage_facts AS
    SELECT at, key_id, user_id, group_id, account_id, model, 1 AS requests,
           input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
           cache_read_tokens, cost_micro_usd, status >= 400 AS errors,
           accuracy = 'estimated' AS estimated, accuracy = 'partial' AS partial,
           CASE WHEN refusal = 'rate-limit' THEN 1 ELSE 0 END AS refused_rate_limit,
           CASE WHEN refusal = 'quota' THEN 1 ELSE 0 END AS refused_quota,
           CASE WHEN refusal = 'budget' THEN 1 ELSE 0 END AS refused_budget,
           CASE WHEN refusal = 'concurrency' THEN 1 ELSE 0 END AS refused_concurrency,
           CASE WHEN refusal = 'fair-share' THEN 1 ELSE 0 END AS refused_fair_share
    FROM usage_records
    UNION ALL
    SELECT at, key_id, user_id, group_id, NULLIF(account_id, ''), model, requests,
           input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
           cache_read_tokens, cost_micro_usd, errors, estimated, partial,
           refused_rate_limit, refused_quota, refused_budget, refused_concurrency,
           refused_fair_share
    FROM usage_rollups;
