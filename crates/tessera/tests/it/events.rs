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

    // A gzip file is read through.
    let gz = folder.path().join("more.ndjson.gz");
    let mut encoder =
        flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), Default::default());
    encoder
        .write_all(b"{\"order_id\": 1002, \"amount\": 1}\n{\"order_id\": 1003, \"amount\": 2}\n")
        .unwrap();
    encoder.finish().unwrap();
    let zipped = server
        .cli_as(
            &token,
            &["send", "shop.orders.orders", gz.to_str().unwrap()],
        )
        .ok();
    assert!(
        zipped
            .stdout
            .contains("2 events sent in 1 request(s), 2 accepted"),
        "{}",
        zipped.stdout
    );
    assert_eq!(
        wait_for(
            &server,
            &token,
            "shop.orders.orders",
            251,
            Duration::from_secs(20)
        ),
        251
    );
}

/// A small xorshift generator: the kill moments vary from run to run, and the seed is printed
/// so that a failing run can be repeated.
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

/// The server is killed with SIGKILL at 50 random moments while four clients post events
/// concurrently (and the committer and table maintenance are at work). After every restart,
/// each acknowledged event is in the table exactly once, and no event is there twice or made
/// up. An unacknowledged event may be there (its request was durable, its answer lost) or not.
#[test]
fn acknowledged_events_survive_fifty_sigkills_during_concurrent_posts() {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    use std::sync::{Arc, Mutex, RwLock};

    const KILLS: usize = 50;
    const CLIENTS: usize = 4;
    const EVENTS_PER_REQUEST: i64 = 25;
    let args = [
        "--event-commit-interval-ms",
        "50",
        "--maintenance-interval-seconds",
        "1",
        "--compact-min-files",
        "4",
        "--checkpoint-every",
        "5",
    ];
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start("serve", data.path(), &args);
    server.without_standard_policies();
    let token = server.admin_token.clone();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("product.odps.yaml"), PRODUCT).unwrap();
    std::fs::write(folder.path().join("orders.odcs.yaml"), CONTRACT).unwrap();
    server.cli(&["apply", folder.path().to_str().unwrap()]).ok();

    let url = Arc::new(RwLock::new(server.url.clone()));
    let acknowledged = Arc::new(Mutex::new(BTreeSet::<i64>::new()));
    let sent = Arc::new(Mutex::new(BTreeSet::<i64>::new()));
    let next_id = Arc::new(AtomicI64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let http = server
        .http_builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (url, acknowledged, sent, next_id, stop, http) = (
                url.clone(),
                acknowledged.clone(),
                sent.clone(),
                next_id.clone(),
                stop.clone(),
                http.clone(),
            );
            runtime.spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let first = next_id.fetch_add(EVENTS_PER_REQUEST, Ordering::SeqCst);
                    let ids: Vec<i64> = (first..first + EVENTS_PER_REQUEST).collect();
                    let body: String = ids
                        .iter()
                        .map(|i| format!("{{\"order_id\": {i}, \"amount\": 1}}\n"))
                        .collect();
                    sent.lock().unwrap().extend(&ids);
                    let target = format!(
                        "{}/api/v1/datasets/shop/orders/orders/events",
                        url.read().unwrap()
                    );
                    match http.post(target).body(body).send().await {
                        Ok(r) if r.status().as_u16() == 202 => {
                            acknowledged.lock().unwrap().extend(&ids)
                        }
                        // Killed mid-request, restarting, or backlogged: not acknowledged.
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            })
        })
        .collect();

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill moments seeded with {seed}");
    let mut moments = Moments(seed);
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_millis(moments.next_ms(50, 500)));
        server.kill();
        server = Server::restart(data.path(), &args, &token);
        *url.write().unwrap() = server.url.clone();
    }
    // A last stretch of posts to a server left running, then the clients stop.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        runtime.block_on(client).unwrap();
    }

    let acknowledged = acknowledged.lock().unwrap().clone();
    let sent = sent.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 1000,
        "too few events were acknowledged to tell anything: {}",
        acknowledged.len()
    );
    let stored = || -> Vec<i64> {
        let out = server
            .cli_as(
                &token,
                &[
                    "query",
                    "SELECT order_id FROM shop.orders.orders",
                    "--format",
                    "csv",
                ],
            )
            .ok();
        out.stdout
            .lines()
            .skip(1)
            .map(|l| l.trim().parse().unwrap())
            .collect()
    };
    let started = Instant::now();
    let ids = loop {
        let ids = stored();
        let present: BTreeSet<i64> = ids.iter().copied().collect();
        if acknowledged.is_subset(&present) || started.elapsed() > Duration::from_secs(30) {
            break ids;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let present: BTreeSet<i64> = ids.iter().copied().collect();
    let lost: Vec<&i64> = acknowledged.difference(&present).take(10).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged event(s) are not in the table, e.g. {lost:?} (seed {seed})",
        acknowledged.difference(&present).count()
    );
    assert_eq!(
        ids.len(),
        present.len(),
        "an event is in the table twice (seed {seed})"
    );
    let invented: Vec<&i64> = present.difference(&sent).take(10).collect();
    assert!(invented.is_empty(), "never sent: {invented:?}");
    eprintln!(
        "{} events acknowledged, {} sent, {} in the table after {KILLS} kills",
        acknowledged.len(),
        sent.len(),
        present.len()
    );
}
