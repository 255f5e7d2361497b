-- Portable SQL: runs unchanged on SQLite and PostgreSQL. Ids are UUID strings, times are
-- Unix seconds, JSON documents are text.
CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    PRIMARY KEY (org_id, user_id)
);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE clusters (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE cluster_tokens (
    id TEXT PRIMARY KEY,
    cluster_id TEXT NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- One row per cluster, hour and reporting source (a collector's node): a retried post
-- replaces its row, so nothing is counted twice.
CREATE TABLE validation_summaries (
    cluster_id TEXT NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
    hour BIGINT NOT NULL,
    source TEXT NOT NULL,
    allowed BIGINT NOT NULL,
    blocked BIGINT NOT NULL,
    no_policy BIGINT NOT NULL,
    document TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, hour, source)
);

CREATE TABLE validation_events (
    id TEXT PRIMARY KEY,
    cluster_id TEXT NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
    time BIGINT NOT NULL,
    document TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX validation_events_expiry ON validation_events (expires_at);
CREATE INDEX validation_events_cluster_time ON validation_events (cluster_id, time);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX audit_log_org_at ON audit_log (org_id, at);
