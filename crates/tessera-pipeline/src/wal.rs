//! The write-ahead log: segment files of checksummed frames, a writer thread that group-commits
//! appends, each stream's pending batches in memory for the committer, and idempotency keys.
//!
//! On disk, `DIR/{first_seq:020}.wal` segments hold frames `[u32 len][u32 crc32][payload]`, the
//! payload `[u8 kind][u64 seq][fields…]` (a group of requests' batches is one frame that holds
//! as many sequence numbers as it has requests, from its own); `DIR/keys.snapshot` (same frames, replaced
//! atomically) holds the live idempotency keys and the next sequence number whenever a segment
//! is deleted, so neither is lost with the segment that held them.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::record_batch::RecordBatch;
use tokio::sync::{Notify, oneshot};

use crate::error::{PipelineError, Result};

const BATCH: u8 = 1;
const KEY: u8 = 2;
const NEXT_SEQ: u8 = 3;
const GROUP: u8 = 4;
const FRAME_HEADER: usize = 8;
/// A frame longer than this is damage, not data (a request body is far smaller).
const MAX_FRAME: u32 = 1 << 30;
const SNAPSHOT: &str = "keys.snapshot";

/// Where the log lives and its bounds.
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub dir: PathBuf,
    /// A segment is closed and a new one begun past this size.
    pub segment_max_bytes: u64,
    /// Appends are refused ([`PipelineError::Backlogged`]) while this much is not committed.
    pub max_backlog_bytes: u64,
    /// How long an idempotency key answers a retry with the first request's receipt.
    pub idempotency_window: Duration,
}

impl LogOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_max_bytes: 64 << 20,
            max_backlog_bytes: 256 << 20,
            idempotency_window: Duration::from_secs(24 * 3600),
        }
    }
}

/// One request's events for one stream (a dataset), validated.
#[derive(Debug, Clone)]
pub struct EventBatch {
    pub stream: String,
    /// The rows that passed the contract at the edge.
    pub valid: Option<RecordBatch>,
    /// The rows that did not, in the quarantine table's shape (with their reasons).
    pub quarantine: Option<RecordBatch>,
    /// What the request answered, replayed to a retry with the same idempotency key.
    pub receipt: Vec<u8>,
}

/// Many requests' events for one stream, validated together: one frame in the log and one
/// Arrow batch of each kind, yet each request its own [`Entry`] (the commit gate may refuse one
/// request's events without costing the others theirs).
#[derive(Debug, Clone)]
pub struct EventGroup {
    pub stream: String,
    /// Every request's valid rows, request after request.
    pub valid: RecordBatch,
    /// Every request's quarantined rows, in the same order.
    pub quarantine: RecordBatch,
    /// Each request's share, in order: (valid rows, quarantined rows).
    pub parts: Vec<(usize, usize)>,
}

/// A durable batch waiting for (or in) a Delta commit.
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    pub valid: Option<RecordBatch>,
    pub quarantine: Option<RecordBatch>,
    /// The segment that holds it (its first sequence number).
    segment: u64,
    bytes: u64,
    /// When it was made durable (or read back after a restart).
    durable_at: Instant,
}

impl Entry {
    pub fn rows(&self) -> usize {
        self.valid.as_ref().map_or(0, |b| b.num_rows())
            + self.quarantine.as_ref().map_or(0, |b| b.num_rows())
    }
}

/// A stream's pending batches, taken by the committer: commit them, then
/// [`EventLog::committed`], or give them back with [`EventLog::release`].
#[derive(Debug)]
pub struct Run {
    pub stream: String,
    /// In sequence order.
    pub entries: Vec<Entry>,
}

impl Run {
    /// The sequence number to record in the table's transaction: the run's last.
    pub fn last_seq(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.seq)
    }
}

/// What one stream has waiting.
#[derive(Debug, Clone)]
pub struct StreamBacklog {
    pub stream: String,
    pub entries: usize,
    pub rows: usize,
    /// Since the oldest waiting batch was made durable (or recovered).
    pub oldest: Instant,
}

/// The log's state, for `/health`-style reporting and the tests.
#[derive(Debug, Clone, Default)]
pub struct LogStats {
    pub segments: usize,
    pub pending_entries: usize,
    pub backlog_bytes: u64,
    pub fsyncs: u64,
    pub appends: u64,
    pub next_seq: u64,
    pub idempotency_keys: usize,
}

/// What [`EventLog::reserve`] found for a key.
#[derive(Debug)]
pub enum Reservation {
    /// First use: append with this claim; dropped unused, the key is free again.
    Fresh(KeyClaim),
    /// Seen within the window: the first request's receipt.
    Replay(Vec<u8>),
}

/// A key reserved for one request in progress.
#[derive(Debug)]
pub struct KeyClaim {
    shared: Arc<Shared>,
    stream: String,
    key: String,
    used: bool,
}

impl Drop for KeyClaim {
    fn drop(&mut self) {
        if !self.used {
            let mut state = self.shared.state.lock().expect("event log state");
            if matches!(
                state.keys.get(&(self.stream.clone(), self.key.clone())),
                Some(KeyState::InProgress)
            ) {
                state.keys.remove(&(self.stream.clone(), self.key.clone()));
            }
        }
    }
}

#[derive(Debug, Clone)]
enum KeyState {
    InProgress,
    Done { expires_ms: i64, receipt: Vec<u8> },
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    path: PathBuf,
    /// Entries in it not yet committed.
    live: usize,
}

#[derive(Debug, Default)]
struct State {
    streams: HashMap<String, StreamQueue>,
    keys: HashMap<(String, String), KeyState>,
    segments: Vec<Segment>,
    /// The segment the writer appends to; never deleted.
    active: u64,
    next_seq: u64,
}

#[derive(Debug, Default)]
struct StreamQueue {
    pending: VecDeque<Entry>,
    /// A run of this stream is with the committer.
    in_flight: bool,
}

#[derive(Debug)]
struct Shared {
    options: LogOptions,
    state: Mutex<State>,
    backlog_bytes: AtomicU64,
    fsyncs: AtomicU64,
    appends: AtomicU64,
    work: Notify,
    closed: AtomicBool,
}

struct WriteRequest {
    stream: String,
    body: Vec<u8>,
    /// One frame's entries: one for a batch, one per request for a group (sequence numbers
    /// from the frame's own, one each).
    entries: Vec<Entry>,
    key: Option<(String, i64, Vec<u8>)>,
    reply: oneshot::Sender<Result<u64>>,
}

/// The log. Cheap to share behind an `Arc`; [`EventLog::close`] stops the writer.
pub struct EventLog {
    shared: Arc<Shared>,
    sender: Mutex<Option<mpsc::Sender<WriteRequest>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("dir", &self.shared.options.dir)
            .finish()
    }
}

impl EventLog {
    /// Opens (or makes) the log in `options.dir`, reading back every batch not yet committed:
    /// they are pending again, for the committer to skip what the tables already hold.
    pub fn open(options: LogOptions) -> Result<Self> {
        let dir = options.dir.clone();
        fs::create_dir_all(&dir).map_err(PipelineError::io(&dir))?;
        let mut state = State {
            next_seq: 1,
            ..State::default()
        };
        let now = now_ms();
        let snapshot = dir.join(SNAPSHOT);
        if snapshot.exists() {
            let bytes = fs::read(&snapshot).map_err(PipelineError::io(&snapshot))?;
            let (frames, torn) = read_frames(&bytes);
            if let Some((offset, why)) = torn {
                return Err(PipelineError::Corrupt {
                    path: snapshot,
                    offset,
                    why,
                });
            }
            for (seq, payload) in frames {
                match decode(seq, payload, &snapshot)? {
                    Decoded::NextSeq(n) => state.next_seq = state.next_seq.max(n),
                    Decoded::Key {
                        stream,
                        key,
                        expires_ms,
                        receipt,
                    } if expires_ms > now => {
                        state.keys.insert(
                            (stream, key),
                            KeyState::Done {
                                expires_ms,
                                receipt,
                            },
                        );
                    }
                    _ => {}
                }
            }
        }

        let mut segments: Vec<(u64, PathBuf)> = fs::read_dir(&dir)
            .map_err(PipelineError::io(&dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let path = e.path();
                let first = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".wal")?
                    .parse::<u64>()
                    .ok()?;
                Some((first, path))
            })
            .collect();
        segments.sort();
        let recovered_at = Instant::now();
        let newest = segments.last().map(|(first, _)| *first);
        let mut backlog = 0u64;
        for (first_seq, path) in segments {
            let bytes = fs::read(&path).map_err(PipelineError::io(&path))?;
            let (frames, torn) = read_frames(&bytes);
            let mut live = 0;
            for (seq, payload) in frames {
                state.next_seq = state.next_seq.max(seq + 1);
                let frame_bytes = (payload.len() + FRAME_HEADER) as u64;
                let (stream, entries) = match decode(seq, payload, &path)? {
                    Decoded::Batch {
                        stream,
                        key,
                        valid,
                        quarantine,
                    } => {
                        if let Some((key, expires_ms, receipt)) = key
                            && expires_ms > now
                        {
                            state.keys.insert(
                                (stream.clone(), key),
                                KeyState::Done {
                                    expires_ms,
                                    receipt,
                                },
                            );
                        }
                        (stream, vec![entry(valid, quarantine, frame_bytes)])
                    }
                    Decoded::Group(group) => {
                        let entries = group_entries(&group, frame_bytes);
                        (group.stream, entries)
                    }
                    _ => continue,
                };
                state.next_seq = state.next_seq.max(seq + entries.len() as u64);
                backlog += frame_bytes;
                live += entries.len();
                let queue = &mut state.streams.entry(stream).or_default().pending;
                for (i, mut entry) in entries.into_iter().enumerate() {
                    entry.seq = seq + i as u64;
                    entry.segment = first_seq;
                    entry.durable_at = recovered_at;
                    queue.push_back(entry);
                }
            }
            if let Some((offset, why)) = torn {
                if Some(first_seq) != newest {
                    return Err(PipelineError::Corrupt { path, offset, why });
                }
                // A crash mid-append: the torn frame was never acknowledged.
                tracing::warn!(path = %path.display(), offset, %why, "cutting the event log's torn tail");
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(PipelineError::io(&path))?;
                file.set_len(offset).map_err(PipelineError::io(&path))?;
                file.sync_all().map_err(PipelineError::io(&path))?;
            }
            state.next_seq = state.next_seq.max(first_seq);
            state.segments.push(Segment {
                first_seq,
                path,
                live,
            });
        }

        // New appends go to a new segment; recovered ones are deleted once committed. A
        // recovered segment named as the new one is empty (else the next seq would be past it).
        let active = state.next_seq;
        state.segments.retain(|s| s.first_seq != active);
        let (file, path) = create_segment(&dir, active)?;
        state.segments.push(Segment {
            first_seq: active,
            path,
            live: 0,
        });
        state.active = active;
        let shared = Arc::new(Shared {
            options,
            state: Mutex::new(state),
            backlog_bytes: AtomicU64::new(backlog),
            fsyncs: AtomicU64::new(0),
            appends: AtomicU64::new(0),
            work: Notify::new(),
            closed: AtomicBool::new(false),
        });
        {
            let mut state = shared.state.lock().expect("event log state");
            truncate(&shared, &mut state)?;
        }
        let (sender, receiver) = mpsc::channel();
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("tessera-event-log".into())
            .spawn(move || write_loop(writer_shared, receiver, file))
            .map_err(|e| PipelineError::Internal(format!("start the log writer: {e}")))?;
        Ok(Self {
            shared,
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Reserves `key` for a request to `stream`: fresh, a replay of the first request's
    /// receipt (within the window), or refused while the first is still in progress.
    pub fn reserve(&self, stream: &str, key: &str) -> Result<Reservation> {
        let mut state = self.shared.state.lock().expect("event log state");
        let id = (stream.to_string(), key.to_string());
        match state.keys.get(&id) {
            Some(KeyState::InProgress) => Err(PipelineError::KeyInProgress {
                stream: stream.to_string(),
                key: key.to_string(),
            }),
            Some(KeyState::Done {
                expires_ms,
                receipt,
            }) if *expires_ms > now_ms() => Ok(Reservation::Replay(receipt.clone())),
            _ => {
                state.keys.insert(id, KeyState::InProgress);
                Ok(Reservation::Fresh(KeyClaim {
                    shared: self.shared.clone(),
                    stream: stream.to_string(),
                    key: key.to_string(),
                    used: false,
                }))
            }
        }
    }

    /// Appends a batch; returns its sequence number once it is durable (fsynced). Refused
    /// while the backlog is over its bound.
    pub async fn append(&self, batch: EventBatch, claim: Option<KeyClaim>) -> Result<u64> {
        self.accepting()?;
        let expires_ms = now_ms()
            + i64::try_from(self.shared.options.idempotency_window.as_millis()).unwrap_or(i64::MAX);
        let key = claim.as_ref().map(|c| c.key.clone());
        let body = encode_batch(&batch, key.as_deref(), expires_ms)?;
        let entries = vec![entry(batch.valid, batch.quarantine, framed_bytes(&body))];
        let key = key.map(|k| (k, expires_ms, batch.receipt));
        let result = self.write(batch.stream, body, entries, key).await;
        if let (Ok(_), Some(mut claim)) = (&result, claim) {
            claim.used = true;
        }
        result
    }

    /// Appends a group of requests' batches as one frame; each request is its own entry, with
    /// its own sequence number (the first is returned) once the frame is durable. All or none:
    /// refused while the backlog is over its bound.
    pub async fn append_group(&self, group: EventGroup) -> Result<u64> {
        self.accepting()?;
        let body = encode_group(&group)?;
        let entries = group_entries(&group, framed_bytes(&body));
        self.write(group.stream, body, entries, None).await
    }

    /// Whether the log takes appends now: open, and its backlog under its bound.
    fn accepting(&self) -> Result<()> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(PipelineError::Closed);
        }
        let limit = self.shared.options.max_backlog_bytes;
        let backlog = self.shared.backlog_bytes.load(Ordering::Acquire);
        if backlog >= limit {
            return Err(PipelineError::Backlogged { backlog, limit });
        }
        Ok(())
    }

    /// Hands one frame to the writer; its first sequence number once it is durable.
    async fn write(
        &self,
        stream: String,
        body: Vec<u8>,
        entries: Vec<Entry>,
        key: Option<(String, i64, Vec<u8>)>,
    ) -> Result<u64> {
        let bytes: u64 = entries.iter().map(|e| e.bytes).sum();
        self.shared.backlog_bytes.fetch_add(bytes, Ordering::AcqRel);
        let (reply, answer) = oneshot::channel();
        let request = WriteRequest {
            stream,
            body,
            entries,
            key,
            reply,
        };
        let sent = self
            .sender
            .lock()
            .expect("event log sender")
            .as_ref()
            .map(|s| s.send(request).is_ok())
            .unwrap_or(false);
        if !sent {
            self.shared.backlog_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(PipelineError::Closed);
        }
        let result = answer.await.unwrap_or(Err(PipelineError::Closed));
        if result.is_err() {
            self.shared.backlog_bytes.fetch_sub(bytes, Ordering::AcqRel);
        }
        result
    }

    /// Every stream with batches waiting and none with the committer.
    pub fn pending(&self) -> Vec<StreamBacklog> {
        let state = self.shared.state.lock().expect("event log state");
        let mut out: Vec<StreamBacklog> = state
            .streams
            .iter()
            .filter(|(_, q)| !q.in_flight && !q.pending.is_empty())
            .map(|(stream, q)| StreamBacklog {
                stream: stream.clone(),
                entries: q.pending.len(),
                rows: q.pending.iter().map(Entry::rows).sum(),
                oldest: q
                    .pending
                    .front()
                    .map_or_else(Instant::now, |e| e.durable_at),
            })
            .collect();
        out.sort_by_key(|b| b.oldest);
        out
    }

    /// Takes `stream`'s waiting batches, up to about `max_rows` rows (at least one batch), for
    /// one commit. `None` if it has none or a run of it is with the committer already.
    pub fn take(&self, stream: &str, max_rows: usize) -> Option<Run> {
        let mut state = self.shared.state.lock().expect("event log state");
        let queue = state.streams.get_mut(stream)?;
        if queue.in_flight || queue.pending.is_empty() {
            return None;
        }
        let mut entries = Vec::new();
        let mut rows = 0;
        while let Some(next) = queue.pending.front() {
            if !entries.is_empty() && rows + next.rows() > max_rows {
                break;
            }
            rows += next.rows();
            entries.push(queue.pending.pop_front().expect("a front entry"));
        }
        queue.in_flight = true;
        Some(Run {
            stream: stream.to_string(),
            entries,
        })
    }

    /// Gives a run back uncommitted (its commit failed): it is retried first.
    pub fn release(&self, run: Run) {
        let mut state = self.shared.state.lock().expect("event log state");
        let queue = state.streams.entry(run.stream).or_default();
        for entry in run.entries.into_iter().rev() {
            queue.pending.push_front(entry);
        }
        queue.in_flight = false;
        self.shared.work.notify_one();
    }

    /// The run's rows are in a durable Delta commit: its segments may go.
    pub fn committed(&self, run: Run) -> Result<()> {
        let mut state = self.shared.state.lock().expect("event log state");
        if let Some(queue) = state.streams.get_mut(&run.stream) {
            queue.in_flight = false;
        }
        let mut freed = 0;
        for entry in &run.entries {
            freed += entry.bytes;
            if let Some(s) = state
                .segments
                .iter_mut()
                .find(|s| s.first_seq == entry.segment)
            {
                s.live = s.live.saturating_sub(1);
            }
        }
        self.shared.backlog_bytes.fetch_sub(
            freed.min(self.shared.backlog_bytes.load(Ordering::Acquire)),
            Ordering::AcqRel,
        );
        truncate(&self.shared, &mut state)
    }

    /// Waits until a batch is appended or given back, or `timeout` passes.
    pub async fn wait_for_work(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.shared.work.notified()).await;
    }

    pub fn stats(&self) -> LogStats {
        let state = self.shared.state.lock().expect("event log state");
        LogStats {
            segments: state.segments.len(),
            pending_entries: state.streams.values().map(|q| q.pending.len()).sum(),
            backlog_bytes: self.shared.backlog_bytes.load(Ordering::Acquire),
            fsyncs: self.shared.fsyncs.load(Ordering::Acquire),
            appends: self.shared.appends.load(Ordering::Acquire),
            next_seq: state.next_seq,
            idempotency_keys: state
                .keys
                .values()
                .filter(|k| matches!(k, KeyState::Done { .. }))
                .count(),
        }
    }

    /// Stops taking appends and waits for the writer to finish what it has.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.sender.lock().expect("event log sender").take();
        if let Some(writer) = self.writer.lock().expect("event log writer").take() {
            let _ = writer.join();
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread: takes every append waiting, writes them in one go, fsyncs once, then
/// acknowledges each.
fn write_loop(shared: Arc<Shared>, receiver: mpsc::Receiver<WriteRequest>, file: File) {
    let mut file = file;
    let mut written = 0u64;
    while let Ok(first) = receiver.recv() {
        let mut group = vec![first];
        while let Ok(more) = receiver.try_recv() {
            group.push(more);
            if group.len() >= 4096 {
                break;
            }
        }
        let (mut seq, active) = {
            let state = shared.state.lock().expect("event log state");
            (state.next_seq, state.active)
        };
        let mut buffer = Vec::new();
        let mut seqs = Vec::with_capacity(group.len());
        for request in &group {
            frame(&mut buffer, seq, &request.body);
            seqs.push(seq);
            seq += request.entries.len() as u64;
        }
        let outcome = file
            .write_all(&buffer)
            .and_then(|()| file.sync_data())
            .map_err(|e| e.to_string());
        shared.fsyncs.fetch_add(1, Ordering::AcqRel);
        if let Err(why) = outcome {
            // Nothing of this group is acknowledged: what of it reached the file is cut off
            // (should that fail too, recovery reads it back, and a retry of an unacknowledged
            // request may then hold its events twice, as any at-least-once sender would).
            // Later appends go to a fresh segment.
            tracing::error!(%why, "event log write failed");
            if let Err(e) = file.set_len(written).and_then(|()| file.sync_data()) {
                tracing::error!(error = %e, "event log: the failed write could not be cut off");
            }
            for request in group {
                let _ = request.reply.send(Err(PipelineError::Internal(format!(
                    "the event log could not be written: {why}"
                ))));
            }
            let mut state = shared.state.lock().expect("event log state");
            state.next_seq = seq;
            if let Some(next) = begin_segment(&shared, &mut state, seq) {
                (file, written) = (next, 0);
            }
            continue;
        }
        written += buffer.len() as u64;
        let entries: u64 = group.iter().map(|r| r.entries.len() as u64).sum();
        shared.appends.fetch_add(entries, Ordering::AcqRel);
        let mut state = shared.state.lock().expect("event log state");
        state.next_seq = seq;
        let mut replies = Vec::with_capacity(group.len());
        let durable_at = Instant::now();
        for (request, seq) in group.into_iter().zip(seqs) {
            if let Some(s) = state.segments.iter_mut().find(|s| s.first_seq == active) {
                s.live += request.entries.len();
            }
            if let Some((key, expires_ms, receipt)) = request.key {
                state.keys.insert(
                    (request.stream.clone(), key),
                    KeyState::Done {
                        expires_ms,
                        receipt,
                    },
                );
            }
            let queue = &mut state.streams.entry(request.stream).or_default().pending;
            for (i, mut entry) in request.entries.into_iter().enumerate() {
                entry.seq = seq + i as u64;
                entry.segment = active;
                entry.durable_at = durable_at;
                queue.push_back(entry);
            }
            replies.push((request.reply, seq));
        }
        if written >= shared.options.segment_max_bytes
            && let Some(next) = begin_segment(&shared, &mut state, seq)
        {
            (file, written) = (next, 0);
            if let Err(e) = truncate(&shared, &mut state) {
                tracing::error!(error = %e, "event log truncation failed");
            }
        }
        drop(state);
        for (reply, seq) in replies {
            let _ = reply.send(Ok(seq));
        }
        shared.work.notify_one();
    }
}

/// Makes the segment that begins at `first_seq` the active one; `None` (logged) if it cannot
/// be created, and appends go on to the current one.
fn begin_segment(shared: &Shared, state: &mut State, first_seq: u64) -> Option<File> {
    match create_segment(&shared.options.dir, first_seq) {
        Ok((file, path)) => {
            state.segments.push(Segment {
                first_seq,
                path,
                live: 0,
            });
            state.active = first_seq;
            Some(file)
        }
        Err(e) => {
            tracing::error!(error = %e, "event log: could not begin a segment");
            None
        }
    }
}

/// Deletes every segment but the active one whose batches are all committed, having first
/// saved the live keys and the next sequence number.
fn truncate(shared: &Shared, state: &mut State) -> Result<()> {
    let done: Vec<usize> = state
        .segments
        .iter()
        .enumerate()
        .filter(|(_, s)| s.live == 0 && s.first_seq != state.active)
        .map(|(i, _)| i)
        .collect();
    if done.is_empty() {
        return Ok(());
    }
    write_snapshot(&shared.options.dir, state)?;
    for i in done.into_iter().rev() {
        let segment = state.segments.remove(i);
        fs::remove_file(&segment.path).map_err(PipelineError::io(&segment.path))?;
    }
    sync_dir(&shared.options.dir)
}

fn write_snapshot(dir: &Path, state: &mut State) -> Result<()> {
    let now = now_ms();
    state.keys.retain(|_, k| match k {
        KeyState::Done { expires_ms, .. } => *expires_ms > now,
        KeyState::InProgress => true,
    });
    let mut buffer = Vec::new();
    frame(&mut buffer, state.next_seq, &[NEXT_SEQ]);
    for ((stream, key), k) in &state.keys {
        if let KeyState::Done {
            expires_ms,
            receipt,
        } = k
        {
            let mut body = vec![KEY];
            put_str16(&mut body, stream)?;
            put_str16(&mut body, key)?;
            body.extend_from_slice(&expires_ms.to_le_bytes());
            put_bytes32(&mut body, receipt)?;
            frame(&mut buffer, 0, &body);
        }
    }
    let tmp = dir.join(format!("{SNAPSHOT}.tmp"));
    let mut file = File::create(&tmp).map_err(PipelineError::io(&tmp))?;
    file.write_all(&buffer).map_err(PipelineError::io(&tmp))?;
    file.sync_all().map_err(PipelineError::io(&tmp))?;
    let path = dir.join(SNAPSHOT);
    fs::rename(&tmp, &path).map_err(PipelineError::io(&path))?;
    sync_dir(dir)
}

fn create_segment(dir: &Path, first_seq: u64) -> Result<(File, PathBuf)> {
    let path = dir.join(format!("{first_seq:020}.wal"));
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(PipelineError::io(&path))?;
    sync_dir(dir)?;
    Ok((file, path))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(PipelineError::io(dir))
}

/// `[u32 len][u32 crc][kind][u64 seq][rest]`, the body being `[kind][rest]`.
fn frame(out: &mut Vec<u8>, seq: u64, body: &[u8]) {
    let seq = seq.to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&body[..1]);
    crc.update(&seq);
    crc.update(&body[1..]);
    out.extend_from_slice(&((body.len() + seq.len()) as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&body[..1]);
    out.extend_from_slice(&seq);
    out.extend_from_slice(&body[1..]);
}

/// The bytes a frame of `body` takes in the log: its header and the sequence number the
/// writer adds.
fn framed_bytes(body: &[u8]) -> u64 {
    (body.len() + FRAME_HEADER + 8) as u64
}

/// An entry of these rows (no rows: none), its sequence number and segment still to be set.
fn entry(valid: Option<RecordBatch>, quarantine: Option<RecordBatch>, bytes: u64) -> Entry {
    Entry {
        seq: 0,
        valid,
        quarantine,
        segment: 0,
        bytes,
        durable_at: Instant::now(),
    }
}

/// A group's entries, one per request (slices of the group's batches), the frame's
/// `frame_bytes` shared out among them so that committing them all frees exactly that.
fn group_entries(group: &EventGroup, frame_bytes: u64) -> Vec<Entry> {
    let n = group.parts.len().max(1) as u64;
    let (mut valid_at, mut quarantine_at) = (0, 0);
    let mut entries = Vec::with_capacity(group.parts.len());
    for (i, (valid, quarantined)) in group.parts.iter().copied().enumerate() {
        let share = frame_bytes / n + u64::from(i as u64 == n - 1) * (frame_bytes % n);
        let rows =
            |batch: &RecordBatch, at: usize, len: usize| (len > 0).then(|| batch.slice(at, len));
        entries.push(entry(
            rows(&group.valid, valid_at, valid),
            rows(&group.quarantine, quarantine_at, quarantined),
            share,
        ));
        valid_at += valid;
        quarantine_at += quarantined;
    }
    entries
}

/// Whole frames (seq, payload from the kind on), and where and why the rest is unreadable.
type Frames<'a> = (Vec<(u64, &'a [u8])>, Option<(u64, String)>);

/// Every whole frame, and where and why the rest is unreadable, if it is.
fn read_frames(bytes: &[u8]) -> Frames<'_> {
    let mut frames = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let torn = |why: &str| Some((at as u64, why.to_string()));
        if bytes.len() - at < FRAME_HEADER {
            return (frames, torn("a frame header is cut short"));
        }
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        if !(9..=MAX_FRAME).contains(&len) {
            return (frames, torn("a frame length is out of range"));
        }
        let end = at + FRAME_HEADER + len as usize;
        if end > bytes.len() {
            return (frames, torn("a frame is cut short"));
        }
        let payload = &bytes[at + FRAME_HEADER..end];
        if crc32fast::hash(payload) != crc {
            return (frames, torn("a frame's checksum does not match"));
        }
        let seq = u64::from_le_bytes(payload[1..9].try_into().expect("8 bytes"));
        frames.push((seq, payload));
        at = end;
    }
    (frames, None)
}

enum Decoded {
    Batch {
        stream: String,
        key: Option<(String, i64, Vec<u8>)>,
        valid: Option<RecordBatch>,
        quarantine: Option<RecordBatch>,
    },
    Key {
        stream: String,
        key: String,
        expires_ms: i64,
        receipt: Vec<u8>,
    },
    NextSeq(u64),
    Group(EventGroup),
}

fn encode_batch(batch: &EventBatch, key: Option<&str>, expires_ms: i64) -> Result<Vec<u8>> {
    let mut body = vec![BATCH];
    put_str16(&mut body, &batch.stream)?;
    match key {
        Some(key) => {
            body.push(1);
            put_str16(&mut body, key)?;
            body.extend_from_slice(&expires_ms.to_le_bytes());
            put_bytes32(&mut body, &batch.receipt)?;
        }
        None => body.push(0),
    }
    put_bytes32(&mut body, &ipc(batch.valid.as_ref())?)?;
    put_bytes32(&mut body, &ipc(batch.quarantine.as_ref())?)?;
    Ok(body)
}

/// `[GROUP][str16 stream][u32 requests][u32 valid rows, u32 quarantined rows]…[bytes32 valid
/// IPC][bytes32 quarantine IPC]`.
fn encode_group(group: &EventGroup) -> Result<Vec<u8>> {
    let (valid, quarantined) = rows_of(&group.parts);
    if group.parts.is_empty() {
        // It would take no sequence number, and the next frame would share its own.
        return Err(PipelineError::Internal("a group of no requests".into()));
    }
    if valid != group.valid.num_rows() || quarantined != group.quarantine.num_rows() {
        return Err(PipelineError::Internal(format!(
            "a group's requests hold {valid} valid and {quarantined} quarantined rows, its batches {} and {}",
            group.valid.num_rows(),
            group.quarantine.num_rows()
        )));
    }
    let count = |n: usize| {
        u32::try_from(n)
            .map_err(|_| PipelineError::Internal(format!("{n} is too many for a group")))
    };
    let mut body = vec![GROUP];
    put_str16(&mut body, &group.stream)?;
    body.extend_from_slice(&count(group.parts.len())?.to_le_bytes());
    for (valid, quarantined) in &group.parts {
        body.extend_from_slice(&count(*valid)?.to_le_bytes());
        body.extend_from_slice(&count(*quarantined)?.to_le_bytes());
    }
    for batch in [&group.valid, &group.quarantine] {
        put_bytes32(&mut body, &ipc((batch.num_rows() > 0).then_some(batch))?)?;
    }
    Ok(body)
}

/// A group's rows in all, from each request's (valid, quarantined).
fn rows_of(parts: &[(usize, usize)]) -> (usize, usize) {
    parts
        .iter()
        .fold((0, 0), |(v, q), (pv, pq)| (v + pv, q + pq))
}

fn decode(seq: u64, payload: &[u8], path: &Path) -> Result<Decoded> {
    let corrupt = |why: String| PipelineError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        why: format!("frame {seq}: {why}"),
    };
    let mut r = Reader {
        bytes: &payload[9..],
    };
    match payload[0] {
        NEXT_SEQ => Ok(Decoded::NextSeq(seq)),
        KEY => Ok(Decoded::Key {
            stream: r.str16().map_err(corrupt)?,
            key: r.str16().map_err(corrupt)?,
            expires_ms: r.i64().map_err(corrupt)?,
            receipt: r.bytes32().map_err(corrupt)?.to_vec(),
        }),
        BATCH => {
            let stream = r.str16().map_err(corrupt)?;
            let key = match r.u8().map_err(corrupt)? {
                0 => None,
                _ => Some((
                    r.str16().map_err(corrupt)?,
                    r.i64().map_err(corrupt)?,
                    r.bytes32().map_err(corrupt)?.to_vec(),
                )),
            };
            let valid = from_ipc(r.bytes32().map_err(corrupt)?).map_err(corrupt)?;
            let quarantine = from_ipc(r.bytes32().map_err(corrupt)?).map_err(corrupt)?;
            Ok(Decoded::Batch {
                stream,
                key,
                valid,
                quarantine,
            })
        }
        GROUP => {
            let stream = r.str16().map_err(corrupt)?;
            let requests = r.u32().map_err(corrupt)? as usize;
            if requests == 0 {
                // Never written (it would hold no entry to free its bytes): damage.
                return Err(corrupt("a group of no requests".to_string()));
            }
            let mut parts = Vec::with_capacity(requests.min(1 << 16));
            for _ in 0..requests {
                let valid = r.u32().map_err(corrupt)? as usize;
                let quarantined = r.u32().map_err(corrupt)? as usize;
                parts.push((valid, quarantined));
            }
            let batch = |bytes: &[u8], rows: usize| -> Result<RecordBatch, String> {
                match from_ipc(bytes)? {
                    Some(batch) if batch.num_rows() == rows => Ok(batch),
                    None if rows == 0 => Ok(RecordBatch::new_empty(Arc::new(
                        arrow::datatypes::Schema::empty(),
                    ))),
                    _ => Err("a group's rows do not add up".to_string()),
                }
            };
            let (valid_rows, quarantined_rows) = rows_of(&parts);
            let valid = batch(r.bytes32().map_err(corrupt)?, valid_rows).map_err(corrupt)?;
            let quarantine =
                batch(r.bytes32().map_err(corrupt)?, quarantined_rows).map_err(corrupt)?;
            Ok(Decoded::Group(EventGroup {
                stream,
                valid,
                quarantine,
                parts,
            }))
        }
        other => Err(corrupt(format!("unknown frame kind {other}"))),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("a field is cut short".into());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn str16(&mut self) -> Result<String, String> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|e| e.to_string())
    }
    fn bytes32(&mut self) -> Result<&'a [u8], String> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        self.take(n)
    }
}

fn put_str16(out: &mut Vec<u8>, s: &str) -> Result<()> {
    let n = u16::try_from(s.len())
        .map_err(|_| PipelineError::Internal(format!("a name of {} bytes is too long", s.len())))?;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_bytes32(out: &mut Vec<u8>, b: &[u8]) -> Result<()> {
    let n = u32::try_from(b.len()).map_err(|_| {
        PipelineError::Internal(format!("{} bytes are too many for a frame", b.len()))
    })?;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(b);
    Ok(())
}

/// A batch as an Arrow IPC stream; none as no bytes.
fn ipc(batch: Option<&RecordBatch>) -> Result<Vec<u8>> {
    use arrow::ipc::writer::{
        DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions, write_message,
    };
    let Some(batch) = batch else {
        return Ok(Vec::new());
    };
    let encoding =
        |e: arrow::error::ArrowError| PipelineError::Internal(format!("encode a batch: {e}"));
    let schema = batch.schema();
    if schema
        .fields()
        .iter()
        .any(|f| holds_dictionary(f.data_type()))
    {
        let mut out = Vec::new();
        let mut writer =
            arrow::ipc::writer::StreamWriter::try_new(&mut out, &schema).map_err(encoding)?;
        writer
            .write(batch)
            .and_then(|()| writer.finish())
            .map_err(encoding)?;
        drop(writer);
        return Ok(out);
    }
    // The stream StreamWriter writes (schema message, batch message, end of stream), with the
    // schema's message encoded once per schema: for a one-event request it was a third of the
    // cost of logging it.
    let options = IpcWriteOptions::default();
    let generator = IpcDataGenerator::default();
    let mut out = SCHEMA_MESSAGES.with(|cache| -> Result<Vec<u8>> {
        let mut cache = cache.borrow_mut();
        if let Some((_, message)) = cache
            .iter()
            .find(|(known, _)| Arc::ptr_eq(known, &schema) || **known == *schema)
        {
            return Ok(message.clone());
        }
        let mut message = Vec::new();
        let encoded = generator.schema_to_bytes_with_dictionary_tracker(
            &schema,
            &mut DictionaryTracker::new(false),
            &options,
        );
        write_message(&mut message, encoded, &options).map_err(encoding)?;
        if cache.len() >= 8 {
            cache.remove(0);
        }
        cache.push((schema.clone(), message.clone()));
        Ok(message)
    })?;
    let (_, encoded) = generator
        .encode(
            batch,
            &mut DictionaryTracker::new(false),
            &options,
            &mut IpcWriteContext::default(),
        )
        .map_err(encoding)?;
    write_message(&mut out, encoded, &options).map_err(encoding)?;
    // End of stream: the continuation marker and a zero length.
    out.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    Ok(out)
}

/// Whether a column of this type has a dictionary (its batches need the dictionary messages
/// [`StreamWriter`](arrow::ipc::writer::StreamWriter) writes).
fn holds_dictionary(data_type: &arrow::datatypes::DataType) -> bool {
    use arrow::datatypes::DataType;
    match data_type {
        DataType::Dictionary(..) => true,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => holds_dictionary(f.data_type()),
        DataType::Struct(fields) => fields.iter().any(|f| holds_dictionary(f.data_type())),
        DataType::Union(fields, _) => fields.iter().any(|(_, f)| holds_dictionary(f.data_type())),
        DataType::RunEndEncoded(_, values) => holds_dictionary(values.data_type()),
        _ => false,
    }
}

thread_local! {
    /// The schemas this thread encoded batches of lately, with their IPC schema messages.
    static SCHEMA_MESSAGES: std::cell::RefCell<Vec<(arrow::datatypes::SchemaRef, Vec<u8>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn from_ipc(bytes: &[u8]) -> Result<Option<RecordBatch>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let mut reader =
        arrow::ipc::reader::StreamReader::try_new(bytes, None).map_err(|e| e.to_string())?;
    let batch = reader
        .next()
        .ok_or_else(|| "an empty batch".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(Some(batch))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
