//! `tessera test`: a contract's checks run against the data one of its `servers` entries points
//! at — local CSV, NDJSON, Parquet or Delta files — as datacontract-cli's `test` does, without a
//! Tessera server. The same checks and the same measuring code as `tessera check`; nothing is
//! stored.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tessera_core::{Contract, RequestContext};
use tessera_quality::{CheckResult, TableFacts, run_checks};

use tessera_query::{
    Identifiers, MeshSnapshot, QueryConfig, QueryEngine, SessionShape, SourceFormat,
    register_source,
};
use tessera_spec::SpecDocument;
use tessera_storage::Storage;

use crate::checks::{report_of, unstored_run};
use crate::error::{Result, ServiceError};
use crate::views::CheckReport;

/// Runs the checks of the contract in `text` (named `file` in messages) against `server` (by
/// name; the first entry when `None`). Relative paths are read from the working directory, as
/// datacontract-cli does.
pub async fn test_contract(
    cx: &RequestContext,
    file: &str,
    text: &str,
    server: Option<&str>,
) -> Result<CheckReport> {
    let mut doc = SpecDocument::parse(file, text)?;
    // A Data Contract Specification file is read as the ODCS contract it converts to.
    if tessera_spec::is_dcs(&doc) {
        let converted = tessera_spec::dcs_to_odcs(&doc)?;
        doc = SpecDocument::parse(&format!("{file} (converted from DCS)"), &converted)?;
    }
    tessera_spec::validate(&doc)?;
    let contract = tessera_spec::contract_for_checks(&doc)?;
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
    run_contract(cx, &contract, &path, format, &name).await
}

/// An engine for a command that reads local files in the user's own process: relative paths
/// from the working directory, the default limits.
fn local_engine() -> Result<QueryEngine> {
    let storage = Storage::new(".", HashMap::new())?;
    Ok(QueryEngine::new(Arc::new(storage), QueryConfig::default())?)
}

/// The first `limit` rows of a local file (`format`: `csv` with a header, `ndjson`, `parquet`),
/// read through a session like any other (the same functions and limits) — what
/// `tessera new --from-file` learns a schema from.
pub async fn read_local_file(
    cx: &RequestContext,
    path: &str,
    format: &str,
    limit: usize,
) -> Result<Vec<arrow::record_batch::RecordBatch>> {
    let format = SourceFormat::parse(format)
        .filter(|f| *f != SourceFormat::Delta)
        .ok_or_else(|| {
            ServiceError::BadRequest(format!(
                "{path}: a .csv, .ndjson (.jsonl) or .parquet file is needed"
            ))
        })?;
    let engine = local_engine()?;
    let ctx = engine.session_shaped(
        &MeshSnapshot::default(),
        cx,
        &SessionShape::identifiers(Identifiers::AsWritten),
    )?;
    register_source(&ctx, "sample", path, format, &[]).await?;
    let session = ctx.clone();
    let batches = engine
        .run(&session, async move {
            let df = ctx.table("sample").await?.limit(0, Some(limit))?;
            Ok(df.collect().await?)
        })
        .await;
    engine.shut_down();
    Ok(batches?)
}

async fn run_contract(
    cx: &RequestContext,
    contract: &Contract,
    path: &str,
    format: SourceFormat,
    server: &str,
) -> Result<CheckReport> {
    // The files are read through a session like any other: the same limits and functions. Rules
    // written for datacontract-cli run on DuckDB, which matches identifiers regardless of case
    // (`AVG(ARR_DELAY)` on a column `ARR_DELAY`): identifiers are taken as written here, not
    // folded to lower case as in the mesh's SQL.
    let engine = local_engine()?;
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
        let columns: Vec<String> = dataset.columns.iter().map(|c| c.name.clone()).collect();
        let ctx = engine.session_shaped(
            &MeshSnapshot::default(),
            cx,
            &SessionShape::identifiers(Identifiers::AsWritten),
        )?;
        register_source(&ctx, table, &path, format, &columns).await?;
        let checks = dataset.checks(&contract.sla);
        let results: Vec<CheckResult> = {
            let (ctx, table, dataset, facts) = (
                ctx.clone(),
                table.to_string(),
                dataset.clone(),
                facts.clone(),
            );
            let session = ctx.clone();
            engine
                .run(&session, async move {
                    Ok(run_checks(&ctx, &table, &dataset, &checks, &facts)
                        .await
                        .map_err(|e| e.to_string()))
                })
                .await?
                .map_err(|e| ServiceError::BadRequest(format!("{path}: {e}")))?
        };
        runs.push(unstored_run(table, contract, started, &results));
    }
    engine.shut_down();
    Ok(report_of(format!("{} ({server})", contract.id), runs))
}
