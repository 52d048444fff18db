//! Transform runs: each materialization gives the table recomputing from scratch gives, after
//! any sequence of upstream commits; a run that breaks the contract commits nothing and says
//! why; a run reads as the product's owner team; upstream commits and intervals start runs.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::on_both_stores;
use crate::support::*;

on_both_stores!(runs_are_recorded_with_their_rows_in_and_out_and_listed_newest_first);

const STATS_PRODUCT: &str = "apiVersion: v1.0.0
kind: DataProduct
id: stats-daily
name: daily
domain: stats
status: active
team:
  name: stats team
inputPorts:
  - name: orders
    version: 1.0.0
    contractId: shop-orders-contract
outputPorts:
  - name: daily
    version: 1.0.0
    contractId: stats-daily-contract
";

const STATS_CONTRACT: &str = "apiVersion: v3.1.0
kind: DataContract
id: stats-daily-contract
version: 1.0.0
status: active
schema:
  - name: order_counts
    properties:
      - name: status
        logicalType: string
      - name: orders
        logicalType: integer
  - name: shipped_orders
    properties:
      - name: order_id
        logicalType: integer
        primaryKey: true
        required: true
      - name: amount
        logicalType: number
      - name: placed_at
        logicalType: timestamp
  - name: customer_totals
    properties:
      - name: customer_id
        logicalType: string
        primaryKey: true
        required: true
      - name: orders
        logicalType: integer
      - name: amount
        logicalType: number
  - name: small_customers
    properties:
      - name: customer_id
        logicalType: string
        primaryKey: true
        required: true
      - name: orders
        logicalType: integer
  - name: customer_orders
    properties:
      - name: customer_id
        logicalType: string
        primaryKey: true
        required: true
      - name: order_id
        logicalType: integer
        primaryKey: true
        required: true
      - name: recency
        logicalType: integer
  - name: daily_amounts
    properties:
      - name: day
        logicalType: date
        primaryKey: true
        required: true
      - name: orders
        logicalType: integer
      - name: amount
        logicalType: number
  - name: last_order_days
    properties:
      - name: customer_id
        logicalType: string
        primaryKey: true
        required: true
      - name: last_day
        logicalType: date
      - name: orders
        logicalType: integer
";

/// Full refresh.
const ORDER_COUNTS: &str = "-- materialize: full
SELECT status, count(*) AS orders FROM shop.orders.orders GROUP BY status";
/// Appended by its watermark.
const SHIPPED_ORDERS: &str = "-- materialize: append
-- watermark: placed_at
SELECT order_id, CAST(amount AS DOUBLE) AS amount, placed_at
FROM shop.orders.orders
WHERE status = 'shipped'";
/// Merged by the contract's primary key.
const CUSTOMER_TOTALS: &str = "-- materialize: merge
SELECT customer_id, count(*) AS orders, CAST(sum(amount) AS DOUBLE) AS amount
FROM shop.orders.orders
GROUP BY customer_id";

/// Merged by its key, each run recomputing from the newest day the dataset holds.
const DAILY_AMOUNTS: &str = "-- materialize: merge
-- watermark: day
SELECT CAST(placed_at AS DATE) AS day, count(*) AS orders, CAST(sum(amount) AS DOUBLE) AS amount
FROM shop.orders.orders
GROUP BY CAST(placed_at AS DATE)";

/// Merged by the keys of new orders: a new order recomputes its customer's count, and a
/// customer with more than three orders leaves the result (its row must go).
const SMALL_CUSTOMERS: &str = "-- materialize: merge
-- recompute_by: customer_id
SELECT customer_id, count(*) AS orders
FROM shop.orders.orders
GROUP BY customer_id
HAVING count(*) <= 3";

/// Merged by the keys of new orders: a window over each customer's orders, every one of them
/// renumbered when one comes.
const CUSTOMER_ORDERS: &str = "-- materialize: merge
-- recompute_by: customer_id
SELECT customer_id, order_id,
       ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY order_id DESC) AS recency
FROM shop.orders.orders";

/// The transforms merged by the keys of new input rows, and the columns their rows are ordered by.
const BY_KEY: [(&str, &str, &str); 2] = [
    ("small_customers", SMALL_CUSTOMERS, "customer_id"),
    ("customer_orders", CUSTOMER_ORDERS, "customer_id, order_id"),
];

/// Each computed dataset, its transform and the column its rows are ordered by.
const TRANSFORMS: [(&str, &str, &str); 3] = [
    ("order_counts", ORDER_COUNTS, "status"),
    ("shipped_orders", SHIPPED_ORDERS, "order_id"),
    ("customer_totals", CUSTOMER_TOTALS, "customer_id"),
];

fn stats_folder(transforms: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut files = vec![
        (
            "stats/product.odps.yaml".to_string(),
            STATS_PRODUCT.to_string(),
        ),
        (
            "stats/daily.odcs.yaml".to_string(),
            STATS_CONTRACT.to_string(),
        ),
    ];
    for (dataset, sql) in transforms {
        files.push((format!("stats/transforms/{dataset}.sql"), sql.to_string()));
    }
    files
}

async fn apply_stats(server: &TestServer, transforms: &[(&str, &str)]) {
    apply_folder(server, stats_folder(transforms)).await;
}

async fn apply_folder(server: &TestServer, files: Vec<(String, String)>) {
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_str()))
        .collect();
    let (status, body) = server.apply(&files, false).await;
    assert_eq!(status, 200, "{body}");
}

/// The shop and the stats product, with the stats team allowed to read the shop's orders.
async fn mesh(tick: Duration) -> TestServer {
    mesh_on(Store::Sqlite, tick).await
}

async fn mesh_on(store: Store, tick: Duration) -> TestServer {
    mesh_with(store, tick, Merges::Rewrite).await
}

/// How a merge into a small table is written.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Merges {
    /// The table written again whole (the server's default for small tables).
    Rewrite,
    /// A Delta merge, however small the table.
    DeltaMerge,
}

async fn mesh_with(store: Store, tick: Duration, merges: Merges) -> TestServer {
    let server = TestServer::start_with(store, Tables::Local, |c| {
        c.transform_tick = tick;
        if merges == Merges::DeltaMerge {
            c.transform_rewrite_max_bytes = 0;
        }
    })
    .await;
    server.apply(&shop_folder(), false).await;
    let all: Vec<(&str, &str)> = TRANSFORMS.iter().map(|(d, s, _)| (*d, *s)).collect();
    apply_stats(&server, &all).await;
    grant_stats_team(&server).await;
    server
}

async fn grant_stats_team(server: &TestServer) {
    let (status, body) = server
        .post_json(
            "/api/v1/grants",
            &json!({"product": "shop.orders", "grantee": "team:stats team"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn ingest_orders(server: &TestServer, csv: &str) {
    let (status, body) = server
        .ingest("shop.orders.orders", "", "text/csv", csv.to_string())
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn run(server: &TestServer, path: &str) -> Vec<Value> {
    let (status, body) = server.post_json(path, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

/// The transform's query without its header.
fn query_of(sql: &str) -> String {
    sql.lines()
        .filter(|l| !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every computed dataset holds what its query computes from scratch now.
async fn assert_recomputed(server: &TestServer, after: &str) {
    assert_datasets_recomputed(
        server,
        &["order_counts", "shipped_orders", "customer_totals"],
        after,
    )
    .await;
}

async fn assert_datasets_recomputed(server: &TestServer, datasets: &[&str], after: &str) {
    for (dataset, sql, key) in TRANSFORMS
        .into_iter()
        .filter(|(d, _, _)| datasets.contains(d))
    {
        let held = server
            .rows(&format!(
                "SELECT * FROM stats.daily.{dataset} ORDER BY {key}"
            ))
            .await;
        let from_scratch = server
            .rows(&format!("SELECT * FROM ({}) ORDER BY {key}", query_of(sql)))
            .await;
        assert_eq!(held, from_scratch, "{dataset} after {after}");
    }
}

/// An order as the shop's CSV has it.
#[derive(Debug, Clone)]
struct Order {
    customer: u8,
    cents: u32,
    status: &'static str,
}

fn order() -> impl Strategy<Value = Order> {
    (
        1u8..5,
        0u32..100_000,
        prop::sample::select(vec!["open", "shipped", "returned"]),
    )
        .prop_map(|(customer, cents, status)| Order {
            customer,
            cents,
            status,
        })
}

/// The batches as CSV: order ids count up, and each batch's orders are placed after every
/// earlier one's (what an append by watermark relies on); two batches a day, so that a day
/// is added to after it was first computed.
fn csv_batches(batches: &[Vec<Order>]) -> Vec<String> {
    let mut id = 0;
    batches
        .iter()
        .enumerate()
        .map(|(day, orders)| {
            let mut csv = String::from("order_id,customer_id,amount,status,placed_at\n");
            for (second, o) in orders.iter().enumerate() {
                id += 1;
                csv.push_str(&format!(
                    "{id},U0000000{},{}.{:02},{},2026-03-{:02}T10:{:02}:{:02}Z\n",
                    o.customer,
                    o.cents / 100,
                    o.cents % 100,
                    o.status,
                    day / 2 + 1,
                    (day % 2) * 30,
                    second
                ));
            }
            csv
        })
        .collect()
}

/// Full, append and merge runs (merge by key alone, by the keys of new rows, and from a
/// watermark) after each of `batches` (upstream commits) leave each dataset as recomputing it
/// from scratch would; merges into these small tables written as `merges` says.
fn every_materialization_equals_recomputing_from_scratch(batches: &[Vec<Order>], merges: Merges) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = mesh_with(Store::Sqlite, Duration::ZERO, merges).await;
        let mut all: Vec<(&str, &str)> = TRANSFORMS.iter().map(|(d, s, _)| (*d, *s)).collect();
        all.push(("daily_amounts", DAILY_AMOUNTS));
        all.extend(BY_KEY.iter().map(|(d, s, _)| (*d, *s)));
        apply_stats(&server, &all).await;
        for (i, csv) in csv_batches(batches).iter().enumerate() {
            ingest_orders(&server, csv).await;
            let runs = run(&server, "/api/v1/transforms/stats/daily/run").await;
            let statuses: Vec<&Value> = runs.iter().map(|r| &r["status"]).collect();
            assert_eq!(statuses, [&json!("succeeded"); 6], "{runs:?}");
            let after = format!("upstream commit {}", i + 1);
            assert_recomputed(&server, &after).await;
            for (dataset, sql, order) in BY_KEY {
                let held = server
                    .rows(&format!(
                        "SELECT * FROM stats.daily.{dataset} ORDER BY {order}"
                    ))
                    .await;
                let from_scratch = server
                    .rows(&format!(
                        "SELECT * FROM ({}) ORDER BY {order}",
                        query_of(sql)
                    ))
                    .await;
                assert_eq!(held, from_scratch, "{dataset} after {after}");
            }
            // The window's rows never go: after its first computation, each run merges the
            // keys of the new orders alone.
            let window = runs
                .iter()
                .find(|r| r["dataset"] == "stats.daily.customer_orders")
                .unwrap();
            let wanted = if i == 0 { "full" } else { "merge" };
            assert_eq!(window["mode"], wanted, "{window}");
            if merges == Merges::Rewrite {
                // Written again whole, a customer that leaves the result goes with it: no run
                // after the first recomputes everything.
                let small = runs
                    .iter()
                    .find(|r| r["dataset"] == "stats.daily.small_customers")
                    .unwrap();
                assert_eq!(small["mode"], wanted, "{small}");
            }
            let held = server
                .rows("SELECT * FROM stats.daily.daily_amounts ORDER BY day")
                .await;
            let from_scratch = server
                .rows(&format!(
                    "SELECT * FROM ({}) ORDER BY day",
                    query_of(DAILY_AMOUNTS)
                ))
                .await;
            assert_eq!(held, from_scratch, "daily_amounts after {after}");
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 4,
        max_shrink_iters: 8,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_materialization_equals_recomputing_from_scratch_with_small_tables_written_again(
        batches in prop::collection::vec(prop::collection::vec(order(), 1..12), 1..5)
    ) {
        every_materialization_equals_recomputing_from_scratch(&batches, Merges::Rewrite);
    }

    #[test]
    fn every_materialization_equals_recomputing_from_scratch_with_delta_merges(
        batches in prop::collection::vec(prop::collection::vec(order(), 1..12), 1..5)
    ) {
        every_materialization_equals_recomputing_from_scratch(&batches, Merges::DeltaMerge);
    }
}

async fn runs_are_recorded_with_their_rows_in_and_out_and_listed_newest_first(store: Store) {
    let server = mesh_on(store, Duration::ZERO).await;
    ingest_orders(&server, ORDERS_CSV).await;
    let runs = run(&server, "/api/v1/transforms/stats/daily/run").await;
    let summary: Vec<(Value, Value, Value, Value)> = runs
        .iter()
        .map(|r| {
            (
                r["dataset"].clone(),
                r["mode"].clone(),
                r["status"].clone(),
                r["rows_out"].clone(),
            )
        })
        .collect();
    // The good rows of ORDERS_CSV: open, shipped, returned, open; customers 1, 2, 1, 3.
    assert_eq!(
        summary,
        [
            (
                json!("stats.daily.customer_totals"),
                json!("merge"),
                json!("succeeded"),
                json!(3)
            ),
            (
                json!("stats.daily.order_counts"),
                json!("full"),
                json!("succeeded"),
                json!(3)
            ),
            (
                json!("stats.daily.shipped_orders"),
                json!("append"),
                json!("succeeded"),
                json!(1)
            ),
        ]
    );
    assert!(runs.iter().all(|r| r["rows_in"] == json!(4)), "{runs:?}");
    assert!(
        runs[0]["inputs"][0]
            .as_str()
            .unwrap()
            .starts_with("shop.orders.orders@")
    );

    // One more shipped order, later than the others: the append reads past the watermark and
    // adds the one row.
    ingest_orders(
        &server,
        "order_id,customer_id,amount,status,placed_at\n10,U00000002,20,shipped,2026-02-01T00:00:00Z\n",
    )
    .await;
    let runs = run(&server, "/api/v1/transforms/stats/daily/shipped_orders/run").await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["rows_out"], json!(1), "{runs:?}");
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM stats.daily.shipped_orders")
            .await,
        json!(2)
    );
    // A full refresh of the append transform recomputes it: the same rows.
    let runs = run(
        &server,
        "/api/v1/transforms/stats/daily/shipped_orders/run?full_refresh=true",
    )
    .await;
    assert_eq!(
        (&runs[0]["mode"], &runs[0]["rows_out"]),
        (&json!("full"), &json!(2))
    );
    assert_datasets_recomputed(&server, &["shipped_orders"], "a full refresh").await;

    // The history, newest first, of one dataset and of the product.
    let (status, history) = server
        .get("/api/v1/transform-runs?domain=stats&product=daily&dataset=shipped_orders")
        .await;
    assert_eq!(status, 200, "{history}");
    let modes: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["mode"])
        .collect();
    assert_eq!(modes, [&json!("full"), &json!("append"), &json!("append")]);
    let (_, all) = server
        .get("/api/v1/transform-runs?domain=stats&limit=100")
        .await;
    assert_eq!(all.as_array().unwrap().len(), 5, "{all}");
    let (status, body) = server.get("/api/v1/transform-runs?product=nothing").await;
    assert_eq!((status, body), (200, json!([])));

    // The transforms, with their last runs.
    let (status, transforms) = server.get("/api/v1/transforms/stats/daily").await;
    assert_eq!(status, 200, "{transforms}");
    let shipped = transforms
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["dataset"] == "stats.daily.shipped_orders")
        .unwrap();
    assert_eq!(shipped["materialization"], json!("append by placed_at"));
    assert_eq!(shipped["inputs"], json!(["shop.orders.orders"]));
    assert_eq!(shipped["triggers"], json!(["after an upstream commit"]));
    assert_eq!(shipped["last_run"]["mode"], json!("full"));
}

/// Orders as the shop's CSV has them: order id, customer `U0000000{customer}`, day of March 2026.
fn orders_csv(orders: impl IntoIterator<Item = (u32, u8, u8)>) -> String {
    let mut csv = String::from("order_id,customer_id,amount,status,placed_at\n");
    for (id, customer, day) in orders {
        csv.push_str(&format!(
            "{id},U0000000{customer},10.00,open,2026-03-{day:02}T10:00:{:02}Z\n",
            id % 60
        ));
    }
    csv
}

/// One order of customer `U0000000{customer}` each, on March 1st.
fn orders_of(customers: &[(u32, u8)]) -> String {
    orders_csv(customers.iter().map(|&(id, customer)| (id, customer, 1)))
}

/// A merge by the keys of new input rows recomputes only the customers with new orders; it
/// recomputes everything, and says why, the first time and after its query changed. A
/// customer's row that has to go goes with the table written again (a small table's merge).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_by_the_keys_of_new_rows_recomputes_only_those_keys() {
    merge_by_the_keys_of_new_rows(Merges::Rewrite).await;
}

/// The same as Delta merges: a customer's row that has to go, which a merge would keep, makes
/// the run recompute everything, and say why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_merge_by_the_keys_of_new_rows_recomputes_everything_when_a_row_has_to_go() {
    merge_by_the_keys_of_new_rows(Merges::DeltaMerge).await;
}

async fn merge_by_the_keys_of_new_rows(merges: Merges) {
    let server = mesh_with(Store::Sqlite, Duration::ZERO, merges).await;
    apply_stats(&server, &[("small_customers", SMALL_CUSTOMERS)]).await;
    let path = "/api/v1/transforms/stats/daily/small_customers/run";
    let held = || async {
        server
            .rows(
                "SELECT customer_id, orders FROM stats.daily.small_customers ORDER BY customer_id",
            )
            .await
    };
    ingest_orders(&server, &orders_of(&[(1, 1), (2, 1), (3, 1), (4, 2)])).await;
    let first = run(&server, path).await;
    assert_eq!(
        (&first[0]["mode"], &first[0]["rows_out"], &first[0]["note"]),
        (
            &json!("full"),
            &json!(2),
            &json!("recomputed everything: the dataset was not computed by this query before")
        ),
        "{first:?}"
    );

    // A new order of customer 2: its row alone is computed and merged.
    ingest_orders(&server, &orders_of(&[(5, 2)])).await;
    let second = run(&server, path).await;
    assert_eq!(
        (
            &second[0]["mode"],
            &second[0]["rows_out"],
            &second[0]["note"]
        ),
        (&json!("merge"), &json!(1), &json!(null)),
        "{second:?}"
    );
    assert_eq!(
        held().await,
        [
            json!({"customer_id": "U00000001", "orders": 3}),
            json!({"customer_id": "U00000002", "orders": 2}),
        ]
    );

    // Nothing new: nothing recomputed.
    let idle = run(&server, path).await;
    assert_eq!(
        (&idle[0]["mode"], &idle[0]["rows_out"]),
        (&json!("merge"), &json!(0))
    );

    // Customer 1's fourth order takes it out of the result: its row must go. Written again,
    // the table keeps no row of a recomputed customer; a Delta merge would keep it, so then
    // everything is recomputed.
    ingest_orders(&server, &orders_of(&[(6, 1)])).await;
    let third = run(&server, path).await;
    // Written again, the run computes no row (customer 1 has none now) and the table loses
    // the customer's; as a full refresh, its one row is customer 2's.
    let (mode, note, rows_out) = match merges {
        Merges::Rewrite => (json!("merge"), json!(null), json!(0)),
        Merges::DeltaMerge => (
            json!("full"),
            json!(
                "recomputed everything: 1 row(s) of the recomputed customer_ids were not computed again: a merge would keep them"
            ),
            json!(1),
        ),
    };
    assert_eq!(
        (&third[0]["mode"], &third[0]["note"], &third[0]["rows_out"]),
        (&mode, &note, &rows_out),
        "{third:?}"
    );
    assert_eq!(
        held().await,
        [json!({"customer_id": "U00000002", "orders": 2})]
    );

    // Another query: what the old one computed is not kept.
    let changed = SMALL_CUSTOMERS.replace("<= 3", "<= 4");
    apply_stats(&server, &[("small_customers", changed.as_str())]).await;
    let fourth = run(&server, path).await;
    assert_eq!(fourth[0]["mode"], json!("full"), "{fourth:?}");
    assert_eq!(
        held().await,
        [
            json!({"customer_id": "U00000001", "orders": 4}),
            json!({"customer_id": "U00000002", "orders": 2}),
        ]
    );

    // The key must be the merge's: a column outside the primary key is refused at apply.
    let files = stats_folder(&[(
        "customer_totals",
        "-- materialize: merge\n-- recompute_by: orders\nSELECT customer_id, count(*) AS orders, CAST(sum(amount) AS DOUBLE) AS amount FROM shop.orders.orders GROUP BY customer_id",
    )]);
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_str()))
        .collect();
    let (status, body) = server.apply(&files, false).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string()
            .contains("recompute_by \\\"orders\\\" is not a column of the contract's primary key"),
        "{body}"
    );
}

/// One order of customer `U00000001` each, on the given day of March 2026.
fn orders_on(orders: &[(u32, u8)]) -> String {
    orders_csv(orders.iter().map(|&(id, day)| (id, 1, day)))
}

/// A merge from a watermark in the primary key replaces the rows from the newest value the
/// dataset holds on with those the run computed again; one that is not computed again (its day
/// now has too many orders) goes with them, as recomputing from scratch would leave it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_from_a_watermark_drops_a_row_from_it_on_that_is_not_computed_again() {
    let server = mesh(Duration::ZERO).await;
    let quiet_days = format!("{DAILY_AMOUNTS}\nHAVING count(*) <= 2");
    apply_stats(&server, &[("daily_amounts", quiet_days.as_str())]).await;
    let path = "/api/v1/transforms/stats/daily/daily_amounts/run";
    let held = || async {
        server
            .rows("SELECT CAST(day AS VARCHAR) AS day, orders FROM stats.daily.daily_amounts ORDER BY day")
            .await
    };
    let day = |d: &str, orders: i64| json!({"day": format!("2026-03-{d}"), "orders": orders});
    ingest_orders(&server, &orders_on(&[(1, 1), (2, 1), (3, 2)])).await;
    run(&server, path).await;
    assert_eq!(held().await, [day("01", 2), day("02", 1)]);

    // A second order on the 2nd and one on the 3rd: the days from the 2nd on are computed
    // again and replace what the dataset held for them; the 1st stays as it was.
    ingest_orders(&server, &orders_on(&[(4, 2), (5, 3)])).await;
    let second = run(&server, path).await;
    assert_eq!(
        (
            &second[0]["mode"],
            &second[0]["rows_out"],
            &second[0]["note"]
        ),
        (&json!("merge"), &json!(2), &json!(null)),
        "{second:?}"
    );
    assert_eq!(held().await, [day("01", 2), day("02", 2), day("03", 1)]);

    // Two more on the 3rd take it out of the result: its row goes with the replacement of the
    // days from the 3rd on, without recomputing everything — as from scratch.
    ingest_orders(&server, &orders_on(&[(6, 3), (7, 3)])).await;
    let third = run(&server, path).await;
    assert_eq!(
        (&third[0]["status"], &third[0]["mode"], &third[0]["note"]),
        (&json!("succeeded"), &json!("merge"), &json!(null)),
        "{third:?}"
    );
    assert_eq!(held().await, [day("01", 2), day("02", 2)]);
}

/// A merge from a watermark that is not part of the primary key: a customer's row moves to a
/// newer day when it orders again, and the run updates it by its key rather than adding a
/// second row beside the older one (the small table written again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_from_a_watermark_outside_the_key_updates_the_older_row_of_a_key() {
    merge_from_a_watermark_outside_the_key(Merges::Rewrite).await;
}

/// The same as a Delta merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_merge_from_a_watermark_outside_the_key_updates_the_older_row_of_a_key() {
    merge_from_a_watermark_outside_the_key(Merges::DeltaMerge).await;
}

async fn merge_from_a_watermark_outside_the_key(merges: Merges) {
    let server = mesh_with(Store::Sqlite, Duration::ZERO, merges).await;
    let last_days = "-- materialize: merge
-- watermark: last_day
SELECT customer_id, max(CAST(placed_at AS DATE)) AS last_day, count(*) AS orders
FROM shop.orders.orders
GROUP BY customer_id";
    apply_stats(&server, &[("last_order_days", last_days)]).await;
    let path = "/api/v1/transforms/stats/daily/last_order_days/run";
    let held = || async {
        server
            .rows("SELECT customer_id, CAST(last_day AS VARCHAR) AS last_day, orders FROM stats.daily.last_order_days ORDER BY customer_id")
            .await
    };
    let row = |customer: &str, day: &str, orders: i64| json!({"customer_id": customer, "last_day": format!("2026-03-{day}"), "orders": orders});
    ingest_orders(&server, &orders_of(&[(1, 1), (2, 2)])).await;
    ingest_orders(&server, &orders_on(&[(3, 2)])).await;
    run(&server, path).await;
    assert_eq!(
        held().await,
        [row("U00000001", "02", 2), row("U00000002", "01", 1)]
    );
    // Customer 2 orders on the 3rd: its row, of the 1st, is older than the newest day held.
    ingest_orders(&server, &orders_csv([(4, 2, 3)])).await;
    let second = run(&server, path).await;
    assert_eq!(second[0]["status"], json!("succeeded"), "{second:?}");
    assert_eq!(
        held().await,
        [row("U00000001", "02", 2), row("U00000002", "03", 2)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_breaks_the_contract_commits_nothing_and_says_why() {
    let server = mesh(Duration::ZERO).await;
    ingest_orders(&server, ORDERS_CSV).await;
    run(&server, "/api/v1/transforms/stats/daily/run").await;
    let before = server
        .rows("SELECT * FROM stats.daily.customer_totals ORDER BY customer_id")
        .await;
    let (_, dataset) = server
        .get("/api/v1/datasets/stats/daily/customer_totals")
        .await;
    let version = dataset["table_version"].clone();

    // A row without its required key: the row breaks the contract.
    let no_key = "-- materialize: merge
SELECT CASE WHEN customer_id = 'U00000001' THEN NULL ELSE customer_id END AS customer_id,
       count(*) AS orders, CAST(sum(amount) AS DOUBLE) AS amount
FROM shop.orders.orders GROUP BY customer_id";
    apply_stats(&server, &[("customer_totals", no_key)]).await;
    let runs = run(
        &server,
        "/api/v1/transforms/stats/daily/customer_totals/run",
    )
    .await;
    assert_eq!(runs[0]["status"], json!("failed"), "{runs:?}");
    let error = runs[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("1 of the result's 3 rows break the contract of stats.daily.customer_totals (first: customer_id"),
        "{error}"
    );
    assert!(error.ends_with("nothing was committed"), "{error}");

    // Every row the same key: a full refresh the primary key check refuses.
    let one_key = "-- materialize: full
SELECT 'U00000001' AS customer_id, count(*) AS orders, CAST(sum(amount) AS DOUBLE) AS amount
FROM shop.orders.orders GROUP BY customer_id";
    apply_stats(&server, &[("customer_totals", one_key)]).await;
    let runs = run(
        &server,
        "/api/v1/transforms/stats/daily/customer_totals/run",
    )
    .await;
    assert_eq!(runs[0]["status"], json!("failed"), "{runs:?}");
    let error = runs[0]["error"].as_str().unwrap();
    assert!(
        error
            == "the result would make check customer_totals.customer_id.primary_key_unique fail: 2 duplicate row(s), which does not meet = 0; nothing was committed",
        "{error}"
    );

    // The dataset kept its last good version, and the history says why each run failed.
    assert_eq!(
        server
            .rows("SELECT * FROM stats.daily.customer_totals ORDER BY customer_id")
            .await,
        before
    );
    let (_, dataset) = server
        .get("/api/v1/datasets/stats/daily/customer_totals")
        .await;
    assert_eq!(dataset["table_version"], version);
    let (_, history) = server
        .get("/api/v1/transform-runs?domain=stats&product=daily&dataset=customer_totals")
        .await;
    let statuses: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["status"])
        .collect();
    assert_eq!(
        statuses,
        [&json!("failed"), &json!("failed"), &json!("succeeded")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reads_as_the_owner_team_and_needs_ingest_rights_to_start() {
    let server = TestServer::start_with(Store::Sqlite, Tables::Local, |c| {
        c.transform_tick = Duration::ZERO
    })
    .await;
    server.apply(&shop_folder(), false).await;
    apply_stats(&server, &[("order_counts", ORDER_COUNTS)]).await;
    ingest_orders(&server, ORDERS_CSV).await;

    // The admin starts it, but the stats team may not read the shop's orders yet.
    let runs = run(&server, "/api/v1/transforms/stats/daily/run").await;
    assert_eq!(runs[0]["status"], json!("failed"), "{runs:?}");
    let error = runs[0]["error"].as_str().unwrap();
    assert!(error.contains("shop.orders.orders"), "{error}");
    assert!(error.contains("stats team"), "{error}");

    grant_stats_team(&server).await;
    let runs = run(&server, "/api/v1/transforms/stats/daily/run").await;
    assert_eq!(runs[0]["status"], json!("succeeded"), "{runs:?}");

    // Someone outside the stats team may not start it; a product without transforms is named.
    let eve = server.token_for("eve", &[], &[]).await;
    let (status, body) = server
        .post_json_as(Some(&eve), "/api/v1/transforms/stats/daily/run", &json!({}))
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = server
        .post_json("/api/v1/transforms/shop/orders/run", &json!({}))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["error"]["message"],
        json!("shop.orders has no transforms")
    );
}

/// Small customers from another transform's dataset, so that runs feed each other.
const SMALL_FROM_TOTALS: &str = "-- materialize: full
SELECT customer_id, orders FROM stats.daily.customer_totals WHERE orders <= 1";

/// The shop with its orders, and the stats product computing `order_counts` and
/// `customer_totals` from them and `small_customers` from `customer_totals`, run by hand only,
/// `concurrency` at a time.
async fn counts_totals_and_small_customers(concurrency: usize) -> TestServer {
    let server = TestServer::start_with(Store::Sqlite, Tables::Local, |c| {
        c.transform_tick = Duration::ZERO;
        c.transform_concurrency = concurrency;
    })
    .await;
    server.apply(&shop_folder(), false).await;
    apply_stats(
        &server,
        &[
            ("order_counts", ORDER_COUNTS),
            ("customer_totals", CUSTOMER_TOTALS),
            ("small_customers", SMALL_FROM_TOTALS),
        ],
    )
    .await;
    grant_stats_team(&server).await;
    ingest_orders(&server, ORDERS_CSV).await;
    server
}

/// The datasets `runs` computed, in the order they ran.
fn ran(runs: &[Value]) -> Vec<&str> {
    runs.iter()
        .map(|r| r["dataset"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_across_the_mesh_takes_the_datasets_behind_their_inputs_in_order() {
    let server = counts_totals_and_small_customers(1).await;
    let small_from_scratch = "SELECT customer_id, count(*) AS orders FROM shop.orders.orders \
        GROUP BY customer_id HAVING count(*) <= 1 ORDER BY customer_id";
    let small_held =
        "SELECT customer_id, orders FROM stats.daily.small_customers ORDER BY customer_id";

    // Never computed: all three, the one reading customer_totals after it.
    let runs = run(&server, "/api/v1/transforms/run").await;
    let first = ran(&runs);
    assert_eq!(first.len(), 3, "{runs:?}");
    let at = |d: &str| first.iter().position(|x| *x == d).unwrap();
    assert!(at("stats.daily.customer_totals") < at("stats.daily.small_customers"));
    assert!(
        runs.iter()
            .all(|r| r["status"] == json!("succeeded") && r["trigger"] == json!("manual")),
        "{runs:?}"
    );
    assert_eq!(
        server.rows(small_held).await,
        server.rows(small_from_scratch).await
    );

    // Up to date: nothing runs.
    assert_eq!(
        run(&server, "/api/v1/transforms/run").await,
        Vec::<Value>::new()
    );

    // customer_totals computed again by hand: only what reads it is behind.
    run(
        &server,
        "/api/v1/transforms/stats/daily/customer_totals/run",
    )
    .await;
    let runs = run(&server, "/api/v1/transforms/run").await;
    assert_eq!(ran(&runs), ["stats.daily.small_customers"], "{runs:?}");

    // New orders: everything reading them, and then what reads customer_totals, which the run
    // before it committed (customer U00000003 now has two orders and leaves small_customers).
    ingest_orders(
        &server,
        "order_id,customer_id,amount,status,placed_at\n8,U00000003,12,open,2026-01-08T10:00:00Z\n",
    )
    .await;
    let runs = run(&server, "/api/v1/transforms/run").await;
    let caught_up = ran(&runs);
    assert_eq!(caught_up.len(), 3, "{runs:?}");
    assert_eq!(caught_up.last(), Some(&"stats.daily.small_customers"));
    assert_eq!(
        server.rows(small_held).await,
        server.rows(small_from_scratch).await
    );
    assert_datasets_recomputed(&server, &["order_counts", "customer_totals"], "new orders").await;

    // A full refresh recomputes every transform, behind or not.
    let runs = run(&server, "/api/v1/transforms/run?full_refresh=true").await;
    assert_eq!(ran(&runs).len(), 3, "{runs:?}");
    assert!(runs.iter().all(|r| r["mode"] == json!("full")), "{runs:?}");

    // Across the mesh, a caller must be allowed to write every computed dataset.
    let eve = server.token_for("eve", &[], &[]).await;
    let (status, body) = server
        .post_json_as(Some(&eve), "/api/v1/transforms/run", &json!({}))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stats.daily."),
        "{body}"
    );
}

/// When a run started and finished, in microseconds (its record's start and duration).
fn span(run: &Value) -> (i64, i64) {
    let started = chrono::DateTime::parse_from_rfc3339(run["started_at"].as_str().unwrap())
        .unwrap()
        .timestamp_micros();
    (
        started,
        started + run["duration_ms"].as_i64().unwrap() * 1000,
    )
}

/// A run of several transforms computes those that do not feed each other at once, up to
/// `--transform-concurrency`, and each one only after what feeds it has finished; with a
/// concurrency of 1, one after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transforms_that_do_not_feed_each_other_run_at_once_up_to_the_concurrency() {
    for concurrency in [2, 1] {
        let server = counts_totals_and_small_customers(concurrency).await;
        for path in [
            "/api/v1/transforms/run",
            "/api/v1/transforms/stats/daily/run?full_refresh=true",
        ] {
            let runs = run(&server, path).await;
            assert_eq!(ran(&runs).len(), 3, "{runs:?}");
            assert!(
                runs.iter().all(|r| r["status"] == json!("succeeded")),
                "{runs:?}"
            );
            let of = |d: &str| span(runs.iter().find(|r| r["dataset"] == json!(d)).unwrap());
            let (counts, totals, small) = (
                of("stats.daily.order_counts"),
                of("stats.daily.customer_totals"),
                of("stats.daily.small_customers"),
            );
            assert!(
                small.0 >= totals.1,
                "small_customers reads customer_totals: it starts once that run has finished ({path}, {runs:?})"
            );
            let (first, second) = if counts.0 <= totals.0 {
                (counts, totals)
            } else {
                (totals, counts)
            };
            if concurrency == 2 {
                assert!(
                    second.0 < first.1,
                    "order_counts and customer_totals do not feed each other: both run at once ({path}, {runs:?})"
                );
            } else {
                let mut spans = [counts, totals, small];
                spans.sort();
                assert!(
                    spans.windows(2).all(|w| w[1].0 >= w[0].1),
                    "one at a time ({path}, {runs:?})"
                );
            }
        }
        assert_datasets_recomputed(
            &server,
            &["order_counts", "customer_totals"],
            &format!("runs {concurrency} at a time"),
        )
        .await;
    }
}

/// Polls the run history of `dataset` until `done` holds for it (at most 30 s).
async fn wait_for_runs(
    server: &TestServer,
    dataset: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, history) = server
            .get(&format!(
                "/api/v1/transform-runs?domain=stats&product=daily&dataset={dataset}&limit=100"
            ))
            .await;
        let runs = history.as_array().cloned().unwrap_or_default();
        if done(&runs) {
            return runs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{dataset}: the runs never came: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_commits_and_intervals_start_runs() {
    let server = mesh(Duration::from_millis(200)).await;
    ingest_orders(&server, ORDERS_CSV).await;
    // Once the upstream commit settles, each transform runs by itself, in order.
    let runs = wait_for_runs(&server, "customer_totals", |runs| {
        runs.iter()
            .any(|r| r["trigger"] == "upstream" && r["rows_out"] == json!(3))
    })
    .await;
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:?}");
    assert!(
        runs.iter().all(|r| r["principal"] == "system:scheduler"),
        "{runs:?}"
    );
    wait_for_runs(&server, "shipped_orders", |runs| {
        runs.iter()
            .any(|r| r["trigger"] == "upstream" && r["rows_out"] == json!(1))
    })
    .await;
    assert_recomputed(&server, "the scheduled runs").await;

    // Nothing new upstream: no more runs.
    let (_, before) = server
        .get("/api/v1/transform-runs?domain=stats&limit=100")
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, after) = server
        .get("/api/v1/transform-runs?domain=stats&limit=100")
        .await;
    assert_eq!(
        before.as_array().unwrap().len(),
        after.as_array().unwrap().len()
    );

    // Every second, whatever happens upstream.
    let every = "-- every: 1s\n-- on_upstream: false\nSELECT status, count(*) AS orders FROM shop.orders.orders GROUP BY status";
    let all: Vec<(&str, &str)> = TRANSFORMS
        .iter()
        .map(|(d, s, _)| (*d, if *d == "order_counts" { every } else { *s }))
        .collect();
    apply_stats(&server, &all).await;
    wait_for_runs(&server, "order_counts", |runs| {
        runs.iter().filter(|r| r["trigger"] == "interval").count() >= 2
    })
    .await;
}

/// The shop with its orders and the stats product computing only customer_totals, on a server
/// that looks for due transforms every 100 ms and lets upstream commits settle as `debounce`
/// says.
async fn scheduled_customer_totals(debounce: tessera_server::Debounce) -> TestServer {
    let server = TestServer::start_with(Store::Sqlite, Tables::Local, |c| {
        c.transform_tick = Duration::from_millis(100);
        c.transform_debounce = debounce;
    })
    .await;
    server.apply(&shop_folder(), false).await;
    // Granted before the transform exists: the scheduler may start it as soon as it does.
    grant_stats_team(&server).await;
    apply_stats(&server, &[("customer_totals", CUSTOMER_TOTALS)]).await;
    ingest_orders(&server, ORDERS_CSV).await;
    server
}

/// An upstream commit waits to settle: with inputs that must be quiet for an hour nothing runs,
/// unless the longest wait after the first commit has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_commit_waits_to_settle_but_no_longer_than_the_longest_wait() {
    let started = |max_wait: Duration| {
        scheduled_customer_totals(tessera_server::Debounce {
            quiet: Duration::from_secs(3600),
            max_wait,
            ..Default::default()
        })
    };
    let held = started(Duration::from_secs(3600)).await;
    let waited = started(Duration::from_secs(1)).await;
    // The longest wait passes: the run starts although the input never was quiet for an hour.
    let runs = wait_for_runs(&waited, "customer_totals", |runs| {
        runs.iter()
            .any(|r| r["trigger"] == "upstream" && r["status"] == "succeeded")
    })
    .await;
    assert_eq!(runs[0]["rows_out"], json!(3), "{runs:?}");
    // Meanwhile (and a while after), the other server's transform still waits.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, history) = held
        .get("/api/v1/transform-runs?domain=stats&product=daily&dataset=customer_totals")
        .await;
    assert_eq!(history, json!([]));
}

/// A scheduler that looks for due transforms every 100 ms, rechecks inputs every 200 ms and
/// starts a run as soon as an input moved.
fn looks_often_and_runs_at_once(c: &mut tessera_server::ServerConfig) {
    c.transform_tick = Duration::from_millis(100);
    c.transform_debounce = tessera_server::Debounce {
        quiet: Duration::ZERO,
        recheck: Duration::from_millis(200),
        ..Default::default()
    };
}

/// A run an upstream commit started and that failed is not started again for the same inputs
/// (it would fail the same way, every recheck, for ever) — unless what it depends on changed:
/// a grant, or a new upstream commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_waits_for_what_it_depends_on_to_change_before_it_runs_again() {
    let server = TestServer::start_with(Store::Sqlite, Tables::Local, |c| {
        looks_often_and_runs_at_once(c);
    })
    .await;
    server.apply(&shop_folder(), false).await;
    // The orders first: applied before them, the transform would be due at once for the empty
    // table, and its first run would race the ingest (a run for the table as applied, then
    // one for the commit — two runs, each for its inputs).
    ingest_orders(&server, ORDERS_CSV).await;
    // The stats team may not read the orders yet: the run the new transform starts fails.
    apply_stats(&server, &[("customer_totals", CUSTOMER_TOTALS)]).await;
    let tried = wait_for_runs(&server, "customer_totals", |runs| {
        runs.iter()
            .any(|r| r["inputs"] == json!(["shop.orders.orders@1"]))
    })
    .await;
    assert!(tried.iter().all(|r| r["status"] == "failed"), "{tried:?}");
    // Many ticks and rechecks later, it has not been tried again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let runs = wait_for_runs(&server, "customer_totals", |_| true).await;
    assert_eq!(runs.len(), tried.len(), "{runs:?}");

    // A grant changes what a run can do: the same inputs start a run again, and it succeeds.
    grant_stats_team(&server).await;
    let runs = wait_for_runs(&server, "customer_totals", |runs| {
        runs.iter().any(|r| r["status"] == "succeeded")
    })
    .await;
    assert_eq!(
        (&runs[0]["rows_out"], runs.len()),
        (&json!(3), tried.len() + 1),
        "{runs:?}"
    );
    // And a new commit upstream starts the next.
    ingest_orders(
        &server,
        "order_id,customer_id,amount,status,placed_at\n9,U00000009,4,open,2026-02-02T10:00:00Z\n",
    )
    .await;
    let runs = wait_for_runs(&server, "customer_totals", |runs| {
        runs.iter().any(|r| r["rows_out"] == json!(4))
    })
    .await;
    assert_eq!(runs.len(), tried.len() + 2, "{runs:?}");
}

/// A run that failed for a passing reason — every query slot taken, so its query was refused
/// as busy — is tried again at the next look, with the same inputs, and succeeds once a slot
/// is free: only a refusal waits for something to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_failed_for_a_passing_reason_is_tried_again_with_the_same_inputs() {
    let server = TestServer::start_with(Store::Sqlite, Tables::Local, |c| {
        looks_often_and_runs_at_once(c);
        c.query.timeout_seconds = 3;
        c.query.concurrency = 1;
        c.query.queue_length = 0;
    })
    .await;
    server.apply(&shop_folder(), false).await;
    apply_stats(&server, &[("customer_totals", CUSTOMER_TOTALS)]).await;
    grant_stats_team(&server).await;
    // The transform just applied computes its dataset from the empty orders first.
    wait_for_runs(&server, "customer_totals", |runs| {
        runs.iter().any(|r| r["status"] == "succeeded")
    })
    .await;
    // A slow query holds the only query slot until its time limit.
    let heavy = "SELECT count(*) FROM generate_series(1, 200000) a CROSS JOIN generate_series(1, 200000) b WHERE a.value + b.value = 7";
    let slow = query_in_background(&server, heavy);
    tokio::time::sleep(Duration::from_millis(300)).await;
    ingest_orders(&server, ORDERS_CSV).await;
    let busy = wait_for_runs(&server, "customer_totals", |runs| {
        runs.iter().any(|r| r["status"] == "failed")
    })
    .await;
    assert_eq!(
        busy[0]["inputs"],
        json!(["shop.orders.orders@1"]),
        "{busy:?}"
    );
    let failed = busy.iter().find(|r| r["status"] == "failed").unwrap();
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("--query-concurrency"),
        "{failed}"
    );
    assert_eq!(
        slow.await.unwrap().status().as_u16(),
        422,
        "the slow query ends at its time limit"
    );
    // No commit upstream since: the same inputs start it again, and it succeeds.
    let runs = wait_for_runs(&server, "customer_totals", |runs| {
        runs[0]["status"] == "succeeded"
    })
    .await;
    assert_eq!(
        (&runs[0]["inputs"], &runs[0]["rows_out"]),
        (&failed["inputs"], &json!(3)),
        "{runs:?}"
    );
    // Tried again after a wait that doubles (1 s, 2 s, …), not at every look (every 100 ms
    // here): a few failed runs over the three seconds the slot was taken, not thirty.
    let failures = runs.iter().filter(|r| r["status"] == "failed").count();
    assert!((1..=4).contains(&failures), "{runs:?}");
}

/// A commit another process makes into an input (a Delta writer outside this server) is
/// noticed without this server's own commit counts, once the recheck interval has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_from_outside_the_server_starts_the_transforms_it_feeds() {
    let server = scheduled_customer_totals(tessera_server::Debounce {
        quiet: Duration::ZERO,
        recheck: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    wait_for_runs(&server, "customer_totals", |runs| {
        runs.iter().any(|r| r["rows_out"] == json!(3))
    })
    .await;

    // A fourth customer's order, appended to the orders table past Tessera.
    let outside = tessera_storage::Storage::new(
        &server.config.storage_url(),
        server.config.storage_options.clone(),
    )
    .unwrap();
    let location = "shop/orders/orders";
    let schema = outside.table_info(location).await.unwrap().unwrap().schema;
    let line = r#"{"order_id": 8, "customer_id": "U00000007", "amount": 3, "status": "open", "placed_at": "2026-02-01T10:00:00Z"}"#;
    let order = arrow::json::ReaderBuilder::new(schema)
        .with_coerce_primitive(true)
        .build(std::io::Cursor::new(line))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    outside
        .append_sequenced(location, vec![order], &[])
        .await
        .unwrap();

    let runs = wait_for_runs(&server, "customer_totals", |runs| {
        runs.iter()
            .any(|r| r["trigger"] == "upstream" && r["rows_out"] == json!(4))
    })
    .await;
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_follows_columns_through_the_transforms_plans() {
    let server = mesh(Duration::ZERO).await;
    // Upstream of one column, and what decides its rows.
    let (status, body) = server
        .get("/api/v1/lineage/stats/daily/customer_totals?column=amount")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["start"], json!("stats.daily.customer_totals.amount"));
    let edges: Vec<(String, String, Value)> = body["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_string(),
                e["job"].as_str().unwrap().to_string(),
                e["derivations"].clone(),
            )
        })
        .collect();
    assert_eq!(
        edges,
        [
            (
                "shop.orders.orders.amount".to_string(),
                "transform stats.daily.customer_totals".to_string(),
                json!(["aggregation"])
            ),
            (
                "shop.orders.orders.customer_id".to_string(),
                "transform stats.daily.customer_totals".to_string(),
                json!(["group_by"])
            ),
        ]
    );

    // Downstream of the orders: every dataset computed from them.
    let (status, body) = server
        .get("/api/v1/lineage/shop/orders/orders?direction=downstream")
        .await;
    assert_eq!(status, 200, "{body}");
    let mut reached: Vec<&str> = body["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    reached.sort();
    assert_eq!(
        reached,
        [
            "stats.daily.customer_totals",
            "stats.daily.order_counts",
            "stats.daily.shipped_orders"
        ]
    );

    // What cannot be answered is named.
    let (status, body) = server
        .get("/api/v1/lineage/stats/daily/customer_totals?direction=sideways")
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = server
        .get("/api/v1/lineage/stats/daily/customer_totals?column=nope")
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["error"]["message"],
        json!("stats.daily.customer_totals has no column \"nope\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaking_contract_change_names_the_datasets_downstream_and_their_owners() {
    let server = mesh(Duration::ZERO).await;
    // Optional → required is breaking.
    let required = |version: &str| {
        SHOP_CONTRACT.replace("version: 1.0.0", version).replace(
            "      - name: status\n        logicalType: string\n",
            "      - name: status\n        logicalType: string\n        required: true\n",
        )
    };
    let v2 = required("version: 2.0.0");
    let (status, plan) = server
        .apply(
            &[
                ("shop/product.odps.yaml", SHOP_PRODUCT),
                ("shop/orders.odcs.yaml", &v2),
            ],
            true,
        )
        .await;
    assert_eq!(status, 200, "{plan}");
    let hit = |dataset: &str| {
        json!({
            "dataset": format!("stats.daily.{dataset}"),
            "product": "stats.daily",
            "owner": "stats team",
            "changed": "shop.orders.orders"
        })
    };
    assert_eq!(
        plan["impact"],
        json!([
            hit("customer_totals"),
            hit("order_counts"),
            hit("shipped_orders")
        ])
    );

    // Without a major version the change is refused, and the message says whom it would hit.
    let v11 = required("version: 1.1.0");
    let (status, body) = server
        .apply(
            &[
                ("shop/product.odps.yaml", SHOP_PRODUCT),
                ("shop/orders.odcs.yaml", &v11),
            ],
            true,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.ends_with("Downstream datasets it would hit:\n  - stats.daily.customer_totals (product stats.daily, owner team stats team), computed from shop.orders.orders\n  - stats.daily.order_counts (product stats.daily, owner team stats team), computed from shop.orders.orders\n  - stats.daily.shipped_orders (product stats.daily, owner team stats team), computed from shop.orders.orders"),
        "{message}"
    );
}

/// An OpenLineage endpoint that refuses its first event (the emitter must try again) and keeps
/// every event it takes, in order.
async fn lineage_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let refused_once = Arc::new(AtomicBool::new(false));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/api/v1/lineage",
        axum::routing::post(move |axum::Json(event): axum::Json<Value>| {
            let (keep, refused_once) = (keep.clone(), refused_once.clone());
            async move {
                if !refused_once.swap(true, Ordering::SeqCst) {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                keep.lock().unwrap().push(event);
                axum::http::StatusCode::CREATED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/lineage", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// The first `count` events the receiver took (waiting up to 30 s for them).
async fn events_received(got: &std::sync::Mutex<Vec<Value>>, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events = got.lock().unwrap().clone();
        if events.len() >= count {
            // Nothing more than expected comes a moment later.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return got.lock().unwrap().clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} events came: {events:#?}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The OpenLineage schemas of `tests/standards/openlineage`, found by their `$id`s.
struct OpenLineageSchemas {
    root: std::path::PathBuf,
}

impl jsonschema::Retrieve for OpenLineageSchemas {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let uri = uri.as_str();
        let file = if uri == "https://openlineage.io/spec/2-0-2/OpenLineage.json" {
            self.root.join("OpenLineage.json")
        } else {
            let name = uri.rsplit('/').next().unwrap_or_default();
            self.root.join("facets").join(name)
        };
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
        if schema["$id"] != uri {
            return Err(format!("{uri} is not the version kept here ({})", schema["$id"]).into());
        }
        Ok(schema)
    }
}

/// Validates an event against OpenLineage 2-0-2, and each of its facets against the facet's
/// own schema (the version its `_schemaURL` names).
fn assert_valid_openlineage(event: &Value) {
    let problems = openlineage_problems(event);
    assert!(problems.is_empty(), "{problems:#?}\n{event:#}");
}

/// What the OpenLineage schemas find wrong with an event and its facets.
fn openlineage_problems(event: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/standards/openlineage/spec");
    let mut validate = |schema: Value, instance: &Value, what: &str| {
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .with_retriever(OpenLineageSchemas { root: root.clone() })
            .build(&schema)
            .unwrap_or_else(|e| panic!("{what}: the schema does not compile: {e}"));
        problems.extend(
            validator
                .iter_errors(instance)
                .map(|e| format!("{what}: {} at {}", e, e.instance_path())),
        );
    };
    validate(
        json!({"$ref": "https://openlineage.io/spec/2-0-2/OpenLineage.json"}),
        event,
        "the event",
    );
    let mut facets: Vec<(&String, &Value)> = Vec::new();
    for holder in [&event["run"]["facets"], &event["job"]["facets"]] {
        facets.extend(holder.as_object().into_iter().flatten());
    }
    for dataset in event["inputs"]
        .as_array()
        .into_iter()
        .chain(event["outputs"].as_array())
        .flatten()
    {
        facets.extend(dataset["facets"].as_object().into_iter().flatten());
    }
    assert!(!facets.is_empty(), "{event:#}");
    for (key, facet) in facets {
        let url = facet["_schemaURL"].as_str().unwrap_or_default();
        let file = url.split('#').next().unwrap_or_default();
        validate(
            json!({"$ref": file}),
            &json!({ key.clone(): facet }),
            &format!("facet {key} ({url})"),
        );
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_runs_emit_valid_openlineage_events_to_the_endpoint() {
    let (url, got) = lineage_receiver().await;
    let server = TestServer::start_with(Store::Sqlite, Tables::Local, |c| {
        c.transform_tick = Duration::ZERO;
        // One run at a time: their events come in run order, checked below by position.
        c.transform_concurrency = 1;
        c.openlineage.url = Some(url);
        c.openlineage.namespace = "tessera://test".into();
        c.openlineage.tick = Duration::from_millis(100);
    })
    .await;
    server.apply(&shop_folder(), false).await;
    let all: Vec<(&str, &str)> = TRANSFORMS.iter().map(|(d, s, _)| (*d, *s)).collect();
    apply_stats(&server, &all).await;
    grant_stats_team(&server).await;
    ingest_orders(&server, ORDERS_CSV).await;
    run(&server, "/api/v1/transforms/stats/daily/run").await;
    // A run that fails: a row without its key.
    let no_key = "-- materialize: merge
SELECT CAST(NULL AS VARCHAR) AS customer_id, count(*) AS orders, CAST(sum(amount) AS DOUBLE) AS amount
FROM shop.orders.orders GROUP BY customer_id";
    apply_stats(&server, &[("customer_totals", no_key)]).await;
    let failed = run(&server, "/api/v1/transforms/stats/daily/run").await;
    assert_eq!(failed[0]["status"], json!("failed"), "{failed:?}");

    // The orders' ingest, then three runs that succeeded and one that failed: a START and an
    // end each, in order.
    let events = events_received(&got, 10).await;
    assert_eq!(events.len(), 10);
    for event in &events {
        assert_valid_openlineage(event);
    }
    assert_eq!(
        (&events[0]["job"]["name"], &events[1]["eventType"]),
        (&json!("ingest.shop.orders.orders"), &json!("COMPLETE"))
    );
    let events = &events[2..];
    // The schemas do catch what is wrong: an event time without its offset, a facet without
    // its producer.
    let mut wrong = events[1].clone();
    wrong["eventTime"] = json!("2026-12-05T10:00:00");
    wrong["outputs"][0]["facets"]["columnLineage"]
        .as_object_mut()
        .unwrap()
        .remove("_producer");
    let problems = openlineage_problems(&wrong);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("the event:") && p.contains("eventTime"))
            && problems
                .iter()
                .any(|p| p.starts_with("facet columnLineage") && p.contains("_producer")),
        "{problems:#?}"
    );
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["job"]["name"].as_str().unwrap(),
                e["eventType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("transform.stats.daily.customer_totals", "START"),
            ("transform.stats.daily.customer_totals", "COMPLETE"),
            ("transform.stats.daily.order_counts", "START"),
            ("transform.stats.daily.order_counts", "COMPLETE"),
            ("transform.stats.daily.shipped_orders", "START"),
            ("transform.stats.daily.shipped_orders", "COMPLETE"),
            ("transform.stats.daily.customer_totals", "START"),
            ("transform.stats.daily.customer_totals", "FAIL"),
        ]
    );
    for pair in events.chunks(2) {
        assert_eq!(pair[0]["run"]["runId"], pair[1]["run"]["runId"]);
    }
    // The output's column lineage, row count and the gate's assertions; the failure's message.
    let totals = &events[1]["outputs"][0];
    assert_eq!(totals["namespace"], json!("tessera://test"));
    assert_eq!(totals["name"], json!("stats.daily.customer_totals"));
    assert_eq!(
        totals["facets"]["columnLineage"]["fields"]["amount"]["inputFields"],
        json!([{
            "namespace": "tessera://test",
            "name": "shop.orders.orders",
            "field": "amount",
            "transformations": [{"type": "DIRECT", "subtype": "AGGREGATION"}]
        }])
    );
    assert_eq!(
        totals["facets"]["columnLineage"]["dataset"],
        json!([{
            "namespace": "tessera://test",
            "name": "shop.orders.orders",
            "field": "customer_id",
            "transformations": [{"type": "INDIRECT", "subtype": "GROUP_BY"}]
        }])
    );
    assert_eq!(totals["facets"]["dataQualityMetrics"]["rowCount"], json!(3));
    let assertions = totals["facets"]["dataQualityAssertions"]["assertions"]
        .as_array()
        .unwrap();
    assert!(
        assertions
            .iter()
            .any(|a| a["assertion"] == "primary_key_unique" && a["success"] == json!(true)),
        "{assertions:?}"
    );
    assert_eq!(events[1]["inputs"][0]["name"], json!("shop.orders.orders"));
    let message = events[7]["run"]["facets"]["errorMessage"]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("break the contract"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_commits_source_pulls_and_event_commits_emit_valid_openlineage_events() {
    let (url, got) = lineage_receiver().await;
    let server = TestServer::start_with(Store::Sqlite, Tables::Local, |c| {
        c.openlineage.url = Some(url);
        c.openlineage.tick = Duration::from_millis(100);
        c.events.commit_interval = Duration::from_millis(100);
        c.source_tick = Duration::ZERO;
    })
    .await;
    let mut folder = shop_folder();
    let source = "apiVersion: tessera/v1\nkind: Source\nname: drops\ndataset: orders\nconnector: files\nevery: 1h\nfiles:\n  path: incoming/orders\n  pattern: \"*.csv\"\n";
    folder.push(("shop/sources/drops.yaml", source));
    let (status, plan) = server.apply(&folder, false).await;
    assert_eq!(status, 200, "{plan}");

    // A batch posted: four rows in, three to the quarantine.
    ingest_orders(&server, ORDERS_CSV).await;
    // A file the source pulls.
    let incoming = server.config.data_dir.join("incoming/orders");
    std::fs::create_dir_all(&incoming).unwrap();
    std::fs::write(
        incoming.join("day-2.csv"),
        "order_id,customer_id,amount,status\n20,U00000020,1,open\n21,U00000021,2,open\n",
    )
    .unwrap();
    let (status, state) = server
        .post_json("/api/v1/sources/shop/orders/drops/run", &json!({}))
        .await;
    assert_eq!((status, &state["last_rows"]), (200, &json!(2)), "{state}");
    // Events, committed by the event API's committer.
    let (status, receipt) = server
        .post_json(
            "/api/v1/datasets/shop/orders/orders/events",
            &json!({"order_id": 30, "customer_id": "U00000030", "amount": 3, "status": "open"}),
        )
        .await;
    assert_eq!(status, 202, "{receipt}");

    let events = events_received(&got, 6).await;
    assert_eq!(events.len(), 6, "{events:#?}");
    for event in &events {
        assert_valid_openlineage(event);
    }
    let runs: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["job"]["name"].as_str().unwrap(),
                e["eventType"].as_str().unwrap(),
                e["job"]["facets"]["jobType"]["processingType"]
                    .as_str()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        runs,
        [
            ("ingest.shop.orders.orders", "START", "BATCH"),
            ("ingest.shop.orders.orders", "COMPLETE", "BATCH"),
            ("source.shop.orders.drops", "START", "BATCH"),
            ("source.shop.orders.drops", "COMPLETE", "BATCH"),
            ("events.shop.orders.orders", "START", "STREAMING"),
            ("events.shop.orders.orders", "COMPLETE", "STREAMING"),
        ]
    );
    for pair in events.chunks(2) {
        assert_eq!(pair[0]["run"]["runId"], pair[1]["run"]["runId"]);
        assert_eq!(pair[1]["outputs"][0]["name"], json!("shop.orders.orders"));
        assert!(
            pair[1]["outputs"][0]["facets"]["schema"]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["name"] == "customer_id"),
            "{:#}",
            pair[1]
        );
    }
    // What each commit put into the dataset, and the gate's checks on it.
    let rows: Vec<&Value> = events
        .iter()
        .skip(1)
        .step_by(2)
        .map(|e| &e["outputs"][0]["facets"]["dataQualityMetrics"]["rowCount"])
        .collect();
    assert_eq!(rows, [&json!(4), &json!(2), &json!(1)]);
    // The pull read the source's folder, named as OpenLineage names local files.
    let folder = std::fs::canonicalize(&incoming).unwrap_or(incoming.clone());
    let read = &events[3]["inputs"][0];
    assert_eq!(read["namespace"], json!("file"), "{read}");
    assert!(
        [incoming.display().to_string(), folder.display().to_string()]
            .contains(&read["name"].as_str().unwrap().to_string()),
        "{read}"
    );
    assert!(events[0]["inputs"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_and_a_failing_source_are_failed_runs() {
    let (url, got) = lineage_receiver().await;
    let server = TestServer::start_with(Store::Sqlite, Tables::Local, |c| {
        c.openlineage.url = Some(url);
        c.openlineage.tick = Duration::from_millis(100);
        c.source_tick = Duration::ZERO;
    })
    .await;
    let mut folder = shop_folder();
    // A source whose folder cannot be made: a file is in the way.
    let source = "apiVersion: tessera/v1\nkind: Source\nname: drops\ndataset: orders\nconnector: files\nevery: 1h\nfiles:\n  path: blocked/orders\n";
    folder.push(("shop/sources/drops.yaml", source));
    let (status, plan) = server.apply(&folder, false).await;
    assert_eq!(status, 200, "{plan}");
    std::fs::write(server.config.data_dir.join("blocked"), "in the way").unwrap();
    ingest_orders(&server, ORDERS_CSV).await;
    // The same order id again: the gate refuses the batch (the primary key would repeat).
    let (status, report) = server
        .ingest(
            "shop.orders.orders",
            "batch_id=clash",
            "text/csv",
            "order_id,customer_id,amount,status\n1,U00000009,1,open\n",
        )
        .await;
    assert_eq!(status, 201, "{report}");
    assert!(report["refused"].is_string(), "{report}");
    let (_, state) = server
        .post_json("/api/v1/sources/shop/orders/drops/run", &json!({}))
        .await;
    assert_eq!(state["state"], json!("failing"), "{state}");

    let events = events_received(&got, 6).await;
    for event in &events {
        assert_valid_openlineage(event);
    }
    let refused = &events[3];
    assert_eq!(
        (&refused["job"]["name"], &refused["eventType"]),
        (&json!("ingest.shop.orders.orders"), &json!("FAIL"))
    );
    let message = refused["run"]["facets"]["errorMessage"]["message"]
        .as_str()
        .unwrap();
    assert!(
        message.contains("the commit gate refused the batch") && message.contains("quarantine"),
        "{message}"
    );
    assert!(
        refused["outputs"][0]["facets"]["dataQualityAssertions"]["assertions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["success"] == json!(false)),
        "{refused:#}"
    );
    let failed = &events[5];
    assert_eq!(
        (&failed["job"]["name"], &failed["eventType"]),
        (&json!("source.shop.orders.drops"), &json!("FAIL"))
    );
    let blocked = server.config.data_dir.join("blocked/orders");
    assert_eq!(
        failed["inputs"][0],
        json!({"namespace": "file", "name": blocked.display().to_string(), "facets": {}})
    );
    assert!(failed["run"]["facets"]["errorMessage"]["message"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_full_refresh_the_gate_still_knows_every_key() {
    let server = mesh(Duration::ZERO).await;
    // Keys that repeat across runs: orders 1 and 3 both become key 1.
    let clashing = "-- materialize: append
-- watermark: placed_at
SELECT order_id % 2 AS order_id, CAST(amount AS DOUBLE) AS amount, placed_at
FROM shop.orders.orders";
    apply_stats(&server, &[("shipped_orders", clashing)]).await;
    ingest_orders(
        &server,
        "order_id,customer_id,amount,status,placed_at\n1,U00000001,5,open,2026-03-01T10:00:00Z\n",
    )
    .await;
    let replaced = run(
        &server,
        "/api/v1/transforms/stats/daily/shipped_orders/run?full_refresh=true",
    )
    .await;
    assert_eq!(replaced[0]["status"], json!("succeeded"), "{replaced:?}");
    // The next append brings key 1 again: the gate, which kept the replacement's keys,
    // refuses it.
    ingest_orders(
        &server,
        "order_id,customer_id,amount,status,placed_at\n3,U00000003,7,open,2026-03-02T10:00:00Z\n",
    )
    .await;
    let appended = run(&server, "/api/v1/transforms/stats/daily/shipped_orders/run").await;
    assert_eq!(appended[0]["status"], json!("failed"), "{appended:?}");
    let error = appended[0]["error"].as_str().unwrap();
    assert!(error.contains("order_id"), "{error}");
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM stats.daily.shipped_orders")
            .await,
        json!(1)
    );
}

/// A merge is gated by what it would leave: the rows it replaces do not count twice (a run
/// recomputing every customer keeps three rows), the rows it adds do (a fourth customer breaks
/// the contract's row count, and nothing is committed); a merge that leaves a check failing as
/// it already was is not refused (a full refresh is). The small table written again whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_is_gated_by_the_rows_it_replaces_and_adds() {
    merge_is_gated_by_what_it_leaves(Merges::Rewrite).await;
}

/// The same as a Delta merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_merge_is_gated_by_the_rows_it_replaces_and_adds() {
    merge_is_gated_by_what_it_leaves(Merges::DeltaMerge).await;
}

/// The stats contract at `version` with a row count of at most `rows` for `customer_totals`.
fn customer_totals_at_most(version: &str, rows: u32) -> String {
    STATS_CONTRACT
        .replace(
            "id: stats-daily-contract\nversion: 1.0.0",
            &format!("id: stats-daily-contract\nversion: {version}"),
        )
        .replace(
            "  - name: customer_totals\n",
            &format!(
                "  - name: customer_totals\n    quality:\n      - metric: rowCount\n        mustBeLessOrEqualTo: {rows}\n"
            ),
        )
}

async fn merge_is_gated_by_what_it_leaves(merges: Merges) {
    let server = mesh_with(Store::Sqlite, Duration::ZERO, merges).await;
    let mut files = stats_folder(&[("customer_totals", CUSTOMER_TOTALS)]);
    files[1].1 = customer_totals_at_most("2.0.0", 3);
    apply_folder(&server, files.clone()).await;
    // Orders (CSV with its header), then a run of customer_totals.
    let order_and_run = |csv: &'static str| {
        let server = &server;
        async move {
            ingest_orders(server, csv).await;
            run(server, "/api/v1/transforms/stats/daily/customer_totals/run").await
        }
    };
    let first = order_and_run(ORDERS_CSV).await;
    assert_eq!(first[0]["status"], json!("succeeded"), "{first:?}");

    // Customer 2 orders again: every customer is recomputed and merged over its row.
    let again = order_and_run(
        "order_id,customer_id,amount,status,placed_at\n8,U00000002,1,open,2026-02-01T10:00:00Z\n",
    )
    .await;
    assert_eq!(again[0]["status"], json!("succeeded"), "{again:?}");
    assert_eq!(again[0]["rows_out"], json!(3));
    assert_eq!(
        server
            .scalar(
                "SELECT orders FROM stats.daily.customer_totals WHERE customer_id = 'U00000002'"
            )
            .await,
        json!(2)
    );

    // A fourth customer: the merge would leave four rows.
    let refused = order_and_run(
        "order_id,customer_id,amount,status,placed_at\n9,U00000009,1,open,2026-02-02T10:00:00Z\n",
    )
    .await;
    assert_eq!(refused[0]["status"], json!("failed"), "{refused:?}");
    let error = refused[0]["error"].as_str().unwrap();
    assert!(
        error.contains("row_count")
            && error.contains("4")
            && error.ends_with("nothing was committed"),
        "{error}"
    );
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM stats.daily.customer_totals")
            .await,
        json!(3)
    );

    // The rule tightened below the three rows the table holds: a merge that leaves three is
    // not refused (the dataset fails the check already); a full refresh, judged alone, is.
    files[1].1 = customer_totals_at_most("3.0.0", 2);
    apply_folder(&server, files).await;
    let kept = order_and_run(
        "order_id,customer_id,amount,status,placed_at\n10,U00000002,1,open,2026-02-03T10:00:00Z\n",
    )
    .await;
    assert_eq!(kept[0]["status"], json!("succeeded"), "{kept:?}");
    assert_eq!(
        server
            .scalar(
                "SELECT orders FROM stats.daily.customer_totals WHERE customer_id = 'U00000002'"
            )
            .await,
        json!(3)
    );
    let full = run(
        &server,
        "/api/v1/transforms/stats/daily/customer_totals/run?full_refresh=true",
    )
    .await;
    assert_eq!(full[0]["status"], json!("failed"), "{full:?}");
}

/// A Delta merge is gated by the values of the rows it replaces: a customer whose amount is
/// missing, computed again still missing, counts once (the table's null is replaced), while a
/// second customer's missing amount breaks the contract's "at most one" and nothing is
/// committed. (A merge's row count takes the rows it replaces from the key index; a count the
/// table holds something of reads them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_merge_counts_the_missing_values_of_the_rows_it_replaces_once() {
    let server = mesh_with(Store::Sqlite, Duration::ZERO, Merges::DeltaMerge).await;
    // A customer's amount is missing once they have three orders or more.
    let totals = "-- materialize: merge
SELECT customer_id, count(*) AS orders,
       CASE WHEN count(*) >= 3 THEN NULL ELSE CAST(sum(amount) AS DOUBLE) END AS amount
FROM shop.orders.orders
GROUP BY customer_id";
    let mut files = stats_folder(&[("customer_totals", totals)]);
    let amount = "      - name: amount\n        logicalType: number\n  - name: small_customers\n";
    assert!(files[1].1.contains(amount));
    files[1].1 = files[1]
        .1
        .replace(
            "id: stats-daily-contract\nversion: 1.0.0",
            "id: stats-daily-contract\nversion: 2.0.0",
        )
        .replace(
            amount,
            "      - name: amount\n        logicalType: number\n        quality:\n          - metric: nullValues\n            mustBeLessOrEqualTo: 1\n  - name: small_customers\n",
        );
    apply_folder(&server, files).await;
    let path = "/api/v1/transforms/stats/daily/customer_totals/run";
    let orders_of_customer_2 = || async {
        server
            .scalar(
                "SELECT orders FROM stats.daily.customer_totals WHERE customer_id = 'U00000002'",
            )
            .await
    };
    // Customer 1 with three orders (amount missing), customer 2 with one.
    ingest_orders(&server, &orders_of(&[(1, 1), (2, 1), (3, 1), (4, 2)])).await;
    let first = run(&server, path).await;
    assert_eq!(first[0]["status"], json!("succeeded"), "{first:?}");

    // Customer 2 orders again: customer 1's row, still missing its amount, replaces itself.
    ingest_orders(&server, &orders_of(&[(5, 2)])).await;
    let again = run(&server, path).await;
    assert_eq!(again[0]["status"], json!("succeeded"), "{again:?}");
    assert_eq!(again[0]["mode"], json!("merge"), "{again:?}");
    assert_eq!(orders_of_customer_2().await, json!(2));

    // A third order: customer 2's amount goes missing too, two in all.
    ingest_orders(&server, &orders_of(&[(6, 2)])).await;
    let refused = run(&server, path).await;
    assert_eq!(refused[0]["status"], json!("failed"), "{refused:?}");
    let error = refused[0]["error"].as_str().unwrap();
    assert!(
        error.contains("amount") && error.ends_with("nothing was committed"),
        "{error}"
    );
    assert_eq!(orders_of_customer_2().await, json!(2));
}

/// A merge written again starts from the rows it wrote while the table holds them; once
/// another writer (a Delta writer outside this server) has committed into the table, the table
/// is read again, and the rows it added stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_written_again_keeps_the_rows_another_writer_committed() {
    let server = mesh(Duration::ZERO).await;
    let path = "/api/v1/transforms/stats/daily/customer_totals/run";
    let totals = || async {
        server
            .rows(
                "SELECT customer_id, orders FROM stats.daily.customer_totals ORDER BY customer_id",
            )
            .await
    };
    ingest_orders(&server, &orders_of(&[(1, 1), (2, 2)])).await;
    let first = run(&server, path).await;
    assert_eq!(first[0]["status"], json!("succeeded"), "{first:?}");
    ingest_orders(&server, &orders_of(&[(3, 2)])).await;
    let second = run(&server, path).await;
    assert_eq!(second[0]["mode"], json!("merge"), "{second:?}");

    // A customer's row committed into the computed table past Tessera.
    let outside = tessera_storage::Storage::new(
        &server.config.storage_url(),
        server.config.storage_options.clone(),
    )
    .unwrap();
    let location = "stats/daily/customer_totals";
    let schema = outside.table_info(location).await.unwrap().unwrap().schema;
    let line = r#"{"customer_id": "U00000099", "orders": 7, "amount": 1.5}"#;
    let row = arrow::json::ReaderBuilder::new(schema)
        .build(std::io::Cursor::new(line))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    outside
        .append_sequenced(location, vec![row], &[])
        .await
        .unwrap();

    ingest_orders(&server, &orders_of(&[(4, 1)])).await;
    let third = run(&server, path).await;
    assert_eq!(
        (&third[0]["mode"], &third[0]["status"]),
        (&json!("merge"), &json!("succeeded")),
        "{third:?}"
    );
    assert_eq!(
        totals().await,
        [
            json!({"customer_id": "U00000001", "orders": 2}),
            json!({"customer_id": "U00000002", "orders": 2}),
            json!({"customer_id": "U00000099", "orders": 7}),
        ]
    );
}
