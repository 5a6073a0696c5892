-- Enterprise mode: enterprises, their members, the department tree and its
-- admins, the audit log and enterprise events. Budgets are JSONB
-- ({"monthlyUsd": …, "dailyTokens": …}). Groups keep their
-- `enterprise_id` / `department_id` columns from 0001 (not foreign keys);
-- the store deletes an enterprise's groups itself.

CREATE TABLE enterprises (
    id         TEXT PRIMARY KEY,
    seq        BIGINT GENERATED ALWAYS AS IDENTITY,
    name       TEXT NOT NULL,
    budget     JSONB NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE enterprise_members (
    enterprise_id TEXT NOT NULL REFERENCES enterprises (id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seq           BIGINT GENERATED ALWAYS AS IDENTITY,
    role          TEXT NOT NULL,
    added_at      BIGINT NOT NULL,
    PRIMARY KEY (enterprise_id, user_id)
);
CREATE INDEX enterprise_members_by_user ON enterprise_members (user_id);

-- `parent_id` is not a foreign key: the server refuses to delete a
-- department that still has children, and moves are checked for cycles.
CREATE TABLE departments (
    id            TEXT PRIMARY KEY,
    seq           BIGINT GENERATED ALWAYS AS IDENTITY,
    enterprise_id TEXT NOT NULL REFERENCES enterprises (id) ON DELETE CASCADE,
    parent_id     TEXT,
    name          TEXT NOT NULL,
    budget        JSONB NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX departments_by_enterprise ON departments (enterprise_id, created_at);
-- Walking the tree down (department usage scopes).
CREATE INDEX departments_by_parent ON departments (parent_id);

CREATE TABLE department_admins (
    department_id TEXT NOT NULL REFERENCES departments (id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seq           BIGINT GENERATED ALWAYS AS IDENTITY,
    added_at      BIGINT NOT NULL,
    PRIMARY KEY (department_id, user_id)
);
CREATE INDEX department_admins_by_user ON department_admins (user_id);

CREATE INDEX carpool_groups_by_enterprise ON carpool_groups (enterprise_id, created_at);
CREATE INDEX carpool_groups_by_department ON carpool_groups (department_id);

-- History: no foreign keys, so entries outlive what they describe.
CREATE TABLE audit_log (
    id            TEXT PRIMARY KEY,
    seq           BIGINT GENERATED ALWAYS AS IDENTITY,
    at            BIGINT NOT NULL,
    actor_id      TEXT,
    action        TEXT NOT NULL,
    target_type   TEXT NOT NULL,
    target_id     TEXT NOT NULL,
    enterprise_id TEXT,
    group_id      TEXT,
    detail        JSONB NOT NULL
);
CREATE INDEX audit_by_time ON audit_log (at);
CREATE INDEX audit_by_enterprise ON audit_log (enterprise_id, at);
CREATE INDEX audit_by_group ON audit_log (group_id, at);

CREATE TABLE enterprise_events (
    id            TEXT PRIMARY KEY,
    seq           BIGINT GENERATED ALWAYS AS IDENTITY,
    enterprise_id TEXT NOT NULL REFERENCES enterprises (id) ON DELETE CASCADE,
    department_id TEXT,
    at            BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    dedupe_key    TEXT NOT NULL,
    detail        JSONB NOT NULL,
    UNIQUE (enterprise_id, dedupe_key)
);
CREATE INDEX enterprise_events_by_time ON enterprise_events (enterprise_id, at);
