//! Query results on the wire, streamed: JSON ([`QueryResult`](crate::views::QueryResult)),
//! NDJSON, CSV with a header, or an Arrow IPC stream, chosen by the `Accept` header.
//!
//! A result is encoded batch by batch on the query runtime as the client reads it, never
//! collected whole. Once the first byte is sent the status can no longer change, so a failure
//! or a limit reached after that ends the body with an error marker, one per format:
//!
//! - JSON: the object ends with `"error": {"code", "message"}` after the rows sent so far
//!   (`row_count` counts those).
//! - NDJSON: a last line `{"tessera_error": {"code", "message"}}`.
//! - CSV: a last line `#tessera_error,CODE,"MESSAGE"`.
//! - Arrow IPC: instead of the end-of-stream marker, a frame `0xFFFFFFFF`, a little-endian
//!   32-bit length and that many bytes of JSON `{"tessera_error": {"code", "message"}}` (padded
//!   with spaces to a multiple of 8). It is not an Arrow message, so Arrow readers fail on it
//!   rather than take a cut-off result for a whole one; `tessera query` shows its message.
//!
//! Types a text format cannot show are rendered: lists, structs, maps and unions as JSON text
//! in CSV; in JSON, the few types its encoder lacks (durations, intervals) as their text. A
//! type that cannot be rendered at all is refused with a 400 before anything is sent.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringBuilder, new_null_array};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde_json::json;

use crate::error::ServiceError;
use crate::views::ResultColumn;

pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";
pub const NDJSON: &str = "application/x-ndjson";

/// The start of the Arrow IPC error frame; readers that find it mid-stream fail.
pub const ARROW_ERROR_CONTINUATION: [u8; 4] = [0xFF, 0xFF, 0xFF, 0xFF];

/// The encodings a query result can be sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultFormat {
    Json,
    NdJson,
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
                NDJSON | "application/jsonl" | "application/json-seq" => {
                    return ResultFormat::NdJson;
                }
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
            ResultFormat::NdJson => NDJSON,
            ResultFormat::Csv => "text/csv; charset=utf-8",
            ResultFormat::Arrow => ARROW_STREAM,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ResultFormat::Json => "JSON",
            ResultFormat::NdJson => "NDJSON",
            ResultFormat::Csv => "CSV",
            ResultFormat::Arrow => "Arrow",
        }
    }
}

/// How a column is shown in a text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rendering {
    /// As the format's writer shows it.
    AsIs,
    /// As JSON text (nested values in CSV).
    JsonText,
    /// As Arrow's text of the value.
    Text,
}

/// Encodes one result, batch by batch; see the module documentation.
pub struct ResultEncoder {
    format: ResultFormat,
    /// The schema as sent: rendered columns are text.
    schema: SchemaRef,
    renderings: Vec<Rendering>,
    rows: usize,
    arrow: Option<arrow::ipc::writer::StreamWriter<Vec<u8>>>,
    started: bool,
}

fn encoding_failed(e: arrow::error::ArrowError) -> ServiceError {
    ServiceError::Internal(format!("encoding the result failed: {e}"))
}

impl ResultEncoder {
    /// An encoder for a result of `schema`; refused (400) when a column cannot be shown in the
    /// format at all.
    pub fn new(format: ResultFormat, schema: &SchemaRef) -> Result<Self, ServiceError> {
        let mut renderings = Vec::with_capacity(schema.fields().len());
        let mut fields: Vec<FieldRef> = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let rendering = rendering(format, field).ok_or_else(|| {
                ServiceError::InvalidQuery(format!(
                    "column {:?} is of type {}, which cannot be sent as {}: ask for Arrow (Accept: {ARROW_STREAM}) or CAST the column",
                    field.name(),
                    field.data_type(),
                    format.name()
                ))
            })?;
            fields.push(match rendering {
                Rendering::AsIs => field.clone(),
                Rendering::JsonText | Rendering::Text => {
                    Arc::new(Field::new(field.name(), DataType::Utf8, true))
                }
            });
            renderings.push(rendering);
        }
        let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        Ok(Self {
            format,
            schema,
            renderings,
            rows: 0,
            arrow: None,
            started: false,
        })
    }

    /// The bytes before the first row.
    pub fn start(&mut self) -> Result<Vec<u8>, ServiceError> {
        self.started = true;
        match self.format {
            ResultFormat::Json => {
                let columns: Vec<ResultColumn> = self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| ResultColumn {
                        name: f.name().clone(),
                        data_type: f.data_type().to_string(),
                    })
                    .collect();
                let mut out = b"{\"columns\":".to_vec();
                serde_json::to_writer(&mut out, &columns)
                    .map_err(|e| ServiceError::Internal(e.to_string()))?;
                out.extend_from_slice(b",\"rows\":[");
                Ok(out)
            }
            ResultFormat::NdJson => Ok(Vec::new()),
            ResultFormat::Csv => {
                let mut out = Vec::new();
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out)
                    .write(&RecordBatch::new_empty(self.schema.clone()))
                    .map_err(encoding_failed)?;
                Ok(out)
            }
            ResultFormat::Arrow => {
                let mut writer =
                    arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &self.schema)
                        .map_err(encoding_failed)?;
                writer.flush().map_err(encoding_failed)?;
                let out = std::mem::take(writer.get_mut());
                self.arrow = Some(writer);
                Ok(out)
            }
        }
    }

    /// The bytes of one batch of rows.
    pub fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, ServiceError> {
        let batch = self.render(batch)?;
        let first_rows = self.rows == 0;
        self.rows += batch.num_rows();
        let mut out = Vec::new();
        match self.format {
            ResultFormat::Json | ResultFormat::NdJson => {
                let mut lines = Vec::new();
                {
                    let mut writer = arrow::json::WriterBuilder::new()
                        .with_explicit_nulls(true)
                        .build::<_, arrow::json::writer::LineDelimited>(&mut lines);
                    writer.write(&batch).map_err(encoding_failed)?;
                    writer.finish().map_err(encoding_failed)?;
                }
                if self.format == ResultFormat::NdJson {
                    return Ok(lines);
                }
                // One JSON object per line, so the lines joined by commas are the array's items.
                if !first_rows && !lines.is_empty() {
                    out.push(b',');
                }
                if lines.last() == Some(&b'\n') {
                    lines.pop();
                }
                for byte in lines {
                    out.push(if byte == b'\n' { b',' } else { byte });
                }
            }
            ResultFormat::Csv => {
                arrow::csv::WriterBuilder::new()
                    .with_header(false)
                    .build(&mut out)
                    .write(&batch)
                    .map_err(encoding_failed)?;
            }
            ResultFormat::Arrow => {
                let writer = self.arrow.as_mut().ok_or_else(|| {
                    ServiceError::Internal("the Arrow stream was not started".into())
                })?;
                writer.write(&batch).map_err(encoding_failed)?;
                writer.flush().map_err(encoding_failed)?;
                out = std::mem::take(writer.get_mut());
            }
        }
        Ok(out)
    }

    /// The bytes after the last row of a complete result.
    pub fn finish(&mut self) -> Result<Vec<u8>, ServiceError> {
        match self.format {
            ResultFormat::Json => Ok(format!("],\"row_count\":{}}}", self.rows).into_bytes()),
            ResultFormat::NdJson | ResultFormat::Csv => Ok(Vec::new()),
            ResultFormat::Arrow => {
                let writer = self.arrow.as_mut().ok_or_else(|| {
                    ServiceError::Internal("the Arrow stream was not started".into())
                })?;
                writer.finish().map_err(encoding_failed)?;
                Ok(std::mem::take(writer.get_mut()))
            }
        }
    }

    /// The error marker that ends a result cut short (see the module documentation).
    pub fn error(&mut self, code: &str, message: &str) -> Vec<u8> {
        let error = json!({"code": code, "message": message});
        match self.format {
            ResultFormat::Json => {
                format!("],\"row_count\":{},\"error\":{error}}}", self.rows).into_bytes()
            }
            ResultFormat::NdJson => format!("{}\n", json!({ "tessera_error": error })).into_bytes(),
            ResultFormat::Csv => {
                let message = message.replace(['\r', '\n'], " ").replace('"', "\"\"");
                format!("#tessera_error,{code},\"{message}\"\n").into_bytes()
            }
            ResultFormat::Arrow => {
                let mut text = json!({ "tessera_error": error }).to_string().into_bytes();
                while !text.len().is_multiple_of(8) {
                    text.push(b' ');
                }
                let mut out = ARROW_ERROR_CONTINUATION.to_vec();
                out.extend_from_slice(&(text.len() as i32).to_le_bytes());
                out.extend_from_slice(&text);
                out
            }
        }
    }

    /// The batch with its columns rendered as the format shows them.
    fn render(&self, batch: &RecordBatch) -> Result<RecordBatch, ServiceError> {
        if self.renderings.iter().all(|r| *r == Rendering::AsIs) {
            return Ok(batch.clone());
        }
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .zip(batch.schema().fields())
            .zip(&self.renderings)
            .map(|((column, field), rendering)| match rendering {
                Rendering::AsIs => Ok(column.clone()),
                Rendering::JsonText => json_text(field, column.as_ref()),
                Rendering::Text => {
                    arrow::compute::cast(column, &DataType::Utf8).map_err(encoding_failed)
                }
            })
            .collect::<Result<_, _>>()?;
        RecordBatch::try_new(self.schema.clone(), columns).map_err(encoding_failed)
    }
}

/// How a column of `field`'s type is shown in `format`; `None` when it cannot be.
fn rendering(format: ResultFormat, field: &FieldRef) -> Option<Rendering> {
    let probe = new_null_array(field.data_type(), 1);
    let schema = Arc::new(Schema::new(vec![
        field.as_ref().clone().with_nullable(true),
    ]));
    let batch = RecordBatch::try_new(schema, vec![probe.clone()]).ok()?;
    let json_encodes = || {
        let options = arrow::json::writer::EncoderOptions::default();
        arrow::json::writer::make_encoder(field, probe.as_ref(), &options).is_ok()
    };
    let casts_to_text = || arrow::compute::can_cast_types(field.data_type(), &DataType::Utf8);
    match format {
        ResultFormat::Arrow => Some(Rendering::AsIs),
        ResultFormat::Json | ResultFormat::NdJson => {
            if json_encodes() {
                Some(Rendering::AsIs)
            } else if casts_to_text() {
                Some(Rendering::Text)
            } else {
                None
            }
        }
        ResultFormat::Csv => {
            let csv_writes = arrow::csv::WriterBuilder::new()
                .build(Vec::new())
                .write(&batch)
                .is_ok();
            if csv_writes {
                Some(Rendering::AsIs)
            } else if field.data_type().is_nested() && json_encodes() {
                Some(Rendering::JsonText)
            } else if casts_to_text() {
                Some(Rendering::Text)
            } else {
                None
            }
        }
    }
}

/// Each value as JSON text (null stays null).
fn json_text(field: &FieldRef, column: &dyn Array) -> Result<ArrayRef, ServiceError> {
    let options = arrow::json::writer::EncoderOptions::default();
    let mut encoder =
        arrow::json::writer::make_encoder(field, column, &options).map_err(encoding_failed)?;
    let mut out = StringBuilder::new();
    let mut buffer = Vec::new();
    for row in 0..column.len() {
        if column.is_null(row) {
            out.append_null();
            continue;
        }
        buffer.clear();
        encoder.encode(row, &mut buffer);
        out.append_value(String::from_utf8_lossy(&buffer));
    }
    Ok(Arc::new(out.finish()))
}

/// The error marker that ends `body`, when the result was cut short: `(code, message)`. The
/// reading half of [`ResultEncoder::error`], for clients (the CLI).
pub fn error_marker(format: ResultFormat, body: &[u8]) -> Option<(String, String)> {
    let from_json = |value: &serde_json::Value| {
        Some((
            value.get("code")?.as_str()?.to_string(),
            value.get("message")?.as_str()?.to_string(),
        ))
    };
    match format {
        ResultFormat::Json => {
            let value: serde_json::Value = serde_json::from_slice(body).ok()?;
            from_json(value.get("error")?)
        }
        ResultFormat::NdJson => {
            let text = std::str::from_utf8(body).ok()?;
            let last = text.trim_end().rsplit('\n').next()?;
            let value: serde_json::Value = serde_json::from_str(last).ok()?;
            from_json(value.get("tessera_error")?)
        }
        ResultFormat::Csv => {
            let text = std::str::from_utf8(body).ok()?;
            let last = text.trim_end().rsplit('\n').next()?;
            let rest = last.strip_prefix("#tessera_error,")?;
            let (code, message) = rest.split_once(',')?;
            let message = message.trim().trim_matches('"').replace("\"\"", "\"");
            Some((code.to_string(), message))
        }
        ResultFormat::Arrow => {
            // The frame ends the body: 0xFFFFFFFF, a length, that many bytes of JSON.
            let end = body.len();
            let earliest = end.saturating_sub(1 << 16);
            (earliest..end.saturating_sub(8)).rev().find_map(|start| {
                if body[start..start + 4] != ARROW_ERROR_CONTINUATION {
                    return None;
                }
                let length = i32::from_le_bytes(body[start + 4..start + 8].try_into().ok()?);
                if length < 0 || start + 8 + length as usize != end {
                    return None;
                }
                let value: serde_json::Value = serde_json::from_slice(&body[start + 8..]).ok()?;
                from_json(value.get("tessera_error")?)
            })
        }
    }
}

/// The HTTP body of a streamed result: encoded on the query runtime as the client reads it;
/// when the client goes away, the encoding and the query stop.
pub fn stream_body(
    queries: &dyn crate::QueryService,
    mut stream: tessera_query::QueryStream,
    mut encoder: ResultEncoder,
) -> axum::body::Body {
    use futures::StreamExt;
    let (chunks, received) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let task = queries.offload(Box::pin(async move {
        let send = async |bytes: Vec<u8>| bytes.is_empty() || chunks.send(bytes).await.is_ok();
        let marker = |encoder: &mut ResultEncoder, error: ServiceError| {
            let (status, code) = super::error::status_and_code(&error);
            if status.is_server_error() {
                tracing::error!(%error, "a query failed while its result was sent");
            }
            encoder.error(code, &error.to_string())
        };
        match encoder.start() {
            Ok(bytes) => {
                if !send(bytes).await {
                    return;
                }
            }
            Err(e) => {
                send(marker(&mut encoder, e)).await;
                return;
            }
        }
        while let Some(item) = stream.next().await {
            let bytes = match item.map_err(ServiceError::from) {
                Ok(batch) => match encoder.batch(&batch) {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        send(marker(&mut encoder, e)).await;
                        return;
                    }
                },
                Err(e) => {
                    send(marker(&mut encoder, e)).await;
                    return;
                }
            };
            if !send(bytes).await {
                return;
            }
        }
        let end = encoder.finish().unwrap_or_else(|e| marker(&mut encoder, e));
        send(end).await;
    }));
    let body = futures::stream::unfold((received, task), |(mut received, task)| async move {
        received.recv().await.map(|bytes| {
            (
                Ok::<_, std::io::Error>(bytes::Bytes::from(bytes)),
                (received, task),
            )
        })
    });
    axum::body::Body::from_stream(body)
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
        assert_eq!(
            ResultFormat::from_accept(Some("application/x-ndjson")),
            ResultFormat::NdJson
        );
        assert_eq!(ResultFormat::from_accept(Some("*/*")), ResultFormat::Json);
    }
}
