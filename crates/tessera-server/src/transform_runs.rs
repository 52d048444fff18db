//! Transform runs: a transform's query run as its product's owner team, its result cast to the
//! dataset's contract and gated by the contract's blocking checks, then written in one Delta
//! commit — the table replaced (full refresh), the rows past the watermark appended, or the
//! result merged by the contract's primary key. A run that fails anywhere commits nothing: the
//! dataset keeps its last good version, and the run's record says why.
//!
//! The commit also records, as Delta application transactions, the table version of every
//! dataset the run read. That is how a run knows whether anything upstream moved since the
//! dataset was last computed — after a restart or on another instance too — and so when an
//! upstream commit makes a transform due.
//!
//! Runs start by hand (`tessera run`, the API), every `every:` interval, and after an upstream
//! commit (debounced, see [`Debounce`]: once the inputs have been quiet for a while, or a longer
//! while after the first change when they never are), in the order the transforms feed each
//! other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{Expr, lit};
use futures::TryStreamExt;
use tessera_catalog::{RunsOf, TransformRecord, TransformRunRecord};
use tessera_core::{
    DatasetRef, FrontEnd, Materialization, QUARANTINE_REASON, RequestContext, TransformGraph,
    TransformSpec,
};
use tessera_governance::Action;
use tessera_quality::RowValidator;

use crate::error::{Result, ServiceError};
use crate::gate::{Commit, GateMode};
use crate::governance::{dataset_resource, product_resource};
use crate::mesh::Mesh;
use crate::openlineage::{EventDataset, EventJob};
use crate::service::{RunScope, TransformsService};
use crate::views::{TransformRunView, TransformView};

/// A run started by hand.
pub(crate) const MANUAL: &str = "manual";
/// A run its `every:` interval started.
pub(crate) const INTERVAL: &str = "interval";
/// A run an upstream commit started.
pub(crate) const UPSTREAM: &str = "upstream";

/// When an upstream commit starts a run: once the inputs have not moved for `quiet`, or
/// `max_wait` after the first change, for inputs that never stop moving (event streams).
/// `recheck`: how long a tick trusts this server's own commit counts alone — a table written
/// by another process (a second server, a Delta writer outside Tessera) is noticed within it.
#[derive(Debug, Clone, Copy)]
pub struct Debounce {
    pub quiet: Duration,
    pub max_wait: Duration,
    pub recheck: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Self {
            quiet: Duration::from_secs(2),
            max_wait: Duration::from_secs(60),
            recheck: Duration::from_secs(30),
        }
    }
}

/// The Delta application id under which a computed dataset's table records the version of an
/// input it was computed from.
fn input_app_id(input: &DatasetRef) -> String {
    format!("tessera-transform-input:{input}")
}

/// How long an upstream commit waits to start a run again after `failures` runs in a row failed
/// for a passing reason: 1 s, doubling, at most a minute.
fn retry_wait(failures: u32) -> Duration {
    Duration::from_secs(1 << failures.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// The Delta application id under which a computed dataset's table records which query computed
/// it (a fingerprint of the transform's text): rows computed by another query are not kept by
/// a run that recomputes only some keys.
const QUERY_APP_ID: &str = "tessera-transform-query";

/// A transform's text as a Delta application transaction's version: the first eight bytes of
/// its SHA-256, as a number at or above zero.
fn query_fingerprint(sql: &str) -> i64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(sql.as_bytes());
    let bytes: [u8; 8] = digest[..8].try_into().expect("eight bytes of a digest");
    i64::from_be_bytes(bytes) & i64::MAX
}

/// Past this many keys to recompute, a merge by the keys of new input rows recomputes the whole
/// dataset instead: a filter of that many values costs more than it saves.
const MAX_RECOMPUTED_KEYS: usize = 65_536;

fn parse(record: &TransformRecord) -> Result<TransformSpec> {
    tessera_spec::transform_from_file(&record.file_name, &record.source).map_err(|e| {
        ServiceError::Internal(format!(
            "transform {}.{}.{} is stored but cannot be read: {e}",
            record.domain, record.product, record.dataset
        ))
    })
}

fn target_of(record: &TransformRecord) -> Result<DatasetRef> {
    format!("{}.{}.{}", record.domain, record.product, record.dataset)
        .parse()
        .map_err(|e| ServiceError::Internal(format!("transform target: {e}")))
}

/// This instance's view of the transforms' background runs.
#[derive(Default)]
pub(crate) struct TransformRunners {
    /// When an upstream commit starts a run.
    debounce: Debounce,
    /// How many transforms of one run across the mesh or a product compute at once.
    concurrency: usize,
    /// A merge into a table of at most this many bytes writes it again whole (see
    /// `ServerConfig::transform_rewrite_max_bytes`).
    rewrite_max_bytes: u64,
    /// Per table (its location): what the last merge written again whole wrote, and at which
    /// version — the rows the next one starts from while the table holds the same rows, rather
    /// than reading them back. At most [`WRITTEN_TABLES_BYTES`] in all.
    written: Mutex<HashMap<String, WrittenTable>>,
    /// Per computed dataset: the input versions last seen changed, and since when they stood.
    pending: Mutex<HashMap<DatasetRef, Pending>>,
    /// Per dataset (`d.p.x`): how many commits this server made into it — the cheap signal
    /// that an input moved, so that a tick reads no table's log while nothing was committed.
    commits: Mutex<HashMap<String, u64>>,
    /// Per computed dataset: its inputs' commit counts when their tables were last read, and
    /// when.
    checked: Mutex<HashMap<DatasetRef, (Vec<u64>, Instant)>>,
    /// Per computed dataset: what the last run an upstream commit started was started for. The
    /// same start runs no other: a run that was refused (by the gate, for a missing grant) is
    /// not retried until an input moves again, the transform or the access rules or the
    /// contracts change, the interval comes, or someone runs it by hand. A run that failed for
    /// a passing reason (a busy server, storage down) forgets its start and is retried.
    started_for: Mutex<HashMap<DatasetRef, StartedFor>>,
    /// Per computed dataset whose last runs failed for a passing reason: how many in a row, and
    /// when an upstream commit may start the next (the wait doubles each time, see
    /// [`retry_wait`]), so a busy server is not asked again at every look.
    retrying: Mutex<HashMap<DatasetRef, (u32, Instant)>>,
    /// Per computed dataset: held for the whole of a run, so a dataset is computed one run at a
    /// time.
    running: Mutex<HashMap<DatasetRef, Arc<tokio::sync::Mutex<()>>>>,
    /// Per computed dataset: how long its last run on this server took, in milliseconds —
    /// what a run of several transforms expects it to take, to start the longest chains first.
    took_ms: Mutex<HashMap<DatasetRef, u64>>,
}

/// What an upstream-started run was started for: its inputs' versions, the transform as
/// applied, and the mesh's access rules and datasets (their generations) — what a failed run's
/// outcome depends on.
#[derive(PartialEq)]
struct StartedFor {
    versions: Vec<Option<i64>>,
    transform_applied_at: String,
    access: i64,
    datasets: String,
}

struct Pending {
    versions: Vec<Option<i64>>,
    first_seen: Instant,
    last_moved: Instant,
}

impl TransformRunners {
    pub(crate) fn new(debounce: Debounce, concurrency: usize, rewrite_max_bytes: u64) -> Self {
        Self {
            debounce,
            concurrency: concurrency.max(1),
            rewrite_max_bytes,
            ..Default::default()
        }
    }

    /// A commit of rows into `dataset` (`d.p.x`) by this server.
    pub(crate) fn committed(&self, dataset: &str) {
        *self
            .commits
            .lock()
            .expect("commit counts")
            .entry(dataset.to_string())
            .or_default() += 1;
    }

    fn commit_counts(&self, inputs: &[DatasetRef]) -> Vec<u64> {
        let commits = self.commits.lock().expect("commit counts");
        inputs
            .iter()
            .map(|i| commits.get(&i.to_string()).copied().unwrap_or(0))
            .collect()
    }

    /// A run of `target` failed for a passing reason: a later look may start it again, whatever
    /// the last was started for, once the wait after this many such failures in a row passed.
    fn failed_for_a_passing_reason(&self, target: &DatasetRef) {
        self.started_for
            .lock()
            .expect("transform runs started")
            .remove(target);
        let mut retrying = self.retrying.lock().expect("transform runs retrying");
        let failures = retrying.get(target).map_or(0, |(n, _)| *n) + 1;
        retrying.insert(
            target.clone(),
            (failures, Instant::now() + retry_wait(failures)),
        );
    }

    /// A run of `target` ended otherwise than for a passing reason: no wait before the next.
    fn stop_retrying(&self, target: &DatasetRef) {
        self.retrying
            .lock()
            .expect("transform runs retrying")
            .remove(target);
    }

    /// Whether `target` waits before an upstream commit may start it again.
    fn waits_to_retry(&self, target: &DatasetRef) -> bool {
        self.retrying
            .lock()
            .expect("transform runs retrying")
            .get(target)
            .is_some_and(|(_, not_before)| Instant::now() < *not_before)
    }

    fn run_lock(&self, target: &DatasetRef) -> Arc<tokio::sync::Mutex<()>> {
        self.running
            .lock()
            .expect("transform run locks")
            .entry(target.clone())
            .or_default()
            .clone()
    }

    fn ran(&self, target: &DatasetRef, took_ms: u64) {
        self.took_ms
            .lock()
            .expect("run durations")
            .insert(target.clone(), took_ms);
    }

    /// How long each of `targets` is expected to take: its last run's time here, at least 1 ms
    /// (one not yet run here counts as 1, so its chain's length still counts).
    fn expected_ms(&self, targets: &[&DatasetRef]) -> Vec<u64> {
        let took = self.took_ms.lock().expect("run durations");
        targets
            .iter()
            .map(|t| took.get(*t).copied().unwrap_or(0).max(1))
            .collect()
    }
}

/// What a run saw on its way, kept for its OpenLineage events even when it fails.
#[derive(Default)]
struct Observed {
    /// Each dataset read, at the table version read (`d.p.x@3`).
    inputs: Vec<String>,
    /// The query's column lineage, read from its plan.
    lineage: Option<tessera_core::QueryLineage>,
    /// The gate's checks, measured on the dataset as the run would leave it.
    assertions: Vec<tessera_quality::CheckResult>,
    /// Why a run that recomputes only some keys recomputed everything instead (its mode is
    /// then `full`).
    recomputed_all: Option<String>,
}

/// An input as a run read it: where its table is, at which version (none: no table yet).
struct InputRead {
    input: DatasetRef,
    location: String,
    version: Option<i64>,
}

/// The keys a run recomputes, as one array (none: no key).
fn key_array(values: &[ScalarValue]) -> Result<Option<ArrayRef>> {
    if values.is_empty() {
        return Ok(None);
    }
    ScalarValue::iter_to_array(values.iter().cloned())
        .map(Some)
        .map_err(|e| ServiceError::Internal(format!("the recomputed keys as an array: {e}")))
}

/// `key IN (keys)` over rows of `schema`: the rows of the keys a run recomputes (no key: no
/// row) — one call over a set, however many keys (`tessera_query::key_in`).
fn key_filter(
    key: &str,
    keys: &Option<ArrayRef>,
    schema: &datafusion::common::DFSchema,
) -> datafusion::error::Result<Expr> {
    match keys {
        Some(keys) => tessera_query::key_in(key, keys.clone(), schema),
        None => Ok(lit(false)),
    }
}

/// The rows of a dataset a run computed again: those of the keys it recomputed, or those from
/// its newest watermark on.
enum Recomputed {
    Keys(String, ArrayRef),
    From(Expr),
}

/// The table a merge wrote again whole, at the version its commit made.
struct WrittenTable {
    version: i64,
    rows: RecordBatch,
}

/// How much memory the tables merges wrote again may hold, together; a table of over a quarter
/// of it is not kept.
const WRITTEN_TABLES_BYTES: usize = 256 << 20;

impl TransformRunners {
    /// The rows the table at `location` held at `version`, if a merge wrote them.
    fn written(&self, location: &str) -> Option<(i64, RecordBatch)> {
        let written = self.written.lock().expect("written tables");
        written
            .get(location)
            .map(|table| (table.version, table.rows.clone()))
    }

    /// Keeps `rows`, what a merge wrote into the table at `location` at `version` (or forgets
    /// the table's, when they are too large), within [`WRITTEN_TABLES_BYTES`].
    fn wrote(&self, location: &str, version: i64, rows: RecordBatch) {
        let mut written = self.written.lock().expect("written tables");
        written.remove(location);
        let size = rows.get_array_memory_size();
        if size > WRITTEN_TABLES_BYTES / 4 {
            return;
        }
        let mut held: usize = written
            .values()
            .map(|t| t.rows.get_array_memory_size())
            .sum();
        while held + size > WRITTEN_TABLES_BYTES {
            let Some(other) = written.keys().next().cloned() else {
                break;
            };
            if let Some(table) = written.remove(&other) {
                held -= table.rows.get_array_memory_size();
            }
        }
        written.insert(location.to_string(), WrittenTable { version, rows });
    }
}

/// What a run did, for its record.
struct Done {
    rows_in: i64,
    rows_out: i64,
    table_version: Option<i64>,
}

impl Mesh {
    /// Runs one transform now and records the run; the record (a failed run is in its status
    /// and error, with nothing committed). `cx` started it; it runs as the product's owner team.
    pub(crate) async fn run_transform(
        &self,
        cx: &RequestContext,
        record: &TransformRecord,
        trigger: &str,
        full_refresh: bool,
    ) -> Result<TransformRunRecord> {
        let spec = parse(record)?;
        let target = target_of(record)?;
        let lock = self.transform_runners.run_lock(&target);
        let _one_run_at_a_time = lock.lock().await;
        let started = chrono::Utc::now();
        let clock = Instant::now();
        let mode = if full_refresh {
            "full"
        } else {
            match spec.materialization {
                Materialization::FullRefresh => "full",
                Materialization::Append { .. } => "append",
                Materialization::Merge { .. } => "merge",
            }
        };
        let run_id = uuid::Uuid::new_v4().to_string();
        let schemas = self.event_schemas(&target, &spec).await;
        let (output, inputs_named) = schemas.datasets(&target, &spec);
        let job = EventJob::transform(&target, &spec.sql);
        self.emit_lineage(self.openlineage.run_event(
            "START",
            started,
            &run_id,
            &job,
            &inputs_named,
            &output,
            None,
        ))
        .await;
        let mut observed = Observed::default();
        let began_ms = clock.elapsed().as_millis();
        let outcome = self
            .compute(cx, &spec, &target, full_refresh, &mut observed)
            .await;
        let inputs = &observed.inputs;
        let mode = if observed.recomputed_all.is_some() {
            "full"
        } else {
            mode
        };
        let mut run = TransformRunRecord {
            run_id: run_id.clone(),
            domain: record.domain.clone(),
            product: record.product.clone(),
            dataset: record.dataset.clone(),
            trigger: trigger.to_string(),
            mode: mode.to_string(),
            principal: cx.principal.to_string(),
            started_at: tessera_catalog::store_time(started),
            duration_ms: clock.elapsed().as_millis() as i64,
            inputs: inputs.join(", "),
            note: observed
                .recomputed_all
                .as_ref()
                .map(|why| format!("recomputed everything: {why}")),
            ..Default::default()
        };
        let location = schemas
            .location
            .as_deref()
            .and_then(|l| self.storage.table_url(l).ok())
            .map(|u| u.to_string());
        let error = outcome.as_ref().err().map(|e| e.to_string());
        let end = crate::openlineage::RunEnd {
            lineage: observed.lineage.as_ref(),
            location,
            rows: outcome.as_ref().ok().map(|d| d.rows_out),
            assertions: &observed.assertions,
            error: error.as_deref(),
        };
        self.emit_lineage(self.openlineage.run_event(
            if outcome.is_ok() { "COMPLETE" } else { "FAIL" },
            chrono::Utc::now(),
            &run_id,
            &job,
            &inputs_named,
            &output,
            Some(&end),
        ))
        .await;
        match outcome {
            Ok(done) => {
                self.transform_runners.stop_retrying(&target);
                run.status = "succeeded".into();
                run.rows_in = done.rows_in;
                run.rows_out = done.rows_out;
                run.table_version = done.table_version;
                tracing::info!(dataset = %target, trigger, rows_out = done.rows_out, ms = run.duration_ms, "transform ran");
            }
            Err(e) => {
                if e.is_transient() {
                    // Only a refusal would come again: a busy or failing server is retried, as
                    // if the run had not started, after a wait that grows while it fails.
                    self.transform_runners.failed_for_a_passing_reason(&target);
                } else {
                    self.transform_runners.stop_retrying(&target);
                }
                run.status = "failed".into();
                run.error = Some(e.to_string());
                tracing::warn!(dataset = %target, trigger, error = %e, "a transform run failed; the dataset keeps its last good version");
            }
        }
        self.transform_runners
            .ran(&target, run.duration_ms.max(0) as u64);
        let emitted_ms = clock.elapsed().as_millis();
        self.catalog.record_transform_run(&run).await?;
        // Around the computation: its START emitted, its end emitted, the run recorded.
        tracing::debug!(
            dataset = %target,
            began_ms,
            computed_ms = run.duration_ms,
            emitted_ms,
            recorded_ms = clock.elapsed().as_millis(),
            "transform run recorded"
        );
        Ok(run)
    }

    /// Computes `target` with `spec` and commits it; `observed` gets what the run saw on its way.
    async fn compute(
        &self,
        cx: &RequestContext,
        spec: &TransformSpec,
        target: &DatasetRef,
        full_refresh: bool,
        observed: &mut Observed,
    ) -> Result<Done> {
        let clock = Instant::now();
        let (domain, product) = (target.domain.as_str(), target.product.as_str());
        let owner = self.as_owner(cx, domain, product).await?;
        // The owner team writes the dataset: it must be allowed to, whoever started the run.
        self.authorize(&owner, Action::Ingest, &dataset_resource(target))
            .await?;
        let record = self.dataset_record(target).await?;
        let schema = self.dataset_schema(&record).await?;
        // The table is written by this run alone from reading its watermark to its commit.
        let lock = self.ingest_lock(&record.location);
        let _one_writer = lock.lock().await;
        // A merge rewrites every file holding a key it matches: a table merged from a
        // watermark is kept in files small enough that a run rewrites only its newest ones.
        if matches!(
            spec.materialization,
            Materialization::Merge {
                watermark: Some(_),
                ..
            }
        ) {
            self.storage.size_files_for_merges(&record.location).await?;
        }

        let mut read_at = Vec::with_capacity(spec.inputs.len());
        for input in &spec.inputs {
            let input_record = self.dataset_record(input).await?;
            let version = self.storage.version(&input_record.location).await?;
            observed.inputs.push(match version {
                Some(v) => format!("{input}@{v}"),
                None => input.to_string(),
            });
            read_at.push(InputRead {
                input: input.clone(),
                location: input_record.location,
                version,
            });
        }
        let looked_up_ms = clock.elapsed().as_millis();

        let mut materialization = if full_refresh {
            &Materialization::FullRefresh
        } else {
            &spec.materialization
        };
        // A merge by the keys of new input rows: the keys those rows hold, or (not known, or
        // too many) everything recomputed, as a full refresh.
        let scope = match materialization {
            Materialization::Merge {
                recompute_by: Some(key),
                ..
            } => match self
                .keys_to_recompute(&owner, spec, &record, key.as_str(), &read_at)
                .await?
            {
                Ok(values) => Some((key.to_string(), values)),
                Err(why) => {
                    observed.recomputed_all = Some(why);
                    materialization = &Materialization::FullRefresh;
                    None
                }
            },
            _ => None,
        };
        // Recorded with the commit: the query, and each input's version read.
        let positions: Vec<(String, i64)> =
            std::iter::once((QUERY_APP_ID.to_string(), query_fingerprint(&spec.sql)))
                .chain(
                    read_at
                        .iter()
                        .filter_map(|r| Some((input_app_id(&r.input), r.version?))),
                )
                .collect();
        let positions: Vec<(&str, i64)> = positions.iter().map(|(a, v)| (a.as_str(), *v)).collect();
        let keys: Vec<String> = schema
            .columns
            .iter()
            .filter(|c| c.primary_key)
            .map(|c| c.name.to_string())
            .collect();
        // Checked at apply too; the contract may have changed since.
        if let Some(message) = crate::transforms::materialization_problem(&schema, materialization)
        {
            return Err(ServiceError::BadRequest(format!("{target}: {message}")));
        }
        // Append: only the rows past the newest watermark the table holds; merge with a
        // watermark: the rows at or past it (the newest may be incomplete: it is recomputed).
        let past = match materialization {
            Materialization::Append { watermark } => self
                .newest(&owner, target, &record.location, watermark.as_str())
                .await?
                .map(|newest| (watermark.to_string(), newest, false)),
            Materialization::Merge {
                watermark: Some(watermark),
                ..
            } => self
                .newest(&owner, target, &record.location, watermark.as_str())
                .await?
                .map(|newest| (watermark.to_string(), newest, true)),
            _ => None,
        };
        // A merge from a watermark recomputes the rows from the newest value the table holds
        // on.
        let recomputed_from = match (materialization, &past) {
            (
                Materialization::Merge {
                    watermark: Some(_), ..
                },
                Some((column, newest, true)),
            ) => Some((
                column.clone(),
                Expr::Column(Column::new_unqualified(column)).gt_eq(lit(newest.clone())),
            )),
            _ => None,
        };
        // They are what the run replaces when the watermark is part of the primary key.
        // Otherwise a key the run computed again may be held by an older row, which a merge
        // updates and a replacement would leave beside the new one.
        let replaced_from = match (&recomputed_from, &past) {
            (Some((column, _)), Some((_, newest, true))) if keys.contains(column) => {
                Some((column.clone(), newest.clone()))
            }
            _ => None,
        };
        // A merge into a small table writes it again whole: the rows it keeps and the run's
        // (see `ServerConfig::transform_rewrite_max_bytes`). Not a merge from a watermark that
        // replaces the newest rows, which writes only those.
        let rewrite_max_bytes = self.transform_runners.rewrite_max_bytes;
        let rewrite = matches!(materialization, Materialization::Merge { .. })
            && replaced_from.is_none()
            && rewrite_max_bytes > 0
            && self
                .storage
                .table_info(&record.location)
                .await?
                .is_none_or(|table| table.bytes <= rewrite_max_bytes);
        let watermark_ms = clock.elapsed().as_millis();
        // The query's lineage is read from its plan as written, before the watermark's filter.
        let (lineage_tx, lineage_rx) = std::sync::mpsc::channel();
        let recomputed_keys = match &scope {
            Some((key, values)) => Some((key.clone(), key_array(values)?)),
            None => None,
        };
        let only_keys = recomputed_keys.clone();
        let refine: tessera_query::Refine = Box::new(move |df| {
            let _ = lineage_tx.send(tessera_query::query_lineage(df.logical_plan()).ok());
            let df = match only_keys {
                Some((key, keys)) => {
                    let filter = key_filter(&key, &keys, df.schema())?;
                    df.filter(filter)?
                }
                None => df,
            };
            match past {
                Some((column, newest, from)) => {
                    let column = Expr::Column(Column::new_unqualified(column));
                    df.filter(if from {
                        column.gt_eq(lit(newest))
                    } else {
                        column.gt(lit(newest))
                    })
                }
                None => Ok(df),
            }
        });
        let queried = self.transform_query(&owner, &spec.sql, refine).await;
        observed.lineage = lineage_rx.try_recv().ok().flatten();
        let (result, rows_in) = queried?;
        let queried_ms = clock.elapsed().as_millis();

        let now = chrono::Utc::now();
        let batch_id = format!("transform-{target}-{}", now.timestamp_micros());
        let (prepared, hits) = {
            let (schema, batch_id) = (schema.clone(), batch_id.clone());
            tokio::task::spawn_blocking(move || -> Result<_> {
                let validator = RowValidator::new(&schema)
                    .map_err(|e| ServiceError::Internal(format!("contract rules: {e}")))?;
                let prepared = if result.num_rows() == 0 {
                    tessera_ingest::Prepared::empty(&schema, &batch_id, now.timestamp_micros())?
                } else {
                    tessera_ingest::prepare_batch(
                        &schema,
                        &validator,
                        result,
                        &batch_id,
                        now.timestamp_micros(),
                    )
                    .map_err(|e| {
                        ServiceError::BadRequest(format!(
                            "the result does not fit the contract of {}: {e}",
                            schema.name
                        ))
                    })?
                };
                let hits = crate::mesh::personal_data_hits(&schema, &prepared.valid);
                Ok((prepared, hits))
            })
            .await
            .map_err(|e| {
                ServiceError::Internal(format!("checking a transform's result panicked: {e}"))
            })??
        };
        if prepared.quarantined() > 0 {
            return Err(ServiceError::BadRequest(format!(
                "{} of the result's {} rows break the contract of {target} (first: {}); nothing was committed",
                prepared.quarantined(),
                prepared.rows,
                first_reason(&prepared.quarantine)
            )));
        }
        // A rewrite's table: the rows it keeps — those of keys the run did not recompute, or
        // (no recomputed keys) whose primary key the result does not hold — and the result.
        let recomputed = recomputed_keys
            .as_ref()
            .and_then(|(key, keys)| Some((key.as_str(), keys.as_ref()?)));
        let rewritten = if rewrite && (recomputed.is_some() || prepared.valid.num_rows() > 0) {
            let (columns, replaced) = replaced_keys(&prepared.valid, &keys, recomputed)?;
            let table = self
                .rewritten_table(&record.location, &prepared.valid, &columns, &replaced)
                .await?;
            Some((table, columns, replaced))
        } else {
            None
        };
        // The recomputed rows replace the table's: a row the table holds for one of the
        // recomputed keys, or from the newest watermark on, that the run did not compute again
        // (a group a filter now leaves out, an input row gone) would stay, so then the whole
        // dataset is recomputed instead. A rewrite keeps no row of a recomputed key, nor a
        // replacement from the newest watermark on (the watermark in the key) any row from it on.
        let recomputed = match (recomputed_keys, &recomputed_from) {
            (Some(_), _) if rewritten.is_some() => None,
            (_, Some(_)) if replaced_from.is_some() => None,
            (Some((key, Some(keys))), _) => {
                let which = format!("of the recomputed {key}s");
                Some((Recomputed::Keys(key, keys), which))
            }
            (_, Some((column, from))) => Some((
                Recomputed::From(from.clone()),
                format!("from the newest {column} on"),
            )),
            _ => None,
        };
        let prepared_ms = clock.elapsed().as_millis();
        // A rewrite is measured as the table it writes, and judged as a merge.
        let (gated, gate_mode) = match (&rewritten, materialization) {
            (Some((table, _, _)), _) => (table, GateMode::Rewrite),
            (None, Materialization::FullRefresh) => (&prepared.valid, GateMode::Replace),
            (None, Materialization::Append { .. }) => (&prepared.valid, GateMode::Append),
            (None, Materialization::Merge { .. }) => (&prepared.valid, GateMode::Merge(&keys)),
        };
        // Both only read: whether a row was left behind is asked while the gate measures the
        // result, whose verdict is not used when one was.
        let left_behind = async {
            Ok::<_, ServiceError>(match recomputed {
                Some((rows, which)) => Some((
                    self.rows_not_recomputed(&owner, target, rows, &keys, &prepared.valid)
                        .await?,
                    which,
                )),
                None => None,
            })
        };
        let (left_behind, gate) =
            tokio::try_join!(left_behind, self.gate(&owner, &record, gated, gate_mode))?;
        if let Some((left, which)) = left_behind
            && left > 0
        {
            drop(_one_writer);
            *observed = Observed {
                recomputed_all: Some(format!(
                    "{left} row(s) {which} were not computed again: a merge would keep them"
                )),
                ..Observed::default()
            };
            return Box::pin(self.compute(cx, spec, target, true, observed)).await;
        }
        if let Some(verdict) = &gate {
            observed.assertions = verdict.after.clone();
        }
        if let Some((_, _, reason)) = gate.as_ref().and_then(|g| g.refused_by.as_ref()) {
            return Err(ServiceError::BadRequest(format!(
                "{}; nothing was committed",
                reason.replacen("the batch", "the result", 1)
            )));
        }
        let rows_out = prepared.valid.num_rows();
        let gated_ms = clock.elapsed().as_millis();
        let outcome = match materialization {
            // The rows of the replaced keys are marked deleted, the run's added: no file is
            // written again.
            _ if let Some((table, columns, replaced)) = rewritten => {
                let outcome = self
                    .storage
                    .replace_keys_sequenced(
                        &record.location,
                        vec![prepared.valid.clone()],
                        &columns,
                        &replaced,
                        &positions,
                    )
                    .await?;
                if let Some(version) = outcome.version {
                    self.transform_runners
                        .wrote(&record.location, version, table);
                }
                outcome
            }
            Materialization::FullRefresh => {
                self.storage
                    .replace_sequenced(&record.location, vec![prepared.valid.clone()], &positions)
                    .await?
            }
            Materialization::Append { .. } => {
                self.storage
                    .append_sequenced(&record.location, vec![prepared.valid.clone()], &positions)
                    .await?
            }
            // Every row from the newest watermark on was computed again (above): replacing
            // them leaves what a merge would, without joining the result with the table.
            Materialization::Merge { .. } if let Some((column, from)) = replaced_from => {
                self.storage
                    .replace_from_sequenced(
                        &record.location,
                        vec![prepared.valid.clone()],
                        &column,
                        from,
                        &positions,
                    )
                    .await?
            }
            Materialization::Merge { .. } => {
                let ctx = self.session(&owner).await?;
                let frame = ctx.read_batch(prepared.valid.clone()).map_err(|e| {
                    ServiceError::Internal(format!("the transform's result as a table: {e}"))
                })?;
                self.storage
                    .merge_sequenced(&record.location, frame, rows_out, &keys, &positions)
                    .await?
            }
        };
        let written_ms = clock.elapsed().as_millis();
        let batch = tessera_catalog::BatchRecord {
            domain: record.domain.clone(),
            product: record.product.clone(),
            dataset: record.name.clone(),
            batch_id,
            accepted: rows_out as i64,
            quarantined: 0,
            table_version: outcome.version,
            committed_at: tessera_catalog::store_time(now),
        };
        // The run's own START and end are emitted by `run_transform`, with its column lineage.
        self.record_commit(
            &owner,
            Commit {
                record: &record,
                gate,
                refused: false,
                committed: outcome.version,
                table_version: outcome.version,
                batch,
                hits,
                run: None,
            },
        )
        .await?;
        // Where a run's time goes, for whoever tunes transforms (ms since it began: the
        // records, the owner and the inputs' versions looked up, the watermark read, the query
        // run, its result cast to the contract, gated, written, the commit recorded).
        tracing::debug!(
            dataset = %target,
            rows = rows_out,
            looked_up_ms,
            watermark_ms,
            queried_ms,
            prepared_ms,
            gated_ms,
            written_ms,
            recorded_ms = clock.elapsed().as_millis(),
            "transform computed"
        );
        Ok(Done {
            rows_in,
            rows_out: rows_out as i64,
            table_version: outcome.version,
        })
    }

    /// The values of `key` whose rows a merge by the keys of new input rows recomputes: those
    /// the rows its inputs added since the dataset was last computed hold, in the input columns
    /// `key` comes from unchanged (the query's lineage). `Err` says why everything is recomputed
    /// instead: the dataset was never computed, or by another query; an input that moved
    /// rewrote rows rather than adding them, or does not give `key` unchanged; too many keys.
    async fn keys_to_recompute(
        &self,
        owner: &RequestContext,
        spec: &TransformSpec,
        record: &tessera_catalog::DatasetRecord,
        key: &str,
        read_at: &[InputRead],
    ) -> Result<std::result::Result<Vec<ScalarValue>, String>> {
        let ids: Vec<String> = std::iter::once(QUERY_APP_ID.to_string())
            .chain(read_at.iter().map(|r| input_app_id(&r.input)))
            .collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let computed_at = self.storage.sequences(&record.location, &ids).await?;
        if computed_at[0] != Some(query_fingerprint(&spec.sql)) {
            return Ok(Err(
                "the dataset was not computed by this query before".to_string()
            ));
        }
        let mut moved: Vec<(&InputRead, i64, i64)> = Vec::new();
        for (read, then) in read_at.iter().zip(&computed_at[1..]) {
            match (*then, read.version) {
                (Some(then), Some(now)) if now == then => {}
                // No table then or now: nothing was added.
                (None, None) => {}
                (then, Some(now)) => moved.push((read, then.unwrap_or(-1), now)),
                (Some(_), None) => {
                    return Ok(Err(format!("{} has no table any more", read.input)));
                }
            }
        }
        if moved.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        // Which input columns the key comes from unchanged, from the query's plan.
        let ctx = self.session(owner).await?;
        let sql = spec.sql.clone();
        let lineage = self
            .engine()
            .run(&ctx.clone(), async move {
                let frame = tessera_query::plan_sql(&ctx, &sql).await?;
                Ok(tessera_query::query_lineage(frame.logical_plan()).ok())
            })
            .await
            .map_err(|e| ServiceError::from(e).with_context("planning the transform"))?;
        let sources: Vec<tessera_core::ColumnRef> = lineage
            .as_ref()
            .and_then(|l| l.columns.iter().find(|(name, _)| name == key))
            .map(|(_, sources)| {
                sources
                    .iter()
                    .filter(|(_, how)| how.contains(&tessera_core::Derivation::Identity))
                    .map(|(column, _)| column.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut keys = std::collections::HashSet::new();
        for (read, then, now) in moved {
            let name = read.input.to_string();
            let from: Vec<&tessera_core::ColumnRef> =
                sources.iter().filter(|c| c.dataset == name).collect();
            if from.is_empty() {
                return Ok(Err(format!(
                    "{name} moved, and {key} does not come unchanged from a column of it"
                )));
            }
            for column in from {
                let Some(arrays) = self
                    .storage
                    .values_added_since(&read.location, then, now, &column.column)
                    .await?
                else {
                    return Ok(Err(format!(
                        "{name} changed rows since the last run, not only added them"
                    )));
                };
                for array in arrays {
                    for i in 0..array.len() {
                        if array.is_valid(i) {
                            keys.insert(ScalarValue::try_from_array(&array, i).map_err(|e| {
                                ServiceError::Internal(format!("a key of {name}: {e}"))
                            })?);
                        }
                    }
                    if keys.len() > MAX_RECOMPUTED_KEYS {
                        return Ok(Err(format!(
                            "the new rows hold more than {MAX_RECOMPUTED_KEYS} {key}s"
                        )));
                    }
                }
            }
        }
        Ok(Ok(keys.into_iter().collect()))
    }

    /// The table at `location` as a merge of `result` leaves it, in memory: its rows whose
    /// `columns` hold none of the `replaced` keys (see [`replaced_keys`]), and the result's.
    async fn rewritten_table(
        &self,
        location: &str,
        result: &RecordBatch,
        columns: &[String],
        replaced: &[ArrayRef],
    ) -> Result<RecordBatch> {
        let internal = |e: &dyn std::fmt::Display| {
            ServiceError::Internal(format!("the table as the merge leaves it: {e}"))
        };
        // What the last merge wrote, while the table holds the same rows (a compaction, a
        // commit of positions alone since) and the contract the same columns; read from the
        // table otherwise.
        let schema = result.schema();
        let version = self.storage.version(location).await?;
        let held = match self.transform_runners.written(location) {
            Some((wrote_at, rows))
                if rows.schema() == schema
                    && self.same_rows(location, Some(wrote_at), version).await? =>
            {
                vec![rows]
            }
            _ => self.storage.rows(location).await?,
        };
        let kept = tessera_storage::rows_without_keys(&held, columns, replaced, &schema)
            .map_err(|e| internal(&e))?;
        arrow::compute::concat_batches(&schema, kept.iter().chain([result]))
            .map_err(|e| internal(&e))
    }

    /// How many of the table's rows that `recomputed` holds for (the rows a run computed
    /// again) the run's `result` does not hold again (by the contract's primary key `primary`).
    async fn rows_not_recomputed(
        &self,
        owner: &RequestContext,
        target: &DatasetRef,
        recomputed: Recomputed,
        primary: &[String],
        result: &RecordBatch,
    ) -> Result<usize> {
        use datafusion::prelude::JoinType;
        let ctx = self.session(owner).await?;
        let (table, filter, primary, result) = (
            target.to_string(),
            recomputed,
            primary.to_vec(),
            result.clone(),
        );
        self.engine()
            .run(&ctx.clone(), async move {
                let failed = tessera_query::QueryError::from_datafusion;
                let side = |side: &str, k: &str| Expr::Column(Column::new(Some(side), k));
                let names: Vec<&str> = primary.iter().map(String::as_str).collect();
                let held = ctx.table(table.as_str()).await.map_err(failed)?;
                let filter = match filter {
                    Recomputed::Keys(key, keys) => {
                        tessera_query::key_in(&key, keys, held.schema()).map_err(failed)?
                    }
                    Recomputed::From(from) => from,
                };
                let held = held
                    .filter(filter)
                    .and_then(|f| f.select_columns(&names))
                    .and_then(|f| f.alias("held"))
                    .map_err(failed)?;
                let computed = ctx
                    .read_batch(result)
                    .and_then(|f| f.select_columns(&names))
                    .and_then(|f| f.alias("computed"))
                    .map_err(failed)?;
                let on: Vec<Expr> = names
                    .iter()
                    .map(|k| side("held", k).eq(side("computed", k)))
                    .collect();
                held.join_on(computed, JoinType::LeftAnti, on)
                    .map_err(failed)?
                    .count()
                    .await
                    .map_err(failed)
            })
            .await
            .map_err(|e| ServiceError::from(e).with_context("comparing the recomputed rows"))
    }

    /// The contracts' schemas of a transform's output and inputs, for its events (a dataset
    /// that cannot be read is named without one).
    async fn event_schemas(&self, target: &DatasetRef, spec: &TransformSpec) -> EventSchemas {
        let mut schemas = EventSchemas::default();
        for (i, dataset) in std::iter::once(target).chain(&spec.inputs).enumerate() {
            let Ok(record) = self.dataset_record(dataset).await else {
                schemas.of.push(None);
                continue;
            };
            if i == 0 {
                schemas.location = Some(record.location.clone());
            }
            schemas.of.push(self.dataset_schema(&record).await.ok());
        }
        schemas
    }

    /// The newest value of `column` in `target` (none: the table holds no row with one).
    async fn newest(
        &self,
        owner: &RequestContext,
        target: &DatasetRef,
        location: &str,
        column: &str,
    ) -> Result<Option<ScalarValue>> {
        // A date or integer watermark: the log's statistics say it, no file read.
        if let Some(newest) = self
            .storage
            .max_from_statistics(location, column)
            .await
            .map_err(|e| ServiceError::from(e).with_context("reading the watermark"))?
        {
            return Ok(Some(newest));
        }
        let sql = format!(
            "SELECT max({}) FROM {target}",
            tessera_quality::ident(column)
        );
        let ctx = self.session(owner).await?;
        let batches = self
            .engine()
            .run(&ctx.clone(), async move {
                tessera_query::plan_sql(&ctx, &sql)
                    .await?
                    .collect()
                    .await
                    .map_err(tessera_query::QueryError::from_datafusion)
            })
            .await
            .map_err(|e| ServiceError::from(e).with_context("reading the watermark"))?;
        let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Ok(None);
        };
        let newest = ScalarValue::try_from_array(batch.column(0), 0)
            .map_err(|e| ServiceError::Internal(format!("the watermark's value: {e}")))?;
        Ok((!newest.is_null()).then_some(newest))
    }

    /// Runs a transform's query as `owner` (the query limits apply, and it is logged as the
    /// owner's); its whole result and the rows its scans read.
    async fn transform_query(
        &self,
        owner: &RequestContext,
        sql: &str,
        refine: tessera_query::Refine,
    ) -> Result<(RecordBatch, i64)> {
        let snapshot = self.snapshot_for(owner).await?;
        let (report_tx, report_rx) = tokio::sync::oneshot::channel();
        let log = self.query_log.clone();
        let entry = crate::query_log::entry_for(owner, sql);
        let observer = Box::new(move |report: tessera_query::QueryReport| {
            let _ = report_tx.send(report.rows_scanned);
            log.record(entry.with(report));
        });
        let stream = self
            .engine()
            .execute_refined(&snapshot, sql, owner, observer, refine)
            .await?;
        let schema = stream.schema();
        let batches: Vec<RecordBatch> = stream.try_collect().await?;
        let rows_in = report_rx.await.unwrap_or(0) as i64;
        let result = arrow::compute::concat_batches(&schema, &batches)
            .map_err(|e| ServiceError::Internal(format!("the transform's result: {e}")))?;
        Ok((result, rows_in))
    }

    /// Every transform, in the order they feed each other, and the graph of what feeds what.
    async fn transforms_in_order(&self) -> Result<InOrder> {
        let (records, graph) = self.transform_graph().await?;
        let order = graph.order().map_err(|cycles| {
            ServiceError::Conflict(format!(
                "the transforms read each other's results round a loop: {}",
                cycles
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        let transforms = order
            .into_iter()
            .filter_map(|target| {
                let record = records
                    .iter()
                    .find(|r| target_of(r).ok().as_ref() == Some(&target))?;
                Some((target, record.clone()))
            })
            .collect();
        Ok(InOrder { transforms, graph })
    }

    /// The transforms as the graph of what feeds what.
    async fn transform_graph(&self) -> Result<(Vec<TransformRecord>, TransformGraph)> {
        let records = self.catalog.transforms(None).await?;
        let specs: Vec<(DatasetRef, TransformSpec)> = records
            .iter()
            .filter_map(|r| Some((target_of(r).ok()?, parse(r).ok()?)))
            .collect();
        let graph = TransformGraph::new(specs.iter().map(|(t, s)| (t.clone(), s.inputs.clone())));
        Ok((records, graph))
    }

    /// Whether the caller may discover the product `domain.product`.
    async fn discovers_product(
        &self,
        cx: &RequestContext,
        domain: &str,
        product: &str,
    ) -> Result<bool> {
        let access = self.access_for(cx).await?;
        Ok(access.allowed(
            &cx.principal,
            Action::Discover,
            &product_resource(domain, product),
        ))
    }

    /// Which transforms are due now, in the order they feed each other, with their triggers;
    /// and the graph of the mesh's transforms.
    async fn due_transforms(&self) -> Result<(Vec<Due>, TransformGraph)> {
        let mut due = Vec::new();
        let InOrder { transforms, graph } = self.transforms_in_order().await?;
        for (target, record) in transforms {
            let Ok(spec) = parse(&record) else { continue };
            if let Some(every) = spec.every {
                let last = self
                    .catalog
                    .transform_runs(
                        RunsOf::dataset(&record.domain, &record.product, &record.dataset),
                        1,
                    )
                    .await?
                    .pop();
                let since = last
                    .map(|r| r.started_at)
                    .unwrap_or_else(|| record.updated_at.clone());
                let elapsed = chrono::DateTime::parse_from_rfc3339(&since)
                    .map(|t| chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                    .ok()
                    .and_then(|d| d.to_std().ok());
                if elapsed.is_some_and(|e| e >= every) {
                    due.push((target, record, INTERVAL));
                    continue;
                }
            }
            if spec.on_upstream && self.upstream_settled(&target, &record, &spec).await? {
                due.push((target, record, UPSTREAM));
            }
        }
        Ok((due, graph))
    }

    /// The inputs' table versions now, when one of them committed rows since `target` was last
    /// computed (a compaction or a commit of positions alone does not count); `None` otherwise.
    async fn inputs_moved(
        &self,
        target: &DatasetRef,
        spec: &TransformSpec,
    ) -> Result<Option<Vec<Option<i64>>>> {
        let record = self.dataset_record(target).await?;
        let ids: Vec<String> = spec.inputs.iter().map(input_app_id).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let computed_from = self.storage.sequences(&record.location, &ids).await?;
        let mut now_at = Vec::with_capacity(spec.inputs.len());
        let mut moved = false;
        for (input, then) in spec.inputs.iter().zip(&computed_from) {
            let location = self.dataset_record(input).await?.location;
            let now = self.storage.version(&location).await?;
            moved |= match (now, then) {
                (None, _) => false,
                (Some(now), Some(then)) if now == *then => false,
                (Some(_), Some(then)) => self.storage.data_changed_since(&location, *then).await?,
                (Some(_), None) => true,
            };
            now_at.push(now);
        }
        Ok(moved.then_some(now_at))
    }

    /// Whether an input of `target` committed since it was last computed and has settled
    /// (see [`Debounce`]).
    async fn upstream_settled(
        &self,
        target: &DatasetRef,
        record: &TransformRecord,
        spec: &TransformSpec,
    ) -> Result<bool> {
        if self.transform_runners.waits_to_retry(target) {
            return Ok(false);
        }
        // Nothing waiting to settle, no commit into an input since its tables were last read,
        // and read recently: nothing moved, and no table's log is read.
        let counts = self.transform_runners.commit_counts(&spec.inputs);
        let waiting = self
            .transform_runners
            .pending
            .lock()
            .expect("pending transforms")
            .contains_key(target);
        if !waiting
            && self
                .transform_runners
                .checked
                .lock()
                .expect("checked transforms")
                .get(target)
                .is_some_and(|(seen, at)| {
                    *seen == counts && at.elapsed() < self.transform_runners.debounce.recheck
                })
        {
            return Ok(false);
        }
        let moved = self.inputs_moved(target, spec).await?;
        // What a failed run's outcome depends on besides its inputs: read only when they moved.
        let generations = match moved {
            Some(_) => Some(self.catalog.generations().await?),
            None => None,
        };
        self.transform_runners
            .checked
            .lock()
            .expect("checked transforms")
            .insert(target.clone(), (counts, Instant::now()));
        let mut pending = self
            .transform_runners
            .pending
            .lock()
            .expect("pending transforms");
        let (Some(now_at), Some(generations)) = (moved, generations) else {
            pending.remove(target);
            return Ok(false);
        };
        let mut started_for = self
            .transform_runners
            .started_for
            .lock()
            .expect("transform runs started");
        let start = StartedFor {
            versions: now_at.clone(),
            transform_applied_at: record.updated_at.clone(),
            access: generations.access,
            datasets: generations.datasets,
        };
        if started_for.get(target) == Some(&start) {
            pending.remove(target);
            return Ok(false);
        }
        let seen = pending.entry(target.clone()).or_insert_with(|| Pending {
            versions: now_at.clone(),
            first_seen: Instant::now(),
            last_moved: Instant::now(),
        });
        if seen.versions != now_at {
            seen.versions = now_at.clone();
            seen.last_moved = Instant::now();
        }
        let Debounce {
            quiet, max_wait, ..
        } = self.transform_runners.debounce;
        let settled = seen.last_moved.elapsed() >= quiet || seen.first_seen.elapsed() >= max_wait;
        if settled {
            pending.remove(target);
            started_for.insert(target.clone(), start);
        }
        Ok(settled)
    }

    /// Runs now, in the order they feed each other, every transform whose inputs committed rows
    /// since its dataset was last computed — without waiting for them to settle: what a loader
    /// does once it has loaded. The runs, failed ones included.
    pub async fn run_stale_transforms(
        &self,
        cx: &RequestContext,
    ) -> Result<Vec<TransformRunRecord>> {
        let in_order = self.transforms_in_order().await?;
        self.run_in_order(cx, in_order, UPSTREAM, Pick::Behind)
            .await
    }

    /// Runs `chosen.transforms` (in the order they feed each other), as `pick` says, each
    /// started by `trigger`; the runs, failed ones included, in that order.
    ///
    /// Up to the configured concurrency run at once (see [`Mesh::in_dependency_order`]), each
    /// judged when it starts, after the runs upstream of it, so it sees what they committed.
    /// A run that fails does not hold up the others; an error that is not a run's (the
    /// metadata store failing) starts no more and is returned once those under way have
    /// finished.
    async fn run_in_order(
        &self,
        cx: &RequestContext,
        chosen: InOrder,
        trigger: &str,
        pick: Pick,
    ) -> Result<Vec<TransformRunRecord>> {
        let InOrder { transforms, graph } = chosen;
        let targets: Vec<&DatasetRef> = transforms.iter().map(|(target, _)| target).collect();
        let outcomes = self
            .in_dependency_order(
                &waits_for(&targets, &graph),
                &self.transform_runners.expected_ms(&targets),
                |i| {
                    let (target, record) = &transforms[i];
                    self.run_picked(cx, target, record, trigger, pick)
                },
                |outcome| outcome.is_err(),
            )
            .await;
        let mut runs = Vec::new();
        for outcome in outcomes.into_iter().flatten() {
            runs.extend(outcome?);
        }
        Ok(runs)
    }

    /// Runs `job(i)` for each of `waits_for.len()` jobs (given in an order where a job comes
    /// after those it waits for), up to the configured transform concurrency at once: job `i`
    /// starts once every job in `waits_for[i]` has finished. Of the jobs ready, those heading
    /// the longest chain of expected milliseconds (`expected_ms`, see [`critical_paths`]) start
    /// first, so the longest chain is not left for last; earlier ones on a tie. Once a job's
    /// outcome is one `stops` holds for, no more start (those under way finish). The outcomes
    /// by job; `None` for a job that never started.
    async fn in_dependency_order<'a, T, Job, Run>(
        &self,
        waits_for: &[Vec<usize>],
        expected_ms: &[u64],
        mut job: Job,
        stops: impl Fn(&T) -> bool,
    ) -> Vec<Option<T>>
    where
        Job: FnMut(usize) -> Run,
        Run: std::future::Future<Output = T> + 'a,
    {
        use futures::stream::{FuturesUnordered, StreamExt};
        let count = waits_for.len();
        let mut by_chain: Vec<usize> = (0..count).collect();
        let chains = critical_paths(waits_for, expected_ms);
        by_chain.sort_by_key(|&i| (std::cmp::Reverse(chains[i]), i));
        let (mut started, mut finished) = (vec![false; count], vec![false; count]);
        let mut outcomes: Vec<Option<T>> = (0..count).map(|_| None).collect();
        let mut stopped = false;
        let mut running = FuturesUnordered::new();
        loop {
            for &i in &by_chain {
                if stopped || running.len() >= self.transform_runners.concurrency.max(1) {
                    break;
                }
                if !started[i] && waits_for[i].iter().all(|&j| finished[j]) {
                    started[i] = true;
                    let run = job(i);
                    running.push(async move { (i, run.await) });
                }
            }
            let Some((i, outcome)) = running.next().await else {
                break;
            };
            finished[i] = true;
            stopped |= stops(&outcome);
            outcomes[i] = Some(outcome);
        }
        outcomes
    }

    /// Runs `record` as `pick` says (none: it is not behind its inputs).
    async fn run_picked(
        &self,
        cx: &RequestContext,
        target: &DatasetRef,
        record: &TransformRecord,
        trigger: &str,
        pick: Pick,
    ) -> Result<Option<TransformRunRecord>> {
        let run = match pick {
            Pick::All { .. } => true,
            Pick::Behind => self.inputs_moved(target, &parse(record)?).await?.is_some(),
        };
        if !run {
            return Ok(None);
        }
        let full_refresh = matches!(pick, Pick::All { full_refresh: true });
        self.run_transform(cx, record, trigger, full_refresh)
            .await
            .map(Some)
    }
}

/// The keys whose rows a merge of `result` replaces, as columns and their values (row `i` of
/// the arrays one key): the recomputed key's values (`recomputed`: the column and the keys the
/// run recomputed) or, without one, the result's primary keys (`primary`).
fn replaced_keys(
    result: &RecordBatch,
    primary: &[String],
    recomputed: Option<(&str, &ArrayRef)>,
) -> Result<(Vec<String>, Vec<ArrayRef>)> {
    Ok(match recomputed {
        Some((key, keys)) => (vec![key.to_string()], vec![keys.clone()]),
        None => (
            primary.to_vec(),
            primary
                .iter()
                .map(|k| {
                    result.column_by_name(k).cloned().ok_or_else(|| {
                        ServiceError::Internal(format!("the result has no column {k}"))
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        ),
    })
}

/// Transforms in the order they feed each other, and the graph of the mesh's transforms.
struct InOrder {
    transforms: Vec<(DatasetRef, TransformRecord)>,
    graph: TransformGraph,
}

/// For each of `targets` (datasets computed by transforms, in the order they feed each other),
/// the positions of those upstream of it in `graph`, directly or through other transforms.
fn waits_for(targets: &[&DatasetRef], graph: &TransformGraph) -> Vec<Vec<usize>> {
    let downstream: Vec<std::collections::BTreeSet<DatasetRef>> = targets
        .iter()
        .map(|target| graph.downstream_of(target).into_iter().collect())
        .collect();
    targets
        .iter()
        .map(|target| {
            (0..targets.len())
                .filter(|&j| downstream[j].contains(*target))
                .collect()
        })
        .collect()
}

/// For each job (in an order where a job comes after those in its `waits_for`), the longest
/// chain of expected milliseconds that starts with it: its own, and the longest of the jobs
/// waiting for it.
fn critical_paths(waits_for: &[Vec<usize>], expected_ms: &[u64]) -> Vec<u64> {
    let mut chains = expected_ms.to_vec();
    for i in (0..waits_for.len()).rev() {
        for &j in &waits_for[i] {
            chains[j] = chains[j].max(expected_ms[j] + chains[i]);
        }
    }
    chains
}

/// Which of the transforms handed to [`Mesh::run_in_order`] run.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// Each of them, recomputing everything or as its materialization says.
    All { full_refresh: bool },
    /// Those whose dataset is behind its inputs (see [`Mesh::inputs_moved`]).
    Behind,
}

/// The schemas a transform's events carry: the output's first, then each input's.
#[derive(Default)]
struct EventSchemas {
    of: Vec<Option<tessera_core::DatasetSchema>>,
    /// The output table's location.
    location: Option<String>,
}

impl EventSchemas {
    /// The output and the inputs as events name them.
    fn datasets<'a>(
        &'a self,
        target: &DatasetRef,
        spec: &TransformSpec,
    ) -> (EventDataset<'a>, Vec<EventDataset<'a>>) {
        let schema = |i: usize| self.of.get(i).and_then(Option::as_ref);
        let output = EventDataset::mesh(target.to_string(), schema(0));
        let inputs = spec
            .inputs
            .iter()
            .enumerate()
            .map(|(i, d)| EventDataset::mesh(d.to_string(), schema(i + 1)))
            .collect();
        (output, inputs)
    }
}

/// A run as the API shows it.
fn run_view(run: TransformRunRecord) -> TransformRunView {
    TransformRunView {
        run_id: run.run_id,
        dataset: format!("{}.{}.{}", run.domain, run.product, run.dataset),
        trigger: run.trigger,
        mode: run.mode,
        status: run.status,
        principal: run.principal,
        started_at: run.started_at,
        duration_ms: run.duration_ms,
        rows_in: run.rows_in,
        rows_out: run.rows_out,
        table_version: run.table_version,
        inputs: run
            .inputs
            .split(", ")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        error: run.error,
        note: run.note,
    }
}

/// The reason given for the first row of a quarantine batch.
fn first_reason(quarantine: &RecordBatch) -> String {
    quarantine
        .column_by_name(QUARANTINE_REASON)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
        .filter(|c| !c.is_empty())
        .map(|c| c.value(0).to_string())
        .unwrap_or_default()
}

/// Runs the transforms that are due, one after the other in the order they feed each other,
/// until the task is aborted.
pub(crate) async fn run(mesh: Arc<Mesh>, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let (due, graph) = match mesh.due_transforms().await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "finding the transforms that are due");
                continue;
            }
        };
        // Those that do not feed each other at once, as a run by hand (see `run_in_order`).
        let targets: Vec<&DatasetRef> = due.iter().map(|(target, _, _)| target).collect();
        let contexts: Vec<RequestContext> = due
            .iter()
            .map(|_| {
                RequestContext::system(
                    "scheduler",
                    uuid::Uuid::new_v4().to_string(),
                    FrontEnd::Scheduler,
                )
            })
            .collect();
        let outcomes = mesh
            .in_dependency_order(
                &waits_for(&targets, &graph),
                &mesh.transform_runners.expected_ms(&targets),
                |i| {
                    let (_, record, trigger) = &due[i];
                    mesh.run_transform(&contexts[i], record, trigger, false)
                },
                |_| false,
            )
            .await;
        for ((target, record, _), outcome) in due.iter().zip(outcomes) {
            if let Some(Err(e)) = outcome {
                mesh.transform_runners.failed_for_a_passing_reason(target);
                tracing::warn!(dataset = %record.dataset, error = %e, "a transform run was not recorded");
            }
        }
    }
}

/// A transform that is due: the dataset it computes, the transform, what started it.
type Due = (DatasetRef, TransformRecord, &'static str);

#[async_trait]
impl TransformsService for Mesh {
    async fn transforms(
        &self,
        cx: &RequestContext,
        product: Option<(&str, &str)>,
    ) -> Result<Vec<TransformView>> {
        let access = self.access_for(cx).await?;
        let mut views = Vec::new();
        for record in self.catalog.transforms(product).await? {
            if !access.allowed(
                &cx.principal,
                Action::Discover,
                &product_resource(&record.domain, &record.product),
            ) {
                continue;
            }
            let spec = parse(&record)?;
            let last_run = self
                .catalog
                .transform_runs(
                    RunsOf::dataset(&record.domain, &record.product, &record.dataset),
                    1,
                )
                .await?
                .pop()
                .map(run_view);
            let mut triggers = Vec::new();
            if let Some(every) = spec.every {
                triggers.push(format!("every {}s", every.as_secs_f64()));
            }
            if spec.on_upstream {
                triggers.push("after an upstream commit".to_string());
            }
            views.push(TransformView {
                domain: record.domain.clone(),
                product: record.product.clone(),
                dataset: format!("{}.{}.{}", record.domain, record.product, record.dataset),
                description: spec.description.clone(),
                materialization: spec.materialization.to_string(),
                inputs: spec.inputs.iter().map(|i| i.to_string()).collect(),
                triggers,
                file: record.file_name.clone(),
                sql: record.source.clone(),
                last_run,
            });
        }
        Ok(views)
    }

    async fn run_transforms(
        &self,
        cx: &RequestContext,
        scope: RunScope<'_>,
        full_refresh: bool,
    ) -> Result<Vec<TransformRunView>> {
        let InOrder {
            transforms: in_order,
            graph,
        } = self.transforms_in_order().await?;
        // A product's transforms (or one of them), or none named: the mesh's.
        let named = match scope {
            RunScope::Behind => None,
            RunScope::Product { domain, product } => Some((domain, product, None)),
            RunScope::Dataset {
                domain,
                product,
                dataset,
            } => Some((domain, product, Some(dataset))),
        };
        let (chosen, pick) = match named {
            Some((domain, product, dataset)) => {
                if !self.discovers_product(cx, domain, product).await? {
                    return Err(ServiceError::NotFound(format!(
                        "no product {domain}.{product}"
                    )));
                }
                let chosen: Vec<_> = in_order
                    .into_iter()
                    .filter(|(_, r)| {
                        r.domain == domain
                            && r.product == product
                            && dataset.is_none_or(|d| r.dataset == d)
                    })
                    .collect();
                if chosen.is_empty() {
                    return Err(ServiceError::NotFound(match dataset {
                        Some(d) => format!("{domain}.{product}.{d} is not computed by a transform"),
                        None => format!("{domain}.{product} has no transforms"),
                    }));
                }
                (chosen, Pick::All { full_refresh })
            }
            None if full_refresh => (in_order, Pick::All { full_refresh }),
            None => (in_order, Pick::Behind),
        };
        // Whoever starts a run must be allowed to write the datasets it computes: across the
        // mesh, every one that could be behind.
        for (target, _) in &chosen {
            self.authorize(cx, Action::Ingest, &dataset_resource(target))
                .await?;
        }
        let chosen = InOrder {
            transforms: chosen,
            graph,
        };
        let runs = self.run_in_order(cx, chosen, MANUAL, pick).await?;
        Ok(runs.into_iter().map(run_view).collect())
    }

    async fn transform_runs(
        &self,
        cx: &RequestContext,
        of: RunsOf<'_>,
        limit: i64,
    ) -> Result<Vec<TransformRunView>> {
        let access = self.access_for(cx).await?;
        Ok(self
            .catalog
            .transform_runs(of, limit.clamp(1, 1000))
            .await?
            .into_iter()
            .filter(|r| {
                access.allowed(
                    &cx.principal,
                    Action::Discover,
                    &product_resource(&r.domain, &r.product),
                )
            })
            .map(run_view)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_chain_of_expected_time_starts_with_its_first_transform() {
        // a → b → c (30, 40, 40 ms), d alone (159 ms), e alone (65 ms), f reads a and d (5 ms).
        let waits_for = vec![vec![], vec![0], vec![0, 1], vec![], vec![], vec![0, 3]];
        let chains = critical_paths(&waits_for, &[30, 40, 40, 159, 65, 5]);
        assert_eq!(chains, vec![110, 80, 40, 164, 65, 5]);
    }

    #[test]
    fn a_run_failing_for_a_passing_reason_waits_longer_each_time_up_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|n| retry_wait(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
