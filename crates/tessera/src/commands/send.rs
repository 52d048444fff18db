//! `tessera send DOMAIN.PRODUCT.DATASET FILE|-`: NDJSON events (one JSON object a line) from a
//! file or stdin, streamed to the event API in requests of up to `--batch-events` events,
//! with progress. Each request's `Idempotency-Key` is the SHA-256 of the dataset and its
//! events, so a request retried (after a 429, or a run repeated after a failure) within the
//! server's idempotency window writes nothing twice, as `tessera ingest` does for a file.

use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use tessera_core::DatasetRef;
use tessera_server::views::EventsReceipt;

use crate::client::Client;

/// A request stays well under the server's default `--event-max-body-bytes` (16 MiB).
const MAX_REQUEST_BYTES: usize = 4 << 20;
/// Rejections printed (all of them are in the quarantine table).
const REJECTIONS_SHOWN: usize = 10;

#[derive(Default)]
struct Totals {
    requests: usize,
    events: i64,
    accepted: i64,
    quarantined: i64,
    replayed: usize,
    /// (line, reason, rule) of the first rejections.
    rejections: Vec<(usize, String, String)>,
}

pub async fn run(client: &Client, dataset: &str, file: &str, batch_events: u32) -> Result<()> {
    let reference: DatasetRef = dataset.parse()?;
    let raw: Box<dyn std::io::Read> = if file == "-" {
        Box::new(std::io::stdin())
    } else {
        let path = Path::new(file);
        Box::new(
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?,
        )
    };
    let mut raw = std::io::BufReader::new(raw);
    // A gzip file (`events.ndjson.gz`, or one piped in) is read through, by its magic bytes.
    let gzipped = raw
        .fill_buf()
        .with_context(|| format!("cannot read {file}"))?
        .starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn BufRead> = if gzipped {
        Box::new(std::io::BufReader::new(
            flate2::bufread::MultiGzDecoder::new(raw),
        ))
    } else {
        Box::new(raw)
    };
    let progress = indicatif::ProgressBar::new_spinner();
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .expect("a valid progress template"),
    );
    let mut totals = Totals::default();
    let mut body = Vec::new();
    // The file line of each event in the request being filled.
    let mut lines: Vec<usize> = Vec::new();
    let batch_events = batch_events as usize;
    for (number, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read line {} of {file}", number + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        body.extend_from_slice(line.as_bytes());
        body.push(b'\n');
        lines.push(number + 1);
        if lines.len() >= batch_events || body.len() >= MAX_REQUEST_BYTES {
            send(client, &reference, &mut body, &mut lines, &mut totals).await?;
            progress.set_message(format!(
                "{} events sent to {reference}: {} accepted, {} quarantined",
                totals.events, totals.accepted, totals.quarantined
            ));
        }
    }
    if !lines.is_empty() {
        send(client, &reference, &mut body, &mut lines, &mut totals).await?;
    }
    progress.finish_and_clear();
    if totals.requests == 0 {
        anyhow::bail!("{file} holds no events (one JSON object a line)");
    }
    let replayed = match totals.replayed {
        0 => String::new(),
        n => format!(
            "; {n} request(s) had been sent before (same events within the idempotency window) and wrote nothing"
        ),
    };
    println!(
        "{reference}: {} events sent in {} request(s), {} accepted, {} quarantined{replayed}. They are durable, and queryable once committed (within about the server's commit interval).",
        totals.events, totals.requests, totals.accepted, totals.quarantined
    );
    for (line, reason, rule) in &totals.rejections {
        println!("  line {line}: {reason} [{rule}]");
    }
    if totals.quarantined as usize > totals.rejections.len() {
        println!(
            "  ... all {} refused events are in {reference}_quarantine",
            totals.quarantined
        );
    }
    Ok(())
}

async fn send(
    client: &Client,
    reference: &DatasetRef,
    body: &mut Vec<u8>,
    lines: &mut Vec<usize>,
    totals: &mut Totals,
) -> Result<()> {
    let key = hex::encode(
        Sha256::new()
            .chain_update(reference.to_string())
            .chain_update([0])
            .chain_update(&body[..])
            .finalize(),
    );
    let parts = [
        reference.domain.as_str(),
        reference.product.as_str(),
        reference.dataset.as_str(),
    ];
    let receipt: EventsReceipt = client
        .send_events(&parts, std::mem::take(body).into(), &key)
        .await
        .with_context(|| format!("sending the events from line {}", lines[0]))?;
    totals.requests += 1;
    totals.events += receipt.events;
    totals.accepted += receipt.accepted;
    totals.quarantined += receipt.quarantined;
    totals.replayed += usize::from(receipt.replayed);
    for r in receipt.rejections {
        if totals.rejections.len() >= REJECTIONS_SHOWN {
            break;
        }
        let line = usize::try_from(r.index)
            .ok()
            .and_then(|i| lines.get(i).copied())
            .unwrap_or_default();
        totals.rejections.push((line, r.reason, r.rule));
    }
    lines.clear();
    Ok(())
}
