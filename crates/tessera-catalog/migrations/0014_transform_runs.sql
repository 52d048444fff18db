-- Tessera metadata, version 14: the history of transform runs — what triggered each, how it
-- ended, the rows it read and wrote, and why it failed.
CREATE TABLE transform_runs (
    run_id TEXT PRIMARY KEY,
    domain TEXT NOT NULL,
    product TEXT NOT NULL,
    dataset TEXT NOT NULL,
    trigger TEXT NOT NULL,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    principal TEXT NOT NULL,
    started_at TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    rows_in BIGINT NOT NULL,
    rows_out BIGINT NOT NULL,
    table_version BIGINT,
    inputs TEXT NOT NULL,
    error TEXT
);

CREATE INDEX transform_runs_by_dataset ON transform_runs (domain, product, dataset, started_at);
