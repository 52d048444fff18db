-- Tessera metadata, version 15: the OpenLineage run events Tessera emitted (each kept, and sent
-- to the configured endpoint when there is one: `delivered_at` is set once it took it).
CREATE TABLE lineage_events (
    event_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    job TEXT NOT NULL,
    event_time TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    delivered_at TEXT,
    attempts BIGINT NOT NULL
);

CREATE INDEX lineage_events_by_time ON lineage_events (created_at);
