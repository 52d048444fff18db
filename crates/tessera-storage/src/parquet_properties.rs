//! How the Parquet files of a write are encoded: delta-rs's defaults (Snappy), except that a
//! column whose dictionary would not pay is written without one.
//!
//! The Parquet writer dictionary-encodes every column until a column chunk's dictionary passes
//! its page limit (1 MiB) and only then falls back to plain encoding. For an id, a user or a URL
//! that is a hash-table insert per value for nothing: the dictionary holds every value again.
//! Interning was a fifth of the server's CPU under the event benchmark's load (bench/RESULTS.md).
//! So each column's distinct values are estimated from a sample of the write (Chao1, from how
//! many sampled values were seen once and twice), and the dictionary is left off where it would
//! hold more than a fifth of the rows or outgrow its page: a dictionary pays where values repeat
//! (a kind, a format, a day's minutes), and there it is kept. Between a fifth and a half it did
//! not (arrow-rs 59, the demo's tables): a column whose values come back two to four times
//! (a user per event, an artwork per owner) took 1.7–2.2 times as long to encode with one, for a
//! file 0–20% smaller, or larger where the values were sorted (Snappy then compresses the runs).
//!
//! delta-rs hands the writer a write's rows 1,024 at a time unless told otherwise; see
//! [`rows_per_write_call`] for why a write here hands it more.

use std::hash::Hash;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
// hashbrown with a fast hasher: the sample is counted on every write.
use datafusion::common::HashMap;
use deltalake::operations::write::WriteBuilder;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::{
    DEFAULT_DICTIONARY_PAGE_SIZE_LIMIT, DEFAULT_MAX_ROW_GROUP_ROW_COUNT, WriterProperties,
};
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::table::config::TablePropertiesExt;
use deltalake::{DeltaTable, DeltaTableError};

/// The rows of a write the choice looks at: enough to tell repeating values from distinct ones,
/// few enough to cost nothing next to the write.
const SAMPLE_ROWS: usize = 4096;

/// How many times, on average, a column's values must come back for a dictionary to pay.
const DICTIONARY_MIN_REPEATS: f64 = 5.0;

/// `table.write(batches)` encoded as this module says, and handed to the Parquet writer in
/// pieces as large as [`rows_per_write_call`] allows.
pub(crate) fn encoded_write(
    table: DeltaTable,
    batches: Vec<RecordBatch>,
) -> Result<WriteBuilder, DeltaTableError> {
    let target_file_bytes = table.snapshot()?.table_config().target_file_size().get();
    let encoding = for_batches(&batches);
    let rows_per_call = rows_per_write_call(&batches, target_file_bytes);
    Ok(table
        .write(batches)
        .with_writer_properties(encoding)
        .with_write_batch_size(rows_per_call))
}

/// How many rows of `batches` delta-rs hands the Parquet writer at once (its default is 1,024).
/// Fewer, larger calls encode faster: writing a 300,000-row commit of events in calls of 1,024
/// rows took twice as long as in one call (measured with arrow-rs 59). delta-rs checks a file
/// against its target size between calls, so a call holds the rows that take up a quarter of
/// `target_file_bytes` in memory (their encoding is smaller): a file still ends within a
/// quarter of its target, as a table kept in small files for merges needs (see
/// `Storage::size_files_for_merges`). At most a row group's rows.
pub(crate) fn rows_per_write_call(batches: &[RecordBatch], target_file_bytes: u64) -> usize {
    const DELTA_RS_DEFAULT: usize = 1024;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
    if rows == 0 || bytes == 0 {
        return DELTA_RS_DEFAULT;
    }
    let bytes_per_row = (bytes / rows).max(1) as u64;
    ((target_file_bytes / 4 / bytes_per_row) as usize)
        .clamp(DELTA_RS_DEFAULT, DEFAULT_MAX_ROW_GROUP_ROW_COUNT)
}

/// The writer properties for writing `batches`: Snappy, as delta-rs writes by default, and no
/// dictionary for the top-level columns whose dictionary would not pay (see the module's doc).
pub(crate) fn for_batches(batches: &[RecordBatch]) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_created_by(format!("delta-rs version {}", deltalake::crate_version()))
        .set_compression(Compression::SNAPPY);
    let Some(first) = batches.iter().find(|b| b.num_rows() > 0) else {
        return builder.build();
    };
    // A dictionary is a column chunk's: at most a row group's rows.
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let chunk_rows = rows.min(DEFAULT_MAX_ROW_GROUP_ROW_COUNT);
    for (index, field) in first.schema().fields().iter().enumerate() {
        let dictionary_pays = Sample::of(batches, index)
            .map(|sample| sample.dictionary_pays(chunk_rows))
            .unwrap_or(true);
        if !dictionary_pays {
            builder = builder
                .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
        }
    }
    builder.build()
}

/// What a sample of one column says about its values.
#[derive(Debug)]
struct Sample {
    /// Rows sampled, and how many of them held a value.
    rows: usize,
    values: usize,
    /// Distinct values, and of them how many were seen once and how many twice.
    distinct: usize,
    once: usize,
    twice: usize,
    /// The values' mean size in bytes.
    mean_bytes: f64,
}

impl Sample {
    /// The first [`SAMPLE_ROWS`] rows of column `index`, across the batches; None for a kind of
    /// column the choice does not apply to (booleans, nested, already dictionary-encoded,
    /// fixed-width values over 16 bytes): those keep the writer's default.
    fn of(batches: &[RecordBatch], index: usize) -> Option<Sample> {
        let mut left = SAMPLE_ROWS;
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for batch in batches {
            let take = batch.num_rows().min(left);
            if take > 0 {
                arrays.push(batch.column(index).slice(0, take));
                left -= take;
            }
        }
        // Text and bytes of every layout are read as `Binary`: a copy of the sample, one way
        // of reading it.
        let arrays: Vec<ArrayRef> = arrays
            .iter()
            .map(|a| match a.data_type() {
                DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::LargeBinary
                | DataType::BinaryView => arrow::compute::cast(a, &DataType::Binary).ok(),
                _ => Some(a.clone()),
            })
            .collect::<Option<_>>()?;
        let mut bytes: HashMap<&[u8], u32> = HashMap::default();
        let mut fixed: HashMap<u128, u32> = HashMap::default();
        let mut rows = 0;
        let mut value_bytes = 0usize;
        for array in &arrays {
            let array = array.as_ref();
            rows += array.len();
            let present = (0..array.len()).filter(|&i| array.is_valid(i));
            if let DataType::Binary = array.data_type() {
                let a = array.as_binary::<i32>();
                let values = present.map(|i| a.value(i));
                count(&mut bytes, values.inspect(|v| value_bytes += v.len()));
                continue;
            }
            let width = array.data_type().primitive_width().filter(|w| *w <= 16)?;
            let data = array.to_data();
            let buffer = data.buffers().first()?;
            let values = &buffer.as_slice()[data.offset() * width..];
            let keys = present.map(|i| {
                let mut key = [0u8; 16];
                key[..width].copy_from_slice(&values[i * width..(i + 1) * width]);
                u128::from_le_bytes(key)
            });
            count(&mut fixed, keys.inspect(|_| value_bytes += width));
        }
        let frequencies = bytes.values().chain(fixed.values());
        let (mut values, mut once, mut twice) = (0usize, 0usize, 0usize);
        for &n in frequencies {
            values += n as usize;
            once += usize::from(n == 1);
            twice += usize::from(n == 2);
        }
        Some(Sample {
            rows,
            values,
            distinct: bytes.len() + fixed.len(),
            once,
            twice,
            mean_bytes: value_bytes as f64 / values.max(1) as f64,
        })
    }

    /// Whether a dictionary pays for a column chunk of `chunk_rows` rows like the sample: its
    /// estimated distinct values are at most a fifth of the chunk's values (see the module's
    /// doc) and fit the dictionary's page (past it the writer gives the dictionary up, having
    /// interned a page's worth).
    fn dictionary_pays(&self, chunk_rows: usize) -> bool {
        if self.values == 0 {
            return true;
        }
        let chunk_values = chunk_rows as f64 * self.values as f64 / self.rows as f64;
        // Chao1, bias-corrected: the values never seen are estimated from those seen once
        // against those seen twice.
        let unseen =
            (self.once * self.once.saturating_sub(1)) as f64 / (2 * (self.twice + 1)) as f64;
        let distinct = (self.distinct as f64 + unseen).min(chunk_values);
        distinct <= chunk_values / DICTIONARY_MIN_REPEATS
            && distinct * self.mean_bytes <= DEFAULT_DICTIONARY_PAGE_SIZE_LIMIT as f64
    }
}

/// Counts each of `values` into `counts`.
fn count<K: Hash + Eq>(counts: &mut HashMap<K, u32>, values: impl Iterator<Item = K>) {
    for value in values {
        *counts.entry(value).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};

    use super::*;

    fn dictionary(properties: &WriterProperties, column: &str) -> bool {
        properties.dictionary_enabled(&ColumnPath::from(column))
    }

    /// A deterministic stream of pseudo-random numbers below `range` (an LCG: the test needs
    /// values spread like real ones, not quality randomness).
    fn spread(range: u64) -> impl FnMut() -> u64 {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % range
        }
    }

    #[test]
    fn a_dictionary_is_left_off_where_it_would_not_pay() {
        let rows = 300_000;
        let schema = Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Utf8, false),
            Field::new("user_id", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, true),
            Field::new("dwell_ms", DataType::Int64, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new(
                "loaded_at",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            Field::new("country", DataType::Utf8, true),
            Field::new("asset_id", DataType::Utf8, false),
        ]));
        let kinds = ["view", "like", "share", "purchase"];
        let (mut user, mut dwell, mut minute, mut asset) = (
            spread(100_000_000),
            spread(6_000),
            spread(11_520),
            spread(100_000),
        );
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("e{i:012}")),
                )),
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|_| format!("U{:08}", user())),
                )),
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| kinds[i % 4]),
                )),
                Arc::new(Int64Array::from_iter_values(
                    (0..rows).map(|_| dwell() as i64),
                )),
                // Eight days of minutes: many repeats over the write, few within the sample.
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    (0..rows).map(|_| 1_764_547_200_000_000 + minute() as i64 * 60_000_000),
                )),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    (0..rows as i64).map(|i| 1_764_547_200_000_000 + i),
                )),
                // Mostly missing: the few values there are repeat.
                Arc::new(StringArray::from_iter(
                    (0..rows).map(|i| (i % 100 == 0).then_some("DE")),
                )),
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|_| format!("A{:07}", asset())),
                )),
            ],
        )
        .unwrap();
        // Split, as a commit's batches are: the sample reads across them.
        let batches = vec![batch.slice(0, 1000), batch.slice(1000, rows - 1000)];
        let properties = for_batches(&batches);
        assert!(!dictionary(&properties, "event_id"), "unique ids");
        assert!(
            !dictionary(&properties, "user_id"),
            "nearly every user once"
        );
        assert!(!dictionary(&properties, "loaded_at"), "distinct timestamps");
        assert!(dictionary(&properties, "kind"), "four kinds");
        assert!(
            dictionary(&properties, "dwell_ms"),
            "6,000 values over 300,000 rows"
        );
        assert!(
            !dictionary(&properties, "asset_id"),
            "each of 100,000 values about three times"
        );
        assert!(
            dictionary(&properties, "at"),
            "11,520 minutes over 300,000 rows"
        );
        assert!(
            dictionary(&properties, "country"),
            "one value among the missing"
        );
        assert_eq!(
            properties.compression(&ColumnPath::from("kind")),
            Compression::SNAPPY
        );

        // A small write of the same columns: a dictionary of the minutes would hold nearly
        // every row's value.
        let small = for_batches(&[batch.slice(0, 2000)]);
        assert!(!dictionary(&small, "at"));
        assert!(dictionary(&small, "kind"));
    }

    #[test]
    fn a_write_is_handed_over_in_calls_that_still_let_a_file_end_near_its_target() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = |rows: i64| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from_iter_values(0..rows))],
            )
            .unwrap()
        };
        // 300,000 rows of 8 bytes: far below a quarter of Delta's 100 MiB target, one call.
        let commit = [batch(100_000), batch(200_000)];
        assert!(rows_per_write_call(&commit, 100 << 20) >= 300_000);
        // Files of 256 KiB (a table kept for merges): calls of 64 KiB of rows.
        assert_eq!(rows_per_write_call(&commit, 256 << 10), 8_192);
        // Never fewer than delta-rs's own 1,024, nor more than a row group's.
        assert_eq!(rows_per_write_call(&commit, 1 << 10), 1_024);
        let huge = [batch(2_000_000)];
        assert_eq!(
            rows_per_write_call(&huge, 1 << 40),
            DEFAULT_MAX_ROW_GROUP_ROW_COUNT
        );
        assert_eq!(rows_per_write_call(&[batch(0)], 100 << 20), 1_024);
    }

    #[test]
    fn a_write_without_rows_keeps_the_defaults() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
        let properties = for_batches(&[RecordBatch::new_empty(schema)]);
        assert!(dictionary(&properties, "id"));
    }
}
