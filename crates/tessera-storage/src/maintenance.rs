//! Table maintenance: what keeps a table that takes a commit every few hundred milliseconds as
//! fast to read as one loaded in bulk. Small files are compacted (delta-rs optimize, a commit
//! that only rearranges data), a checkpoint is written every so many commits (so opening the
//! table reads one Parquet file, not thousands of JSON commits), old log entries past the log
//! retention are deleted, and data files that no version within the file retention uses are
//! vacuumed.
//!
//! Maintenance never takes the table's writer lock: appends go on while it works, and its
//! commits are reconciled with theirs by delta-rs's conflict checker (a compaction conflicts
//! with no blind append). Commits write no checkpoints themselves, so none on the ingest path
//! pays for one: a task behind them does (see `crate::checkpoint`).

use std::num::NonZeroU64;
use std::time::Duration;

use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::vacuum::VacuumMode;

use crate::checkpoint::checkpoint_interval;
use crate::error::{Result, StorageError};
use crate::store::{Storage, publish};

/// When maintenance does what.
#[derive(Debug, Clone)]
pub struct MaintenancePolicy {
    /// Compact once at least this many files are under half the target size.
    pub min_small_files: usize,
    /// The size compacted files aim at.
    pub target_file_bytes: u64,
    /// Write a checkpoint once this many commits were made since the last one.
    pub checkpoint_every: i64,
    /// Keep log entries this long (older ones, covered by a checkpoint, are deleted).
    pub log_retention: Duration,
    /// Delete data files no longer in the table after this long (a reader of an older
    /// snapshot may still read them until then).
    pub file_retention: Duration,
}

impl Default for MaintenancePolicy {
    fn default() -> Self {
        Self {
            min_small_files: 16,
            target_file_bytes: 128 << 20,
            checkpoint_every: 10,
            log_retention: Duration::from_secs(24 * 3600),
            file_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What one pass of maintenance did to a table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaintenanceReport {
    /// Small files rewritten into `files_written` larger ones.
    pub files_compacted: u64,
    pub files_written: u64,
    /// The version a checkpoint was written at by this pass.
    pub checkpoint: Option<i64>,
    /// The table's newest checkpoint after the pass: this pass's, or one written behind the
    /// commits (see `crate::checkpoint`).
    pub newest_checkpoint: Option<i64>,
    /// Log entries deleted (commits older than the log retention, covered by a checkpoint).
    pub log_entries_deleted: usize,
    /// Data files deleted that no version within the file retention uses.
    pub files_vacuumed: usize,
}

impl MaintenanceReport {
    /// Whether the pass changed anything.
    pub fn did_work(&self) -> bool {
        self.files_compacted > 0
            || self.checkpoint.is_some()
            || self.log_entries_deleted > 0
            || self.files_vacuumed > 0
    }
}

impl Storage {
    /// One pass of maintenance over the table at `location`, as `policy` says is due. Nothing
    /// is done to a table that does not exist.
    pub async fn maintain(
        &self,
        location: &str,
        policy: &MaintenancePolicy,
    ) -> Result<MaintenanceReport> {
        let mut report = MaintenanceReport::default();
        let Some(mut table) = self.fresh(location).await? else {
            return Ok(report);
        };
        let failed = |e| StorageError::delta(location, e);

        // A table that says how big its files are (`delta.targetFileSize`, e.g. one a
        // transform merges at its end) is compacted to that size, not to the policy's.
        let (small, target_bytes) = {
            let snapshot = table.snapshot().map_err(failed)?;
            let target_bytes = snapshot
                .table_config()
                .target_file_size
                .map_or(policy.target_file_bytes, |size| size.get());
            let small = snapshot
                .log_data()
                .iter()
                .filter(|f| (f.size() as u64) < target_bytes / 2)
                .count();
            (small, target_bytes)
        };
        if small >= policy.min_small_files {
            let target = NonZeroU64::new(target_bytes.max(1)).expect("at least 1");
            let (optimized, metrics) = table
                .clone()
                .optimize()
                .with_target_size(target)
                .with_commit_properties(CommitProperties::default().with_create_checkpoint(false))
                .await
                .map_err(failed)?;
            report.files_compacted = metrics.num_files_removed;
            report.files_written = metrics.num_files_added;
            table = optimized;
            publish(&self.slot(location), &table);
        }

        // Commits usually checkpoint the table themselves (see `crate::checkpoint`); this pass
        // catches a table nobody committed to here since, and cleans up after any checkpoint.
        let slot = self.slot(location);
        let checkpointed = slot
            .checkpoint_and_reopen(&table, checkpoint_interval(&table, policy.checkpoint_every))
            .await?;
        report.checkpoint = checkpointed.written;
        report.newest_checkpoint = checkpointed.newest;
        let newest = checkpointed.newest;
        let mut cleaned_up = false;
        if let Some(checkpoint) = newest.filter(|c| Some(*c) > slot.cleaned_up_after()) {
            let cutoff =
                chrono::Utc::now().timestamp_millis() - policy.log_retention.as_millis() as i64;
            report.log_entries_deleted =
                deltalake::protocol::checkpoints::cleanup_expired_logs_for(
                    checkpoint as u64,
                    table.log_store().as_ref(),
                    cutoff,
                    None,
                )
                .await
                .map_err(failed)?;
            slot.cleaned_up(checkpoint);
            cleaned_up = true;
        }

        if report.files_compacted > 0 || cleaned_up {
            let retention =
                chrono::Duration::from_std(policy.file_retention).unwrap_or(chrono::Duration::MAX);
            let (vacuumed, metrics) = table
                .clone()
                .vacuum()
                .with_mode(VacuumMode::Lite)
                .with_retention_period(retention)
                .with_enforce_retention_duration(false)
                .with_commit_properties(CommitProperties::default().with_create_checkpoint(false))
                .await
                .map_err(failed)?;
            report.files_vacuumed = metrics.files_deleted.len();
            if report.files_vacuumed > 0 {
                publish(&self.slot(location), &vacuumed);
            }
        }
        Ok(report)
    }
}
