//! `tessera ingest DOMAIN.PRODUCT.DATASET FILE`.

use std::path::Path;

use anyhow::{Context, Result};
use tessera_core::DatasetRef;
use tessera_server::views::IngestReport;

use crate::cli::FileFormat;
use crate::client::Client;

pub async fn run(
    client: &Client,
    dataset: &str,
    file: &Path,
    format: Option<FileFormat>,
    batch_id: Option<&str>,
) -> Result<()> {
    let reference: DatasetRef = dataset.parse()?;
    let body = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let file_name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let mut query: Vec<(&str, &str)> = vec![("file_name", &file_name)];
    if let Some(f) = format {
        query.push(("format", f.as_str()));
    }
    if let Some(id) = batch_id {
        query.push(("batch_id", id));
    }
    let parts = [
        reference.domain.as_str(),
        reference.product.as_str(),
        reference.dataset.as_str(),
    ];
    let report = client.ingest(&parts, body, &query).await?;
    print_report(&report);
    Ok(())
}

pub fn print_report(r: &IngestReport) {
    let short_id: String = r.batch_id.chars().take(16).collect();
    if r.duplicate {
        println!(
            "{}: batch {short_id} was ingested before; nothing written ({} accepted, {} quarantined then).",
            r.dataset, r.accepted, r.quarantined
        );
        return;
    }
    let version = r
        .table_version
        .map(|v| format!(", table version {v}"))
        .unwrap_or_default();
    println!(
        "{}: {} rows, {} accepted, {} quarantined (batch {short_id}{version}).",
        r.dataset, r.rows, r.accepted, r.quarantined
    );
    for rejection in &r.rejections {
        println!(
            "  row {}: {} [{}]",
            rejection.row, rejection.reason, rejection.rule
        );
    }
    if r.quarantined as usize > r.rejections.len() {
        println!(
            "  ... all {} refused rows are in {}_quarantine",
            r.quarantined, r.dataset
        );
    }
}
