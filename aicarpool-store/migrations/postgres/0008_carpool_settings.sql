-- A group's fair share of subscription windows and its fare split ('{}'
-- reads as the defaults), and each member's weight in the fair share.
ALTER TABLE carpool_groups ADD COLUMN fair_share JSONB NOT NULL DEFAULT '{}';
ALTER TABLE carpool_groups ADD COLUMN fare_split JSONB NOT NULL DEFAULT '{}';
ALTER TABLE memberships ADD COLUMN share_weight BIGINT NOT NULL DEFAULT 1;
