//! Replacing rows by key without writing their files again: the rows whose keys a merge
//! replaces are marked deleted in a Delta deletion vector beside their file, and the new rows
//! go into a file of their own. A merge of a few keys scattered over a table then writes the
//! new rows and one small bitmap per file they were in, where writing the files again would
//! encode the whole table.
//!
//! Which rows hold the keys is found in a [`KeyLayout`]: each live file's key columns in the
//! file's row order and its deleted rows, read from the files once and then kept up to date by
//! each replacement here, so a run looks its keys up without reading the table.

use std::collections::HashMap;

use arrow::array::{ArrayRef, RecordBatch};
use delta_kernel::actions::deletion_vector::DeletionVectorDescriptor as KernelDescriptor;
use delta_kernel::actions::deletion_vector_writer::{
    KernelDeletionVector, StreamingDeletionVectorWriter,
};
use deltalake::DeltaTable;
use deltalake::kernel::{Action, Add, DeletionVectorDescriptor, Remove, StorageType, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use object_store::ObjectStoreExt;
use roaring::RoaringTreemap;

use crate::changes::read_columns;
use crate::error::{Result, StorageError};
use crate::replace::KeySet;
use crate::store::{AppendOutcome, Storage, commit_actions, version_of};

/// Where the rows of a table replaced by key lie, at one table version.
pub(crate) struct KeyLayout {
    version: Option<i64>,
    columns: Vec<String>,
    files: Vec<FileKeys>,
}

/// One live file: its add action (with its current deletion vector), its key columns in the
/// file's row order, its row count and the rows deleted.
struct FileKeys {
    add: Add,
    keys: Vec<RecordBatch>,
    rows: u64,
    deleted: RoaringTreemap,
}

impl Storage {
    /// Replaces the rows whose `columns` hold one of `keys` (one array per column, row `i` of
    /// them one key) with `batches`, in one commit with `positions`: the replaced rows are
    /// marked deleted (deletion vectors; the table is given the feature the first time), the
    /// new rows written to a new file.
    pub async fn replace_keys_sequenced(
        &self,
        location: &str,
        batches: Vec<RecordBatch>,
        columns: &[String],
        keys: &[ArrayRef],
        positions: &[(&str, i64)],
    ) -> Result<AppendOutcome> {
        let failed = |reason: String| StorageError::Io {
            table: location.to_string(),
            reason,
        };
        let slot = self.slot(location);
        let _writer = slot.writer.lock().await;
        let mut table = self.existing(location).await?;
        if !deletion_vectors_enabled(&table)? {
            table = table
                .set_tbl_properties()
                .with_properties(HashMap::from([(
                    "delta.enableDeletionVectors".to_string(),
                    "true".to_string(),
                )]))
                .await
                .map_err(|e| StorageError::delta(location, e))?;
        }
        let before = version_of(&table);
        let kept = slot.key_layout.lock().expect("key layout lock").take();
        let mut layout = match kept {
            Some(layout) if layout.version == before && layout.columns == columns => layout,
            _ => read_layout(&table, columns).await.map_err(failed)?,
        };
        let set = KeySet::new(keys).map_err(failed)?;
        let store = table.log_store().object_store(None);
        let mut actions: Vec<Action> = Vec::new();
        let mut live = Vec::with_capacity(layout.files.len() + 1);
        for mut file in std::mem::take(&mut layout.files) {
            let mut offset = 0u64;
            let mut found = false;
            for batch in &file.keys {
                for row in set.rows_holding(batch, columns).map_err(failed)? {
                    found |= file.deleted.insert(offset + row as u64);
                }
                offset += batch.num_rows() as u64;
            }
            if !found {
                live.push(file);
                continue;
            }
            actions.push(Action::Remove(remove_of(&file.add)));
            if file.deleted.len() == file.rows {
                continue; // every row deleted: the file goes
            }
            let uuid = uuid::Uuid::new_v4();
            let mut bytes = Vec::new();
            let mut writer = StreamingDeletionVectorWriter::new(&mut bytes);
            let mut vector = KernelDeletionVector::new();
            vector.add_deleted_row_indexes(file.deleted.iter());
            let path = &file.add.path;
            let written = writer
                .write_deletion_vector(vector)
                .map_err(|e| failed(format!("writing the deleted rows of {path}: {e}")))?;
            writer
                .finalize()
                .map_err(|e| failed(format!("writing the deleted rows of {path}: {e}")))?;
            store
                .put(
                    &object_store::path::Path::from(format!("deletion_vector_{uuid}.bin")),
                    bytes.into(),
                )
                .await
                .map_err(|e| failed(format!("writing the deleted rows of {path}: {e}")))?;
            // The same file, now with its vector.
            file.add.data_change = true;
            file.add.deletion_vector = Some(DeletionVectorDescriptor {
                storage_type: StorageType::UuidRelativePath,
                path_or_inline_dv: z85::encode(uuid.as_bytes()),
                offset: Some(written.offset),
                size_in_bytes: written.size_in_bytes,
                cardinality: written.cardinality,
            });
            actions.push(Action::Add(file.add.clone()));
            live.push(file);
        }
        let mut layout_holds = true;
        if batches.iter().any(|b| b.num_rows() > 0) {
            let mut writer = RecordBatchWriter::for_table(&table)
                .map_err(|e| StorageError::delta(location, e))?;
            let mut new_keys = Vec::new();
            for batch in batches.into_iter().filter(|b| b.num_rows() > 0) {
                new_keys.push(key_columns(&batch, columns).map_err(failed)?);
                writer
                    .write(batch)
                    .await
                    .map_err(|e| StorageError::delta(location, e))?;
            }
            let adds = writer
                .flush()
                .await
                .map_err(|e| StorageError::delta(location, e))?;
            // One file: its rows are the batches' in order. More (a large write split by
            // size): not known which rows went where; read again next time.
            match adds.as_slice() {
                [add] => live.push(FileKeys {
                    add: add.clone(),
                    rows: new_keys.iter().map(|b| b.num_rows() as u64).sum(),
                    keys: new_keys,
                    deleted: RoaringTreemap::new(),
                }),
                _ => layout_holds = false,
            }
            actions.extend(adds.into_iter().map(Action::Add));
        }
        let transactions: Vec<Transaction> = positions
            .iter()
            .map(|(id, version)| Transaction::new(*id, *version))
            .collect();
        let merged = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: None,
            predicate: None,
        };
        let table = commit_actions(location, table, actions, transactions, merged).await?;
        if layout_holds {
            *slot.key_layout.lock().expect("key layout lock") = Some(KeyLayout {
                version: version_of(&table),
                columns: columns.to_vec(),
                files: live,
            });
        }
        Ok(slot.committed(&table, before, positions))
    }
}

/// The table's live files with their `columns` and deleted rows, read from the files.
async fn read_layout(
    table: &DeltaTable,
    columns: &[String],
) -> std::result::Result<KeyLayout, String> {
    let store = table.log_store().object_store(None);
    let engine = table.log_store().engine(None);
    let root = table.table_url().clone();
    let files: Vec<_> = table
        .snapshot()
        .map_err(|e| e.to_string())?
        .log_data()
        .iter()
        .collect();
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut out = Vec::with_capacity(files.len());
    for file in files {
        let path = file.object_store_path();
        let bytes = store
            .get(&path)
            .await
            .map_err(|e| format!("reading {path}: {e}"))?
            .bytes()
            .await
            .map_err(|e| format!("reading {path}: {e}"))?;
        let keys = read_columns(bytes, &names)
            .map_err(|e| format!("reading {path}: {e}"))?
            .ok_or_else(|| format!("{path} lacks one of {}", columns.join(", ")))?;
        let deleted = match file.deletion_vector_descriptor() {
            Some(dv) => KernelDescriptor::try_from(dv)
                .and_then(|dv| dv.read(engine.storage_handler(), &root))
                .map_err(|e| format!("the deleted rows of {path}: {e}"))?,
            None => RoaringTreemap::new(),
        };
        out.push(FileKeys {
            add: Add {
                path: file.path().to_string(),
                partition_values: file.partition_values_map(),
                size: file.size(),
                modification_time: file.modification_time(),
                data_change: true,
                stats: file.stats(),
                deletion_vector: file.deletion_vector_descriptor(),
                ..Add::default()
            },
            rows: keys.iter().map(|b| b.num_rows() as u64).sum(),
            keys,
            deleted,
        });
    }
    Ok(KeyLayout {
        version: table.version().map(|v| v as i64),
        columns: columns.to_vec(),
        files: out,
    })
}

/// The remove action of the file `add` adds, with its deletion vector: the pair is what the
/// log knows the file by.
fn remove_of(add: &Add) -> Remove {
    Remove {
        path: add.path.clone(),
        data_change: true,
        deletion_timestamp: Some(chrono::Utc::now().timestamp_millis()),
        extended_file_metadata: Some(true),
        size: Some(add.size),
        partition_values: Some(add.partition_values.clone()),
        deletion_vector: add.deletion_vector.clone(),
        tags: None,
        base_row_id: None,
        default_row_commit_version: None,
    }
}

/// `batch`'s `columns` alone.
fn key_columns(
    batch: &RecordBatch,
    columns: &[String],
) -> std::result::Result<RecordBatch, String> {
    let indexes = columns
        .iter()
        .map(|c| batch.schema().index_of(c).map_err(|e| e.to_string()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    batch.project(&indexes).map_err(|e| e.to_string())
}

/// Whether the table's protocol has deletion vectors.
fn deletion_vectors_enabled(table: &DeltaTable) -> Result<bool> {
    let snapshot = table.snapshot().map_err(|e| StorageError::delta("", e))?;
    Ok(snapshot
        .protocol()
        .writer_features()
        .is_some_and(|features| features.iter().any(|f| f.as_ref() == "deletionVectors")))
}
