//! Query results on the wire: JSON ([`QueryResult`](crate::views::QueryResult)), CSV with a
//! header, or an Arrow IPC stream, chosen by the `Accept` header.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::ServiceError;
use crate::views::ResultColumn;

pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// The encodings a query result can be sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultFormat {
    Json,
    Csv,
    Arrow,
}

impl ResultFormat {
    /// The first encoding the `Accept` header names; JSON when it names none of them.
    pub fn from_accept(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return ResultFormat::Json;
        };
        for media in accept.split(',') {
            let essence = media
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            match essence.as_str() {
                "application/json" => return ResultFormat::Json,
                "text/csv" => return ResultFormat::Csv,
                ARROW_STREAM => return ResultFormat::Arrow,
                _ => {}
            }
        }
        ResultFormat::Json
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ResultFormat::Json => "application/json",
            ResultFormat::Csv => "text/csv; charset=utf-8",
            ResultFormat::Arrow => ARROW_STREAM,
        }
    }

    pub fn encode(
        self,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<Vec<u8>, ServiceError> {
        let failed = |e: arrow::error::ArrowError| {
            ServiceError::Internal(format!("encoding the result failed: {e}"))
        };
        let mut out = Vec::new();
        match self {
            ResultFormat::Json => {
                let columns: Vec<ResultColumn> = schema
                    .fields()
                    .iter()
                    .map(|f| ResultColumn {
                        name: f.name().clone(),
                        data_type: f.data_type().to_string(),
                    })
                    .collect();
                let row_count: usize = batches.iter().map(|b| b.num_rows()).sum();
                out.extend_from_slice(b"{\"columns\":");
                serde_json::to_writer(&mut out, &columns)
                    .map_err(|e| ServiceError::Internal(e.to_string()))?;
                out.extend_from_slice(b",\"rows\":");
                if row_count == 0 {
                    out.extend_from_slice(b"[]");
                } else {
                    let mut writer = arrow::json::WriterBuilder::new()
                        .with_explicit_nulls(true)
                        .build::<_, arrow::json::writer::JsonArray>(&mut out);
                    for batch in batches {
                        writer.write(batch).map_err(failed)?;
                    }
                    writer.finish().map_err(failed)?;
                }
                out.extend_from_slice(format!(",\"row_count\":{row_count}}}").as_bytes());
            }
            ResultFormat::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                if batches.is_empty() {
                    writer
                        .write(&RecordBatch::new_empty(schema.clone()))
                        .map_err(failed)?;
                }
                for batch in batches {
                    writer.write(batch).map_err(failed)?;
                }
            }
            ResultFormat::Arrow => {
                let mut writer =
                    arrow::ipc::writer::StreamWriter::try_new(&mut out, schema).map_err(failed)?;
                for batch in batches {
                    writer.write(batch).map_err(failed)?;
                }
                writer.finish().map_err(failed)?;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_pick_the_encoding() {
        assert_eq!(ResultFormat::from_accept(None), ResultFormat::Json);
        assert_eq!(
            ResultFormat::from_accept(Some("text/csv")),
            ResultFormat::Csv
        );
        assert_eq!(
            ResultFormat::from_accept(Some("text/html, application/vnd.apache.arrow.stream;q=0.9")),
            ResultFormat::Arrow
        );
        assert_eq!(ResultFormat::from_accept(Some("*/*")), ResultFormat::Json);
    }
}
