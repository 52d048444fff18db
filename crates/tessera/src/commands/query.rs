//! `tessera query "SQL"`: a table for people (the answer fetched as Arrow), or CSV, JSON or
//! NDJSON as the server sends them. A result the server cut short (a failure or a limit after
//! the first rows) ends with an error marker: the rows before it are shown, its message goes
//! to stderr and the exit code is 1. `--sample` runs one of a product's sample queries.

use anyhow::{Context, Result, bail};
use arrow::record_batch::RecordBatch;
use tessera_server::api::{ARROW_STREAM, NDJSON, ResultFormat, error_marker};
use tessera_server::views::QueryResult;

use crate::cli::{ListFormat, OutputFormat};
use crate::client::Client;

/// `tessera queries`: the query log, newest first.
pub async fn log(client: &Client, limit: i64, format: ListFormat) -> Result<()> {
    let limit = limit.to_string();
    let queries: Vec<tessera_server::views::QueryLogView> = client
        .get(&["api", "v1", "queries"], &[("limit", &limit)])
        .await?;
    if format == ListFormat::Json {
        println!("{}", serde_json::to_string_pretty(&queries)?);
        return Ok(());
    }
    let mut t = crate::commands::catalog::table(&[
        "STARTED", "WHO", "VIA", "STATUS", "WALL MS", "ROWS", "SCANNED", "DATASETS", "SQL",
    ]);
    for q in queries {
        let sql: String = q.sql.split_whitespace().collect::<Vec<_>>().join(" ");
        let sql = match sql.char_indices().nth(60) {
            Some((at, _)) => format!("{}…", &sql[..at]),
            None => sql,
        };
        let status = match &q.error_class {
            Some(class) => format!("{} ({class})", q.status),
            None => q.status.clone(),
        };
        t.add_row(vec![
            q.started_at,
            q.principal,
            q.front_end,
            status,
            format!("{:.1}", q.wall_ms),
            q.rows_returned.to_string(),
            format!("{} rows, {} B", q.rows_scanned, q.bytes_scanned),
            q.datasets.join(", "),
            sql,
        ]);
    }
    println!("{t}");
    Ok(())
}

/// `tessera query --sample N|NAME DOMAIN.PRODUCT`: runs one of the product's sample queries,
/// saying which on stderr (so stdout stays the result).
pub async fn sample(
    client: &Client,
    product: &str,
    which: &str,
    format: OutputFormat,
) -> Result<()> {
    let view = crate::commands::catalog::product(client, product).await?;
    let samples = crate::commands::catalog::numbered_samples(&view);
    if samples.is_empty() {
        bail!(
            "{product} has no sample queries (its output ports declare them in a `sampleQueries` custom property)"
        );
    }
    let chosen = samples
        .iter()
        .find(|(n, _, q)| which.parse::<usize>().ok() == Some(*n) || q.name == which);
    let Some((n, port, q)) = chosen else {
        let known: Vec<String> = samples
            .iter()
            .map(|(n, _, q)| format!("{n} ({})", q.name))
            .collect();
        bail!(
            "{product} has no sample query {which:?}; it has {}",
            known.join(", ")
        );
    };
    eprintln!("sample query {n} of {product}, {} (port {port})", q.name);
    run(client, &q.sql, format).await
}

pub async fn run(client: &Client, sql: &str, format: OutputFormat) -> Result<()> {
    match format {
        OutputFormat::Table => {
            let body = client.query(sql, ARROW_STREAM).await?;
            let cut_short = error_marker(ResultFormat::Arrow, &body);
            let mut reader =
                arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(&body[..]), None)
                    .context("the server's Arrow answer is not readable")?;
            let schema = reader.schema();
            let mut batches: Vec<RecordBatch> = Vec::new();
            for batch in reader.by_ref() {
                match batch {
                    Ok(b) => batches.push(b),
                    // The error frame is not an Arrow message: reading stops at it.
                    Err(_) if cut_short.is_some() => break,
                    Err(e) => {
                        return Err(e).context("the server's Arrow answer is not readable");
                    }
                }
            }
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            let shown = if batches.is_empty() {
                vec![RecordBatch::new_empty(schema)]
            } else {
                batches
            };
            println!("{}", arrow::util::pretty::pretty_format_batches(&shown)?);
            println!("({rows} row{})", if rows == 1 { "" } else { "s" });
            end(cut_short)
        }
        OutputFormat::Csv => print_text(&client.query(sql, "text/csv").await?, ResultFormat::Csv),
        OutputFormat::Json => {
            let body = client.query(sql, "application/json").await?;
            let result: QueryResult = serde_json::from_slice(&body)
                .context("the server's JSON answer is not readable")?;
            println!("{}", serde_json::to_string_pretty(&result.rows)?);
            end(error_marker(ResultFormat::Json, &body))
        }
        OutputFormat::Ndjson => print_text(&client.query(sql, NDJSON).await?, ResultFormat::NdJson),
    }
}

/// Prints a text answer (CSV, NDJSON) as the server sent it, without its error marker line.
fn print_text(body: &[u8], format: ResultFormat) -> Result<()> {
    let cut_short = error_marker(format, body);
    let text = String::from_utf8_lossy(body);
    let rows = match cut_short {
        // Everything but the marker, which is the last line.
        Some(_) => text
            .trim_end()
            .rsplit_once('\n')
            .map_or("", |(rows, _)| rows),
        None => &text,
    };
    print!("{rows}");
    if cut_short.is_some() && !rows.is_empty() {
        println!();
    }
    end(cut_short)
}

fn end(cut_short: Option<(String, String)>) -> Result<()> {
    match cut_short {
        Some((code, message)) => bail!("the result is incomplete ({code}): {message}"),
        None => Ok(()),
    }
}
