//! The PostgreSQL wire front end as its users reach it (issue 12): `psql` (Debian's
//! postgresql-client) and psycopg 3 over the artgo demo, with the demo personas' API tokens as
//! passwords. The same principal gets the same governed answers as over HTTP, errors carry
//! PostgreSQL's SQLSTATEs, and every statement lands in the query log as front end `postgres`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::*;

/// Where a server's PostgreSQL front end listens, from the line it prints.
fn pg_address(server: &Server) -> (String, String) {
    let line = server
        .banner
        .iter()
        .find(|l| l.starts_with("PostgreSQL clients: "))
        .expect("the server prints where PostgreSQL clients connect");
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |flag: &str| {
        let at = words.iter().position(|w| *w == flag).unwrap();
        words[at + 1].to_string()
    };
    (after("-h"), after("-p"))
}

/// `psql -c COMMAND` as `user` with `token` as the password, on database `database`.
fn psql(server: &Server, user: &str, token: &str, database: &str, command: &str) -> Run {
    let (host, port) = pg_address(server);
    Command::new("psql")
        .env("PGPASSWORD", token)
        .env("PGCONNECT_TIMEOUT", "20")
        .args(["-h", &host, "-p", &port, "-U", user, "-d", database])
        .args([
            "-X",
            "-w",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "VERBOSITY=verbose",
        ])
        .args(["-c", command])
        .output()
        .expect("run psql (Debian's postgresql-client)")
        .into()
}

pub fn conninfo(server: &Server, user: &str, token: &str, database: &str) -> String {
    let (host, port) = pg_address(server);
    format!(
        "host={host} port={port} user={user} password={token} dbname={database} connect_timeout=20"
    )
}

/// Runs a job of `pg_client.py` (psycopg 3) and returns what it printed.
fn psycopg(conninfo: &str, job: Value) -> Value {
    client_job("pg_client.py", conninfo, &job)
}

/// The results of `statements` run one after another on one connection (autocommit).
fn statements(conninfo: &str, statements: &[(&str, Value)]) -> Vec<Value> {
    let job = json!({
        "autocommit": true,
        "statements": statements.iter().map(|(sql, params)| json!({"sql": sql, "params": params})).collect::<Vec<_>>(),
    });
    let out = psycopg(conninfo, job);
    out["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{out}"))
        .clone()
}

/// The answer of `sql` over HTTP as `token`'s principal, as JSON rows.
fn http_rows(server: &Server, token: &str, sql: &str) -> Vec<Value> {
    let out = server
        .cli_as(token, &["query", "--format", "json", sql])
        .ok();
    serde_json::from_str::<Vec<Value>>(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn sqlstate(result: &Value) -> &str {
    result["sqlstate"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {result}"))
}

#[test]
fn psql_and_psycopg_query_the_mesh_as_the_tokens_principal() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start("demo", data.path(), &["--scale", "0.01"]);
    let admin = server.admin_token.clone();
    let analyst = token_printed_for(&server.banner, "dpatel").unwrap();

    // psql connects with the token as password; the database is a domain, a schema a product.
    let count = psql(
        &server,
        "admin",
        &admin,
        "artwork_engagement",
        "SELECT count(*) FROM engagement.events_clean",
    )
    .ok();
    let over_http = http_rows(
        &server,
        &admin,
        "SELECT count(*) AS n FROM artwork_engagement.engagement.events_clean",
    );
    assert_eq!(
        count.stdout.lines().nth(2).map(str::trim),
        Some(over_http[0]["n"].to_string().as_str()),
        "{}",
        count.stdout
    );
    // A wrong token, a token of another user, an unknown database: refused at connect.
    let wrong = psql(
        &server,
        "admin",
        "tsr_nope_nope",
        "artwork_engagement",
        "SELECT 1",
    )
    .failed();
    assert!(
        wrong
            .stderr
            .to_lowercase()
            .contains("password authentication failed for user \"admin\""),
        "{}",
        wrong.stderr
    );
    let someone_else = psql(&server, "admin", &analyst, "artwork_engagement", "SELECT 1").failed();
    assert!(
        someone_else
            .stderr
            .to_lowercase()
            .contains("password authentication failed"),
        "{}",
        someone_else.stderr
    );
    let no_domain = psql(&server, "admin", &admin, "nowhere", "SELECT 1").failed();
    assert!(
        no_domain
            .stderr
            .contains("database \"nowhere\" does not exist"),
        "{}",
        no_domain.stderr
    );

    // psql's catalog commands: \l lists the domains, \dn the domain's products, \dt and \d
    // the datasets and their columns.
    let domains = psql(&server, "admin", &admin, "artwork_engagement", "\\l").ok();
    for domain in ["artwork_engagement", "marketplace", "digital_assets"] {
        assert!(domains.stdout.contains(domain), "{}", domains.stdout);
    }
    let products = psql(&server, "admin", &admin, "artwork_engagement", "\\dn").ok();
    assert!(
        products.stdout.contains("engagement"),
        "{}",
        products.stdout
    );
    assert!(
        !products.stdout.contains("collectors"),
        "{}",
        products.stdout
    );
    let tables = psql(
        &server,
        "admin",
        &admin,
        "artwork_engagement",
        "\\dt engagement.*",
    )
    .ok();
    for table in ["events_raw", "events_clean", "virality_daily"] {
        assert!(tables.stdout.contains(table), "{}", tables.stdout);
    }
    let columns = psql(
        &server,
        "admin",
        &admin,
        "artwork_engagement",
        "\\d engagement.virality_daily",
    )
    .ok();
    assert!(columns.stdout.contains("asset_id"), "{}", columns.stdout);
    assert!(columns.stdout.contains("date"), "{}", columns.stdout);

    // psycopg: types as Python sees them, cross-domain joins, parameters, errors.
    let analyst_db = conninfo(&server, "dpatel", &analyst, "artwork_engagement");
    let results = statements(
        &analyst_db,
        &[
            (
                "SELECT CAST(7 AS BIGINT) AS i, CAST(12.345 AS DECIMAL(10,3)) AS d, 'text' AS t, \
                 true AS b, DATE '2026-12-05' AS day, TIMESTAMP '2026-12-05 10:11:12' AS ts, \
                 arrow_cast('2026-12-05T10:11:12Z', 'Timestamp(Microsecond, Some(\"UTC\"))') AS tstz, \
                 make_array(1, 2, 3) AS list",
                json!(null),
            ),
            (
                "SELECT count(*) AS n FROM engagement.events_clean e \
                 JOIN marketplace.collectors.collectors c ON e.user_id = c.collector_id \
                 WHERE e.event_type = %s",
                json!(["view"]),
            ),
            ("SELEC 1", json!(null)),
            ("SELECT * FROM engagement.nothing_here", json!(null)),
            ("CREATE TABLE t (a INT)", json!(null)),
            (
                "SELECT ip FROM engagement.events_raw WHERE ip IS NOT NULL LIMIT 1",
                json!(null),
            ),
            ("SHOW transaction_read_only", json!(null)),
            (
                "SELECT count(*) FROM marketplace.provenance.sales",
                json!(null),
            ),
            (
                "SELECT count(*) FROM engagement.events_clean \
                 WHERE dwell_ms > %s AND event_type = %s AND occurred_at > %s",
                json!([1000, "view", "2000-01-01 00:00:00+00"]),
            ),
        ],
    );
    let typed = &results[0];
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
            [1, 2, 3]
        ]),
        "{typed}"
    );
    assert_eq!(
        typed["types"][0],
        json!([
            "int", "Decimal", "str", "bool", "date", "datetime", "datetime", "list"
        ]),
        "{typed}"
    );
    let joined_over_http = http_rows(
        &server,
        &analyst,
        "SELECT count(*) AS n FROM artwork_engagement.engagement.events_clean e \
         JOIN marketplace.collectors.collectors c ON e.user_id = c.collector_id \
         WHERE e.event_type = 'view'",
    );
    assert_eq!(
        results[1]["rows"][0][0], joined_over_http[0]["n"],
        "{}",
        results[1]
    );
    assert_eq!(sqlstate(&results[2]), "42601");
    assert_eq!(sqlstate(&results[3]), "42P01");
    assert_eq!(sqlstate(&results[4]), "25006");
    // The analyst reads raw events with their personal columns masked, as over HTTP.
    let masked_over_http = http_rows(
        &server,
        &analyst,
        "SELECT ip FROM artwork_engagement.engagement.events_raw WHERE ip IS NOT NULL LIMIT 1",
    );
    assert_eq!(
        results[5]["rows"][0][0], masked_over_http[0]["ip"],
        "{}",
        results[5]
    );
    let raw_ip = http_rows(
        &server,
        &admin,
        "SELECT ip FROM artwork_engagement.engagement.events_raw WHERE ip IS NOT NULL LIMIT 1",
    );
    assert_ne!(results[5]["rows"][0][0], raw_ip[0]["ip"]);
    assert_eq!(results[6]["rows"][0][0], "on");
    let filtered_over_http = http_rows(
        &server,
        &analyst,
        "SELECT count(*) AS n FROM artwork_engagement.engagement.events_clean \
         WHERE dwell_ms > 1000 AND event_type = 'view' AND occurred_at > TIMESTAMP '2000-01-01 00:00:00'",
    );
    assert_eq!(
        results[8]["rows"][0][0], filtered_over_http[0]["n"],
        "{}",
        results[8]
    );
    // Discoverable but not granted: listed by \dt, refused on read.
    assert_eq!(sqlstate(&results[7]), "42501", "{}", results[7]);
    assert!(
        results[7]["message"]
            .as_str()
            .unwrap()
            .contains("tessera access request marketplace.provenance"),
        "{}",
        results[7]
    );

    // The demo's raw events fail their freshness check (a blocking one): a query reading
    // them still answers, and says so — a NOTICE over PostgreSQL, a header over HTTP.
    let stale = statements(
        &analyst_db,
        &[("SELECT count(*) FROM engagement.events_raw", json!(null))],
    );
    assert!(stale[0]["rows"][0][0].as_i64().unwrap() > 0, "{}", stale[0]);
    let notices = stale[0]["notices"].as_array().unwrap();
    assert!(
        notices.iter().any(|n| n.as_str().unwrap().starts_with(
            "artwork_engagement.engagement.events_raw: blocking checks fail in its latest check run"
        )),
        "{}",
        stale[0]
    );
    assert!(
        results[0]["notices"].as_array().unwrap().is_empty(),
        "{}",
        results[0]
    );
    let over_http = tokio::runtime::Runtime::new().unwrap().block_on(async {
        reqwest::Client::new()
            .post(format!("{}/api/v1/query", server.url))
            .bearer_auth(&analyst)
            .json(&json!({"sql": "SELECT count(*) FROM artwork_engagement.engagement.events_raw"}))
            .send()
            .await
            .unwrap()
    });
    assert_eq!(over_http.status(), 200);
    let warning = over_http
        .headers()
        .get("tessera-quality-warning")
        .expect("a quality warning header")
        .to_str()
        .unwrap();
    assert!(
        warning.starts_with("artwork_engagement.engagement.events_raw: blocking checks fail"),
        "{warning}"
    );

    let cli = server
        .cli_as(
            &analyst,
            &[
                "query",
                "SELECT count(*) FROM artwork_engagement.engagement.events_raw",
            ],
        )
        .ok();
    assert!(
        cli.stderr
            .contains("warning: artwork_engagement.engagement.events_raw: blocking checks fail"),
        "{}",
        cli.stderr
    );

    // A transaction (psycopg's default) brackets reads; a read-write one is refused.
    let in_transaction = psycopg(
        &analyst_db,
        json!({"statements": [
            {"sql": "SELECT count(*) FROM engagement.virality_daily"},
            {"sql": "SELECT 1"},
        ]}),
    );
    assert!(
        in_transaction["results"][0]["rows"][0][0].as_i64().unwrap() > 0,
        "{in_transaction}"
    );

    // A long query cancelled from the client stops, and the connection goes on.
    let cancelled = psycopg(
        &analyst_db,
        json!({"autocommit": true, "cancel_after": 1.0, "statements": [
            {"sql": "SELECT count(*) FROM generate_series(1, 1000000000000)"},
        ]}),
    );
    assert_eq!(sqlstate(&cancelled["results"][0]), "57014", "{cancelled}");
    assert_eq!(cancelled["results"][1]["rows"][0][0], 1, "{cancelled}");

    // A connection keeps its session (and its prepared statements their plans) only while
    // what its principal may see stays the same: a grant given or revoked applies to the next
    // statement of an open connection, a statement prepared before it included.
    let sales = "SELECT count(*) FROM marketplace.provenance.sales";
    let sales_over_http = http_rows(
        &server,
        &admin,
        "SELECT count(*) AS n FROM marketplace.provenance.sales",
    );
    let as_admin = |args: &[&str]| -> Value {
        let mut argv = vec![env!("CARGO_BIN_EXE_tessera")];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--server", &server.url, "--token", &admin]);
        json!({"run": argv})
    };
    let mut grant = as_admin(&[
        "access",
        "grant",
        "marketplace.provenance",
        "--user",
        "dpatel",
    ]);
    grant["capture"] = json!("grant");
    grant["pattern"] = json!("Grant (\\S+):");
    let by_event = "SELECT count(*) FROM engagement.events_clean WHERE event_type = %s";
    let prepared =
        |sql: &str, params: Value| json!({"sql": sql, "params": params, "prepare": true});
    let changing = psycopg(
        &analyst_db,
        json!({"autocommit": true, "statements": [
            prepared(sales, json!(null)),
            grant,
            prepared(sales, json!(null)),
            prepared(sales, json!(null)),
            as_admin(&["access", "revoke", "{grant}"]),
            prepared(sales, json!(null)),
            prepared(by_event, json!(["view"])),
            prepared(by_event, json!(["like"])),
            prepared(by_event, json!(["view"])),
            prepared("SELECT 1 AS one", json!(null)),
            prepared("SELECT 1 AS one", json!(null)),
            prepared("SELECT CAST(now() AS VARCHAR) AS t", json!(null)),
            prepared("SELECT CAST(now() AS VARCHAR) AS t", json!(null)),
        ]}),
    );
    let steps = changing["results"].as_array().unwrap();
    assert_eq!(sqlstate(&steps[0]), "42501", "{changing}");
    assert_eq!(steps[1]["ran"], 0, "{changing}");
    assert_eq!(
        steps[2]["rows"][0][0], sales_over_http[0]["n"],
        "{changing}"
    );
    assert_eq!(
        steps[3]["rows"][0][0], sales_over_http[0]["n"],
        "{changing}"
    );
    assert_eq!(steps[4]["ran"], 0, "{changing}");
    assert_eq!(sqlstate(&steps[5]), "42501", "{changing}");
    // One prepared statement, run again with other parameters, answers for each.
    for (step, event) in [(6, "view"), (7, "like"), (8, "view")] {
        let over_http = http_rows(
            &server,
            &analyst,
            &format!(
                "SELECT count(*) AS n FROM artwork_engagement.engagement.events_clean \
                 WHERE event_type = '{event}'"
            ),
        );
        assert_eq!(steps[step]["rows"][0][0], over_http[0]["n"], "{changing}");
    }
    assert_ne!(steps[6]["rows"][0][0], steps[7]["rows"][0][0], "{changing}");
    // A prepared statement of constants answers each time it runs; `now()` is not frozen.
    assert_eq!(steps[9]["rows"], json!([[1]]), "{changing}");
    assert_eq!(steps[10]["rows"], json!([[1]]), "{changing}");
    assert_ne!(steps[11]["rows"], steps[12]["rows"], "{changing}");

    // Every statement is in the query log, naming its front end.
    let log = server
        .cli(&["queries", "--limit", "1000", "--format", "json"])
        .ok();
    let log: Vec<Value> = serde_json::from_str(&log.stdout).unwrap();
    let over_pg: Vec<&Value> = log
        .iter()
        .filter(|q| q["front_end"] == "postgres")
        .collect();
    assert!(
        over_pg
            .iter()
            .any(|q| q["principal"] == "user dpatel" && q["status"] == "finished"),
        "{over_pg:?}"
    );
    assert!(
        over_pg
            .iter()
            .any(|q| q["sql"].as_str().unwrap().contains("CREATE TABLE")
                && q["status"] == "failed"),
        "{over_pg:?}"
    );
}

#[test]
fn a_front_end_port_in_use_stops_the_server_naming_the_flag_that_moves_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let data = tempfile::tempdir().unwrap();
    for (flag, clients) in [("--pg", "PostgreSQL"), ("--flight", "Flight SQL")] {
        let failed = tessera()
            .args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .args([flag, address.as_str()])
            .output()
            .map(Run::from)
            .unwrap()
            .failed();
        let said = format!("cannot listen for {clients} clients on {address}");
        let remedy = format!("({flag} ADDR, or {flag} off)");
        assert!(
            failed.stderr.contains(&said) && failed.stderr.contains(&remedy),
            "{}",
            failed.stderr
        );
    }
}

#[test]
fn limits_answer_with_their_sqlstates_and_closed_connections_leave_nothing_behind() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        "serve",
        data.path(),
        &[
            "--query-max-result-rows",
            "10",
            "--query-timeout-seconds",
            "2",
            "--pg-max-connections",
            "4",
        ],
    );
    server.with_quickstart();
    let admin = server.admin_token.clone();
    let shop = conninfo(&server, "admin", &admin, "shop");
    let results = statements(
        &shop,
        &[
            (
                "SELECT order_id FROM orders.orders ORDER BY order_id",
                json!(null),
            ),
            ("SELECT * FROM generate_series(1, 100)", json!(null)),
            (
                "SELECT count(*) FROM generate_series(1, 1000000000000)",
                json!(null),
            ),
            ("SELECT 1/0", json!(null)),
        ],
    );
    assert_eq!(
        results[0]["rows"].as_array().unwrap().len(),
        3,
        "{}",
        results[0]
    );
    assert_eq!(sqlstate(&results[1]), "54000", "{}", results[1]);
    assert_eq!(sqlstate(&results[2]), "57014", "{}", results[2]);
    assert_eq!(sqlstate(&results[3]), "22012", "{}", results[3]);

    // The simple protocol (psql -c with several statements): the results before an error
    // are sent, the statements after it do not run.
    let several = psql(
        &server,
        "admin",
        &admin,
        "shop",
        "SELECT 41 + 1 AS answer; SELECT * FROM orders.nothing; SELECT 3 AS third",
    )
    .failed();
    assert!(several.stdout.contains("42"), "{}", several.stdout);
    assert!(!several.stdout.contains("third"), "{}", several.stdout);
    assert!(several.stderr.contains("42P01"), "{}", several.stderr);

    // A thousand connections opened and closed: every one gives its slot back (the server
    // allows four at once), four at once still connect afterwards, and the server holds no
    // more memory than after the first hundred.
    let python = std::env::var("TESSERA_TEST_PYTHON").expect("run with scripts/test");
    let soak = |connections: &str| -> Run {
        Command::new(&python)
            .args([
                "-c",
                r#"
import sys, psycopg
for i in range(int(sys.argv[2])):
    with psycopg.connect(sys.argv[1], autocommit=True) as c:
        assert c.execute('SELECT 1').fetchone()[0] == 1
        assert c.execute('SELECT count(*) FROM orders.orders').fetchone()[0] >= 0
held = [psycopg.connect(sys.argv[1], autocommit=True) for _ in range(4)]
try:
    psycopg.connect(sys.argv[1])
    print('a fifth connection was accepted')
except psycopg.OperationalError as e:
    print('fifth refused:', e)
print(sum(c.execute('SELECT 1').fetchone()[0] for c in held), 'held')
"#,
                &shop,
                connections,
            ])
            .output()
            .expect("run python")
            .into()
    };
    soak("100").ok();
    let before = server.memory_bytes();
    let soaked = soak("1000").ok();
    assert!(soaked.stdout.contains("4 held"), "{}", soaked.stdout);
    assert!(
        soaked.stdout.contains("fifth refused") && soaked.stdout.contains("too many clients"),
        "{}",
        soaked.stdout
    );
    let after = server.memory_bytes();
    assert!(
        after < before + SOAK_GROWTH_BYTES,
        "the server held {before} bytes after 100 connections, {after} after 1,000 more"
    );
}

#[test]
fn with_a_certificate_http_postgres_and_flight_clients_connect_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        // A server certificate, not a CA's (rustls refuses a CA's as a server's own).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(made.status.success(), "{made:?}");
    let data = dir.path().join("data");
    let server = Server::start(
        "serve",
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    // The CLI trusts the certificate it is given, and works over HTTPS.
    let over_https = |args: &[&str]| -> Run {
        tessera()
            .env("TESSERA_CREDENTIALS", &server.credentials)
            .env("TESSERA_CA_CERT", &cert)
            .args(args)
            .arg("--server")
            .arg(&server.url)
            .output()
            .expect("run tessera")
            .into()
    };
    let quickstart = repo_root().join("examples/quickstart");
    over_https(&["apply", quickstart.to_str().unwrap()]).ok();
    over_https(&[
        "ingest",
        "shop.orders.orders",
        quickstart.join("orders.csv").to_str().unwrap(),
    ])
    .ok();
    // Without the certificate, the CLI does not trust the server.
    let untrusted = server.cli(&["query", "SELECT 1"]).failed();
    assert!(
        untrusted
            .stderr
            .contains("has a TLS certificate this client does not trust")
            && untrusted.stderr.contains("TESSERA_CA_CERT"),
        "{}",
        untrusted.stderr
    );

    // psql with sslmode=require gets TLS; psycopg verifies the certificate.
    let (host, port) = pg_address(&server);
    let conninfo = format!("host={host} port={port} user=admin dbname=shop sslmode=require");
    let psql_tls: Run = Command::new("psql")
        .env("PGPASSWORD", &server.admin_token)
        .args(["-X", "-w", &conninfo, "-c", "\\conninfo", "-c"])
        .arg("SELECT count(*) FROM orders.orders")
        .output()
        .expect("run psql")
        .into();
    let psql_tls = psql_tls.ok();
    assert!(
        psql_tls.stdout.contains("SSL connection"),
        "{}",
        psql_tls.stdout
    );
    assert!(psql_tls.stdout.contains(" 3\n"), "{}", psql_tls.stdout);
    let verified = statements(
        &format!(
            "{conninfo} password={} sslmode=verify-full sslrootcert={}",
            server.admin_token,
            cert.display()
        ),
        &[("SELECT count(*) FROM orders.orders", json!(null))],
    );
    assert_eq!(verified[0]["rows"][0][0], 3, "{}", verified[0]);
    crate::flight_sql::flight_over_tls(&server, &cert);

    replay_tool_queries(&server, "admin", &server.admin_token, "shop", dir.path());
}

/// What DBeaver (over the PostgreSQL JDBC driver) and Metabase send when they connect and
/// browse, replayed over both protocols — psycopg's extended one, psql's simple one — as
/// `user` (with `token`) on database `database`: every statement must run.
fn replay_tool_queries(
    server: &Server,
    user: &str,
    token: &str,
    database: &str,
    dir: &std::path::Path,
) {
    let tools: Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/pg_tool_queries.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for tool in ["dbeaver", "metabase"] {
        let queries: Vec<(&str, Value)> = tools[tool]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| (q.as_str().unwrap(), json!(null)))
            .collect();
        let db = conninfo(server, user, token, database);
        for (result, (sql, _)) in statements(&db, &queries).iter().zip(&queries) {
            assert!(result.get("sqlstate").is_none(), "{tool}: {sql}\n{result}");
        }
        let script = dir_file(dir, &format!("{tool}.sql"), &{
            let sql: Vec<&str> = queries.iter().map(|(q, _)| *q).collect();
            sql.join(";\n") + ";\n"
        });
        let (host, port) = pg_address(server);
        let replayed: Run = Command::new("psql")
            .env("PGPASSWORD", token)
            .args(["-h", &host, "-p", &port, "-U", user, "-d", database])
            .args(["-X", "-w", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(&script)
            .output()
            .expect("run psql")
            .into();
        replayed.ok();
    }
}

/// Writes `text` to `name` in `dir`; returns its path.
fn dir_file(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}
