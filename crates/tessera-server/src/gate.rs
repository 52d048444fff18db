//! The commit gate: before a batch is committed, the dataset's dataset-level checks that a
//! commit can break — row count, null/missing/invalid values (absolute or as a share),
//! uniqueness of a column or key, `sql` rules — are measured on the dataset as it would be with
//! the batch. A blocking (error) check the batch would make fail, and that passes without it,
//! refuses the whole batch: every row goes to the quarantine table with the check and the
//! reason, and consumers never see it. A check that already fails does not block further
//! batches (or no batch could ever fix it).
//!
//! The cost follows the batch, not the dataset. What the gate knows of the dataset at a table
//! version (its row count, the rows each count-style check counts, each key's non-null and
//! distinct counts) is kept in memory; the batch is measured alone and added. Only two things
//! read the dataset: whether the batch's keys are already there (a join that reads the key
//! columns only), and `sql` rules, which run as written on the dataset with the batch. When the
//! table moved on without this process (another instance, a restart), the state is measured
//! again, once.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use tessera_catalog::DatasetRecord;
use tessera_core::{Check, CheckKind};
use tessera_quality::{
    CheckResult, Outcome, count_measures, key_counts, shared_keys, sql_measure, verdict,
};

use tessera_core::RequestContext;

use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;

/// What the gate knows of a dataset at one table version.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GateState {
    table_version: Option<i64>,
    /// `contract-id@version`: a new contract version means other checks.
    contract: String,
    rows: f64,
    /// Check key → rows it counts (row count, null, missing, invalid values).
    counts: HashMap<String, f64>,
    /// Check key → (non-null keys, distinct keys).
    keys: HashMap<String, (f64, f64)>,
}

/// What the gate decided about a batch.
pub(crate) struct GateVerdict {
    /// The gated checks measured on the dataset with the batch (warnings included), to be
    /// stored as the commit's run.
    pub after: Vec<CheckResult>,
    /// The first blocking check the batch would make fail.
    pub refused_by: Option<Refusal>,
    pub started: chrono::DateTime<chrono::Utc>,
    /// The state with the batch, for the table version its commit creates.
    pub next_state: GateState,
}

const INCOMING: &str = "tessera.public.incoming_batch";
const AFTER: &str = "tessera.public.dataset_with_batch";

/// The checks a commit can make fail.
fn gated(checks: Vec<Check>) -> Vec<Check> {
    checks
        .into_iter()
        .filter(|c| {
            c.counts_rows() || c.key_columns().is_some() || matches!(c.kind, CheckKind::Sql { .. })
        })
        .collect()
}

impl Mesh {
    /// Measures the dataset's gated checks with `batch` added; `None` when none of them blocks.
    /// `cx` acts as the product's owner team: the gate's `sql` rules run with its rights.
    pub(crate) async fn gate(
        &self,
        cx: &RequestContext,
        record: &DatasetRecord,
        batch: &RecordBatch,
    ) -> Result<Option<GateVerdict>> {
        let contract = self
            .contract_model(
                &record.domain,
                &record.contract_id,
                &record.contract_version,
            )
            .await?;
        let Some(schema) = contract.dataset(&record.name) else {
            return Ok(None);
        };
        let checks = gated(schema.checks(&contract.sla));
        if batch.num_rows() == 0 || !checks.iter().any(Check::gates_commits) {
            return Ok(None);
        }
        let started = chrono::Utc::now();
        let table = format!("{}.{}.{}", record.domain, record.product, record.name);
        let version = self
            .storage
            .table_info(&record.location)
            .await?
            .and_then(|t| t.version);
        let contract_key = format!("{}@{}", record.contract_id, record.contract_version);
        let cached = self
            .gate_state(&record.location)
            .filter(|s| s.table_version == version && s.contract == contract_key);
        let ctx = self.session(cx).await?;
        let batch = batch.clone();
        // Measured on the query runtime, under the query time limit.
        let session = ctx.clone();
        let measured = self
            .engine()
            .run(&session, async move {
                Ok(measure(ctx, table, batch, checks, cached, version, contract_key).await)
            })
            .await
            .map_err(|e| {
                ServiceError::from(e).with_context("the commit gate could not measure the batch")
            })??;
        let (after, refused_by, next_state) = measured;
        Ok(Some(GateVerdict {
            after,
            refused_by,
            started,
            next_state,
        }))
    }

    fn gate_state(&self, location: &str) -> Option<GateState> {
        self.gate_states
            .lock()
            .expect("gate states")
            .get(location)
            .cloned()
    }

    /// Remembers the state a commit created (at the table version it committed).
    pub(crate) fn keep_gate_state(
        &self,
        location: &str,
        mut state: GateState,
        version: Option<i64>,
    ) {
        state.table_version = version;
        self.gate_states
            .lock()
            .expect("gate states")
            .insert(location.to_string(), state);
    }
}

/// The gated checks measured on the dataset with the batch: the results, the check that
/// refuses the batch (if one does) and the state with the batch.
async fn measure(
    ctx: SessionContext,
    table: String,
    batch: RecordBatch,
    checks: Vec<Check>,
    cached: Option<GateState>,
    version: Option<i64>,
    contract_key: String,
) -> Result<(Vec<CheckResult>, Option<Refusal>, GateState)> {
    let failed = |e: datafusion::error::DataFusionError| {
        ServiceError::Unavailable(format!("gating a batch for {table}: {e}"))
    };
    let measure_failed = |e: tessera_quality::QualityError| {
        ServiceError::Unavailable(format!("gating a batch for {table}: {e}"))
    };
    let incoming = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(failed)?;
    ctx.register_table(INCOMING, Arc::new(incoming))
        .map_err(failed)?;
    let before = match cached {
        Some(state) => state,
        None => measure_state(&ctx, &table, &checks, version, &contract_key)
            .await
            .map_err(measure_failed)?,
    };
    let batch_state = measure_state(&ctx, INCOMING, &checks, None, &contract_key)
        .await
        .map_err(measure_failed)?;

    // The state with the batch: counts add up; keys add up, less the batch's keys the
    // dataset already has.
    let mut after = GateState {
        table_version: None,
        contract: contract_key,
        rows: before.rows + batch_state.rows,
        counts: HashMap::new(),
        keys: HashMap::new(),
    };
    for check in &checks {
        let key = check.key();
        if check.counts_rows() {
            let sum = before.counts.get(&key).copied().unwrap_or(0.0)
                + batch_state.counts.get(&key).copied().unwrap_or(0.0);
            after.counts.insert(key.clone(), sum);
        }
        if let Some(columns) = check.key_columns() {
            let (nn, distinct) = before.keys.get(&key).copied().unwrap_or((0.0, 0.0));
            let (b_nn, b_distinct) = batch_state.keys.get(&key).copied().unwrap_or((0.0, 0.0));
            let shared = if before.rows > 0.0 {
                shared_keys(&ctx, INCOMING, &table, &columns)
                    .await
                    .map_err(measure_failed)?
            } else {
                0.0
            };
            after
                .keys
                .insert(key, (nn + b_nn, distinct + b_distinct - shared));
        }
    }
    if checks
        .iter()
        .any(|c| matches!(c.kind, CheckKind::Sql { .. }))
    {
        let with_batch = ctx
            .sql(&format!(
                "SELECT * FROM {table} UNION ALL SELECT * FROM {INCOMING}"
            ))
            .await
            .map_err(failed)?;
        ctx.register_table(AFTER, with_batch.into_view())
            .map_err(failed)?;
    }

    let mut results_after = Vec::with_capacity(checks.len());
    let mut refused_by = None;
    for check in &checks {
        let (was, now) = match &check.kind {
            CheckKind::Sql { .. } => (
                verdict(check, sql_measure(&ctx, &table, check).await, before.rows),
                verdict(check, sql_measure(&ctx, AFTER, check).await, after.rows),
            ),
            _ => (
                verdict(check, Ok(Some(raw(&before, check))), before.rows),
                verdict(check, Ok(Some(raw(&after, check))), after.rows),
            ),
        };
        if refused_by.is_none()
            && check.gates_commits()
            && now.outcome == Outcome::Failed
            && was.outcome != Outcome::Failed
        {
            refused_by = Some((
                check.check_type,
                check.field.clone().unwrap_or_default(),
                format!(
                    "the batch would make check {} fail: {}",
                    check.label(),
                    now.reason
                ),
            ));
        }
        results_after.push(now);
    }
    Ok((results_after, refused_by, after))
}

/// The check that refuses a batch: (check type, field, reason).
type Refusal = (&'static str, String, String);

/// What a check counts in a state: failing rows, all rows for a row count, duplicate keys.
fn raw(state: &GateState, check: &Check) -> f64 {
    if let Some((nn, distinct)) = state.keys.get(&check.key()) {
        return nn - distinct;
    }
    state.counts.get(&check.key()).copied().unwrap_or(0.0)
}

/// Measures a table for the gated checks: one fused scan for the counts, one hash aggregate per
/// key (reading the key columns only).
async fn measure_state(
    ctx: &SessionContext,
    table: &str,
    checks: &[Check],
    version: Option<i64>,
    contract: &str,
) -> tessera_quality::Result<GateState> {
    let counting: Vec<&Check> = checks.iter().filter(|c| c.counts_rows()).collect();
    let (rows, counts) = count_measures(ctx, table, &counting).await?;
    let mut keys = HashMap::new();
    for check in checks {
        if let Some(columns) = check.key_columns() {
            keys.insert(check.key(), key_counts(ctx, table, &columns).await?);
        }
    }
    Ok(GateState {
        table_version: version,
        contract: contract.to_string(),
        rows,
        counts: counting.iter().map(|c| c.key()).zip(counts).collect(),
        keys,
    })
}
