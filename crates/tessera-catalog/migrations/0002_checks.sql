-- Tessera metadata, version 2: quality check runs and their results, kept as history.
CREATE TABLE check_runs (
    run_id TEXT PRIMARY KEY,
    domain TEXT NOT NULL,
    product TEXT NOT NULL,
    dataset TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    contract_version TEXT NOT NULL,
    trigger TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    result TEXT NOT NULL,
    score DOUBLE PRECISION,
    table_version BIGINT
);

CREATE INDEX check_runs_by_dataset ON check_runs (domain, product, dataset, started_at);

CREATE TABLE check_results (
    run_id TEXT NOT NULL REFERENCES check_runs (run_id),
    position BIGINT NOT NULL,
    check_key TEXT NOT NULL,
    check_type TEXT NOT NULL,
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    field TEXT,
    dimension TEXT NOT NULL,
    severity TEXT NOT NULL,
    quality_id TEXT,
    result TEXT NOT NULL,
    measured DOUBLE PRECISION,
    threshold TEXT NOT NULL,
    reason TEXT NOT NULL,
    samples TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
);
