-- Tessera metadata, version 7: the query log. Every query from every front end, finished,
-- failed, refused or abandoned, with who ran it, what it read and what it cost, and the
-- products it read (indexed, so owner teams find the queries on their products).
CREATE TABLE query_log (
    query_id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    front_end TEXT NOT NULL,
    sql_text TEXT NOT NULL,
    datasets TEXT NOT NULL,
    started_at TEXT NOT NULL,
    wall_ms DOUBLE PRECISION NOT NULL,
    cpu_ms DOUBLE PRECISION NOT NULL,
    rows_returned BIGINT NOT NULL,
    bytes_returned BIGINT NOT NULL,
    rows_scanned BIGINT NOT NULL,
    bytes_scanned BIGINT NOT NULL,
    status TEXT NOT NULL,
    error_class TEXT,
    error TEXT
);

CREATE INDEX query_log_by_time ON query_log (started_at);

CREATE TABLE query_log_products (
    query_id TEXT NOT NULL,
    product TEXT NOT NULL,
    PRIMARY KEY (query_id, product)
);

CREATE INDEX query_log_products_by_product ON query_log_products (product)
