/// Errors compiling or evaluating rules.
#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    /// A rule that cannot be applied to its column (wrong type, unparsable bound, bad pattern).
    #[error("column {column:?}: rule {rule}: {reason}")]
    InvalidRule {
        column: String,
        rule: String,
        reason: String,
    },
    /// A check's query did not plan or run (a `sql` rule that does not parse, a table that
    /// cannot be read).
    #[error("{0}")]
    Query(String),
    /// An Arrow kernel failed; this is a bug in Tessera.
    #[error("internal error evaluating rules (this is a bug): {0}")]
    Internal(#[from] arrow::error::ArrowError),
}

/// Result with [`QualityError`].
pub type Result<T, E = QualityError> = std::result::Result<T, E>;
