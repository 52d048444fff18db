//! The query log (issue 8): every query, finished, failed, refused or abandoned, with who ran
//! it through which front end, what it read and what it cost; written off the response path
//! and flushed when the server stops.

use serde_json::{Value, json};

use crate::on_both_stores;
use crate::support::*;

on_both_stores!(
    every_query_is_logged_with_who_what_and_how_it_ended,
    the_log_is_written_when_the_server_stops,
);

pub(crate) async fn log_as(server: &TestServer, token: &str) -> Vec<Value> {
    let r = server
        .client(Some(token))
        .get(format!("{}/api/v1/queries?limit=100", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json::<Vec<Value>>().await.unwrap()
}

/// The log as `token` sees it once it holds `n` entries (it is written in groups, within a
/// second or so).
async fn log_with(server: &TestServer, token: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let log = log_as(server, token).await;
        if log.len() >= n {
            return log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "the query log never reached {n} entries: {:?}",
        log_as(server, token).await
    )
}

async fn every_query_is_logged_with_who_what_and_how_it_ended(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    server.apply(&shop_folder(), false).await;
    server
        .ingest("shop.orders.orders", "", "text/csv", ORDERS_CSV)
        .await;
    let ada = server.token_for("ada", &[], &["shop team"]).await;
    let bob = server.token_for("bob", &[], &[]).await;
    let run = |token: &str, sql: &str| {
        let (token, sql) = (token.to_string(), sql.to_string());
        let server = &server;
        async move {
            server
                .post_json_as(Some(&token), "/api/v1/query", &json!({ "sql": sql }))
                .await
                .0
        }
    };
    assert_eq!(
        run(&ada, "SELECT sum(amount) FROM shop.orders.orders").await,
        200
    );
    assert_eq!(run(&ada, "SELEC 1").await, 400);
    assert_eq!(
        run(&ada, "SELECT order_id / 0 FROM shop.orders.orders").await,
        400
    );
    assert_eq!(run(&bob, "SELECT * FROM shop.orders.orders").await, 403);
    assert_eq!(run(&bob, "SELECT 42").await, 200);

    // Admins see every query, newest first.
    let all = log_with(&server, &server.admin_token, 5).await;
    let statuses: Vec<(&str, &str, &str)> = all
        .iter()
        .map(|q| {
            (
                q["principal"].as_str().unwrap(),
                q["status"].as_str().unwrap(),
                q["error_class"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("user bob", "finished", "-"),
            ("user bob", "denied", "forbidden"),
            ("user ada", "failed", "failed"),
            ("user ada", "failed", "invalid"),
            ("user ada", "finished", "-"),
        ]
    );
    let counted = &all[4];
    assert_eq!(counted["front_end"], "http");
    assert_eq!(counted["datasets"], json!(["shop.orders.orders"]));
    assert_eq!(counted["products"], json!(["shop.orders"]));
    assert_eq!(counted["rows_returned"], 1);
    assert_eq!(counted["rows_scanned"], 4, "{counted}");
    assert!(counted["bytes_scanned"].as_i64().unwrap() > 0, "{counted}");
    assert!(counted["wall_ms"].as_f64().unwrap() > 0.0, "{counted}");
    assert!(
        counted["request_id"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    assert!(
        all[1]["error"]
            .as_str()
            .unwrap()
            .contains("may not read dataset shop.orders.orders")
    );
    // A refused query names what it tried to read.
    assert_eq!(all[1]["datasets"], json!(["shop.orders.orders"]));

    // Everybody else sees their own queries, and those on the products they manage.
    let own: Vec<String> = log_as(&server, &bob)
        .await
        .iter()
        .map(|q| q["sql"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(own, ["SELECT 42", "SELECT * FROM shop.orders.orders"]);
    let eve = server.token_for("eve", &[], &["shop team"]).await;
    let on_shop = log_as(&server, &eve).await;
    let seen: Vec<(&str, &str, &Value)> = on_shop
        .iter()
        .map(|q| {
            (
                q["principal"].as_str().unwrap(),
                q["status"].as_str().unwrap(),
                &q["datasets"],
            )
        })
        .collect();
    let shop = json!(["shop.orders.orders"]);
    assert_eq!(
        seen,
        [
            ("user bob", "denied", &shop),
            ("user ada", "failed", &shop),
            ("user ada", "finished", &shop),
        ]
    );
    // Their text and errors are for who ran them (and admins).
    for q in &on_shop {
        assert!(
            q["sql"]
                .as_str()
                .unwrap()
                .starts_with("(run by another principal"),
            "{q}"
        );
        assert!(q["error"].is_null(), "{q}");
    }
}

async fn the_log_is_written_when_the_server_stops(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    let (status, _) = server
        .post_json("/api/v1/query", &json!({"sql": "SELECT 1 AS one"}))
        .await;
    assert_eq!(status, 200);
    // Stopped at once, before the writer's next group: the shutdown writes it.
    let server = server.stop().await.restart().await;
    let log = log_as(&server, &server.admin_token).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["sql"], "SELECT 1 AS one");
    assert_eq!(log[0]["status"], "finished");
}
