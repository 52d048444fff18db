//! Server configuration, declared once. The binary fills it from flags and environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use tessera_query::QueryConfig;
use tessera_spec::FileLimits;

/// Where Tessera keeps its state and how it serves it.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address the HTTP API listens on; port 0 picks a free port.
    pub http: SocketAddr,
    /// Directory for the embedded defaults: `metadata.db` and `tables/`.
    pub data_dir: PathBuf,
    /// Metadata store URL: `sqlite://PATH` or `postgres://...`; default SQLite in `data_dir`.
    pub metadata_url: Option<String>,
    /// Root for the Delta tables: a directory or an object store URL (`s3://bucket/prefix`);
    /// default `data_dir/tables`.
    pub storage_url: Option<String>,
    /// Object store options (e.g. `AWS_ENDPOINT_URL`), in addition to the environment.
    pub storage_options: HashMap<String, String>,
    /// Largest request body accepted (ingested files, applied folders).
    pub max_body_bytes: usize,
    /// How often the server looks for scheduled checks that are due; 0 turns scheduling off.
    pub check_tick_seconds: u64,
    /// How often the server looks for sources that are due to pull; zero turns sources off.
    pub source_tick: std::time::Duration,
    /// How often the server looks for transforms that are due to run (an interval passed, an
    /// upstream commit settled); zero runs transforms by hand only.
    pub transform_tick: std::time::Duration,
    /// How long an upstream commit waits to settle before the transforms it feeds run.
    pub transform_debounce: crate::transform_runs::Debounce,
    /// How many transforms of one `run` compute at once (those that do not feed each other);
    /// default 2 (each transform's query keeps its own memory limit, so several at once need a
    /// pool that holds them all; 1 runs them one after another).
    pub transform_concurrency: usize,
    /// A transform's merge into a table whose files hold at most this many bytes is gated as
    /// the table it leaves (built in memory: the rows the merge keeps, and the run's) and
    /// written by marking the replaced rows deleted (deletion vectors) beside the run's new
    /// file, rather than as a Delta merge, which rewrites every file holding a key it replaces
    /// — and a run's keys are in every file of a small table. Default 8 MiB; 0: always merge.
    pub transform_rewrite_max_bytes: u64,
    /// Longest a graceful shutdown waits for requests in flight (running queries are
    /// cancelled first) before the server stops anyway.
    pub shutdown_timeout_seconds: u64,
    /// How large a contract `apply` accepts.
    pub contract_limits: FileLimits,
    /// The audit log's MAC key, outside the metadata store; default `data_dir/audit.key`
    /// (made on the first start of a mesh). Instances sharing one store share this key.
    pub audit_key_file: Option<PathBuf>,
    pub query: QueryConfig,
    /// Streaming event ingest: the event log's bounds and how often it is committed.
    pub events: crate::events::EventConfig,
    /// Background table maintenance: compaction, checkpoints, log cleanup, vacuum.
    pub maintenance: crate::maintenance::MaintenanceConfig,
    /// Where OpenLineage events go, and the namespace they name Tessera's datasets in.
    pub openlineage: crate::openlineage::OpenLineageConfig,
    /// The PostgreSQL wire front end (off unless an address is set).
    pub postgres: crate::pgwire::PostgresConfig,
    /// The Arrow Flight SQL front end (off unless an address is set).
    pub flight: crate::flightsql::FlightConfig,
    /// TLS for every front end (HTTPS, PostgreSQL's `sslmode=require`, Flight SQL's
    /// `grpc+tls`); off by default.
    pub tls: Option<crate::tls::TlsConfig>,
}

impl ServerConfig {
    /// The embedded default under `data_dir`, listening on `http`.
    pub fn new(data_dir: impl Into<PathBuf>, http: SocketAddr) -> Self {
        Self {
            http,
            data_dir: data_dir.into(),
            metadata_url: None,
            storage_url: None,
            storage_options: HashMap::new(),
            max_body_bytes: 1 << 30,
            check_tick_seconds: 30,
            source_tick: std::time::Duration::from_secs(1),
            transform_tick: std::time::Duration::from_secs(1),
            transform_debounce: Default::default(),
            transform_concurrency: 2,
            transform_rewrite_max_bytes: 8 << 20,
            shutdown_timeout_seconds: 10,
            contract_limits: FileLimits::default(),
            audit_key_file: None,
            query: QueryConfig::default(),
            events: crate::events::EventConfig::default(),
            maintenance: crate::maintenance::MaintenanceConfig::default(),
            openlineage: crate::openlineage::OpenLineageConfig::default(),
            postgres: crate::pgwire::PostgresConfig::default(),
            flight: crate::flightsql::FlightConfig::default(),
            tls: None,
        }
    }

    pub fn metadata_url(&self) -> String {
        self.metadata_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("metadata.db").display()))
    }

    /// The audit key (see `audit_key_file`) and this instance's chain head, `data_dir/audit.head`.
    pub fn key_files(&self) -> tessera_catalog::KeyFiles {
        let mut files = tessera_catalog::KeyFiles::in_dir(&self.data_dir);
        if let Some(key) = &self.audit_key_file {
            files.key_file = key.clone();
        }
        files
    }

    pub fn storage_url(&self) -> String {
        self.storage_url
            .clone()
            .unwrap_or_else(|| self.data_dir.join("tables").display().to_string())
    }
}
