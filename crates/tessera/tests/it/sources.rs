//! Sources and secrets from the CLI, against the real binary: a product folder's `sources/`
//! applied with it, `tessera sources run|status|list`, and `tessera secret set|list|delete`
//! with the value piped in and never printed.

use std::io::Write;
use std::process::Stdio;

use crate::cli::{CONTRACT, PRODUCT};
use crate::support::*;

/// Scheduled once a year: in this test it is pulled by hand only, with no scheduled turn racing.
const SOURCE: &str = "apiVersion: tessera/v1
kind: Source
name: drops
description: Order files the shop drops into the server's incoming/orders folder.
dataset: orders
connector: files
schedule: \"0 0 1 1 *\"
files:
  path: incoming/orders
  pattern: \"*.ndjson\"
";

#[test]
fn sources_and_secrets_from_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start("serve", data.path(), &[]);
    server.without_standard_policies();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("product.odps.yaml"), PRODUCT).unwrap();
    std::fs::write(folder.path().join("orders.odcs.yaml"), CONTRACT).unwrap();
    std::fs::create_dir(folder.path().join("sources")).unwrap();
    std::fs::write(folder.path().join("sources/drops.yaml"), SOURCE).unwrap();
    let plan = server.cli(&["apply", folder.path().to_str().unwrap()]).ok();
    assert!(
        plan.stdout.contains("source") && plan.stdout.contains("drops"),
        "{}",
        plan.stdout
    );

    let incoming = data.path().join("incoming/orders");
    std::fs::create_dir_all(&incoming).unwrap();
    std::fs::write(
        incoming.join("1.ndjson"),
        "{\"order_id\": 1, \"amount\": 5}\n{\"order_id\": 2, \"amount\": -5}\n",
    )
    .unwrap();
    let run = server.cli(&["sources", "run", "shop.orders.drops"]).ok();
    assert!(
        run.stdout.contains(
            "source shop.orders.drops pulled 2 row(s): 1 committed into shop.orders.orders, 1 quarantined (see shop.orders.orders_quarantine); position file 1.ndjson"
        ),
        "{}",
        run.stdout
    );
    let status = server.cli(&["sources", "status", "shop.orders.drops"]).ok();
    for expected in [
        "files into shop.orders.orders",
        "trigger:      schedule 0 0 1 1 *",
        "state:        idle",
        "position:     file 1.ndjson",
        "rows:         2 (1 quarantined) last pull, 2 (1 quarantined) in all",
    ] {
        assert!(
            status.stdout.contains(expected),
            "{expected}: {}",
            status.stdout
        );
    }
    let listed = server
        .cli(&["sources", "list", "shop.orders", "--format", "json"])
        .ok();
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed[0]["name"], "drops", "{listed}");
    assert_eq!(
        (&listed[0]["total_rows"], &listed[0]["total_quarantined"]),
        (&serde_json::json!(2), &serde_json::json!(1)),
        "{listed}"
    );
    let quarantined = server
        .cli(&[
            "query",
            "SELECT count(*) AS n FROM shop.orders.orders_quarantine",
            "--format",
            "csv",
        ])
        .ok();
    assert_eq!(quarantined.stdout, "n\n1\n");
    // A file whose every row breaks the contract is pulled once: its rows are in the
    // quarantine, and the next pull does not read it again.
    std::fs::write(
        incoming.join("2.ndjson"),
        "{\"order_id\": 3, \"amount\": -1}\n",
    )
    .unwrap();
    let run = server.cli(&["sources", "run", "shop.orders.drops"]).ok();
    assert!(
        run.stdout
            .contains("pulled 1 row(s): 0 committed into shop.orders.orders, 1 quarantined"),
        "{}",
        run.stdout
    );
    server.cli(&["sources", "run", "shop.orders.drops"]).ok();
    let status = server.cli(&["sources", "status", "shop.orders.drops"]).ok();
    assert!(
        status
            .stdout
            .contains("rows:         0 last pull, 3 (2 quarantined) in all"),
        "{}",
        status.stdout
    );

    // A secret piped in, never printed back.
    let mut set = tessera()
        .env("TESSERA_CREDENTIALS", &server.credentials)
        .args([
            "secret",
            "set",
            "shop-db",
            "--team",
            "shop team",
            "--server",
            &server.url,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    set.stdin
        .take()
        .unwrap()
        .write_all(b"postgres://shop:hunter2@db.internal/shop\n")
        .unwrap();
    let set: Run = set.wait_with_output().unwrap().into();
    let set = set.ok();
    assert!(
        set.stdout
            .contains("secret shop-db is set for team shop team"),
        "{}",
        set.stdout
    );
    let listed = server.cli(&["secret", "list"]).ok();
    assert!(listed.stdout.contains("shop-db"), "{}", listed.stdout);
    assert!(!listed.stdout.contains("hunter2"), "{}", listed.stdout);
    let deleted = server.cli(&["secret", "delete", "shop-db"]).ok();
    assert!(
        deleted
            .stdout
            .contains("secret shop-db of team shop team is deleted"),
        "{}",
        deleted.stdout
    );
    let missing = server
        .cli(&["sources", "status", "shop.orders.nope"])
        .failed();
    assert!(
        missing.stderr.contains("no source shop.orders.nope"),
        "{}",
        missing.stderr
    );
}
