//! A load generator for the event API (`bench/events.py` drives it): posts NDJSON bodies from
//! a file, one per request, over keep-alive connections, for a number of seconds, and prints
//! what it measured as one JSON line: requests and events acknowledged, 429s, errors, and the
//! acknowledgement latency's median and 99th percentile.
//!
//! ```sh
//! cargo run --release -p tessera-bench --bin event_load -- \
//!   --url http://127.0.0.1:7070/api/v1/datasets/web/clicks/events/events \
//!   --token "$TOKEN" --bodies bodies.ndjson --events-per-body 1000 --connections 8 --seconds 30
//! ```
//!
//! `--bodies` holds one request body a line, each a JSON array of events (sent as NDJSON with
//! one event a line), so that one file serves batched and single-event requests alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

struct Args {
    url: String,
    token: String,
    bodies: String,
    events_per_body: u64,
    connections: usize,
    seconds: f64,
}

fn args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut out = Args {
        url: String::new(),
        token: String::new(),
        bodies: String::new(),
        events_per_body: 1,
        connections: 8,
        seconds: 10.0,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} takes a value"));
        match flag.as_str() {
            "--url" => out.url = value()?,
            "--token" => out.token = value()?,
            "--bodies" => out.bodies = value()?,
            "--events-per-body" => out.events_per_body = value()?.parse()?,
            "--connections" => out.connections = value()?.parse()?,
            "--seconds" => out.seconds = value()?.parse()?,
            other => bail!("unknown option {other}"),
        }
    }
    if out.url.is_empty() || out.bodies.is_empty() {
        bail!(
            "usage: event_load --url URL --token TOKEN --bodies FILE [--events-per-body N] [--connections N] [--seconds S]"
        );
    }
    Ok(out)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = args()?;
    let bodies: Vec<bytes::Bytes> = std::fs::read_to_string(&args.bodies)
        .with_context(|| format!("reading {}", args.bodies))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| -> Result<bytes::Bytes> {
            let events: Vec<serde_json::Value> = serde_json::from_str(l)?;
            let mut body = Vec::new();
            for e in events {
                serde_json::to_writer(&mut body, &e)?;
                body.push(b'\n');
            }
            Ok(body.into())
        })
        .collect::<Result<_>>()?;
    let bodies = Arc::new(bodies);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()?;
    let until = Instant::now() + Duration::from_secs_f64(args.seconds);
    let (acked, busy, failed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut tasks = Vec::new();
    for worker in 0..args.connections {
        let (client, bodies, url, token) = (
            client.clone(),
            bodies.clone(),
            args.url.clone(),
            args.token.clone(),
        );
        let (acked, busy, failed) = (acked.clone(), busy.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = worker * 7919;
            while Instant::now() < until {
                let body = bodies[i % bodies.len()].clone();
                i += 1;
                let started = Instant::now();
                let answer = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status().as_u16() == 202 => {
                        let _ = r.bytes().await;
                        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) if r.status().as_u16() == 429 => {
                        let _ = r.bytes().await;
                        busy.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await?);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let requests = acked.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "requests": requests,
            "events": requests * args.events_per_body,
            "busy": busy.load(Ordering::Relaxed),
            "failed": failed.load(Ordering::Relaxed),
            "p50_ms": at(0.5),
            "p99_ms": at(0.99),
            "seconds": args.seconds,
        })
    );
    Ok(())
}
