use datafusion::error::DataFusionError;

/// Why a query did not run.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SQL does not parse, or names something that does not exist, or does not type-check.
    #[error("{0}")]
    Invalid(String),
    /// DDL, DML or another statement that would change something.
    #[error(
        "Tessera's query interface is read-only: {0}. Change datasets with `tessera apply` and `tessera ingest`."
    )]
    ReadOnly(String),
    /// The query hit its memory limit.
    #[error("the query needs more memory than its limit allows: {0}")]
    ResourcesExhausted(String),
    #[error("the query ran longer than its limit of {0} seconds")]
    Timeout(u64),
    /// Reading a table failed (storage unavailable, corrupt file...).
    #[error("reading data failed: {0}")]
    Execution(String),
}

impl QueryError {
    /// Classifies an error DataFusion returned.
    pub(crate) fn from_datafusion(error: DataFusionError) -> Self {
        match error.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..) => {
                let message = error.strip_backtrace();
                if message.contains("table") && message.contains("not found") {
                    QueryError::Invalid(format!(
                        "{message}; datasets are named domain.product.dataset (see GET /api/v1/datasets)"
                    ))
                } else {
                    QueryError::Invalid(message)
                }
            }
            DataFusionError::NotImplemented(m) => {
                QueryError::Invalid(format!("not supported: {m}"))
            }
            DataFusionError::ResourcesExhausted(m) => QueryError::ResourcesExhausted(m.clone()),
            _ => QueryError::Execution(error.strip_backtrace()),
        }
    }
}

/// Result with [`QueryError`].
pub type Result<T, E = QueryError> = std::result::Result<T, E>;
