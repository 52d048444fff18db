//! Tessera's event pipeline: the write-ahead log that makes streamed events durable before
//! they are acknowledged.
//!
//! A request's events, validated against the dataset's contract at the edge (by the server,
//! with `tessera-ingest`), become one [`EventBatch`]: the valid rows and the quarantined ones
//! as Arrow batches. [`EventLog::append`] writes it to the newest segment file; a writer
//! thread drains every append waiting and makes them durable with one `fdatasync` (group
//! commit), so many concurrent requests share one fsync. A committer (the server's) takes
//! each dataset's pending batches as a [`Run`], commits it to Delta with the run's last
//! sequence number as an application transaction, and reports it [`EventLog::committed`];
//! a segment is deleted only when every batch in it is committed. After a crash,
//! [`EventLog::open`] reads the segments back (cutting a torn tail of the newest one) and
//! the committer skips what the tables' transactions show is already committed.
//!
//! Idempotency keys are kept with the log, not as Delta transaction ids (which every snapshot
//! would carry forever): [`EventLog::reserve`] answers a retried request with the receipt of
//! the first, within the configured window, across restarts.
//!
//! This crate knows nothing of HTTP, contracts or Delta; it depends on Arrow only.

mod error;
mod wal;

pub use error::{PipelineError, Result};
pub use wal::{
    Entry, EventBatch, EventGroup, EventLog, KeyClaim, LogOptions, LogStats, Reservation, Run,
    StreamBacklog,
};
