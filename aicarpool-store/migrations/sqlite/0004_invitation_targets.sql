-- Invitations name what accepting grants: a group place (`role` is the
-- group role), an enterprise role (`role` is `owner` or `admin`) or a
-- department's administration (`role` is `admin`). Exactly one target is
-- set, and each goes with what it names. SQLite cannot relax a NOT NULL
-- column in place, so the table is rebuilt; nothing refers to it.
CREATE TABLE invitations_new (
    id            TEXT PRIMARY KEY NOT NULL,
    group_id      TEXT REFERENCES carpool_groups (id) ON DELETE CASCADE,
    enterprise_id TEXT REFERENCES enterprises (id) ON DELETE CASCADE,
    department_id TEXT REFERENCES departments (id) ON DELETE CASCADE,
    token_hash    TEXT NOT NULL UNIQUE,
    email         TEXT,
    role          TEXT NOT NULL,
    max_uses      INTEGER,
    uses          INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    CHECK ((group_id IS NOT NULL) + (enterprise_id IS NOT NULL)
           + (department_id IS NOT NULL) = 1)
);
INSERT INTO invitations_new (id, group_id, token_hash, email, role, max_uses, uses,
                             expires_at, created_by, created_at)
    SELECT id, group_id, token_hash, email, role, max_uses, uses,
           expires_at, created_by, created_at
    FROM invitations;
DROP TABLE invitations;
ALTER TABLE invitations_new RENAME TO invitations;
CREATE INDEX invitations_by_group ON invitations (group_id);
CREATE INDEX invitations_by_enterprise ON invitations (enterprise_id);
CREATE INDEX invitations_by_department ON invitations (department_id);
