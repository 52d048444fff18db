//! Regression tests for hostile and careless input (issue 7), each named after the defect it
//! covers: through the HTTP API of a real server, as a user or an attacker would send it.

use serde_json::{Value, json};

use crate::support::*;

/// The raw answer of a query: status, content type, body.
async fn query_raw(server: &TestServer, sql: &str, accept: &str) -> (u16, String, Vec<u8>) {
    let r = server
        .http
        .post(format!("{}/api/v1/query", server.url))
        .header("accept", accept)
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .expect("the server answers");
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = r.bytes().await.expect("a whole body").to_vec();
    (status, content_type, body)
}

async fn query_json(server: &TestServer, sql: &str) -> (u16, Value) {
    server
        .post_json("/api/v1/query", &json!({ "sql": sql }))
        .await
}

/// Asserts that `sql` is answered with `status` and `code`, and a message that contains `says`
/// (compared in lower case).
async fn refused(server: &TestServer, sql: &str, status: u16, code: &str, says: &str) {
    let (answered, body) = query_json(server, sql).await;
    assert_eq!(answered, status, "{sql}: {body}");
    assert_eq!(body["error"]["code"], code, "{sql}: {body}");
    let message = body["error"]["message"].as_str().unwrap().to_lowercase();
    assert!(message.contains(&says.to_lowercase()), "{sql}: {message}");
}

async fn shop_with_orders(server: &TestServer) {
    let (status, plan) = server.apply(&shop_folder(), false).await;
    assert_eq!(status, 200, "{plan}");
    let (status, report) = server
        .ingest("shop.orders.orders", "batch_id=b1", "text/csv", ORDERS_CSV)
        .await;
    assert_eq!(status, 201, "{report}");
}

/// Every answer is a result or a 4xx with a message, and the server still answers after it.
async fn answers_without_crashing(server: &TestServer, what: &str, sql: &str) -> u16 {
    let (status, body) = query_json(server, sql).await;
    assert!(
        status == 200 || (400..500).contains(&status),
        "{what}: expected a result or a 4xx, got {status}: {body}"
    );
    if status != 200 {
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{what}: a 4xx without a message");
    }
    let (health, _) = server.get("/health").await;
    assert_eq!(health, 200, "{what}: the server stopped answering");
    status
}

/// Expressions and lists of growing depth and length: arithmetic chains, AND/OR chains, nested
/// CASE, IN lists, nested subqueries, UNION chains and join chains. A stack overflow would
/// abort this whole test process, so getting through the loop is the assertion that the server
/// stayed up; each answer must be a result or a 4xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_queries_never_crash_the_server() {
    let server = TestServer::start(Store::Sqlite, Tables::Local).await;
    shop_with_orders(&server).await;
    let mut deepest_answered = 0;
    for n in [10, 100, 500, 999, 2_000, 10_000, 100_000] {
        let chain = format!("SELECT {}", vec!["1"; n].join(" + "));
        if answers_without_crashing(&server, &format!("{n}-term sum"), &chain).await == 200 {
            deepest_answered = n;
        }
        let ors: Vec<String> = (0..n).map(|i| format!("order_id = {i}")).collect();
        let sql = format!(
            "SELECT count(*) FROM shop.orders.orders WHERE {}",
            ors.join(" OR ")
        );
        answers_without_crashing(&server, &format!("{n}-term OR chain"), &sql).await;
        let list: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let sql = format!(
            "SELECT count(*) FROM shop.orders.orders WHERE order_id IN ({})",
            list.join(", ")
        );
        assert_eq!(
            answers_without_crashing(&server, &format!("{n}-item IN list"), &sql).await,
            200,
            "a long IN list is wide, not deep: it runs"
        );
        let unions = vec!["SELECT 1 AS x"; n.min(20_000)].join(" UNION ALL ");
        answers_without_crashing(&server, &format!("{n}-way UNION"), &unions).await;
        // One-row tables, so that what runs is the planning, not a product of many rows.
        let joins: String = (0..n.min(20_000))
            .map(|i| format!(" CROSS JOIN (SELECT {i} AS k{i}) t{i}"))
            .collect();
        let sql = format!("SELECT count(*) FROM (SELECT 1 AS k) t{joins}");
        answers_without_crashing(&server, &format!("{n}-way join"), &sql).await;
    }
    assert!(
        deepest_answered >= 500,
        "a 500-term sum is an ordinary query and must run"
    );
    for depth in [5, 20, 60, 200, 1_000] {
        let mut case = "1".to_string();
        for _ in 0..depth {
            case = format!("CASE WHEN order_id > 0 THEN {case} ELSE 0 END");
        }
        let sql = format!("SELECT {case} FROM shop.orders.orders");
        answers_without_crashing(&server, &format!("CASE nested {depth} deep"), &sql).await;
        let mut sub = "SELECT 1 AS x".to_string();
        for _ in 0..depth {
            sub = format!("SELECT x FROM ({sub}) AS t");
        }
        answers_without_crashing(&server, &format!("subqueries nested {depth} deep"), &sub).await;
        let parens = format!("SELECT {}1{}", "(".repeat(depth), ")".repeat(depth));
        answers_without_crashing(&server, &format!("{depth} parentheses"), &parens).await;
    }
    // What is too deep says so.
    let chain = format!("SELECT {}", vec!["1"; 100_000].join(" + "));
    let (status, body) = query_json(&server, &chain).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nests deeper than"),
        "{body}"
    );
}

/// The same chains in a contract's `sql` rule: `apply` refuses a rule that is too deep or that
/// cannot be planned against the mesh, at its file, line and field; a rule that plans but fails
/// when it runs is recorded as an error result, never a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_contract_rules_are_refused_at_apply() {
    let server = TestServer::start(Store::Sqlite, Tables::Local).await;
    shop_with_orders(&server).await;
    let with_rule = |query: &str, version: &str| {
        SHOP_CONTRACT.replace("version: 1.0.0", &format!("version: {version}")).replace(
            "  - name: customers\n",
            &format!(
                "    quality:\n      - type: sql\n        name: probe\n        query: \"{query}\"\n        mustBeGreaterOrEqualTo: 0\n  - name: customers\n"
            ),
        )
    };
    let folder = |contract: &str| {
        vec![
            (
                "shop/product.odps.yaml".to_string(),
                SHOP_PRODUCT.to_string(),
            ),
            ("shop/orders.odcs.yaml".to_string(), contract.to_string()),
        ]
    };
    let apply = async |contract: String| {
        let files = folder(&contract);
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_str()))
            .collect();
        server.apply(&files, false).await
    };
    for n in [2_000, 20_000] {
        let deep = format!("SELECT {} FROM {{object}}", vec!["1"; n].join(" + "));
        let (status, body) = apply(with_rule(&deep, "1.1.0")).await;
        assert_eq!(status, 422, "{n}-term rule: {body}");
        let diagnostic = &body["error"]["diagnostics"][0];
        assert_eq!(diagnostic["file"], "shop/orders.odcs.yaml", "{body}");
        assert!(
            diagnostic["field"].as_str().unwrap().ends_with("query"),
            "{body}"
        );
        assert!(
            diagnostic["message"]
                .as_str()
                .unwrap()
                .contains("nests deeper than"),
            "{body}"
        );
    }
    // A rule that parses but cannot be planned: refused at apply, not found at every commit.
    let (status, body) = apply(with_rule(
        "SELECT count(no_such_column) FROM {object}",
        "1.1.0",
    ))
    .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["diagnostics"][0]["message"].as_str().unwrap();
    assert!(message.contains("no_such_column"), "{body}");
    // A rule that plans and fails when it runs (a division by zero on the data): applied, and
    // every run records it as an error result.
    // A new blocking rule is a breaking change: a new major version.
    let (status, body) = apply(with_rule(
        "SELECT count(*) / (count(*) - count(*)) FROM {object}",
        "2.0.0",
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, report) = server
        .post_json("/api/v1/datasets/shop/orders/orders/checks", &json!({}))
        .await;
    assert_eq!(status, 200, "{report}");
    let probe = report["runs"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "probe")
        .unwrap();
    assert_eq!(probe["result"], "error", "{probe}");
    assert!(
        probe["reason"].as_str().unwrap().contains("zero"),
        "{probe}"
    );
    // The commit gate runs the same rule: the batch commits, its run records the error.
    let (status, ingested) = server
        .ingest(
            "shop.orders.orders",
            "batch_id=b2",
            "text/csv",
            "order_id,customer_id,amount,status,placed_at\n10,U00000010,1,open,2026-02-01T00:00:00Z\n",
        )
        .await;
    assert_eq!(status, 201, "{ingested}");
    assert_eq!(ingested["accepted"], 1, "{ingested}");
    let (health, _) = server.get("/health").await;
    assert_eq!(health, 200);
}

/// Errors caused by the query are 4xx with DataFusion's message; a type CSV cannot show is
/// rendered as JSON text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_errors_are_4xx_not_5xx() {
    let server = TestServer::start(Store::Sqlite, Tables::Local).await;
    shop_with_orders(&server).await;
    for (sql, says) in [
        ("SELECT 1/0", "zero"),
        (
            "SELECT order_id / (order_id - order_id) FROM shop.orders.orders",
            "zero",
        ),
        ("SELECT CAST('x' AS INT)", "x"),
        ("SELECT CAST(status AS INT) FROM shop.orders.orders", "open"),
        (
            "SELECT regexp_like(status, '(') FROM shop.orders.orders",
            "regex",
        ),
        ("SELECT to_timestamp('not a time')", "not a time"),
        (
            "SELECT to_timestamp(status) FROM shop.orders.orders",
            "open",
        ),
    ] {
        refused(&server, sql, 400, "query_failed", says).await;
    }
    // Lists and structs in CSV: JSON text in the cell.
    let (status, content_type, body) = query_raw(
        &server,
        "SELECT make_array(1, 2) AS l, named_struct('a', 1, 'b', 'x') AS s",
        "text/csv",
    )
    .await;
    let text = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(content_type.starts_with("text/csv"));
    assert_eq!(
        text,
        "l,s\n\"[1,2]\",\"{\"\"a\"\":1,\"\"b\"\":\"\"x\"\"}\"\n"
    );
}

/// Integer `+`, `-` and `*` fail on overflow, constants and columns alike, and answers that do
/// not overflow keep their values and column names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_overflow_is_an_error_not_a_wrap() {
    let server = TestServer::start(Store::Sqlite, Tables::Local).await;
    shop_with_orders(&server).await;
    for sql in [
        "SELECT 9223372036854775807 + 1",
        "SELECT -9223372036854775807 - 2",
        "SELECT 4611686018427387904 * 2",
        "SELECT CAST(2147483647 AS INT) + CAST(1 AS INT)",
        "SELECT order_id * 9223372036854775807 FROM shop.orders.orders",
        "SELECT sum(x) FROM (SELECT order_id + 9223372036854775806 AS x FROM shop.orders.orders)",
    ] {
        refused(&server, sql, 400, "query_failed", "overflow").await;
    }
    let (status, body) = query_json(
        &server,
        "SELECT 1 + 2, order_id * 2 AS twice, order_id - 1 FROM shop.orders.orders WHERE order_id = 2",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Int64(1) + Int64(2)",
            "twice",
            "shop.orders.orders.order_id - Int64(1)"
        ]
    );
    assert_eq!(
        body["rows"][0],
        json!({"Int64(1) + Int64(2)": 3, "twice": 4, "shop.orders.orders.order_id - Int64(1)": 1})
    );
}

/// DESCRIBE and SHOW only read: they are allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_and_show_are_allowed() {
    let server = TestServer::start(Store::Sqlite, Tables::Local).await;
    shop_with_orders(&server).await;
    let (status, body) = query_json(&server, "DESCRIBE shop.orders.orders").await;
    assert_eq!(status, 200, "{body}");
    let columns: Vec<&str> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["column_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        ["order_id", "customer_id", "amount", "status", "placed_at"]
    );
    let (status, body) = query_json(&server, "SHOW TABLES").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["table_catalog"] == "shop" && r["table_name"] == "orders"),
        "{body}"
    );
    let (status, body) = query_json(&server, "SHOW COLUMNS FROM shop.orders.orders").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["row_count"], 5, "{body}");
    let (status, body) = query_json(&server, "SHOW datafusion.execution.batch_size").await;
    assert_eq!(status, 200, "{body}");
    // What writes is still refused.
    let (status, body) = query_json(&server, "SET datafusion.execution.batch_size = 1").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("read-only"),
        "{body}"
    );
}

/// A result over the result limits is cut short with the error marker of its format, after the
/// rows that fit; a value over the memory limit is refused before it is built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_over_the_limits_end_with_an_error_marker() {
    let server = TestServer::start_with(Store::Sqlite, Tables::Local, |c| {
        c.query.max_result_rows = 20_000;
        c.query.memory_limit_bytes = 64 << 20;
    })
    .await;
    let many = "SELECT a.value AS a, b.value AS b FROM generate_series(1, 100000) a CROSS JOIN generate_series(1, 100000) b";

    let (status, _, body) = query_raw(&server, many, "application/json").await;
    assert_eq!(status, 200);
    let result: Value = serde_json::from_slice(&body).expect("the JSON body stays valid");
    assert_eq!(
        result["error"]["code"], "query_limit",
        "{}",
        result["error"]
    );
    let message = result["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("LIMIT") && message.contains("--query-max-result-rows"),
        "{message}"
    );
    let rows = result["rows"].as_array().unwrap().len();
    assert!(rows <= 20_000, "{rows} rows sent");
    assert_eq!(result["row_count"], rows);

    let (status, _, body) = query_raw(&server, many, "application/x-ndjson").await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let last: Value = serde_json::from_str(text.trim_end().lines().last().unwrap()).unwrap();
    assert_eq!(last["tessera_error"]["code"], "query_limit", "{last}");
    assert!(text.trim_end().lines().count() <= 20_001);

    let (status, _, body) = query_raw(&server, many, "text/csv").await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let last = text.trim_end().lines().last().unwrap();
    assert!(last.starts_with("#tessera_error,query_limit,\""), "{last}");

    let (status, _, body) = query_raw(&server, many, "application/vnd.apache.arrow.stream").await;
    assert_eq!(status, 200);
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(&body), None)
        .expect("the stream starts as Arrow");
    let outcomes: Vec<_> = reader.collect();
    assert!(
        outcomes.last().unwrap().is_err(),
        "an Arrow reader must not take a cut-off result for a whole one"
    );
    let rows: usize = outcomes
        .iter()
        .filter_map(|b| b.as_ref().ok())
        .map(|b| b.num_rows())
        .sum();
    assert!(rows <= 20_000);
    let (code, message) =
        tessera_server::api::error_marker(tessera_server::api::ResultFormat::Arrow, &body)
            .expect("the Arrow body ends with the error frame");
    assert_eq!(code, "query_limit");
    assert!(message.contains("--query-max-result-rows"), "{message}");

    // A value far over the memory limit is refused before it is built; so is an aggregate that
    // would grow past it.
    for sql in [
        "SELECT lpad('a', 2147483647)",
        "SELECT repeat('abc', 100000000)",
        "SELECT length(repeat(repeat('x', 10000), 100000))",
        "SELECT cardinality(range(1, 1000000000))",
        "SELECT string_agg(repeat('x', 1000), ',') FROM generate_series(1, 1000000)",
    ] {
        refused(
            &server,
            sql,
            422,
            "query_limit",
            "--query-memory-limit-bytes",
        )
        .await;
    }
    // Values under the limit are built as usual.
    let (status, body) = query_json(&server, "SELECT length(lpad('a', 1000, 'xy')) AS n").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0]["n"], 1000);
}

/// A query past its time limit gets the limit error and is cancelled; with every query slot
/// taken and the queue full, the next query is refused at once with 503 and Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_past_their_time_limit_are_cancelled_and_admission_is_bounded() {
    let server = TestServer::start_with(Store::Sqlite, Tables::Local, |c| {
        c.query.timeout_seconds = 2;
        c.query.concurrency = 1;
        c.query.queue_length = 1;
    })
    .await;
    let heavy = "SELECT count(*) FROM generate_series(1, 200000) a CROSS JOIN generate_series(1, 200000) b WHERE a.value + b.value = 7";
    let running = query_in_background(&server, heavy);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let queued = query_in_background(&server, heavy);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let refused = server
        .http
        .post(format!("{}/api/v1/query", server.url))
        .json(&json!({ "sql": "SELECT 1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "busy", "{body}");
    // /health answers while the query slot is taken.
    let (health, _) = server.get("/health").await;
    assert_eq!(health, 200);
    for handle in [running, queued] {
        let response = handle.await.unwrap();
        assert_eq!(response.status().as_u16(), 422);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "query_limit", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--query-timeout-seconds"),
            "{body}"
        );
    }
    // The slot is free again.
    let (status, body) = query_json(&server, "SELECT 1 AS one").await;
    assert_eq!(status, 200, "{body}");
}

/// `apply` refuses a contract over the size, dataset or column limits, naming the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contracts_over_the_limits_are_refused_naming_the_limit() {
    let server = TestServer::start_with(Store::Sqlite, Tables::Local, |c| {
        c.contract_limits.max_columns = 50;
        c.contract_limits.max_datasets = 3;
    })
    .await;
    let columns: String = (0..60)
        .map(|i| format!("      - name: c{i}\n        logicalType: integer\n"))
        .collect();
    let wide = SHOP_CONTRACT.replace(
        "  - name: customers\n    properties:\n",
        &format!("  - name: customers\n    properties:\n{columns}"),
    );
    let (status, body) = server
        .apply(
            &[
                ("shop/product.odps.yaml", SHOP_PRODUCT),
                ("shop/orders.odcs.yaml", &wide),
            ],
            false,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["diagnostics"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("--contract-max-columns") && message.contains("50"),
        "{message}"
    );

    let objects: String = (0..4)
        .map(|i| format!("  - name: extra{i}\n    properties:\n      - name: x\n        logicalType: integer\n"))
        .collect();
    let many = format!("{SHOP_CONTRACT}{objects}");
    let (status, body) = server
        .apply(
            &[
                ("shop/product.odps.yaml", SHOP_PRODUCT),
                ("shop/orders.odcs.yaml", &many),
            ],
            false,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["diagnostics"][0]["message"].as_str().unwrap();
    assert!(message.contains("--contract-max-datasets"), "{message}");

    // The 12 MB, 110k-column contract of the report: refused by its size, at once.
    let huge: String = (0..110_000)
        .map(|i| format!("      - name: column_{i}\n        logicalType: string\n        description: a column of a very wide contract\n"))
        .collect();
    let huge = SHOP_CONTRACT.replace(
        "  - name: customers\n    properties:\n",
        &format!("  - name: customers\n    properties:\n{huge}"),
    );
    assert!(huge.len() > 10 << 20);
    let (status, body) = server
        .apply(
            &[
                ("shop/product.odps.yaml", SHOP_PRODUCT),
                ("shop/orders.odcs.yaml", &huge),
            ],
            false,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["diagnostics"][0]["message"].as_str().unwrap();
    assert!(message.contains("--contract-max-bytes"), "{message}");
    // Nothing was published.
    let (_, products) = server.get("/api/v1/products").await;
    assert_eq!(products, json!([]));
}

/// A product publishes only contracts of its own domain; the same contract id (and product id)
/// in another domain is another contract, never a clash.
async fn contract_ids_belong_to_their_domain(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    // Another domain's product publishes a contract with the shop's contract id, at 2.0.0, and
    // uses the shop product's id.
    let other_product = SHOP_PRODUCT
        .replace("domain: shop", "domain: crm")
        .replace("name: orders", "name: leads");
    let other_contract = SHOP_CONTRACT.replace("version: 1.0.0", "version: 2.0.0");
    let (status, body) = server
        .apply(
            &[
                ("crm/product.odps.yaml", &other_product),
                ("crm/orders.odcs.yaml", &other_contract),
            ],
            false,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The shop's own 1.0.0 and 2.0.0 are its own.
    let (status, body) = server.apply(&shop_folder(), false).await;
    assert_eq!(status, 200, "{body}");
    let shop_v2 = SHOP_CONTRACT.replace("version: 1.0.0", "version: 2.0.0");
    let (status, body) = server
        .apply(
            &[
                ("shop/product.odps.yaml", SHOP_PRODUCT),
                ("shop/orders.odcs.yaml", &shop_v2),
            ],
            false,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, contracts) = server.get("/api/v1/contracts").await;
    let listed: Vec<(String, String, Value)> = contracts
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["domain"].as_str().unwrap().to_string(),
                c["id"].as_str().unwrap().to_string(),
                c["versions"].clone(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            (
                "crm".into(),
                "shop-orders-contract".into(),
                json!(["2.0.0"])
            ),
            (
                "shop".into(),
                "shop-orders-contract".into(),
                json!(["1.0.0", "2.0.0"])
            ),
        ]
    );
    let (status, body) = server
        .get("/api/v1/contracts/crm/shop-orders-contract/versions/2.0.0")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["domain"], "crm");
    // A contract that names another domain cannot be published by this product.
    let foreign = SHOP_CONTRACT
        .replace("version: 1.0.0", "version: 3.0.0")
        .replace("status: active\n", "status: active\ndomain: shop\n");
    let (status, body) = server
        .apply(
            &[
                ("crm/product.odps.yaml", &other_product),
                ("crm/orders.odcs.yaml", &foreign),
            ],
            false,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let diagnostic = &body["error"]["diagnostics"][0];
    assert_eq!(diagnostic["field"], "domain", "{body}");
    assert!(diagnostic["line"].as_u64().is_some(), "{body}");
    assert!(
        diagnostic["message"]
            .as_str()
            .unwrap()
            .contains("its own domain"),
        "{body}"
    );
}

crate::on_both_stores!(contract_ids_belong_to_their_domain);
