use arrow::error::ArrowError;
use datafusion::error::DataFusionError;

/// Why a query did not run, or stopped. Each variant says whose fault it is: the query's
/// (`Invalid`, `ReadOnly`, `Failed`), a limit's (`ResourcesExhausted`, `ResultTooLarge`,
/// `Timeout`, `Busy`), the platform's (`Unavailable`, `ShuttingDown`) or Tessera's
/// (`Internal`). Front ends turn them into a status (HTTP, SQLSTATE, gRPC) by that alone.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueryError {
    /// The SQL does not parse, names something that does not exist, does not type-check, or is
    /// too long or too deeply nested to plan.
    #[error("{0}")]
    Invalid(String),
    /// The statement reads a table its principal may discover but not read.
    #[error("{0}")]
    Forbidden(String),
    /// DDL, DML or another statement that would change something.
    #[error(
        "Tessera's query interface is read-only: {0}. Change datasets with `tessera apply` and `tessera ingest`."
    )]
    ReadOnly(String),
    /// The query failed on the data it read: division by zero, a value that does not cast, an
    /// integer overflow, an invalid regular expression, an unparsable timestamp.
    #[error("the query failed: {0}")]
    Failed(String),
    /// The query needs more memory than its limit allows.
    #[error("the query needs more memory than its limit allows: {0}")]
    ResourcesExhausted(String),
    /// The result is larger than a front end may send.
    #[error("{0}")]
    ResultTooLarge(String),
    #[error(
        "the query ran longer than its limit of {0} seconds (--query-timeout-seconds) and was cancelled"
    )]
    Timeout(u64),
    /// As many queries run and wait as the server allows.
    #[error(
        "the server is running and queueing as many queries as it may (--query-concurrency, --query-queue-length); try again shortly"
    )]
    Busy,
    /// The server is stopping; running queries are cancelled.
    #[error("the server is shutting down; the query was cancelled")]
    ShuttingDown,
    /// Reading a table failed (storage unavailable, corrupt file...).
    #[error("reading data failed: {0}")]
    Unavailable(String),
    /// A bug in Tessera (or DataFusion).
    #[error("internal error (this is a bug): {0}")]
    Internal(String),
}

impl QueryError {
    /// The error's class, as logs and the query log name it.
    pub fn class(&self) -> &'static str {
        match self {
            QueryError::Invalid(_) => "invalid",
            QueryError::Forbidden(_) => "forbidden",
            QueryError::ReadOnly(_) => "read_only",
            QueryError::Failed(_) => "failed",
            QueryError::ResourcesExhausted(_) => "resources_exhausted",
            QueryError::ResultTooLarge(_) => "result_too_large",
            QueryError::Timeout(_) => "timeout",
            QueryError::Busy => "busy",
            QueryError::ShuttingDown => "shutting_down",
            QueryError::Unavailable(_) => "unavailable",
            QueryError::Internal(_) => "internal",
        }
    }

    /// The SQLSTATE a PostgreSQL client gets for this error (and from which the Flight SQL
    /// front end's gRPC status follows): one classification for every front end.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            QueryError::Invalid(message) => invalid_sqlstate(message),
            QueryError::Forbidden(_) => "42501",
            QueryError::ReadOnly(_) => "25006",
            QueryError::Failed(message) => {
                let message = message.to_lowercase();
                if message.contains("divide by zero") || message.contains("division by zero") {
                    "22012"
                } else if message.contains("overflow") {
                    "22003"
                } else {
                    "22000"
                }
            }
            QueryError::ResourcesExhausted(_) => "53200",
            QueryError::ResultTooLarge(_) => "54000",
            QueryError::Timeout(_) => "57014",
            QueryError::Busy => "53300",
            QueryError::ShuttingDown => "57P01",
            QueryError::Unavailable(_) => "58000",
            QueryError::Internal(_) => "XX000",
        }
    }

    /// Classifies an error DataFusion returned.
    pub fn from_datafusion(error: DataFusionError) -> Self {
        let message = error.strip_backtrace();
        match error.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::Configuration(_) => {
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
            DataFusionError::ArrowError(arrow, _) => match arrow.as_ref() {
                ArrowError::MemoryError(_) | ArrowError::OffsetOverflowError(_) => {
                    QueryError::ResourcesExhausted(message)
                }
                ArrowError::NotYetImplemented(_) => QueryError::Invalid(message),
                ArrowError::IoError(..) => QueryError::Unavailable(message),
                ArrowError::ExternalError(e) if from_a_dependency(e.as_ref()) => {
                    QueryError::Unavailable(message)
                }
                _ => QueryError::Failed(message),
            },
            // What DataFusion wraps as external is a dependency's failure when storage or files
            // are behind it, and the query's fault otherwise (an invalid regular expression).
            DataFusionError::External(e) if !from_a_dependency(e.as_ref()) => {
                QueryError::Failed(message)
            }
            // DataFusion reports bad arguments and values found while running as execution
            // errors (invalid regular expressions, unparsable timestamps, failed casts).
            DataFusionError::Execution(_) => QueryError::Failed(message),
            DataFusionError::ExecutionJoin(_) | DataFusionError::Internal(_) => {
                tracing::error!(error = %message, "query failed inside the engine");
                QueryError::Internal(message)
            }
            _ => QueryError::Unavailable(message),
        }
    }
}

/// Which kind of invalid statement `message` describes, as PostgreSQL would say it.
fn invalid_sqlstate(message: &str) -> &'static str {
    let lower = message.to_lowercase();
    if lower.contains("parsererror")
        || lower.contains("sql error")
        || lower.contains("syntax")
        || lower.contains("expected one sql statement")
        || lower.contains("the query is empty")
    {
        "42601"
    } else if lower.contains("table") && lower.contains("not found") {
        "42P01"
    } else if lower.contains("no field named") {
        "42703"
    } else if lower.contains("invalid function") {
        "42883"
    } else if lower.contains("more than the limit") || lower.contains("nested") {
        "54001"
    } else if lower.starts_with("not supported") {
        "0A000"
    } else {
        "42000"
    }
}

/// Whether an error, or one behind it, comes from storage: the object store, the file
/// system, a Parquet file, a Delta table.
fn from_a_dependency(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<std::io::Error>()
            || e.is::<tessera_storage::StorageError>()
            || e.is::<datafusion::parquet::errors::ParquetError>()
            || e.is::<datafusion::object_store::Error>()
        {
            return true;
        }
        if let Some(DataFusionError::ObjectStore(_) | DataFusionError::IoError(_)) =
            e.downcast_ref::<DataFusionError>()
        {
            return true;
        }
        current = e.source();
    }
    false
}

impl From<DataFusionError> for QueryError {
    fn from(error: DataFusionError) -> Self {
        QueryError::from_datafusion(error)
    }
}

/// Result with [`QueryError`].
pub type Result<T, E = QueryError> = std::result::Result<T, E>;
