use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::execution::SessionState;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{StructType, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, TableProperty};
use url::Url;

use crate::durable::SyncedLocalStore;
use crate::error::{Result, StorageError};
use crate::parquet_properties;

/// Files past which [`Storage::scan_provider`] stops adding up a table's size.
pub const SIZE_COUNTED_FILES: usize = 1_000;

/// The data files a table's snapshot reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataFiles {
    pub count: usize,
    pub bytes: u64,
    /// The rows they hold, from the log's statistics (`None` when a file has none).
    pub rows: Option<u64>,
}

/// The files a table merged at its end is held in ([`Storage::size_files_for_merges`]): a merge
/// of its newest rows rewrites about one of them.
pub const MERGED_TABLE_FILES: u64 = 16;
/// The smallest file size [`Storage::size_files_for_merges`] sets: below it a file's fixed costs
/// (its footer, a request to the store) outweigh what a smaller rewrite saves.
pub const MERGED_FILE_BYTES_MIN: u64 = 256 << 10;
/// The largest, Delta's own default: a big table is not cut finer than any other.
pub const MERGED_FILE_BYTES_MAX: u64 = 128 << 20;

/// The file size for a table of `bytes` merged at its end: a sixteenth of it, rounded up to a
/// power of two (so the size moves once per doubling of the table, not on every merge).
fn merged_file_bytes(bytes: u64) -> u64 {
    (bytes / MERGED_TABLE_FILES)
        .next_power_of_two()
        .clamp(MERGED_FILE_BYTES_MIN, MERGED_FILE_BYTES_MAX)
}

/// How long Delta keeps transaction ids, i.e. how long a retried batch is recognised.
const TXN_RETENTION: &str = "interval 30 days";

/// What an append did.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendOutcome {
    /// The table version of the commit; `None` when nothing was written.
    pub version: Option<i64>,
    /// The transaction id was already committed: nothing was written this time.
    pub duplicate: bool,
}

/// A table as the rest of Tessera sees it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Relative to the storage root, e.g. `marketplace/provenance/sales`.
    pub location: String,
    pub url: Url,
    pub version: Option<i64>,
    pub schema: SchemaRef,
    /// Data files in the latest version, and their bytes.
    pub files: usize,
    pub bytes: u64,
}

/// One table: writers take `writer` in turn; readers clone `current` (a cheap snapshot clone).
#[derive(Default)]
pub(crate) struct Slot {
    pub(crate) writer: tokio::sync::Mutex<()>,
    current: RwLock<Option<DeltaTable>>,
    positions: Mutex<Option<KnownPositions>>,
    /// When the table's log was last listed for new commits (see [`LOG_LISTING_TRUSTED`]).
    log_listed_at: Mutex<Option<std::time::Instant>>,
    pub(crate) checkpoints: Mutex<crate::checkpoint::CheckpointState>,
    /// Where the rows of a table replaced by key lie (see [`crate::deletion::KeyLayout`]).
    pub(crate) key_layout: Mutex<Option<crate::deletion::KeyLayout>>,
}

/// How long the table's log listed for new commits is trusted, in between asking only whether
/// the next commit's file exists. Delta commits are numbered one after the other, so a missing
/// `<version + 1>.json` means nothing was committed since (one lookup, where a listing by
/// delta-kernel costs a millisecond locally, a LIST request on object storage); but a cleanup of
/// the log removes old commit files, so a snapshot older than the log's retention (30 days)
/// could miss commits that way: the log is listed again this often.
const LOG_LISTING_TRUSTED: std::time::Duration = std::time::Duration::from_secs(30);

/// How long positions read from a table's log are trusted at the same table version. Delta
/// drops a transaction id once it is older than the table's retention (30 days for Tessera's):
/// read again this often, an expired one is forgotten as it would be.
const POSITIONS_TRUSTED: std::time::Duration = std::time::Duration::from_secs(600);

/// The versions of application transactions (streams' positions, batch ids) known at one table
/// version. delta-kernel replays the whole log since the last checkpoint for every app id it is
/// asked about, and positions are asked for on every transform run, source pull and batch:
/// each is read once per table version, and a commit made here carries them forward.
struct KnownPositions {
    version: i64,
    read_at: std::time::Instant,
    versions: HashMap<String, Option<i64>>,
}

impl Slot {
    fn log_listed_recently(&self) -> bool {
        let listed = self
            .log_listed_at
            .lock()
            .expect("log listing lock poisoned");
        listed.is_some_and(|at| at.elapsed() < LOG_LISTING_TRUSTED)
    }

    fn log_listed(&self) {
        *self
            .log_listed_at
            .lock()
            .expect("log listing lock poisoned") = Some(std::time::Instant::now());
    }

    fn known_position(&self, version: i64, app_id: &str) -> Option<Option<i64>> {
        let known = self.positions.lock().expect("positions lock poisoned");
        known
            .as_ref()
            .filter(|k| k.version == version && k.read_at.elapsed() < POSITIONS_TRUSTED)
            .and_then(|k| k.versions.get(app_id).copied())
    }

    fn learn_position(&self, version: i64, app_id: &str, position: Option<i64>) {
        let mut known = self.positions.lock().expect("positions lock poisoned");
        // Read at another version, or too long ago: what is known starts again from this read.
        let stale =
            |k: &KnownPositions| k.version != version || k.read_at.elapsed() >= POSITIONS_TRUSTED;
        if known.as_ref().is_none_or(stale) {
            *known = Some(KnownPositions {
                version,
                read_at: std::time::Instant::now(),
                versions: HashMap::new(),
            });
        }
        if let Some(k) = known.as_mut() {
            k.versions.insert(app_id.to_string(), position);
        }
    }

    /// A commit made here took the table from version `before` to `after`, setting
    /// `positions`: what was known at `before` still holds but for them. When another writer
    /// committed in between (`after` is not the next version), nothing is carried forward.
    /// Makes `table`, just committed through this slot on top of version `before` with
    /// `positions`, its current snapshot, and says what was committed.
    pub(crate) fn committed(
        self: &Arc<Self>,
        table: &DeltaTable,
        before: Option<i64>,
        positions: &[(&str, i64)],
    ) -> AppendOutcome {
        let version = version_of(table);
        publish(self, table);
        self.committed_positions(before, version, positions);
        AppendOutcome {
            version,
            duplicate: false,
        }
    }

    fn committed_positions(
        &self,
        before: Option<i64>,
        after: Option<i64>,
        positions: &[(&str, i64)],
    ) {
        let mut known = self.positions.lock().expect("positions lock poisoned");
        match (known.as_mut(), before, after) {
            (Some(k), Some(before), Some(after)) if k.version == before && after == before + 1 => {
                k.version = after;
                for (id, version) in positions {
                    k.versions.insert(id.to_string(), Some(*version));
                }
            }
            _ => *known = None,
        }
    }
}

/// All tables under one root URL (a local directory or an object store prefix).
pub struct Storage {
    root: Url,
    options: HashMap<String, String>,
    /// Set for local roots: their writes go through [`SyncedLocalStore`].
    local_root: Option<PathBuf>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// Commits between two checkpoints of a table that does not set its own.
    checkpoint_every: i64,
    /// Work started behind the commits (checkpoints), which a shutdown waits for.
    background: tokio_util::task::TaskTracker,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("root", &self.root.as_str())
            .finish()
    }
}

impl Storage {
    /// Opens a root: a local directory (created if missing) or an object store URL such as
    /// `s3://bucket/prefix`. `options` are object store options (e.g. `AWS_ENDPOINT_URL`);
    /// the environment is read too.
    pub fn new(root: &str, options: HashMap<String, String>) -> Result<Self> {
        let invalid = |reason: String| StorageError::InvalidLocation {
            location: root.to_string(),
            reason,
        };
        let (url, local_root) = if root.contains("://") && !root.starts_with("file://") {
            let mut url = Url::parse(root).map_err(|e| invalid(e.to_string()))?;
            if !url.path().ends_with('/') {
                url.set_path(&format!("{}/", url.path()));
            }
            (url, None)
        } else {
            let path = PathBuf::from(root.strip_prefix("file://").unwrap_or(root));
            std::fs::create_dir_all(&path).map_err(|e| invalid(e.to_string()))?;
            let path = path.canonicalize().map_err(|e| invalid(e.to_string()))?;
            let url = Url::from_directory_path(&path)
                .map_err(|_| invalid("not an absolute directory path".into()))?;
            (url, Some(path))
        };
        Ok(Self {
            root: url,
            options,
            local_root,
            slots: Mutex::new(HashMap::new()),
            checkpoint_every: crate::checkpoint::DEFAULT_CHECKPOINT_INTERVAL,
            background: tokio_util::task::TaskTracker::new(),
        })
    }

    /// Starts no more work behind the commits and waits up to `within` for what is under way (a
    /// checkpoint being written) to finish; says whether it all did. Called once at shutdown,
    /// before the runtime stops: a checkpoint cut off there would be left half written.
    pub async fn finish_background_work(&self, within: std::time::Duration) -> bool {
        self.background.close();
        tokio::time::timeout(within, self.background.wait())
            .await
            .is_ok()
    }

    /// Checkpoints a table every `commits` commits (at least one) unless it sets its own
    /// `delta.checkpointInterval` (see [`crate::checkpoint`]).
    pub fn with_checkpoint_every(mut self, commits: i64) -> Self {
        self.checkpoint_every = commits.max(1);
        self
    }

    /// The root URL, ending in `/`.
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The URL of a table at a location relative to the root.
    pub fn table_url(&self, location: &str) -> Result<Url> {
        self.root
            .join(&format!("{}/", location.trim_end_matches('/')))
            .map_err(|e| StorageError::InvalidLocation {
                location: location.to_string(),
                reason: e.to_string(),
            })
    }

    pub(crate) fn slot(&self, location: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().expect("slot map lock poisoned");
        slots
            .entry(location.to_string())
            .or_insert_with(|| {
                let slot = Slot::default();
                {
                    let mut checkpoints =
                        slot.checkpoints.lock().expect("checkpoint lock poisoned");
                    checkpoints.every = self.checkpoint_every;
                    checkpoints.tasks = self.background.clone();
                }
                Arc::new(slot)
            })
            .clone()
    }

    fn builder(&self, url: &Url) -> Result<DeltaTableBuilder> {
        let builder = DeltaTableBuilder::from_url(url.clone())
            .map_err(|e| StorageError::delta(url.as_str(), e))?;
        Ok(match &self.local_root {
            Some(root) => builder
                .with_storage_backend(Arc::new(SyncedLocalStore::new(root.clone())), url.clone()),
            None => builder.with_storage_options(self.options.clone()),
        })
    }

    /// Loads the latest version of a table; `None` when there is no table there yet.
    async fn load(&self, location: &str) -> Result<(DeltaTable, bool)> {
        let url = self.table_url(location)?;
        if let Some(root) = &self.local_root {
            // delta-rs wants a local table's directory to exist before it looks inside.
            let dir = root.join(location);
            std::fs::create_dir_all(&dir).map_err(|e| StorageError::Io {
                table: location.to_string(),
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let mut table = self
            .builder(&url)?
            .build()
            .map_err(|e| StorageError::delta(location, e))?;
        // Look before loading: loading where there is no table yet makes delta-kernel log an
        // error, and a table that does not exist yet is the normal case when creating one.
        let exists = table
            .log_store()
            .is_delta_table_location()
            .await
            .map_err(|e| StorageError::delta(location, e))?;
        if !exists {
            return Ok((table, false));
        }
        match table.load().await {
            Ok(()) => Ok((table, true)),
            Err(DeltaTableError::NotATable(_)) => Ok((table, false)),
            Err(e) => Err(StorageError::delta(location, e)),
        }
    }

    /// The cached table brought up to date with its latest commit.
    pub(crate) async fn fresh(&self, location: &str) -> Result<Option<DeltaTable>> {
        let slot = self.slot(location);
        let cached = slot.current.read().expect("table lock poisoned").clone();
        let table = match cached {
            Some(mut table) => {
                if !slot.log_listed_recently() || next_commit_exists(location, &table).await? {
                    table
                        .update_incremental(None)
                        .await
                        .map_err(|e| StorageError::delta(location, e))?;
                    slot.log_listed();
                }
                table
            }
            None => match self.load(location).await? {
                (table, true) => {
                    slot.log_listed();
                    slot.opened_from(crate::checkpoint::last_checkpoint(&table).await);
                    table
                }
                (_, false) => return Ok(None),
            },
        };
        publish(&slot, &table);
        Ok(Some(table))
    }

    /// Creates the table with `schema` if it does not exist. If it exists, columns the schema
    /// adds are added to the table; any other difference is an error.
    pub async fn ensure_table(
        &self,
        location: &str,
        schema: &Schema,
        name: &str,
        description: Option<&str>,
    ) -> Result<TableInfo> {
        let slot = self.slot(location);
        let _writer = slot.writer.lock().await;
        let wanted: StructType =
            schema
                .try_into_kernel()
                .map_err(|e| StorageError::SchemaMismatch {
                    table: location.to_string(),
                    reason: e.to_string(),
                })?;
        let table = match self.fresh(location).await? {
            Some(table) => {
                let existing = table
                    .snapshot()
                    .map_err(|e| StorageError::delta(location, e))?
                    .snapshot()
                    .arrow_schema();
                let missing = reconcile(location, &existing, schema)?;
                if missing.is_empty() {
                    table
                } else {
                    let fields: Vec<_> = wanted
                        .fields()
                        .filter(|f| missing.contains(f.name()))
                        .cloned()
                        .collect();
                    table
                        .add_columns()
                        .with_fields(fields)
                        .await
                        .map_err(|e| StorageError::delta(location, e))?
                }
            }
            None => {
                let (table, _) = self.load(location).await?;
                let mut create = table
                    .create()
                    .with_columns(wanted.fields().cloned())
                    .with_table_name(name)
                    .with_configuration_property(
                        TableProperty::SetTransactionRetentionDuration,
                        Some(TXN_RETENTION),
                    );
                if let Some(description) = description {
                    create = create.with_comment(description);
                }
                create.await.map_err(|e| StorageError::delta(location, e))?
            }
        };
        publish(&slot, &table);
        self.info(location, &table)
    }

    fn info(&self, location: &str, table: &DeltaTable) -> Result<TableInfo> {
        let snapshot = table
            .snapshot()
            .map_err(|e| StorageError::delta(location, e))?;
        let (files, bytes) = snapshot
            .log_data()
            .iter()
            .fold((0, 0), |(n, b), f| (n + 1, b + f.size().max(0) as u64));
        Ok(TableInfo {
            location: location.to_string(),
            url: self.table_url(location)?,
            version: Some(snapshot.version() as i64),
            schema: snapshot.snapshot().arrow_schema(),
            files,
            bytes,
        })
    }

    /// The table's schema and version, or `None` if it does not exist.
    pub async fn table_info(&self, location: &str) -> Result<Option<TableInfo>> {
        match self.fresh(location).await? {
            Some(table) => Ok(Some(self.info(location, &table)?)),
            None => Ok(None),
        }
    }

    /// The table's latest version, or `None` if it does not exist: [`Storage::table_info`]'s
    /// version without adding up the table's files.
    pub async fn version(&self, location: &str) -> Result<Option<i64>> {
        Ok(self.fresh(location).await?.and_then(|t| version_of(&t)))
    }

    /// Appends `batches` in one commit. With `txn_id`, the commit carries a Delta application
    /// transaction: if that id was committed before, nothing is written and the outcome says
    /// `duplicate`. On local storage the commit is on disk when this returns.
    pub async fn append(
        &self,
        location: &str,
        batches: Vec<RecordBatch>,
        txn_id: Option<&str>,
    ) -> Result<AppendOutcome> {
        let slot = self.slot(location);
        let _writer = slot.writer.lock().await;
        let table = self.existing(location).await?;
        let before = version_of(&table);
        if let Some(id) = txn_id
            && txn_version(&slot, location, &table, &txn_app_id(id))
                .await?
                .is_some()
        {
            return Ok(AppendOutcome {
                version: None,
                duplicate: true,
            });
        }
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(AppendOutcome {
                version: None,
                duplicate: false,
            });
        }
        // Checkpoints are written by maintenance (`maintenance.rs`), off the ingest path.
        let mut properties = CommitProperties::default().with_create_checkpoint(false);
        if let Some(id) = txn_id {
            properties =
                properties.with_application_transaction(Transaction::new(txn_app_id(id), 1));
        }
        let table = parquet_properties::encoded_write(table, batches)
            .map_err(|e| StorageError::delta(location, e))?
            .with_save_mode(SaveMode::Append)
            .with_commit_properties(properties)
            .await
            .map_err(|e| StorageError::delta(location, e))?;
        let batch_app_id = txn_id.map(txn_app_id);
        let set: Vec<(&str, i64)> = batch_app_id.iter().map(|id| (id.as_str(), 1)).collect();
        Ok(slot.committed(&table, before, &set))
    }

    /// The positions a stream has committed to the table: for each of `app_ids`, the version
    /// of its Delta application transaction (e.g. the event log's sequence number), if any.
    pub async fn sequences(&self, location: &str, app_ids: &[&str]) -> Result<Vec<Option<i64>>> {
        let Some(table) = self.fresh(location).await? else {
            return Ok(vec![None; app_ids.len()]);
        };
        let slot = self.slot(location);
        let mut out = Vec::with_capacity(app_ids.len());
        for id in app_ids {
            out.push(txn_version(&slot, location, &table, id).await?);
        }
        Ok(out)
    }

    /// Appends `batches` in one commit that also records each `(app_id, version)` as a Delta
    /// application transaction: a stream's position, committed with its rows, so that after
    /// a crash [`Storage::sequences`] says exactly what is in the table. Without rows the
    /// commit holds the positions alone. On local storage the commit is on disk when this
    /// returns.
    pub async fn append_sequenced(
        &self,
        location: &str,
        batches: Vec<RecordBatch>,
        positions: &[(&str, i64)],
    ) -> Result<AppendOutcome> {
        self.write_sequenced(location, batches, positions, SaveMode::Append, None)
            .await
    }

    /// Replaces every row of the table with `batches` (none: the table is left empty) in one
    /// commit that also records each `(app_id, version)` as a Delta application transaction
    /// (see [`Storage::append_sequenced`]): a full refresh. Readers of older versions keep
    /// their files until vacuum.
    pub async fn replace_sequenced(
        &self,
        location: &str,
        batches: Vec<RecordBatch>,
        positions: &[(&str, i64)],
    ) -> Result<AppendOutcome> {
        self.write_sequenced(location, batches, positions, SaveMode::Overwrite, None)
            .await
    }

    /// Replaces the table's rows that `rows_replaced` holds for (e.g. `day >= '2026-11-02'`)
    /// with `batches`, whose rows must all match it, in one commit with positions (see
    /// [`Storage::append_sequenced`]): Delta's replaceWhere. A file whose rows all match is
    /// dropped unread, one that holds some is rewritten without them; the other files stay —
    /// where a merge would join the batch with every file its keys might be in.
    pub async fn replace_where_sequenced(
        &self,
        location: &str,
        batches: Vec<RecordBatch>,
        rows_replaced: datafusion::logical_expr::Expr,
        positions: &[(&str, i64)],
    ) -> Result<AppendOutcome> {
        self.write_sequenced(
            location,
            batches,
            positions,
            SaveMode::Overwrite,
            Some(rows_replaced),
        )
        .await
    }

    async fn write_sequenced(
        &self,
        location: &str,
        batches: Vec<RecordBatch>,
        positions: &[(&str, i64)],
        mode: SaveMode,
        replace_where: Option<datafusion::logical_expr::Expr>,
    ) -> Result<AppendOutcome> {
        let slot = self.slot(location);
        let _writer = slot.writer.lock().await;
        let table = self.existing(location).await?;
        let before = version_of(&table);
        let transactions: Vec<Transaction> = positions
            .iter()
            .map(|(id, version)| Transaction::new(*id, *version))
            .collect();
        // An overwrite writes even without rows: it removes what the table held.
        let table = if mode == SaveMode::Overwrite || batches.iter().any(|b| b.num_rows() > 0) {
            let write = parquet_properties::encoded_write(table, batches)
                .map_err(|e| StorageError::delta(location, e))?
                .with_save_mode(mode);
            let write = match replace_where {
                Some(predicate) => write.with_replace_where(predicate),
                None => write,
            };
            write
                .with_commit_properties(
                    CommitProperties::default()
                        .with_create_checkpoint(false)
                        .with_application_transactions(transactions),
                )
                .await
                .map_err(|e| StorageError::delta(location, e))?
        } else {
            let positions_alone = DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: None,
                predicate: None,
            };
            commit_actions(location, table, Vec::new(), transactions, positions_alone).await?
        };
        Ok(slot.committed(&table, before, positions))
    }

    /// Merges the rows of `source` into the table by the `keys` columns — a row whose key the
    /// table holds replaces it, the others are added — in one commit that also records each
    /// `(app_id, version)` as a Delta application transaction (see [`Storage::append_sequenced`]).
    /// `source` must hold each key once. A source of no rows commits the positions alone.
    pub async fn merge_sequenced(
        &self,
        location: &str,
        source: datafusion::prelude::DataFrame,
        rows: usize,
        keys: &[String],
        positions: &[(&str, i64)],
    ) -> Result<AppendOutcome> {
        if rows == 0 {
            let empty = RecordBatch::new_empty(Arc::new(source.schema().as_arrow().clone()));
            return self
                .append_sequenced(location, vec![empty], positions)
                .await;
        }
        use datafusion::common::Column;
        use datafusion::logical_expr::Expr;
        let slot = self.slot(location);
        let _writer = slot.writer.lock().await;
        let table = self.existing(location).await?;
        let before = version_of(&table);
        let qualified = |side: &str, name: &str| Expr::Column(Column::new(Some(side), name));
        let on = keys
            .iter()
            .map(|k| qualified("target", k).eq(qualified("source", k)))
            .reduce(Expr::and)
            .ok_or_else(|| StorageError::Io {
                table: location.to_string(),
                reason: "a merge needs at least one key column".into(),
            })?;
        let columns: Vec<String> = source
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let transactions: Vec<Transaction> = positions
            .iter()
            .map(|(id, version)| Transaction::new(*id, *version))
            .collect();
        let (table, _metrics) = table
            .merge(source, on)
            .with_source_alias("source")
            .with_target_alias("target")
            .when_matched_update(|update| {
                columns.iter().fold(update, |u, c| {
                    u.update(
                        Column::new(None::<&str>, c.as_str()),
                        qualified("source", c),
                    )
                })
            })
            .and_then(|merge| {
                merge.when_not_matched_insert(|insert| {
                    columns.iter().fold(insert, |i, c| {
                        i.set(
                            Column::new(None::<&str>, c.as_str()),
                            qualified("source", c),
                        )
                    })
                })
            })
            .map_err(|e| StorageError::delta(location, e))?
            .with_commit_properties(
                CommitProperties::default()
                    .with_create_checkpoint(false)
                    .with_application_transactions(transactions),
            )
            .await
            .map_err(|e| StorageError::delta(location, e))?;
        Ok(slot.committed(&table, before, positions))
    }

    /// Sizes the table's files for merges of its newest rows: sets its `delta.targetFileSize`
    /// so that it is held in about [`MERGED_TABLE_FILES`] files (a power of two between
    /// [`MERGED_FILE_BYTES_MIN`] and [`MERGED_FILE_BYTES_MAX`]). A merge rewrites every file
    /// holding a key it matches, and Delta prunes the files by their keys' min/max, so a table
    /// written in key order and merged a little at its end (a transform's watermark) rewrites
    /// its last files instead of all of itself. Writes, merges and compaction follow the
    /// property. One metadata commit, only when the size moves (at most once per doubling).
    pub async fn size_files_for_merges(&self, location: &str) -> Result<()> {
        let slot = self.slot(location);
        let _writer = slot.writer.lock().await;
        let Some(table) = self.fresh(location).await? else {
            return Ok(());
        };
        let wanted = merged_file_bytes(self.info(location, &table)?.bytes);
        let set = table
            .snapshot()
            .map_err(|e| StorageError::delta(location, e))?
            .table_config()
            .target_file_size;
        if set.map(|s| s.get()) == Some(wanted) {
            return Ok(());
        }
        let table = table
            .set_tbl_properties()
            .with_properties(HashMap::from([(
                TableProperty::TargetFileSize.as_ref().to_string(),
                wanted.to_string(),
            )]))
            .with_raise_if_not_exists(false)
            .with_commit_properties(CommitProperties::default().with_create_checkpoint(false))
            .await
            .map_err(|e| StorageError::delta(location, e))?;
        publish(&slot, &table);
        Ok(())
    }

    /// Whether a batch with this id was committed to the table (a Delta application
    /// transaction), e.g. before a crash that lost the acknowledgement.
    pub async fn committed(&self, location: &str, txn_id: &str) -> Result<bool> {
        let [seen] = self
            .sequences(location, &[&txn_app_id(txn_id)])
            .await?
            .try_into()
            .expect("one answer per app id");
        Ok(seen.is_some())
    }

    /// The table, which must exist (an append's target).
    pub(crate) async fn existing(&self, location: &str) -> Result<DeltaTable> {
        self.fresh(location).await?.ok_or_else(|| StorageError::Io {
            table: location.to_string(),
            reason: "table does not exist".into(),
        })
    }

    /// A DataFusion table provider over the table's latest snapshot, with the table's object
    /// store registered in `session`. `None` if the table does not exist.
    pub async fn table_provider(
        &self,
        location: &str,
        session: &dyn Session,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self
            .scan_provider(location, session)
            .await?
            .map(|(provider, _)| provider))
    }

    /// [`Storage::table_provider`], with the data files of the snapshot it reads: how many, their
    /// bytes and rows — added up for at most [`SIZE_COUNTED_FILES`] files; a table with more is
    /// said to hold `u64::MAX` bytes and unknown rows (large, whatever the exact figures).
    pub async fn scan_provider(
        &self,
        location: &str,
        session: &dyn Session,
    ) -> Result<Option<(Arc<dyn TableProvider>, DataFiles)>> {
        let Some(table) = self.fresh(location).await? else {
            return Ok(None);
        };
        let files = {
            let snapshot = table
                .snapshot()
                .map_err(|e| StorageError::delta(location, e))?;
            let data = snapshot.log_data();
            let count = data.num_files();
            if count > SIZE_COUNTED_FILES {
                DataFiles {
                    count,
                    bytes: u64::MAX,
                    rows: None,
                }
            } else {
                let (bytes, rows) = data.iter().fold((0u64, Some(0u64)), |(b, r), f| {
                    let records = f.num_records().map(|n| n as u64);
                    (
                        b + f.size().max(0) as u64,
                        r.zip(records).map(|(r, n)| r + n),
                    )
                });
                DataFiles { count, bytes, rows }
            }
        };
        table
            .update_datafusion_session(session)
            .map_err(|e| StorageError::delta(location, e))?;
        let mut builder = table.table_provider();
        // The scan follows the session's settings (e.g. whether strings are read as views), so
        // its output types are the ones the session planned with.
        if let Some(state) = session.as_any().downcast_ref::<SessionState>() {
            builder = builder.with_session(Arc::new(state.clone()));
        }
        let provider = builder.await.map_err(|e| StorageError::Io {
            table: location.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Some((provider, files)))
    }
}

/// Commits `actions` with `transactions` (positions) on top of `table`'s snapshot as
/// `operation`, and gives the table at the version committed.
pub(crate) async fn commit_actions(
    location: &str,
    table: DeltaTable,
    actions: Vec<deltalake::kernel::Action>,
    transactions: Vec<Transaction>,
    operation: DeltaOperation,
) -> Result<DeltaTable> {
    let snapshot = table
        .snapshot()
        .map_err(|e| StorageError::delta(location, e))?;
    let commit = CommitBuilder::from(
        CommitProperties::default()
            .with_create_checkpoint(false)
            .with_application_transactions(transactions),
    )
    .with_actions(actions)
    .build(Some(snapshot), table.log_store(), operation)
    .await
    .map_err(|e| StorageError::delta(location, e))?;
    let mut table = table;
    table
        .update_incremental(Some(commit.version))
        .await
        .map_err(|e| StorageError::delta(location, e))?;
    Ok(table)
}

/// Whether the commit after `table`'s version is in its log (see [`LOG_LISTING_TRUSTED`]).
async fn next_commit_exists(location: &str, table: &DeltaTable) -> Result<bool> {
    let Some(version) = table.version() else {
        return Ok(true);
    };
    let next = deltalake::logstore::commit_uri_from_version(Some(version + 1));
    use deltalake::logstore::object_store::ObjectStoreExt;
    match table.log_store().object_store(None).head(&next).await {
        Ok(_) => Ok(true),
        Err(deltalake::logstore::object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(StorageError::Io {
            table: location.to_string(),
            reason: format!("looking for the commit after version {version}: {e}"),
        }),
    }
}

/// Makes `table` the slot's current table unless the slot holds a newer version; says whether
/// it did. A table that is due a checkpoint gets one in the background (see [`crate::checkpoint`]).
pub(crate) fn publish(slot: &Arc<Slot>, table: &DeltaTable) -> bool {
    let newer = {
        let mut current = slot.current.write().expect("table lock poisoned");
        let newer = match current.as_ref() {
            Some(existing) => table.version() >= existing.version(),
            None => true,
        };
        if newer {
            *current = Some(table.clone());
        }
        newer
    };
    if newer {
        slot.checkpoint_if_due(table);
    }
    newer
}

/// The table's version (`None`: not loaded).
pub(crate) fn version_of(table: &DeltaTable) -> Option<i64> {
    table.version().map(|v| v as i64)
}

/// The version of application transaction `app_id` in the table's snapshot, if any: known
/// at this table version (see [`KnownPositions`]) or read from its log.
async fn txn_version(
    slot: &Slot,
    location: &str,
    table: &DeltaTable,
    app_id: &str,
) -> Result<Option<i64>> {
    let version = version_of(table);
    if let Some(known) = version.and_then(|v| slot.known_position(v, app_id)) {
        return Ok(known);
    }
    let read = table
        .snapshot()
        .map_err(|e| StorageError::delta(location, e))?
        .transaction_version(table.log_store().as_ref(), app_id)
        .await
        .map_err(|e| StorageError::delta(location, e))?;
    if let Some(version) = version {
        slot.learn_position(version, app_id, read);
    }
    Ok(read)
}

fn txn_app_id(batch_id: &str) -> String {
    format!("tessera-batch:{batch_id}")
}

/// Compares a stored schema with the wanted one; returns the columns to add.
fn reconcile(location: &str, existing: &Schema, wanted: &Schema) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for field in existing.fields() {
        match wanted.field_with_name(field.name()) {
            Ok(w) if w.data_type() == field.data_type() => {}
            Ok(w) => problems.push(format!(
                "column {:?} is {} in the table but {} in the contract",
                field.name(),
                field.data_type(),
                w.data_type()
            )),
            Err(_) => problems.push(format!(
                "column {:?} is in the table but not in the contract",
                field.name()
            )),
        }
    }
    if !problems.is_empty() {
        return Err(StorageError::SchemaMismatch {
            table: location.to_string(),
            reason: problems.join("; "),
        });
    }
    Ok(wanted
        .fields()
        .iter()
        .filter(|f| existing.field_with_name(f.name()).is_err())
        .map(|f| f.name().clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Positions read too long ago are read again, and that read is kept in their place.
    #[test]
    fn positions_known_too_long_are_read_again_and_kept_afresh() {
        let slot = Slot::default();
        slot.learn_position(4, "events", Some(7));
        assert_eq!(slot.known_position(4, "events"), Some(Some(7)));
        assert_eq!(slot.known_position(5, "events"), None, "another version");
        let long_ago = std::time::Instant::now()
            .checked_sub(POSITIONS_TRUSTED)
            .expect("a machine up longer than the trust period");
        slot.positions.lock().unwrap().as_mut().unwrap().read_at = long_ago;
        assert_eq!(slot.known_position(4, "events"), None, "read too long ago");
        slot.learn_position(4, "other", None);
        assert_eq!(slot.known_position(4, "other"), Some(None));
        // The stale entry went with the old read rather than being trusted again.
        assert_eq!(slot.known_position(4, "events"), None);
    }
}
