-- The schema of the SQLite backend, in PostgreSQL types. Timestamps are
-- unix milliseconds (BIGINT), as there: exact, and the same conversions
-- for both backends. Lists, maps and limits are JSONB, so operators can
-- query them. Enums are their lower-case / snake_case names.
--
-- `seq` columns number rows as they are inserted; listings break ties of
-- equal timestamps with them (SQLite uses its rowid).

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    is_system_admin BOOLEAN NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- `groups` is an SQL keyword.
CREATE TABLE carpool_groups (
    id            TEXT PRIMARY KEY,
    seq           BIGINT GENERATED ALWAYS AS IDENTITY,
    name          TEXT NOT NULL,
    enterprise_id TEXT,
    department_id TEXT,
    max_members   BIGINT,
    limits        JSONB NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE memberships (
    group_id  TEXT NOT NULL REFERENCES carpool_groups (id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seq       BIGINT GENERATED ALWAYS AS IDENTITY,
    role      TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE invitations (
    id         TEXT PRIMARY KEY,
    group_id   TEXT NOT NULL REFERENCES carpool_groups (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    email      TEXT,
    role       TEXT NOT NULL,
    max_uses   BIGINT,
    uses       BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX invitations_by_group ON invitations (group_id);

-- The owner is a group or an enterprise; neither is a foreign key because
-- enterprises live outside this schema. Group-owned accounts are deleted
-- with their group by the store.
CREATE TABLE accounts (
    id              TEXT PRIMARY KEY,
    seq             BIGINT GENERATED ALWAYS AS IDENTITY,
    name            TEXT NOT NULL,
    platform        TEXT NOT NULL,
    preset          TEXT,
    base_url        TEXT,
    owner_kind      TEXT NOT NULL,
    owner_id        TEXT NOT NULL,
    models          JSONB NOT NULL,
    model_map       JSONB NOT NULL,
    priority        INTEGER NOT NULL,
    weight          BIGINT NOT NULL,
    max_concurrency BIGINT,
    proxy           TEXT,
    enabled         BOOLEAN NOT NULL,
    credentials     BYTEA NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX accounts_by_owner ON accounts (owner_kind, owner_id, created_at);

CREATE TABLE bindings (
    group_id TEXT PRIMARY KEY REFERENCES carpool_groups (id) ON DELETE CASCADE,
    mode     TEXT NOT NULL
);

-- `position` keeps the binding's order.
CREATE TABLE binding_accounts (
    group_id   TEXT NOT NULL REFERENCES bindings (group_id) ON DELETE CASCADE,
    position   BIGINT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    priority   INTEGER,
    weight     BIGINT,
    dedicated  BOOLEAN NOT NULL,
    PRIMARY KEY (group_id, position)
);
CREATE INDEX binding_accounts_by_account ON binding_accounts (account_id);

CREATE TABLE member_keys (
    id         TEXT PRIMARY KEY,
    seq        BIGINT GENERATED ALWAYS AS IDENTITY,
    group_id   TEXT NOT NULL REFERENCES carpool_groups (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    key_hash   TEXT NOT NULL,
    hint       TEXT NOT NULL,
    enabled    BOOLEAN NOT NULL,
    expires_at BIGINT,
    services   JSONB NOT NULL,
    models     JSONB NOT NULL,
    clients    JSONB NOT NULL,
    limits     JSONB NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- The data plane's lookup.
CREATE UNIQUE INDEX member_keys_by_hash ON member_keys (key_hash);
CREATE INDEX member_keys_by_group_user ON member_keys (group_id, user_id, created_at);
CREATE INDEX member_keys_by_user ON member_keys (user_id);

-- History: no foreign keys, so records outlive keys, members and groups.
CREATE TABLE usage_records (
    id                    TEXT PRIMARY KEY,
    at                    BIGINT NOT NULL,
    key_id                TEXT NOT NULL,
    user_id               TEXT NOT NULL,
    group_id              TEXT NOT NULL,
    account_id            TEXT,
    model                 TEXT NOT NULL,
    input_tokens          BIGINT NOT NULL,
    output_tokens         BIGINT NOT NULL,
    cache_write_5m_tokens BIGINT NOT NULL,
    cache_write_1h_tokens BIGINT NOT NULL,
    cache_read_tokens     BIGINT NOT NULL,
    cost_micro_usd        BIGINT NOT NULL,
    latency_ms            BIGINT NOT NULL,
    status                INTEGER NOT NULL,
    accuracy              TEXT NOT NULL
);
CREATE INDEX usage_by_key ON usage_records (key_id, at);
CREATE INDEX usage_by_user ON usage_records (user_id, at);
CREATE INDEX usage_by_group ON usage_records (group_id, at);
CREATE INDEX usage_by_account ON usage_records (account_id, at);
