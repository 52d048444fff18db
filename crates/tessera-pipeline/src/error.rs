//! What can go wrong with the event log, each with what the caller can do about it.

use std::path::PathBuf;

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Too much acknowledged but not yet committed: the sender should retry later (HTTP 429).
    #[error(
        "the event log holds {backlog} bytes not yet committed to tables, over its bound of {limit} bytes: retry once the committer has caught up"
    )]
    Backlogged { backlog: u64, limit: u64 },
    /// Another request with the same idempotency key has not finished (HTTP 409).
    #[error("a request with idempotency key {key:?} for {stream} is still in progress")]
    KeyInProgress { stream: String, key: String },
    #[error("event log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A segment other than the newest is damaged: the log refuses to guess what it held.
    #[error("event log segment {path} is damaged at byte {offset}: {why}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        why: String,
    },
    #[error("the event log is closed")]
    Closed,
    #[error("event log: {0}")]
    Internal(String),
}

impl PipelineError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
