//! Connectors: where products' datasets pull their rows from — a PostgreSQL table or query, a
//! Kafka topic, a folder or object-store prefix of files — behind one trait.
//!
//! A [`Connector`] checks a source's options when the product is applied and opens a
//! [`SourceReader`] for it; the server asks the reader to [`pull`](SourceReader::pull) what is
//! new. A pull hands back rows (as a file's bytes, NDJSON, or Arrow) and what the commit must
//! record so that, after a crash, nothing is read twice or skipped: positions (Delta
//! application transactions committed with the rows, e.g. a partition's next offset or a
//! cursor's timestamp), or a batch id (a file's content hash). The reader asks [`Committed`] what
//! the dataset's table already holds, so the table — not the reader's memory — is the truth.
//!
//! This crate reads sources and nothing else: it never writes tables, validates rows against
//! contracts, or stores state; the server does all of that with what a pull returns. Adding a
//! connector is one module that implements [`Connector`] and one line in [`connectors`].

mod error;
mod files;
mod kafka;
mod postgres;

use async_trait::async_trait;
use bytes::Bytes;
use tessera_core::SourceSpec;

pub use error::{Result, SourceError};
pub use files::FilesConnector;
pub use kafka::KafkaConnector;
pub use postgres::PostgresConnector;

/// The connectors this build knows, by the name a source file gives in `connector`.
pub fn connectors() -> &'static [&'static dyn Connector] {
    &[&PostgresConnector, &KafkaConnector, &FilesConnector]
}

/// The connector named `kind`.
pub fn connector(kind: &str) -> Option<&'static dyn Connector> {
    connectors().iter().copied().find(|c| c.kind() == kind)
}

/// A problem with a source's options: where under the source document (a JSON pointer such as
/// `/postgres/cursor`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionProblem {
    pub pointer: String,
    pub message: String,
}

impl OptionProblem {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

/// One kind of source.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The name a source file gives in `connector`.
    fn kind(&self) -> &'static str;

    /// Whether its sources must name a secret (a connection URL, a password).
    fn needs_secret(&self) -> bool;

    /// What is wrong with a source's options, checked when its product is applied (without
    /// connecting anywhere). `columns` are the dataset's, as its contract declares them.
    fn check(&self, source: &SourceSpec, columns: &[String]) -> Vec<OptionProblem>;

    /// What a source reads, named as OpenLineage names datasets: `(namespace, name)`, e.g.
    /// `("postgres://db:5432", "shop.public.orders")` (never a credential). `None` when it
    /// cannot be told (a query rather than a table, a secret that is no URL).
    fn origin(
        &self,
        source: &SourceSpec,
        secret: Option<&str>,
        context: &OpenContext,
    ) -> Option<(String, String)>;

    /// A reader for one source. `secret` is the credential the source names, opened.
    async fn open(
        &self,
        source: &SourceSpec,
        secret: Option<String>,
        context: &OpenContext,
    ) -> Result<Box<dyn SourceReader>>;
}

/// What a reader is opened with besides its source.
#[derive(Debug, Clone)]
pub struct OpenContext {
    /// The server's data directory: relative folders of the files connector are under it.
    pub data_dir: std::path::PathBuf,
    /// The dataset's columns, as its contract declares them: what a reader selects.
    pub columns: Vec<String>,
}

/// What a dataset's table already holds of a source, asked by a reader before it reads.
#[async_trait]
pub trait Committed: Send + Sync {
    /// The version of Delta application transaction `app_id` in the table, if it has one.
    async fn position(&self, app_id: &str) -> Result<Option<i64>>;
    /// Whether a batch with this id is in the table.
    async fn has_batch(&self, batch_id: &str) -> Result<bool>;
}

/// The rows of one pull, as read.
#[derive(Debug, Clone)]
pub enum PulledRows {
    /// A whole file: its bytes, its format (`csv`, `ndjson`, `parquet`) if known, and its name.
    File {
        bytes: Bytes,
        format: Option<String>,
        name: String,
    },
    /// One JSON object a line, every value as the origin gave it.
    Ndjson(Bytes),
}

/// One pull: rows and what their commit records.
#[derive(Debug, Clone)]
pub struct Pull {
    pub rows: PulledRows,
    /// How many rows were read (before validation).
    pub count: usize,
    /// Delta application transactions the commit records with the rows: `(app id, version)`.
    pub positions: Vec<(String, i64)>,
    /// A batch id the commit carries instead (exactly once by id), e.g. a file's content hash.
    pub batch_id: Option<String>,
    /// Merge the rows by these columns (a re-read row replaces itself) instead of appending.
    pub merge_on: Option<Vec<String>>,
    /// The position after this pull, for people: an offset, a timestamp, a file name.
    pub describe: String,
    /// How far behind the origin the source is after this pull, where the connector can tell.
    pub lag_seconds: Option<f64>,
    /// What was read but is no row at all (a record whose value is not a JSON object), each
    /// with its place among what was read and why: quarantined with the pull, never dropped.
    pub unreadable: Vec<(usize, String)>,
    /// More is waiting now: the server pulls again at once.
    pub more: bool,
}

/// A source opened for pulling; it may keep state between pulls (connections, what it saw),
/// but what is committed is always read back through [`Committed`].
#[async_trait]
pub trait SourceReader: Send {
    /// Reads what is new after what `committed` says the table holds, at most about
    /// `max_rows` rows; `None` when there is nothing new.
    async fn pull(&mut self, committed: &dyn Committed, max_rows: usize) -> Result<Option<Pull>>;
}

/// The Delta application transaction id of a source's position `part` (e.g. `cursor`, `p3`).
pub fn position_id(source: &str, part: &str) -> String {
    format!("tessera-source:{source}:{part}")
}
