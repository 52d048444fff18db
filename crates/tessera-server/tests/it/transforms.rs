//! Transforms at apply: a product folder's `transforms/<dataset>.sql` files are checked against
//! the product (its own datasets, its input ports) and against the mesh's other transforms (no
//! loop), planned, and stored with the product.

use serde_json::{Value, json};

use crate::support::*;

/// A product `stats.daily` whose contract has one dataset, `order_counts`, reading what its
/// input ports name.
fn stats_folder(input_contracts: &[&str], transform: &str) -> Vec<(String, String)> {
    let mut ports: String = input_contracts
        .iter()
        .map(|c| format!("  - name: {c}\n    version: 1.0.0\n    contractId: {c}\n"))
        .collect();
    if !ports.is_empty() {
        ports.insert_str(0, "inputPorts:\n");
    }
    let product = format!(
        "apiVersion: v1.0.0\nkind: DataProduct\nid: stats-daily\nname: daily\ndomain: stats\nstatus: active\nteam:\n  name: stats team\n{ports}outputPorts:\n  - name: counts\n    version: 1.0.0\n    contractId: stats-daily-contract\n"
    );
    let contract = "apiVersion: v3.1.0\nkind: DataContract\nid: stats-daily-contract\nversion: 1.0.0\nstatus: active\nschema:\n  - name: order_counts\n    properties:\n      - name: status\n        logicalType: string\n      - name: orders\n        logicalType: integer\n".to_string();
    vec![
        ("stats/product.odps.yaml".into(), product),
        ("stats/counts.odcs.yaml".into(), contract),
        (
            "stats/transforms/order_counts.sql".into(),
            transform.to_string(),
        ),
    ]
}

const COUNTS: &str = "-- materialize: full\nSELECT status, count(*) AS orders\nFROM shop.orders.orders\nGROUP BY status\n";

async fn apply(server: &TestServer, files: &[(String, String)]) -> (u16, Value) {
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_str()))
        .collect();
    server.apply(&files, false).await
}

fn messages(body: &Value) -> Vec<String> {
    body["error"]["diagnostics"]
        .as_array()
        .unwrap_or_else(|| panic!("no diagnostics: {body}"))
        .iter()
        .map(|d| {
            format!(
                "{}:{}: {}",
                d["file"].as_str().unwrap_or_default(),
                d["line"],
                d["message"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_is_planned_and_stored_with_its_product() {
    let server = TestServer::start(Store::Sqlite, Tables::Local).await;
    server.apply(&shop_folder(), false).await;
    let folder = stats_folder(&["shop-orders-contract"], COUNTS);
    let (status, plan) = apply(&server, &folder).await;
    assert_eq!(status, 200, "{plan}");
    let transform = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "transform")
        .unwrap_or_else(|| panic!("no transform in the plan: {plan}"))
        .clone();
    assert_eq!(transform["name"], json!("order_counts"));
    assert_eq!(transform["action"], json!("create"));
    assert_eq!(
        transform["detail"],
        json!("stats.daily.order_counts from shop.orders.orders (full)")
    );

    // Applied again as it is: unchanged; without the file: removed.
    let (_, plan) = apply(&server, &folder).await;
    let kinds: Vec<(Value, Value)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "transform")
        .map(|c| (c["name"].clone(), c["action"].clone()))
        .collect();
    assert_eq!(kinds, [(json!("order_counts"), json!("unchanged"))]);
    let (status, plan) = apply(&server, &folder[..2]).await;
    assert_eq!(status, 200, "{plan}");
    assert!(
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kind"] == "transform" && c["action"] == "remove"),
        "{plan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeclared_inputs_unknown_targets_and_loops_are_refused_with_their_names() {
    let server = TestServer::start(Store::Sqlite, Tables::Local).await;
    server.apply(&shop_folder(), false).await;

    // shop.orders is not an input port of stats.daily.
    let (status, body) = apply(&server, &stats_folder(&[], COUNTS)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        messages(&body),
        [
            "stats/transforms/order_counts.sql:3: shop.orders.orders is not an input of stats.daily: add an input port for its contract \"shop-orders-contract\" to the product descriptor"
        ]
    );

    // A dataset the mesh does not have, and a file that names no dataset of the product.
    let mut folder = stats_folder(
        &["shop-orders-contract"],
        "SELECT status, count(*) AS orders FROM shop.orders.refunds GROUP BY status",
    );
    folder.push((
        "stats/transforms/weekly.sql".into(),
        "SELECT * FROM shop.orders.orders".into(),
    ));
    let (status, body) = apply(&server, &folder).await;
    assert_eq!(status, 422, "{body}");
    let got = messages(&body);
    assert!(
        got.contains(&"stats/transforms/order_counts.sql:1: shop.orders.refunds: there is no such dataset in the mesh".to_string()),
        "{got:?}"
    );
    assert!(
        got.iter().any(|m| m.starts_with(
            "stats/transforms/weekly.sql:null: stats.daily has no dataset \"weekly\""
        )),
        "{got:?}"
    );

    // A header the reader refuses reaches the user with its line.
    let (status, body) = apply(
        &server,
        &stats_folder(
            &["shop-orders-contract"],
            "-- materialize: sometimes\nSELECT 1 AS orders FROM shop.orders.orders",
        ),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        messages(&body),
        [
            "stats/transforms/order_counts.sql:1: materialize is full, append or merge, not \"sometimes\""
        ]
    );

    // A merge needs the target's primary key (order_counts has none), an append a watermark
    // that is one of its columns: refused at the header's line.
    for (header, expected) in [
        (
            "-- materialize: merge",
            "stats/transforms/order_counts.sql:1: stats.daily.order_counts: a merge transform merges by the contract's primary key, and the contract has none: mark its key columns `primaryKey: true`",
        ),
        (
            "-- materialize: append\n-- watermark: placed_at",
            "stats/transforms/order_counts.sql:1: stats.daily.order_counts: the watermark \"placed_at\" is not a column of the dataset: a run computes the rows from the newest value of one of its columns",
        ),
    ] {
        let (status, body) = apply(
            &server,
            &stats_folder(
                &["shop-orders-contract"],
                &COUNTS.replace("-- materialize: full", header),
            ),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(messages(&body), [expected]);
    }

    // A loop across two products: stats.daily reads audit.mirror.copy, which reads
    // stats.daily.order_counts.
    let (status, body) = apply(&server, &stats_folder(&["shop-orders-contract"], COUNTS)).await;
    assert_eq!(status, 200, "{body}");
    let mirror_product = "apiVersion: v1.0.0\nkind: DataProduct\nid: audit-mirror\nname: mirror\ndomain: audit\nstatus: active\nteam:\n  name: audit team\ninputPorts:\n  - name: counts\n    version: 1.0.0\n    contractId: stats-daily-contract\noutputPorts:\n  - name: copy\n    version: 1.0.0\n    contractId: audit-mirror-contract\n";
    let mirror_contract = "apiVersion: v3.1.0\nkind: DataContract\nid: audit-mirror-contract\nversion: 1.0.0\nstatus: active\nschema:\n  - name: copy\n    properties:\n      - name: status\n        logicalType: string\n      - name: orders\n        logicalType: integer\n";
    let mirror = vec![
        (
            "audit/product.odps.yaml".to_string(),
            mirror_product.to_string(),
        ),
        (
            "audit/copy.odcs.yaml".to_string(),
            mirror_contract.to_string(),
        ),
        (
            "audit/transforms/copy.sql".to_string(),
            "SELECT status, orders FROM stats.daily.order_counts".to_string(),
        ),
    ];
    let (status, body) = apply(&server, &mirror).await;
    assert_eq!(status, 200, "{body}");
    let looping = stats_folder(
        &["shop-orders-contract", "audit-mirror-contract"],
        "SELECT status, orders FROM audit.mirror.copy",
    );
    let (status, body) = apply(&server, &looping).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        messages(&body),
        [
            "stats/transforms/order_counts.sql:null: transforms read each other's results round a loop: audit.mirror.copy → stats.daily.order_counts → audit.mirror.copy; no order runs them"
        ]
    );
}

/// A query planned at apply against the mesh as it stands: one that does not plan, or whose
/// result cannot be written to its dataset, would fail every run, so it is refused now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_whose_result_cannot_fit_its_contract_is_refused_at_apply() {
    let server = TestServer::start(Store::Sqlite, Tables::Local).await;
    server.apply(&shop_folder(), false).await;
    let target = "the query's result does not fit the contract of stats.daily.order_counts";
    for (sql, orders_required, expected) in [
        (
            "SELECT status, count(*) AS orders, 1 AS extra FROM shop.orders.orders GROUP BY status",
            false,
            format!(
                "{target}: it has columns the contract does not declare: extra; expected some of: status, orders"
            ),
        ),
        (
            "SELECT DISTINCT status FROM shop.orders.orders",
            true,
            format!("{target}: it leaves out the required column(s) orders"),
        ),
        (
            "SELECT colour AS status, count(*) AS orders FROM shop.orders.orders GROUP BY colour",
            false,
            "the query does not plan against the mesh".to_string(),
        ),
    ] {
        let mut folder = stats_folder(&["shop-orders-contract"], sql);
        if orders_required {
            folder[1].1 = folder[1].1.replace(
                "logicalType: integer\n",
                "logicalType: integer\n        required: true\n",
            );
        }
        let (status, body) = apply(&server, &folder).await;
        assert_eq!(status, 422, "{sql}: {body}");
        let got = messages(&body);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with(&format!(
                "stats/transforms/order_counts.sql:null: {expected}"
            )),
            "{sql}: {got:?}"
        );
        if expected.contains("plan") {
            assert!(got[0].contains("colour"), "{got:?}");
        }
    }
    // The same query without what broke it applies.
    let (status, body) = apply(&server, &stats_folder(&["shop-orders-contract"], COUNTS)).await;
    assert_eq!(status, 200, "{body}");
}
