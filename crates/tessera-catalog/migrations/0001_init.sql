-- Tessera metadata, version 1. Portable SQL: the same text runs on SQLite and PostgreSQL.
CREATE TABLE domains (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);

CREATE TABLE products (
    domain TEXT NOT NULL REFERENCES domains (name),
    name TEXT NOT NULL,
    product_id TEXT NOT NULL UNIQUE,
    version TEXT,
    status TEXT NOT NULL,
    description TEXT,
    owner TEXT,
    file_name TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (domain, name)
);

CREATE TABLE contracts (
    contract_id TEXT NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL,
    file_name TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (contract_id, version)
);

CREATE TABLE datasets (
    domain TEXT NOT NULL,
    product TEXT NOT NULL,
    name TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    contract_version TEXT NOT NULL,
    location TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (domain, product, name),
    FOREIGN KEY (domain, product) REFERENCES products (domain, name),
    FOREIGN KEY (contract_id, contract_version) REFERENCES contracts (contract_id, version)
);

CREATE TABLE batches (
    domain TEXT NOT NULL,
    product TEXT NOT NULL,
    dataset TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    accepted BIGINT NOT NULL,
    quarantined BIGINT NOT NULL,
    table_version BIGINT,
    committed_at TEXT NOT NULL,
    PRIMARY KEY (domain, product, dataset, batch_id)
);
