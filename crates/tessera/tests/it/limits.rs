//! Limits that must hold for the whole server process (issue 7), so they run against the real
//! binary: heavy queries past their time limit are cancelled and release the CPU while the
//! server keeps answering, SIGTERM stops the server while a heavy query runs, and a result far
//! larger than the limits is cut short without the process growing.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::Server;

/// Two CPU-bound queries for the two cores of the machine: billions of row pairs.
const HEAVY: &str = "SELECT count(*) FROM generate_series(1, 300000) a CROSS JOIN generate_series(1, 300000) b WHERE a.value * 7 + b.value = 3";

async fn post_query(http: &reqwest::Client, url: &str, sql: &str) -> (u16, Value) {
    let response = http
        .post(format!("{url}/api/v1/query"))
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heavy_queries_past_their_time_limit_are_cancelled_while_the_server_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start("serve", dir.path(), &["--query-timeout-seconds", "3"]);
    let http = server
        .http_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let heavy: Vec<_> = (0..2)
        .map(|_| {
            let (http, url) = (http.clone(), server.url.clone());
            tokio::spawn(async move { post_query(&http, &url, HEAVY).await })
        })
        .collect();
    // While both run, /health and a small query keep answering.
    let started = Instant::now();
    let mut polls = 0;
    while !heavy.iter().all(|h| h.is_finished()) {
        let health = http
            .get(format!("{}/health", server.url))
            .send()
            .await
            .expect("/health answers while queries run");
        assert_eq!(health.status().as_u16(), 200);
        let (status, body) = post_query(&http, &server.url, "SELECT 41 + 1 AS answer").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["rows"][0]["answer"], 42);
        polls += 1;
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the heavy queries were not stopped at their limit"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(polls >= 3, "the heavy queries ended before their limit");
    for handle in heavy {
        let (status, body) = handle.await.unwrap();
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["code"], "query_limit", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--query-timeout-seconds"),
            "{body}"
        );
    }
    // The cancelled queries give their cores back: over two seconds, starting a moment after
    // their answers, the idle server uses a small fraction of one core.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = server.cpu_seconds();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = server.cpu_seconds() - before;
    assert!(
        used < 0.5,
        "the server used {used:.2} CPU seconds in 2 s after its queries were cancelled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_while_a_heavy_query_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start("serve", dir.path(), &["--shutdown-timeout-seconds", "5"]);
    let http = server.http();
    let heavy = {
        let (http, url) = (http.clone(), server.url.clone());
        tokio::spawn(async move { post_query(&http, &url, HEAVY).await })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.terminate();
    let exited = tokio::task::spawn_blocking(move || {
        let status = server.wait_exit(Duration::from_secs(15));
        (server, status)
    })
    .await
    .unwrap();
    let status = exited.1.expect("the server still ran 15 s after SIGTERM");
    assert!(status.success(), "{status:?}");
    // The query was cancelled, and said so.
    let (status, body) = heavy.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shutting down"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_far_over_the_limits_is_cut_short_without_the_server_growing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        "serve",
        dir.path(),
        &[
            "--query-memory-limit-bytes",
            "268435456",
            "--query-max-result-bytes",
            "67108864",
        ],
    );
    let http = server.http();
    // Ten billion rows of about 120 bytes: a result of a terabyte.
    let response = http
        .post(format!("{}/api/v1/query", server.url))
        .header("accept", "text/csv")
        .json(&json!({"sql": "SELECT a.value AS a, b.value AS b, repeat('x', 100) AS padding FROM generate_series(1, 100000) a CROSS JOIN generate_series(1, 100000) b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body = response.text().await.unwrap();
    let last = body.trim_end().lines().last().unwrap();
    assert!(last.starts_with("#tessera_error,query_limit,"), "{last}");
    assert!(last.contains("--query-max-result-bytes"), "{last}");
    let peak = server.peak_memory_bytes();
    assert!(
        peak < 1 << 30,
        "the server grew to {} MiB for a result cut at 64 MiB",
        peak >> 20
    );
}

#[test]
fn the_cli_shows_the_rows_of_a_cut_short_result_and_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start("serve", dir.path(), &["--query-max-result-rows", "20000"]);
    let sql = "SELECT value FROM generate_series(1, 100000)";
    for format in ["table", "csv", "json", "ndjson"] {
        let run = server.cli(&["query", sql, "--format", format]).failed();
        assert!(
            run.stderr
                .contains("the result is incomplete (query_limit)")
                && run.stderr.contains("--query-max-result-rows"),
            "{format}: {}",
            run.stderr
        );
        assert!(
            run.stdout.contains("16384"),
            "{format}: the rows sent are shown"
        );
        assert!(
            !run.stdout.contains("tessera_error"),
            "{format}: the marker is not a row"
        );
    }
    // A complete result prints as usual and succeeds.
    let run = server
        .cli(&[
            "query",
            "SELECT value FROM generate_series(1, 3)",
            "--format",
            "csv",
        ])
        .ok();
    assert_eq!(run.stdout, "value\n1\n2\n3\n");
}
