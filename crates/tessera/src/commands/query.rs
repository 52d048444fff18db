//! `tessera query "SQL"`: a table for people (the answer fetched as Arrow), or CSV or JSON as the
//! server sends them.

use anyhow::{Context, Result};
use arrow::record_batch::RecordBatch;
use tessera_server::api::ARROW_STREAM;
use tessera_server::views::QueryResult;

use crate::cli::OutputFormat;
use crate::client::Client;

pub async fn run(client: &Client, sql: &str, format: OutputFormat) -> Result<()> {
    match format {
        OutputFormat::Table => {
            let body = client.query(sql, ARROW_STREAM).await?;
            let reader =
                arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)
                    .context("the server's Arrow answer is not readable")?;
            let schema = reader.schema();
            let batches: Vec<RecordBatch> = reader
                .collect::<Result<_, _>>()
                .context("the server's Arrow answer is not readable")?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            let shown = if batches.is_empty() {
                vec![RecordBatch::new_empty(schema)]
            } else {
                batches
            };
            println!("{}", arrow::util::pretty::pretty_format_batches(&shown)?);
            println!("({rows} row{})", if rows == 1 { "" } else { "s" });
        }
        OutputFormat::Csv => {
            let body = client.query(sql, "text/csv").await?;
            print!("{}", String::from_utf8_lossy(&body));
        }
        OutputFormat::Json => {
            let body = client.query(sql, "application/json").await?;
            let result: QueryResult = serde_json::from_slice(&body)
                .context("the server's JSON answer is not readable")?;
            println!("{}", serde_json::to_string_pretty(&result.rows)?);
        }
    }
    Ok(())
}
