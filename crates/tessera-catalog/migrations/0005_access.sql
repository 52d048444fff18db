-- Tessera metadata, version 5: who may do what. Grants of read access to a product (for a
-- user, a group or a team, until a time or for good, optionally restricted by a row filter),
-- access requests and their decisions, admins' Cedar policies, and a counter that every change
-- to who may do what moves on, so each instance knows when to rebuild its access model.
CREATE TABLE grants (
    grant_id TEXT PRIMARY KEY,
    domain TEXT NOT NULL,
    product TEXT NOT NULL,
    grantee_kind TEXT NOT NULL,
    grantee TEXT NOT NULL,
    row_filter TEXT,
    expires_at TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at TEXT,
    access_request TEXT
);

CREATE INDEX grants_by_product ON grants (domain, product);

CREATE TABLE access_requests (
    request_id TEXT PRIMARY KEY,
    domain TEXT NOT NULL,
    product TEXT NOT NULL,
    requester TEXT NOT NULL,
    purpose TEXT NOT NULL,
    days BIGINT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    decided_by TEXT,
    decided_at TEXT,
    reason TEXT,
    grant_id TEXT
);

CREATE TABLE policies (
    policy_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE TABLE generations (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

INSERT INTO generations (name, value) VALUES ('access', 0)
