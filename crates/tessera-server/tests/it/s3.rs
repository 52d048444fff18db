//! Tables in object storage: the same flow against a real S3-compatible server (moto), on both
//! metadata stores, including a restart.

use serde_json::json;

use crate::on_both_stores;
use crate::support::*;

on_both_stores!(tables_live_in_s3_and_survive_a_restart);

async fn tables_live_in_s3_and_survive_a_restart(store: Store) {
    let server = TestServer::start(store, Tables::S3).await;
    let (status, plan) = server.apply(&shop_folder(), false).await;
    assert_eq!(status, 200, "{plan}");
    let (status, report) = server
        .ingest("shop.orders.orders", "", "text/csv", ORDERS_CSV)
        .await;
    let counts = (report["accepted"].clone(), report["quarantined"].clone());
    assert_eq!((status, counts), (201, (json!(4), json!(3))), "{report}");
    let more = "order_id,customer_id\n21,U00000021\n22,U00000022\n";
    let (status, again) = server
        .ingest("shop.orders.orders", "batch_id=second", "text/csv", more)
        .await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM shop.orders.orders")
            .await,
        json!(6)
    );
    let (_, dataset) = server.get("/api/v1/datasets/shop/orders/orders").await;
    assert!(
        dataset["table_url"].as_str().unwrap().starts_with("s3://"),
        "{dataset}"
    );

    let stopped = server.stop().await;
    let server = stopped.restart().await;
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM shop.orders.orders")
            .await,
        json!(6)
    );
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM shop.orders.orders_quarantine")
            .await,
        json!(3)
    );
    let (status, dup) = server
        .ingest("shop.orders.orders", "batch_id=second", "text/csv", more)
        .await;
    assert_eq!((status, dup["duplicate"].clone()), (200, json!(true)));
}
