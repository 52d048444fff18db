-- Tessera metadata, version 10: glossary terms, the governance council's shared definitions
-- (customer_id is U and eight digits). A term has versions, and a published version never
-- changes, and a contract column references one version.
CREATE TABLE glossary_terms (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    file_name TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (name, version)
)
