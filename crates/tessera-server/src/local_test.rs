//! `tessera test`: a contract's checks run against the data one of its `servers` entries points
//! at — local CSV, NDJSON, Parquet or Delta files — as datacontract-cli's `test` does, without a
//! Tessera server. The same checks and the same measuring code as `tessera check`; nothing is
//! stored.

use serde_json::Value;
use tessera_core::Contract;
use tessera_quality::{CheckResult, TableFacts, run_checks};
use tessera_query::{SourceFormat, register_source, session_config};
use tessera_spec::SpecDocument;

use crate::checks::{report_of, unstored_run};
use crate::error::{Result, ServiceError};
use crate::views::CheckReport;

/// Runs the checks of the contract in `text` (named `file` in messages) against `server` (by
/// name; the first entry when `None`). Relative paths are read from the working directory, as
/// datacontract-cli does.
pub async fn test_contract(file: &str, text: &str, server: Option<&str>) -> Result<CheckReport> {
    let contract = tessera_spec::load_contract(file, text)?;
    let doc = SpecDocument::parse(file, text)?;
    let servers = doc
        .value
        .get("servers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let chosen = match server {
        Some(name) => servers
            .iter()
            .find(|s| s.get("server").and_then(Value::as_str) == Some(name))
            .ok_or_else(|| {
                let names: Vec<&str> = servers
                    .iter()
                    .filter_map(|s| s.get("server").and_then(Value::as_str))
                    .collect();
                ServiceError::BadRequest(format!(
                    "{file}: no server {name:?}; the contract has: {}",
                    names.join(", ")
                ))
            })?,
        None => servers.first().ok_or_else(|| {
            ServiceError::BadRequest(format!(
                "{file}: no servers: `tessera test` reads the data a server entry points at"
            ))
        })?,
    };
    let field = |key: &str| chosen.get(key).and_then(Value::as_str).map(str::to_string);
    let name = field("server").unwrap_or_default();
    match field("type").as_deref() {
        Some("local") => {}
        other => {
            return Err(ServiceError::BadRequest(format!(
                "{file}: server {name:?} is of type {}: `tessera test` reads local files (type: local)",
                other.unwrap_or("?")
            )));
        }
    }
    let path = field("path")
        .ok_or_else(|| ServiceError::BadRequest(format!("{file}: server {name:?} has no path")))?;
    let format = field("format")
        .and_then(|f| SourceFormat::parse(&f))
        .ok_or_else(|| {
            ServiceError::BadRequest(format!(
                "{file}: server {name:?} needs a format of csv, json, parquet or delta"
            ))
        })?;
    run_contract(&contract, &path, format, &name).await
}

async fn run_contract(
    contract: &Contract,
    path: &str,
    format: SourceFormat,
    server: &str,
) -> Result<CheckReport> {
    let ctx = datafusion::prelude::SessionContext::new_with_config(session_config(
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    ));
    let started = chrono::Utc::now();
    let facts = TableFacts {
        now_seconds: started.timestamp_micros() as f64 / 1e6,
        last_commit_seconds: None,
        typed: format.typed(),
    };
    let mut runs = Vec::new();
    for dataset in &contract.datasets {
        let table = dataset.name.as_str();
        let path = path.replace("{model}", table);
        register_source(&ctx, table, &path, format).await?;
        let checks = dataset.checks(&contract.sla);
        let results: Vec<CheckResult> = run_checks(&ctx, table, dataset, &checks, &facts)
            .await
            .map_err(|e| ServiceError::BadRequest(format!("{path}: {e}")))?;
        runs.push(unstored_run(table, contract, started, &results));
    }
    Ok(report_of(format!("{} ({server})", contract.id), runs))
}
