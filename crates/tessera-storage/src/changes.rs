//! What the commits after a version did to a table's rows: whether any added or removed rows
//! (does a check measured then still hold?), and, when they only added rows, the values one
//! column holds in those rows (which keys must a transform recompute?). Both read the commits'
//! JSON entries from the log, not the table's files.

use arrow::array::{ArrayRef, RecordBatch};
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::DeltaTable;
use deltalake::logstore::LogStore;
use object_store::ObjectStoreExt;

use crate::error::{Result, StorageError};
use crate::store::Storage;

/// Past this many commits, whether data changed is measured again rather than read commit by
/// commit.
const CHANGED_COMMITS_READ: i64 = 64;

/// Past this many commits, the rows they added are not read one file at a time: the caller
/// recomputes from the whole table.
const ADDED_COMMITS_READ: i64 = 1_000;

/// What one commit did to the table's rows.
#[derive(Debug, PartialEq, Eq)]
enum CommitChange {
    /// Nothing: a compaction, a vacuum, properties, positions alone.
    None,
    /// It added rows in these files (paths relative to the table, as the log has them) and
    /// removed none.
    Added(Vec<String>),
    /// It removed or rewrote rows (an overwrite, a merge, a delete), or could not be read.
    Rewrote,
}

impl Storage {
    /// Whether a commit after `version`, up to the table's latest, added or removed rows (a
    /// compaction, a vacuum or a commit of positions alone do not). A commit that cannot be read
    /// any more counts as a change.
    pub async fn data_changed_since(&self, location: &str, version: i64) -> Result<bool> {
        Ok(
            match self
                .changes_since(location, version, None, CHANGED_COMMITS_READ)
                .await?
            {
                None => true,
                Some((_, changes)) => changes.iter().any(|c| *c != CommitChange::None),
            },
        )
    }

    /// The values of `column` in the rows the commits after `version` up to `until` added, if
    /// those commits only added rows (appends, and compactions, vacuums and position commits,
    /// which change no row). `None` when one removed or rewrote rows (an overwrite, a merge),
    /// cannot be read, a file it added is gone or lacks the column, or there are too many to
    /// read: what changed is then not known row by row. One array per file read (none: no row
    /// was added).
    pub async fn values_added_since(
        &self,
        location: &str,
        version: i64,
        until: i64,
        column: &str,
    ) -> Result<Option<Vec<ArrayRef>>> {
        let Some((table, changes)) = self
            .changes_since(location, version, Some(until), ADDED_COMMITS_READ)
            .await?
        else {
            return Ok(None);
        };
        let mut files = Vec::new();
        for change in changes {
            match change {
                CommitChange::None => {}
                CommitChange::Added(added) => files.extend(added),
                CommitChange::Rewrote => return Ok(None),
            }
        }
        let store = table.log_store().object_store(None);
        let mut values = Vec::with_capacity(files.len());
        for file in files {
            let Ok(path) = object_store::path::Path::from_url_path(&file) else {
                return Ok(None);
            };
            // A file compacted away and vacuumed since: its rows are in another file now.
            let Ok(got) = store.get(&path).await else {
                return Ok(None);
            };
            let bytes = got.bytes().await.map_err(|e| StorageError::Io {
                table: location.to_string(),
                reason: format!("reading {file}: {e}"),
            })?;
            let read = || -> std::result::Result<Option<Vec<ArrayRef>>, String> {
                Ok(read_columns(bytes, &[column])?
                    .map(|batches| batches.iter().map(|b| b.column(0).clone()).collect()))
            };
            match read().map_err(|reason| StorageError::Io {
                table: location.to_string(),
                reason: format!("reading {column} of {file}: {reason}"),
            })? {
                Some(arrays) => values.extend(arrays),
                None => return Ok(None),
            }
        }
        Ok(Some(values))
    }

    /// The table, and what each commit after `version` up to `until` (none: the table's latest)
    /// did; `None` when the table is gone, or does not reach `until`, or is older than
    /// `version`, or more than `most` commits lie between.
    async fn changes_since(
        &self,
        location: &str,
        version: i64,
        until: Option<i64>,
        most: i64,
    ) -> Result<Option<(DeltaTable, Vec<CommitChange>)>> {
        let Some(table) = self.fresh(location).await? else {
            return Ok(None);
        };
        let newest = table.version().map(|v| v as i64).unwrap_or(-1);
        let latest = until.unwrap_or(newest);
        if newest < latest || latest < version || latest - version > most {
            return Ok(None);
        }
        let store = table.log_store();
        let mut changes = Vec::with_capacity((latest - version) as usize);
        for v in (version + 1)..=latest {
            let commit = store
                .read_commit_entry(v as u64)
                .await
                .map_err(|e| StorageError::delta(location, e))?;
            changes.push(match commit {
                Some(commit) => commit_change(&commit),
                None => CommitChange::Rewrote,
            });
        }
        Ok(Some((table, changes)))
    }
}

/// What a commit's actions did to the rows: `add`, `remove` and `cdc` actions with
/// `dataChange` (a compaction's have it false).
fn commit_change(commit: &[u8]) -> CommitChange {
    let mut added = Vec::new();
    for line in commit.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(action) = serde_json::from_slice::<serde_json::Value>(line) else {
            return CommitChange::Rewrote;
        };
        let changes_data = |kind: &str| {
            action
                .get(kind)
                .is_some_and(|a| a.get("dataChange").and_then(|d| d.as_bool()) != Some(false))
        };
        if changes_data("remove") || changes_data("cdc") {
            return CommitChange::Rewrote;
        }
        if changes_data("add") {
            let add = &action["add"];
            match add.get("path").and_then(|p| p.as_str()) {
                // Rows hidden by a deletion vector are not the file's rows.
                Some(path) if add.get("deletionVector").is_none_or(|d| d.is_null()) => {
                    added.push(path.to_string())
                }
                _ => return CommitChange::Rewrote,
            }
        }
    }
    if added.is_empty() {
        CommitChange::None
    } else {
        CommitChange::Added(added)
    }
}

/// The top-level `columns` of a Parquet file's rows (its `bytes`), in the file's order; `None`
/// when it lacks one of them.
pub(crate) fn read_columns(
    bytes: bytes::Bytes,
    columns: &[&str],
) -> std::result::Result<Option<Vec<RecordBatch>>, String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
    let mut indexes = Vec::with_capacity(columns.len());
    for column in columns {
        let Ok(index) = builder.schema().index_of(column) else {
            return Ok(None);
        };
        indexes.push(index);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), indexes);
    builder
        .with_projection(mask)
        .build()
        .map_err(|e| e.to_string())?
        .map(|batch| batch.map_err(|e| e.to_string()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::{CommitChange, commit_change};

    #[test]
    fn compactions_and_positions_change_no_data_appends_add_and_the_rest_rewrite() {
        let optimize = br#"{"commitInfo":{"operation":"OPTIMIZE"}}
{"add":{"path":"a.parquet","dataChange":false}}
{"remove":{"path":"b.parquet","dataChange":false}}
"#;
        assert_eq!(commit_change(optimize), CommitChange::None);
        let positions = br#"{"txn":{"appId":"tessera-events","version":9}}
{"commitInfo":{"operation":"WRITE"}}
"#;
        assert_eq!(commit_change(positions), CommitChange::None);
        let append = br#"{"add":{"path":"c%20d.parquet","dataChange":true}}"#;
        assert_eq!(
            commit_change(append),
            CommitChange::Added(vec!["c%20d.parquet".into()])
        );
        let overwrite = br#"{"add":{"path":"e.parquet","dataChange":true}}
{"remove":{"path":"c.parquet","dataChange":true}}"#;
        assert_eq!(commit_change(overwrite), CommitChange::Rewrote);
        assert_eq!(commit_change(b"not json"), CommitChange::Rewrote);
    }
}
