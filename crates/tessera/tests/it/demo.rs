//! The artgo demo, end to end: loaded by `tessera demo --no-serve`, loaded again without a
//! change, served by `tessera serve`, queried by the `.slt` files in `tests/slt/`, and read by
//! DuckDB straight from the Delta tables.

use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

use crate::support::*;

/// The demo's scale in tests: small enough for debug builds, big enough for every dataset.
const SCALE: &str = "0.05";

/// SQL over HTTP for sqllogictest: each answer fetched as Arrow and printed value by value.
struct HttpDb {
    url: String,
    http: reqwest::Client,
}

#[derive(Debug)]
struct SqlError(String);

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SqlError {}

#[async_trait::async_trait]
impl AsyncDB for HttpDb {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        let response = self
            .http
            .post(format!("{}/api/v1/query", self.url))
            .header("accept", "application/vnd.apache.arrow.stream")
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await
            .map_err(|e| SqlError(e.to_string()))?;
        if !response.status().is_success() {
            let body: serde_json::Value =
                response.json().await.map_err(|e| SqlError(e.to_string()))?;
            return Err(SqlError(
                body["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| SqlError(e.to_string()))?;
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .map_err(|e| SqlError(e.to_string()))?;
        let columns = reader.schema().fields().len();
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for batch in reader {
            let batch = batch.map_err(|e| SqlError(e.to_string()))?;
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
                .collect();
            for row in 0..batch.num_rows() {
                rows.push(
                    formatters
                        .iter()
                        .map(|f| match f.value(row).to_string() {
                            s if s.is_empty() => "(empty)".to_string(),
                            s => s,
                        })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; columns],
            rows,
        })
    }

    async fn shutdown(&mut self) {}
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

fn loaded_counts(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| l.contains(" rows accepted"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_artgo_demo_loads_serves_and_answers_sql() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    // A small event log bound: the load fills it many times over and must commit its way on
    // (the demo runs no committer of its own while it loads).
    let first = run(&[
        "demo",
        "--no-serve",
        "--scale",
        SCALE,
        "--data-dir",
        dir,
        "--event-max-backlog-bytes",
        "100000",
        // At this scale the event stream makes a few commits, fewer than the default ten
        // between checkpoints.
        "--checkpoint-every",
        "2",
    ])
    .ok();
    assert!(
        first.stdout.contains("applied marketplace.provenance"),
        "{}",
        first.stdout
    );
    assert!(
        first
            .stdout
            .contains("artwork_engagement.engagement.events_raw"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("quarantined"),
        "bad rows should be quarantined: {}",
        first.stdout
    );
    // The council publishes its customer_id term and policy first; every product complies with
    // them and the standard library in full: no violation, not even a warning.
    assert!(
        first.stdout.contains(
            "governance council: glossary term customer_id@1.0.0, global policy customer-ids-use-the-glossary"
        ),
        "{}",
        first.stdout
    );
    for product in [
        "digital_assets.asset_catalog",
        "artwork_engagement.engagement",
        "marketplace.provenance",
        "marketplace.collectors",
        "marketing.artist_campaigns",
    ] {
        let applied = first
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("applied {product} (")))
            .unwrap_or_else(|| panic!("{product} not applied: {}", first.stdout));
        assert!(
            // The standard library and the artgo council's customer-id policy.
            applied.ends_with(&format!(
                "; governance: {} policies, 0 blocking, 0 warning(s))",
                tessera_governance::STANDARD_POLICIES.len() + 1
            )),
            "{applied}"
        );
    }
    // Rules that fail on purpose show: bot traffic (a warning in the check report) and the
    // tampered sale that breaks the provenance hash chain (a `sql` rule that refuses its batch
    // at the commit gate).
    for expected in [
        "warning artwork_engagement.engagement.events_raw: Bot traffic stays under 1 % of events (the query returned 6.0393",
        "batch artgo-42-0.05-sales-9 refused whole: the batch would make check sales.hash_chain_intact fail: the query returned 1, which does not meet = 0",
        "refused a batch of marketplace.provenance.sales: Every sale's prev_hash is the hash of the sale before it (the query returned 1, which does not meet = 0)",
        "failed artwork_engagement.engagement.events_raw: latency (newest data) is at most 5 m old",
        "marketing.artist_campaigns                       passed   score 100.0",
    ] {
        assert!(
            first.stdout.contains(expected),
            "{expected}\n{}",
            first.stdout
        );
    }
    // The loaded tables are maintained before the transforms read them: the event stream's
    // commits end in a checkpoint, as the server's maintenance would leave them.
    let maintained = first
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("maintained the tables: "))
        .unwrap_or_else(|| panic!("no maintenance pass: {}", first.stdout));
    assert!(
        !maintained.contains(" 0 table(s) checkpointed"),
        "{maintained}"
    );
    assert!(
        data.path()
            .join("tables/artwork_engagement/engagement/events_raw/_delta_log/_last_checkpoint")
            .exists(),
        "{maintained}"
    );
    assert!(
        !first.stdout.contains("covers the sale"),
        "{}",
        first.stdout
    );
    // Nothing for its user to worry about on the way (delta-rs said it derived a merge's
    // metrics on every merge).
    assert!(!first.stderr.contains("WARN"), "{}", first.stderr);

    // Loading again writes nothing new and reports the same rows.
    let second = run(&["demo", "--no-serve", "--scale", SCALE, "--data-dir", dir]).ok();
    assert_eq!(loaded_counts(&first.stdout), loaded_counts(&second.stdout));
    let other = run(&["demo", "--no-serve", "--scale", "0.1", "--data-dir", dir]).failed();
    assert!(
        other.stderr.contains("already holds the artgo demo"),
        "{}",
        other.stderr
    );

    let server = Server::start("serve", data.path(), &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for file in slt_files() {
        let url = server.url.clone();
        let http = server.http();
        let mut runner = sqllogictest::Runner::new(move || {
            let db = HttpDb {
                url: url.clone(),
                http: http.clone(),
            };
            async move { Ok(db) }
        });
        runner.with_column_validator(|_, _| true);
        runtime
            .block_on(runner.run_file_async(&file))
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }

    // Lineage from the transforms' plans: the whole chain from the engagement stream and the
    // sales to the campaign targets, and one column's sources with how each reaches it.
    let chain = server
        .cli(&[
            "lineage",
            "marketing.artist_campaigns.campaign_targets",
            "--format",
            "json",
        ])
        .ok();
    let chain: serde_json::Value = serde_json::from_str(&chain.stdout).unwrap();
    let mut upstream: Vec<&str> = chain["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["from"].as_str().unwrap())
        .collect();
    upstream.sort();
    upstream.dedup();
    assert_eq!(
        upstream,
        [
            "artwork_engagement.engagement.events_clean",
            "artwork_engagement.engagement.events_raw",
            "artwork_engagement.engagement.trending_artists",
            "artwork_engagement.engagement.virality_daily",
            "digital_assets.asset_catalog.assets",
            "events:artwork_engagement.engagement.events_raw",
            "marketplace.provenance.sales",
            "source:digital_assets.asset_catalog.upload_drops",
        ]
    );
    let segment = server
        .cli(&[
            "lineage",
            "marketing.artist_campaigns.campaign_targets",
            "--column",
            "segment",
            "--depth",
            "1",
        ])
        .ok();
    let job = "(transform marketing.artist_campaigns.campaign_targets)";
    let to = "marketing.artist_campaigns.campaign_targets.segment";
    assert_eq!(
        segment.stdout,
        format!(
            "Upstream of {to}:
  artwork_engagement.engagement.trending_artists.artist_id -> {to} [join]  {job}
  artwork_engagement.engagement.trending_artists.rank -> {to} [filter, conditional]  {job}
  digital_assets.asset_catalog.assets.artist_id -> {to} [join, group_by]  {job}
  digital_assets.asset_catalog.assets.asset_id -> {to} [join]  {job}
  marketplace.provenance.sales.asset_id -> {to} [join]  {job}
"
        )
    );

    // The tables are plain Delta: DuckDB reads them without Tessera.
    let python = std::env::var("TESSERA_TEST_PYTHON")
        .expect("TESSERA_TEST_PYTHON is not set: run the suite with scripts/test");
    let sales = data.path().join("tables/marketplace/provenance/sales");
    let script = r#"
import sys, pathlib, duckdb, duckdb_extension_delta
ext = next(pathlib.Path(duckdb_extension_delta.__file__).parent.rglob("delta.duckdb_extension"))
# A slow scan would otherwise draw a progress bar on standard output.
con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
con.execute("PRAGMA disable_progress_bar")
con.execute(f"LOAD '{ext}'")
print(con.execute(f"SELECT count(*), sum(price) FROM delta_scan('{sys.argv[1]}')").fetchone())
"#;
    let out = Command::new(python)
        .args(["-c", script, sales.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The answer is the last line (whatever DuckDB may draw before it).
    let duckdb = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    let ours = server
        .cli(&[
            "query",
            "SELECT count(*) AS n, sum(price) AS total FROM marketplace.provenance.sales",
            "--format",
            "csv",
        ])
        .ok();
    let ours: Vec<&str> = ours.stdout.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(duckdb, format!("({}, Decimal('{}'))", ours[0], ours[1]));
}

/// `tessera demo` serving: a fresh token for each persona on every run, printed with who it is,
/// and the admin's kept for the CLI.
#[test]
fn the_demo_mints_a_token_for_each_persona_on_every_run() {
    let data = tempfile::tempdir().unwrap();
    let personas = [
        ("admin", "groups: admins", "teams: -"),
        (
            "mkowalski",
            "groups: -",
            "teams: asset platform engineering",
        ),
        ("asato", "groups: -", "teams: community & UX"),
        ("obanjo", "groups: -", "teams: marketplace & payments"),
        ("lferreira", "groups: -", "teams: growth"),
        ("dpatel", "groups: marketing analysts", "teams: -"),
        ("hmueller", "groups: governance council", "teams: -"),
    ];
    let mut earlier = Vec::new();
    for _ in 0..2 {
        let server = Server::start("demo", data.path(), &["--scale", "0.01"]);
        let me = server.cli(&["whoami"]).ok();
        assert!(me.stdout.starts_with("admin (user)"), "{}", me.stdout);
        for (persona, groups, teams) in personas {
            let token = token_printed_for(&server.banner, persona)
                .unwrap_or_else(|| panic!("no token for {persona}: {:?}", server.banner));
            let me = server.cli_as(&token, &["whoami"]).ok();
            assert!(
                me.stdout.starts_with(&format!("{persona} (user)")),
                "{}",
                me.stdout
            );
            assert!(
                me.stdout.contains(groups) && me.stdout.contains(teams),
                "{persona}: {}",
                me.stdout
            );
            assert!(
                !earlier.contains(&token),
                "{persona}'s token is new on every run"
            );
            earlier.push(token);
        }
        // The demo's standing grants, made once: each owner team reads the products its input
        // ports name; the marketing analysts read the engagement product and nothing else.
        let grants = server
            .cli(&["access", "grants", "marketplace.provenance"])
            .ok();
        let growth_rows = grants
            .stdout
            .lines()
            .filter(|l| l.contains("team:growth"))
            .count();
        assert_eq!(growth_rows, 1, "{}", grants.stdout);
        let growth = token_printed_for(&server.banner, "lferreira").unwrap();
        let analyst = token_printed_for(&server.banner, "dpatel").unwrap();
        let sales = "SELECT count(*) FROM marketplace.provenance.sales";
        server.cli_as(&growth, &["query", sales]).ok();
        let refused = server.cli_as(&analyst, &["query", sales]).failed();
        assert!(
            refused
                .stderr
                .contains("user dpatel may not read dataset marketplace.provenance.sales"),
            "{}",
            refused.stderr
        );
        server
            .cli_as(
                &analyst,
                &[
                    "query",
                    "SELECT count(*) FROM artwork_engagement.engagement.virality_daily",
                ],
            )
            .ok();
        // The analyst reads events and collectors with their personal data masked; the owner
        // teams read them as they are.
        let masked = |token: &str, sql: &str| {
            let out = server
                .cli_as(token, &["query", sql, "--format", "csv"])
                .ok();
            out.stdout.lines().nth(1).unwrap_or_default().to_string()
        };
        let emails = "SELECT min(contact_email) FROM marketplace.collectors.collectors";
        let owner = token_printed_for(&server.banner, "obanjo").unwrap();
        assert!(masked(&owner, emails).ends_with("@mail.artgo.example"));
        let hashed = masked(&analyst, emails);
        assert!(
            hashed.len() == 64 && hashed.chars().all(|c| c.is_ascii_hexdigit()),
            "{hashed}"
        );
        let ips = "SELECT min(ip) FROM artwork_engagement.engagement.events_raw";
        let engagement = token_printed_for(&server.banner, "asato").unwrap();
        assert!(masked(&engagement, ips).contains('.'));
        let hashed = masked(&analyst, ips);
        assert!(hashed.len() == 64 && !hashed.contains('.'), "{hashed}");
    }
}
