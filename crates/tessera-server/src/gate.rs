//! The commit gate: before a batch is committed, the dataset's blocking dataset-level checks
//! (row count, uniqueness, shares of null/missing/invalid values, `sql` rules — see
//! `Check::gates_commits`) are measured on the dataset as it is and as it would be with the
//! batch. A check the batch would make fail refuses the whole batch: every row goes to the
//! quarantine table with the check and the reason, and consumers never see it. A check that
//! already fails without the batch does not block it (or no batch could ever fix it).
//!
//! Every other check of the dataset is measured on the would-be data too, so each commit leaves
//! a complete run in the history (warnings recorded, not blocking).
//!
//! Cost today: two scans of the dataset per commit (before: the gating checks; after: all of
//! them, fused). Combining stored aggregates with the batch's is the next step.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use tessera_catalog::DatasetRecord;
use tessera_core::Check;
use tessera_quality::{CheckResult, Outcome, run_checks};

use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;

/// What the gate decided about a batch.
pub(crate) struct GateVerdict {
    /// The checks measured on the dataset with the batch, to be stored as the commit's run.
    pub after: Vec<CheckResult>,
    /// The first blocking check the batch would make fail: (check type, field, reason).
    pub refused_by: Option<(&'static str, String, String)>,
    pub started: chrono::DateTime<chrono::Utc>,
}

const INCOMING: &str = "tessera.public.incoming_batch";
const AFTER: &str = "tessera.public.dataset_with_batch";

impl Mesh {
    /// Measures the dataset's checks with `batch` added; `None` when the contract has no
    /// dataset-level check that a commit could break.
    pub(crate) async fn gate(
        &self,
        record: &DatasetRecord,
        batch: &RecordBatch,
    ) -> Result<Option<GateVerdict>> {
        let contract = self
            .contract_model(&record.contract_id, &record.contract_version)
            .await?;
        let Some(schema) = contract.dataset(&record.name) else {
            return Ok(None);
        };
        let checks = schema.checks(&contract.sla);
        let gating: Vec<Check> = checks
            .iter()
            .filter(|c| c.gates_commits())
            .cloned()
            .collect();
        if gating.is_empty() || batch.num_rows() == 0 {
            return Ok(None);
        }
        let started = chrono::Utc::now();
        let ctx = self.session().await?;
        let table = format!("{}.{}.{}", record.domain, record.product, record.name);
        let failed = |e: datafusion::error::DataFusionError| {
            ServiceError::Unavailable(format!("gating a batch for {table}: {e}"))
        };
        let incoming =
            MemTable::try_new(batch.schema(), vec![vec![batch.clone()]]).map_err(failed)?;
        ctx.register_table(INCOMING, Arc::new(incoming))
            .map_err(failed)?;
        let after = ctx
            .sql(&format!(
                "SELECT * FROM {table} UNION ALL SELECT * FROM {INCOMING}"
            ))
            .await
            .map_err(failed)?;
        ctx.register_table(AFTER, after.into_view())
            .map_err(failed)?;

        let facts = self.table_facts(record, started).await?;
        let measure = |table: String, checks: Vec<Check>| {
            let (ctx, facts) = (&ctx, &facts);
            async move {
                run_checks(ctx, &table, schema, &checks, facts)
                    .await
                    .map_err(|e| {
                        ServiceError::Unavailable(format!("gating a batch for {table}: {e}"))
                    })
            }
        };
        let before = measure(table.clone(), gating.clone()).await?;
        let after = measure(AFTER.to_string(), checks).await?;
        let refused_by = after
            .iter()
            .filter(|r| r.check.gates_commits() && r.outcome == Outcome::Failed)
            .find(|r| {
                !before
                    .iter()
                    .any(|b| b.check.key() == r.check.key() && b.outcome == Outcome::Failed)
            })
            .map(|r| {
                (
                    r.check.check_type,
                    r.check.field.clone().unwrap_or_default(),
                    format!(
                        "the batch would make check {} fail: {}",
                        r.check.key(),
                        r.reason
                    ),
                )
            });
        Ok(Some(GateVerdict {
            after,
            refused_by,
            started,
        }))
    }
}
