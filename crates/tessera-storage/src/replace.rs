//! Replacing the rows from a value of one column on (a transform's merge from a watermark) so
//! that the next replacement drops files whole.
//!
//! Delta's replaceWhere (delta-rs `with_replace_where`) drops the files the predicate holds
//! wholly and rewrites those it holds partly without its rows — and writes the rows it keeps
//! into the same files as the new ones. A replacement from the newest day on then leaves a file
//! of older days and new ones, which the next replacement, from a later day, rewrites again:
//! at the demo's scale, some 55,000 kept rows written again on every run for 17,000 new.
//! Here the kept rows go into a file of their own, and the new rows into two: those of their
//! newest value (which the next replacement, from that value on, drops whole) and the others
//! (which it leaves alone). The column's statistics in the log tell which files the predicate
//! holds wholly, partly or not at all; where they cannot be trusted to (a type whose statistics
//! are truncated, as strings are), delta-rs's replaceWhere does the work.

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::kernels::cmp::{eq, gt_eq, lt};
use arrow::compute::{SortOptions, cast, filter_record_batch, prep_null_mask_filter};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::row::{RowConverter, SortField};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{Expr, lit};
use datafusion::prelude::{DataFrame, SessionContext};
use deltalake::kernel::Action;
use deltalake::kernel::scalars::ScalarExt;
use deltalake::kernel::{LogDataHandler, Remove, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};

use crate::error::{Result, StorageError};
use crate::parquet_properties;
use crate::store::{AppendOutcome, Storage, commit_actions, version_of};

/// How the predicate `column >= from` holds for one file's rows, by the column's statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Held {
    /// No row: the file stays.
    None,
    /// Every row: the file is dropped unread.
    Wholly,
    /// Some rows, or not known: the file is read and its other rows written again.
    Partly,
}

impl Storage {
    /// Replaces the rows whose `column` is at or past `from` with `batches`, in one commit that
    /// also records `positions` (see [`Storage::append_sequenced`]): what Delta's replaceWhere
    /// `column >= from` leaves, written as the module doc says. Every row of `batches` must be
    /// at or past `from` (a row before it would stay beside the row it meant to replace).
    pub async fn replace_from_sequenced(
        &self,
        location: &str,
        batches: Vec<RecordBatch>,
        column: &str,
        from: ScalarValue,
        positions: &[(&str, i64)],
    ) -> Result<AppendOutcome> {
        let predicate = Expr::Column(Column::new_unqualified(column)).gt_eq(lit(from.clone()));
        if !statistics_bound_rows(&from) {
            return self
                .replace_where_sequenced(location, batches, predicate, positions)
                .await;
        }
        let failed = |reason: String| StorageError::Io {
            table: location.to_string(),
            reason,
        };
        let slot = self.slot(location);
        let _writer = slot.writer.lock().await;
        let table = self.existing(location).await?;
        let before = version_of(&table);

        let (removed, partly) = {
            let snapshot = table
                .snapshot()
                .map_err(|e| StorageError::delta(location, e))?;
            let files = snapshot.log_data();
            let held = held_by_statistics(&files, column, &from)
                .map_err(|e| failed(format!("reading the statistics of {column}: {e}")))?;
            let mut removed: Vec<Remove> = Vec::new();
            let mut partly: Vec<String> = Vec::new();
            for (file, held) in files.iter().zip(held) {
                if held == Held::None {
                    continue;
                }
                if held == Held::Partly {
                    partly.push(file.path().to_string());
                }
                removed.push(file.remove_action(true));
            }
            (removed, partly)
        };
        let kept = if partly.is_empty() {
            Vec::new()
        } else {
            rows_not_held(&table, partly, predicate.clone())
                .await
                .map_err(|e| failed(format!("reading the rows kept before {column} {from}: {e}")))?
        };
        let (older, newest) = split_at_newest(&batches, column, &from).map_err(failed)?;

        let mut writer =
            RecordBatchWriter::for_table(&table).map_err(|e| StorageError::delta(location, e))?;
        let schema = writer.arrow_schema();
        let encoding = parquet_properties::for_batches(&batches);
        writer = writer.with_writer_properties(encoding);
        let mut actions: Vec<Action> = removed.into_iter().map(Action::Remove).collect();
        // One flush, one file (or more past the writer's size): the kept rows, the older new
        // ones and the newest never share one.
        for part in [kept, older, newest] {
            let mut wrote = false;
            for batch in part.iter().filter(|b| b.num_rows() > 0) {
                let batch = conformed(batch, &schema).map_err(failed)?;
                writer
                    .write(batch)
                    .await
                    .map_err(|e| StorageError::delta(location, e))?;
                wrote = true;
            }
            if wrote {
                let adds = writer
                    .flush()
                    .await
                    .map_err(|e| StorageError::delta(location, e))?;
                actions.extend(adds.into_iter().map(Action::Add));
            }
        }

        let transactions: Vec<Transaction> = positions
            .iter()
            .map(|(id, version)| Transaction::new(*id, *version))
            .collect();
        let replaced = DeltaOperation::Write {
            mode: SaveMode::Overwrite,
            partition_by: None,
            predicate: Some(format!("{column} >= {from}")),
        };
        let table = commit_actions(location, table, actions, transactions, replaced).await?;
        Ok(slot.committed(&table, before, positions))
    }
}

impl Storage {
    /// Every row of the table's latest version, read as its own upkeep (see [`read_files`]):
    /// what a merge that writes a small table again whole keeps rows of (a transform's merge,
    /// in the server, with [`rows_without_keys`]). An absent table has none.
    pub async fn rows(&self, location: &str) -> Result<Vec<RecordBatch>> {
        let Some(table) = self.fresh(location).await? else {
            return Ok(Vec::new());
        };
        let paths: Vec<String> = {
            let snapshot = table
                .snapshot()
                .map_err(|e| StorageError::delta(location, e))?;
            snapshot
                .log_data()
                .iter()
                .map(|f| f.path().to_string())
                .collect()
        };
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        read_files(&table, paths, Ok)
            .await
            .map_err(|reason| StorageError::Io {
                table: location.to_string(),
                reason: format!("reading the table's rows: {reason}"),
            })
    }
}

/// The rows of `batches` that a replacement by key keeps — those whose `columns` hold none of
/// the keys in `replaced` (one array per column; row `i` of them is one key) — with `schema`'s
/// column types (by name; a scan may read strings as views).
pub fn rows_without_keys(
    batches: &[RecordBatch],
    columns: &[String],
    replaced: &[ArrayRef],
    schema: &SchemaRef,
) -> std::result::Result<Vec<RecordBatch>, String> {
    let keys = KeySet::new(replaced)?;
    batches
        .iter()
        .map(|batch| {
            let kept = keys.rows_without(batch, columns)?;
            conformed(&kept, schema)
        })
        .filter(|kept| kept.as_ref().map_or(true, |b| b.num_rows() > 0))
        .collect()
}

/// A set of keys of one or more columns, in arrow's row format.
pub(crate) struct KeySet {
    converter: RowConverter,
    types: Vec<DataType>,
    // hashbrown with a fast hasher: every row of the table is looked up.
    keys: datafusion::common::HashSet<Box<[u8]>>,
}

impl KeySet {
    pub(crate) fn new(columns: &[ArrayRef]) -> std::result::Result<Self, String> {
        let types: Vec<DataType> = columns.iter().map(|c| c.data_type().clone()).collect();
        let converter = RowConverter::new(types.iter().cloned().map(SortField::new).collect())
            .map_err(|e| e.to_string())?;
        let keys = converter
            .convert_columns(columns)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|row| row.as_ref().into())
            .collect();
        Ok(Self {
            converter,
            types,
            keys,
        })
    }

    /// For each of `batch`'s rows, whether its `columns` (cast to the set's types) hold a key
    /// in the set.
    fn held(
        &self,
        batch: &RecordBatch,
        columns: &[String],
    ) -> std::result::Result<Vec<bool>, String> {
        let keys = columns
            .iter()
            .zip(&self.types)
            .map(|(name, wanted)| {
                let column = batch
                    .column_by_name(name)
                    .ok_or_else(|| format!("the table has no column {name}"))?;
                cast(column, wanted).map_err(|e| e.to_string())
            })
            .collect::<std::result::Result<Vec<ArrayRef>, String>>()?;
        let held = self
            .converter
            .convert_columns(&keys)
            .map_err(|e| e.to_string())?;
        Ok(held
            .iter()
            .map(|key| self.keys.contains(key.as_ref()))
            .collect())
    }

    /// `batch`'s rows whose `columns` hold a key not in the set.
    fn rows_without(
        &self,
        batch: &RecordBatch,
        columns: &[String],
    ) -> std::result::Result<RecordBatch, String> {
        let kept: BooleanArray = self
            .held(batch, columns)?
            .into_iter()
            .map(|held| Some(!held))
            .collect();
        filter_record_batch(batch, &kept).map_err(|e| e.to_string())
    }

    /// The positions of `batch`'s rows whose `columns` hold a key in the set.
    pub(crate) fn rows_holding(
        &self,
        batch: &RecordBatch,
        columns: &[String],
    ) -> std::result::Result<Vec<usize>, String> {
        Ok(self
            .held(batch, columns)?
            .into_iter()
            .enumerate()
            .filter_map(|(i, held)| held.then_some(i))
            .collect())
    }
}

impl Storage {
    /// The greatest value of `column`, read from the log's statistics rather than the whole
    /// table: a date or integer column's statistics say it exactly, no file read; a
    /// microsecond timestamp's are cut to the millisecond, so only the files whose recorded
    /// maximum is within a millisecond of the greatest are read (one or two of a table that
    /// grows at its end). Each file's maximum must be known or the file all nulls. `None`
    /// when they cannot say (another type, a file without statistics or with deleted rows) or
    /// the table holds no value: the caller reads the table.
    pub async fn max_from_statistics(
        &self,
        location: &str,
        column: &str,
    ) -> Result<Option<ScalarValue>> {
        let Some(table) = self.fresh(location).await? else {
            return Ok(None);
        };
        let failed = |reason: String| StorageError::Io {
            table: location.to_string(),
            reason: format!("the greatest of the files' maxima of {column}: {reason}"),
        };
        let (greatest, candidates) = {
            let snapshot = table
                .snapshot()
                .map_err(|e| StorageError::delta(location, e))?;
            let files = snapshot.log_data();
            // A file's statistics count the rows its deletion vector deleted too: they bound
            // what it holds without saying it.
            if files
                .iter()
                .any(|f| f.deletion_vector_descriptor().is_some())
            {
                return Ok(None);
            }
            let nulls = null_counts(&files, column);
            let Some(maxes) = files.max_values(&Column::new_unqualified(column)) else {
                return Ok(None);
            };
            let timestamp = match maxes.data_type() {
                DataType::Date32
                | DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64 => false,
                DataType::Timestamp(TimeUnit::Microsecond, _) => true,
                _ => return Ok(None),
            };
            let all_null = |i: usize| nulls[i].is_some_and(|(nulls, rows)| nulls == rows);
            if (0..maxes.len()).any(|i| maxes.is_null(i) && !all_null(i)) {
                return Ok(None);
            }
            let greatest = arrow::compute::sort_to_indices(
                &maxes,
                Some(SortOptions {
                    descending: true,
                    nulls_first: false,
                }),
                Some(1),
            )
            .map_err(|e| failed(e.to_string()))?;
            let Some(at) = greatest.values().first() else {
                return Ok(None);
            };
            let greatest = ScalarValue::try_from_array(&maxes, *at as usize)
                .map_err(|e| failed(e.to_string()))?;
            if greatest.is_null() || !timestamp {
                return Ok((!greatest.is_null()).then_some(greatest));
            }
            // The files that may hold a value past the greatest recorded one.
            let ScalarValue::TimestampMicrosecond(Some(micros), zone) = &greatest else {
                return Ok(None);
            };
            let floor = ScalarValue::TimestampMicrosecond(Some(micros - 1_000), zone.clone())
                .to_scalar()
                .map_err(|e| failed(e.to_string()))?;
            let near = gt_eq(&maxes, &floor).map_err(|e| failed(e.to_string()))?;
            let candidates: Vec<(String, u64)> = files
                .iter()
                .enumerate()
                .filter(|(i, _)| near.is_valid(*i) && near.value(*i))
                .map(|(_, file)| (file.path().to_string(), file.size().max(0) as u64))
                .collect();
            (greatest, candidates)
        };
        // Their Parquet footers say each row group's maximum exactly: a lookup or two, no scan.
        if let ScalarValue::TimestampMicrosecond(_, zone) = &greatest
            && let Some(micros) = footer_max_micros(&table, &candidates, column).await
        {
            return Ok(Some(ScalarValue::TimestampMicrosecond(
                Some(micros),
                zone.clone(),
            )));
        }
        let candidates = candidates.into_iter().map(|(path, _)| path).collect();
        let column_expr = Expr::Column(Column::new_unqualified(column));
        let batches = read_files(&table, candidates, |df| {
            df.aggregate(
                vec![],
                vec![datafusion::functions_aggregate::min_max::max(column_expr)],
            )
        })
        .await
        .map_err(|e| failed(format!("reading the files near {greatest}: {e}")))?;
        let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Ok(None);
        };
        let value = ScalarValue::try_from_array(batch.column(0), 0)
            .and_then(|v| v.cast_to(&greatest.data_type()))
            .map_err(|e| failed(e.to_string()))?;
        Ok((!value.is_null()).then_some(value))
    }
}

/// The greatest value of the microsecond timestamp `column` in the files `(path, size)`, from
/// their Parquet footers' row group statistics; `None` when a footer does not say it exactly (no
/// statistics for a row group with values, another encoding of the column, a file unreadable),
/// for the caller to read the rows instead.
async fn footer_max_micros(
    table: &DeltaTable,
    files: &[(String, u64)],
    column: &str,
) -> Option<i64> {
    use datafusion::parquet::basic::{LogicalType, TimeUnit as ParquetTimeUnit};
    use datafusion::parquet::file::metadata::ParquetMetaDataReader;
    use datafusion::parquet::file::statistics::Statistics;
    use object_store::ObjectStoreExt;
    let store = table.log_store().object_store(None);
    let mut greatest: Option<i64> = None;
    for (path, size) in files {
        let path = object_store::path::Path::from(path.as_str());
        let tail = store
            .get_range(&path, size.checked_sub(8)?..*size)
            .await
            .ok()?;
        if tail.len() != 8 || &tail[4..] != b"PAR1" {
            return None;
        }
        let footer = u64::from(u32::from_le_bytes(tail[..4].try_into().ok()?));
        let start = size.checked_sub(8 + footer)?;
        let metadata = store.get_range(&path, start..size - 8).await.ok()?;
        let metadata = ParquetMetaDataReader::decode_metadata(&metadata).ok()?;
        for group in metadata.row_groups() {
            let chunk = group
                .columns()
                .iter()
                .find(|c| c.column_descr().path().string() == column)?;
            let micros = matches!(
                chunk.column_descr().logical_type_ref(),
                Some(LogicalType::Timestamp(t)) if t.unit == ParquetTimeUnit::MICROS
            );
            match chunk.statistics() {
                Some(Statistics::Int64(stats)) if micros => {
                    match stats.max_opt() {
                        Some(max) if stats.max_is_exact() => {
                            greatest = Some(greatest.map_or(*max, |g| g.max(*max)))
                        }
                        // No maximum: only when every value is null.
                        None if stats.null_count_opt() == Some(group.num_rows() as u64) => {}
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }
    greatest
}

/// Whether the log's statistics of a column of `from`'s type bound its rows: exact for dates
/// and integers; timestamps are kept to the millisecond (allowed for below); a string's are
/// cut short, so a file's maximum may be below its rows'.
fn statistics_bound_rows(from: &ScalarValue) -> bool {
    !from.is_null()
        && matches!(
            from.data_type(),
            DataType::Date32
                | DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::Timestamp(TimeUnit::Microsecond, _)
        )
}

/// How `column >= from` holds for each file of the snapshot, in the log's order: wholly when
/// its least value is at or past `from` and no value is null; not at all when its greatest is
/// before `from`; partly otherwise (and when a file has no statistics).
fn held_by_statistics(
    files: &LogDataHandler<'_>,
    column: &str,
    from: &ScalarValue,
) -> std::result::Result<Vec<Held>, String> {
    let count = files.num_containers();
    let nulls = null_counts(files, column);
    let column = Column::new_unqualified(column);
    let (Some(mins), Some(maxes)) = (files.min_values(&column), files.max_values(&column)) else {
        return Ok(vec![Held::Partly; count]);
    };
    let bound = |values: &ArrayRef, value: &ScalarValue| {
        value
            .cast_to(values.data_type())
            .and_then(|v| v.to_scalar())
            .map_err(|e| e.to_string())
    };
    // A timestamp's statistics are cut to the millisecond: a file's greatest value may be up
    // to a millisecond past the one written down.
    let before_from = match from {
        ScalarValue::TimestampMicrosecond(Some(micros), zone) => {
            ScalarValue::TimestampMicrosecond(Some(micros - 1_000), zone.clone())
        }
        other => other.clone(),
    };
    let at_or_past = gt_eq(&mins, &bound(&mins, from)?).map_err(|e| e.to_string())?;
    let before = lt(&maxes, &bound(&maxes, &before_from)?).map_err(|e| e.to_string())?;
    let no_nulls = |i: usize| nulls[i].is_some_and(|(nulls, _)| nulls == 0);
    let known = |a: &BooleanArray, i: usize| a.is_valid(i) && a.value(i);
    Ok((0..count)
        .map(|i| {
            if known(&before, i) {
                Held::None
            } else if known(&at_or_past, i) && no_nulls(i) {
                Held::Wholly
            } else {
                Held::Partly
            }
        })
        .collect())
}

/// Each file's nulls in `column` and rows, in the log's order, where its statistics say them.
/// Read file by file: delta-rs's `PruningStatistics::null_counts` and `row_counts` give none.
fn null_counts(files: &LogDataHandler<'_>, column: &str) -> Vec<Option<(u64, u64)>> {
    files
        .iter()
        .map(|file| {
            let nulls = file.null_counts()?.to_json();
            let nulls = nulls.get(column)?.as_u64()?;
            Some((nulls, file.num_records()? as u64))
        })
        .collect()
}

/// The rows of the files at `paths` that `predicate` does not hold (false or null).
async fn rows_not_held(
    table: &DeltaTable,
    paths: Vec<String>,
    predicate: Expr,
) -> std::result::Result<Vec<RecordBatch>, String> {
    read_files(table, paths, |df| df.filter(predicate.is_not_true())).await
}

/// `query` over the rows of the files at `paths`, read through delta-rs's scan of the table's
/// snapshot.
///
/// A plain DataFusion session, not a governed one from tessera-query, on purpose: this is the
/// table's own upkeep, as delta-rs's replaceWhere, merge and optimize read rows in sessions of
/// their own. Every kept row must be written back as it is — a policy's mask or row filter
/// would change or drop stored data; and a watermark is the greatest value the table holds,
/// never shown to anyone (read from the log's statistics otherwise, as ungoverned). Neither
/// reaches a user, so no policy has anything to apply to. Its memory is what `query` keeps of
/// those files (the older rows of one file at the table's end, at most its target size; one
/// value), outside the query memory limit.
async fn read_files(
    table: &DeltaTable,
    paths: Vec<String>,
    query: impl FnOnce(DataFrame) -> datafusion::error::Result<DataFrame>,
) -> std::result::Result<Vec<RecordBatch>, String> {
    let ctx = SessionContext::new();
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|e: DeltaTableError| e.to_string())?;
    let provider = table
        .table_provider()
        .with_file_paths(paths)
        .await
        .map_err(|e| e.to_string())?;
    ctx.read_table(provider)
        .and_then(query)
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())
}

/// `batches` as the rows before their newest value of `column` and those of it; refused when a
/// row is not at or past `from` (or its value is null).
fn split_at_newest(
    batches: &[RecordBatch],
    column: &str,
    from: &ScalarValue,
) -> std::result::Result<(Vec<RecordBatch>, Vec<RecordBatch>), String> {
    let Some(first) = batches.first() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let all =
        arrow::compute::concat_batches(&first.schema(), batches).map_err(|e| e.to_string())?;
    if all.num_rows() == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let values = all
        .column_by_name(column)
        .ok_or_else(|| format!("the rows have no column {column}"))?;
    let from = from
        .cast_to(values.data_type())
        .and_then(|v| v.to_scalar())
        .map_err(|e| e.to_string())?;
    let in_range = null_as_false(gt_eq(values, &from).map_err(|e| e.to_string())?);
    if in_range.true_count() != all.num_rows() {
        return Err(format!(
            "{} of the {} new rows are not in the range replaced",
            all.num_rows() - in_range.true_count(),
            all.num_rows()
        ));
    }
    let newest_at = arrow::compute::sort_to_indices(
        values,
        Some(SortOptions {
            descending: true,
            nulls_first: false,
        }),
        Some(1),
    )
    .map_err(|e| e.to_string())?;
    let newest = ScalarValue::try_from_array(values, newest_at.value(0) as usize)
        .and_then(|v| v.to_scalar())
        .map_err(|e| e.to_string())?;
    let of_newest = null_as_false(eq(values, &newest).map_err(|e| e.to_string())?);
    let older = arrow::compute::not(&of_newest).map_err(|e| e.to_string())?;
    let part = |mask: &BooleanArray| filter_record_batch(&all, mask).map_err(|e| e.to_string());
    Ok((vec![part(&older)?], vec![part(&of_newest)?]))
}

/// A comparison's result with null (a null compared) as false.
fn null_as_false(compared: BooleanArray) -> BooleanArray {
    match compared.nulls() {
        Some(_) => prep_null_mask_filter(&compared),
        None => compared,
    }
}

/// `batch` with the table's column types (a scan may read strings as views), by name.
fn conformed(batch: &RecordBatch, schema: &SchemaRef) -> std::result::Result<RecordBatch, String> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let column = batch
                .column_by_name(field.name())
                .ok_or_else(|| format!("the rows have no column {}", field.name()))?;
            if column.data_type() == field.data_type() {
                Ok(column.clone())
            } else {
                cast(column, field.data_type()).map_err(|e| e.to_string())
            }
        })
        .collect::<std::result::Result<Vec<ArrayRef>, String>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::test_support::storage_with_table;

    #[tokio::test]
    async fn a_replacement_by_key_keeps_the_rows_of_every_other_key_across_files() {
        use arrow::array::{StringArray, StringViewArray};
        let location = "stats/owners/kept";
        let schema = Arc::new(Schema::new(vec![
            Field::new("asset", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let (_dir, storage) = storage_with_table(location, &schema).await;
        for (assets, ns) in [
            (vec!["a", "a", "b"], vec![1, 2, 1]),
            (vec!["c", "b", "d"], vec![1, 2, 1]),
        ] {
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(assets)),
                    Arc::new(Int64Array::from(ns)),
                ],
            )
            .unwrap();
            storage.append(location, vec![batch], None).await.unwrap();
        }
        let kept_rows = |kept: Vec<RecordBatch>| {
            let mut rows: Vec<(String, i64)> = kept
                .iter()
                .flat_map(|b| {
                    let assets = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
                    let ns = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
                    (0..b.num_rows())
                        .map(|i| (assets.value(i).to_string(), ns.value(i)))
                        .collect::<Vec<_>>()
                })
                .collect();
            rows.sort();
            rows
        };
        // By one column, the keys given as views (a transform's values may be): every row of
        // `b` goes, from both files, and the unknown key `z` takes nothing.
        let by_asset: ArrayRef = Arc::new(StringViewArray::from(vec!["b", "z"]));
        let held = storage.rows(location).await.unwrap();
        assert_eq!(held.iter().map(|b| b.num_rows()).sum::<usize>(), 6);
        let kept = rows_without_keys(&held, &["asset".to_string()], &[by_asset], &schema).unwrap();
        assert!(kept.iter().all(|b| b.schema() == schema), "the given types");
        assert_eq!(
            kept_rows(kept),
            [
                ("a".into(), 1),
                ("a".into(), 2),
                ("c".into(), 1),
                ("d".into(), 1)
            ]
        );
        // By both columns: only the rows of those pairs go.
        let assets: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        let ns: ArrayRef = Arc::new(Int64Array::from(vec![2, 1]));
        let kept = rows_without_keys(
            &held,
            &["asset".to_string(), "n".to_string()],
            &[assets, ns],
            &schema,
        )
        .unwrap();
        assert_eq!(
            kept_rows(kept),
            [
                ("a".into(), 1),
                ("b".into(), 2),
                ("c".into(), 1),
                ("d".into(), 1)
            ]
        );
    }

    #[tokio::test]
    async fn the_footers_say_a_timestamps_greatest_microsecond_and_nothing_for_another_column() {
        let location = "stats/clicks/footers";
        let utc: Arc<str> = Arc::from("UTC");
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some(utc.clone())),
                true,
            ),
            Field::new("n", DataType::Int64, true),
        ]));
        let (_dir, storage) = storage_with_table(location, &schema).await;
        for at in [
            vec![Some(7_123_456), None],
            vec![None, None],
            vec![Some(9_000_001)],
        ] {
            let rows = at.len();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(TimestampMicrosecondArray::from(at).with_timezone(utc.clone())),
                    Arc::new(Int64Array::from(vec![1; rows])),
                ],
            )
            .unwrap();
            storage.append(location, vec![batch], None).await.unwrap();
        }
        let table = storage.fresh(location).await.unwrap().unwrap();
        let files: Vec<(String, u64)> = table
            .snapshot()
            .unwrap()
            .log_data()
            .iter()
            .map(|f| (f.path().to_string(), f.size() as u64))
            .collect();
        assert_eq!(files.len(), 3);
        assert_eq!(
            footer_max_micros(&table, &files, "at").await,
            Some(9_000_001),
            "a file of nulls only is passed over"
        );
        assert_eq!(
            footer_max_micros(&table, &files, "n").await,
            None,
            "not a timestamp"
        );
    }
}
