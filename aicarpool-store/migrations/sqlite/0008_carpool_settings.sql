-- A group's fair share of subscription windows and its fare split (JSON,
-- '{}' reads as the defaults), and each member's weight in the fair share.
ALTER TABLE carpool_groups ADD COLUMN fair_share TEXT NOT NULL DEFAULT '{}';
ALTER TABLE carpool_groups ADD COLUMN fare_split TEXT NOT NULL DEFAULT '{}';
ALTER TABLE memberships ADD COLUMN share_weight INTEGER NOT NULL DEFAULT 1;
