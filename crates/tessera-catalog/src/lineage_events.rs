//! OpenLineage events Tessera emitted: kept in the store (an outbox), and marked delivered once
//! the configured endpoint took them.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::Result;
use crate::store::{Catalog, constant_sql};

/// An emitted OpenLineage event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineageEventRecord {
    pub event_id: String,
    pub run_id: String,
    /// `START`, `COMPLETE`, `FAIL`.
    pub event_type: String,
    /// `namespace/name` of the job.
    pub job: String,
    pub event_time: String,
    /// The event as JSON.
    pub body: String,
    pub created_at: String,
    pub delivered_at: Option<String>,
    /// Deliveries tried.
    pub attempts: i64,
}

const EVENT_SELECT: &str = "SELECT event_id, run_id, event_type, job, event_time, body, created_at, delivered_at, attempts FROM lineage_events";

fn event_row(row: &AnyRow) -> Result<LineageEventRecord> {
    Ok(LineageEventRecord {
        event_id: row.try_get("event_id")?,
        run_id: row.try_get("run_id")?,
        event_type: row.try_get("event_type")?,
        job: row.try_get("job")?,
        event_time: row.try_get("event_time")?,
        body: row.try_get("body")?,
        created_at: row.try_get("created_at")?,
        delivered_at: row.try_get("delivered_at")?,
        attempts: row.try_get("attempts")?,
    })
}

impl Catalog {
    /// Keeps an emitted event (not yet delivered).
    pub async fn record_lineage_event(&self, event: &LineageEventRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO lineage_events (event_id, run_id, event_type, job, event_time, body, created_at, delivered_at, attempts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, 0)",
        )
        .bind(event.event_id.clone())
        .bind(event.run_id.clone())
        .bind(event.event_type.clone())
        .bind(event.job.clone())
        .bind(event.event_time.clone())
        .bind(event.body.clone())
        .bind(event.created_at.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The oldest `limit` events not delivered yet, oldest first.
    pub async fn undelivered_lineage_events(&self, limit: i64) -> Result<Vec<LineageEventRecord>> {
        let rows = sqlx::query(constant_sql(format!(
            "{EVENT_SELECT} WHERE delivered_at IS NULL ORDER BY created_at, event_id LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_row).collect()
    }

    /// Marks an event delivered at `at`, or (without `at`) counts a failed try.
    pub async fn lineage_event_tried(&self, event_id: &str, at: Option<&str>) -> Result<()> {
        sqlx::query(
            "UPDATE lineage_events SET attempts = attempts + 1, delivered_at = $2 WHERE event_id = $1",
        )
        .bind(event_id.to_string())
        .bind(at.map(str::to_string))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes the events kept from before `before` (a store time) that were delivered, or all
    /// of them with `undelivered_too` (no endpoint waits for them); how many went.
    pub async fn prune_lineage_events(&self, before: &str, undelivered_too: bool) -> Result<u64> {
        let sql = if undelivered_too {
            "DELETE FROM lineage_events WHERE created_at < $1"
        } else {
            "DELETE FROM lineage_events WHERE created_at < $1 AND delivered_at IS NOT NULL"
        };
        let done = sqlx::query(sql)
            .bind(before.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// How many events are kept, and how many of those wait for delivery.
    pub async fn lineage_event_counts(&self) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS kept, COALESCE(SUM(CASE WHEN delivered_at IS NULL THEN 1 ELSE 0 END), 0) AS waiting FROM lineage_events",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("kept")?, row.try_get("waiting")?))
    }
}

/// An OpenLineage event another tool sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReceivedLineageRecord {
    pub event_id: String,
    /// `run`, `dataset` or `job`.
    pub kind: String,
    pub event_type: Option<String>,
    pub job_namespace: Option<String>,
    pub job_name: Option<String>,
    pub run_id: Option<String>,
    pub event_time: String,
    /// The datasets it read and wrote, each `namespace` and `name` as a JSON array of pairs.
    pub inputs: String,
    pub outputs: String,
    /// The event as it came.
    pub body: String,
    pub received_at: String,
    pub received_by: String,
}

const RECEIVED_SELECT: &str = "SELECT event_id, kind, event_type, job_namespace, job_name, run_id, event_time, inputs, outputs, body, received_at, received_by FROM received_lineage_events";

fn received_row(row: &AnyRow) -> Result<ReceivedLineageRecord> {
    Ok(ReceivedLineageRecord {
        event_id: row.try_get("event_id")?,
        kind: row.try_get("kind")?,
        event_type: row.try_get("event_type")?,
        job_namespace: row.try_get("job_namespace")?,
        job_name: row.try_get("job_name")?,
        run_id: row.try_get("run_id")?,
        event_time: row.try_get("event_time")?,
        inputs: row.try_get("inputs")?,
        outputs: row.try_get("outputs")?,
        body: row.try_get("body")?,
        received_at: row.try_get("received_at")?,
        received_by: row.try_get("received_by")?,
    })
}

impl Catalog {
    /// Keeps an event another tool sent.
    pub async fn record_received_lineage(&self, e: &ReceivedLineageRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO received_lineage_events (event_id, kind, event_type, job_namespace, job_name, run_id, event_time, inputs, outputs, body, received_at, received_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(e.event_id.clone())
        .bind(e.kind.clone())
        .bind(e.event_type.clone())
        .bind(e.job_namespace.clone())
        .bind(e.job_name.clone())
        .bind(e.run_id.clone())
        .bind(e.event_time.clone())
        .bind(e.inputs.clone())
        .bind(e.outputs.clone())
        .bind(e.body.clone())
        .bind(e.received_at.clone())
        .bind(e.received_by.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The events other tools sent that name inputs or outputs, oldest first.
    pub async fn received_lineage(&self) -> Result<Vec<ReceivedLineageRecord>> {
        let rows = sqlx::query(constant_sql(format!(
            "{RECEIVED_SELECT} WHERE inputs <> '[]' OR outputs <> '[]' ORDER BY event_time, received_at"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(received_row).collect()
    }
}
