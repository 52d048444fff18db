//! Transforms from the CLI, against the real binary: `tessera apply` sends a product folder's
//! `transforms/*.sql` with it (and no other SQL file), and the plan shows them.

use crate::cli::{CONTRACT, PRODUCT};
use crate::support::*;

#[test]
fn apply_sends_the_folders_transforms() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start("serve", data.path(), &[]);
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
