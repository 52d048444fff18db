-- Tessera metadata, version 12: the sources products pull their datasets from (their files,
-- replaced with the product's apply), where each source stands, and the secrets sources name
-- (sealed with a key kept outside this store, and never shown by the API).
CREATE TABLE sources (
    domain TEXT NOT NULL,
    product TEXT NOT NULL,
    name TEXT NOT NULL,
    dataset TEXT NOT NULL,
    connector TEXT NOT NULL,
    file_name TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (domain, product, name)
);

CREATE TABLE source_states (
    domain TEXT NOT NULL,
    product TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    position TEXT,
    last_pull_at TEXT,
    last_success_at TEXT,
    last_rows BIGINT NOT NULL,
    total_rows BIGINT NOT NULL,
    lag_seconds DOUBLE PRECISION,
    failures BIGINT NOT NULL,
    last_error TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (domain, product, name)
);

CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    team TEXT NOT NULL,
    sealed TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
