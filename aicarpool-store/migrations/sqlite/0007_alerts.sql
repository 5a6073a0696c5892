-- Alert rules of groups and enterprises, and the events each has told
-- (claimed before delivery, so instances sharing the database tell an
-- event once). Deleting the owner deletes its rules.
CREATE TABLE alert_rules (
    id              TEXT PRIMARY KEY,
    group_id        TEXT REFERENCES carpool_groups (id) ON DELETE CASCADE,
    enterprise_id   TEXT REFERENCES enterprises (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    target          TEXT NOT NULL,
    -- The threshold in thousandths; NULL for the kind's default.
    threshold_milli INTEGER,
    secret          BLOB NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    CHECK ((group_id IS NULL) <> (enterprise_id IS NULL))
);
CREATE INDEX alert_rules_by_group ON alert_rules (group_id);
CREATE INDEX alert_rules_by_enterprise ON alert_rules (enterprise_id);

CREATE TABLE alert_events (
    rule_id   TEXT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    event_key TEXT NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (rule_id, event_key)
);
