//! The Arrow Flight SQL front end as its users reach it (issue 12): ADBC's Flight SQL driver
//! from Python (adbc-driver-flightsql with pyarrow, `flight_client.py`) over the artgo demo,
//! with the demo personas' API tokens as bearer tokens or basic-auth passwords. The same
//! principal gets the same governed answers as over HTTP, Arrow types arrive as the engine made
//! them, errors carry their gRPC codes, and every statement lands in the query log and the audit
//! log as front end `flight_sql`.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::*;

/// Where a server's Flight SQL front end listens (`grpc://HOST:PORT`), from the line it prints.
pub fn flight_uri(server: &Server) -> String {
    let line = server
        .banner
        .iter()
        .find(|l| l.starts_with("Flight SQL clients: "))
        .expect("the server prints where Flight SQL clients connect");
    line.split_whitespace().nth(3).unwrap().to_string()
}

/// Runs a job of `flight_client.py` (ADBC) against `uri` and returns what it printed.
pub fn adbc(uri: &str, job: Value) -> Value {
    client_job("flight_client.py", uri, &job)
}

/// The results of `statements` over one ADBC connection with `token` as a bearer token.
pub fn adbc_statements(uri: &str, token: &str, statements: &[(&str, Value)]) -> Vec<Value> {
    let out = adbc(
        uri,
        json!({
            "token": token,
            "statements": statements.iter().map(|(sql, params)| json!({"sql": sql, "params": params})).collect::<Vec<_>>(),
        }),
    );
    out["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{out}"))
        .clone()
}

/// The answer of `sql` over HTTP as `token`'s principal, as rows of values in column order.
fn http_values(server: &Server, token: &str, sql: &str) -> Vec<Vec<Value>> {
    let out = server
        .cli_as(token, &["query", "--format", "json", sql])
        .ok();
    let rows: Vec<serde_json::Map<String, Value>> =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    rows.into_iter()
        .map(|row| row.into_iter().map(|(_, v)| v).collect())
        .collect()
}

fn grpc_code(result: &Value) -> i64 {
    result["grpc_code"]
        .as_i64()
        .unwrap_or_else(|| panic!("expected an error with a gRPC code, got {result}"))
}

#[test]
fn adbc_queries_the_mesh_as_the_tokens_principal() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start("demo", data.path(), &["--scale", "0.01"]);
    let uri = flight_uri(&server);
    assert!(uri.starts_with("grpc://127.0.0.1:"), "{uri}");
    let admin = server.admin_token.clone();
    let analyst = token_printed_for(&server.banner, "dpatel").unwrap();

    // Listing: catalogs are domains, schemas products, tables datasets, each with its Arrow
    // schema — what the analyst may discover, as information_schema lists it over HTTP.
    let listed = adbc(
        &uri,
        json!({"token": analyst, "objects": true,
               "table_schema": ["artwork_engagement", "engagement", "events_raw"]}),
    );
    let mut over_flight: Vec<(String, String, String)> = Vec::new();
    for catalog in listed["objects"].as_array().unwrap() {
        for schema in catalog["schemas"].as_array().unwrap() {
            for table in schema["tables"].as_array().unwrap() {
                assert_eq!(table["type"], "TABLE");
                assert!(!table["columns"].as_array().unwrap().is_empty(), "{table}");
                over_flight.push((
                    catalog["catalog"].as_str().unwrap().into(),
                    schema["schema"].as_str().unwrap().into(),
                    table["table"].as_str().unwrap().into(),
                ));
            }
        }
    }
    over_flight.sort();
    let over_http: Vec<(String, String, String)> = http_values(
        &server,
        &analyst,
        "SELECT table_catalog, table_schema, table_name FROM information_schema.tables \
         WHERE table_catalog <> 'tessera' AND table_schema <> 'information_schema' ORDER BY 1, 2, 3",
    )
    .into_iter()
    .map(|row| {
        let name = |i: usize| row[i].as_str().unwrap().to_string();
        (name(0), name(1), name(2))
    })
    .collect();
    assert_eq!(over_flight, over_http);
    // Discoverable but not readable (marketplace.provenance) is listed too.
    assert!(
        over_flight
            .iter()
            .any(|(d, p, _)| d == "marketplace" && p == "provenance"),
        "{over_flight:?}"
    );
    // A table's schema is what a query of it returns.
    let everything = adbc_statements(
        &uri,
        &analyst,
        &[(
            "SELECT * FROM artwork_engagement.engagement.events_raw LIMIT 0",
            json!(null),
        )],
    );
    let names = |schema: &Value| -> Vec<Value> {
        schema
            .as_array()
            .unwrap()
            .iter()
            .map(|f| json!([f[0], f[1]]))
            .collect()
    };
    assert_eq!(
        names(&listed["table_schema"]),
        names(&everything[0]["schema"]),
        "{listed}"
    );

    let results = adbc_statements(
        &uri,
        &analyst,
        &[
            // Arrow types pass through as the engine made them, dictionaries included.
            (
                "SELECT CAST(7 AS BIGINT) AS i, CAST(12.345 AS DECIMAL(10,3)) AS d, 'text' AS t, \
                 true AS b, DATE '2026-12-05' AS day, \
                 arrow_cast('2026-12-05T10:11:12', 'Timestamp(Microsecond, None)') AS ts, \
                 arrow_cast('2026-12-05T10:11:12Z', 'Timestamp(Microsecond, Some(\"UTC\"))') AS tstz, \
                 make_array(1, 2, 3) AS list, arrow_cast('a', 'Dictionary(Int32, Utf8)') AS dict",
                json!(null),
            ),
            // A cross-domain join with parameters ($1, $2: bound positionally).
            (
                "SELECT count(*) AS n FROM artwork_engagement.engagement.events_clean e \
                 JOIN marketplace.collectors.collectors c ON e.user_id = c.collector_id \
                 WHERE e.event_type = $1 AND e.dwell_ms > $2",
                json!(["view", 1000]),
            ),
            ("SELEC 1", json!(null)),
            (
                "SELECT * FROM artwork_engagement.engagement.nothing_here",
                json!(null),
            ),
            (
                "SELECT count(*) FROM marketplace.provenance.sales",
                json!(null),
            ),
            ("CREATE TABLE t (a INT)", json!(null)),
            ("SELECT 1/0", json!(null)),
            (
                "SELECT ip FROM artwork_engagement.engagement.events_raw \
                 WHERE ip IS NOT NULL ORDER BY event_id LIMIT 3",
                json!(null),
            ),
            (
                "SELECT count(*) AS n FROM artwork_engagement.engagement.events_raw",
                json!(null),
            ),
        ],
    );
    let typed = &results[0];
    assert_eq!(
        typed["schema"],
        json!([
            ["i", "int64", false],
            ["d", "decimal128(10, 3)", false],
            ["t", "string", false],
            ["b", "bool", false],
            ["day", "date32[day]", false],
            ["ts", "timestamp[us]", false],
            ["tstz", "timestamp[us, tz=UTC]", false],
            ["list", "list<item: int64>", true],
            [
                "dict",
                "dictionary<values=string, indices=int32, ordered=0>",
                false
            ]
        ]),
        "{typed}"
    );
    assert_eq!(
        typed["rows"][0],
        json!([
            7,
            "12.345",
            "text",
            true,
            "2026-12-05",
            "2026-12-05T10:11:12",
            "2026-12-05T10:11:12+00:00",
            [1, 2, 3],
            "a"
        ]),
        "{typed}"
    );
    let joined_over_http = http_values(
        &server,
        &analyst,
        "SELECT count(*) AS n FROM artwork_engagement.engagement.events_clean e \
         JOIN marketplace.collectors.collectors c ON e.user_id = c.collector_id \
         WHERE e.event_type = 'view' AND e.dwell_ms > 1000",
    );
    assert_eq!(
        results[1]["rows"][0][0], joined_over_http[0][0],
        "{}",
        results[1]
    );
    assert!(results[1]["rows"][0][0].as_i64().unwrap() > 0);
    // Errors: the gRPC code, and the SQLSTATE the other front ends give as metadata.
    for (result, code, sqlstate) in [
        (&results[2], 3, "42601"),
        (&results[3], 5, "42P01"),
        (&results[4], 7, "42501"),
        (&results[5], 3, "25006"),
    ] {
        assert_eq!(grpc_code(result), code, "{result}");
        assert_eq!(result["sqlstate"], sqlstate, "{result}");
    }
    assert!(
        results[4]["message"]
            .as_str()
            .unwrap()
            .contains("tessera access request marketplace.provenance"),
        "{}",
        results[4]
    );
    // Division by zero happens as the rows stream: the stream ends with INVALID_ARGUMENT.
    assert_eq!(grpc_code(&results[6]), 3, "{}", results[6]);
    assert!(
        results[6]["message"]
            .as_str()
            .unwrap()
            .contains("Divide by zero"),
        "{}",
        results[6]
    );
    // The analyst reads raw events with their personal columns masked, as over HTTP.
    let ips = "SELECT ip FROM artwork_engagement.engagement.events_raw \
               WHERE ip IS NOT NULL ORDER BY event_id LIMIT 3";
    let masked_over_http = http_values(&server, &analyst, ips);
    assert_eq!(
        results[7]["rows"],
        json!(masked_over_http),
        "{}",
        results[7]
    );
    assert_ne!(results[7]["rows"], json!(http_values(&server, &admin, ips)));
    // The demo's raw events fail a blocking check: the rows come, and the schema's metadata
    // names the failing dataset (a clean result has no such key).
    assert!(
        results[8]["rows"][0][0].as_i64().unwrap() > 0,
        "{}",
        results[8]
    );
    let warnings: Vec<String> = serde_json::from_str(
        results[8]["metadata"]["tessera.quality_warnings"]
            .as_str()
            .unwrap_or_else(|| panic!("a quality warning: {}", results[8])),
    )
    .unwrap();
    assert!(
        warnings[0].starts_with(
            "artwork_engagement.engagement.events_raw: blocking checks fail in its latest check run"
        ),
        "{warnings:?}"
    );
    assert_eq!(typed["metadata"], json!({}), "{typed}");

    // Basic auth (ADBC's username and password): the same answers; a token of another user,
    // or a wrong one, is refused as unauthenticated.
    let basic = adbc(
        &uri,
        json!({"token": analyst, "user": "dpatel", "statements": [{"sql": ips}]}),
    );
    assert_eq!(basic["results"][0]["rows"], results[7]["rows"], "{basic}");
    let someone_else = adbc(
        &uri,
        json!({"token": analyst, "user": "admin", "statements": [{"sql": "SELECT 1"}]}),
    );
    assert_eq!(
        grpc_code(&someone_else["connect_error"]),
        16,
        "{someone_else}"
    );
    let wrong = adbc(
        &uri,
        json!({"token": "tsr_nope_nope", "statements": [{"sql": "SELECT 1"}]}),
    );
    assert_eq!(grpc_code(&wrong["connect_error"]), 16, "{wrong}");

    // Every statement is in the query log naming its front end (a statement refused when it
    // was prepared too), and in the audit log.
    let log = server
        .cli(&["queries", "--limit", "1000", "--format", "json"])
        .ok();
    let log: Vec<Value> = serde_json::from_str(&log.stdout).unwrap();
    let over_flight: Vec<&Value> = log
        .iter()
        .filter(|q| q["front_end"] == "flight_sql")
        .collect();
    assert!(
        over_flight.iter().any(|q| q["principal"] == "user dpatel"
            && q["status"] == "finished"
            && q["sql"].as_str().unwrap().contains("JOIN marketplace")),
        "{over_flight:?}"
    );
    let refused: Vec<&&Value> = over_flight
        .iter()
        .filter(|q| q["sql"].as_str().unwrap().contains("CREATE TABLE"))
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["status"], "failed");
    let audit = server
        .cli(&["audit", "show", "--limit", "1000", "--format", "json"])
        .ok();
    let audit: Value = serde_json::from_str(&audit.stdout).unwrap();
    let entries = audit
        .get("entries")
        .unwrap_or(&audit)
        .as_array()
        .unwrap()
        .clone();
    let denied_read = entries.iter().find(|e| {
        e["actor"] == "user dpatel"
            && e["action"] == "query"
            && e["detail"]["front_end"] == "flight_sql"
            && e["detail"]["status"] == "denied"
    });
    assert!(
        denied_read.is_some_and(|e| e["detail"]["datasets"]
            .to_string()
            .contains("marketplace.provenance.sales")),
        "{entries:?}"
    );
}

#[test]
fn flight_limits_answer_with_grpc_codes_and_closed_connections_leave_nothing_open() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        "serve",
        data.path(),
        &[
            "--query-max-result-rows",
            "10",
            "--query-timeout-seconds",
            "2",
        ],
    );
    server.with_quickstart();
    let uri = flight_uri(&server);
    let admin = server.admin_token.clone();
    let results = adbc_statements(
        &uri,
        &admin,
        &[
            (
                "SELECT order_id FROM shop.orders.orders ORDER BY order_id",
                json!(null),
            ),
            ("SELECT * FROM generate_series(1, 100)", json!(null)),
            (
                "SELECT count(*) FROM generate_series(1, 1000000000000)",
                json!(null),
            ),
        ],
    );
    assert_eq!(
        results[0]["rows"].as_array().unwrap().len(),
        3,
        "{}",
        results[0]
    );
    assert_eq!(grpc_code(&results[1]), 8, "{}", results[1]); // RESOURCE_EXHAUSTED
    assert_eq!(grpc_code(&results[2]), 4, "{}", results[2]); // DEADLINE_EXCEEDED

    // A thousand connections opened, used and closed leave no connection open in the server
    // and no memory held.
    let open_files = || {
        std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
            .unwrap()
            .count()
    };
    let python = std::env::var("TESSERA_TEST_PYTHON").expect("run with scripts/test");
    let soak = |connections: &str| -> Run {
        Command::new(&python)
            .args([
                "-c",
                r#"
import sys
import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions
kwargs = {DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer " + sys.argv[2]}
total = 0
for i in range(int(sys.argv[3])):
    with flight_sql.connect(sys.argv[1], db_kwargs=kwargs, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 AS one")
            total += cur.fetchone()[0]
print(total, "answered")
"#,
                &uri,
                &admin,
                connections,
            ])
            .output()
            .expect("run python")
            .into()
    };
    // A hundred first, so what the server keeps for good (caches, pools) is there already.
    soak("100").ok();
    let before = open_files();
    let memory_before = server.memory_bytes();
    let soak = soak("1000").ok();
    assert!(soak.stdout.contains("1000 answered"), "{}", soak.stdout);
    // The client has gone; the server notices each closed connection at once.
    let mut after = open_files();
    for _ in 0..50 {
        if after <= before + 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        after = open_files();
    }
    assert!(
        after <= before + 2,
        "{before} files open before, {after} after"
    );
    let memory_after = server.memory_bytes();
    assert!(
        memory_after < memory_before + SOAK_GROWTH_BYTES,
        "the server held {memory_before} bytes after 100 connections, {memory_after} after 1,000 more"
    );
}

/// Flight SQL over TLS (`grpc+tls`) with the certificate in `cert`, checked by the TLS test
/// of the PostgreSQL front end, which starts the server with it.
pub fn flight_over_tls(server: &Server, cert: &Path) {
    let uri = flight_uri(server);
    assert!(uri.starts_with("grpc+tls://127.0.0.1:"), "{uri}");
    let count = "SELECT count(*) AS n FROM shop.orders.orders";
    let trusted = adbc(
        &uri,
        json!({"token": server.admin_token, "ca_file": cert, "statements": [{"sql": count}]}),
    );
    assert_eq!(trusted["results"][0]["rows"][0][0], 3, "{trusted}");
    // Without the certificate the client does not trust the server; a plain client gets no
    // answer from the TLS port.
    let untrusted = adbc(
        &uri,
        json!({"token": server.admin_token, "statements": [{"sql": count}]}),
    );
    assert!(
        untrusted["connect_error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("certificate"),
        "{untrusted}"
    );
    let plain = adbc(
        &uri.replace("grpc+tls://", "grpc://"),
        json!({"token": server.admin_token, "statements": [{"sql": count}]}),
    );
    assert!(plain.get("connect_error").is_some(), "{plain}");
}
