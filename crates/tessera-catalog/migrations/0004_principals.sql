-- Tessera metadata, version 4: who may call. Users, the groups and teams they belong to, and
-- their API tokens. A token is stored as the SHA-256 of its secret, never as itself.
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);

CREATE TABLE memberships (
    user_name TEXT NOT NULL REFERENCES users (name),
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (user_name, kind, name)
);

CREATE TABLE api_tokens (
    token_id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users (name),
    secret_sha256 TEXT NOT NULL,
    description TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
)
