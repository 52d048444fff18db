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
//! distinct counts) is kept in memory; the batch is measured alone and added. Whether the
//! batch's keys are already there is answered by a kept index of the table's key hashes
//! (`tessera_quality::KeyIndex`): only a key whose hash is there is looked up in the table. Only
//! `sql` rules read the dataset on every batch, as written, on the dataset with the batch. When
//! the table moved on without this process (another instance, a restart), the state and the
//! indexes are measured again, once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use tessera_catalog::DatasetRecord;
use tessera_core::{Check, CheckKind};
use tessera_quality::{
    BatchKeys, CheckResult, IndexedKeys, KeyIndex, Outcome, batch_keys, count_measures, key_counts,
    sql_measure, verdict,
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
    /// The state without the batch (kept when the batch is refused).
    before_state: GateState,
    /// Whether `before_state` was measured (a replacement is judged alone, without it).
    before_measured: bool,
    /// The batch replaces the dataset (a full refresh): `batch_keys` are then all its keys,
    /// the key indexes of the table it leaves.
    replaced: bool,
    /// The state with the batch, for the table version its commit creates.
    next_state: GateState,
    /// The batch's keys by key columns, added to the key indexes once it is committed.
    batch_keys: Vec<(Vec<String>, BatchKeys)>,
    /// The batch is merged or replaces the dataset, not appended: what is kept of the dataset
    /// is measured again.
    merged: bool,
}

/// One commit into a dataset, as [`Mesh::record_commit`] records it.
pub(crate) struct Commit<'a> {
    pub record: &'a DatasetRecord,
    /// The gate's verdict on the rows (`None`: not gated, e.g. a batch already in the table).
    pub gate: Option<GateVerdict>,
    /// The gate refused the rows: they went to the quarantine table.
    pub refused: bool,
    /// The version the commit made in the dataset's table (`None`: nothing was written to it).
    pub committed: Option<i64>,
    /// The table's version the check run is stored at.
    pub table_version: Option<i64>,
    pub batch: tessera_catalog::BatchRecord,
    pub hits: Vec<tessera_ingest::DetectorHits>,
    /// Whose run the commit ends, for its OpenLineage events (`None`: the caller emits them).
    pub run: Option<crate::openlineage::CommitRun>,
}

/// The kept key indexes of a dataset at one table version, by key columns.
#[derive(Default)]
pub(crate) struct KeyIndexes {
    table_version: Option<i64>,
    by_columns: HashMap<Vec<String>, KeyIndex>,
}

impl KeyIndexes {
    /// Keeps an index of the keys over `columns`: built from `table` unless one is kept (its keys
    /// cast to `batch`'s key types, so both hash alike; an empty table is not read). What the
    /// build read, when it built one.
    async fn ensure(
        &mut self,
        ctx: &SessionContext,
        table: &str,
        columns: &[String],
        batch: &RecordBatch,
        table_is_empty: bool,
    ) -> tessera_quality::Result<Option<IndexedKeys>> {
        if self.by_columns.contains_key(columns) {
            return Ok(None);
        }
        let (index, read) = if table_is_empty {
            let nothing = IndexedKeys {
                keys: 0,
                hash_repeated: false,
            };
            (KeyIndex::default(), nothing)
        } else {
            let types = key_types(batch, columns)
                .map_err(|e| tessera_quality::QualityError::Query(e.to_string()))?;
            KeyIndex::build(ctx, table, columns, &types).await?
        };
        self.by_columns.insert(columns.to_vec(), index);
        Ok(Some(read))
    }
}

/// A dataset's key indexes, shared between the gate and the commit that follows it.
pub(crate) type SharedKeyIndexes = Arc<tokio::sync::Mutex<KeyIndexes>>;

const INCOMING: &str = "tessera.public.incoming_batch";
const AFTER: &str = "tessera.public.dataset_with_batch";
/// The rows of the dataset a merge replaces (those whose key the batch holds).
const REPLACED: &str = "tessera.public.rows_the_batch_replaces";

/// How a commit adds its batch to the dataset, which decides what the dataset would be.
#[derive(Debug, Clone, Copy)]
pub(crate) enum GateMode<'a> {
    /// The batch's rows are added.
    Append,
    /// A row of the batch whose key (these columns) the dataset holds replaces it.
    Merge(&'a [String]),
    /// The batch becomes the whole dataset (a full refresh): it is judged alone, and a blocking
    /// check it fails refuses it even when the dataset fails that check now.
    Replace,
    /// The batch becomes the whole dataset as a merge leaves it (a merge written as the table
    /// again: its kept rows and the new): measured as a replacement, judged as a merge — a
    /// blocking check the dataset fails now does not refuse it.
    Rewrite,
}

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
    ///
    /// `mode` says what the dataset would be with the batch: merged or replaced, it is
    /// measured whole.
    pub(crate) async fn gate(
        &self,
        cx: &RequestContext,
        record: &DatasetRecord,
        batch: &RecordBatch,
        mode: GateMode<'_>,
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
        // An empty batch changes nothing, unless it replaces the dataset.
        let changes_nothing = batch.num_rows() == 0 && !matches!(mode, GateMode::Replace);
        if changes_nothing || !checks.iter().any(Check::gates_commits) {
            return Ok(None);
        }
        let started = chrono::Utc::now();
        let table = format!("{}.{}.{}", record.domain, record.product, record.name);
        let version = self.storage.version(&record.location).await?;
        let contract_key = format!("{}@{}", record.contract_id, record.contract_version);
        // What is known of an earlier version still holds when only maintenance (compaction,
        // vacuum) or positions were committed since.
        let cached = match self
            .gate_state(&record.location)
            .filter(|s| s.contract == contract_key)
        {
            Some(mut state)
                if self
                    .same_rows(&record.location, state.table_version, version)
                    .await? =>
            {
                state.table_version = version;
                Some(state)
            }
            _ => None,
        };
        let ctx = self.session(cx).await?;
        let batch = batch.clone();
        let mode = OwnedMode::from(mode);
        let indexes = self.key_indexes(&record.location);
        let indexes_hold = {
            let indexed_at = indexes.lock().await.table_version;
            self.same_rows(&record.location, indexed_at, version)
                .await?
        };
        // Measured on the query runtime, under the query time limit.
        let session = ctx.clone();
        let measured = self
            .engine()
            .run(&session, async move {
                let mut indexes = indexes.lock().await;
                if !indexes_hold {
                    indexes.by_columns.clear();
                }
                indexes.table_version = version;
                let measure = Measure {
                    ctx,
                    table,
                    checks,
                    version,
                    contract_key,
                    mode,
                };
                Ok(measure.run(batch, cached, &mut indexes).await)
            })
            .await
            .map_err(|e| {
                ServiceError::from(e).with_context("the commit gate could not measure the batch")
            })??;
        Ok(Some(GateVerdict {
            started,
            ..measured
        }))
    }

    /// Whether the table at `location` holds the same rows at version `now` as at `then`.
    pub(crate) async fn same_rows(
        &self,
        location: &str,
        then: Option<i64>,
        now: Option<i64>,
    ) -> Result<bool> {
        Ok(match (then, now) {
            (then, now) if then == now => true,
            (Some(then), Some(now)) if then < now => {
                !self.storage.data_changed_since(location, then).await?
            }
            _ => false,
        })
    }

    /// The key indexes kept for the dataset at `location`.
    fn key_indexes(&self, location: &str) -> SharedKeyIndexes {
        self.key_indexes
            .lock()
            .expect("key indexes")
            .entry(location.to_string())
            .or_default()
            .clone()
    }

    fn gate_state(&self, location: &str) -> Option<GateState> {
        self.gate_states
            .lock()
            .expect("gate states")
            .get(location)
            .cloned()
    }

    /// What a commit leaves behind, whatever brought its rows (a batch, a run of events, a
    /// source's pull, a transform run): what the gate knows of the dataset now and the run of
    /// its checks (when it was gated), the batch's record, the personal data its accepted
    /// values revealed, and its OpenLineage START and end (when `commit.run` says whose it
    /// is). The check run's id, if one was stored.
    pub(crate) async fn record_commit(
        &self,
        cx: &RequestContext,
        commit: Commit<'_>,
    ) -> Result<Option<String>> {
        let Commit {
            record,
            gate,
            refused,
            committed,
            table_version,
            batch,
            hits,
            run: lineage,
        } = commit;
        let refusal = gate
            .as_ref()
            .and_then(|g| g.refused_by.as_ref())
            .map(|(_, _, reason)| reason.clone());
        let assertions = gate.as_ref().map(|g| g.after.clone()).unwrap_or_default();
        let run = match gate {
            Some(gate) => {
                self.gate_committed(&record.location, &gate, refused, committed)
                    .await;
                let trigger = if refused {
                    crate::checks::REFUSED_COMMIT
                } else {
                    crate::checks::COMMIT
                };
                let run = self
                    .store_run(record, trigger, gate.started, &gate.after, table_version)
                    .await?;
                Some(run.run_id)
            }
            None => None,
        };
        self.catalog
            .record_batch(&batch, &cx.principal.to_string())
            .await?;
        if committed.is_some() && !refused {
            // Transforms reading the dataset look at its table again.
            self.transform_runners.committed(&format!(
                "{}.{}.{}",
                record.domain, record.product, record.name
            ));
        }
        if !refused && !hits.is_empty() {
            self.record_detections(cx, record, hits).await;
        }
        if let Some(lineage) = lineage {
            let error = refused.then(|| {
                format!(
                    "the commit gate refused the batch ({}): its {} rows are in the quarantine table",
                    refusal.as_deref().unwrap_or("a blocking check"),
                    batch.quarantined
                )
            });
            self.emit_commit_run(
                &lineage,
                record,
                Some(batch.accepted),
                &assertions,
                error.as_deref(),
            )
            .await;
        }
        Ok(run)
    }

    /// Remembers what a gated commit left at table version `version`: the state with the
    /// batch and its keys in the indexes, or, when the batch was `refused` (its rows went to
    /// the quarantine), the state as it was. Called under the dataset's ingest lock, right after
    /// the commit.
    pub(crate) async fn gate_committed(
        &self,
        location: &str,
        verdict: &GateVerdict,
        refused: bool,
        version: Option<i64>,
    ) {
        let Some(version) = version else { return };
        if verdict.merged && !refused {
            // A merge or a replacement was measured whole, as the table now is: that state is
            // kept (the next append adds to it, not measuring the table again). The key
            // indexes held the old rows' keys: a replacement's are its own keys, a merge's are
            // built again when next needed.
            let mut state = verdict.next_state.clone();
            state.table_version = Some(version);
            self.gate_states
                .lock()
                .expect("gate states")
                .insert(location.to_string(), state);
            let indexes = self.key_indexes(location);
            let mut indexes = indexes.lock().await;
            indexes.by_columns.clear();
            if verdict.replaced {
                for (columns, keys) in &verdict.batch_keys {
                    let mut index = KeyIndex::default();
                    index.insert(keys);
                    indexes.by_columns.insert(columns.clone(), index);
                }
            }
            indexes.table_version = Some(version);
            return;
        }
        if refused && !verdict.before_measured {
            // A refused replacement: the table is as it was, and was not measured.
            self.gate_states
                .lock()
                .expect("gate states")
                .remove(location);
            return;
        }
        let mut state = if refused {
            verdict.before_state.clone()
        } else {
            verdict.next_state.clone()
        };
        state.table_version = Some(version);
        self.gate_states
            .lock()
            .expect("gate states")
            .insert(location.to_string(), state);
        let indexes = self.key_indexes(location);
        let mut indexes = indexes.lock().await;
        if indexes.table_version != verdict.before_state.table_version {
            return;
        }
        if !refused {
            for (columns, keys) in &verdict.batch_keys {
                if let Some(index) = indexes.by_columns.get_mut(columns) {
                    index.insert(keys);
                }
            }
        }
        indexes.table_version = Some(version);
    }
}

/// What the gate measures a batch for.
struct Measure {
    ctx: SessionContext,
    table: String,
    checks: Vec<Check>,
    /// The table version the batch would be committed on.
    version: Option<i64>,
    contract_key: String,
    mode: OwnedMode,
}

/// [`GateMode`], owned, for the measuring task.
enum OwnedMode {
    Append,
    Merge(Vec<String>),
    Replace,
    Rewrite,
}

impl From<GateMode<'_>> for OwnedMode {
    fn from(mode: GateMode<'_>) -> Self {
        match mode {
            GateMode::Append => OwnedMode::Append,
            GateMode::Merge(keys) => OwnedMode::Merge(keys.to_vec()),
            GateMode::Replace => OwnedMode::Replace,
            GateMode::Rewrite => OwnedMode::Rewrite,
        }
    }
}

impl Measure {
    /// The gated checks measured on the dataset with the batch: the results, the check that
    /// refuses the batch (if one does) and the states without and with it.
    async fn run(
        self,
        batch: RecordBatch,
        cached: Option<GateState>,
        indexes: &mut KeyIndexes,
    ) -> Result<GateVerdict> {
        let Measure {
            ctx,
            table,
            checks,
            version,
            contract_key,
            mode,
        } = self;
        let failed = |e: datafusion::error::DataFusionError| {
            ServiceError::Unavailable(format!("gating a batch for {table}: {e}"))
        };
        let measure_failed = |e: tessera_quality::QualityError| {
            ServiceError::Unavailable(format!("gating a batch for {table}: {e}"))
        };
        let incoming =
            MemTable::try_new(batch.schema(), vec![vec![batch.clone()]]).map_err(failed)?;
        ctx.register_table(INCOMING, Arc::new(incoming))
            .map_err(failed)?;
        // A replacement is judged alone: what the table holds now is not measured for it.
        let before_measured = cached.is_some() || !matches!(mode, OwnedMode::Replace);
        let before = match cached {
            Some(state) => state,
            None if !before_measured => GateState {
                table_version: version,
                contract: contract_key.clone(),
                rows: 0.0,
                counts: HashMap::new(),
                keys: HashMap::new(),
            },
            // A merge written again is judged against the table as it is.
            None if matches!(mode, OwnedMode::Rewrite) => measure_state(
                &ctx,
                &table,
                &checks,
                version,
                &contract_key,
                KeysFrom::Table,
            )
            .await
            .map_err(measure_failed)?,
            // Appended or merged, the batch's keys are looked up in the key indexes: those
            // missing are built as the table's keys are counted.
            None => measure_state(
                &ctx,
                &table,
                &checks,
                version,
                &contract_key,
                KeysFrom::Indexed(&mut *indexes, &batch),
            )
            .await
            .map_err(measure_failed)?,
        };
        // A merge into a table unique on its keys, whose uniqueness checks are all on those
        // keys, adds up as an append does, less the rows it replaces (as many as the batch's
        // keys the index finds): it is not measured whole.
        let merge_on = match &mode {
            OwnedMode::Merge(keys) if merge_adds_up(&checks, keys, &before) => Some(keys.clone()),
            _ => None,
        };
        let whole = match &mode {
            OwnedMode::Append => None,
            OwnedMode::Merge(_) if merge_on.is_some() => None,
            // The dataset as the merge would leave it: its rows whose key the batch does not
            // hold, and the batch.
            OwnedMode::Merge(keys) => {
                let on = key_join(keys);
                Some(format!(
                    "SELECT * FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM {INCOMING} b WHERE {on}) UNION ALL SELECT * FROM {INCOMING}"
                ))
            }
            OwnedMode::Replace | OwnedMode::Rewrite => Some(format!("SELECT * FROM {INCOMING}")),
        };
        // The batch's keys, hashed once: what a replacement or the batch alone holds is counted
        // from them, and they go into the key indexes with the commit. A merge measured whole
        // needs none of them.
        let merged_whole = matches!(mode, OwnedMode::Merge(_)) && merge_on.is_none();
        let keys_of_batch = if merged_whole {
            Vec::new()
        } else {
            keys_of_batch(&batch, &checks).map_err(measure_failed)?
        };
        if let Some(after_sql) = whole {
            register_after(&ctx, &table, &after_sql).await?;
            // A replacement's keys are the table's keys after it: counted from their hashes and
            // indexed from memory, the next append does not read them back from the whole table.
            let replaced = matches!(mode, OwnedMode::Replace | OwnedMode::Rewrite);
            let alone = matches!(mode, OwnedMode::Replace);
            let keys_from = if replaced {
                KeysFrom::Batch(&batch, &keys_of_batch)
            } else {
                KeysFrom::Table
            };
            let after = measure_state(&ctx, AFTER, &checks, None, &contract_key, keys_from)
                .await
                .map_err(measure_failed)?;
            let mut verdict = judge(
                &ctx,
                &table,
                &checks,
                before,
                after,
                version,
                keys_of_batch,
                Judged::Whole { alone },
            )
            .await?;
            verdict.before_measured = before_measured;
            verdict.replaced = replaced;
            return Ok(verdict);
        }
        let batch_state = measure_state(
            &ctx,
            INCOMING,
            &checks,
            None,
            &contract_key,
            KeysFrom::Batch(&batch, &keys_of_batch),
        )
        .await
        .map_err(measure_failed)?;
        // The state with the batch: keys add up, less the batch's keys the dataset already has
        // (found through the kept index of its keys); counts add up.
        let mut after = GateState {
            table_version: None,
            contract: contract_key.clone(),
            rows: before.rows + batch_state.rows,
            counts: HashMap::new(),
            keys: HashMap::new(),
        };
        let mut replaced_rows = 0.0;
        for check in &checks {
            let Some(columns) = check.key_columns() else {
                continue;
            };
            let key = check.key();
            let (nn, distinct) = before.keys.get(&key).copied().unwrap_or((0.0, 0.0));
            let (b_nn, b_distinct) = batch_state.keys.get(&key).copied().unwrap_or((0.0, 0.0));
            let keys = hashed_keys(&keys_of_batch, &batch, &columns).map_err(measure_failed)?;
            indexes
                .ensure(&ctx, &table, &columns, &batch, before.rows == 0.0)
                .await
                .map_err(measure_failed)?;
            let shared = indexes.by_columns[&columns]
                .shared(&ctx, &table, &columns, &batch, &keys)
                .await
                .map_err(measure_failed)?;
            // A merge replaces the rows of the keys the table holds (one each: it is unique on
            // them); an append adds to them.
            let replaced = if merge_on.is_some() { shared } else { 0.0 };
            after
                .keys
                .insert(key, (nn + b_nn - replaced, distinct + b_distinct - shared));
            if merge_on.is_some() {
                replaced_rows = shared;
            }
        }
        // What the rows a merge replaces count: as many rows as the keys it replaces (above);
        // of a count the dataset holds none of (no nulls in a required column), none. Only
        // another count reads them from the table, joined with the batch's keys.
        let counted_in_replaced = |check: &Check| {
            check.counts_rows()
                && !matches!(check.kind, CheckKind::RowCount)
                && before.counts.get(&check.key()).copied().unwrap_or(0.0) > 0.0
        };
        let replaced_state = match &merge_on {
            Some(keys) if checks.iter().any(counted_in_replaced) => {
                let on = key_join(keys);
                register_view(
                    &ctx,
                    &table,
                    REPLACED,
                    &format!(
                        "SELECT * FROM {table} t WHERE EXISTS (SELECT 1 FROM {INCOMING} b WHERE {on})"
                    ),
                )
                .await?;
                Some(
                    measure_state(
                        &ctx,
                        REPLACED,
                        &checks,
                        None,
                        &contract_key,
                        KeysFrom::Table,
                    )
                    .await
                    .map_err(measure_failed)?,
                )
            }
            _ => None,
        };
        for check in checks.iter().filter(|c| c.counts_rows()) {
            let key = check.key();
            let replaced = match (&merge_on, &replaced_state) {
                (Some(_), _) if matches!(check.kind, CheckKind::RowCount) => replaced_rows,
                (Some(_), Some(state)) => state.counts.get(&key).copied().unwrap_or(0.0),
                _ => 0.0,
            };
            let sum = before.counts.get(&key).copied().unwrap_or(0.0)
                + batch_state.counts.get(&key).copied().unwrap_or(0.0)
                - replaced;
            after.counts.insert(key, sum);
        }
        after.rows -= replaced_rows;
        if checks
            .iter()
            .any(|c| matches!(c.kind, CheckKind::Sql { .. }))
        {
            register_after(
                &ctx,
                &table,
                &format!("SELECT * FROM {table} UNION ALL SELECT * FROM {INCOMING}"),
            )
            .await?;
        }
        judge(
            &ctx,
            &table,
            &checks,
            before,
            after,
            version,
            keys_of_batch,
            Judged::Added,
        )
        .await
    }
}

/// The join of the table `t` and the batch `b` on `keys`.
fn key_join(keys: &[String]) -> String {
    keys.iter()
        .map(|k| format!("b.{c} = t.{c}", c = tessera_quality::ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Whether a merge on `keys` can be measured by adding up (see [`Measure::run`]): no `sql`
/// rule (it reads the dataset as it would be), at least one uniqueness check, every one of
/// them on exactly the merge's keys, and the table unique on them now (so a key it holds is
/// one row the merge replaces).
fn merge_adds_up(checks: &[Check], keys: &[String], before: &GateState) -> bool {
    let mut merge_keys = keys.to_vec();
    merge_keys.sort();
    let mut uniqueness = 0;
    for check in checks {
        if matches!(check.kind, CheckKind::Sql { .. }) {
            return false;
        }
        if let Some(mut columns) = check.key_columns() {
            columns.sort();
            let unique_now = before
                .keys
                .get(&check.key())
                .is_some_and(|(nn, distinct)| nn == distinct);
            if columns != merge_keys || !unique_now {
                return false;
            }
            uniqueness += 1;
        }
    }
    uniqueness > 0
}

/// How the dataset with the batch was measured.
#[derive(Clone, Copy)]
enum Judged {
    /// The batch's measures added to the kept ones.
    Added,
    /// The dataset as it would be, measured whole (a merge or a replacement); `alone`: the
    /// batch replaces the dataset, so what the dataset is now does not excuse a failing check.
    Whole { alone: bool },
}

/// Registers [`AFTER`], the dataset as it would be with the batch, as the view `sql`.
async fn register_after(ctx: &SessionContext, table: &str, sql: &str) -> Result<()> {
    register_view(ctx, table, AFTER, sql).await
}

/// Registers the view `sql` as `name` while `table` is gated (planned through `plan_sql`, as
/// every SQL text is).
async fn register_view(ctx: &SessionContext, table: &str, name: &str, sql: &str) -> Result<()> {
    let failed = |e: String| ServiceError::Unavailable(format!("gating a batch for {table}: {e}"));
    let view = tessera_query::plan_sql(ctx, sql)
        .await
        .map_err(|e| failed(e.to_string()))?;
    ctx.register_table(name, view.into_view())
        .map_err(|e| failed(e.to_string()))?;
    Ok(())
}

/// The verdict on a batch from the states without and with it (`sql` rules measured on the
/// dataset and on [`AFTER`], the dataset as it would be).
#[allow(clippy::too_many_arguments)]
async fn judge(
    ctx: &SessionContext,
    table: &str,
    checks: &[Check],
    before: GateState,
    after: GateState,
    version: Option<i64>,
    batch_keys: Vec<(Vec<String>, BatchKeys)>,
    judged: Judged,
) -> Result<GateVerdict> {
    let mut results_after = Vec::with_capacity(checks.len());
    let mut refused_by = None;
    for check in checks {
        let (was, now) = match &check.kind {
            CheckKind::Sql { .. } => (
                verdict(check, sql_measure(ctx, table, check).await, before.rows),
                verdict(check, sql_measure(ctx, AFTER, check).await, after.rows),
            ),
            _ => (
                verdict(check, Ok(Some(raw(&before, check))), before.rows),
                verdict(check, Ok(Some(raw(&after, check))), after.rows),
            ),
        };
        if refused_by.is_none()
            && check.gates_commits()
            && now.outcome == Outcome::Failed
            && (was.outcome != Outcome::Failed || matches!(judged, Judged::Whole { alone: true }))
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
    let mut before_state = before;
    before_state.table_version = version;
    Ok(GateVerdict {
        after: results_after,
        refused_by,
        started: chrono::Utc::now(),
        before_state,
        before_measured: true,
        replaced: false,
        next_state: after,
        batch_keys,
        merged: matches!(judged, Judged::Whole { .. }),
    })
}

/// The types of the key columns in `batch`.
fn key_types(
    batch: &RecordBatch,
    columns: &[String],
) -> datafusion::error::Result<Vec<arrow::datatypes::DataType>> {
    columns
        .iter()
        .map(|c| Ok(batch.schema().field_with_name(c)?.data_type().clone()))
        .collect()
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

/// Where a state's key counts come from.
enum KeysFrom<'a> {
    /// The table measured: a hash aggregate over its key columns.
    Table,
    /// The dataset's table, whose missing key indexes (hashed as this batch's keys) are built
    /// on the way: the keys are counted as they are indexed, and by a hash aggregate only when
    /// a hash comes twice.
    Indexed(&'a mut KeyIndexes, &'a RecordBatch),
    /// The table measured is this batch, whose keys are hashed already: counted from the hashes.
    Batch(&'a RecordBatch, &'a [(Vec<String>, BatchKeys)]),
}

/// Measures a table for the gated checks: one fused scan for the counts, and the non-null and
/// distinct keys of each key (a hash aggregate reading the key columns, or the batch's hashes).
async fn measure_state(
    ctx: &SessionContext,
    table: &str,
    checks: &[Check],
    version: Option<i64>,
    contract: &str,
    mut keys_from: KeysFrom<'_>,
) -> tessera_quality::Result<GateState> {
    let counting: Vec<&Check> = checks.iter().filter(|c| c.counts_rows()).collect();
    let (rows, counts) = count_measures(ctx, table, &counting).await?;
    let mut keys = HashMap::new();
    let mut by_columns: Vec<(Vec<String>, (f64, f64))> = Vec::new();
    for check in checks {
        let Some(columns) = check.key_columns() else {
            continue;
        };
        let counted = match by_columns.iter().find(|(c, _)| *c == columns) {
            Some((_, counted)) => *counted,
            None => {
                let counted = match &mut keys_from {
                    KeysFrom::Indexed(indexes, batch) => {
                        let read = indexes
                            .ensure(ctx, table, &columns, batch, rows == 0.0)
                            .await?;
                        match read.and_then(|r| Some((r.keys as f64, r.distinct()? as f64))) {
                            Some(counted) => counted,
                            None => key_counts(ctx, table, &columns).await?,
                        }
                    }
                    KeysFrom::Table => key_counts(ctx, table, &columns).await?,
                    KeysFrom::Batch(batch, hashed) => {
                        let keys = hashed_keys(hashed, batch, &columns)?;
                        (
                            keys.hashes.len() as f64,
                            keys.distinct(batch, &columns)? as f64,
                        )
                    }
                };
                by_columns.push((columns, counted));
                counted
            }
        };
        keys.insert(check.key(), counted);
    }
    Ok(GateState {
        table_version: version,
        contract: contract.to_string(),
        rows,
        counts: counting.iter().map(|c| c.key()).zip(counts).collect(),
        keys,
    })
}

/// The batch's keys over `columns`: as hashed already for the checks, or hashed now.
fn hashed_keys<'a>(
    hashed: &'a [(Vec<String>, BatchKeys)],
    batch: &RecordBatch,
    columns: &[String],
) -> tessera_quality::Result<Cow<'a, BatchKeys>> {
    Ok(match hashed.iter().find(|(c, _)| c.as_slice() == columns) {
        Some((_, keys)) => Cow::Borrowed(keys),
        None => Cow::Owned(batch_keys(batch, columns)?),
    })
}

/// The batch's keys over each key of `checks`, hashed once for every check on the same columns.
fn keys_of_batch(
    batch: &RecordBatch,
    checks: &[Check],
) -> tessera_quality::Result<Vec<(Vec<String>, BatchKeys)>> {
    let mut keys: Vec<(Vec<String>, BatchKeys)> = Vec::new();
    for columns in checks.iter().filter_map(|c| c.key_columns()) {
        if !keys.iter().any(|(c, _)| *c == columns) {
            let hashed = batch_keys(batch, &columns)?;
            keys.push((columns, hashed));
        }
    }
    Ok(keys)
}
