//! Sources, as a domain team uses them: declared in the product folder, checked at apply, run by
//! the server as the owner team, each pull one gated commit that is never read twice; the files
//! connector over a real folder, the PostgreSQL connector over the real PostgreSQL the harness
//! starts (late-committing transactions included); secrets set, used and never shown.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;

use crate::on_both_stores;
use crate::support::*;

const ORDERS: &str = "SELECT count(*) AS n FROM shop.orders.orders";
const QUARANTINE: &str = "SELECT count(*) AS n FROM shop.orders.orders_quarantine";

/// A trigger that does not fire while a test runs (once a year): such a source is pulled by
/// hand only, so no scheduled turn races the test's own.
const BY_HAND: &str = "schedule: \"0 0 1 1 *\"";

/// A files source of the shop's orders, pulled on `trigger` (a line of the source file).
fn files_source(trigger: &str) -> String {
    format!(
        "apiVersion: tessera/v1\nkind: Source\nname: drops\ndescription: Order files the shop drops.\ndataset: orders\nconnector: files\n{trigger}\nfiles:\n  path: incoming/orders\n  pattern: \"*.csv\"\n"
    )
}

fn with_source<'a>(source: &'a str) -> Vec<(&'static str, &'a str)> {
    let mut folder: Vec<(&'static str, &'a str)> = shop_folder();
    folder.push(("shop/sources/drops.yaml", source));
    folder
}

impl TestServer {
    async fn run_source(&self, token: &str, path: &str) -> (u16, Value) {
        self.post_json_as(
            Some(token),
            &format!("/api/v1/sources/{path}/run"),
            &json!({}),
        )
        .await
    }

    /// Waits up to fifteen seconds for `sql`'s count to be `want`; the last count.
    async fn count_is(&self, sql: &str, want: i64) -> i64 {
        let started = Instant::now();
        loop {
            let n = self.scalar(sql).await.as_i64().unwrap();
            if n == want || started.elapsed() > Duration::from_secs(15) {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn a_files_source_commits_each_file_once(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    let source = files_source(BY_HAND);
    let (status, plan) = server.apply(&with_source(&source), false).await;
    assert_eq!(status, 200, "{plan}");
    assert!(
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kind"] == "source" && c["name"] == "drops" && c["action"] == "create"),
        "{plan}"
    );
    let owner = server.token_for("ana", &[], &["shop team"]).await;
    let folder = server.config.data_dir.join("incoming/orders");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("day-1.csv"), ORDERS_CSV).unwrap();
    // Half-written files are named so that the source leaves them alone.
    std::fs::write(folder.join("_day-2.csv"), "order_id,customer_id\n9,U").unwrap();
    std::fs::write(folder.join("notes.txt"), "not a batch").unwrap();

    let (status, state) = server.run_source(&owner, "shop/orders/drops").await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(
        (&state["state"], &state["last_rows"]),
        (&json!("idle"), &json!(7)),
        "{state}"
    );
    assert_eq!(state["position"], "file day-1.csv");
    assert_eq!(server.scalar(ORDERS).await, json!(4));
    assert_eq!(server.scalar(QUARANTINE).await, json!(3));

    // Seen again, copied under another name, or after a restart: the same content is the
    // same batch.
    std::fs::copy(folder.join("day-1.csv"), folder.join("day-1-copy.csv")).unwrap();
    let (_, state) = server.run_source(&owner, "shop/orders/drops").await;
    assert_eq!(state["last_rows"], 0, "{state}");
    let server = server.stop().await.restart().await;
    let (_, state) = server.run_source(&owner, "shop/orders/drops").await;
    assert_eq!(state["last_rows"], 0, "{state}");
    assert_eq!(state["total_rows"], 7, "{state}");
    assert_eq!(server.scalar(ORDERS).await, json!(4));

    // A new file is a new batch; renamed into place it is read.
    std::fs::write(
        folder.join("_day-2.csv"),
        "order_id,customer_id,amount,status\n20,U00000020,1,open\n21,U00000021,2,open\n",
    )
    .unwrap();
    std::fs::rename(folder.join("_day-2.csv"), folder.join("day-2.csv")).unwrap();
    let (_, state) = server.run_source(&owner, "shop/orders/drops").await;
    assert_eq!(state["last_rows"], 2, "{state}");
    assert_eq!(server.scalar(ORDERS).await, json!(6));

    // The listing shows where each source stands; the commits are the owner team's.
    let (status, listed) = server.get_as(&owner, "/api/v1/sources").await;
    assert_eq!(status, 200, "{listed}");
    let drops = &listed.as_array().unwrap()[0];
    assert_eq!(
        (
            &drops["dataset"],
            &drops["connector"],
            &drops["trigger"],
            &drops["total_rows"]
        ),
        (
            &json!("shop.orders.orders"),
            &json!("files"),
            &json!("schedule 0 0 1 1 *"),
            &json!(9)
        )
    );

    // Someone outside the owner team may see the source but not make it pull.
    let outsider = server.token_for("olga", &[], &["other team"]).await;
    let (status, body) = server.run_source(&outsider, "shop/orders/drops").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may not ingest dataset shop.orders.orders"),
        "{body}"
    );
}

/// A source with a trigger runs by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_pulls_on_its_own_trigger() {
    let server = TestServer::start_with(Store::Sqlite, Tables::Local, |c| {
        c.source_tick = Duration::from_millis(100);
    })
    .await;
    let source = files_source("every: 200ms");
    let (status, plan) = server.apply(&with_source(&source), false).await;
    assert_eq!(status, 200, "{plan}");
    let folder = server.config.data_dir.join("incoming/orders");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("a.csv"), ORDERS_CSV).unwrap();
    assert_eq!(server.count_is(ORDERS, 4).await, 4);
    std::fs::write(folder.join("b.csv"), "order_id,customer_id\n30,U00000030\n").unwrap();
    assert_eq!(server.count_is(ORDERS, 5).await, 5);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(server.scalar(ORDERS).await, json!(5), "each file once");
}

async fn sources_are_checked_when_applied(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    let refused = |source: String, field: &'static str| {
        let server = &server;
        async move {
            let (status, body) = server.apply(&with_source(&source), false).await;
            assert_eq!(status, 422, "{body}");
            let problems = body["error"]["diagnostics"].as_array().unwrap().clone();
            assert!(
                problems
                    .iter()
                    .any(|p| p["file"] == "shop/sources/drops.yaml" && p["field"] == field),
                "expected a problem at {field}: {body}"
            );
            problems
        }
    };
    // Not one of the product's datasets.
    refused(
        files_source("every: 1m").replace("dataset: orders", "dataset: refunds"),
        "dataset",
    )
    .await;
    // A PostgreSQL source without its secret, and one naming a secret nobody set.
    let pg = "apiVersion: tessera/v1\nkind: Source\nname: drops\ndataset: orders\nconnector: postgres\nevery: 1m\npostgres:\n  table: public.orders\n  cursor: {timestamp: updated_at, key: order_id}\n";
    let problems = refused(pg.to_string(), "").await;
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .contains("needs a secret"),
        "{problems:?}"
    );
    let named = format!("{pg}secret: {{name: shop-db}}\n");
    refused(named.clone(), "secret.name").await;
    // A cursor key that is not a column of the dataset.
    refused(
        pg.replace("key: order_id", "key: id") + "secret: {name: shop-db}\n",
        "postgres.cursor.key",
    )
    .await;
    // A secret of another team may not be used.
    let other = server.token_for("olga", &[], &["other team"]).await;
    let (status, body) = server
        .client(Some(&other))
        .put(format!("{}/api/v1/secrets/shop-db", server.url))
        .json(&json!({"team": "other team", "value": "postgres://u:p@127.0.0.1:1/x"}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 200, "{:?}", body.text().await);
    let problems = refused(named, "secret.name").await;
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .contains("belongs to team other team"),
        "{problems:?}"
    );
    // A credential written in the file is refused by the standard's schema.
    refused(
        pg.replace(
            "  table: public.orders\n",
            "  table: public.orders\n  url: postgres://u:p@h/db\n",
        ),
        "postgres.url",
    )
    .await;
}

async fn secrets_are_never_shown(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    let member = server.token_for("ana", &[], &["shop team"]).await;
    let outsider = server.token_for("olga", &[], &["other team"]).await;
    let value = "postgres://shop:very-secret-password@db.internal:5432/shop";
    let put = |token: String, team: &'static str| {
        let server = &server;
        async move {
            let r = server
                .client(Some(&token))
                .put(format!("{}/api/v1/secrets/shop-db", server.url))
                .json(&json!({"team": team, "value": value}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, body) = put(outsider.clone(), "shop team").await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = put(member.clone(), "shop team").await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("very-secret"), "{body}");
    let (status, listed) = server.get_as(&member, "/api/v1/secrets").await;
    assert_eq!(status, 200);
    assert_eq!(listed[0]["name"], "shop-db");
    assert_eq!(listed[0]["team"], "shop team");
    assert!(!listed.to_string().contains("very-secret"), "{listed}");
    // Another team sees none of it; the audit log says who set it, not what.
    let (_, theirs) = server.get_as(&outsider, "/api/v1/secrets").await;
    assert_eq!(theirs, json!([]));
    let (_, audit) = server.get("/api/v1/audit?limit=100").await;
    assert!(audit.to_string().contains("secret.set"), "{audit}");
    assert!(!audit.to_string().contains("very-secret"), "{audit}");
    // Nor is it in the metadata store as text.
    let url = server.config.metadata_url();
    let sealed: Vec<(String, String)> = stored_rows(&url, "SELECT name, sealed FROM secrets").await;
    assert_eq!(sealed.len(), 1);
    assert!(!sealed[0].1.contains("very-secret"));
    // A secret a source names cannot be deleted.
    let pg = "apiVersion: tessera/v1\nkind: Source\nname: drops\ndataset: orders\nconnector: postgres\nevery: 1h\nsecret: {name: shop-db}\npostgres:\n  table: public.orders\n  cursor: {timestamp: placed_at, key: order_id}\n";
    let (status, plan) = server.apply(&with_source(pg), false).await;
    assert_eq!(status, 200, "{plan}");
    let r = server
        .client(Some(&member))
        .delete(format!("{}/api/v1/secrets/shop-db", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    // The source cannot reach db.internal: it fails, says why, and never shows the password.
    let (status, state) = server.run_source(&member, "shop/orders/drops").await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["state"], "failing", "{state}");
    assert_eq!(state["failures"], 1);
    assert!(!state.to_string().contains("very-secret"), "{state}");
    let (_, again) = server.get("/api/v1/sources/shop/orders/drops").await;
    assert!(again["last_error"].is_string(), "{again}");
    assert_eq!(server.get("/health").await.0, 200, "the server goes on");
}

/// A PostgreSQL database for a source, with an `orders` table.
async fn source_database() -> (String, sqlx::PgConnection) {
    let url = postgres_database().await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE orders (
            order_id integer PRIMARY KEY,
            customer_id text NOT NULL,
            amount numeric(10,2),
            status text,
            placed_at timestamptz,
            updated_at timestamptz NOT NULL
        )",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    (url, conn)
}

fn postgres_source(lookback: &str) -> String {
    format!(
        "apiVersion: tessera/v1\nkind: Source\nname: shop_db\ndataset: orders\nconnector: postgres\n{BY_HAND}\nsecret: {{name: shop-db}}\npostgres:\n  table: public.orders\n  cursor: {{timestamp: updated_at, key: order_id}}\n  lookback: {lookback}\n"
    )
}

async fn insert(conn: &mut sqlx::PgConnection, id: i32, customer: &str, updated: &str) {
    sqlx::query(
        "INSERT INTO orders VALUES ($1, $2, 12.34, 'open', '2026-01-01T10:00:00Z', $3::timestamptz)",
    )
    .bind(id)
    .bind(customer)
    .bind(updated)
    .execute(&mut *conn)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_source_reads_incrementally_and_merges_late_rows() {
    let server = TestServer::start(Store::Sqlite, Tables::Local).await;
    let (url, mut conn) = source_database().await;
    let owner = server.token_for("ana", &[], &["shop team"]).await;
    let r = server
        .client(Some(&owner))
        .put(format!("{}/api/v1/secrets/shop-db", server.url))
        .json(&json!({"team": "shop team", "value": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let source = postgres_source("1h");
    let mut folder = shop_folder();
    folder.push(("shop/sources/shop_db.yaml", &source));
    let (status, plan) = server.apply(&folder, false).await;
    assert_eq!(status, 200, "{plan}");

    // The initial load, with two rows at the same time and one that breaks the contract.
    for (id, customer, at) in [
        (1, "U00000001", "2026-12-01T10:00:00Z"),
        (2, "U00000002", "2026-12-01T10:00:00Z"),
        (3, "X3", "2026-12-01T10:00:01Z"),
    ] {
        insert(&mut conn, id, customer, at).await;
    }
    let (status, state) = server.run_source(&owner, "shop/orders/shop_db").await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(
        (&state["state"], &state["last_rows"]),
        (&json!("idle"), &json!(3)),
        "{state}"
    );
    assert_eq!(state["position"], "updated_at 2026-12-01T10:00:01.000000Z");
    assert_eq!(server.scalar(ORDERS).await, json!(2));
    assert_eq!(server.scalar(QUARANTINE).await, json!(1));
    // Types arrive as the contract declares them: the numeric's digits kept.
    assert_eq!(
        server
            .rows("SELECT CAST(amount AS VARCHAR) AS amount FROM shop.orders.orders WHERE order_id = 1")
            .await,
        vec![json!({"amount": "12.34"})]
    );

    // A transaction that began earlier commits later than one that began after it: its row's
    // time is older than the newest committed one, and the lookback reads it.
    let mut late = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut late_tx = late.begin().await.unwrap();
    insert(&mut late_tx, 10, "U00000010", "2026-12-01T11:00:00Z").await;
    insert(&mut conn, 11, "U00000011", "2026-12-01T11:00:05Z").await;
    let (_, state) = server.run_source(&owner, "shop/orders/shop_db").await;
    assert_eq!(state["last_rows"], 1, "{state}");
    late_tx.commit().await.unwrap();
    let (_, state) = server.run_source(&owner, "shop/orders/shop_db").await;
    assert_eq!(state["last_rows"], 1, "the late row: {state}");
    assert_eq!(server.scalar(ORDERS).await, json!(4));

    // An update: the row is merged, not added.
    sqlx::query("UPDATE orders SET status = 'shipped', updated_at = '2026-12-01T12:00:00Z' WHERE order_id = 1")
        .execute(&mut conn)
        .await
        .unwrap();
    let (_, state) = server.run_source(&owner, "shop/orders/shop_db").await;
    assert_eq!(state["last_rows"], 1, "{state}");
    assert_eq!(
        server
            .rows("SELECT order_id, status FROM shop.orders.orders ORDER BY order_id")
            .await,
        vec![
            json!({"order_id": 1, "status": "shipped"}),
            json!({"order_id": 2, "status": "open"}),
            json!({"order_id": 10, "status": "open"}),
            json!({"order_id": 11, "status": "open"}),
        ]
    );

    // Nothing new: no commit at all (the table's version stays).
    let (_, before) = server.get("/api/v1/datasets/shop/orders/orders").await;
    let (_, state) = server.run_source(&owner, "shop/orders/shop_db").await;
    assert_eq!(state["last_rows"], 0, "{state}");
    let (_, after) = server.get("/api/v1/datasets/shop/orders/orders").await;
    assert_eq!(before["table_version"], after["table_version"]);

    // After a restart the position comes from the table: nothing is read twice.
    let server = server.stop().await.restart().await;
    let (_, state) = server.run_source(&owner, "shop/orders/shop_db").await;
    assert_eq!(state["state"], "idle", "{state}");
    assert_eq!(server.scalar(ORDERS).await, json!(4));
    assert_eq!(server.scalar(QUARANTINE).await, json!(1));
    assert_eq!(
        server
            .scalar("SELECT count(DISTINCT order_id) FROM shop.orders.orders")
            .await,
        json!(4)
    );
}

/// The test broker (`TESSERA_TEST_KAFKA`, started by scripts/test) and a client of it.
async fn kafka() -> (String, rskafka::client::Client) {
    let brokers = std::env::var("TESSERA_TEST_KAFKA").unwrap_or_else(|_| {
        panic!("TESSERA_TEST_KAFKA is not set: run the suite with scripts/test, which starts a Kafka-protocol broker")
    });
    let client = rskafka::client::ClientBuilder::new(vec![brokers.clone()])
        .backoff_config(rskafka::BackoffConfig {
            deadline: Some(Duration::from_secs(10)),
            ..Default::default()
        })
        .build()
        .await
        .expect("reach the test Kafka broker");
    (brokers, client)
}

/// Produces `values` to a partition in one call: one record batch.
async fn produce(client: &rskafka::client::Client, topic: &str, partition: i32, values: &[&str]) {
    let partition = client
        .partition_client(
            topic.to_string(),
            partition,
            rskafka::client::partition::UnknownTopicHandling::Retry,
        )
        .await
        .unwrap();
    let records = values
        .iter()
        .map(|v| rskafka::record::Record {
            key: None,
            value: Some(v.as_bytes().to_vec()),
            headers: Default::default(),
            timestamp: rskafka::chrono::Utc::now(),
        })
        .collect();
    partition
        .produce(
            records,
            rskafka::client::partition::Compression::NoCompression,
        )
        .await
        .unwrap();
}

/// A topic of two partitions is read whole, each partition from where the dataset's table says
/// it was committed up to: after more records and after a restart, nothing is read twice or
/// skipped, and a record that is no JSON object is quarantined, not dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_source_reads_every_partition_once() {
    let (brokers, client) = kafka().await;
    let topic = format!("orders-{}", uuid::Uuid::new_v4().simple());
    client
        .controller_client()
        .unwrap()
        .create_topic(topic.clone(), 2, 1, 5_000)
        .await
        .unwrap();
    let order =
        |id: i64| format!("{{\"order_id\": {id}, \"customer_id\": \"U{id:08}\", \"amount\": 1}}");
    let (o1, o2, o3, o4, o5) = (order(1), order(2), order(3), order(4), order(5));
    produce(&client, &topic, 0, &[&o1, &o2, &o3]).await;
    produce(&client, &topic, 1, &[&o4, "not json at all", &o5]).await;

    let server = TestServer::start(Store::Sqlite, Tables::Local).await;
    let source = format!(
        "apiVersion: tessera/v1\nkind: Source\nname: stream\ndataset: orders\nconnector: kafka\n{BY_HAND}\nkafka:\n  brokers: [\"{brokers}\"]\n  topic: {topic}\n"
    );
    let mut folder = shop_folder();
    folder.push(("shop/sources/stream.yaml", &source));
    let (status, plan) = server.apply(&folder, false).await;
    assert_eq!(status, 200, "{plan}");
    let owner = server.token_for("ana", &[], &["shop team"]).await;

    let (status, state) = server.run_source(&owner, "shop/orders/stream").await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(
        (&state["state"], &state["last_rows"]),
        (&json!("idle"), &json!(6)),
        "{state}"
    );
    assert!(
        state["position"]
            .as_str()
            .unwrap()
            .contains("offsets p0=3 p1=3"),
        "{state}"
    );
    assert_eq!(server.scalar(ORDERS).await, json!(5));
    let unreadable = server
        .rows("SELECT _rule, _reason FROM shop.orders.orders_quarantine")
        .await;
    assert_eq!(
        unreadable,
        vec![
            json!({"_rule": "unreadable", "_reason": format!("record {topic}@1:1 is not a JSON object")})
        ]
    );

    // More records, produced as one batch, are read from where partition 0 was committed.
    let (o6, o7) = (order(6), order(7));
    produce(&client, &topic, 0, &[&o6, &o7]).await;
    let (_, state) = server.run_source(&owner, "shop/orders/stream").await;
    assert_eq!(state["last_rows"], 2, "{state}");
    assert_eq!(server.scalar(ORDERS).await, json!(7));

    // After a restart the offsets come from the table: nothing is read twice.
    let server = server.stop().await.restart().await;
    let (_, state) = server.run_source(&owner, "shop/orders/stream").await;
    assert_eq!(state["last_rows"], 0, "{state}");
    let o8 = order(8);
    produce(&client, &topic, 1, &[&o8]).await;
    let (_, state) = server.run_source(&owner, "shop/orders/stream").await;
    assert_eq!(state["last_rows"], 1, "{state}");
    assert_eq!(server.scalar(ORDERS).await, json!(8));
    assert_eq!(
        server
            .scalar("SELECT count(DISTINCT order_id) FROM shop.orders.orders")
            .await,
        json!(8)
    );
}

on_both_stores!(
    a_files_source_commits_each_file_once,
    sources_are_checked_when_applied,
    secrets_are_never_shown,
);
