//! Table maintenance in the background: every `interval`, each dataset's table and its
//! quarantine table get a pass of `Storage::maintain` (compaction of small files, a checkpoint
//! every so many commits, old log entries and unused files deleted) as the policy says is due.
//! The work runs on the query runtime, whose threads yield to the request threads, and never
//! takes a table's writer lock, so ingest goes on while it works.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::DatasetRef;
use tessera_storage::{MaintenancePolicy, MaintenanceReport};

use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;

/// How tables are maintained.
#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    /// How often every table is looked at; zero turns maintenance off (and with it compaction
    /// and checkpoints).
    pub interval: Duration,
    pub policy: MaintenancePolicy,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            policy: MaintenancePolicy::default(),
        }
    }
}

/// Maintains every table until the task is aborted.
pub(crate) async fn run(mesh: Arc<Mesh>, config: MaintenanceConfig) {
    let mut interval = tokio::time::interval(config.interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick fires at once: the first pass waits a whole interval.
    interval.tick().await;
    loop {
        interval.tick().await;
        if let Err(e) = mesh.maintain_tables(&config.policy).await {
            tracing::warn!(error = %e, "table maintenance");
        }
    }
}

impl Mesh {
    /// One pass of maintenance over every dataset's table and quarantine table; what each
    /// pass did, by table location. A table that fails is logged and the others go on.
    pub async fn maintain_tables(
        &self,
        policy: &MaintenancePolicy,
    ) -> Result<Vec<(String, MaintenanceReport)>> {
        let mut done = Vec::new();
        for record in self.catalog.datasets(None).await? {
            let reference: DatasetRef =
                format!("{}.{}.{}", record.domain, record.product, record.name)
                    .parse()
                    .map_err(|e| ServiceError::Internal(format!("dataset {}: {e}", record.name)))?;
            for location in [
                record.location.clone(),
                reference.quarantine().relative_path(),
            ] {
                let storage = self.storage.clone();
                let policy = policy.clone();
                let table = location.clone();
                let outcome = self
                    .offload_work(async move { storage.maintain(&table, &policy).await })
                    .await;
                match outcome {
                    Ok(Ok(report)) => {
                        if report.did_work() {
                            tracing::info!(
                                table = %location,
                                compacted = report.files_compacted,
                                written = report.files_written,
                                checkpoint = ?report.checkpoint,
                                log_entries_deleted = report.log_entries_deleted,
                                vacuumed = report.files_vacuumed,
                                "table maintained"
                            );
                        }
                        done.push((location, report));
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(table = %location, error = %e, "table maintenance failed")
                    }
                    Err(e) => {
                        tracing::warn!(table = %location, error = %e, "table maintenance stopped")
                    }
                }
            }
        }
        Ok(done)
    }
}
