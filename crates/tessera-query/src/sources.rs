//! Files outside the mesh as tables of a session: what `tessera test` reads when a contract's
//! `servers` entry points at local files (CSV, NDJSON, Parquet, or a Delta table), as
//! datacontract-cli's `type: local` servers do.
//!
//! A path may be a file, a directory or a glob (`data/*.csv`, `data/**/*.json`). Each file is
//! read on its own and the rows are combined by column name, so files written before and after
//! a column was added read as one table (the missing values are null). A CSV file whose first
//! line is data rather than a header — none of its cells is a column of the contract, and it
//! has as many cells as the contract has columns — is read without a header, its columns named
//! in contract order.

use std::collections::HashMap;
use std::path::Path;

use datafusion::dataframe::DataFrame;
use datafusion::prelude::{
    CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext, col,
};
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

    fn extension(self) -> &'static str {
        match self {
            SourceFormat::Csv => "csv",
            SourceFormat::NdJson => "json",
            SourceFormat::Parquet => "parquet",
            SourceFormat::Delta => "",
        }
    }
}

/// Registers the data at `path` as table `name` in `ctx`. `columns` are the contract's column
/// names, in order (for CSV files without a header).
pub async fn register_source(
    ctx: &SessionContext,
    name: &str,
    path: &str,
    format: SourceFormat,
    columns: &[String],
) -> Result<()> {
    let failed = |e: datafusion::error::DataFusionError| {
        QueryError::Invalid(format!("{path}: {}", e.strip_backtrace()))
    };
    let local = path.strip_prefix("file://").unwrap_or(path);
    if format == SourceFormat::Delta {
        let provider = delta_table(ctx, local).await?;
        return ctx
            .register_table(name, provider)
            .map(|_| ())
            .map_err(failed);
    }
    let mut combined: Option<DataFrame> = None;
    for file in files(local, format.extension())? {
        let df = read_file(ctx, &file, format, columns)
            .await
            .map_err(failed)?;
        combined = Some(match combined {
            None => df,
            Some(all) => all.union_by_name(df).map_err(failed)?,
        });
    }
    let df = combined.ok_or_else(|| QueryError::Invalid(format!("{path}: no data files")))?;
    ctx.register_table(name, df.into_view())
        .map(|_| ())
        .map_err(failed)
}

async fn read_file(
    ctx: &SessionContext,
    file: &str,
    format: SourceFormat,
    columns: &[String],
) -> datafusion::error::Result<DataFrame> {
    let extension = Path::new(file)
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    match format {
        SourceFormat::Csv => {
            let headerless = csv_without_header(file, columns);
            let options = CsvReadOptions::new()
                .file_extension(&extension)
                .has_header(!headerless);
            let df = ctx.read_csv(file, options).await?;
            if !headerless {
                return Ok(df);
            }
            let renamed: Vec<_> = df
                .schema()
                .fields()
                .iter()
                .zip(columns)
                .map(|(field, name)| col(format!("\"{}\"", field.name())).alias(name))
                .collect();
            df.select(renamed)
        }
        SourceFormat::NdJson => {
            ctx.read_json(file, JsonReadOptions::default().file_extension(&extension))
                .await
        }
        SourceFormat::Parquet => {
            ctx.read_parquet(
                file,
                ParquetReadOptions::default().file_extension(&extension),
            )
            .await
        }
        SourceFormat::Delta => unreachable!("Delta tables are registered whole"),
    }
}

/// Whether a CSV file's first line is data: none of its cells names a contract column, and it
/// has one cell per contract column.
fn csv_without_header(file: &str, columns: &[String]) -> bool {
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    let Some(first) = text.lines().next() else {
        return false;
    };
    let cells: Vec<&str> = first
        .split(',')
        .map(|c| c.trim().trim_matches('"'))
        .collect();
    !columns.is_empty()
        && cells.len() == columns.len()
        && !cells.iter().any(|c| columns.iter().any(|name| name == c))
}

/// The files a path stands for, sorted: the file itself, the files of a directory with the
/// format's extension, or the matches of a glob.
fn files(path: &str, extension: &str) -> Result<Vec<String>> {
    let pattern = if path.contains(['*', '?', '[']) {
        path.to_string()
    } else if Path::new(path).is_dir() {
        format!("{}/**/*.{extension}", path.trim_end_matches('/'))
    } else if Path::new(path).is_file() {
        return Ok(vec![path.to_string()]);
    } else {
        return Err(QueryError::Invalid(format!(
            "{path}: no such file or directory"
        )));
    };
    let entries = glob::glob(&pattern).map_err(|e| QueryError::Invalid(format!("{path}: {e}")))?;
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

/// A Delta table directory as a table provider.
async fn delta_table(
    ctx: &SessionContext,
    path: &str,
) -> Result<std::sync::Arc<dyn datafusion::catalog::TableProvider>> {
    let dir = Path::new(path);
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
    storage
        .table_provider(table, &ctx.state())
        .await
        .map_err(|e| QueryError::Invalid(format!("{path}: {e}")))?
        .ok_or_else(|| QueryError::Invalid(format!("{path}: not a Delta table")))
}
