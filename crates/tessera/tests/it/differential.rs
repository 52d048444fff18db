//! The masks and row filters of the governed session, checked against a reference that never
//! goes through them (issue 8): over the artgo demo, more than a thousand generated queries run
//! as principals who read masked and row-filtered data; each answer must equal the answer of a
//! plain DataFusion session over copies of the same tables to which the test applied the masks
//! and filters to the data itself. No raw masked value may appear in any answer or error, and
//! EXPLAIN is refused wherever it would show the rewrite. The same queries run over the
//! PostgreSQL front end (psycopg) and the Flight SQL front end (ADBC) give the same answers as over
//! HTTP (`front_end_differential.py`).

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::{MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::support::*;

/// A principal of the test and what it reads: (table, personal columns masked, row filter).
struct Reader {
    user: &'static str,
    token: String,
    tables: Vec<(&'static str, &'static [&'static str], Option<&'static str>)>,
}

const EVENTS: &str = "artwork_engagement.engagement.events_raw";
const CLEAN: &str = "artwork_engagement.engagement.events_clean";
const VIRALITY: &str = "artwork_engagement.engagement.virality_daily";
const COLLECTORS: &str = "marketplace.collectors.collectors";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A query's answer as Tessera gives it, as sorted text rows, or its error.
async fn tessera_answer(
    server: &Server,
    token: &str,
    sql: &str,
) -> Result<Vec<String>, (u16, String)> {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/query", server.url))
        .bearer_auth(token)
        .header("accept", "application/vnd.apache.arrow.stream")
        .json(&serde_json::json!({ "sql": sql }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.bytes().await.unwrap();
    if status != 200 {
        return Err((status, String::from_utf8_lossy(&body).to_string()));
    }
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(&body[..]), None).unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    Ok(rows_of(&batches))
}

/// Rows as text, floats rounded (sums may be added up in another order), sorted.
fn rows_of(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Float64 | DataType::Float32 => {
                    let f = arrow::compute::cast(c, &DataType::Float64).unwrap();
                    let f = f.as_primitive::<arrow::datatypes::Float64Type>();
                    Arc::new(StringArray::from_iter(
                        (0..f.len())
                            .map(|i| (!f.is_null(i)).then(|| format!("{:.6e}", f.value(i)))),
                    )) as ArrayRef
                }
                _ => c.clone(),
            })
            .collect();
        let formatters: Vec<ArrayFormatter> = columns
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            rows.push(cells.join(" | "));
        }
    }
    rows.sort();
    rows
}

/// The full data of a table, as the admin reads it.
async fn raw_table(server: &Server, table: &str) -> Vec<RecordBatch> {
    let r = server
        .http()
        .post(format!("{}/api/v1/query", server.url))
        .header("accept", "application/vnd.apache.arrow.stream")
        .json(&serde_json::json!({ "sql": format!("SELECT * FROM {table}") }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body = r.bytes().await.unwrap();
    arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(&body[..]), None)
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// The reference session for a reader: its tables, filtered and masked in the data itself.
async fn reference(
    server: &Server,
    reader: &Reader,
    key: &[u8],
    raw_values: &mut HashSet<String>,
) -> SessionContext {
    let ctx = SessionContext::new();
    for (table, masked, filter) in &reader.tables {
        let mut batches = raw_table(server, table).await;
        let schema = batches[0].schema();
        if let Some(filter) = filter {
            // The filter applied to the data, by a session that knows nothing of grants.
            let scratch = SessionContext::new();
            scratch
                .register_table(
                    "t",
                    Arc::new(MemTable::try_new(schema.clone(), vec![batches]).unwrap()),
                )
                .unwrap();
            batches = scratch
                .sql(&format!("SELECT * FROM t WHERE {filter}"))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
        }
        // Each masked column replaced by the keyed hash of its text.
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| {
                if masked.contains(&f.name().as_str()) {
                    Field::new(f.name(), DataType::Utf8, true)
                } else {
                    f.as_ref().clone()
                }
            })
            .collect();
        let masked_schema = Arc::new(Schema::new(fields));
        let masked_batches: Vec<RecordBatch> = batches
            .iter()
            .map(|b| {
                let columns: Vec<ArrayRef> = schema
                    .fields()
                    .iter()
                    .zip(b.columns())
                    .map(|(f, c)| {
                        if !masked.contains(&f.name().as_str()) {
                            return c.clone();
                        }
                        let text = arrow::compute::cast(c, &DataType::Utf8).unwrap();
                        let text = text.as_string::<i32>();
                        Arc::new(StringArray::from_iter((0..text.len()).map(|i| {
                            (!text.is_null(i)).then(|| {
                                raw_values.insert(text.value(i).to_string());
                                tessera_query::hash_mask(key, text.value(i))
                            })
                        }))) as ArrayRef
                    })
                    .collect();
                RecordBatch::try_new(masked_schema.clone(), columns).unwrap()
            })
            .collect();
        let mut parts = table.split('.');
        let (domain, product, dataset) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let catalog = match ctx.catalog(domain) {
            Some(c) => c,
            None => {
                ctx.register_catalog(domain, Arc::new(MemoryCatalogProvider::new()));
                ctx.catalog(domain).unwrap()
            }
        };
        let schema_provider = match catalog.schema(product) {
            Some(s) => s,
            None => {
                catalog
                    .register_schema(product, Arc::new(MemorySchemaProvider::new()))
                    .unwrap();
                catalog.schema(product).unwrap()
            }
        };
        schema_provider
            .register_table(
                dataset.to_string(),
                Arc::new(MemTable::try_new(masked_schema, vec![masked_batches]).unwrap()),
            )
            .unwrap();
    }
    ctx
}

/// The generated queries over a reader's tables: projections, filters, joins across domains,
/// aggregates, subqueries, CTEs, UNION, window functions.
fn queries(reads_virality: bool) -> Vec<String> {
    let mut out = Vec::new();
    let cols = [
        "event_id, ip",
        "user_agent, dwell_ms",
        "event_type, ip, user_id",
        "*",
    ];
    for n in (0..2000).step_by(50) {
        for c in cols {
            out.push(format!("SELECT {c} FROM {EVENTS} WHERE dwell_ms > {n}"));
        }
        out.push(format!("SELECT event_type, count(*), count(DISTINCT ip), min(ip), max(user_agent) FROM {EVENTS} WHERE dwell_ms <= {n} GROUP BY event_type"));
        out.push(format!("WITH x AS (SELECT user_id, count(*) AS n FROM {EVENTS} WHERE dwell_ms > {n} GROUP BY user_id) SELECT max(n), count(*), sum(n) FROM x"));
        out.push(format!("SELECT ip AS v FROM {EVENTS} WHERE dwell_ms < {n} UNION SELECT contact_email FROM {COLLECTORS} WHERE purchases > {}", n / 500));
        out.push(format!("SELECT ip AS v FROM {EVENTS} WHERE dwell_ms < {n} UNION ALL SELECT user_agent FROM {EVENTS} WHERE dwell_ms > {n}"));
        out.push(format!("SELECT count(*) FROM {EVENTS} WHERE user_id IN (SELECT collector_id FROM {COLLECTORS} WHERE purchases > {})", n / 500));
        out.push(format!("SELECT e.event_id, c.contact_email, c.country FROM {EVENTS} e JOIN {COLLECTORS} c ON e.user_id = c.collector_id WHERE e.dwell_ms > {n}"));
        out.push(format!("SELECT avg(dwell_ms), stddev(dwell_ms), sum(dwell_ms) FROM {CLEAN} WHERE dwell_ms > {n}"));
    }
    for country in ["DE", "FR", "GB", "US", "XX"] {
        out.push(format!("SELECT collector_id, contact_email, purchases FROM {COLLECTORS} WHERE country = '{country}'"));
        out.push(format!("SELECT country, count(*), count(DISTINCT contact_email), min(contact_email) FROM {COLLECTORS} WHERE country <> '{country}' GROUP BY country"));
        out.push(format!("SELECT collector_id, purchases, rank() OVER (PARTITION BY country ORDER BY purchases DESC, collector_id) FROM {COLLECTORS} WHERE country <> '{country}'"));
        out.push(format!("SELECT contact_email, row_number() OVER (ORDER BY contact_email) FROM {COLLECTORS} WHERE country = '{country}'"));
        out.push(format!("SELECT c.country, count(*) FROM {EVENTS} e JOIN {COLLECTORS} c ON e.user_id = c.collector_id WHERE c.country <> '{country}' GROUP BY c.country"));
        out.push(format!("SELECT (SELECT max(contact_email) FROM {COLLECTORS} WHERE country = '{country}') AS m, count(*) FROM {EVENTS}"));
        out.push(format!(
            "SELECT EXISTS (SELECT 1 FROM {COLLECTORS} WHERE country = '{country}')"
        ));
    }
    for t in ["view", "like", "share", "purchase", "none"] {
        for k in [1, 2, 5, 10, 20] {
            out.push(format!("SELECT ip, count(*) AS n FROM {EVENTS} WHERE event_type = '{t}' GROUP BY ip ORDER BY n DESC, ip LIMIT {k}"));
            out.push(format!("SELECT user_agent, count(*) FROM {EVENTS} WHERE event_type <> '{t}' GROUP BY user_agent HAVING count(*) >= {k}"));
            out.push(format!("SELECT event_id, dwell_ms, sum(dwell_ms) OVER (PARTITION BY user_id ORDER BY occurred_at, event_id) FROM {CLEAN} WHERE event_type = '{t}' AND dwell_ms > {}", k * 100));
            out.push(format!("SELECT lower(ip), length(user_agent), upper(substr(ip, 1, {k})) FROM {EVENTS} WHERE event_type = '{t}'"));
            out.push(format!("SELECT count(*) FROM {EVENTS} WHERE ip = '203.0.113.{k}' OR user_agent LIKE '%Mozilla%'"));
            out.push(format!("WITH a AS (SELECT DISTINCT user_id FROM {EVENTS} WHERE event_type = '{t}'), b AS (SELECT collector_id FROM {COLLECTORS}) SELECT count(*) FROM a JOIN b ON a.user_id = b.collector_id"));
        }
    }
    if reads_virality {
        for d in [0, 1, 3, 7, 30] {
            out.push(format!("SELECT day, sum(views), max(virality_score) FROM {VIRALITY} WHERE day >= (SELECT max(day) FROM {VIRALITY}) - INTERVAL '{d}' DAY GROUP BY day"));
            out.push(format!("SELECT v.asset_id, v.views, count(e.event_id) FROM {VIRALITY} v JOIN {EVENTS} e ON e.asset_id = v.asset_id WHERE v.day >= (SELECT max(day) FROM {VIRALITY}) - INTERVAL '{d}' DAY AND v.views > 0 GROUP BY v.asset_id, v.views"));
        }
    }
    out
}

#[test]
fn masked_and_filtered_answers_equal_a_reference_over_masked_copies() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start("demo", data.path(), &["--scale", "0.01"]);
    let analyst = token_printed_for(&server.banner, "dpatel").unwrap();
    // A user who reads the engagement events and the collectors through row-filtered grants.
    let filtered = server
        .cli(&["token", "create", "--user", "rita"])
        .ok()
        .stdout
        .trim()
        .to_string();
    for (product, filter) in [
        (
            "artwork_engagement.engagement",
            "event_type IN ('view', 'like')",
        ),
        ("marketplace.collectors", "country IN ('DE', 'GB')"),
    ] {
        server
            .cli(&[
                "access",
                "grant",
                product,
                "--user",
                "rita",
                "--row-filter",
                filter,
            ])
            .ok();
    }
    let readers = [
        Reader {
            user: "dpatel",
            token: analyst,
            tables: vec![
                (EVENTS, &["user_agent", "ip"], None),
                (CLEAN, &[], None),
                (VIRALITY, &[], None),
                (COLLECTORS, &["contact_email"], None),
            ],
        },
        Reader {
            user: "rita",
            token: filtered,
            tables: vec![
                (
                    EVENTS,
                    &["user_agent", "ip"],
                    Some("event_type IN ('view', 'like')"),
                ),
                (CLEAN, &[], Some("event_type IN ('view', 'like')")),
                (
                    COLLECTORS,
                    &["contact_email"],
                    Some("country IN ('DE', 'GB')"),
                ),
            ],
        },
    ];
    // The mesh's mask key, read from its metadata store as another instance would.
    let python = std::env::var("TESSERA_TEST_PYTHON").expect("run with scripts/test");
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT value FROM mesh_secrets WHERE name = 'mask_key'\").fetchone()[0])",
        ])
        .arg(data.path().join("metadata.db"))
        .output()
        .unwrap();
    let key = hex::decode(String::from_utf8(out.stdout).unwrap().trim()).unwrap();

    let runtime = rt();
    let (mut compared, mut answered) = (0, 0);
    for (i, reader) in readers.iter().enumerate() {
        let mut raw_values = HashSet::new();
        let reference = runtime.block_on(reference(&server, reader, &key, &mut raw_values));
        for sql in queries(i == 0) {
            let ours = runtime.block_on(tessera_answer(&server, &reader.token, &sql));
            let theirs = runtime.block_on(async {
                match reference.sql(&sql).await {
                    Ok(df) => df
                        .collect()
                        .await
                        .map(|b| rows_of(&b))
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            });
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b, "reader {i}: {sql}");
                    answered += 1;
                }
                (Err((_, e)), Err(_)) => {
                    assert!(
                        !raw_values.iter().any(|v| e.contains(v.as_str())),
                        "{sql}: {e}"
                    );
                }
                _ => panic!("reader {i}: {sql}\nTessera: {ours:?}\nreference: {theirs:?}"),
            }
            if let Ok(rows) = &ours {
                for row in rows {
                    for cell in row.split(" | ") {
                        assert!(!raw_values.contains(cell), "reader {i}: {sql} shows {cell}");
                    }
                }
            }
            compared += 1;
        }
        // The PostgreSQL and Flight SQL front ends give the same answers as HTTP to the same
        // principal.
        let queries_file = data.path().join(format!("queries-{i}.json"));
        std::fs::write(
            &queries_file,
            serde_json::to_string(&queries(i == 0)).unwrap(),
        )
        .unwrap();
        let pg = crate::postgres_wire::conninfo(
            &server,
            reader.user,
            &reader.token,
            "artwork_engagement",
        );
        let out = std::process::Command::new(&python)
            .arg(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/it/front_end_differential.py"),
            )
            .args([
                &pg,
                &crate::flight_sql::flight_uri(&server),
                &server.url,
                &reader.token,
            ])
            .arg(&queries_file)
            .output()
            .unwrap();
        let out: Run = out.into();
        let out = out.ok();
        let report: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
        assert_eq!(
            report["differences"],
            serde_json::json!([]),
            "reader {i}: {report}"
        );
        assert!(
            report["answered"].as_u64().unwrap() * 100 >= report["compared"].as_u64().unwrap() * 95,
            "reader {i}: {report}"
        );

        // EXPLAIN would show the masks and filters: refused.
        let refused = runtime.block_on(tessera_answer(
            &server,
            &reader.token,
            &format!("EXPLAIN SELECT * FROM {EVENTS}"),
        ));
        assert!(matches!(refused, Err((403, _))), "{refused:?}");
    }
    assert!(compared >= 1000, "only {compared} queries compared");
    // Agreeing on errors proves little: nearly every query must be answered by both.
    assert!(
        answered * 100 >= compared * 95,
        "{answered} of {compared} queries answered"
    );
}
