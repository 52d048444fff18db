//! `tessera transforms`, `tessera run` and `tessera runs`, through the API.

use anyhow::{Result, bail};
use tessera_server::views::{TransformRunView, TransformView};

use crate::cli::ListFormat;
use crate::client::Client;
use crate::commands::catalog::table;

/// `DOMAIN.PRODUCT` or `DOMAIN.PRODUCT.DATASET` as its parts.
fn parts(text: &str) -> Result<Vec<&str>> {
    let parts: Vec<&str> = text.split('.').collect();
    match parts.len() {
        2 | 3 => Ok(parts),
        _ => bail!("{text:?} is neither DOMAIN.PRODUCT nor DOMAIN.PRODUCT.DATASET"),
    }
}

fn duration(ms: i64) -> String {
    if ms < 10_000 {
        format!("{:.2}s", ms as f64 / 1000.0)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

fn runs_table(runs: &[TransformRunView]) -> String {
    let mut t = table(&[
        "STARTED", "DATASET", "TRIGGER", "MODE", "STATUS", "ROWS IN", "ROWS OUT", "DURATION",
        "VERSION", "ERROR", "NOTE",
    ]);
    for r in runs {
        t.add_row(vec![
            r.started_at.clone(),
            r.dataset.clone(),
            r.trigger.clone(),
            r.mode.clone(),
            r.status.clone(),
            r.rows_in.to_string(),
            r.rows_out.to_string(),
            duration(r.duration_ms),
            r.table_version.map_or("-".into(), |v| v.to_string()),
            r.error.clone().unwrap_or_else(|| "-".into()),
            r.note.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t.to_string()
}

pub async fn list(client: &Client, target: Option<String>, format: ListFormat) -> Result<()> {
    let all: Vec<TransformView> = match target.as_deref() {
        // `tessera transforms list`, as `tessera sources list` is spelt, lists them all too.
        None | Some("list") => client.get(&["api", "v1", "transforms"], &[]).await?,
        Some(t) => match t.split('.').collect::<Vec<_>>().as_slice() {
            [d, p] => client.get(&["api", "v1", "transforms", d, p], &[]).await?,
            _ => bail!("{t:?} is not a product: give DOMAIN.PRODUCT"),
        },
    };
    if format == ListFormat::Json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    let mut t = table(&[
        "DATASET",
        "MATERIALIZATION",
        "INPUTS",
        "TRIGGERS",
        "LAST RUN",
        "STATUS",
        "ROWS OUT",
    ]);
    for v in &all {
        let last = v.last_run.as_ref();
        t.add_row(vec![
            v.dataset.clone(),
            v.materialization.clone(),
            v.inputs.join("\n"),
            if v.triggers.is_empty() {
                "by hand".into()
            } else {
                v.triggers.join(", ")
            },
            last.map_or("never".into(), |r| r.started_at.clone()),
            last.map_or("-".into(), |r| r.status.clone()),
            last.map_or("-".into(), |r| r.rows_out.to_string()),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// Runs `target`'s transforms, or (no target) those of the mesh whose datasets are behind
/// their inputs (every one with `full_refresh`).
pub async fn run(
    client: &Client,
    target: Option<&str>,
    full_refresh: bool,
    format: ListFormat,
) -> Result<()> {
    let mut path = vec!["api", "v1", "transforms"];
    if let Some(target) = target {
        path.extend(parts(target)?);
    }
    path.push("run");
    let query: &[(&str, &str)] = if full_refresh {
        &[("full_refresh", "true")]
    } else {
        &[]
    };
    let runs: Vec<TransformRunView> = client.post_query(&path, query).await?;
    if format == ListFormat::Json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else if runs.is_empty() {
        println!("nothing to run: every computed dataset is up to date with its inputs");
    } else {
        println!("{}", runs_table(&runs));
    }
    let failed: Vec<&TransformRunView> = runs.iter().filter(|r| r.status != "succeeded").collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} run(s) failed and committed nothing: {}",
            failed.len(),
            runs.len(),
            failed
                .iter()
                .map(|r| format!("{}: {}", r.dataset, r.error.as_deref().unwrap_or("?")))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(())
}

pub async fn runs(
    client: &Client,
    target: Option<String>,
    limit: i64,
    format: ListFormat,
) -> Result<()> {
    let limit = limit.to_string();
    let mut query: Vec<(&str, &str)> = vec![("limit", limit.as_str())];
    if let Some(t) = target.as_deref() {
        let parts: Vec<&str> = t.split('.').collect();
        if parts.len() > 3 {
            bail!("{t:?} is not DOMAIN, DOMAIN.PRODUCT or DOMAIN.PRODUCT.DATASET");
        }
        for (key, value) in ["domain", "product", "dataset"].into_iter().zip(parts) {
            query.push((key, value));
        }
    }
    let runs: Vec<TransformRunView> = client.get(&["api", "v1", "transform-runs"], &query).await?;
    if format == ListFormat::Json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else {
        println!("{}", runs_table(&runs));
    }
    Ok(())
}
