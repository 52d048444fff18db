//! Datasets as Delta Lake tables (delta-rs) on object storage: local files by default, S3 and
//! other object stores by URL.
//!
//! This crate creates tables with a contract's schema, appends batches in one commit each with
//! an idempotent transaction id (a batch sent twice is written once), makes local commits
//! durable before they are acknowledged (file and directory fsync, see [`durable`]), and keeps
//! each table open with a fresh snapshot for queries, and maintains tables (compaction,
//! checkpoints, log cleanup and vacuum, see [`MaintenancePolicy`]) without holding up appends.
//! Rows replaced by key are marked deleted with Delta deletion vectors rather than written again
//! (`Storage::replace_keys_sequenced`). It knows nothing of contracts, rules or SQL: callers hand
//! it Arrow schemas and record batches.

mod changes;
mod checkpoint;
mod deletion;
pub mod durable;
mod error;
mod maintenance;
mod parquet_properties;
mod replace;
mod store;
#[cfg(test)]
mod test_support;

pub use checkpoint::DEFAULT_CHECKPOINT_INTERVAL;
pub use error::{Result, StorageError};
pub use maintenance::{MaintenancePolicy, MaintenanceReport};
pub use replace::rows_without_keys;
pub use store::{AppendOutcome, DataFiles, Storage, TableInfo};
