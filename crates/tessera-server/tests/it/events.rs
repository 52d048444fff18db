//! Streaming events over HTTP: validated at the edge with the contract's casts and row rules
//! (invalid events to quarantine, listed by index), durable when acknowledged, committed
//! within moments and gated like a batch; idempotency keys, body limits and the backlog bound.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::on_both_stores;
use crate::support::*;

const EVENTS: &str = "/api/v1/datasets/shop/orders/orders/events";

fn fast_commits(config: &mut tessera_server::ServerConfig) {
    config.events.commit_interval = Duration::from_millis(100);
}

impl TestServer {
    async fn send_events(
        &self,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut request = self.http.post(format!("{}{EVENTS}", self.url)).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, r.json().await.unwrap_or(Value::Null), headers)
    }

    /// Waits up to ten seconds for `sql`'s count to be `want`; the last count.
    async fn count_becomes(&self, sql: &str, want: i64) -> i64 {
        let started = Instant::now();
        loop {
            let n = self.scalar(sql).await.as_i64().unwrap();
            if n == want || started.elapsed() > Duration::from_secs(10) {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

const ORDERS: &str = "SELECT count(*) AS n FROM shop.orders.orders";
const QUARANTINE: &str = "SELECT count(*) AS n FROM shop.orders.orders_quarantine";

async fn events_are_validated_at_the_edge_and_committed_in_moments(store: Store) {
    let server = TestServer::start_with(store, Tables::Local, fast_commits).await;
    let (status, plan) = server.apply(&shop_folder(), false).await;
    assert_eq!(status, 200, "{plan}");

    let ndjson = r#"{"order_id": 1, "customer_id": "U00000001", "amount": 10.5, "status": "open", "placed_at": "2026-01-01T10:00:00Z"}
{"order_id": 2, "customer_id": "U00000002", "amount": "99.99", "status": "shipped"}

{"order_id": 3, "customer_id": "X1", "amount": 7, "status": "open"}
{"order_id": 4, "customer_id": "U00000004", "amount": -1, "status": "open"}
{"order_id": 5, "customer_id": "U00000005", "amount": 3, "status": "lost"}
"#;
    let (status, receipt, _) = server
        .send_events(
            ndjson,
            &[
                ("content-type", "application/x-ndjson"),
                ("x-request-id", "events-request-1"),
            ],
        )
        .await;
    assert_eq!(status, 202, "{receipt}");
    assert_eq!(receipt["dataset"], "shop.orders.orders");
    assert_eq!(receipt["request_id"], "events-request-1");
    assert_eq!(
        (
            &receipt["events"],
            &receipt["accepted"],
            &receipt["quarantined"]
        ),
        (&json!(5), &json!(2), &json!(3)),
        "{receipt}"
    );
    let rejected: Vec<(i64, String)> = receipt["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_i64().unwrap(),
                r["column"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        vec![
            (2, "customer_id".to_string()),
            (3, "amount".to_string()),
            (4, "status".to_string())
        ],
        "each invalid event by its index in the request: {receipt}"
    );
    assert_eq!(server.count_becomes(ORDERS, 2).await, 2);
    assert_eq!(server.count_becomes(QUARANTINE, 3).await, 3);
    let quarantined = server
        .rows("SELECT DISTINCT _batch_id FROM shop.orders.orders_quarantine")
        .await;
    assert_eq!(quarantined, vec![json!({"_batch_id": "events-request-1"})]);
    let cast = server
        .rows("SELECT CAST(amount AS DOUBLE) AS amount FROM shop.orders.orders WHERE order_id = 2")
        .await;
    assert_eq!(cast, vec![json!({"amount": 99.99})], "cast like a batch");

    // A JSON array, and gzip (declared or recognised).
    let array = json!([
        {"order_id": 10, "customer_id": "U00000010", "amount": 1},
        {"order_id": 11, "customer_id": "U00000011", "amount": 2}
    ])
    .to_string();
    let (status, receipt, _) = server
        .send_events(array, &[("content-type", "application/json")])
        .await;
    assert_eq!(
        (status, &receipt["accepted"]),
        (202, &json!(2)),
        "{receipt}"
    );
    let line =
        |id: i64| format!("{{\"order_id\": {id}, \"customer_id\": \"U{id:08}\", \"amount\": 1}}\n");
    let (status, receipt, _) = server
        .send_events(gzip(line(20).as_bytes()), &[("content-encoding", "gzip")])
        .await;
    assert_eq!(
        (status, &receipt["accepted"]),
        (202, &json!(1)),
        "{receipt}"
    );
    let (status, receipt, _) = server.send_events(gzip(line(21).as_bytes()), &[]).await;
    assert_eq!(
        (status, &receipt["accepted"]),
        (202, &json!(1)),
        "{receipt}"
    );
    // A generic type, as a browser's fetch sends a string.
    let (status, receipt, _) = server
        .send_events(line(22), &[("content-type", "text/plain;charset=UTF-8")])
        .await;
    assert_eq!(
        (status, &receipt["accepted"]),
        (202, &json!(1)),
        "{receipt}"
    );
    assert_eq!(server.count_becomes(ORDERS, 7).await, 7);

    // The commits are in the dataset's batch history as the committer's.
    let (status, dataset) = server.get("/api/v1/datasets/shop/orders/orders").await;
    assert_eq!(status, 200, "{dataset}");
}

async fn an_idempotency_key_makes_a_retry_harmless(store: Store) {
    let server = TestServer::start_with(store, Tables::Local, fast_commits).await;
    server.apply(&shop_folder(), false).await;
    let body = "{\"order_id\": 1, \"customer_id\": \"U00000001\"}\n{\"order_id\": 2, \"customer_id\": \"bad\"}\n";
    let key = [("idempotency-key", "retry-me")];
    let (status, first, _) = server.send_events(body, &key).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["replayed"], false);
    let (status, again, _) = server.send_events(body, &key).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["replayed"], true);
    for field in [
        "request_id",
        "events",
        "accepted",
        "quarantined",
        "rejections",
    ] {
        assert_eq!(again[field], first[field], "{field}");
    }
    // Another key is another request.
    let (status, other, _) = server
        .send_events(
            body.replace("\"order_id\": 1,", "\"order_id\": 3,"),
            &[("idempotency-key", "another")],
        )
        .await;
    assert_eq!((status, &other["replayed"]), (202, &json!(false)));
    assert_eq!(server.count_becomes(ORDERS, 2).await, 2);
    assert_eq!(server.count_becomes(QUARANTINE, 2).await, 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.scalar(ORDERS).await,
        json!(2),
        "the retry wrote nothing"
    );
}

async fn the_commit_gate_refuses_a_run_into_the_quarantine(store: Store) {
    let server = TestServer::start_with(store, Tables::Local, fast_commits).await;
    server.apply(&shop_folder(), false).await;
    let line =
        |id: i64| format!("{{\"order_id\": {id}, \"customer_id\": \"U{id:08}\", \"amount\": 1}}\n");
    let (status, receipt, _) = server
        .send_events(format!("{}{}{}", line(1), line(2), line(3)), &[])
        .await;
    assert_eq!(status, 202, "{receipt}");
    assert_eq!(server.count_becomes(ORDERS, 3).await, 3);
    // Order 3 again: each event is valid alone, but the commit would break the primary key.
    let (status, receipt, _) = server
        .send_events(format!("{}{}", line(3), line(4)), &[])
        .await;
    assert_eq!(
        (status, &receipt["accepted"]),
        (202, &json!(2)),
        "{receipt}"
    );
    assert_eq!(server.count_becomes(QUARANTINE, 2).await, 2);
    assert_eq!(server.scalar(ORDERS).await, json!(3));
    let reasons = server
        .rows("SELECT DISTINCT _rule FROM shop.orders.orders_quarantine")
        .await;
    assert_eq!(reasons.len(), 1, "{reasons:?}");

    // Two requests at once, often one commit: the one that breaks the key costs only itself.
    let (first, second) = tokio::join!(
        server.send_events(format!("{}{}", line(5), line(6)), &[]),
        server.send_events(line(1), &[]),
    );
    assert_eq!((first.0, second.0), (202, 202));
    assert_eq!(server.count_becomes(ORDERS, 5).await, 5);
    assert_eq!(server.count_becomes(QUARANTINE, 3).await, 3);
}

/// How many rows DuckDB (with its delta extension, from the test venv) reads from the Delta
/// table at `path`: what any other Delta reader sees.
fn duckdb_count(path: &std::path::Path) -> i64 {
    let python = std::env::var("TESSERA_TEST_PYTHON")
        .expect("TESSERA_TEST_PYTHON is not set: run the suite with scripts/test");
    let script = r#"
import sys, pathlib, duckdb, duckdb_extension_delta
ext = next(pathlib.Path(duckdb_extension_delta.__file__).parent.rglob("delta.duckdb_extension"))
con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
con.execute("PRAGMA disable_progress_bar")
con.execute(f"LOAD '{ext}'")
print(con.execute(f"SELECT count(*) FROM delta_scan('{sys.argv[1]}')").fetchone()[0])
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script, path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap()
}

/// A table that takes a commit per request is compacted and checkpointed in the background
/// while events keep arriving; nothing is lost or doubled, the gate still knows every key, and
/// the table stays one that DuckDB reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_compacts_small_commits_while_events_arrive() {
    let server = TestServer::start_with(Store::Sqlite, Tables::Local, |c| {
        c.events.commit_interval = Duration::from_millis(50);
        c.maintenance.interval = Duration::from_millis(300);
        c.maintenance.policy.min_small_files = 6;
        c.maintenance.policy.checkpoint_every = 10;
    })
    .await;
    server.apply(&shop_folder(), false).await;
    let line =
        |id: i64| format!("{{\"order_id\": {id}, \"customer_id\": \"U{id:08}\", \"amount\": 1}}\n");
    // One commit per request: each waits for the one before to be queryable.
    for id in 1..=30 {
        let (status, receipt, _) = server.send_events(line(id), &[]).await;
        assert_eq!(status, 202, "{receipt}");
        assert_eq!(server.count_becomes(ORDERS, id).await, id);
    }
    let table = server.config.data_dir.join("tables/shop/orders/orders");
    let started = Instant::now();
    let files = loop {
        let (status, dataset) = server.get("/api/v1/datasets/shop/orders/orders").await;
        assert_eq!(status, 200, "{dataset}");
        let files = dataset["table_files"].as_i64().unwrap();
        if (files < 6 && table.join("_delta_log/_last_checkpoint").exists())
            || started.elapsed() > Duration::from_secs(20)
        {
            break files;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(files < 6, "30 commits were not compacted: {files} files");
    assert!(
        table.join("_delta_log/_last_checkpoint").exists(),
        "no checkpoint was written"
    );
    assert_eq!(server.scalar(ORDERS).await, json!(30));
    assert_eq!(
        server
            .scalar("SELECT count(DISTINCT order_id) FROM shop.orders.orders")
            .await,
        json!(30)
    );
    // The gate's knowledge of the keys survives compaction: a key from before is refused.
    let (status, _, _) = server.send_events(line(7), &[]).await;
    assert_eq!(status, 202);
    assert_eq!(server.count_becomes(QUARANTINE, 1).await, 1);
    assert_eq!(server.scalar(ORDERS).await, json!(30));
    assert_eq!(duckdb_count(&table), 30);
}

on_both_stores!(
    events_are_validated_at_the_edge_and_committed_in_moments,
    an_idempotency_key_makes_a_retry_harmless,
    the_commit_gate_refuses_a_run_into_the_quarantine,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_event_requests_are_refused_whole_with_a_clear_error() {
    let server = TestServer::start_with(Store::Sqlite, Tables::Local, |c| {
        fast_commits(c);
        c.events.max_body_bytes = 2_000;
        c.events.max_events = 3;
    })
    .await;
    server.apply(&shop_folder(), false).await;
    let good = "{\"order_id\": 1, \"customer_id\": \"U00000001\"}";
    // (body, headers, status, what the message says)
    type Case = (
        Vec<u8>,
        Vec<(&'static str, &'static str)>,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            format!("{good}\nnot json\n").into_bytes(),
            vec![],
            422,
            "line 2",
        ),
        (
            format!("[{good}, 7]").into_bytes(),
            vec![],
            400,
            "event 1 is not a JSON object",
        ),
        (
            b"{\"order_id\": 1, \"colour\": \"red\"}\n".to_vec(),
            vec![],
            422,
            "colour",
        ),
        (b"  \n".to_vec(), vec![], 422, "no events"),
        (b"[]".to_vec(), vec![], 422, "no events"),
        (
            good.as_bytes().to_vec(),
            vec![("content-encoding", "br")],
            400,
            "Content-Encoding",
        ),
        (
            vec![0x1f, 0x8b, 1, 2, 3],
            vec![],
            400,
            "does not decompress",
        ),
        (
            good.as_bytes().to_vec(),
            vec![("content-type", "text/csv")],
            415,
            "Content-Type \"text/csv\" is not events",
        ),
        (
            good.as_bytes().to_vec(),
            vec![("content-type", "application/x-www-form-urlencoded")],
            415,
            "application/x-ndjson",
        ),
        (vec![b' '; 3_000], vec![], 413, "--event-max-body-bytes"),
        (
            format!("{good}\n{good}\n{good}\n{good}").into_bytes(),
            vec![],
            413,
            "the request holds 4 events, more than the 3 one request may hold (server option --event-max-rows)",
        ),
        (
            format!("[{good}, {good}, {good}, {good}]").into_bytes(),
            vec![],
            413,
            "--event-max-rows",
        ),
        (
            gzip(&vec![b' '; 50_000]),
            vec![],
            413,
            "--event-max-body-bytes",
        ),
    ];
    for (body, headers, want, says) in cases {
        let (status, answer, _) = server.send_events(body, &headers).await;
        assert_eq!(status, want, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{says:?} in {message:?}");
    }
    // Who may not ingest may not send events.
    let eve = server.token_for("eve", &[], &[]).await;
    let refused = server
        .client(Some(&eve))
        .post(format!("{}{EVENTS}", server.url))
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let anonymous = server
        .client(None)
        .post(format!("{}{EVENTS}", server.url))
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.scalar(ORDERS).await, json!(0), "nothing was written");
    assert_eq!(server.scalar(QUARANTINE).await, json!(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_event_log_answers_429_with_retry_after() {
    let server = TestServer::start_with(Store::Sqlite, Tables::Local, |c| {
        c.events.commit_interval = Duration::from_secs(3600);
        c.events.max_backlog_bytes = 1;
    })
    .await;
    server.apply(&shop_folder(), false).await;
    let body = "{\"order_id\": 1, \"customer_id\": \"U00000001\"}\n";
    let (status, receipt, _) = server.send_events(body, &[]).await;
    assert_eq!(status, 202, "the first request fills the log: {receipt}");
    let (status, answer, headers) = server.send_events(body, &[]).await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["error"]["code"], "backlogged");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    // A graceful stop commits what the log holds.
    let restarted = server.stop().await.restart().await;
    assert_eq!(restarted.scalar(ORDERS).await, json!(1));
}

/// A shop whose events are committed when three wait (the interval is an hour).
async fn three_row_commits() -> TestServer {
    let server = TestServer::start_with(Store::Sqlite, Tables::Local, |c| {
        c.events.commit_interval = Duration::from_secs(3600);
        c.events.commit_max_rows = 3;
    })
    .await;
    server.apply(&shop_folder(), false).await;
    server
}

/// One valid order event, as an NDJSON line.
fn order_event(id: i64) -> String {
    format!("{{\"order_id\": {id}, \"customer_id\": \"U{id:08}\"}}\n")
}

/// `--event-commit-rows`: a dataset with that many events waiting is committed at once, however
/// long the commit interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enough_waiting_events_are_committed_before_the_interval() {
    let server = three_row_commits().await;
    let (status, receipt, _) = server
        .send_events(format!("{}{}", order_event(1), order_event(2)), &[])
        .await;
    assert_eq!(status, 202, "{receipt}");
    // Two waiting, under the bound: they wait for the interval (an hour).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.scalar(ORDERS).await, json!(0));
    let (status, receipt, _) = server.send_events(order_event(3), &[]).await;
    assert_eq!(status, 202, "{receipt}");
    assert_eq!(server.count_becomes(ORDERS, 3).await, 3);
}

/// A backlog drains back to back: with more waiting than one commit takes, the committer
/// commits again at once rather than waiting for more events to arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_committed_without_waiting_for_new_events() {
    let server = three_row_commits().await;
    // Five requests of three events: five runs due at once, one commit each.
    for request in 0..5 {
        let body: String = (0..3).map(|i| order_event(request * 3 + i)).collect();
        let (status, receipt, _) = server.send_events(body, &[]).await;
        assert_eq!(status, 202, "{receipt}");
    }
    assert_eq!(server.count_becomes(ORDERS, 15).await, 15);
}

/// Many one-event requests at once (validated a group at a time) are each answered for
/// themselves: their own rejections, numbered within the request; a request that cannot be
/// read is refused alone; quarantined events carry their own request's id and row number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_one_event_requests_are_each_answered_for_themselves() {
    let server = TestServer::start_with(Store::Sqlite, Tables::Local, fast_commits).await;
    server.apply(&shop_folder(), false).await;
    let server = std::sync::Arc::new(server);
    let requests = 300;
    let body = |i: i64| match i % 10 {
        // Not JSON, and a column the contract does not know: refused whole.
        3 => "{\"order_id\": ".to_string(),
        5 => format!("{{\"order_id\": {i}, \"colour\": \"red\"}}"),
        // A customer id that breaks the contract's pattern: quarantined.
        7 => format!("{{\"order_id\": {i}, \"customer_id\": \"X{i}\", \"amount\": 1}}"),
        _ => format!("{{\"order_id\": {i}, \"customer_id\": \"U{i:08}\", \"amount\": 1}}"),
    };
    let mut sent = tokio::task::JoinSet::new();
    for i in 0..requests {
        let server = server.clone();
        let body = body(i);
        sent.spawn(async move {
            let id = format!("one-event-{i}");
            let (status, receipt, _) = server
                .send_events(body, &[("x-request-id", id.as_str())])
                .await;
            (i, status, receipt)
        });
    }
    while let Some(answer) = sent.join_next().await {
        let (i, status, receipt) = answer.unwrap();
        match i % 10 {
            3 | 5 => assert_eq!(status, 422, "request {i}: {receipt}"),
            7 => {
                assert_eq!(status, 202, "request {i}: {receipt}");
                assert_eq!(
                    (&receipt["accepted"], &receipt["quarantined"]),
                    (&json!(0), &json!(1)),
                    "request {i}: {receipt}"
                );
                assert_eq!(receipt["rejections"][0]["index"], json!(0), "{receipt}");
                assert_eq!(receipt["rejections"][0]["column"], json!("customer_id"));
                assert_eq!(receipt["request_id"], json!(format!("one-event-{i}")));
            }
            _ => assert_eq!(
                (status, &receipt["accepted"], &receipt["rejections"]),
                (202, &json!(1), &json!([])),
                "request {i}: {receipt}"
            ),
        }
    }
    assert_eq!(server.count_becomes(ORDERS, 210).await, 210);
    assert_eq!(server.count_becomes(QUARANTINE, 30).await, 30);
    let quarantined = server
        .rows(
            "SELECT order_id, _batch_id, _row_number FROM shop.orders.orders_quarantine ORDER BY CAST(order_id AS BIGINT)",
        )
        .await;
    let want: Vec<Value> = (0..requests)
        .filter(|i| i % 10 == 7)
        .map(|i| {
            json!({"order_id": i.to_string(), "_batch_id": format!("one-event-{i}"), "_row_number": 1})
        })
        .collect();
    assert_eq!(quarantined, want);
}
