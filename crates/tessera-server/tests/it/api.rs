//! Publishing, ingesting and querying through the HTTP API, and what bad input gets.

use serde_json::{Value, json};

use crate::on_both_stores;
use crate::support::*;

on_both_stores!(
    apply_shows_a_plan_and_applying_twice_changes_nothing,
    ingest_quarantines_bad_rows_with_reasons_and_writes_a_batch_once,
    queries_join_domains_and_answer_as_json_csv_and_arrow,
    bad_input_gets_a_4xx_that_says_what_and_where,
    a_restarted_server_has_lost_nothing,
    new_contract_versions_may_add_columns_but_not_remove_them,
    the_catalog_lists_and_shows_what_was_applied,
    checks_run_on_demand_and_are_kept_with_a_score,
    the_commit_gate_refuses_a_batch_that_would_break_a_blocking_rule,
);

fn actions(plan: &Value) -> Vec<(String, String, String)> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_string(),
                c["name"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn apply_shows_a_plan_and_applying_twice_changes_nothing(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    let (status, plan) = server.apply(&shop_folder(), true).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["applied"], false);
    assert_eq!(
        actions(&plan),
        vec![
            ("product".into(), "shop.orders".into(), "create".into()),
            (
                "contract".into(),
                "shop-orders-contract@1.0.0".into(),
                "create".into()
            ),
            (
                "dataset".into(),
                "shop.orders.orders".into(),
                "create".into()
            ),
            (
                "dataset".into(),
                "shop.orders.customers".into(),
                "create".into()
            ),
        ]
    );
    // A dry run writes nothing.
    assert_eq!(server.get("/api/v1/products").await.1, json!([]));

    let (status, plan) = server.apply(&shop_folder(), false).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["applied"], true);
    assert!(actions(&plan).iter().all(|(_, _, a)| a == "create"));

    let (status, again) = server.apply(&shop_folder(), false).await;
    assert_eq!(status, 200);
    assert!(
        actions(&again).iter().all(|(_, _, a)| a == "unchanged"),
        "{again}"
    );
    // The tables exist and are empty.
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM shop.orders.orders")
            .await,
        json!(0)
    );
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM shop.orders.orders_quarantine")
            .await,
        json!(0)
    );

    // A changed descriptor is a change of the product only.
    let changed = SHOP_PRODUCT.replace("Orders of the web shop.", "All orders of the web shop.");
    let (_, plan) = server
        .apply(
            &[
                ("shop/product.odps.yaml", &changed),
                ("shop/orders.odcs.yaml", SHOP_CONTRACT),
            ],
            false,
        )
        .await;
    let changes: Vec<_> = actions(&plan)
        .into_iter()
        .filter(|(_, _, a)| a != "unchanged")
        .collect();
    assert_eq!(
        changes,
        vec![("product".into(), "shop.orders".into(), "change".into())]
    );
}

async fn ingest_quarantines_bad_rows_with_reasons_and_writes_a_batch_once(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    server.apply(&shop_folder(), false).await;
    let (status, report) = server
        .ingest("shop.orders.orders", "", "text/csv", ORDERS_CSV)
        .await;
    assert_eq!(status, 201, "{report}");
    assert_eq!(
        (
            report["rows"].clone(),
            report["accepted"].clone(),
            report["quarantined"].clone()
        ),
        (json!(7), json!(4), json!(3))
    );
    assert_eq!(report["duplicate"], false);
    let reasons: Vec<&str> = report["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        vec![
            "customer_id: \"X1\" is not a match for pattern ^U[0-9]{8}$",
            "amount: \"-1\" is not >= 0",
            "order_id: \"seven\" is not a valid integer; status: \"lost\" is not one of [\"open\", \"shipped\", \"returned\"]",
        ]
    );

    // Consumers see the accepted rows, typed; the quarantine keeps the others as received.
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM shop.orders.orders")
            .await,
        json!(4)
    );
    assert_eq!(
        server
            .scalar("SELECT sum(amount) FROM shop.orders.orders")
            .await,
        json!(115.49)
    );
    let quarantined = server
        .rows("SELECT order_id, _row_number, _rule, _column FROM shop.orders.orders_quarantine ORDER BY _row_number")
        .await;
    assert_eq!(
        quarantined,
        vec![
            json!({"order_id": "5", "_row_number": 5, "_rule": "pattern", "_column": "customer_id"}),
            json!({"order_id": "6", "_row_number": 6, "_rule": "minimum", "_column": "amount"}),
            json!({"order_id": "seven", "_row_number": 7, "_rule": "type", "_column": "order_id"}),
        ]
    );

    // The same content again is the same batch (its hash): nothing new is written.
    let (status, again) = server
        .ingest("shop.orders.orders", "", "text/csv", ORDERS_CSV)
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["duplicate"].clone(), again["accepted"].clone()),
        (json!(true), json!(4))
    );
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM shop.orders.orders")
            .await,
        json!(4)
    );
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM shop.orders.orders_quarantine")
            .await,
        json!(3)
    );

    // An explicit batch id is honoured: other content under a known id is not written.
    let first = "order_id,customer_id\n10,U00000010\n";
    let (status, _) = server
        .ingest("shop.orders.orders", "batch_id=b-10", "text/csv", first)
        .await;
    assert_eq!(status, 201);
    let (status, dup) = server
        .ingest(
            "shop.orders.orders",
            "batch_id=b-10",
            "text/csv",
            "order_id,customer_id\n11,U00000011\n",
        )
        .await;
    assert_eq!((status, dup["duplicate"].clone()), (200, json!(true)));
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM shop.orders.orders")
            .await,
        json!(5)
    );

    // NDJSON and Parquet go through the same contract.
    let ndjson = "{\"order_id\": 20, \"customer_id\": \"U00000020\", \"amount\": 1.5}\n{\"order_id\": 21, \"customer_id\": \"nobody\"}\n";
    let (status, report) = server
        .ingest("shop.orders.orders", "", "application/x-ndjson", ndjson)
        .await;
    assert_eq!(
        (
            status,
            report["accepted"].clone(),
            report["quarantined"].clone()
        ),
        (201, json!(1), json!(1))
    );
    let parquet = parquet_orders(&[30, 31, 32]);
    let (status, report) = server
        .ingest(
            "shop.orders.orders",
            "",
            "application/octet-stream",
            parquet,
        )
        .await;
    assert_eq!(
        (status, report["accepted"].clone()),
        (201, json!(3)),
        "{report}"
    );
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM shop.orders.orders")
            .await,
        json!(9)
    );
}

/// A Parquet file with `order_id` (int64) and `customer_id` columns.
fn parquet_orders(ids: &[i64]) -> Vec<u8> {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use std::sync::Arc;
    let schema = Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("customer_id", DataType::Utf8, false),
    ]));
    let customers: Vec<String> = ids.iter().map(|i| format!("U{i:08}")).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(customers)),
        ],
    )
    .unwrap();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

const CRM_PRODUCT: &str = r#"apiVersion: v1.0.0
kind: DataProduct
id: crm-people
name: people
domain: crm
status: active
outputPorts:
  - name: people
    version: 1.0.0
    contractId: crm-people
"#;

const CRM_CONTRACT: &str = r#"apiVersion: v3.1.0
kind: DataContract
id: crm-people
version: 1.0.0
status: active
schema:
  - name: customers
    properties:
      - name: customer_id
        logicalType: string
        required: true
      - name: name
        logicalType: string
      - name: since
        logicalType: date
"#;

async fn queries_join_domains_and_answer_as_json_csv_and_arrow(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    server.apply(&shop_folder(), false).await;
    server
        .apply(
            &[
                ("crm/product.odps.yaml", CRM_PRODUCT),
                ("crm/people.odcs.yaml", CRM_CONTRACT),
            ],
            false,
        )
        .await;
    server
        .ingest("shop.orders.orders", "", "text/csv", ORDERS_CSV)
        .await;
    let people = "customer_id,name,since\nU00000001,Ada,2020-01-01\nU00000002,Grace,2021-06-30\n";
    let (status, _) = server
        .ingest("crm.people.customers", "", "text/csv", people)
        .await;
    assert_eq!(status, 201);

    let sql = "SELECT c.name, count(*) AS orders, sum(o.amount) AS total FROM shop.orders.orders o JOIN crm.people.customers c ON c.customer_id = o.customer_id GROUP BY c.name ORDER BY c.name";
    let (status, body) = server
        .post_json("/api/v1/query", &json!({"sql": sql}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["rows"],
        json!([
            {"name": "Ada", "orders": 2, "total": 10.5},
            {"name": "Grace", "orders": 1, "total": 99.99},
        ])
    );
    assert_eq!(body["row_count"], 2);
    assert_eq!(
        body["columns"][0],
        json!({"name": "name", "data_type": "Utf8"})
    );

    let csv = server
        .http
        .post(format!("{}/api/v1/query", server.url))
        .header("accept", "text/csv")
        .json(&json!({"sql": sql}))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        csv.text().await.unwrap(),
        "name,orders,total\nAda,2,10.50\nGrace,1,99.99\n"
    );

    let arrow_answer = server
        .http
        .post(format!("{}/api/v1/query", server.url))
        .header("accept", "application/vnd.apache.arrow.stream")
        .json(&json!({"sql": sql}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        arrow_answer.headers()["content-type"],
        "application/vnd.apache.arrow.stream"
    );
    let bytes = arrow_answer.bytes().await.unwrap();
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
    let batches: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    assert_eq!(batches[0].schema().field(0).name(), "name");

    // information_schema lists every dataset and quarantine table.
    let tables = server
        .rows("SELECT table_catalog || '.' || table_schema || '.' || table_name AS t FROM information_schema.tables WHERE table_schema NOT IN ('information_schema') AND table_catalog <> 'tessera' ORDER BY t")
        .await;
    let names: Vec<&str> = tables.iter().map(|r| r["t"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        vec![
            "crm.people.customers",
            "crm.people.customers_quarantine",
            "shop.orders.customers",
            "shop.orders.customers_quarantine",
            "shop.orders.orders",
            "shop.orders.orders_quarantine",
        ]
    );
}

async fn error_of(response: (u16, Value)) -> (u16, String, String) {
    let (status, body) = response;
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

async fn bad_input_gets_a_4xx_that_says_what_and_where(store: Store) {
    let server =
        TestServer::start_with(store, Tables::Local, |c| c.max_body_bytes = 64 * 1024).await;

    // Malformed YAML: the file and the line.
    let broken = SHOP_CONTRACT.replace(
        "      - name: amount\n",
        "      - name: amount\n     bad: [\n",
    );
    let (status, body) = server
        .apply(
            &[
                ("shop/product.odps.yaml", SHOP_PRODUCT),
                ("shop/orders.odcs.yaml", &broken),
            ],
            false,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_files");
    let d = &body["error"]["diagnostics"][0];
    assert_eq!(d["file"], "shop/orders.odcs.yaml");
    assert!(d["line"].as_u64().is_some(), "{body}");
    assert!(
        d["message"].as_str().unwrap().contains("not valid YAML"),
        "{body}"
    );

    // A contract that breaks the standard: the line and the field.
    let wrong_type = SHOP_CONTRACT.replace("logicalType: timestamp", "logicalType: datetime");
    let (status, body) = server
        .apply(
            &[
                ("shop/product.odps.yaml", SHOP_PRODUCT),
                ("shop/orders.odcs.yaml", &wrong_type),
            ],
            false,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let d = &body["error"]["diagnostics"][0];
    assert_eq!(d["line"], 34, "{body}");
    assert_eq!(d["field"], "schema[0].properties[4].logicalType", "{body}");

    // A folder whose port points at a contract nobody has.
    let orphan_port = SHOP_PRODUCT.replace("contractId: shop-orders-contract", "contractId: nope");
    let (status, body) = server
        .apply(
            &[
                ("shop/product.odps.yaml", &orphan_port),
                ("shop/orders.odcs.yaml", SHOP_CONTRACT),
            ],
            false,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let messages: Vec<&str> = body["error"]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("\"nope\", which is neither in this folder nor published")),
        "{body}"
    );
    assert!(
        messages.iter().any(|m| m.contains(
            "no output port of shop.orders references contract \"shop-orders-contract\""
        )),
        "{body}"
    );
    let (status, body) = server
        .apply(&[("shop/orders.odcs.yaml", SHOP_CONTRACT)], false)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );

    // Nothing of the failed applies was written.
    assert_eq!(server.get("/api/v1/products").await.1, json!([]));
    server.apply(&shop_folder(), false).await;

    // A published version may not change.
    let edited = SHOP_CONTRACT.replace("One row per order.", "One row per order, edited.");
    let (status, _, message) = error_of(
        server
            .apply(
                &[
                    ("shop/product.odps.yaml", SHOP_PRODUCT),
                    ("shop/orders.odcs.yaml", &edited),
                ],
                false,
            )
            .await,
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        message.contains("version 1.0.0 is already published with different content"),
        "{message}"
    );

    // Unknown datasets, domains, products and routes.
    let (status, code, message) = error_of(
        server
            .ingest("shop.orders.nothing", "", "text/csv", "a\n1\n")
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    assert!(message.contains("shop.orders.nothing"), "{message}");
    assert_eq!(server.get("/api/v1/products/shop/nothing").await.0, 404);
    assert_eq!(server.get("/api/v1/domains/nowhere").await.0, 404);
    let (status, body) = server.get("/api/v2/whatever").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _, message) = error_of(server.get("/api/v1/products/Shop/orders").await).await;
    assert_eq!(status, 400);
    assert!(message.contains("invalid name \"Shop\""), "{message}");

    // Files that do not fit the contract are refused whole, with what is wrong.
    let (status, code, message) = error_of(
        server
            .ingest(
                "shop.orders.orders",
                "",
                "text/csv",
                "order_id,colour\n1,red\n",
            )
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (422, "unusable_batch"));
    assert!(message.contains("colour"), "{message}");
    let (status, _, message) = error_of(
        server
            .ingest(
                "shop.orders.orders",
                "",
                "application/x-ndjson",
                "{\"order_id\": 1}\n{oops\n",
            )
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert!(message.contains("line 2"), "{message}");
    let (status, _, message) = error_of(
        server
            .ingest("shop.orders.orders", "", "text/csv", "")
            .await,
    )
    .await;
    assert_eq!(status, 422, "{message}");
    let (status, _, message) = error_of(
        server
            .ingest("shop.orders.orders", "format=xml", "text/csv", "a")
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(message.contains("xml"), "{message}");
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM shop.orders.orders")
            .await,
        json!(0)
    );

    // Bodies over the limit.
    let big = format!("order_id,customer_id\n{}", "1,U00000001\n".repeat(10_000));
    let (status, code, message) = error_of(
        server
            .ingest("shop.orders.orders", "", "text/csv", big)
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));
    assert!(message.contains("65536"), "{message}");

    // SQL that does not parse or plan, or that would write.
    for (sql, expected) in [
        ("SELEC 1", "Expected"),
        ("SELECT * FROM orders", "domain.product.dataset"),
        ("SELECT nope FROM shop.orders.orders", "nope"),
        ("DROP TABLE shop.orders.orders", "read-only"),
        (
            "INSERT INTO shop.orders.orders (order_id) VALUES (1)",
            "read-only",
        ),
        ("", "empty"),
    ] {
        let (status, code, message) = error_of(
            server
                .post_json("/api/v1/query", &json!({"sql": sql}))
                .await,
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (400, "invalid_query"),
            "{sql}: {message}"
        );
        assert!(message.contains(expected), "{sql}: {message}");
    }
    let (status, code, _) = error_of(
        server
            .post_json("/api/v1/query", &json!({"query": "SELECT 1"}))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
}

async fn a_restarted_server_has_lost_nothing(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    server.apply(&shop_folder(), false).await;
    server
        .ingest("shop.orders.orders", "", "text/csv", ORDERS_CSV)
        .await;
    let stopped = server.stop().await;
    let server = stopped.restart().await;
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM shop.orders.orders")
            .await,
        json!(4)
    );
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM shop.orders.orders_quarantine")
            .await,
        json!(3)
    );
    let (status, again) = server
        .ingest("shop.orders.orders", "", "text/csv", ORDERS_CSV)
        .await;
    assert_eq!((status, again["duplicate"].clone()), (200, json!(true)));
    let (_, plan) = server.apply(&shop_folder(), false).await;
    assert!(
        actions(&plan).iter().all(|(_, _, a)| a == "unchanged"),
        "{plan}"
    );
}

async fn new_contract_versions_may_add_columns_but_not_remove_them(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    server.apply(&shop_folder(), false).await;
    server
        .ingest("shop.orders.orders", "", "text/csv", ORDERS_CSV)
        .await;

    let v11 = SHOP_CONTRACT.replace("version: 1.0.0", "version: 1.1.0").replace(
        "      - name: placed_at\n        logicalType: timestamp\n",
        "      - name: placed_at\n        logicalType: timestamp\n      - name: channel\n        logicalType: string\n",
    );
    let (status, plan) = server
        .apply(
            &[
                ("shop/product.odps.yaml", SHOP_PRODUCT),
                ("shop/orders.odcs.yaml", &v11),
            ],
            false,
        )
        .await;
    assert_eq!(status, 200, "{plan}");
    let orders = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "shop.orders.orders")
        .unwrap();
    assert_eq!(orders["action"], "change");
    assert_eq!(
        orders["detail"],
        "contract shop-orders-contract@1.0.0 -> shop-orders-contract@1.1.0, adds column(s) channel"
    );
    let (status, _) = server
        .ingest(
            "shop.orders.orders",
            "",
            "text/csv",
            "order_id,customer_id,channel\n100,U00000100,app\n",
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        server
            .scalar("SELECT count(channel) FROM shop.orders.orders")
            .await,
        json!(1)
    );
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM shop.orders.orders")
            .await,
        json!(5)
    );

    // Removing a column is breaking: a minor version is refused with the list.
    let v12 = v11
        .replace("version: 1.1.0", "version: 1.2.0")
        .replace("      - name: channel\n        logicalType: string\n", "");
    let (status, _, message) = error_of(
        server
            .apply(
                &[
                    ("shop/product.odps.yaml", SHOP_PRODUCT),
                    ("shop/orders.odcs.yaml", &v12),
                ],
                false,
            )
            .await,
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        message.contains("\"shop-orders-contract\" 1.1.0 -> 1.2.0 has breaking changes, which need a new major version (e.g. 2.0.0):\n  - column channel removed"),
        "{message}"
    );
    // A major version passes that gate, and the stored table still cannot lose the column.
    let v2 = v12.replace("version: 1.2.0", "version: 2.0.0");
    let (status, _, message) = error_of(
        server
            .apply(
                &[
                    ("shop/product.odps.yaml", SHOP_PRODUCT),
                    ("shop/orders.odcs.yaml", &v2),
                ],
                false,
            )
            .await,
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        message.contains("column \"channel\" is removed"),
        "{message}"
    );
    let (_, versions) = server
        .get("/api/v1/contracts/shop/shop-orders-contract")
        .await;
    let versions: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, vec!["1.0.0", "1.1.0"]);
}

async fn the_catalog_lists_and_shows_what_was_applied(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    server.apply(&shop_folder(), false).await;
    let (_, domains) = server.get("/api/v1/domains").await;
    assert_eq!(domains[0]["name"], "shop");
    assert_eq!(domains[0]["product_count"], 1);
    let (_, products) = server.get("/api/v1/products?domain=shop").await;
    assert_eq!(products[0]["owner"], "shop team");
    assert_eq!(products[0]["description"], "Orders of the web shop.");
    let (_, product) = server.get("/api/v1/products/shop/orders").await;
    assert_eq!(
        product["output_ports"][0]["contract_id"],
        "shop-orders-contract"
    );
    assert_eq!(product["descriptor"], SHOP_PRODUCT);
    assert_eq!(product["datasets"].as_array().unwrap().len(), 2);
    let (_, datasets) = server
        .get("/api/v1/datasets?domain=shop&product=orders")
        .await;
    let refs: Vec<&str> = datasets
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["reference"].as_str().unwrap())
        .collect();
    assert_eq!(refs, vec!["shop.orders.customers", "shop.orders.orders"]);
    let (status, dataset) = server.get("/api/v1/datasets/shop/orders/orders").await;
    assert_eq!(status, 200);
    assert_eq!(dataset["quarantine"], "shop.orders.orders_quarantine");
    assert_eq!(dataset["table_version"], 0);
    let amount = dataset["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "amount")
        .unwrap();
    assert_eq!(amount["arrow_type"], "Decimal128(10, 2)");
    let (_, contracts) = server.get("/api/v1/contracts").await;
    assert_eq!(
        contracts,
        json!([{"domain": "shop", "id": "shop-orders-contract", "latest_version": "1.0.0", "status": "active", "versions": ["1.0.0"]}])
    );
    let (_, contract) = server
        .get("/api/v1/contracts/shop/shop-orders-contract/versions/1.0.0")
        .await;
    assert_eq!(contract["source"], SHOP_CONTRACT);
    assert_eq!(
        server
            .get("/api/v1/contracts/shop/shop-orders-contract/versions/9.9.9")
            .await
            .0,
        404
    );
    let (status, health) = server.get("/health").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
}

/// The OpenAPI document is 3.1 and lists exactly the routes the server answers.
#[tokio::test]
async fn the_openapi_document_is_true_to_the_server() {
    let server = TestServer::start(Store::Sqlite, Tables::Local).await;
    let mut folder = shop_folder();
    folder.push((
        "shop/sources/drops.yaml",
        "apiVersion: tessera/v1\nkind: Source\nname: drops\ndataset: orders\nconnector: files\nevery: 1h\nfiles: {path: incoming}\n",
    ));
    let (status, plan) = server.apply(&folder, false).await;
    assert_eq!(status, 200, "{plan}");
    let (status, doc) = server.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut documented: Vec<String> = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    documented.sort();
    assert_eq!(
        documented,
        vec![
            "DELETE /api/v1/governance/policies/{policy_id}",
            "DELETE /api/v1/grants/{grant_id}",
            "DELETE /api/v1/policies/{policy_id}",
            "DELETE /api/v1/secrets/{secret_name}",
            "DELETE /api/v1/tokens/{token_id}",
            "GET /api/v1/access-requests",
            "GET /api/v1/access/explain",
            "GET /api/v1/audit",
            "GET /api/v1/audit/verify",
            "GET /api/v1/contracts",
            "GET /api/v1/contracts/{domain}/{id}",
            "GET /api/v1/contracts/{domain}/{id}/versions/{version}",
            "GET /api/v1/datasets",
            "GET /api/v1/datasets/{domain}/{product}/{dataset}",
            "GET /api/v1/datasets/{domain}/{product}/{dataset}/checks",
            "GET /api/v1/domains",
            "GET /api/v1/domains/{domain}",
            "GET /api/v1/glossary",
            "GET /api/v1/governance/policies",
            "GET /api/v1/governance/policies/{policy_id}",
            "GET /api/v1/governance/scorecard",
            "GET /api/v1/grants",
            "GET /api/v1/lineage",
            "GET /api/v1/lineage/{domain}/{product}/{dataset}",
            "GET /api/v1/policies",
            "GET /api/v1/products",
            "GET /api/v1/products/{domain}/{product}",
            "GET /api/v1/products/{domain}/{product}/checks",
            "GET /api/v1/queries",
            "GET /api/v1/secrets",
            "GET /api/v1/sources",
            "GET /api/v1/sources/{domain}/{product}",
            "GET /api/v1/sources/{domain}/{product}/{source}",
            "GET /api/v1/tokens",
            "GET /api/v1/transform-runs",
            "GET /api/v1/transforms",
            "GET /api/v1/transforms/{domain}/{product}",
            "GET /api/v1/whoami",
            "GET /health",
            "POST /api/v1/access-requests",
            "POST /api/v1/access-requests/{request_id}/approve",
            "POST /api/v1/access-requests/{request_id}/deny",
            "POST /api/v1/apply",
            "POST /api/v1/datasets/{domain}/{product}/{dataset}/batches",
            "POST /api/v1/datasets/{domain}/{product}/{dataset}/checks",
            "POST /api/v1/datasets/{domain}/{product}/{dataset}/events",
            "POST /api/v1/governance/check",
            "POST /api/v1/governance/policies/test",
            "POST /api/v1/governance/policies/{policy_id}/disable",
            "POST /api/v1/governance/policies/{policy_id}/enable",
            "POST /api/v1/grants",
            "POST /api/v1/lineage",
            "POST /api/v1/products/{domain}/{product}/checks",
            "POST /api/v1/query",
            "POST /api/v1/sources/{domain}/{product}/{source}/run",
            "POST /api/v1/tokens",
            "POST /api/v1/transforms/run",
            "POST /api/v1/transforms/{domain}/{product}/run",
            "POST /api/v1/transforms/{domain}/{product}/{dataset}/run",
            "PUT /api/v1/glossary",
            "PUT /api/v1/governance/policies",
            "PUT /api/v1/policies/{policy_id}",
            "PUT /api/v1/secrets/{secret_name}",
        ]
    );
    // Every operation but /health needs the bearer token, and says what an answer without one is.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            if path == "/health" {
                assert_eq!(operation["security"], json!([{}]), "{method} {path}");
                assert!(!responses.contains_key("401"), "{method} {path}");
            } else {
                assert_eq!(doc["security"], json!([{"bearer": []}]));
                assert!(
                    responses.contains_key("401") && responses.contains_key("403"),
                    "{method} {path}: {responses:?}"
                );
            }
        }
    }
    // Every documented GET answers on the server (with the example's names filled in).
    for line in documented.iter().filter(|l| l.starts_with("GET ")) {
        let path = line[4..]
            .replace("{domain}", "shop")
            .replace("{product}", "orders")
            .replace("{dataset}", "orders")
            .replace("{id}", "shop-orders-contract")
            .replace("{version}", "1.0.0")
            .replace("{policy_id}", "product-owner")
            .replace("{source}", "drops")
            .replace(
                "explain",
                "explain?user=admin&action=read&resource=shop.orders",
            );
        let path = if path == "/api/v1/lineage" {
            "/api/v1/lineage?node=dataset:tessera://local:shop.orders.orders".to_string()
        } else {
            path
        };
        let (status, body) = server.get(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    // Every answer body the document names is a schema it defines.
    for name in [
        "ApplyPlan",
        "IngestReport",
        "QueryResult",
        "ErrorBody",
        "DatasetView",
        "ProductView",
    ] {
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{name} missing"
        );
    }
}

/// The shop contract with dataset-level rules: a warning-only row count, a warning `sql` rule,
/// a freshness SLO the 2026-01 test data breaks and a completeness SLO it keeps.
fn shop_contract_with_checks() -> String {
    SHOP_CONTRACT
        .replace(
            "  - name: orders\n    description: One row per order.\n",
            "  - name: orders\n    description: One row per order.\n    quality:\n      - id: enough_orders\n        metric: rowCount\n        mustBeGreaterThan: 10\n        severity: warning\n      - type: sql\n        query: SELECT count(*) FROM {object} WHERE amount = 0\n        mustBe: 0\n        severity: warning\n",
        )
        + "slaProperties:\n  - property: latency\n    value: 1\n    unit: d\n    element: orders.placed_at\n  - property: completeness\n    value: 99\n    element: orders.amount\n"
}

/// Applies the shop product with `contract` as its orders contract; it must apply.
async fn apply_shop_with(server: &TestServer, contract: &str) {
    let (status, plan) = server
        .apply(
            &[
                ("shop/product.odps.yaml", SHOP_PRODUCT),
                ("shop/orders.odcs.yaml", contract),
            ],
            false,
        )
        .await;
    assert_eq!(status, 200, "{plan}");
}

fn check_of<'a>(run: &'a Value, check_type: &str, field: Option<&str>) -> &'a Value {
    run["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == check_type && c["field"].as_str() == field)
        .unwrap_or_else(|| panic!("no {check_type} on {field:?} in {run}"))
}

async fn checks_run_on_demand_and_are_kept_with_a_score(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    let contract = shop_contract_with_checks();
    apply_shop_with(&server, &contract).await;
    server
        .ingest("shop.orders.orders", "", "text/csv", ORDERS_CSV)
        .await;

    let (status, report) = server
        .post_json("/api/v1/datasets/shop/orders/orders/checks", &json!({}))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["target"], "shop.orders.orders");
    assert_eq!(report["result"], "failed");
    let run = &report["runs"][0];
    assert_eq!(run["table_version"], 1);
    let rows = check_of(run, "row_count", None);
    assert_eq!(
        (rows["result"].as_str(), rows["measured"].as_f64()),
        (Some("warning"), Some(4.0))
    );
    assert_eq!(rows["quality_id"], "enough_orders");
    let sql = check_of(run, "model_quality_sql", None);
    assert_eq!(
        (sql["result"].as_str(), sql["measured"].as_f64()),
        (Some("warning"), Some(1.0))
    );
    let fresh = check_of(run, "servicelevel_freshness", Some("placed_at"));
    assert_eq!(fresh["result"], "failed", "{fresh}");
    assert_eq!(fresh["dimension"], "timeliness");
    assert_eq!(fresh["threshold"], "<= 86400 s");
    let complete = check_of(run, "servicelevel_completeness", Some("amount"));
    assert_eq!(
        (complete["result"].as_str(), complete["measured"].as_f64()),
        (Some("passed"), Some(100.0)),
        "{complete}"
    );
    for (check_type, field) in [
        ("field_required", "order_id"),
        ("field_regex", "customer_id"),
        ("field_minimum", "amount"),
        ("field_invalid_values", "status"),
        ("primary_key_unique", "order_id"),
        ("field_type", "amount"),
    ] {
        assert_eq!(
            check_of(run, check_type, Some(field))["result"],
            "passed",
            "{check_type} {field}"
        );
    }
    // The score is the severity-weighted share of passing checks (error 3, warning 2, info 1).
    let (mut passed, mut total) = (0.0, 0.0);
    for c in run["checks"].as_array().unwrap() {
        let weight = match c["severity"].as_str().unwrap() {
            "error" => 3.0,
            "warning" => 2.0,
            _ => 1.0,
        };
        total += weight;
        if c["result"] == "passed" {
            passed += weight;
        }
    }
    let expected = (passed / total * 1000.0_f64).round() / 10.0;
    assert_eq!(run["score"].as_f64(), Some(expected));
    assert!(expected > 50.0 && expected < 100.0, "{expected}");

    // Runs are kept, newest first: the commit's run (warnings recorded), then two on demand.
    server
        .post_json("/api/v1/datasets/shop/orders/orders/checks", &json!({}))
        .await;
    let (status, history) = server
        .get("/api/v1/datasets/shop/orders/orders/checks")
        .await;
    assert_eq!(status, 200);
    let history = history.as_array().unwrap();
    let triggers: Vec<&str> = history
        .iter()
        .map(|r| r["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(triggers, vec!["on_demand", "on_demand", "commit"]);
    assert_eq!(
        check_of(&history[2], "model_quality_sql", None)["result"],
        "warning"
    );
    assert!(history[0]["started_at"].as_str() > history[1]["started_at"].as_str());
    assert_eq!(history[1]["run_id"], run["run_id"]);
    assert_eq!(history[1]["checks"], run["checks"]);

    // A product's check runs every dataset; an empty dataset fails its presence of data only
    // where a rule asks for it.
    let (status, product) = server
        .post_json("/api/v1/products/shop/orders/checks", &json!({}))
        .await;
    assert_eq!(status, 200);
    let datasets: Vec<&str> = product["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dataset"].as_str().unwrap())
        .collect();
    assert_eq!(
        datasets,
        vec!["shop.orders.customers", "shop.orders.orders"]
    );
    assert_eq!(
        product["runs"][0]["result"], "passed",
        "{}",
        product["runs"][0]
    );

    // The product's score over time: one point per full run (commit runs measure only the
    // gate's checks and are left out), each over the latest run of every dataset then.
    let (status, points) = server.get("/api/v1/products/shop/orders/checks").await;
    assert_eq!(status, 200, "{points}");
    let points = points.as_array().unwrap();
    let seen: Vec<(&str, &str)> = points
        .iter()
        .map(|p| {
            (
                p["dataset"].as_str().unwrap(),
                p["trigger"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("shop.orders.orders", "on_demand"),
            ("shop.orders.customers", "on_demand"),
            ("shop.orders.orders", "on_demand"),
            ("shop.orders.orders", "on_demand"),
        ]
    );
    assert_eq!(points[0]["score"], product["score"]);
    assert_eq!(points[0]["result"], "failed");
    assert_eq!(points[3]["score"], run["score"]);
    // With fewer points, the newest still counts every dataset's latest run.
    let (_, newest) = server
        .get("/api/v1/products/shop/orders/checks?limit=1")
        .await;
    assert_eq!(newest[0]["score"], product["score"], "{newest}");
    let (_, shown) = server.get("/api/v1/products/shop/orders").await;
    assert_eq!(shown["quality"]["score"], product["score"]);
    assert_eq!(
        server
            .post_json("/api/v1/datasets/shop/orders/nope/checks", &json!({}))
            .await
            .0,
        404
    );
    assert_eq!(
        server
            .post_json("/api/v1/products/shop/nope/checks", &json!({}))
            .await
            .0,
        404
    );
    assert_eq!(server.get("/api/v1/products/shop/nope/checks").await.0, 404);
}

async fn the_commit_gate_refuses_a_batch_that_would_break_a_blocking_rule(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    // order_id is the primary key (uniqueness gates commits); the row count rule fails before
    // any data, so it cannot block the first batches.
    let contract = SHOP_CONTRACT.replace(
        "  - name: orders\n    description: One row per order.\n",
        "  - name: orders\n    description: One row per order.\n    quality:\n      - metric: rowCount\n        mustBeGreaterThan: 100\n",
    );
    apply_shop_with(&server, &contract).await;
    let (status, first) = server
        .ingest("shop.orders.orders", "", "text/csv", ORDERS_CSV)
        .await;
    assert_eq!(
        (status, first["accepted"].clone(), first["refused"].clone()),
        (201, json!(4), Value::Null),
        "{first}"
    );
    assert!(first["check_run"].is_string(), "{first}");

    // A key that is already there: the whole batch is refused, the good row too.
    let clash = "order_id,customer_id\n2,U00000002\n50,U00000050\n";
    let (status, refused) = server
        .ingest("shop.orders.orders", "batch_id=clash", "text/csv", clash)
        .await;
    assert_eq!(status, 201, "{refused}");
    assert_eq!(
        (refused["accepted"].clone(), refused["quarantined"].clone()),
        (json!(0), json!(2))
    );
    assert_eq!(
        refused["refused"],
        "the batch would make check orders.order_id.primary_key_unique fail: 1 duplicate row(s), which does not meet = 0"
    );
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM shop.orders.orders")
            .await,
        json!(4)
    );
    let quarantined = server
        .rows("SELECT order_id, _rule FROM shop.orders.orders_quarantine WHERE _batch_id = 'clash' ORDER BY _row_number")
        .await;
    assert_eq!(
        quarantined,
        vec![
            json!({"order_id": "2", "_rule": "primary_key_unique"}),
            json!({"order_id": "50", "_rule": "primary_key_unique"}),
        ]
    );
    // The refusal's report is kept, and does not count as the dataset's quality.
    let (_, history) = server
        .get("/api/v1/datasets/shop/orders/orders/checks")
        .await;
    assert_eq!(history[0]["trigger"], "refused_commit");
    assert_eq!(history[0]["run_id"], refused["check_run"]);
    assert_eq!(
        check_of(&history[0], "primary_key_unique", Some("order_id"))["result"],
        "failed"
    );
    // The product's quality comes from full runs of the checks, not from the gate's.
    server
        .post_json("/api/v1/datasets/shop/orders/orders/checks", &json!({}))
        .await;
    let (_, product) = server.get("/api/v1/products/shop/orders").await;
    let orders = product["quality"]["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dataset"] == "shop.orders.orders")
        .unwrap()
        .clone();
    assert_eq!(orders["not_passed"], json!(["row_count"]), "{product}");

    // Duplicates within the batch are refused too; a clean batch goes in.
    let (_, twice) = server
        .ingest(
            "shop.orders.orders",
            "",
            "text/csv",
            "order_id,customer_id\n60,U00000060\n60,U00000061\n",
        )
        .await;
    assert_eq!(twice["accepted"], 0, "{twice}");
    let (_, clean) = server
        .ingest(
            "shop.orders.orders",
            "",
            "text/csv",
            "order_id,customer_id\n70,U00000070\n",
        )
        .await;
    assert_eq!(
        (clean["accepted"].clone(), clean["refused"].clone()),
        (json!(1), Value::Null),
        "{clean}"
    );
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM shop.orders.orders")
            .await,
        json!(5)
    );
    // Sending the refused batch again is recognised: it is not gated or written twice.
    let (status, again) = server
        .ingest("shop.orders.orders", "batch_id=clash", "text/csv", clash)
        .await;
    assert_eq!(
        (
            status,
            again["duplicate"].clone(),
            again["quarantined"].clone()
        ),
        (200, json!(true), json!(2))
    );

    // After a restart the gate measures the dataset again: a key from before is still known.
    let stopped = server.stop().await;
    let server = stopped.restart().await;
    let (_, late) = server
        .ingest(
            "shop.orders.orders",
            "",
            "text/csv",
            "order_id,customer_id\n70,U00000071\n",
        )
        .await;
    assert_eq!(
        (late["accepted"].clone(), late["quarantined"].clone()),
        (json!(0), json!(1)),
        "{late}"
    );
}

/// After a restart the gate counts the keys of the table while it indexes them again; a table
/// that already holds a value twice (under a warning, which does not refuse) is counted exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_gate_counts_values_the_table_holds_twice() {
    let server = TestServer::start(Store::Sqlite, Tables::Local).await;
    let contract = SHOP_CONTRACT.replace(
        "        logicalTypeOptions:\n          pattern: \"^U[0-9]{8}$\"\n",
        "        logicalTypeOptions:\n          pattern: \"^U[0-9]{8}$\"\n        quality:\n          - metric: duplicateValues\n            mustBe: 0\n            severity: warning\n",
    );
    assert_ne!(contract, SHOP_CONTRACT);
    apply_shop_with(&server, &contract).await;
    // Orders 1 and 3 are both U00000001's: one duplicate value, a warning.
    let (_, first) = server
        .ingest("shop.orders.orders", "", "text/csv", ORDERS_CSV)
        .await;
    assert_eq!(first["accepted"], json!(4), "{first}");

    let server = server.stop().await.restart().await;
    let (_, next) = server
        .ingest(
            "shop.orders.orders",
            "",
            "text/csv",
            "order_id,customer_id\n80,U00000080\n81,U00000002\n",
        )
        .await;
    assert_eq!(
        (next["accepted"].clone(), next["refused"].clone()),
        (json!(2), Value::Null),
        "{next}"
    );
    let (_, history) = server
        .get("/api/v1/datasets/shop/orders/orders/checks")
        .await;
    assert_eq!(history[0]["run_id"], next["check_run"]);
    // U00000001 twice before, U00000002 twice now; order_id still unique.
    let duplicates = check_of(&history[0], "field_duplicate_values", Some("customer_id"));
    assert_eq!(
        (duplicates["result"].clone(), duplicates["measured"].clone()),
        (json!("warning"), json!(2.0)),
        "{duplicates}"
    );
    assert_eq!(
        check_of(&history[0], "primary_key_unique", Some("order_id"))["result"],
        "passed"
    );
}

/// A contract with a check schedule gets its checks run by the server, without being asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_checks_run_by_themselves() {
    let server =
        TestServer::start_with(Store::Sqlite, Tables::Local, |c| c.check_tick_seconds = 1).await;
    let contract = SHOP_CONTRACT.replace(
        "schema:\n",
        "customProperties:\n  - property: checkSchedule\n    value: \"* * * * * *\"\nschema:\n",
    );
    apply_shop_with(&server, &contract).await;
    let mut triggers = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let (_, history) = server
            .get("/api/v1/datasets/shop/orders/orders/checks")
            .await;
        triggers = history
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["trigger"].as_str().unwrap().to_string())
            .collect();
        if triggers.iter().any(|t| t == "schedule") {
            break;
        }
    }
    assert!(triggers.iter().any(|t| t == "schedule"), "{triggers:?}");

    // A schedule that is not a cron expression is refused where it is written.
    let bad = contract
        .replace("\"* * * * * *\"", "hourly")
        .replace("version: 1.0.0", "version: 1.0.1");
    let (status, body) = server
        .apply(
            &[
                ("shop/product.odps.yaml", SHOP_PRODUCT),
                ("shop/orders.odcs.yaml", &bad),
            ],
            false,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let d = &body["error"]["diagnostics"][0];
    assert_eq!(
        (d["line"].clone(), d["field"].clone()),
        (json!(10), json!("customProperties[0].value")),
        "{body}"
    );
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("\"hourly\" is not a cron expression"),
        "{body}"
    );
}
