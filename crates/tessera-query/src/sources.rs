//! Files outside the mesh as tables of a session: what `tessera test` reads when a contract's
//! `servers` entry points at local files (CSV, NDJSON, Parquet, or a Delta table), as
//! datacontract-cli's `type: local` servers do. Paths may be globs (`data/*.csv`, `**/*.json`).

use std::collections::HashMap;
use std::path::Path;

use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};
use tessera_storage::Storage;

use crate::error::{QueryError, Result};

/// A file format a contract's server can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Csv,
    NdJson,
    Parquet,
    Delta,
}

impl SourceFormat {
    /// datacontract-cli's `format` values (`json` is newline-delimited here).
    pub fn parse(format: &str) -> Option<Self> {
        Some(match format.to_ascii_lowercase().as_str() {
            "csv" => SourceFormat::Csv,
            "json" | "ndjson" | "jsonl" => SourceFormat::NdJson,
            "parquet" => SourceFormat::Parquet,
            "delta" => SourceFormat::Delta,
            _ => return None,
        })
    }

    /// Whether the files carry their own column types (CSV and JSON types are only inferred).
    pub fn typed(self) -> bool {
        matches!(self, SourceFormat::Parquet | SourceFormat::Delta)
    }
}

/// Registers the files at `path` (a file, a directory, or a glob) as table `name` in `ctx`.
pub async fn register_source(
    ctx: &SessionContext,
    name: &str,
    path: &str,
    format: SourceFormat,
) -> Result<()> {
    let failed = |e: datafusion::error::DataFusionError| {
        QueryError::Invalid(format!("{path}: {}", e.strip_backtrace()))
    };
    let local = path.strip_prefix("file://").unwrap_or(path);
    if !local.contains(['*', '?', '[']) && !Path::new(local).exists() {
        return Err(QueryError::Invalid(format!(
            "{path}: no such file or directory"
        )));
    }
    let extension = |default: &'static str| -> String {
        match Path::new(local).extension().and_then(|e| e.to_str()) {
            Some(e) if !local.ends_with('/') => format!(".{e}"),
            _ => default.to_string(),
        }
    };
    match format {
        SourceFormat::Csv => {
            let ext = extension(".csv");
            let files = expand(local)?;
            if files.len() <= 1 {
                return ctx
                    .register_csv(name, local, CsvReadOptions::new().file_extension(&ext))
                    .await
                    .map_err(failed);
            }
            // CSV files of one glob may have different headers (a column added over time):
            // each is read with its own, and the rows are combined by column name.
            let mut combined: Option<datafusion::dataframe::DataFrame> = None;
            for file in files {
                let df = ctx
                    .read_csv(file, CsvReadOptions::new().file_extension(&ext))
                    .await
                    .map_err(failed)?;
                combined = Some(match combined {
                    None => df,
                    Some(all) => all.union_by_name(df).map_err(failed)?,
                });
            }
            let view = combined.expect("more than one file").into_view();
            ctx.register_table(name, view).map(|_| ()).map_err(failed)
        }
        SourceFormat::NdJson => {
            let ext = extension(".json");
            ctx.register_json(name, local, JsonReadOptions::default().file_extension(&ext))
                .await
                .map_err(failed)
        }
        SourceFormat::Parquet => {
            let ext = extension(".parquet");
            ctx.register_parquet(
                name,
                local,
                ParquetReadOptions::default().file_extension(&ext),
            )
            .await
            .map_err(failed)
        }
        SourceFormat::Delta => {
            let dir = Path::new(local);
            let (root, table) = match (dir.parent(), dir.file_name().and_then(|n| n.to_str())) {
                (Some(root), Some(table)) => (root, table),
                _ => {
                    return Err(QueryError::Invalid(format!(
                        "{path}: not a Delta table directory"
                    )));
                }
            };
            let root = if root.as_os_str().is_empty() {
                Path::new(".")
            } else {
                root
            };
            let storage = Storage::new(&root.display().to_string(), HashMap::new())
                .map_err(|e| QueryError::Invalid(format!("{path}: {e}")))?;
            let provider = storage
                .table_provider(table, &ctx.state())
                .await
                .map_err(|e| QueryError::Invalid(format!("{path}: {e}")))?
                .ok_or_else(|| QueryError::Invalid(format!("{path}: not a Delta table")))?;
            ctx.register_table(name, provider).map_err(failed)?;
            Ok(())
        }
    }
}

/// The files a glob matches, sorted; the path itself when it is not a glob.
fn expand(path: &str) -> Result<Vec<String>> {
    if !path.contains(['*', '?', '[']) {
        return Ok(vec![path.to_string()]);
    }
    let entries = glob::glob(path).map_err(|e| QueryError::Invalid(format!("{path}: {e}")))?;
    let mut files: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .filter(|p| p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(QueryError::Invalid(format!("{path}: no file matches")));
    }
    Ok(files)
}
