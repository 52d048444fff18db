/// A batch that cannot be read against its contract; nothing of it is written.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot tell the format of the file; pass --format csv|ndjson|parquet")]
    UnknownFormat,
    #[error("unsupported format {0:?}: use csv, ndjson or parquet")]
    UnsupportedFormat(String),
    #[error("{format} input is not readable: {reason}")]
    Unreadable {
        format: &'static str,
        reason: String,
    },
    /// Columns in the file that the contract does not declare.
    #[error("the file has columns the contract does not declare: {}; expected some of: {}", .unknown.join(", "), .expected.join(", "))]
    UnknownColumns {
        unknown: Vec<String>,
        expected: Vec<String>,
    },
    #[error("the batch is empty: no rows")]
    Empty,
    #[error(transparent)]
    Rules(#[from] tessera_quality::QualityError),
    /// An Arrow kernel failed on data that was already read; a bug in Tessera.
    #[error("internal error preparing the batch (this is a bug): {0}")]
    Internal(#[from] arrow::error::ArrowError),
}

/// Result with [`IngestError`].
pub type Result<T, E = IngestError> = std::result::Result<T, E>;
