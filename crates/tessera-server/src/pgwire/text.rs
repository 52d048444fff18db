//! Timestamps of a text-format result, formatted a column at a time.
//!
//! pgwire formats each timestamp value on its own: it parses the session's DateStyle, builds
//! the format string, parses that string into chrono's items and looks the time zone up by
//! name, once per value. On a result with a timestamp column that was most of the time spent
//! encoding it. Here the same format string is parsed once per column, the time zone once, and
//! the column becomes the very text pgwire would have written (the tests compare the two byte
//! for byte); the row description keeps the timestamp type, so the client reads a timestamp.

use std::fmt::Write;
use std::str::FromStr;
use std::sync::Arc;

use chrono::format::{Item, StrftimeItems};
use chrono::{Datelike, FixedOffset, NaiveDateTime, Timelike};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray, StringBuilder};
use datafusion::arrow::datatypes::{
    ArrowTimestampType, DataType, Field, Schema, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use datafusion::arrow::record_batch::RecordBatch;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::types::format::date_style::DateStyle;

/// `batch` with each timestamp column that goes out as text replaced by its text; other
/// columns, and every column of a binary-format result, are left as they are.
pub(super) fn timestamps_as_text(
    batch: RecordBatch,
    fields: &[FieldInfo],
) -> PgWireResult<RecordBatch> {
    let schema = batch.schema();
    let texts = |(i, field): (usize, &Arc<Field>)| match field.data_type() {
        DataType::Timestamp(unit, zone)
            if fields
                .get(i)
                .is_some_and(|f| f.format() == FieldFormat::Text) =>
        {
            Some((i, *unit, zone.clone()))
        }
        _ => None,
    };
    let timestamps: Vec<_> = schema
        .fields()
        .iter()
        .enumerate()
        .filter_map(texts)
        .collect();
    if timestamps.is_empty() {
        return Ok(batch);
    }
    let mut columns = batch.columns().to_vec();
    let mut schema_fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    for (i, unit, zone) in timestamps {
        let style = DateStyle::new(&fields[i].format_options().date_style);
        let format = match zone {
            Some(_) => style.full_tz_format_smolstr().to_string(),
            None => style.full_format_str().to_string(),
        };
        let items: Vec<Item> = StrftimeItems::new(&format).collect();
        let iso = format.starts_with(ISO);
        let zone = zone
            .map(|z| Tz::from_str(&z))
            .transpose()
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let column = &columns[i];
        columns[i] = match unit {
            TimeUnit::Second => format_column::<TimestampSecondType>(column, zone, &items, iso),
            TimeUnit::Millisecond => {
                format_column::<TimestampMillisecondType>(column, zone, &items, iso)
            }
            TimeUnit::Microsecond => {
                format_column::<TimestampMicrosecondType>(column, zone, &items, iso)
            }
            TimeUnit::Nanosecond => {
                format_column::<TimestampNanosecondType>(column, zone, &items, iso)
            }
        };
        let field = &schema_fields[i];
        schema_fields[i] = Arc::new(Field::new(
            field.name(),
            DataType::Utf8,
            field.is_nullable(),
        ));
    }
    RecordBatch::try_new(Arc::new(Schema::new(schema_fields)), columns)
        .map_err(|e| PgWireError::ApiError(Box::new(e)))
}

/// pgwire's ISO DateStyle format (`%:::z` follows it for a timestamp with a time zone).
const ISO: &str = "%Y-%m-%d %H:%M:%S%.6f";

/// One timestamp column as text: in its time zone with its offset (as a fixed offset, as
/// arrow-pg hands it to pgwire) when it has one, as the bare date and time when not. `iso`:
/// the format is [`ISO`], written by [`write_iso`] when it can.
fn format_column<T: ArrowTimestampType>(
    column: &ArrayRef,
    zone: Option<Tz>,
    items: &[Item],
    iso: bool,
) -> ArrayRef {
    let values: &PrimitiveArray<T> = column.as_primitive();
    let mut text = StringBuilder::with_capacity(values.len(), values.len() * 32);
    for i in 0..values.len() {
        let written = if values.is_null(i) {
            None
        } else {
            match zone {
                Some(zone) => values.value_as_datetime_with_tz(i, zone).map(|d| {
                    let d = d.fixed_offset();
                    if !(iso && write_iso(&mut text, &d.naive_local(), Some(d.offset()))) {
                        let _ = write!(text, "{}", d.format_with_items(items.iter()));
                    }
                }),
                None => values.value_as_datetime(i).map(|d| {
                    if !(iso && write_iso(&mut text, &d, None)) {
                        let _ = write!(text, "{}", d.format_with_items(items.iter()));
                    }
                }),
            }
        };
        match written {
            Some(()) => text.append_value(""),
            None => text.append_null(),
        }
    }
    Arc::new(text.finish())
}

/// `time` as chrono writes [`ISO`] (then `%:::z`, the offset's whole hours, for `offset`),
/// without interpreting a format: `YYYY-MM-DD HH:MM:SS.ffffff[+HH]`. Years outside 0..=9999
/// and leap seconds are left to chrono (false, nothing written).
fn write_iso(out: &mut impl Write, time: &NaiveDateTime, offset: Option<&FixedOffset>) -> bool {
    let (year, nanos) = (time.year(), time.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return false;
    }
    let mut text = *b"0000-00-00 00:00:00.000000+00";
    let mut digits = |at: usize, width: usize, mut value: u32| {
        for slot in text[at..at + width].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    digits(0, 4, year as u32);
    digits(5, 2, time.month());
    digits(8, 2, time.day());
    digits(11, 2, time.hour());
    digits(14, 2, time.minute());
    digits(17, 2, time.second());
    digits(20, 6, nanos / 1000);
    let length = match offset {
        Some(offset) => {
            let seconds = offset.local_minus_utc();
            digits(27, 2, seconds.unsigned_abs() / 3600);
            text[26] = if seconds < 0 { b'-' } else { b'+' };
            text.len()
        }
        None => 26,
    };
    // ASCII digits and punctuation only.
    out.write_str(std::str::from_utf8(&text[..length]).unwrap_or_default())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
    use datafusion::arrow::array::{
        TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
        TimestampSecondArray,
    };
    use pgwire::api::portal::Format;
    use pgwire::types::format::FormatOptions;

    use super::*;

    /// Every unit, with and without a time zone (named, offset, UTC), with nulls and values
    /// before 1970 and with fractions of a second.
    fn timestamps() -> RecordBatch {
        let seconds = [
            Some(0),
            Some(-86_400 * 365 * 30 - 1),
            None,
            Some(1_733_412_345),
        ];
        let micros = [
            Some(1_733_412_345_123_456),
            None,
            Some(-1),
            Some(951_782_400_000_000),
        ];
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampSecondArray::from(seconds.to_vec())),
            Arc::new(TimestampSecondArray::from(seconds.to_vec()).with_timezone("UTC")),
            Arc::new(
                TimestampMillisecondArray::from(seconds.map(|s| s.map(|s| s * 1000 + 7)).to_vec())
                    .with_timezone("+02:00"),
            ),
            Arc::new(TimestampMicrosecondArray::from(micros.to_vec())),
            // Whole hours only in the offset (chrono's `%:::z`), and a year past 9999.
            Arc::new(
                TimestampSecondArray::from(vec![Some(0), Some(300_000_000_000), None, Some(-1)])
                    .with_timezone("+05:30"),
            ),
            Arc::new(
                TimestampMicrosecondArray::from(micros.to_vec()).with_timezone("Europe/Paris"),
            ),
            Arc::new(
                TimestampNanosecondArray::from(micros.map(|m| m.map(|m| m * 1000 + 9)).to_vec())
                    .with_timezone("America/New_York"),
            ),
        ];
        let fields: Vec<Field> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    fn rows(batch: RecordBatch, fields: &Arc<Vec<FieldInfo>>) -> Vec<Vec<u8>> {
        encode_recordbatch(fields.clone(), batch)
            .map(|row| row.unwrap().data.to_vec())
            .collect()
    }

    #[test]
    fn text_is_what_pgwire_writes_value_by_value_in_every_date_style() {
        for date_style in [
            "ISO, MDY",
            "ISO, DMY",
            "SQL, DMY",
            "Postgres, MDY",
            "German",
        ] {
            let metadata = HashMap::from([("datestyle".to_string(), date_style.to_string())]);
            let options = Arc::new(FormatOptions::from_client_metadata(&metadata));
            let batch = timestamps();
            let fields = Arc::new(
                arrow_schema_to_pg_fields(&batch.schema(), &Format::UnifiedText, Some(options))
                    .unwrap(),
            );
            let fast = timestamps_as_text(batch.clone(), &fields).unwrap();
            assert!(
                fast.schema()
                    .fields()
                    .iter()
                    .all(|f| f.data_type() == &DataType::Utf8),
                "{date_style}: every column is formatted"
            );
            assert_eq!(rows(fast, &fields), rows(batch, &fields), "{date_style}");
        }
    }

    #[test]
    fn binary_results_keep_their_timestamps() {
        let batch = timestamps();
        let fields =
            arrow_schema_to_pg_fields(&batch.schema(), &Format::UnifiedBinary, None).unwrap();
        let kept = timestamps_as_text(batch.clone(), &fields).unwrap();
        assert_eq!(kept.schema(), batch.schema());
    }
}
