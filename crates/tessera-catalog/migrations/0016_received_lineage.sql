-- Tessera metadata, version 16: OpenLineage events other tools sent (POST /api/v1/lineage),
-- kept as they came, with what the lineage graph reads of them.
CREATE TABLE received_lineage_events (
    event_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    event_type TEXT,
    job_namespace TEXT,
    job_name TEXT,
    run_id TEXT,
    event_time TEXT NOT NULL,
    inputs TEXT NOT NULL,
    outputs TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at TEXT NOT NULL,
    received_by TEXT NOT NULL
);

CREATE INDEX received_lineage_by_job ON received_lineage_events (job_namespace, job_name, event_time);
