-- Timestamps are unix milliseconds (INTEGER). Lists, maps and limits are
-- JSON text. Enums are their lower-case / snake_case names.

CREATE TABLE users (
    id              TEXT PRIMARY KEY NOT NULL,
    email           TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    is_system_admin INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- `groups` is an SQL keyword.
CREATE TABLE carpool_groups (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    enterprise_id TEXT,
    department_id TEXT,
    max_members   INTEGER,
    limits        TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE memberships (
    group_id  TEXT NOT NULL REFERENCES carpool_groups (id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role      TEXT NOT NULL,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE invitations (
    id         TEXT PRIMARY KEY NOT NULL,
    group_id   TEXT NOT NULL REFERENCES carpool_groups (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    email      TEXT,
    role       TEXT NOT NULL,
    max_uses   INTEGER,
    uses       INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX invitations_by_group ON invitations (group_id);

-- The owner is a group or an enterprise; neither is a foreign key because
-- enterprises live outside this schema. Group-owned accounts are deleted
-- with their group by the store.
CREATE TABLE accounts (
    id              TEXT PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL,
    platform        TEXT NOT NULL,
    preset          TEXT,
    base_url        TEXT,
    owner_kind      TEXT NOT NULL,
    owner_id        TEXT NOT NULL,
    models          TEXT NOT NULL,
    model_map       TEXT NOT NULL,
    priority        INTEGER NOT NULL,
    weight          INTEGER NOT NULL,
    max_concurrency INTEGER,
    proxy           TEXT,
    enabled         INTEGER NOT NULL,
    credentials     BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX accounts_by_owner ON accounts (owner_kind, owner_id, created_at);

CREATE TABLE bindings (
    group_id TEXT PRIMARY KEY NOT NULL REFERENCES carpool_groups (id) ON DELETE CASCADE,
    mode     TEXT NOT NULL
);

-- `position` keeps the binding's order.
CREATE TABLE binding_accounts (
    group_id   TEXT NOT NULL REFERENCES bindings (group_id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    priority   INTEGER,
    weight     INTEGER,
    dedicated  INTEGER NOT NULL,
    PRIMARY KEY (group_id, position)
);
CREATE INDEX binding_accounts_by_account ON binding_accounts (account_id);

CREATE TABLE member_keys (
    id         TEXT PRIMARY KEY NOT NULL,
    group_id   TEXT NOT NULL REFERENCES carpool_groups (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    key_hash   TEXT NOT NULL,
    hint       TEXT NOT NULL,
    enabled    INTEGER NOT NULL,
    expires_at INTEGER,
    services   TEXT NOT NULL,
    models     TEXT NOT NULL,
    clients    TEXT NOT NULL,
    limits     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- The data plane's lookup.
CREATE UNIQUE INDEX member_keys_by_hash ON member_keys (key_hash);
CREATE INDEX member_keys_by_group_user ON member_keys (group_id, user_id, created_at);
CREATE INDEX member_keys_by_user ON member_keys (user_id);

-- History: no foreign keys, so records outlive keys, members and groups.
CREATE TABLE usage_records (
    id                    TEXT PRIMARY KEY NOT NULL,
    at                    INTEGER NOT NULL,
    key_id                TEXT NOT NULL,
    user_id               TEXT NOT NULL,
    group_id              TEXT NOT NULL,
    account_id            TEXT,
    model                 TEXT NOT NULL,
    input_tokens          INTEGER NOT NULL,
    output_tokens         INTEGER NOT NULL,
    cache_write_5m_tokens INTEGER NOT NULL,
    cache_write_1h_tokens INTEGER NOT NULL,
    cache_read_tokens     INTEGER NOT NULL,
    cost_micro_usd        INTEGER NOT NULL,
    latency_ms            INTEGER NOT NULL,
    status                INTEGER NOT NULL,
    accuracy              TEXT NOT NULL
);
CREATE INDEX usage_by_key ON usage_records (key_id, at);
CREATE INDEX usage_by_user ON usage_records (user_id, at);
CREATE INDEX usage_by_group ON usage_records (group_id, at);
CREATE INDEX usage_by_account ON usage_records (account_id, at);
