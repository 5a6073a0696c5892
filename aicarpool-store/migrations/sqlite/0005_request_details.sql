-- What the request log shows of each request beyond its usage: the model
-- the account was sent when a map or translation changed it, the
-- gateway's own refusal reason, the time to the answer's head and how
-- many accounts were tried. Older rows have none of them.
ALTER TABLE usage_records ADD COLUMN served_model TEXT;
ALTER TABLE usage_records ADD COLUMN refusal TEXT;
ALTER TABLE usage_records ADD COLUMN ttfb_ms INTEGER;
ALTER TABLE usage_records ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
