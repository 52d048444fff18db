/// Metadata store errors.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The `--metadata` URL is not one Tessera can use.
    #[error("unsupported metadata URL {url:?}: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl { url: String },
    /// The store could not be reached or answered with an error.
    #[error("metadata store: {0}")]
    Database(#[from] sqlx::Error),
    /// The store holds a schema version newer than this binary knows.
    #[error(
        "metadata store is at schema version {found}, newer than this Tessera ({known}); upgrade Tessera"
    )]
    TooNew { found: i64, known: i64 },
    /// A secret that cannot be sealed or opened.
    #[error("{0}")]
    Secret(String),
    /// A key file or the audit chain head file outside the store cannot be used.
    #[error("{}: {message}", path.display())]
    KeyFile {
        path: std::path::PathBuf,
        message: String,
    },
}

/// Result with [`CatalogError`].
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;
