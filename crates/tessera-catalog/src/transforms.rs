//! Transforms: a product's `transforms/<dataset>.sql` files, replaced in the apply's transaction
//! (see `Catalog::apply`). The file's text is the source of truth; the server reads it again
//! with `tessera_spec::transform_from_file`.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::Result;
use crate::store::{Catalog, constant_sql};

/// A transform file as stored with its product.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformRecord {
    pub domain: String,
    pub product: String,
    /// The product's dataset it computes.
    pub dataset: String,
    pub file_name: String,
    /// The file's text.
    pub source: String,
    pub updated_at: String,
}

const TRANSFORM_SELECT: &str =
    "SELECT domain, product, dataset, file_name, source, updated_at FROM transforms";

fn transform_row(row: &AnyRow) -> Result<TransformRecord> {
    Ok(TransformRecord {
        domain: row.try_get("domain")?,
        product: row.try_get("product")?,
        dataset: row.try_get("dataset")?,
        file_name: row.try_get("file_name")?,
        source: row.try_get("source")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Replaces the transforms a product's folder holds, in the apply's transaction.
pub(crate) async fn replace_product_transforms(
    conn: &mut sqlx::AnyConnection,
    domain: &str,
    product: &str,
    transforms: &[TransformRecord],
    at: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM transforms WHERE domain = $1 AND product = $2")
        .bind(domain.to_string())
        .bind(product.to_string())
        .execute(&mut *conn)
        .await?;
    for t in transforms {
        sqlx::query(
            "INSERT INTO transforms (domain, product, dataset, file_name, source, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(t.domain.clone())
        .bind(t.product.clone())
        .bind(t.dataset.clone())
        .bind(t.file_name.clone())
        .bind(t.source.clone())
        .bind(at.to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl Catalog {
    /// Every transform, or those of one product, ordered by domain, product and dataset.
    pub async fn transforms(&self, product: Option<(&str, &str)>) -> Result<Vec<TransformRecord>> {
        let rows = match product {
            Some((domain, name)) => {
                sqlx::query(constant_sql(format!(
                    "{TRANSFORM_SELECT} WHERE domain = $1 AND product = $2 ORDER BY dataset"
                )))
                .bind(domain.to_string())
                .bind(name.to_string())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(constant_sql(format!(
                    "{TRANSFORM_SELECT} ORDER BY domain, product, dataset"
                )))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(transform_row).collect()
    }
}

/// One run of a transform, as it ended.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TransformRunRecord {
    pub run_id: String,
    pub domain: String,
    pub product: String,
    /// The dataset the transform computes.
    pub dataset: String,
    /// `manual`, `interval` or `upstream`.
    pub trigger: String,
    /// How the result was written: `full`, `append` or `merge`.
    pub mode: String,
    /// `succeeded` or `failed`.
    pub status: String,
    /// Who started it (the scheduler for an automatic run); it ran as the owner team.
    pub principal: String,
    pub started_at: String,
    pub duration_ms: i64,
    /// Rows the query's scans read.
    pub rows_in: i64,
    /// Rows it committed to the dataset.
    pub rows_out: i64,
    /// The dataset's table version the run committed (none when it failed).
    pub table_version: Option<i64>,
    /// The datasets it read, each at the table version it read: `d.p.x@3, d.p.y@7`.
    pub inputs: String,
    pub error: Option<String>,
    /// What the run says beside its outcome: why a merge by the keys of new input rows
    /// recomputed everything.
    pub note: Option<String>,
}

/// Which transforms' runs: each part that is given narrows them (all: every transform).
#[derive(Debug, Clone, Copy, Default)]
pub struct RunsOf<'a> {
    pub domain: Option<&'a str>,
    pub product: Option<&'a str>,
    /// The dataset the transform computes.
    pub dataset: Option<&'a str>,
}

impl<'a> RunsOf<'a> {
    /// The runs of the transform computing `domain.product.dataset`.
    pub fn dataset(domain: &'a str, product: &'a str, dataset: &'a str) -> Self {
        Self {
            domain: Some(domain),
            product: Some(product),
            dataset: Some(dataset),
        }
    }
}

const RUN_SELECT: &str = "SELECT run_id, domain, product, dataset, trigger, mode, status, principal, started_at, duration_ms, rows_in, rows_out, table_version, inputs, error, note FROM transform_runs";

fn run_row(row: &AnyRow) -> Result<TransformRunRecord> {
    Ok(TransformRunRecord {
        run_id: row.try_get("run_id")?,
        domain: row.try_get("domain")?,
        product: row.try_get("product")?,
        dataset: row.try_get("dataset")?,
        trigger: row.try_get("trigger")?,
        mode: row.try_get("mode")?,
        status: row.try_get("status")?,
        principal: row.try_get("principal")?,
        started_at: row.try_get("started_at")?,
        duration_ms: row.try_get("duration_ms")?,
        rows_in: row.try_get("rows_in")?,
        rows_out: row.try_get("rows_out")?,
        table_version: row.try_get("table_version")?,
        inputs: row.try_get("inputs")?,
        error: row.try_get("error")?,
        note: row.try_get("note")?,
    })
}

impl Catalog {
    /// Stores a transform run as it ended.
    pub async fn record_transform_run(&self, run: &TransformRunRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO transform_runs (run_id, domain, product, dataset, trigger, mode, status, principal, started_at, duration_ms, rows_in, rows_out, table_version, inputs, error, note)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(run.run_id.clone())
        .bind(run.domain.clone())
        .bind(run.product.clone())
        .bind(run.dataset.clone())
        .bind(run.trigger.clone())
        .bind(run.mode.clone())
        .bind(run.status.clone())
        .bind(run.principal.clone())
        .bind(run.started_at.clone())
        .bind(run.duration_ms)
        .bind(run.rows_in)
        .bind(run.rows_out)
        .bind(run.table_version)
        .bind(run.inputs.clone())
        .bind(run.error.clone())
        .bind(run.note.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest `limit` runs, newest first, of the transforms `of` names (see [`RunsOf`]).
    pub async fn transform_runs(
        &self,
        of: RunsOf<'_>,
        limit: i64,
    ) -> Result<Vec<TransformRunRecord>> {
        let mut filters: Vec<String> = Vec::new();
        let mut values: Vec<String> = Vec::new();
        for (column, value) in [
            ("domain", of.domain),
            ("product", of.product),
            ("dataset", of.dataset),
        ] {
            if let Some(value) = value {
                values.push(value.to_string());
                filters.push(format!("{column} = ${}", values.len()));
            }
        }
        let filter = if filters.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", filters.join(" AND "))
        };
        let sql = format!(
            "{RUN_SELECT}{filter} ORDER BY started_at DESC, run_id DESC LIMIT ${}",
            values.len() + 1
        );
        let mut query = sqlx::query(constant_sql(sql));
        for value in values {
            query = query.bind(value);
        }
        let rows = query.bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(run_row).collect()
    }
}
