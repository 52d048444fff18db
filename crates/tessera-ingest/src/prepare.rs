use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, StringArray, StringBuilder,
    TimestampMicrosecondArray, new_null_array,
};
use arrow::compute::kernels::cmp;
use arrow::compute::{CastOptions, cast_with_options, concat_batches, filter_record_batch, nullif};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use bytes::Bytes;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tessera_core::{DatasetSchema, LogicalType};
use tessera_quality::{RowValidator, RowVerdicts, Violation};

use crate::error::{IngestError, Result};
use crate::format::Format;

/// A batch split by the contract.
#[derive(Debug)]
pub struct Prepared {
    /// Accepted rows, with the dataset table's schema.
    pub valid: RecordBatch,
    /// Refused rows with the quarantine table's schema.
    pub quarantine: RecordBatch,
    pub rows: usize,
    /// What is needed to refuse the whole batch later (see [`Prepared::refuse_all`]).
    as_received: Vec<ArrayRef>,
    verdicts: RowVerdicts,
    batch_id: String,
    now_micros: i64,
}

impl Prepared {
    /// No rows at all (a pull that read only records that are no rows).
    pub fn empty(dataset: &DatasetSchema, batch_id: &str, now_micros: i64) -> Result<Prepared> {
        let target = table_schema(dataset, "arrow")?;
        Ok(Prepared {
            valid: RecordBatch::new_empty(target.clone()),
            quarantine: RecordBatch::new_empty(dataset.quarantine_arrow_schema()),
            rows: 0,
            as_received: target
                .fields()
                .iter()
                .map(|_| new_null_array(&DataType::Utf8, 0))
                .collect(),
            verdicts: RowVerdicts::default(),
            batch_id: batch_id.to_string(),
            now_micros,
        })
    }

    /// Refuses every row: the accepted ones go to the quarantine too, as received, with `rule`,
    /// `column` and `reason` (a dataset-level check the batch would break); rows already refused
    /// keep their own reasons. Afterwards nothing is accepted.
    pub fn refuse_all(
        &mut self,
        dataset: &DatasetSchema,
        rule: &'static str,
        column: &str,
        reason: &str,
    ) -> Result<()> {
        for row in 0..self.rows {
            if !self.verdicts.failures.contains_key(&row) {
                self.verdicts.add(
                    row,
                    Violation {
                        rule,
                        column: column.to_string(),
                        reason: reason.to_string(),
                    },
                );
            }
        }
        self.quarantine = quarantine_batch(
            dataset,
            &self.as_received,
            &self.verdicts,
            &self.batch_id,
            self.now_micros,
        )?;
        self.valid = RecordBatch::new_empty(self.valid.schema());
        Ok(())
    }

    pub fn accepted(&self) -> usize {
        self.valid.num_rows()
    }
    pub fn quarantined(&self) -> usize {
        self.quarantine.num_rows()
    }
}

/// Reads `bytes` as `format` and splits the rows by `dataset`'s contract. `now_micros` stamps the
/// quarantined rows. Fails (writing nothing) only when the input as a whole is unusable:
/// unreadable, empty, or with columns the contract does not know.
pub fn prepare(
    dataset: &DatasetSchema,
    validator: &RowValidator,
    format: Format,
    bytes: Bytes,
    batch_id: &str,
    now_micros: i64,
) -> Result<Prepared> {
    let target = table_schema(dataset, format.as_str())?;
    let raw = read(format, bytes, &target)?;
    prepare_batch(dataset, validator, raw, batch_id, now_micros)
}

/// Many small NDJSON bodies for one dataset (event requests), read and checked as one batch:
/// reading and validating cost about as much for one row as for hundreds, so a stream of
/// one-event requests is validated a group at a time.
#[derive(Debug)]
pub struct PreparedTogether {
    /// Every body's accepted rows, in order, with the dataset table's schema.
    pub valid: RecordBatch,
    /// Every body's refused rows, each numbered within its own body and carrying its own
    /// batch id, exactly as if the body had been prepared alone.
    pub quarantine: RecordBatch,
    /// Per body, in order: how many rows it held, and which rows of `quarantine` are its own.
    pub bodies: Vec<BodyRows>,
}

/// One body's part of a [`PreparedTogether`].
#[derive(Debug, Default, Clone)]
pub struct BodyRows {
    pub rows: usize,
    pub quarantined: Vec<usize>,
}

/// [`prepare`] for many NDJSON `bodies` (each with its batch id) at once. `None` when one of them
/// cannot be read as it stands (not JSON, a value cut short, an unknown key, no rows): prepare
/// each alone then, so that each answers with its own error.
pub fn prepare_together(
    dataset: &DatasetSchema,
    validator: &RowValidator,
    bodies: &[(Bytes, &str)],
    now_micros: i64,
) -> Result<Option<PreparedTogether>> {
    let target = table_schema(dataset, "ndjson")?;
    let names: Vec<String> = target.fields().iter().map(|f| f.name().clone()).collect();
    // The decoder reserves room for a whole batch up front: about one row a line. More rows
    // than that (several events on a line) fill it, and the group is prepared body by body.
    // One row more a body: a full decoder stops before a body's trailing newline.
    let lines: usize = bodies.iter().map(|(b, _)| ndjson_lines(b) + 1).sum();
    let Ok(mut decoder) = arrow::json::ReaderBuilder::new(text_schema(&names, &target))
        .with_coerce_primitive(true)
        .with_strict_mode(true)
        .with_batch_size(lines)
        .build_decoder()
    else {
        return Ok(None);
    };
    // Where each body's rows begin in the whole.
    let mut starts = Vec::with_capacity(bodies.len());
    for (body, _) in bodies {
        let before = decoder.len();
        let mut rest = &body[..];
        while !rest.is_empty() {
            match decoder.decode(rest) {
                Ok(0) | Err(_) => return Ok(None),
                Ok(n) => rest = &rest[n..],
            }
        }
        if decoder.has_partial_record() || decoder.len() == before {
            return Ok(None);
        }
        starts.push(before);
    }
    let Ok(Some(raw)) = decoder.flush() else {
        return Ok(None);
    };
    let prepared = prepare_batch(dataset, validator, raw, "", now_micros)?;

    // Renumber the refused rows within their own bodies and give them their bodies' ids.
    let mut bodies_rows: Vec<BodyRows> = starts
        .iter()
        .enumerate()
        .map(|(i, start)| BodyRows {
            rows: starts.get(i + 1).copied().unwrap_or(prepared.rows) - start,
            quarantined: Vec::new(),
        })
        .collect();
    let mut quarantine = prepared.quarantine;
    if quarantine.num_rows() > 0 {
        let schema = quarantine.schema();
        let row_at = schema.index_of(tessera_core::QUARANTINE_ROW_NUMBER)?;
        let id_at = schema.index_of(tessera_core::QUARANTINE_BATCH_ID)?;
        let whole_rows = quarantine
            .column(row_at)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| IngestError::Unreadable {
                format: "ndjson",
                reason: "the quarantine's row numbers are not integers".into(),
            })?
            .clone();
        let mut ids = StringBuilder::new();
        let mut rows = Vec::with_capacity(whole_rows.len());
        for (i, whole_row) in whole_rows.values().iter().enumerate() {
            let index = (*whole_row - 1) as usize;
            let body = starts.partition_point(|s| *s <= index) - 1;
            bodies_rows[body].quarantined.push(i);
            ids.append_value(bodies[body].1);
            rows.push((index - starts[body]) as i64 + 1);
        }
        let mut columns = quarantine.columns().to_vec();
        columns[row_at] = Arc::new(Int64Array::from(rows));
        columns[id_at] = Arc::new(ids.finish());
        quarantine = RecordBatch::try_new(schema, columns)?;
    }
    Ok(Some(PreparedTogether {
        valid: prepared.valid,
        quarantine,
        bodies: bodies_rows,
    }))
}

/// Splits rows that are already in Arrow form (from a file reader, a query, a connector) by
/// `dataset`'s contract: columns are matched by name and cast to the contract's types, exactly
/// as [`prepare`] does for files.
pub fn prepare_batch(
    dataset: &DatasetSchema,
    validator: &RowValidator,
    raw: RecordBatch,
    batch_id: &str,
    now_micros: i64,
) -> Result<Prepared> {
    let target = table_schema(dataset, "arrow")?;
    if raw.num_rows() == 0 {
        return Err(IngestError::Empty);
    }
    check_columns(raw.schema_ref(), &target)?;
    let rows = raw.num_rows();

    // Cast each contract column; a value that was there but does not cast is a type violation.
    let mut verdicts = RowVerdicts::default();
    let mut typed_columns = Vec::with_capacity(target.fields().len());
    let mut raw_columns = Vec::with_capacity(target.fields().len());
    for (field, column) in target.fields().iter().zip(&dataset.columns) {
        let raw_column = match raw.column_by_name(field.name()) {
            Some(c) => blank_is_null(c.clone(), field.data_type())?,
            None => new_null_array(&DataType::Utf8, rows),
        };
        let typed = cast_with_options(&raw_column, field.data_type(), &CastOptions::default())?;
        let mut bad = lost_in_cast(&raw_column, &typed);
        if column.logical_type == Some(LogicalType::Time) {
            let as_time = cast_with_options(
                &raw_column,
                &DataType::Time64(TimeUnit::Microsecond),
                &CastOptions::default(),
            )?;
            bad = arrow::compute::or(&bad, &lost_in_cast(&raw_column, &as_time))?;
        }
        if bad.true_count() > 0 {
            let formatter =
                ArrayFormatter::try_new(raw_column.as_ref(), &FormatOptions::default())?;
            let expected = column
                .logical_type
                .map(|t| t.as_str().to_string())
                .unwrap_or_else(|| field.data_type().to_string());
            for row in (0..rows).filter(|r| bad.value(*r)) {
                verdicts.add(
                    row,
                    Violation {
                        rule: "type",
                        column: field.name().clone(),
                        reason: format!(
                            "{}: {:?} is not a valid {expected}",
                            field.name(),
                            clip(&formatter.value(row).to_string())
                        ),
                    },
                );
            }
        }
        typed_columns.push(typed);
        raw_columns.push(raw_column);
    }
    let typed = RecordBatch::try_new(target.clone(), typed_columns)?;
    for (row, violations) in validator.check_showing(&typed, &raw_columns)?.failures {
        for v in violations {
            // A value that failed its type is null after the cast; do not also call it missing.
            if !verdicts.has(row, "type", &v.column) {
                verdicts.add(row, v);
            }
        }
    }

    let passing = verdicts.passing_mask(rows);
    let valid = filter_record_batch(&typed, &passing)?;
    let quarantine = quarantine_batch(dataset, &raw_columns, &verdicts, batch_id, now_micros)?;
    Ok(Prepared {
        valid,
        quarantine,
        rows,
        as_received: raw_columns,
        verdicts,
        batch_id: batch_id.to_string(),
        now_micros,
    })
}

fn clip(value: &str) -> String {
    match value.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &value[..i]),
        None => value.to_string(),
    }
}

/// Rows where the input had a value and the cast produced none.
fn lost_in_cast(raw: &ArrayRef, typed: &ArrayRef) -> BooleanArray {
    match (raw.logical_nulls(), typed.logical_nulls()) {
        // Nothing became null that was not null before.
        (_, None) => BooleanArray::new(arrow::buffer::BooleanBuffer::new_unset(raw.len()), None),
        (raw_nulls, Some(typed_nulls)) => {
            let raw_valid = raw_nulls.map_or_else(
                || arrow::buffer::BooleanBuffer::new_set(raw.len()),
                |n| n.inner().clone(),
            );
            BooleanArray::new(&raw_valid & &!typed_nulls.inner(), None)
        }
    }
}

/// An empty text field is a missing value for non-text columns (as in CSV everywhere).
fn blank_is_null(column: ArrayRef, target: &DataType) -> Result<ArrayRef> {
    if column.data_type() != &DataType::Utf8 || target == &DataType::Utf8 {
        return Ok(column);
    }
    let empty = StringArray::new_scalar("");
    let is_empty = cmp::eq(&column, &empty)?;
    Ok(nullif(column.as_ref(), &is_empty)?)
}

/// Refuses `raw` (a file's, or a query result's, columns) when it has a column `target` (the
/// contract's) does not declare.
pub fn check_columns(raw: &SchemaRef, target: &SchemaRef) -> Result<()> {
    let unknown: Vec<String> = raw
        .fields()
        .iter()
        .filter(|f| target.field_with_name(f.name()).is_err())
        .map(|f| f.name().clone())
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(IngestError::UnknownColumns {
            unknown,
            expected: target.fields().iter().map(|f| f.name().clone()).collect(),
        })
    }
}

/// The schema a text format is read with: scalars as text (cast later, so that a bad value is
/// one quarantined row, not a failed file), nested columns with their own type.
fn text_schema(names: &[String], target: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = names
        .iter()
        .map(|name| {
            let data_type = match target.field_with_name(name) {
                Ok(f) if f.data_type().is_nested() => f.data_type().clone(),
                _ => DataType::Utf8,
            };
            Field::new(name, data_type, true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn read(format: Format, bytes: Bytes, target: &SchemaRef) -> Result<RecordBatch> {
    let unreadable = |reason: String| IngestError::Unreadable {
        format: format.as_str(),
        reason,
    };
    let batches: Vec<RecordBatch> = match format {
        Format::Csv => {
            let mut header = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(Cursor::new(&bytes));
            let names: Vec<String> = match header.records().next() {
                Some(record) => record
                    .map_err(|e| unreadable(format!("header: {e}")))?
                    .iter()
                    .map(|s| s.trim().to_string())
                    .collect(),
                None => return Err(IngestError::Empty),
            };
            let mut seen = HashMap::new();
            for name in &names {
                if seen.insert(name.clone(), ()).is_some() {
                    return Err(unreadable(format!(
                        "column {name:?} appears twice in the header"
                    )));
                }
            }
            let schema = text_schema(&names, target);
            arrow::csv::ReaderBuilder::new(schema)
                .with_header(true)
                .build(Cursor::new(bytes))
                .map_err(|e| unreadable(e.to_string()))?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| unreadable(e.to_string()))?
        }
        Format::Ndjson => {
            // One pass over the contract's columns; only a document it cannot read (a line that
            // is not an object, an unknown key) is read again, to say where and what.
            let names: Vec<String> = target.fields().iter().map(|f| f.name().clone()).collect();
            match read_ndjson(&bytes, text_schema(&names, target)) {
                Ok(batches) if batches.iter().any(|b| b.num_rows() > 0) => batches,
                first_try => {
                    let names = json_keys(&bytes).map_err(unreadable)?;
                    let schema = text_schema(&names, target);
                    check_columns(&schema, target)?;
                    match first_try {
                        Ok(_) => return Err(IngestError::Empty),
                        Err(_) => read_ndjson(&bytes, schema).map_err(unreadable)?,
                    }
                }
            }
        }
        Format::Parquet => ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|e| unreadable(e.to_string()))?
            .build()
            .map_err(|e| unreadable(e.to_string()))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| unreadable(e.to_string()))?,
    };
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => return Err(IngestError::Empty),
    };
    Ok(concat_batches(&schema, &batches)?)
}

/// An NDJSON document read with `schema` (scalars as text): strict, so an unknown key fails.
fn read_ndjson(bytes: &Bytes, schema: SchemaRef) -> std::result::Result<Vec<RecordBatch>, String> {
    arrow::json::ReaderBuilder::new(schema)
        .with_coerce_primitive(true)
        .with_strict_mode(true)
        // The decoder reserves room for a whole batch: not 64k rows for a one-event request.
        .with_batch_size((ndjson_lines(bytes) + 1).min(64 * 1024))
        .build(Cursor::new(bytes.clone()))
        .map_err(|e| e.to_string())?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| e.to_string())
}

/// The dataset table's Arrow schema; a contract type Arrow has no type for makes the input
/// (read as `format`) unusable.
fn table_schema(dataset: &DatasetSchema, format: &'static str) -> Result<SchemaRef> {
    dataset.arrow_schema().map_err(|e| IngestError::Unreadable {
        format,
        reason: e.to_string(),
    })
}

/// The lines of an NDJSON document (a last line without its newline counted too): about its
/// rows (a blank line counts as one).
pub fn ndjson_lines(bytes: &[u8]) -> usize {
    // memchr's vectorised search: a byte-by-byte count was a few percent of an event request.
    memchr::memchr_iter(b'\n', bytes).count() + usize::from(!bytes.ends_with(b"\n"))
}

/// Every key that appears in any line of an NDJSON document, in order of first appearance; a
/// line that is not a JSON object is reported with its number.
fn json_keys(bytes: &[u8]) -> std::result::Result<Vec<String>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut keys: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        let object = value
            .as_object()
            .ok_or_else(|| format!("line {}: expected a JSON object", i + 1))?;
        for key in object.keys() {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
    }
    Ok(keys)
}

/// Rows accepted at the edge and refused as a whole later, at their commit (a dataset-level
/// check the commit would break): in the quarantine table's shape, each value as text,
/// numbered from 1 in `rows`, with `rule`, `column` and `reason`.
pub fn refused_rows(
    dataset: &DatasetSchema,
    rows: &RecordBatch,
    rule: &'static str,
    column: &str,
    reason: &str,
    batch_id: &str,
    now_micros: i64,
) -> Result<RecordBatch> {
    let mut verdicts = RowVerdicts::default();
    for row in 0..rows.num_rows() {
        verdicts.add(
            row,
            Violation {
                rule,
                column: column.to_string(),
                reason: reason.to_string(),
            },
        );
    }
    let columns: Vec<ArrayRef> = dataset
        .columns
        .iter()
        .map(|c| {
            rows.column_by_name(&c.name)
                .cloned()
                .unwrap_or_else(|| new_null_array(&DataType::Utf8, rows.num_rows()))
        })
        .collect();
    quarantine_batch(dataset, &columns, &verdicts, batch_id, now_micros)
}

/// What could not be read as rows at all — a Kafka record whose value is not a JSON object, a
/// file no reader takes — in the quarantine table's shape: every column empty, rule
/// `unreadable`, numbered by each one's place in what was read (from 0), with the reason.
pub fn unreadable_rows(
    dataset: &DatasetSchema,
    rows: &[(usize, String)],
    batch_id: &str,
    now_micros: i64,
) -> Result<RecordBatch> {
    let mut verdicts = RowVerdicts::default();
    for (row, reason) in rows {
        verdicts.add(
            *row,
            Violation {
                rule: "unreadable",
                column: String::new(),
                reason: reason.clone(),
            },
        );
    }
    let len = rows.iter().map(|(row, _)| row + 1).max().unwrap_or(0);
    let columns: Vec<ArrayRef> = dataset
        .columns
        .iter()
        .map(|_| new_null_array(&DataType::Utf8, len))
        .collect();
    quarantine_batch(dataset, &columns, &verdicts, batch_id, now_micros)
}

fn quarantine_batch(
    dataset: &DatasetSchema,
    raw_columns: &[ArrayRef],
    verdicts: &RowVerdicts,
    batch_id: &str,
    now_micros: i64,
) -> Result<RecordBatch> {
    let schema = dataset.quarantine_arrow_schema();
    if verdicts.failures.is_empty() {
        return Ok(RecordBatch::new_empty(schema));
    }
    let n = verdicts.failures.len();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    let options = FormatOptions::default();
    for raw in raw_columns {
        let formatter = ArrayFormatter::try_new(raw.as_ref(), &options)?;
        let mut values = StringBuilder::new();
        for row in verdicts.failures.keys() {
            if raw.is_valid(*row) {
                values.append_value(formatter.value(*row).to_string());
            } else {
                values.append_null();
            }
        }
        columns.push(Arc::new(values.finish()));
    }
    let first = |f: fn(&Violation) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            verdicts.failures.values().map(|v| f(&v[0])),
        ))
    };
    columns.push(Arc::new(StringArray::from_iter_values(
        std::iter::repeat_n(batch_id, n),
    )));
    columns.push(Arc::new(Int64Array::from_iter_values(
        verdicts.failures.keys().map(|row| *row as i64 + 1),
    )));
    columns.push(first(|v| v.rule.to_string()));
    columns.push(first(|v| v.column.clone()));
    columns.push(Arc::new(StringArray::from_iter_values(
        verdicts.failures.values().map(|v| {
            v.iter()
                .map(|v| v.reason.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        }),
    )));
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(vec![now_micros; n]).with_timezone("UTC"),
    ));
    Ok(RecordBatch::try_new(schema, columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::{Bound, Column, Constraints, Name};

    fn dataset() -> DatasetSchema {
        let col = |name: &str, t: LogicalType, required: bool, c: Constraints| Column {
            logical_type: Some(t),
            required,
            constraints: c,
            ..Column::new(name)
        };
        DatasetSchema {
            name: Name::parse("orders").unwrap(),
            description: None,
            quality: Vec::new(),
            columns: vec![
                col("id", LogicalType::Integer, true, Constraints::default()),
                col(
                    "amount",
                    LogicalType::Number,
                    false,
                    Constraints {
                        minimum: Some(Bound::Number(0.0)),
                        ..Default::default()
                    },
                ),
                col(
                    "placed",
                    LogicalType::Timestamp,
                    false,
                    Constraints::default(),
                ),
            ],
        }
    }

    fn run(format: Format, input: &str) -> Result<Prepared> {
        let ds = dataset();
        let validator = RowValidator::new(&ds).unwrap();
        prepare(
            &ds,
            &validator,
            format,
            Bytes::from(input.to_string()),
            "b1",
            0,
        )
    }

    fn column_text(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
        let c = batch.column_by_name(name).unwrap();
        let c = cast_with_options(c, &DataType::Utf8, &CastOptions::default()).unwrap();
        c.as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    #[test]
    fn csv_rows_are_cast_and_split_with_reasons() {
        let p = run(
            Format::Csv,
            "placed,id,amount\n2024-01-01T10:00:00Z,1,9.5\n,2,-3\n2024-01-02,x,1\n,,\n",
        )
        .unwrap();
        assert_eq!((p.rows, p.accepted(), p.quarantined()), (4, 1, 3));
        assert_eq!(column_text(&p.valid, "id"), vec![Some("1".into())]);
        assert_eq!(
            column_text(&p.quarantine, "_reason"),
            vec![
                Some("amount: \"-3\" is not >= 0".into()),
                Some("id: \"x\" is not a valid integer".into()),
                Some("id is required but missing".into()),
            ]
        );
        assert_eq!(
            column_text(&p.quarantine, "_rule"),
            vec![
                Some("minimum".into()),
                Some("type".into()),
                Some("required".into())
            ]
        );
        assert_eq!(
            column_text(&p.quarantine, "_row_number"),
            vec![Some("2".into()), Some("3".into()), Some("4".into())]
        );
        // Quarantined values are kept as received.
        assert_eq!(
            column_text(&p.quarantine, "id"),
            vec![Some("2".into()), Some("x".into()), None]
        );
    }

    #[test]
    fn ndjson_numbers_and_strings_are_both_accepted() {
        let p = run(
            Format::Ndjson,
            "{\"id\": 1, \"amount\": 2.5}\n{\"id\": \"2\"}\n",
        )
        .unwrap();
        assert_eq!((p.accepted(), p.quarantined()), (2, 0));
    }

    #[test]
    fn unusable_input_is_refused_whole() {
        let err = run(Format::Csv, "id,colour\n1,red\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
        let err = run(Format::Ndjson, "{\"id\": 1}\n{not json\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(matches!(
            run(Format::Csv, "id,amount\n"),
            Err(IngestError::Empty)
        ));
    }

    #[test]
    fn a_refused_batch_goes_to_quarantine_whole_with_every_reason() {
        let mut p = run(Format::Csv, "id,amount\n1,5\n2,-1\n3,7\n").unwrap();
        assert_eq!((p.accepted(), p.quarantined()), (2, 1));
        p.refuse_all(
            &dataset(),
            "row_count",
            "",
            "the batch would break row_count",
        )
        .unwrap();
        assert_eq!((p.accepted(), p.quarantined()), (0, 3));
        assert_eq!(
            column_text(&p.quarantine, "_rule"),
            vec![
                Some("row_count".into()),
                Some("minimum".into()),
                Some("row_count".into())
            ]
        );
        assert_eq!(
            column_text(&p.quarantine, "_row_number"),
            vec![Some("1".into()), Some("2".into()), Some("3".into())]
        );
        assert_eq!(
            column_text(&p.quarantine, "amount"),
            vec![Some("5".into()), Some("-1".into()), Some("7".into())]
        );
    }
}
