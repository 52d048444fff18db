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

    /// The newest `limit` events, newest first, or those of one run (oldest first).
    pub async fn lineage_events(
        &self,
        run_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<LineageEventRecord>> {
        let rows = match run_id {
            Some(run) => {
                sqlx::query(constant_sql(format!(
                    "{EVENT_SELECT} WHERE run_id = $1 ORDER BY created_at, event_id LIMIT $2"
                )))
                .bind(run.to_string())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(constant_sql(format!(
                    "{EVENT_SELECT} ORDER BY created_at DESC, event_id DESC LIMIT $1"
                )))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(event_row).collect()
    }
}
