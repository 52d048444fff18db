//! Result rows as `DataRow` messages, encoded into one buffer that each row is split off.
//! pgwire's own `DataRowEncoder` starts every row in a new allocation of its own (128 bytes,
//! grown as the row needs), a cost paid for every row of a long result; here rows share
//! allocations of [`CHUNK`] bytes, freed once their rows are written to the socket.

use std::sync::Arc;

use arrow_pg::encoder::{Encoder, encode_value};
use bytes::{BufMut, BytesMut};
use datafusion::arrow::record_batch::RecordBatch;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql};

/// How much buffer is reserved at a time for the rows to come.
const CHUNK: usize = 64 << 10;

/// Below this much room left, a new chunk is reserved before the next value.
const ROOM: usize = 1 << 10;

/// Encodes the rows of `batch` (its columns as `fields` say), stopping at the first value that
/// cannot be encoded.
pub(super) fn encode_rows(
    batch: &RecordBatch,
    fields: &Arc<Vec<FieldInfo>>,
) -> Vec<PgWireResult<DataRow>> {
    let mut writer = RowWriter::default();
    let schema = batch.schema();
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        for (column, array) in batch.columns().iter().enumerate() {
            if let Err(e) = encode_value(
                &mut writer,
                array,
                row,
                schema.field(column),
                &fields[column],
            ) {
                rows.push(Err(e));
                return rows;
            }
        }
        rows.push(Ok(writer.take_row()));
    }
    rows
}

/// One row's values, each as its length and its bytes (text or binary, as the column's format
/// says), appended to a buffer shared with the rows before it.
#[derive(Default)]
struct RowWriter {
    buffer: BytesMut,
    columns: i16,
}

impl Encoder for RowWriter {
    type Item = DataRow;

    fn encode_field<T>(&mut self, value: &T, field: &FieldInfo) -> PgWireResult<()>
    where
        T: ToSql + ToSqlText + Sized,
    {
        if self.buffer.capacity() - self.buffer.len() < ROOM {
            self.buffer.reserve(CHUNK);
        }
        // The length goes first; -1 (NULL) unless the value says otherwise.
        let start = self.buffer.len();
        self.buffer.put_i32(-1);
        let null = if field.format() == FieldFormat::Text {
            value.to_sql_text(field.datatype(), &mut self.buffer, field.format_options())?
        } else {
            value.to_sql(field.datatype(), &mut self.buffer)?
        };
        if let IsNull::No = null {
            let length = (self.buffer.len() - start - 4) as i32;
            self.buffer[start..start + 4].copy_from_slice(&length.to_be_bytes());
        }
        self.columns += 1;
        Ok(())
    }

    fn take_row(&mut self) -> DataRow {
        let row = DataRow::new(self.buffer.split(), self.columns);
        self.columns = 0;
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
    use datafusion::arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use pgwire::api::portal::Format;

    /// The rows are byte for byte those pgwire's own encoder gives, in text and binary.
    #[test]
    fn rows_are_encoded_as_pgwires_encoder_encodes_them() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]));
        let names: Vec<Option<String>> = (0..3000)
            .map(|i| (i % 7 != 0).then(|| "x".repeat(i % 50)))
            .collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter(
                    (0..3000).map(|i| (i % 5 != 0).then_some(i)),
                )),
                Arc::new(StringArray::from(names)),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    (0..3000).map(|i| i * 1_000_003),
                )),
            ],
        )
        .unwrap();
        for format in [Format::UnifiedText, Format::UnifiedBinary] {
            let fields = Arc::new(arrow_schema_to_pg_fields(&schema, &format, None).unwrap());
            let ours: Vec<DataRow> = encode_rows(&batch, &fields)
                .into_iter()
                .map(Result::unwrap)
                .collect();
            let theirs: Vec<DataRow> = encode_recordbatch(fields.clone(), batch.clone())
                .map(Result::unwrap)
                .collect();
            assert_eq!(ours, theirs, "{format:?}");
        }
    }
}
