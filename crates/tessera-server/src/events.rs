//! Streaming event ingest. A request's events (NDJSON or a JSON array, gzip allowed) are
//! validated against the dataset's contract at the edge — the same casts and row rules as a
//! batch — and appended to the event log (`tessera-pipeline`), which acknowledges them once
//! fsynced (group commit). The committer turns each dataset's log into Delta commits every
//! `commit_interval` (or sooner past `commit_max_rows`), each gated by the contract's blocking
//! dataset-level checks like a batch: a refused run's rows go to the quarantine table with
//! the reason, never dropped.
//!
//! Exactly once: a run's commit records its last log sequence number as the Delta application
//! transaction [`EVENTS_APP_ID`] — the quarantine commit first, then the dataset's (with
//! [`REFUSED_APP_ID`] on the quarantine when the gate refused the run). After a crash the log
//! is read back and the committer skips what those positions say is already in the tables.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use tessera_core::{DatasetRef, FrontEnd, RequestContext};
use tessera_governance::Action;
use tessera_ingest::Format;
use tessera_pipeline::{
    EventBatch, EventGroup, EventLog, LogOptions, PipelineError, Reservation, Run,
};
use tessera_quality::RowValidator;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Result, ServiceError};
use crate::gate::GateMode;
use crate::governance::dataset_resource;
use crate::mesh::Mesh;
use crate::views::{EventRejection, EventsReceipt};

/// The application transaction that holds a table's position in the event log.
pub const EVENTS_APP_ID: &str = "tessera-events";
/// On a quarantine table: the last run whose valid rows the gate refused into it.
pub const REFUSED_APP_ID: &str = "tessera-events-refused";

/// How events are taken in and committed.
#[derive(Debug, Clone)]
pub struct EventConfig {
    /// A dataset's waiting events are committed at least this often.
    pub commit_interval: Duration,
    /// ... or as soon as this many rows wait, and at most about this many go in one commit.
    pub commit_max_rows: usize,
    /// Largest event request body, after gzip decompression too (`--event-max-body-bytes`).
    pub max_body_bytes: usize,
    /// Most events one request may hold (`--event-max-rows`): what validating one request
    /// holds in memory stays bounded however small its events are.
    pub max_events: usize,
    /// Acknowledged but uncommitted bytes past which requests get 429.
    pub max_backlog_bytes: u64,
    /// How long an `Idempotency-Key` answers a retry with the first answer.
    pub idempotency_window: Duration,
    pub segment_max_bytes: u64,
}

impl Default for EventConfig {
    fn default() -> Self {
        let log = LogOptions::new("");
        Self {
            commit_interval: Duration::from_millis(500),
            commit_max_rows: 300_000,
            max_body_bytes: 16 << 20,
            max_events: 100_000,
            max_backlog_bytes: log.max_backlog_bytes,
            idempotency_window: log.idempotency_window,
            segment_max_bytes: log.segment_max_bytes,
        }
    }
}

impl EventConfig {
    pub(crate) fn log_options(&self, dir: std::path::PathBuf) -> LogOptions {
        LogOptions {
            dir,
            segment_max_bytes: self.segment_max_bytes,
            max_backlog_bytes: self.max_backlog_bytes,
            idempotency_window: self.idempotency_window,
        }
    }
}

/// Bodies up to this size are validated on the thread that answers the request: handing them to
/// a blocking thread costs more than validating them.
const SMALL_REQUEST_BYTES: usize = 16 << 10;

/// What validating a dataset's events needs, made once per contract version: its schema, and
/// its row rules compiled.
pub(crate) struct EventTarget {
    schema: tessera_core::DatasetSchema,
    validator: RowValidator,
}

/// The event targets, as of a datasets generation (see `Mesh::event_target`).
pub(crate) type EventTargets = (String, HashMap<String, Arc<EventTarget>>);

/// An event request's body as it arrived.
#[derive(Debug, Clone)]
pub struct EventBody {
    pub bytes: Bytes,
    /// `Content-Encoding: gzip` (gzip's magic bytes are recognised too).
    pub gzip: bool,
}

impl From<PipelineError> for ServiceError {
    fn from(e: PipelineError) -> Self {
        log_failure(&e)
    }
}

/// What the caller is told when the event log fails it (one failure may answer many requests).
fn log_failure(e: &PipelineError) -> ServiceError {
    let message = e.to_string();
    match e {
        PipelineError::Backlogged { .. } => ServiceError::Backlogged(message),
        PipelineError::KeyInProgress { .. } => ServiceError::Conflict(message),
        PipelineError::Closed | PipelineError::Io { .. } | PipelineError::Corrupt { .. } => {
            ServiceError::Unavailable(message)
        }
        PipelineError::Internal(_) => ServiceError::Internal(message),
    }
}

/// A group closes once its requests' bodies hold this many bytes.
const GROUP_MAX_BYTES: usize = 1 << 20;

/// Small event requests without an idempotency key, validated a group at a time per dataset
/// (validating one event costs about what validating hundreds does, and a one-event request is
/// what a browser or a service sends): one task per dataset that has had such requests takes
/// every request waiting, validates them as one batch (`tessera_ingest::prepare_together`),
/// appends each request's part to the log (as its own entry, in one group commit) and answers
/// each with its own receipt.
#[derive(Default)]
pub(crate) struct EventGroups {
    queues: std::sync::Mutex<HashMap<String, mpsc::UnboundedSender<Waiting>>>,
}

/// One small request's events, as NDJSON, and what validating them needs.
struct EventRequest {
    target: Arc<EventTarget>,
    ndjson: Bytes,
    request_id: String,
    received: chrono::DateTime<chrono::Utc>,
}

/// A request waiting in its dataset's group, and where its answer goes.
struct Waiting {
    request: EventRequest,
    answer: oneshot::Sender<Result<EventsReceipt>>,
}

impl EventGroups {
    /// Validates and appends `request`'s events with the others waiting for `stream`.
    async fn submit(
        &self,
        log: &Arc<EventLog>,
        stream: &str,
        request: EventRequest,
    ) -> Result<EventsReceipt> {
        let (answer, answered) = oneshot::channel();
        let start = || {
            let (sender, waiting) = mpsc::unbounded_channel();
            tokio::spawn(validate_groups(log.clone(), stream.to_string(), waiting));
            sender
        };
        {
            let mut queues = self.queues.lock().expect("event groups");
            let queue = queues.entry(stream.to_string()).or_insert_with(start);
            if let Err(mpsc::error::SendError(waiting)) = queue.send(Waiting { request, answer }) {
                // The group's task ended (it panicked): begin another.
                *queue = start();
                let _ = queue.send(waiting);
            }
        }
        answered.await.map_err(|_| {
            ServiceError::Internal("the events' validation ended without an answer".into())
        })?
    }
}

/// One dataset's group task (see [`EventGroups`]).
async fn validate_groups(
    log: Arc<EventLog>,
    stream: String,
    mut waiting: mpsc::UnboundedReceiver<Waiting>,
) {
    let mut next: Option<Waiting> = None;
    loop {
        let first = match next.take() {
            Some(first) => first,
            None => match waiting.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        // Requests that are ready to be read join this group.
        tokio::task::yield_now().await;
        let mut bytes = first.request.ndjson.len();
        let mut group = vec![first];
        while bytes < GROUP_MAX_BYTES {
            match waiting.try_recv() {
                // A new contract version begins a new group.
                Ok(more) if Arc::ptr_eq(&more.request.target, &group[0].request.target) => {
                    bytes += more.request.ndjson.len();
                    group.push(more);
                }
                Ok(more) => {
                    next = Some(more);
                    break;
                }
                Err(_) => break,
            }
        }
        append_group(&log, &stream, group);
    }
}

/// Validates a group as one batch and appends each request's events, answering each once they
/// are durable; when one request of the group cannot be read, each is validated alone and
/// answered for itself.
fn append_group(log: &Arc<EventLog>, stream: &str, group: Vec<Waiting>) {
    let target = group[0].request.target.clone();
    let bodies: Vec<(Bytes, &str)> = group
        .iter()
        .map(|w| (w.request.ndjson.clone(), w.request.request_id.as_str()))
        .collect();
    let received = group[0].request.received.timestamp_micros();
    match tessera_ingest::prepare_together(&target.schema, &target.validator, &bodies, received) {
        // One frame in the log for the group, yet each request its own entry in it: the commit
        // gate may refuse one request's events without costing the others theirs. (Each
        // request's quarantined rows follow the previous request's, as its valid rows do.)
        Ok(Some(together)) if quarantined_in_order(&together.bodies) => {
            let rejections = crate::mesh::rejections(&together.quarantine, usize::MAX);
            let mut answers = Vec::with_capacity(group.len());
            let mut parts = Vec::with_capacity(group.len());
            for (waiting, rows) in group.into_iter().zip(&together.bodies) {
                let quarantined = rows.quarantined.len();
                parts.push((rows.rows - quarantined, quarantined));
                let mine = rows.quarantined.iter().map(|i| rejections[*i].clone());
                let receipt = receipt(stream, waiting.request.request_id, rows.rows, mine);
                answers.push((waiting.answer, receipt));
            }
            let group = EventGroup {
                stream: stream.to_string(),
                valid: together.valid,
                quarantine: together.quarantine,
                parts,
            };
            let log = log.clone();
            tokio::spawn(async move {
                let appended = log.append_group(group).await;
                for (answer, receipt) in answers {
                    let _ = answer.send(match &appended {
                        Ok(_) => Ok(receipt),
                        Err(e) => Err(log_failure(e)),
                    });
                }
            });
        }
        _ => {
            for Waiting { request, answer } in group {
                let validated = validate_one(stream.to_string(), request);
                let log = log.clone();
                let stream = stream.to_string();
                tokio::spawn(async move {
                    let answered = match validated {
                        Ok((valid, quarantine, receipt)) => {
                            append(&log, stream, valid, quarantine, &receipt, None)
                                .await
                                .map(|()| receipt)
                        }
                        Err(e) => Err(e),
                    };
                    let _ = answer.send(answered);
                });
            }
        }
    }
}

/// Whether each body's quarantined rows follow the previous body's in the quarantine batch.
fn quarantined_in_order(bodies: &[tessera_ingest::BodyRows]) -> bool {
    let mut next = 0;
    bodies.iter().all(|body| {
        body.quarantined.iter().all(|i| {
            let in_order = *i == next;
            next += 1;
            in_order
        })
    })
}

/// One request's events split by the contract, and what the request is answered.
fn validate_one(
    dataset: String,
    request: EventRequest,
) -> Result<(RecordBatch, RecordBatch, EventsReceipt)> {
    let EventRequest {
        target,
        ndjson,
        request_id,
        received,
    } = request;
    let prepared = tessera_ingest::prepare(
        &target.schema,
        &target.validator,
        Format::Ndjson,
        ndjson,
        &request_id,
        received.timestamp_micros(),
    )?;
    let rejections = crate::mesh::rejections(&prepared.quarantine, usize::MAX);
    let receipt = receipt(&dataset, request_id, prepared.rows, rejections.into_iter());
    Ok((prepared.valid, prepared.quarantine, receipt))
}

/// A request's receipt: its `events`, the ones `rejected` (numbered from 1 in the request).
fn receipt(
    dataset: &str,
    request_id: String,
    events: usize,
    rejected: impl Iterator<Item = crate::views::Rejection>,
) -> EventsReceipt {
    let rejections: Vec<EventRejection> = rejected
        .map(|r| EventRejection {
            index: r.row - 1,
            rule: r.rule,
            column: r.column,
            reason: r.reason,
        })
        .collect();
    EventsReceipt {
        dataset: dataset.to_string(),
        request_id,
        events: events as i64,
        accepted: (events - rejections.len()) as i64,
        quarantined: rejections.len() as i64,
        rejections,
        replayed: false,
    }
}

/// Appends one request's split events to the log; done once they are durable.
async fn append(
    log: &EventLog,
    stream: String,
    valid: RecordBatch,
    quarantine: RecordBatch,
    receipt: &EventsReceipt,
    claim: Option<tessera_pipeline::KeyClaim>,
) -> Result<()> {
    // The receipt is kept only to answer a retry with the same idempotency key.
    let stored = match &claim {
        Some(_) => {
            serde_json::to_vec(receipt).map_err(|e| ServiceError::Internal(e.to_string()))?
        }
        None => Vec::new(),
    };
    log.append(
        EventBatch {
            stream,
            valid: (valid.num_rows() > 0).then_some(valid),
            quarantine: (quarantine.num_rows() > 0).then_some(quarantine),
            receipt: stored,
        },
        claim,
    )
    .await?;
    Ok(())
}

/// The body as NDJSON: gzip undone (bounded by `limit`), a JSON array turned into one event a
/// line, each element checked to be an object; refused when it holds more than `max_events`
/// events (an NDJSON body's lines are counted).
fn as_ndjson(body: EventBody, limit: usize, max_events: usize) -> Result<Bytes> {
    let bytes = if body.gzip || body.bytes.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body.bytes[..])
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| {
                ServiceError::BadRequest(format!("the gzip body does not decompress: {e}"))
            })?;
        if out.len() > limit {
            return Err(ServiceError::PayloadTooLarge {
                limit_bytes: limit,
                option: "--event-max-body-bytes",
            });
        }
        Bytes::from(out)
    } else {
        body.bytes
    };
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    match first {
        None => Err(ServiceError::UnusableBatch(
            "the request holds no events".into(),
        )),
        Some(b'[') => {
            let events: Vec<serde_json::Value> = serde_json::from_slice(&bytes).map_err(|e| {
                ServiceError::BadRequest(format!("the body is not a JSON array of events: {e}"))
            })?;
            if events.is_empty() {
                return Err(ServiceError::UnusableBatch(
                    "the request holds no events".into(),
                ));
            }
            if events.len() > max_events {
                return Err(ServiceError::TooManyEvents {
                    events: events.len(),
                    limit: max_events,
                });
            }
            let mut out = Vec::with_capacity(bytes.len());
            for (i, event) in events.iter().enumerate() {
                if !event.is_object() {
                    return Err(ServiceError::BadRequest(format!(
                        "event {i} is not a JSON object"
                    )));
                }
                serde_json::to_writer(&mut out, event)
                    .map_err(|e| ServiceError::Internal(e.to_string()))?;
                out.push(b'\n');
            }
            Ok(Bytes::from(out))
        }
        Some(_) => {
            let lines = tessera_ingest::ndjson_lines(&bytes);
            if lines > max_events {
                return Err(ServiceError::TooManyEvents {
                    events: lines,
                    limit: max_events,
                });
            }
            Ok(bytes)
        }
    }
}

impl Mesh {
    /// Validates a request's events and makes them durable in the event log; they are
    /// committed to the dataset (and its quarantine) within about the commit interval.
    pub(crate) async fn accept_events(
        &self,
        cx: &RequestContext,
        reference: &DatasetRef,
        body: EventBody,
        idempotency_key: Option<String>,
    ) -> Result<EventsReceipt> {
        let resource = dataset_resource(reference);
        // One decision where the principal may ingest; where it may not, what it may discover
        // decides between 404 and 403.
        if !self
            .access_for(cx)
            .await?
            .allowed(&cx.principal, Action::Ingest, &resource)
        {
            self.discoverable(cx, &resource, || format!("no dataset {reference}"))
                .await?;
            self.authorize(cx, Action::Ingest, &resource).await?;
        }
        let target = self.event_target(reference).await?;
        let stream = reference.to_string();
        let small = body.bytes.len() <= SMALL_REQUEST_BYTES;
        let claim = match idempotency_key {
            Some(key) if key.trim().is_empty() || key.len() > 200 => {
                return Err(ServiceError::BadRequest(
                    "the Idempotency-Key header is empty or longer than 200 characters".into(),
                ));
            }
            Some(key) => match self.events.reserve(&stream, &key)? {
                Reservation::Replay(receipt) => {
                    let mut first: EventsReceipt = serde_json::from_slice(&receipt)
                        .map_err(|e| ServiceError::Internal(format!("a stored receipt: {e}")))?;
                    first.replayed = true;
                    return Ok(first);
                }
                Reservation::Fresh(claim) => Some(claim),
            },
            None => None,
        };
        let (limit, max_events) = (
            self.event_config.max_body_bytes,
            self.event_config.max_events,
        );
        let request_id = cx.request_id.clone();
        let received = chrono::Utc::now();
        let request = move |ndjson| EventRequest {
            target,
            ndjson,
            request_id,
            received,
        };
        if small && claim.is_none() {
            let request = request(as_ndjson(body, limit, max_events)?);
            return self
                .event_groups
                .submit(&self.events, &stream, request)
                .await;
        }
        let dataset = stream.clone();
        let validate = move || validate_one(dataset, request(as_ndjson(body, limit, max_events)?));
        // A small request is validated right here; a large one on a blocking thread, so that
        // it holds up no other request.
        let (valid, quarantine, receipt) = if small {
            validate()?
        } else {
            tokio::task::spawn_blocking(validate)
                .await
                .map_err(|e| ServiceError::Internal(format!("event validation panicked: {e}")))??
        };
        append(&self.events, stream, valid, quarantine, &receipt, claim).await?;
        Ok(receipt)
    }

    /// What validating `reference`'s events needs, kept while the datasets generation stays
    /// (a new contract version moves it).
    async fn event_target(&self, reference: &DatasetRef) -> Result<Arc<EventTarget>> {
        let generation = self.catalog.generations().await?.datasets;
        let key = reference.to_string();
        {
            let targets = self.event_targets.lock().expect("event targets");
            if targets.0 == generation
                && let Some(target) = targets.1.get(&key)
            {
                return Ok(target.clone());
            }
        }
        let record = self.dataset_record(reference).await?;
        let schema = self.dataset_schema(&record).await?;
        let validator = RowValidator::new(&schema)
            .map_err(|e| ServiceError::Internal(format!("contract rules: {e}")))?;
        let target = Arc::new(EventTarget { schema, validator });
        let mut targets = self.event_targets.lock().expect("event targets");
        if targets.0 != generation {
            *targets = (generation, Default::default());
        }
        targets.1.insert(key, target.clone());
        Ok(target)
    }

    /// Commits every dataset's waiting events now (shutdown, and tests that do not wait).
    pub async fn flush_events(&self) -> Result<()> {
        for backlog in self.events.pending() {
            while let Some(run) = self
                .events
                .take(&backlog.stream, self.event_config.commit_max_rows)
            {
                self.commit_or_release(run).await?;
            }
        }
        Ok(())
    }

    async fn commit_or_release(&self, run: Run) -> Result<()> {
        match self.commit_run(&run).await {
            Ok(()) => Ok(self.events.committed(run)?),
            Err(e) => {
                self.events.release(run);
                Err(e)
            }
        }
    }

    /// Commits one run: what the tables' positions show is not in them yet, gated.
    async fn commit_run(&self, run: &Run) -> Result<()> {
        let reference: DatasetRef = run
            .stream
            .parse()
            .map_err(|e| ServiceError::Internal(format!("event stream {}: {e}", run.stream)))?;
        let started = chrono::Utc::now();
        let clock = std::time::Instant::now();
        let record = self.dataset_record(&reference).await?;
        let quarantine_location = reference.quarantine().relative_path();
        let lock = self.ingest_lock(&record.location);
        let _one_at_a_time = lock.lock().await;
        let in_dataset = self
            .storage
            .sequences(&record.location, &[EVENTS_APP_ID])
            .await?[0]
            .unwrap_or(0);
        let quarantine_positions = self
            .storage
            .sequences(&quarantine_location, &[EVENTS_APP_ID, REFUSED_APP_ID])
            .await?;
        let in_quarantine = quarantine_positions[0].unwrap_or(0);
        let refused_through = quarantine_positions[1].unwrap_or(0);
        let last = run.last_seq() as i64;
        let todo: Vec<_> = run
            .entries
            .iter()
            .filter(|e| e.seq as i64 > in_dataset)
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let first = todo[0].seq;
        let batch_id = format!("events-{first}-{last}");
        let schema = self.dataset_schema(&record).await?;
        let mut quarantine: Vec<RecordBatch> = todo
            .iter()
            .filter(|e| e.seq as i64 > in_quarantine)
            .filter_map(|e| e.quarantine.clone())
            .collect();
        // A run the gate refused before a crash: its valid rows are in the quarantine already.
        let valid: Vec<RecordBatch> = todo
            .iter()
            .filter(|e| e.seq as i64 > refused_through)
            .filter_map(|e| e.valid.clone())
            .collect();
        let target = schema
            .arrow_schema()
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let valid = arrow::compute::concat_batches(&target, &valid)
            .map_err(|e| ServiceError::Internal(format!("event rows: {e}")))?;

        let system = RequestContext::system(
            "event-committer",
            uuid::Uuid::new_v4().to_string(),
            FrontEnd::System,
        );
        let owner = self
            .as_owner(&system, &record.domain, &record.product)
            .await?;
        let prepared_ms = clock.elapsed().as_millis();
        let gate = self.gate(&owner, &record, &valid, GateMode::Append).await?;
        let gated_ms = clock.elapsed().as_millis();
        let refusal = gate.as_ref().and_then(|g| g.refused_by.clone());
        if refusal.is_some() && todo.len() > 1 {
            // One request's events must not cost another's: refused together, the requests
            // are committed one by one, each gated alone as a batch is.
            drop(_one_at_a_time);
            for entry in todo {
                let single = Run {
                    stream: run.stream.clone(),
                    entries: vec![entry.clone()],
                };
                Box::pin(self.commit_run(&single)).await?;
            }
            return Ok(());
        }
        let now = chrono::Utc::now();
        let mut positions = vec![(EVENTS_APP_ID, last)];
        let valid = match &refusal {
            Some((rule, column, reason)) => {
                quarantine.push(tessera_ingest::refused_rows(
                    &schema,
                    &valid,
                    rule,
                    column,
                    reason,
                    &batch_id,
                    now.timestamp_micros(),
                )?);
                positions.push((REFUSED_APP_ID, last));
                RecordBatch::new_empty(valid.schema())
            }
            None => valid,
        };
        let quarantined: usize = quarantine.iter().map(RecordBatch::num_rows).sum();
        if quarantined > 0 {
            self.storage
                .append_sequenced(&quarantine_location, quarantine, &positions)
                .await?;
        }
        let accepted = valid.num_rows();
        let hits = if refusal.is_none() {
            crate::mesh::personal_data_hits(&schema, &valid)
        } else {
            Vec::new()
        };
        let hits_ms = clock.elapsed().as_millis();
        let outcome = self
            .storage
            .append_sequenced(&record.location, vec![valid], &[(EVENTS_APP_ID, last)])
            .await?;
        let written_ms = clock.elapsed().as_millis();
        if let Some((_, _, reason)) = &refusal {
            tracing::warn!(dataset = %run.stream, %batch_id, %reason, "the commit gate refused a run of events: its rows are in the quarantine table");
        }
        let batch = tessera_catalog::BatchRecord {
            domain: record.domain.clone(),
            product: record.product.clone(),
            dataset: record.name.clone(),
            batch_id,
            accepted: accepted as i64,
            quarantined: quarantined as i64,
            table_version: outcome.version,
            committed_at: tessera_catalog::store_time(now),
        };
        let run = crate::openlineage::CommitRun {
            job: crate::openlineage::EventJob::events(&reference),
            inputs: Vec::new(),
            started,
        };
        self.record_commit(
            &system,
            crate::gate::Commit {
                record: &record,
                gate,
                refused: refusal.is_some(),
                committed: outcome.version,
                table_version: outcome.version,
                batch,
                hits,
                run: Some(run),
            },
        )
        .await?;
        // Where a commit's time goes, for whoever tunes the committer (ms since it began: its
        // rows gathered, gated, personal data looked for and the quarantine written, the
        // dataset written, the commit recorded).
        tracing::debug!(
            dataset = %reference,
            rows = accepted,
            prepared_ms,
            gated_ms,
            hits_ms,
            written_ms,
            recorded_ms = clock.elapsed().as_millis(),
            "events committed"
        );
        Ok(())
    }
}

/// Commits the event log until the task is aborted (at shutdown, before a last flush): each dataset whose oldest waiting events are
/// `commit_interval` old, or that has `commit_max_rows` waiting. A failed commit is retried
/// (its events stay in the log), after a pause.
pub(crate) async fn run_committer(mesh: Arc<Mesh>) {
    let interval = mesh.event_config.commit_interval;
    let max_rows = mesh.event_config.commit_max_rows;
    // After a round that committed, the next begins at once: more may be due already (a
    // backlog drains back to back, not one commit per wait).
    let mut committed = false;
    loop {
        if !committed {
            mesh.events.wait_for_work(interval / 4).await;
        }
        committed = false;
        for backlog in mesh.events.pending() {
            if backlog.oldest.elapsed() < interval && backlog.rows < max_rows {
                continue;
            }
            let Some(run) = mesh.events.take(&backlog.stream, max_rows) else {
                continue;
            };
            match mesh.commit_or_release(run).await {
                Ok(()) => committed = true,
                Err(e) => {
                    tracing::warn!(dataset = %backlog.stream, error = %e, "committing events failed; retrying");
                    tokio::time::sleep(interval).await;
                }
            }
        }
    }
}

pub(crate) fn open_log(config: &crate::config::ServerConfig) -> Result<Arc<EventLog>> {
    let dir = config.data_dir.join("events");
    Ok(Arc::new(
        EventLog::open(config.events.log_options(dir))
            .map_err(|e| ServiceError::Unavailable(format!("cannot open the event log: {e}")))?,
    ))
}
