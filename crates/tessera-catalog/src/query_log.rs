//! The query log as stored: written in groups (one transaction per group, with the queries'
//! audit entries and the denied decisions gathered with them), read newest first, all of it or
//! what one principal ran and what read some products.

use std::collections::HashSet;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::AuditEvent;
use crate::error::Result;
use crate::records::QueryRecord;
use crate::store::{Catalog, constant_sql, execute_rows, fetch_rows};

const QUERY_SELECT: &str = "SELECT query_id, request_id, principal, front_end, sql_text, datasets, started_at, wall_ms, cpu_ms, rows_returned, bytes_returned, rows_scanned, bytes_scanned, status, error_class, error FROM query_log";

impl Catalog {
    /// Stores a group of queries and denied access decisions, with their audit entries, in one
    /// transaction; a query id stored before is kept as it was (and not audited again).
    pub async fn record_activity(
        &self,
        queries: &[QueryRecord],
        denials: &[AuditEvent],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // A few statements for the whole group, not one per entry: a busy server logs
        // thousands of queries a second.
        let stored: HashSet<String> = fetch_rows(
            &mut tx,
            "INSERT INTO query_log (query_id, request_id, principal, front_end, sql_text, datasets, started_at, wall_ms, cpu_ms, rows_returned, bytes_returned, rows_scanned, bytes_scanned, status, error_class, error)",
            "ON CONFLICT (query_id) DO NOTHING RETURNING query_id",
            16,
            queries,
            |query, q| {
                query
                    .bind(q.query_id.clone())
                    .bind(q.request_id.clone())
                    .bind(q.principal.clone())
                    .bind(q.front_end.clone())
                    .bind(q.sql.clone())
                    .bind(q.datasets.join(","))
                    .bind(q.started_at.clone())
                    .bind(q.wall_ms)
                    .bind(q.cpu_ms)
                    .bind(q.rows_returned)
                    .bind(q.bytes_returned)
                    .bind(q.rows_scanned)
                    .bind(q.bytes_scanned)
                    .bind(q.status.clone())
                    .bind(q.error_class.clone())
                    .bind(q.error.clone())
            },
        )
        .await?
        .iter()
        .map(|row| row.try_get("query_id"))
        .collect::<std::result::Result<_, _>>()?;
        let new: Vec<&QueryRecord> = queries
            .iter()
            .filter(|q| stored.contains(&q.query_id))
            .collect();
        let products: Vec<(&str, &str)> = new
            .iter()
            .flat_map(|q| q.products.iter().map(|p| (q.query_id.as_str(), p.as_str())))
            .collect();
        execute_rows(
            &mut tx,
            "INSERT INTO query_log_products (query_id, product)",
            "ON CONFLICT (query_id, product) DO NOTHING",
            2,
            &products,
            |query, (id, product)| query.bind(id.to_string()).bind(product.to_string()),
        )
        .await?;
        let mut events: Vec<AuditEvent> = new.into_iter().map(query_event).collect();
        events.extend_from_slice(denials);
        self.commit_audited(tx, &events).await
    }

    /// The newest `limit` queries: all of them (`who` is `None`), or those `principal` ran and
    /// those that read one of `products`.
    pub async fn queries(
        &self,
        who: Option<(&str, &[String])>,
        limit: i64,
    ) -> Result<Vec<QueryRecord>> {
        let rows = match who {
            None => {
                sqlx::query(constant_sql(format!(
                    "{QUERY_SELECT} ORDER BY started_at DESC, query_id DESC LIMIT $1"
                )))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            Some((principal, products)) => {
                let placeholders: Vec<String> =
                    (0..products.len()).map(|i| format!("${}", i + 3)).collect();
                let on_products = if products.is_empty() {
                    String::new()
                } else {
                    format!(
                        " OR query_id IN (SELECT query_id FROM query_log_products WHERE product IN ({}))",
                        placeholders.join(", ")
                    )
                };
                let mut query = sqlx::query(constant_sql(format!(
                    "{QUERY_SELECT} WHERE principal = $1{on_products} ORDER BY started_at DESC, query_id DESC LIMIT $2"
                )))
                .bind(principal.to_string())
                .bind(limit);
                for p in products {
                    query = query.bind(p.clone());
                }
                query.fetch_all(&self.pool).await?
            }
        };
        let mut out: Vec<QueryRecord> = rows.iter().map(query_row).collect::<Result<_>>()?;
        for q in &mut out {
            q.products = sqlx::query_scalar(
                "SELECT product FROM query_log_products WHERE query_id = $1 ORDER BY product",
            )
            .bind(q.query_id.clone())
            .fetch_all(&self.pool)
            .await?;
        }
        Ok(out)
    }
}

/// A query's audit entry: who ran what (the SQL by its digest, the text is in the query log),
/// what it read, and how it ended.
fn query_event(q: &QueryRecord) -> AuditEvent {
    AuditEvent::new(
        q.principal.clone(),
        "query",
        q.query_id.clone(),
        serde_json::json!({
            "front_end": q.front_end,
            "request_id": q.request_id,
            "sql_sha256": crate::store::sha256_hex(&q.sql),
            "datasets": q.datasets,
            "started_at": q.started_at,
            "status": q.status,
            "error_class": q.error_class,
        }),
    )
}

fn query_row(r: &AnyRow) -> Result<QueryRecord> {
    let datasets: String = r.try_get("datasets")?;
    Ok(QueryRecord {
        query_id: r.try_get("query_id")?,
        request_id: r.try_get("request_id")?,
        principal: r.try_get("principal")?,
        front_end: r.try_get("front_end")?,
        sql: r.try_get("sql_text")?,
        datasets: datasets
            .split(',')
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect(),
        products: Vec::new(),
        started_at: r.try_get("started_at")?,
        wall_ms: r.try_get("wall_ms")?,
        cpu_ms: r.try_get("cpu_ms")?,
        rows_returned: r.try_get("rows_returned")?,
        bytes_returned: r.try_get("bytes_returned")?,
        rows_scanned: r.try_get("rows_scanned")?,
        bytes_scanned: r.try_get("bytes_scanned")?,
        status: r.try_get("status")?,
        error_class: r.try_get("error_class")?,
        error: r.try_get("error")?,
    })
}
