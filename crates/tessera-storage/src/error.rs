use deltalake::DeltaTableError;

/// Storage errors, each naming the table it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid storage location {location:?}: {reason}")]
    InvalidLocation { location: String, reason: String },
    #[error("table {table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: Box<DeltaTableError>,
    },
    /// The table exists with a schema the contract cannot be reconciled with.
    #[error("table {table}: the stored schema does not match the contract: {reason}")]
    SchemaMismatch { table: String, reason: String },
    /// Another writer committed the same batch concurrently.
    #[error("table {table}: a concurrent commit conflicts with this one; retry the batch")]
    Conflict { table: String },
    #[error("table {table}: {reason}")]
    Io { table: String, reason: String },
}

impl StorageError {
    pub(crate) fn delta(table: &str, source: DeltaTableError) -> Self {
        match source {
            DeltaTableError::Transaction { .. } | DeltaTableError::VersionAlreadyExists(_) => {
                StorageError::Conflict {
                    table: table.to_string(),
                }
            }
            other => StorageError::Delta {
                table: table.to_string(),
                source: Box::new(other),
            },
        }
    }
}

/// Result with [`StorageError`].
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
