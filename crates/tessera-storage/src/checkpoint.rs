//! Checkpoints written behind the commits, and the open table read again from them.
//!
//! delta-rs keeps an open table's files as one Arrow batch per commit replayed on top of the
//! checkpoint it was opened from, and every scan replays those batches again (delta-kernel's log
//! replay, seeded from memory): planning a scan costs about 0.1–0.2 ms more for every commit
//! since. A table taking commits in a long-running server would plan slower and slower, and a
//! checkpoint written later does not help a table already open (bringing it up to date seeds
//! from its own batches again). So once a table's current version is `interval` commits past the
//! checkpoint it was read from, a task in the background writes a checkpoint (if none newer is
//! there) and opens the table again from it — one batch — and makes that current. The commit
//! that crossed the line waits for none of it; readers keep the table they hold.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::DeltaTable;
use object_store::ObjectStoreExt;
use tokio_util::task::TaskTracker;

use crate::error::{Result, StorageError};
use crate::store::{Slot, publish, version_of};

/// Commits between checkpoints when neither the table (`delta.checkpointInterval`) nor the
/// storage ([`crate::Storage::with_checkpoint_every`]) says: the Delta protocol's reference
/// implementation's default (delta-rs's is 100).
pub const DEFAULT_CHECKPOINT_INTERVAL: i64 = 10;

/// How long a table whose checkpoint could not be written is left alone before the next try.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

/// Where a table's open snapshot stands against its checkpoints.
#[derive(Debug)]
pub(crate) struct CheckpointState {
    /// Commits between checkpoints of a table that does not say.
    pub(crate) every: i64,
    /// The checkpoint version the open table was read from (`None`: read from commits alone, or
    /// not known yet).
    read_from: Option<i64>,
    /// A task is writing a checkpoint or opening the table again.
    running: bool,
    /// The last try failed: none before this.
    retry_after: Option<Instant>,
    /// The newest checkpoint whose older log entries maintenance has cleaned up after.
    pub(crate) cleaned_up_after: Option<i64>,
    /// The storage's background tasks, which a shutdown waits for
    /// ([`crate::Storage::finish_background_work`]); once closed, no checkpoint starts.
    pub(crate) tasks: TaskTracker,
}

impl Default for CheckpointState {
    fn default() -> Self {
        Self {
            every: DEFAULT_CHECKPOINT_INTERVAL,
            read_from: None,
            running: false,
            retry_after: None,
            cleaned_up_after: None,
            tasks: TaskTracker::new(),
        }
    }
}

/// What [`Slot::checkpoint_and_reopen`] found and did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Checkpointed {
    /// The version of the checkpoint it wrote, if it wrote one.
    pub(crate) written: Option<i64>,
    /// The table's newest checkpoint afterwards.
    pub(crate) newest: Option<i64>,
}

/// The table's checkpoint interval: `delta.checkpointInterval` when it sets one, else `every`.
pub(crate) fn checkpoint_interval(table: &DeltaTable, every: i64) -> i64 {
    table
        .snapshot()
        .ok()
        .and_then(|s| {
            s.metadata()
                .configuration()
                .get("delta.checkpointInterval")
                .and_then(|v| v.parse::<i64>().ok())
        })
        .filter(|n| *n > 0)
        .unwrap_or(every)
}

/// The version of the table's newest checkpoint, from `_delta_log/_last_checkpoint`.
pub(crate) async fn last_checkpoint(table: &DeltaTable) -> Option<i64> {
    let store = table.log_store();
    let path = store.log_path().clone().join("_last_checkpoint");
    let bytes = store
        .object_store(None)
        .get(&path)
        .await
        .ok()?
        .bytes()
        .await
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("version")?
        .as_i64()
}

impl Slot {
    /// Records the checkpoint a table just opened from storage was read from.
    pub(crate) fn opened_from(&self, checkpoint: Option<i64>) {
        self.checkpoints().read_from = checkpoint;
    }

    /// Called with `table` just made current: when it is [`checkpoint_interval`] commits past
    /// the checkpoint it was read from, starts a task that checkpoints it and opens it again.
    pub(crate) fn checkpoint_if_due(self: &Arc<Self>, table: &DeltaTable) {
        let Some(version) = version_of(table) else {
            return;
        };
        {
            let mut state = self.checkpoints();
            let interval = checkpoint_interval(table, state.every);
            let due = version - state.read_from.unwrap_or(-1) >= interval
                && !state.running
                && !state.tasks.is_closed()
                && state.retry_after.is_none_or(|at| Instant::now() >= at);
            if !due {
                return;
            }
            // A table used outside a Tokio runtime (a blocking caller) is left as it is.
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            state.running = true;
            let slot = self.clone();
            let table = table.clone();
            let tasks = state.tasks.clone();
            tasks.spawn_on(
                async move {
                    let outcome = slot.checkpoint_and_reopen(&table, interval).await;
                    let mut state = slot.checkpoints();
                    state.running = false;
                    if let Err(e) = outcome {
                        tracing::warn!(table = %table.log_store().root_url(), error = %e,
                        "could not write the table's checkpoint; trying again later");
                        state.retry_after = Some(Instant::now() + RETRY_AFTER_FAILURE);
                    }
                },
                &runtime,
            );
        }
    }

    /// Writes a checkpoint of `table` when its newest is `interval` or more commits behind, and
    /// opens the table again from the newest checkpoint when the one it was read from is older,
    /// making that current. Says what it found and did.
    pub(crate) async fn checkpoint_and_reopen(
        self: &Arc<Self>,
        table: &DeltaTable,
        interval: i64,
    ) -> Result<Checkpointed> {
        let location = table.log_store().root_url().to_string();
        let failed = |e| StorageError::delta(&location, e);
        let Some(version) = version_of(table) else {
            return Ok(Checkpointed::default());
        };
        let mut newest = last_checkpoint(table).await;
        let mut written = None;
        if version - newest.unwrap_or(-1) >= interval {
            // A task of its own, which the storage's shutdown waits for even when the caller
            // (maintenance) is aborted: delta-kernel blocks a thread on a task of the runtime
            // while it writes, and panics if the runtime stops under it.
            let tasks = self.checkpoints().tasks.clone();
            let writing = table.clone();
            tasks
                .spawn(async move {
                    deltalake::protocol::checkpoints::create_checkpoint(&writing, None).await
                })
                .await
                .map_err(|e| failed(deltalake::DeltaTableError::Generic(e.to_string())))?
                .map_err(failed)?;
            newest = Some(version);
            written = Some(version);
        }
        if newest > self.checkpoints().read_from {
            let mut reopened = DeltaTable::new(table.log_store());
            reopened.load().await.map_err(failed)?;
            // Commits made meanwhile are replayed on top; one that lands in between two tries
            // three times running leaves the table as it is until the next commit.
            for _ in 0..3 {
                if publish(self, &reopened) {
                    self.opened_from(newest);
                    tracing::debug!(table = %location, checkpoint = ?newest,
                        version = ?version_of(&reopened), "table opened again from its checkpoint");
                    break;
                }
                reopened.update_incremental(None).await.map_err(failed)?;
            }
        }
        Ok(Checkpointed { written, newest })
    }

    fn checkpoints(&self) -> std::sync::MutexGuard<'_, CheckpointState> {
        self.checkpoints.lock().expect("checkpoint lock poisoned")
    }

    /// The newest checkpoint maintenance has cleaned up the log after.
    pub(crate) fn cleaned_up_after(&self) -> Option<i64> {
        self.checkpoints().cleaned_up_after
    }

    pub(crate) fn cleaned_up(&self, checkpoint: i64) {
        self.checkpoints().cleaned_up_after = Some(checkpoint);
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;

    use super::*;
    use crate::store::version_of;
    use crate::test_support::storage_with_table;

    #[tokio::test]
    async fn a_table_taking_commits_is_checkpointed_behind_them_and_opened_from_the_checkpoint() {
        let location = "shop/orders/lines";
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let (_dir, storage) = storage_with_table(location, &schema).await;
        let append = |n: i64| {
            let batch =
                RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![n]))])
                    .unwrap();
            storage.append(location, vec![batch], None)
        };
        for n in 0..25 {
            append(n).await.unwrap();
        }
        // Versions 0 (the table made) to 25; checkpoints are due at 9 and 19 (every 10 commits).
        let slot = storage.slot(location);
        let deadline = Instant::now() + Duration::from_secs(30);
        let opened_from = loop {
            let read_from = {
                let state = slot.checkpoints();
                (!state.running).then_some(state.read_from).flatten()
            };
            if read_from >= Some(19) {
                break read_from;
            }
            assert!(
                Instant::now() < deadline,
                "no checkpoint behind the commits"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let table = storage.fresh(location).await.unwrap().unwrap();
        assert_eq!(last_checkpoint(&table).await, opened_from);
        assert_eq!(version_of(&table), Some(25), "the commits since are on top");
        // The table opened again holds every row, and takes the next commit as before.
        append(25).await.unwrap();
        let table = storage.fresh(location).await.unwrap().unwrap();
        let rows: i64 = table
            .snapshot()
            .unwrap()
            .log_data()
            .iter()
            .map(|f| f.num_records().unwrap_or(0) as i64)
            .sum();
        assert_eq!((version_of(&table), rows), (Some(26), 26));
    }

    /// A shutdown waits for the checkpoint under way (the commit that made it due returned
    /// before it was written) and starts none after: once `finish_background_work` says all is
    /// done, none is being written and one is there, and commits after it make no new one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shutdown_finishes_the_checkpoint_under_way_and_starts_none_after() {
        let location = "shop/orders/lines";
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let dir = tempfile::tempdir().unwrap();
        let storage = crate::Storage::new(dir.path().to_str().unwrap(), Default::default())
            .unwrap()
            .with_checkpoint_every(1);
        storage
            .ensure_table(location, &schema, "lines", None)
            .await
            .unwrap();
        let append = |n: i64| {
            let batch =
                RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![n]))])
                    .unwrap();
            storage.append(location, vec![batch], None)
        };
        append(0).await.unwrap();
        assert!(
            storage
                .finish_background_work(Duration::from_secs(30))
                .await
        );
        assert!(!storage.slot(location).checkpoints().running);
        let table = storage.fresh(location).await.unwrap().unwrap();
        let written = last_checkpoint(&table).await;
        assert!(written.is_some(), "no checkpoint was written");
        for n in 1..4 {
            append(n).await.unwrap();
        }
        let table = storage.fresh(location).await.unwrap().unwrap();
        assert_eq!(version_of(&table), Some(4));
        assert_eq!(
            last_checkpoint(&table).await,
            written,
            "a checkpoint after the shutdown"
        );
    }
}
