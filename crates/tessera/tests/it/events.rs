//! Streaming events through the real binary and `tessera send`: what the server acknowledged
//! survives a SIGKILL before its commit, is committed once after the restart, and a repeated
//! send within the idempotency window writes nothing.

use std::time::{Duration, Instant};

use crate::cli::{CONTRACT, PRODUCT};
use crate::support::*;

fn count(server: &Server, token: &str, table: &str) -> i64 {
    let out = server
        .cli_as(
            token,
            &[
                "query",
                &format!("SELECT count(*) AS n FROM {table}"),
                "--format",
                "csv",
            ],
        )
        .ok();
    out.stdout
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("a count: {}", out.stdout))
}

/// Waits up to `limit` for `table` to hold `want` rows; the last count.
fn wait_for(server: &Server, token: &str, table: &str, want: i64, limit: Duration) -> i64 {
    let started = Instant::now();
    loop {
        let n = count(server, token, table);
        if n == want || started.elapsed() > limit {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn acknowledged_events_survive_a_sigkill_and_are_committed_once() {
    let data = tempfile::tempdir().unwrap();
    // An hour between commits: nothing is committed before the kill.
    let mut server = Server::start(
        "serve",
        data.path(),
        &["--event-commit-interval-ms", "3600000"],
    );
    server.without_standard_policies();
    let token = server.admin_token.clone();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("product.odps.yaml"), PRODUCT).unwrap();
    std::fs::write(folder.path().join("orders.odcs.yaml"), CONTRACT).unwrap();
    server.cli(&["apply", folder.path().to_str().unwrap()]).ok();

    // 250 events in three requests; three have a negative amount; a blank line is skipped.
    let mut events = String::new();
    for i in 1..=250 {
        let amount = if i % 100 == 0 || i == 7 { -1 } else { i };
        events.push_str(&format!("{{\"order_id\": {i}, \"amount\": {amount}}}\n"));
        if i == 3 {
            events.push('\n');
        }
    }
    let file = folder.path().join("orders.ndjson");
    std::fs::write(&file, &events).unwrap();
    let file = file.to_str().unwrap();
    let sent = server
        .cli(&["send", "shop.orders.orders", file, "--batch-events", "100"])
        .ok();
    assert!(
        sent.stdout.contains(
            "shop.orders.orders: 250 events sent in 3 request(s), 247 accepted, 3 quarantined."
        ),
        "{}",
        sent.stdout
    );
    // Rejections name the file's line (the blank line after event 3 counts).
    assert!(sent.stdout.contains("  line 8: amount"), "{}", sent.stdout);
    assert!(
        sent.stdout.contains("  line 101: amount"),
        "{}",
        sent.stdout
    );
    assert_eq!(
        count(&server, &token, "shop.orders.orders"),
        0,
        "not committed yet"
    );

    server.kill();
    let server = Server::restart(data.path(), &["--event-commit-interval-ms", "100"], &token);
    assert_eq!(
        wait_for(
            &server,
            &token,
            "shop.orders.orders",
            247,
            Duration::from_secs(20)
        ),
        247,
        "the acknowledged events are committed after the restart"
    );
    assert_eq!(
        wait_for(
            &server,
            &token,
            "shop.orders.orders_quarantine",
            3,
            Duration::from_secs(5)
        ),
        3
    );
    let ids = server
        .cli_as(
            &token,
            &[
                "query",
                "SELECT count(DISTINCT order_id) AS n, min(order_id) AS lo, max(order_id) AS hi FROM shop.orders.orders",
                "--format",
                "csv",
            ],
        )
        .ok();
    assert_eq!(ids.stdout, "n,lo,hi\n247,1,250\n", "each event once");

    // The same file again: every request was seen, across the restart; nothing is written.
    let again = server
        .cli_as(
            &token,
            &["send", "shop.orders.orders", file, "--batch-events", "100"],
        )
        .ok();
    assert!(
        again.stdout.contains("3 request(s) had been sent before"),
        "{}",
        again.stdout
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&server, &token, "shop.orders.orders"), 247);

    // From stdin.
    let mut child = tessera()
        .env("TESSERA_TOKEN", &token)
        .args(["send", "shop.orders.orders", "-", "--server", &server.url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"order_id\": 1000, \"amount\": 1}\n{\"order_id\": 1001, \"amount\": 2}\n")
        .unwrap();
    let out: Run = child.wait_with_output().unwrap().into();
    let out = out.ok();
    assert!(
        out.stdout
            .contains("2 events sent in 1 request(s), 2 accepted"),
        "{}",
        out.stdout
    );
    assert_eq!(
        wait_for(
            &server,
            &token,
            "shop.orders.orders",
            249,
            Duration::from_secs(20)
        ),
        249
    );
}
