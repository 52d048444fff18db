-- Tessera metadata, version 3: contracts and product ids are scoped to their domain. A contract
-- is identified by (domain, contract_id), so the same id in two domains is two contracts, never
-- a clash. Likewise a product id is unique within its domain. A contract published before takes
-- the domain of the datasets that follow it. Tables are rebuilt (SQLite cannot change a primary
-- key in place) and renamed, and PostgreSQL and SQLite both carry foreign keys over a rename.
-- (No semicolons in comments: the runner splits statements on them.)
CREATE TABLE contracts_v3 (
    domain TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL,
    file_name TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (domain, contract_id, version)
);

INSERT INTO contracts_v3 (domain, contract_id, version, status, file_name, source, created_at)
SELECT COALESCE((SELECT MIN(d.domain) FROM datasets d WHERE d.contract_id = c.contract_id), ''),
       c.contract_id, c.version, c.status, c.file_name, c.source, c.created_at
FROM contracts c;

CREATE TABLE products_v3 (
    domain TEXT NOT NULL REFERENCES domains (name),
    name TEXT NOT NULL,
    product_id TEXT NOT NULL,
    version TEXT,
    status TEXT NOT NULL,
    description TEXT,
    owner TEXT,
    file_name TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (domain, name),
    UNIQUE (domain, product_id)
);

INSERT INTO products_v3 (domain, name, product_id, version, status, description, owner, file_name, source, created_at, updated_at)
SELECT domain, name, product_id, version, status, description, owner, file_name, source, created_at, updated_at FROM products;

CREATE TABLE datasets_v3 (
    domain TEXT NOT NULL,
    product TEXT NOT NULL,
    name TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    contract_version TEXT NOT NULL,
    location TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (domain, product, name),
    FOREIGN KEY (domain, product) REFERENCES products_v3 (domain, name),
    FOREIGN KEY (domain, contract_id, contract_version) REFERENCES contracts_v3 (domain, contract_id, version)
);

INSERT INTO datasets_v3 (domain, product, name, contract_id, contract_version, location, created_at, updated_at)
SELECT domain, product, name, contract_id, contract_version, location, created_at, updated_at FROM datasets;

DROP TABLE datasets;

DROP TABLE products;

DROP TABLE contracts;

ALTER TABLE contracts_v3 RENAME TO contracts;

ALTER TABLE products_v3 RENAME TO products;

ALTER TABLE datasets_v3 RENAME TO datasets
