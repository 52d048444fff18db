//! Transforms from the CLI, against the real binary: `tessera apply` sends a product folder's
//! `transforms/*.sql` with it (and no other SQL file), and the plan shows them; `tessera run`
//! runs them, `tessera runs` and `tessera transforms` show how they went.

use crate::cli::{CONTRACT, PRODUCT};
use crate::support::*;

#[test]
fn apply_sends_the_folders_transforms() {
    let data = tempfile::tempdir().unwrap();
    // Transforms run by hand only here.
    let server = Server::start("serve", data.path(), &["--transform-tick-seconds", "0"]);
    server.without_standard_policies();
    let folder = tempfile::tempdir().unwrap();
    let contract = format!(
        "{CONTRACT}  - name: big_orders\n    properties:\n      - name: order_id\n        logicalType: integer\n      - name: amount\n        logicalType: number\n"
    );
    std::fs::write(folder.path().join("product.odps.yaml"), PRODUCT).unwrap();
    std::fs::write(folder.path().join("orders.odcs.yaml"), contract).unwrap();
    // SQL outside transforms/ is the team's own (sample queries, scratch work): not sent.
    std::fs::write(folder.path().join("scratch.sql"), "SELECT 1").unwrap();
    std::fs::create_dir(folder.path().join("transforms")).unwrap();
    std::fs::write(
        folder.path().join("transforms/big_orders.sql"),
        "-- description: Orders over 100\nSELECT order_id, amount FROM shop.orders.orders WHERE amount > 100\n",
    )
    .unwrap();
    let lint = run(&["lint", folder.path().to_str().unwrap()]).ok();
    assert!(
        lint.stdout
            .contains("transform of big_orders from shop.orders.orders")
            && !lint.stdout.contains("scratch.sql"),
        "{}",
        lint.stdout
    );
    let plan = server.cli(&["apply", folder.path().to_str().unwrap()]).ok();
    assert!(
        plan.stdout.contains(
            "transform big_orders (shop.orders.big_orders from shop.orders.orders (full))"
        ),
        "{}",
        plan.stdout
    );

    // Run by hand: the table shows the run, the dataset holds the result.
    let csv = folder.path().join("orders.csv");
    std::fs::write(&csv, "order_id,amount\n1,10\n2,150\n3,250.5\n").unwrap();
    server
        .cli(&["ingest", "shop.orders.orders", csv.to_str().unwrap()])
        .ok();
    let ran = server.cli(&["run", "shop.orders.big_orders"]).ok();
    assert!(
        ran.stdout.contains("shop.orders.big_orders") && ran.stdout.contains("succeeded"),
        "{}",
        ran.stdout
    );
    assert_eq!(big_orders(&server, ""), 2);
    // With no target, what is behind its inputs: nothing now, the dataset after a new batch.
    let idle = server.cli(&["run"]).ok();
    assert_eq!(
        idle.stdout.trim(),
        "nothing to run: every computed dataset is up to date with its inputs"
    );
    std::fs::write(&csv, "order_id,amount\n4,500\n").unwrap();
    server
        .cli(&["ingest", "shop.orders.orders", csv.to_str().unwrap()])
        .ok();
    let caught_up = server.cli(&["run"]).ok();
    assert!(
        caught_up.stdout.contains("shop.orders.big_orders")
            && caught_up.stdout.contains("succeeded"),
        "{}",
        caught_up.stdout
    );
    assert_eq!(big_orders(&server, ""), 3);
    for args in [&["transforms", "shop.orders"][..], &["transforms", "list"]] {
        let listed = server.cli(args).ok();
        assert!(
            listed.stdout.contains("shop.orders.big_orders")
                && listed.stdout.contains("after an upstream commit")
                && listed.stdout.contains("succeeded"),
            "{args:?}: {}",
            listed.stdout
        );
    }

    // A run that breaks the contract (an order id that is no integer) fails with exit status
    // 1 and says why.
    std::fs::write(
        folder.path().join("transforms/big_orders.sql"),
        "SELECT 'x' || CAST(order_id AS VARCHAR) AS order_id, amount FROM shop.orders.orders WHERE amount > 100\n",
    )
    .unwrap();
    server.cli(&["apply", folder.path().to_str().unwrap()]).ok();
    let failed = server
        .cli(&["run", "shop.orders", "--full-refresh"])
        .failed();
    assert!(
        // The first of the three in the result's order (two files: either batch's row).
        failed.stderr.contains("1 of 1 run(s) failed and committed nothing: shop.orders.big_orders: 3 of the result's 3 rows break the contract of shop.orders.big_orders (first: order_id: \"x")
            && failed.stderr.contains("\" is not a valid integer)"),
        "{}",
        failed.stderr
    );
    let history = server
        .cli(&["runs", "shop.orders.big_orders", "--format", "json"])
        .ok();
    let runs: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    let summary: Vec<(&str, &str)> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["status"].as_str().unwrap(), r["mode"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("failed", "full"),
            ("succeeded", "full"),
            ("succeeded", "full")
        ]
    );
    // The dataset kept the last good run's rows.
    assert_eq!(big_orders(&server, " WHERE order_id IN (2, 3)"), 2);

    // A transform that reads a dataset the product may not: refused, naming file and line.
    std::fs::write(
        folder.path().join("transforms/big_orders.sql"),
        "SELECT order_id, amount\nFROM web.clicks.events\n",
    )
    .unwrap();
    let refused = server
        .cli(&["apply", folder.path().to_str().unwrap()])
        .failed();
    assert!(
        refused.stderr.contains("transforms/big_orders.sql:2")
            && refused
                .stderr
                .contains("web.clicks.events: there is no such dataset in the mesh"),
        "{}",
        refused.stderr
    );
}

/// How many rows `shop.orders.big_orders` holds (`filter`: a WHERE clause, or nothing), by
/// `tessera query`.
fn big_orders(server: &Server, filter: &str) -> u64 {
    let sql = format!("SELECT count(*) AS n FROM shop.orders.big_orders{filter}");
    let counted = server.cli(&["query", &sql, "--format", "csv"]).ok();
    let n = counted
        .stdout
        .strip_prefix("n\n")
        .unwrap_or_else(|| panic!("{}", counted.stdout));
    n.trim().parse().unwrap()
}

/// `tessera serve --openlineage-url URL` sends the run events of what it commits to that
/// endpoint: an ingested file's START and COMPLETE arrive as OpenLineage JSON.
#[test]
fn serve_sends_openlineage_events_to_the_url_it_is_given() {
    let (url, received) = lineage_endpoint();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start("serve", data.path(), &["--openlineage-url", &url]);
    server.without_standard_policies();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("product.odps.yaml"), PRODUCT).unwrap();
    std::fs::write(folder.path().join("orders.odcs.yaml"), CONTRACT).unwrap();
    server.cli(&["apply", folder.path().to_str().unwrap()]).ok();
    let csv = folder.path().join("orders.csv");
    std::fs::write(&csv, "order_id,amount\n1,10\n2,150\n").unwrap();
    server
        .cli(&["ingest", "shop.orders.orders", csv.to_str().unwrap()])
        .ok();

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let events = loop {
        let events = received.lock().unwrap().clone();
        if events.len() >= 2 || std::time::Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let runs: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["job"]["name"].as_str().unwrap_or_default(),
                e["eventType"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        runs,
        [
            ("ingest.shop.orders.orders", "START"),
            ("ingest.shop.orders.orders", "COMPLETE")
        ],
        "{events:?}"
    );
}

/// An HTTP endpoint on a free port that answers every POST with 201 and keeps its JSON body:
/// its URL, and the bodies it took.
fn lineage_endpoint() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/v1/lineage", listener.local_addr().unwrap());
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = received.clone();
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            let Ok(connection) = connection else { return };
            let keep = keep.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(connection.try_clone().unwrap());
                let mut writer = connection;
                // Requests one after another on a kept-alive connection.
                loop {
                    let mut length = 0;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    keep.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                    writer
                        .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")
                        .unwrap();
                }
            });
        }
    });
    (url, received)
}
