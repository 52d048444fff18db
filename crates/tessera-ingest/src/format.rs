use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::error::IngestError;

/// The file formats a batch can come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
    Parquet,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::Parquet => "parquet",
        }
    }

    /// The format from a file name's extension, else from the first bytes (Parquet's magic
    /// number, a JSON object), else `None`.
    pub fn detect(file_name: Option<&str>, bytes: &[u8]) -> Option<Format> {
        if let Some(name) = file_name {
            let lower = name.to_ascii_lowercase();
            for (ext, format) in [
                (".csv", Format::Csv),
                (".ndjson", Format::Ndjson),
                (".jsonl", Format::Ndjson),
                (".json", Format::Ndjson),
                (".parquet", Format::Parquet),
            ] {
                if lower.ends_with(ext) {
                    return Some(format);
                }
            }
        }
        if bytes.starts_with(b"PAR1") {
            return Some(Format::Parquet);
        }
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace())?;
        if *first == b'{' {
            return Some(Format::Ndjson);
        }
        None
    }

    /// The format named by an HTTP `Content-Type`.
    pub fn from_content_type(content_type: &str) -> Option<Format> {
        let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
        Some(match essence.as_str() {
            "text/csv" => Format::Csv,
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/json" => Format::Ndjson,
            "application/vnd.apache.parquet" | "application/parquet" => Format::Parquet,
            _ => return None,
        })
    }
}

impl FromStr for Format {
    type Err = IngestError;
    fn from_str(s: &str) -> Result<Self, IngestError> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "ndjson" | "jsonl" | "json" => Ok(Format::Ndjson),
            "parquet" => Ok(Format::Parquet),
            other => Err(IngestError::UnsupportedFormat(other.to_string())),
        }
    }
}

/// The default batch id: the SHA-256 of the content, so that sending the same file twice is
/// recognised as the same batch.
pub fn batch_id_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_detected_by_name_then_content() {
        assert_eq!(Format::detect(Some("a.CSV"), b""), Some(Format::Csv));
        assert_eq!(Format::detect(None, b"PAR1...."), Some(Format::Parquet));
        assert_eq!(Format::detect(None, b"  {\"a\":1}"), Some(Format::Ndjson));
        assert_eq!(Format::detect(None, b"a,b\n1,2"), None);
        assert_eq!(
            Format::from_content_type("text/csv; charset=utf-8"),
            Some(Format::Csv)
        );
        assert_eq!(batch_id_of(b"abc").len(), 64);
    }
}
