//! The query log: every query from every front end, kept off the response path, and with it the
//! audit entries of queries and of denied access decisions. A finished query's entry (or a
//! denial) goes into a bounded channel; a background task writes what has gathered in one
//! transaction every [`FLUSH_EVERY`] (or sooner when [`GROUP`] entries wait), and writes the
//! rest when the mesh closes (graceful shutdown). The writer is woken by the first entry after
//! a write and by a full group, not by every entry: a query costs no thread wakeup for its log
//! entry. Who reads the log ([`QueryLog::written`]) first has what was queued before written,
//! so a user sees the query they just ran. A crash loses at most the last
//! [`FLUSH_EVERY`] of entries; if the store is down or the channel full, entries are dropped
//! and counted in the log (`tracing` warnings), never waited for.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_catalog::{AuditEvent, Catalog, QueryRecord};
use tessera_governance::Action;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

/// How long an entry waits, at most, before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// How many entries one write takes at most.
const GROUP: usize = 500;

/// How many entries may wait to be written before new ones are dropped.
const CAPACITY: usize = 20_000;

/// What the writer stores: a query (with its audit entry), or a denied decision's audit entry.
enum Activity {
    Query(QueryRecord),
    Denied(AuditEvent),
    /// A reader waits for everything queued before this to be written.
    Written(oneshot::Sender<()>),
}

/// How long a reader of the log waits for what is queued to be written; past it (a slow or
/// failing store), it reads what is there.
const READER_WAITS_AT_MOST: Duration = Duration::from_secs(5);

pub(crate) struct QueryLog {
    sender: Mutex<Option<mpsc::Sender<Activity>>>,
    writer: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// Wakes the writer before [`FLUSH_EVERY`]: a group is waiting, or the log closes.
    hurry: Arc<Notify>,
}

impl QueryLog {
    /// Starts the writer over `catalog` (on the current runtime).
    pub(crate) fn start(catalog: Catalog) -> Self {
        let (sender, receiver) = mpsc::channel(CAPACITY);
        let hurry = Arc::new(Notify::new());
        let writer = tokio::spawn(write_groups(catalog, receiver, hurry.clone()));
        Self {
            sender: Mutex::new(Some(sender)),
            writer: tokio::sync::Mutex::new(Some(writer)),
            hurry,
        }
    }

    /// Queues a query's entry; never waits. A query an access policy refused is also the
    /// audit entry of that denied decision (reading the datasets it named).
    pub(crate) fn record(&self, entry: QueryRecord) {
        if entry.status == "denied" {
            self.queue(Activity::Denied(crate::audit::denial_event(
                entry.principal.clone(),
                Action::Read,
                entry.datasets.join(","),
                &entry.request_id,
                &entry.front_end,
                Some(&entry.query_id),
            )));
        }
        self.queue(Activity::Query(entry));
    }

    /// Queues the audit entry of a denied access decision; never waits.
    pub(crate) fn record_denial(&self, event: AuditEvent) {
        self.queue(Activity::Denied(event));
    }

    fn queue(&self, entry: Activity) {
        let sender = self.sender.lock().expect("query log sender").clone();
        match sender {
            Some(sender) => {
                if let Err(e) = sender.try_send(entry) {
                    tracing::warn!(error = %e, "query log entry dropped: the writer is behind or stopped");
                }
                if sender.max_capacity() - sender.capacity() >= GROUP {
                    self.hurry.notify_one();
                }
            }
            None => tracing::warn!("query log entry dropped: the log is closed"),
        }
    }

    /// Waits until every entry queued before this call is written (at most
    /// [`READER_WAITS_AT_MOST`]): the query log and audit readers call it first, so what a user
    /// just ran is in what they read.
    pub(crate) async fn written(&self) {
        let (done, written) = oneshot::channel();
        let sender = self.sender.lock().expect("query log sender").clone();
        let Some(sender) = sender else { return };
        if sender.try_send(Activity::Written(done)).is_err() {
            return;
        }
        self.hurry.notify_one();
        if tokio::time::timeout(READER_WAITS_AT_MOST, written)
            .await
            .is_err()
        {
            tracing::warn!(
                "the query log is read before its last entries are written: the metadata store is slow"
            );
        }
    }

    /// Writes every queued entry and stops the writer.
    pub(crate) async fn close(&self) {
        self.sender.lock().expect("query log sender").take();
        self.hurry.notify_one();
        if let Some(writer) = self.writer.lock().await.take() {
            let _ = writer.await;
        }
    }
}

async fn write_groups(
    catalog: Catalog,
    mut receiver: mpsc::Receiver<Activity>,
    hurry: Arc<Notify>,
) {
    let mut group = Vec::with_capacity(GROUP);
    loop {
        // Wait for the first entry, then let what comes within FLUSH_EVERY gather in the
        // channel (unless a group is waiting or the log closes) and write it in groups.
        match receiver.recv().await {
            Some(entry) => group.push(entry),
            None => break,
        }
        tokio::select! {
            _ = tokio::time::sleep(FLUSH_EVERY) => {}
            _ = hurry.notified() => {}
        }
        loop {
            while group.len() < GROUP {
                match receiver.try_recv() {
                    Ok(entry) => group.push(entry),
                    Err(_) => break,
                }
            }
            let full = group.len() == GROUP;
            write(&catalog, &mut group).await;
            if !full {
                break;
            }
        }
    }
    write(&catalog, &mut group).await;
}

async fn write(catalog: &Catalog, group: &mut Vec<Activity>) {
    if group.is_empty() {
        return;
    }
    let (mut queries, mut denials, mut readers) = (Vec::new(), Vec::new(), Vec::new());
    for entry in group.drain(..) {
        match entry {
            Activity::Query(q) => queries.push(q),
            Activity::Denied(d) => denials.push(d),
            Activity::Written(reader) => readers.push(reader),
        }
    }
    if (!queries.is_empty() || !denials.is_empty())
        && let Err(e) = catalog.record_activity(&queries, &denials).await
    {
        tracing::warn!(error = %e, queries = queries.len(), denials = denials.len(), "query log and audit entries lost: the metadata store refused them");
    }
    for reader in readers {
        let _ = reader.send(());
    }
}

/// A query's entry as known before it runs; [`Pending::with`] completes it with its report.
pub(crate) struct Pending(QueryRecord);

/// The entry of a query `cx` runs now.
pub(crate) fn entry_for(cx: &tessera_core::RequestContext, sql: &str) -> Pending {
    Pending(QueryRecord {
        query_id: uuid::Uuid::new_v4().to_string(),
        request_id: cx.request_id.clone(),
        principal: cx.principal.to_string(),
        front_end: cx.front_end.as_str().to_string(),
        sql: sql.to_string(),
        datasets: Vec::new(),
        products: Vec::new(),
        started_at: tessera_catalog::store_time(chrono::Utc::now()),
        wall_ms: 0.0,
        cpu_ms: 0.0,
        rows_returned: 0,
        bytes_returned: 0,
        rows_scanned: 0,
        bytes_scanned: 0,
        status: String::new(),
        error_class: None,
        error: None,
    })
}

impl Pending {
    pub(crate) fn with(self, report: tessera_query::QueryReport) -> QueryRecord {
        use tessera_query::{QueryError, QueryOutcome};
        let mut q = self.0;
        q.datasets = report.datasets.iter().map(|d| d.to_string()).collect();
        q.products = report
            .datasets
            .iter()
            .map(|d| format!("{}.{}", d.domain, d.product))
            .collect();
        q.products.dedup();
        q.wall_ms = report.wall_time.as_secs_f64() * 1000.0;
        q.cpu_ms = report.cpu_time.as_secs_f64() * 1000.0;
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        q.rows_returned = count(report.rows_returned);
        q.bytes_returned = count(report.bytes_returned);
        q.rows_scanned = count(report.rows_scanned);
        q.bytes_scanned = count(report.bytes_scanned);
        let (status, error) = match report.outcome {
            QueryOutcome::Finished => ("finished", None),
            QueryOutcome::Abandoned => ("abandoned", None),
            QueryOutcome::Failed(e @ QueryError::Forbidden(_)) => ("denied", Some(e)),
            QueryOutcome::Failed(e) => ("failed", Some(e)),
        };
        q.status = status.to_string();
        q.error_class = error.as_ref().map(|e| e.class().to_string());
        q.error = error.map(|e| e.to_string());
        q
    }
}

pub(crate) fn view(q: QueryRecord) -> crate::views::QueryLogView {
    crate::views::QueryLogView {
        query_id: q.query_id,
        request_id: q.request_id,
        principal: q.principal,
        front_end: q.front_end,
        sql: q.sql,
        datasets: q.datasets,
        products: q.products,
        started_at: q.started_at,
        wall_ms: q.wall_ms,
        cpu_ms: q.cpu_ms,
        rows_returned: q.rows_returned,
        bytes_returned: q.bytes_returned,
        rows_scanned: q.rows_scanned,
        bytes_scanned: q.bytes_scanned,
        status: q.status,
        error_class: q.error_class,
        error: q.error,
    }
}
