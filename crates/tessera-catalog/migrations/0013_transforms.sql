-- Tessera metadata, version 13: the transforms products compute datasets with (their SQL
-- files, replaced with the product's apply).
CREATE TABLE transforms (
    domain TEXT NOT NULL,
    product TEXT NOT NULL,
    dataset TEXT NOT NULL,
    file_name TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (domain, product, dataset)
);
