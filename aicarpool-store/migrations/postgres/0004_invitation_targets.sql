-- Invitations name what accepting grants: a group place (`role` is the
-- group role), an enterprise role (`role` is `owner` or `admin`) or a
-- department's administration (`role` is `admin`). Exactly one target is
-- set, and each goes with what it names.
ALTER TABLE invitations ALTER COLUMN group_id DROP NOT NULL;
ALTER TABLE invitations
    ADD COLUMN enterprise_id TEXT REFERENCES enterprises (id) ON DELETE CASCADE;
ALTER TABLE invitations
    ADD COLUMN department_id TEXT REFERENCES departments (id) ON DELETE CASCADE;
ALTER TABLE invitations ADD CONSTRAINT invitations_one_target
    CHECK (num_nonnulls(group_id, enterprise_id, department_id) = 1);
CREATE INDEX invitations_by_enterprise ON invitations (enterprise_id);
CREATE INDEX invitations_by_department ON invitations (department_id);
