//! Sources in the server: checked when their product is applied, run in the background as the
//! product's owner team, and shown with where they stand.
//!
//! A source's pull (see `tessera-sources`) is committed like any batch — its rows cast and
//! checked against the contract, rows that break it quarantined with the reason, the commit
//! gated by the blocking dataset-level checks — and with what makes it exactly once: a file's
//! content hash as its batch id, or the connector's positions as Delta application
//! transactions in the same commit as the rows (the quarantine commit first, with the same
//! positions, so a crash between the two is repaired by the next pull without doubling the
//! quarantined rows). A PostgreSQL pull is merged by its key, so a row read again replaces
//! itself.
//!
//! A failing source backs off (2 s, 4 s, … at most 5 minutes between tries) and says why in its
//! state; it never stops the server or another source.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use tessera_catalog::{DatasetRecord, SourceRecord, SourceStateRecord};
use tessera_core::{
    DatasetRef, DatasetSchema, FrontEnd, Product, RequestContext, SecretRef, SourceSpec,
    SourceTrigger,
};
use tessera_governance::Action;
use tessera_ingest::Format;
use tessera_quality::RowValidator;
use tessera_sources::{Committed, OpenContext, Pull, PulledRows, SourceReader};
use tessera_spec::{Diagnostic, Loaded, SpecDocument};

use crate::error::{Result, ServiceError};
use crate::gate::{Commit, GateMode};
use crate::governance::{dataset_resource, product_resource};
use crate::mesh::{BatchData, Mesh};
use crate::openlineage::{CommitRun, EventDataset, EventJob, RunEnd};
use crate::service::SourcesService;
use crate::views::{
    Action as PlanAction, PlannedChange, ResourceKind, SecretRequest, SecretView, SourceFile,
    SourceView,
};

/// Pulls one cycle makes at most before the source waits for its next turn.
const PULLS_PER_CYCLE: usize = 100;
/// Rows one pull commits at most.
const PULL_MAX_ROWS: usize = 100_000;
/// The longest a failing source waits between tries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A continuous source that found nothing waits this long before it looks again.
const IDLE_PAUSE: Duration = Duration::from_secs(1);

/// The sources' readers and when each last ran, in this instance.
#[derive(Default)]
pub(crate) struct SourceRunners {
    readers: Mutex<HashMap<String, ReaderSlot>>,
    turns: Mutex<HashMap<String, Turn>>,
}

/// A source's reader slot: held for the whole of a turn, so a source runs one turn at a time.
type ReaderSlot = Arc<tokio::sync::Mutex<Option<OpenReader>>>;

impl SourceRunners {
    /// The reader slot of the source `id` (made empty the first time).
    fn slot(&self, id: &str) -> ReaderSlot {
        self.readers
            .lock()
            .expect("source readers")
            .entry(id.to_string())
            .or_default()
            .clone()
    }
}

/// A reader with what it was opened from: a changed file or secret opens a new one.
struct OpenReader {
    text: String,
    secret_updated: Option<String>,
    reader: Box<dyn SourceReader>,
    /// What it reads, as OpenLineage names it.
    origin: Option<(String, String)>,
}

/// When a source last ran and how it went, for deciding when it runs next.
#[derive(Clone, Copy)]
struct Turn {
    ended: Instant,
    at: chrono::DateTime<chrono::Utc>,
    found_rows: bool,
    failures: u32,
}

fn key(domain: &str, product: &str, name: &str) -> String {
    format!("{domain}.{product}.{name}")
}

/// Parses a stored source file.
fn parse(record: &SourceRecord) -> Result<SourceSpec> {
    match tessera_spec::load_with(
        &record.file_name,
        &record.source,
        &tessera_spec::FileLimits::NONE,
    )? {
        Loaded::Source(s) => Ok(s),
        _ => Err(ServiceError::Internal(format!(
            "source {}.{}.{} is stored but is not a source file",
            record.domain, record.product, record.name
        ))),
    }
}

/// What a dataset holds of a source: positions read from the table itself; batches from the
/// table, or from the metadata store's record of them (a batch whose every row went to the
/// quarantine leaves nothing in the table, and the record is written after both commits).
struct TableCommitted {
    storage: Arc<tessera_storage::Storage>,
    catalog: tessera_catalog::Catalog,
    dataset: DatasetRecord,
}

#[async_trait]
impl Committed for TableCommitted {
    async fn position(&self, app_id: &str) -> tessera_sources::Result<Option<i64>> {
        self.storage
            .sequences(&self.dataset.location, &[app_id])
            .await
            .map(|v| v[0])
            .map_err(|e| tessera_sources::SourceError::Read(e.to_string()))
    }

    async fn has_batch(&self, batch_id: &str) -> tessera_sources::Result<bool> {
        let read_failed = |e: String| tessera_sources::SourceError::Read(e);
        let d = &self.dataset;
        Ok(self
            .catalog
            .batch(&d.domain, &d.product, &d.name, batch_id)
            .await
            .map_err(|e| read_failed(e.to_string()))?
            .is_some()
            || self
                .storage
                .committed(&d.location, batch_id)
                .await
                .map_err(|e| read_failed(e.to_string()))?)
    }
}

impl From<tessera_sources::SourceError> for ServiceError {
    fn from(e: tessera_sources::SourceError) -> Self {
        match e {
            tessera_sources::SourceError::Invalid(m) => ServiceError::BadRequest(m),
            other => ServiceError::Unavailable(other.to_string()),
        }
    }
}

impl Mesh {
    /// Checks a folder's sources against the product as it will be, and plans them; the records
    /// to store when anything changed.
    pub(crate) async fn plan_sources(
        &self,
        product: &Product,
        files: &[(&SourceFile, SourceSpec)],
        datasets: &[(String, Vec<String>)],
        changes: &mut Vec<PlannedChange>,
    ) -> Result<Option<Vec<SourceRecord>>> {
        let (domain, name) = (product.domain.as_str(), product.name.as_str());
        let mut problems: Vec<Diagnostic> = Vec::new();
        for (file, spec) in files {
            let doc = SpecDocument::parse(&file.name, &file.content)?;
            let Some((_, columns)) = datasets.iter().find(|(d, _)| *d == spec.dataset) else {
                problems.push(doc.diagnostic(
                    "/dataset",
                    format!(
                        "{domain}.{name} has no dataset {:?}; a source fills one of the product's own datasets ({})",
                        spec.dataset,
                        datasets.iter().map(|(d, _)| d.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                ));
                continue;
            };
            let Some(connector) = tessera_sources::connector(&spec.connector) else {
                problems.push(doc.diagnostic(
                    "/connector",
                    format!(
                        "this server has no {} connector (it has: {})",
                        spec.connector,
                        tessera_sources::connectors()
                            .iter()
                            .map(|c| c.kind())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                continue;
            };
            for p in connector.check(spec, columns) {
                problems.push(doc.diagnostic(&p.pointer, p.message));
            }
            match &spec.secret {
                None if connector.needs_secret() => problems.push(doc.diagnostic(
                    "",
                    format!(
                        "a {} source needs a secret (e.g. its connection URL): `secret: {{name: NAME}}`, set with `tessera secret set NAME --team {}`",
                        spec.connector,
                        product.owner.as_deref().unwrap_or("TEAM")
                    ),
                )),
                None => {}
                Some(SecretRef::Stored(secret)) => {
                    let owner = product.owner.as_deref();
                    match self.catalog.secrets().await?.into_iter().find(|s| &s.name == secret) {
                        None => problems.push(doc.diagnostic(
                            "/secret/name",
                            format!(
                                "there is no secret {secret:?}: set it first with `tessera secret set {secret} --team {}`",
                                owner.unwrap_or("TEAM")
                            ),
                        )),
                        Some(s) if Some(s.team.as_str()) != owner => problems.push(doc.diagnostic(
                            "/secret/name",
                            format!(
                                "secret {secret:?} belongs to team {}; a source of {domain}.{name} (owner team {}) may use only its own team's secrets",
                                s.team,
                                owner.unwrap_or("none")
                            ),
                        )),
                        Some(_) => {}
                    }
                }
                Some(SecretRef::Env(var)) if std::env::var(var).is_err() => {
                    problems.push(doc.diagnostic(
                        "/secret/env",
                        format!("the server has no environment variable {var}"),
                    ))
                }
                Some(SecretRef::Env(_)) => {}
            }
        }
        if !problems.is_empty() {
            return Err(ServiceError::InvalidFiles(problems));
        }

        let stored = self.catalog.sources(Some((domain, name))).await?;
        let mut changed = false;
        for (file, spec) in files {
            let action = match stored.iter().find(|s| s.name == spec.name) {
                None => PlanAction::Create,
                Some(s) if s.source == file.content && s.file_name == file.name => {
                    PlanAction::Unchanged
                }
                Some(_) => PlanAction::Change,
            };
            changed |= action != PlanAction::Unchanged;
            changes.push(PlannedChange {
                kind: ResourceKind::Source,
                name: spec.name.clone(),
                action,
                detail: (action != PlanAction::Unchanged).then(|| {
                    format!(
                        "{} into {domain}.{name}.{}, {}",
                        spec.connector, spec.dataset, spec.trigger
                    )
                }),
            });
        }
        for s in &stored {
            if !files.iter().any(|(_, f)| f.name == s.name) {
                changed = true;
                changes.push(PlannedChange {
                    kind: ResourceKind::Source,
                    name: s.name.clone(),
                    action: PlanAction::Remove,
                    detail: Some(format!(
                        "{} is no longer in the folder: the source stops; what it committed stays",
                        s.file_name
                    )),
                });
            }
        }
        Ok(changed.then(|| {
            files
                .iter()
                .map(|(file, spec)| SourceRecord {
                    domain: domain.to_string(),
                    product: name.to_string(),
                    name: spec.name.clone(),
                    dataset: spec.dataset.clone(),
                    connector: spec.connector.clone(),
                    file_name: file.name.clone(),
                    source: file.content.clone(),
                    updated_at: String::new(),
                })
                .collect()
        }))
    }

    /// The credential a source names, opened, and when it was last set (so a reader opened
    /// with an older value is opened again). A stored secret must belong to the product's
    /// owner team.
    async fn source_secret(
        &self,
        spec: &SourceSpec,
        owner: Option<&str>,
    ) -> Result<(Option<String>, Option<String>)> {
        match &spec.secret {
            None => Ok((None, None)),
            Some(SecretRef::Env(var)) => match std::env::var(var) {
                Ok(value) => Ok((Some(value), None)),
                Err(_) => Err(ServiceError::BadRequest(format!(
                    "the server has no environment variable {var}"
                ))),
            },
            Some(SecretRef::Stored(name)) => match self.catalog.secret_value(name).await? {
                Some((record, value)) if Some(record.team.as_str()) == owner => {
                    Ok((Some(value), Some(record.updated_at)))
                }
                Some((record, _)) => Err(ServiceError::Forbidden(format!(
                    "secret {name} belongs to team {}, not to the product's owner team",
                    record.team
                ))),
                None => Err(ServiceError::BadRequest(format!(
                    "there is no secret {name} (set it with `tessera secret set {name}`)"
                ))),
            },
        }
    }

    /// One turn of a source: pulls and commits until nothing new waits (or a cycle's pulls
    /// are made), then stores where it stands. A pull that fails is stored as the source's
    /// error (what was committed before it stays committed).
    pub(crate) async fn pull_cycle(&self, record: &SourceRecord) -> SourceStateRecord {
        let id = key(&record.domain, &record.product, &record.name);
        // One turn at a time per source, from reading where it stood to storing where it
        // stands: a turn that waited for another starts from what that one stored.
        let slot = self.sources.slot(&id);
        let mut open = slot.lock().await;
        let started = chrono::Utc::now();
        let previous = match self
            .catalog
            .source_state(&record.domain, &record.product, &record.name)
            .await
        {
            Ok(state) => state.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(source = %id, error = %e, "a source's last state could not be read; its counters start again");
                SourceStateRecord::default()
            }
        };
        let outcome = self.pull_until_caught_up(record, &mut open).await;
        let mut state = SourceStateRecord {
            domain: record.domain.clone(),
            product: record.product.clone(),
            name: record.name.clone(),
            last_pull_at: Some(tessera_catalog::store_time(started)),
            total_rows: previous.total_rows,
            total_quarantined: previous.total_quarantined,
            position: previous.position.clone(),
            lag_seconds: previous.lag_seconds,
            last_success_at: previous.last_success_at.clone(),
            ..Default::default()
        };
        let found_rows = match &outcome {
            Ok(done) => {
                state.state = "idle".into();
                state.last_rows = done.rows.read;
                state.total_rows += done.rows.read;
                state.last_quarantined = done.rows.quarantined;
                state.total_quarantined += done.rows.quarantined;
                if done.position.is_some() {
                    state.position = done.position.clone();
                }
                if done.lag_seconds.is_some() || done.pulls > 0 {
                    state.lag_seconds = done.lag_seconds;
                }
                state.last_success_at = Some(tessera_catalog::store_time(chrono::Utc::now()));
                done.pulls > 0
            }
            Err(e) => {
                state.state = "failing".into();
                state.failures = previous.failures + 1;
                state.last_error = Some(e.to_string());
                tracing::warn!(source = %id, error = %e, failures = state.failures, "a source's pull failed");
                false
            }
        };
        if let Err(e) = self.catalog.put_source_state(&state).await {
            tracing::warn!(source = %id, error = %e, "a source's state was not stored");
        }
        self.sources.turns.lock().expect("source turns").insert(
            id,
            Turn {
                ended: Instant::now(),
                at: chrono::Utc::now(),
                found_rows,
                failures: state.failures as u32,
            },
        );
        state
    }

    async fn pull_until_caught_up(
        &self,
        record: &SourceRecord,
        open: &mut Option<OpenReader>,
    ) -> Result<CycleDone> {
        let spec = parse(record)?;
        let reference: DatasetRef =
            format!("{}.{}.{}", record.domain, record.product, spec.dataset)
                .parse()
                .map_err(|e| ServiceError::Internal(format!("source {}: {e}", record.name)))?;
        let dataset = self.dataset_record(&reference).await?;
        let schema = self.dataset_schema(&dataset).await?;
        let system = RequestContext::system(
            "sources",
            uuid::Uuid::new_v4().to_string(),
            FrontEnd::Scheduler,
        );
        let owner_team = self
            .catalog
            .product(&record.domain, &record.product)
            .await?
            .and_then(|p| p.owner);
        let owner = system.acting_as(crate::mesh::owner_principal(owner_team.clone()));
        let mut run = CommitRun {
            job: EventJob::source(&record.domain, &record.product, &record.name),
            inputs: open
                .as_ref()
                .and_then(|o| o.origin.clone())
                .into_iter()
                .collect(),
            started: chrono::Utc::now(),
        };
        let (secret, secret_updated) = match self.source_secret(&spec, owner_team.as_deref()).await
        {
            Ok(secret) => secret,
            Err(e) => return Err(self.source_failed(&run, &reference, e).await),
        };

        let stale = open
            .as_ref()
            .is_none_or(|o| o.text != record.source || o.secret_updated != secret_updated);
        if stale {
            let connector = tessera_sources::connector(&spec.connector).ok_or_else(|| {
                ServiceError::BadRequest(format!("this server has no {} connector", spec.connector))
            })?;
            let context = OpenContext {
                data_dir: self.data_dir.clone(),
                columns: schema.columns.iter().map(|c| c.name.to_string()).collect(),
            };
            let origin = connector.origin(&spec, secret.as_deref(), &context);
            run.inputs = origin.clone().into_iter().collect();
            let reader = match connector.open(&spec, secret, &context).await {
                Ok(reader) => reader,
                Err(e) => return Err(self.source_failed(&run, &reference, e.into()).await),
            };
            *open = Some(OpenReader {
                text: record.source.clone(),
                secret_updated,
                reader,
                origin,
            });
        }
        let reader = &mut open.as_mut().expect("a reader, opened above").reader;
        let committed = TableCommitted {
            storage: self.storage.clone(),
            catalog: self.catalog.clone(),
            dataset: dataset.clone(),
        };
        let mut done = CycleDone::default();
        for _ in 0..PULLS_PER_CYCLE {
            run.started = chrono::Utc::now();
            let pull = match reader.pull(&committed, PULL_MAX_ROWS).await {
                Ok(Some(pull)) => pull,
                Ok(None) => break,
                Err(e) => return Err(self.source_failed(&run, &reference, e.into()).await),
            };
            let more = pull.more;
            done.position = Some(pull.describe.clone());
            done.lag_seconds = pull.lag_seconds;
            // A commit that fails emits its run's FAIL itself.
            done.rows += self
                .commit_pull(&owner, &reference, &dataset, &schema, &spec, pull, &run)
                .await?;
            done.pulls += 1;
            if !more {
                break;
            }
        }
        Ok(done)
    }

    /// A source's run that failed before it committed: its START and FAIL; `error`, back.
    async fn source_failed(
        &self,
        run: &CommitRun,
        reference: &DatasetRef,
        error: ServiceError,
    ) -> ServiceError {
        let message = error.to_string();
        let end = RunEnd {
            error: Some(&message),
            ..Default::default()
        };
        self.emit_run(run, &EventDataset::mesh(reference.to_string(), None), &end)
            .await;
        error
    }

    /// Commits one pull as the product's owner team, as a run of `run`'s job; the rows it
    /// read and how many of them went to the quarantine.
    #[allow(clippy::too_many_arguments)]
    async fn commit_pull(
        &self,
        owner: &RequestContext,
        reference: &DatasetRef,
        record: &DatasetRecord,
        schema: &DatasetSchema,
        spec: &SourceSpec,
        pull: Pull,
        run: &CommitRun,
    ) -> Result<PulledRowCounts> {
        match (pull.rows, pull.batch_id) {
            (
                PulledRows::File {
                    bytes,
                    format,
                    name,
                },
                Some(batch_id),
            ) => {
                let format = format.as_deref().and_then(|f| f.parse::<Format>().ok());
                let report = self
                    .ingest_as(
                        owner,
                        reference,
                        BatchData::File {
                            bytes,
                            format,
                            file_name: Some(name),
                        },
                        Some(batch_id),
                        run.job.clone(),
                        run.inputs.clone(),
                    )
                    .await?;
                // A file committed before (seen again after a crash) adds nothing.
                Ok(match report.duplicate {
                    true => PulledRowCounts::default(),
                    false => PulledRowCounts {
                        read: report.accepted + report.quarantined,
                        quarantined: report.quarantined,
                    },
                })
            }
            (PulledRows::Ndjson(bytes), _) => {
                let committed = self
                    .commit_positioned(
                        owner,
                        record,
                        schema,
                        &spec.name,
                        Positioned {
                            rows: bytes,
                            unreadable: pull.unreadable,
                            positions: pull.positions,
                            merge_on: pull.merge_on,
                        },
                        run,
                    )
                    .await;
                if let Err(e) = &committed {
                    self.emit_commit_run(run, record, None, &[], Some(&e.to_string()))
                        .await;
                }
                committed
            }
            (PulledRows::File { .. }, None) => Err(ServiceError::Internal(format!(
                "source {}: a file pulled without its batch id",
                spec.name
            ))),
        }
    }

    /// Commits NDJSON rows with the positions they were read up to: validated and cast, gated,
    /// quarantine first, then the dataset (merged by `merge_on`, or appended), each commit
    /// recording `positions` as Delta application transactions. No rows: the positions alone.
    async fn commit_positioned(
        &self,
        owner: &RequestContext,
        record: &DatasetRecord,
        schema: &DatasetSchema,
        source: &str,
        pulled: Positioned,
        run: &CommitRun,
    ) -> Result<PulledRowCounts> {
        let Positioned {
            rows,
            unreadable,
            positions,
            merge_on,
        } = pulled;
        let merge_on = merge_on.as_deref();
        self.authorize(
            owner,
            Action::Ingest,
            &tessera_governance::Resource::Dataset {
                domain: record.domain.clone(),
                product: record.product.clone(),
                dataset: record.name.clone(),
            },
        )
        .await?;
        let positions: Vec<(&str, i64)> =
            positions.iter().map(|(id, v)| (id.as_str(), *v)).collect();
        let lock = self.ingest_lock(&record.location);
        let _one_at_a_time = lock.lock().await;
        if rows.iter().all(u8::is_ascii_whitespace) && unreadable.is_empty() {
            let empty = RecordBatch::new_empty(
                schema
                    .arrow_schema()
                    .map_err(|e| ServiceError::Internal(e.to_string()))?,
            );
            self.storage
                .append_sequenced(&record.location, vec![empty], &positions)
                .await?;
            return Ok(PulledRowCounts::default());
        }
        let now = chrono::Utc::now();
        let batch_id = format!(
            "source-{source}-{}",
            positions
                .iter()
                .map(|(_, v)| v.to_string())
                .collect::<Vec<_>>()
                .join("-")
        );
        let (mut prepared, hits) = {
            let (schema, batch_id) = (schema.clone(), batch_id.clone());
            let keys = merge_on.map(<[String]>::to_vec);
            tokio::task::spawn_blocking(move || -> Result<_> {
                let validator = RowValidator::new(&schema)
                    .map_err(|e| ServiceError::Internal(format!("contract rules: {e}")))?;
                let mut prepared = if rows.iter().all(u8::is_ascii_whitespace) {
                    // Only records that are no rows: nothing to validate.
                    tessera_ingest::Prepared::empty(&schema, &batch_id, now.timestamp_micros())?
                } else {
                    tessera_ingest::prepare(
                        &schema,
                        &validator,
                        Format::Ndjson,
                        rows,
                        &batch_id,
                        now.timestamp_micros(),
                    )?
                };
                if !unreadable.is_empty() {
                    let lost = tessera_ingest::unreadable_rows(
                        &schema,
                        &unreadable,
                        &batch_id,
                        now.timestamp_micros(),
                    )?;
                    prepared.quarantine = arrow::compute::concat_batches(
                        &prepared.quarantine.schema(),
                        [&prepared.quarantine, &lost],
                    )
                    .map_err(|e| ServiceError::Internal(format!("unreadable records: {e}")))?;
                }
                if let Some(keys) = &keys {
                    prepared.valid = last_per_key(&prepared.valid, keys)?;
                }
                let hits = crate::mesh::personal_data_hits(&schema, &prepared.valid);
                Ok((prepared, hits))
            })
            .await
            .map_err(|e| ServiceError::Internal(format!("preparing a pull panicked: {e}")))??
        };
        let mode = merge_on.map_or(GateMode::Append, GateMode::Merge);
        let gate = self.gate(owner, record, &prepared.valid, mode).await?;
        let refusal = gate.as_ref().and_then(|g| g.refused_by.clone());
        if let Some((rule, column, reason)) = &refusal {
            prepared
                .refuse_all(schema, rule, column, reason)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            tracing::warn!(dataset = %record.name, %batch_id, %reason, "the commit gate refused a source's pull: its rows are in the quarantine table");
        }
        let reference: DatasetRef = format!("{}.{}.{}", record.domain, record.product, record.name)
            .parse()
            .map_err(|e| ServiceError::Internal(format!("{e}")))?;
        let quarantine_location = reference.quarantine().relative_path();
        // Quarantine first, unless a crash after its commit left it holding this pull already.
        let ids: Vec<&str> = positions.iter().map(|(id, _)| *id).collect();
        let in_quarantine = self.storage.sequences(&quarantine_location, &ids).await?;
        let already = positions
            .iter()
            .zip(&in_quarantine)
            .all(|((_, v), q)| q.is_some_and(|q| q >= *v));
        if prepared.quarantined() > 0 && !already {
            self.storage
                .append_sequenced(
                    &quarantine_location,
                    vec![prepared.quarantine.clone()],
                    &positions,
                )
                .await?;
        }
        let accepted = prepared.valid.num_rows();
        let outcome = match merge_on {
            Some(keys) => {
                let ctx = self.session(owner).await?;
                let frame = ctx.read_batch(prepared.valid.clone()).map_err(|e| {
                    ServiceError::Internal(format!("the pull's rows as a table: {e}"))
                })?;
                self.storage
                    .merge_sequenced(&record.location, frame, accepted, keys, &positions)
                    .await?
            }
            None => {
                self.storage
                    .append_sequenced(&record.location, vec![prepared.valid.clone()], &positions)
                    .await?
            }
        };
        let batch = tessera_catalog::BatchRecord {
            domain: record.domain.clone(),
            product: record.product.clone(),
            dataset: record.name.clone(),
            batch_id,
            accepted: accepted as i64,
            quarantined: prepared.quarantined() as i64,
            table_version: outcome.version,
            committed_at: tessera_catalog::store_time(now),
        };
        self.record_commit(
            owner,
            Commit {
                record,
                gate,
                refused: refusal.is_some(),
                committed: outcome.version,
                table_version: outcome.version,
                batch,
                hits,
                run: Some(run.clone()),
            },
        )
        .await?;
        Ok(PulledRowCounts {
            read: (accepted + prepared.quarantined()) as i64,
            quarantined: prepared.quarantined() as i64,
        })
    }

    /// The sources' view: a record with where it stands.
    fn source_view(&self, record: &SourceRecord, state: Option<&SourceStateRecord>) -> SourceView {
        let spec = parse(record).ok();
        SourceView {
            domain: record.domain.clone(),
            product: record.product.clone(),
            name: record.name.clone(),
            dataset: format!("{}.{}.{}", record.domain, record.product, record.dataset),
            connector: record.connector.clone(),
            trigger: spec
                .as_ref()
                .map(|s| s.trigger.to_string())
                .unwrap_or_default(),
            description: spec.as_ref().and_then(|s| s.description.clone()),
            options: spec.as_ref().map(|s| s.options.clone()).unwrap_or_default(),
            secret: spec
                .as_ref()
                .and_then(|s| s.secret.as_ref().map(|s| s.to_string())),
            file: record.file_name.clone(),
            state: state.map_or("idle".into(), |s| s.state.clone()),
            position: state.and_then(|s| s.position.clone()),
            last_pull_at: state.and_then(|s| s.last_pull_at.clone()),
            last_success_at: state.and_then(|s| s.last_success_at.clone()),
            last_rows: state.map_or(0, |s| s.last_rows),
            total_rows: state.map_or(0, |s| s.total_rows),
            last_quarantined: state.map_or(0, |s| s.last_quarantined),
            total_quarantined: state.map_or(0, |s| s.total_quarantined),
            lag_seconds: state.and_then(|s| s.lag_seconds),
            failures: state.map_or(0, |s| s.failures),
            last_error: state.and_then(|s| s.last_error.clone()),
        }
    }

    /// The stored source `domain.product.name`, if the caller may discover its dataset.
    async fn visible_source(
        &self,
        cx: &RequestContext,
        domain: &str,
        product: &str,
        name: &str,
    ) -> Result<SourceRecord> {
        let missing = || format!("no source {domain}.{product}.{name}");
        self.discoverable(cx, &product_resource(domain, product), missing)
            .await?;
        self.catalog
            .sources(Some((domain, product)))
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| ServiceError::NotFound(missing()))
    }

    /// Whether the principal may set or see a team's secrets: a member, or an admin.
    async fn keeps_secrets_of(&self, cx: &RequestContext, team: &str) -> Result<bool> {
        Ok(cx.principal.teams.iter().any(|t| t == team) || self.administers(cx).await?)
    }
}

/// Rows a source read, and how many of them went to the quarantine.
#[derive(Debug, Default, Clone, Copy)]
struct PulledRowCounts {
    read: i64,
    quarantined: i64,
}

impl std::ops::AddAssign for PulledRowCounts {
    fn add_assign(&mut self, other: Self) {
        self.read += other.read;
        self.quarantined += other.quarantined;
    }
}

/// A pull's rows with what their commit records.
struct Positioned {
    rows: Bytes,
    unreadable: Vec<(usize, String)>,
    positions: Vec<(String, i64)>,
    merge_on: Option<Vec<String>>,
}

/// What one turn of a source did.
#[derive(Default)]
struct CycleDone {
    pulls: usize,
    rows: PulledRowCounts,
    position: Option<String>,
    lag_seconds: Option<f64>,
}

/// `batch` with one row per key (over `keys`): the last of each, as a pull reads a key's newer
/// versions after its older ones.
fn last_per_key(batch: &RecordBatch, keys: &[String]) -> Result<RecordBatch> {
    use arrow::row::{RowConverter, SortField};
    let internal =
        |e: arrow::error::ArrowError| ServiceError::Internal(format!("keys of a pull: {e}"));
    let columns: Vec<arrow::array::ArrayRef> =
        keys.iter()
            .map(|k| {
                batch.column_by_name(k).cloned().ok_or_else(|| {
                    ServiceError::Internal(format!("a pull without its key column {k}"))
                })
            })
            .collect::<Result<_>>()?;
    let converter = RowConverter::new(
        columns
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )
    .map_err(internal)?;
    let rows = converter.convert_columns(&columns).map_err(internal)?;
    let mut seen = std::collections::HashSet::new();
    let mut keep = vec![false; batch.num_rows()];
    for i in (0..batch.num_rows()).rev() {
        if seen.insert(rows.row(i)) {
            keep[i] = true;
        }
    }
    if keep.iter().all(|k| *k) {
        return Ok(batch.clone());
    }
    arrow::compute::filter_record_batch(batch, &arrow::array::BooleanArray::from(keep))
        .map_err(internal)
}

/// Runs every source when its trigger says, until the task is aborted. Each source runs in a
/// task of its own, one turn at a time.
pub(crate) async fn run(mesh: Arc<Mesh>, tick: Duration) {
    let mut running = tokio::task::JoinSet::new();
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        while running.try_join_next().is_some() {}
        let records = match mesh.catalog.sources(None).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "listing the sources");
                continue;
            }
        };
        for record in records {
            let id = key(&record.domain, &record.product, &record.name);
            let turn = mesh
                .sources
                .turns
                .lock()
                .expect("source turns")
                .get(&id)
                .copied();
            let Ok(spec) = parse(&record) else { continue };
            if !due(&spec.trigger, turn, &record.updated_at) {
                continue;
            }
            // A source still pulling keeps its turn.
            if mesh.sources.slot(&id).try_lock().is_err() {
                continue;
            }
            let mesh = mesh.clone();
            running.spawn(async move {
                mesh.pull_cycle(&record).await;
            });
        }
    }
}

/// Whether a source is due: its trigger, after its last turn (a failing one backs off).
fn due(trigger: &SourceTrigger, turn: Option<Turn>, applied_at: &str) -> bool {
    if let Some(turn) = turn
        && turn.failures > 0
    {
        let backoff = Duration::from_secs(1u64 << turn.failures.min(9)).min(MAX_BACKOFF);
        if turn.ended.elapsed() < backoff {
            return false;
        }
    }
    match (trigger, turn) {
        (_, None) if !matches!(trigger, SourceTrigger::Schedule(_)) => true,
        (SourceTrigger::Every(every), Some(turn)) => turn.ended.elapsed() >= *every,
        (SourceTrigger::Continuous, Some(turn)) => {
            turn.found_rows || turn.ended.elapsed() >= IDLE_PAUSE
        }
        (SourceTrigger::Schedule(cron), turn) => {
            let Ok(schedule) = tessera_spec::parse_schedule(cron) else {
                return false;
            };
            let since = match turn {
                Some(t) => t.at,
                None => chrono::DateTime::parse_from_rfc3339(applied_at)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .unwrap_or_else(|_| chrono::Utc::now()),
            };
            schedule
                .after(&since)
                .next()
                .is_some_and(|fire| fire <= chrono::Utc::now())
        }
        _ => true,
    }
}

#[async_trait]
impl SourcesService for Mesh {
    async fn sources(
        &self,
        cx: &RequestContext,
        product: Option<(&str, &str)>,
    ) -> Result<Vec<SourceView>> {
        let access = self.access_for(cx).await?;
        let states = self.catalog.source_states().await?;
        Ok(self
            .catalog
            .sources(product)
            .await?
            .iter()
            .filter(|s| {
                access.allowed(
                    &cx.principal,
                    Action::Discover,
                    &product_resource(&s.domain, &s.product),
                )
            })
            .map(|s| {
                let state = states
                    .iter()
                    .find(|t| (&t.domain, &t.product, &t.name) == (&s.domain, &s.product, &s.name));
                self.source_view(s, state)
            })
            .collect())
    }

    async fn source(
        &self,
        cx: &RequestContext,
        domain: &str,
        product: &str,
        name: &str,
    ) -> Result<SourceView> {
        let record = self.visible_source(cx, domain, product, name).await?;
        let state = self.catalog.source_state(domain, product, name).await?;
        Ok(self.source_view(&record, state.as_ref()))
    }

    async fn run_source(
        &self,
        cx: &RequestContext,
        domain: &str,
        product: &str,
        name: &str,
    ) -> Result<SourceView> {
        let record = self.visible_source(cx, domain, product, name).await?;
        let reference: DatasetRef = format!("{domain}.{product}.{}", record.dataset)
            .parse()
            .map_err(|e| ServiceError::Internal(format!("{e}")))?;
        self.authorize(cx, Action::Ingest, &dataset_resource(&reference))
            .await?;
        let state = self.pull_cycle(&record).await;
        Ok(self.source_view(&record, Some(&state)))
    }

    async fn secrets(&self, cx: &RequestContext) -> Result<Vec<SecretView>> {
        let admin = self.administers(cx).await?;
        Ok(self
            .catalog
            .secrets()
            .await?
            .into_iter()
            .filter(|s| admin || cx.principal.teams.contains(&s.team))
            .map(secret_view)
            .collect())
    }

    async fn put_secret(
        &self,
        cx: &RequestContext,
        name: &str,
        request: &SecretRequest,
    ) -> Result<SecretView> {
        let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name.len() <= 100
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
        if !valid_name {
            return Err(ServiceError::BadRequest(format!(
                "{name:?} is not a secret name: lower-case letters, digits, '_', '.' and '-', starting with a letter"
            )));
        }
        if request.value.is_empty() || request.value.len() > 64 * 1024 {
            return Err(ServiceError::BadRequest(
                "a secret's value is between 1 byte and 64 KiB".into(),
            ));
        }
        if request.team.trim().is_empty() {
            return Err(ServiceError::BadRequest(
                "a secret belongs to a team: give `team`".into(),
            ));
        }
        if !self.keeps_secrets_of(cx, &request.team).await? {
            return Err(ServiceError::Forbidden(format!(
                "{} may not set secrets of team {}: only its members (and admins) may",
                cx.principal, request.team
            )));
        }
        if let Some(existing) = self
            .catalog
            .secrets()
            .await?
            .into_iter()
            .find(|s| s.name == name)
            && !self.keeps_secrets_of(cx, &existing.team).await?
        {
            return Err(ServiceError::Forbidden(format!(
                "{} may not replace secret {name}, which belongs to team {}",
                cx.principal, existing.team
            )));
        }
        self.catalog
            .put_secret(
                name,
                &request.team,
                &request.value,
                &cx.principal.to_string(),
            )
            .await?;
        self.catalog
            .secrets()
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .map(secret_view)
            .ok_or_else(|| {
                ServiceError::Internal(format!("secret {name} was set but is not there"))
            })
    }

    async fn delete_secret(&self, cx: &RequestContext, name: &str) -> Result<SecretView> {
        let missing = || ServiceError::NotFound(format!("no secret {name}"));
        let existing = self
            .catalog
            .secrets()
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(missing)?;
        if !self.keeps_secrets_of(cx, &existing.team).await? {
            return Err(missing());
        }
        if let Some(user) = self.catalog.sources(None).await?.iter().find(|s| {
            parse(s).ok().and_then(|s| s.secret) == Some(SecretRef::Stored(name.to_string()))
        }) {
            return Err(ServiceError::Conflict(format!(
                "secret {name} is used by source {}.{}.{} ({}); remove the source first",
                user.domain, user.product, user.name, user.file_name
            )));
        }
        if !self
            .catalog
            .delete_secret(name, &cx.principal.to_string())
            .await?
        {
            return Err(missing());
        }
        Ok(secret_view(existing))
    }
}

fn secret_view(s: tessera_catalog::SecretRecord) -> SecretView {
    SecretView {
        name: s.name,
        team: s.team,
        created_by: s.created_by,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}
