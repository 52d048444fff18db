//! `tessera demo`: the artgo reference mesh (PRODUCT.md section 4) on the embedded default.
//!
//! It applies the five product folders under `examples/artgo/` (embedded in the binary, so the
//! demo runs from anywhere), generates deterministic synthetic source data and loads it through
//! the same service calls the API uses — the asset catalog as files its product's files source
//! pulls, the engagement stream through the event API, sales as batches —, runs the products'
//! SQL transforms (`transforms/*.sql`) that compute the other datasets from them, then serves
//! the mesh and prints example queries.
//! Running it again on the same data directory writes nothing new: every batch has a fixed id.

mod generate;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arrow::record_batch::RecordBatch;
use indicatif::{ProgressBar, ProgressStyle};
use tessera_core::DatasetRef;
use tessera_server::views::{
    ApplyRequest, GlossaryFilesRequest, GrantRequest, IngestReport, PolicyFilesRequest, SourceFile,
    TokenRequest,
};
use tessera_server::{
    ADMIN_GROUP, AccessService, Application, BatchData, CatalogService, FrontEnd, GlossaryService,
    GovernanceService, IngestService, Mesh, PublishService, QualityService, REFUSED_COMMIT,
    RequestContext, SourcesService, TransformsService,
};

use crate::cli::DemoArgs;
use crate::commands::serve;

pub use generate::{Sizes, generate};

/// The artgo product folders, as files: (path shown in messages, content).
const FOLDERS: &[&[(&str, &str)]] = &[
    &[
        (
            "examples/artgo/digital_assets/product.odps.yaml",
            include_str!("../../../../examples/artgo/digital_assets/product.odps.yaml"),
        ),
        (
            "examples/artgo/digital_assets/assets.odcs.yaml",
            include_str!("../../../../examples/artgo/digital_assets/assets.odcs.yaml"),
        ),
        (
            "examples/artgo/digital_assets/asset_analytics.odcs.yaml",
            include_str!("../../../../examples/artgo/digital_assets/asset_analytics.odcs.yaml"),
        ),
        (
            "examples/artgo/digital_assets/sources/upload_drops.yaml",
            include_str!("../../../../examples/artgo/digital_assets/sources/upload_drops.yaml"),
        ),
        (
            "examples/artgo/digital_assets/transforms/format_trends.sql",
            include_str!("../../../../examples/artgo/digital_assets/transforms/format_trends.sql"),
        ),
        (
            "examples/artgo/digital_assets/transforms/storage_costs.sql",
            include_str!("../../../../examples/artgo/digital_assets/transforms/storage_costs.sql"),
        ),
    ],
    &[
        (
            "examples/artgo/artwork_engagement/product.odps.yaml",
            include_str!("../../../../examples/artgo/artwork_engagement/product.odps.yaml"),
        ),
        (
            "examples/artgo/artwork_engagement/events.odcs.yaml",
            include_str!("../../../../examples/artgo/artwork_engagement/events.odcs.yaml"),
        ),
        (
            "examples/artgo/artwork_engagement/virality.odcs.yaml",
            include_str!("../../../../examples/artgo/artwork_engagement/virality.odcs.yaml"),
        ),
        (
            "examples/artgo/artwork_engagement/transforms/events_clean.sql",
            include_str!(
                "../../../../examples/artgo/artwork_engagement/transforms/events_clean.sql"
            ),
        ),
        (
            "examples/artgo/artwork_engagement/transforms/virality_daily.sql",
            include_str!(
                "../../../../examples/artgo/artwork_engagement/transforms/virality_daily.sql"
            ),
        ),
        (
            "examples/artgo/artwork_engagement/transforms/trending_artists.sql",
            include_str!(
                "../../../../examples/artgo/artwork_engagement/transforms/trending_artists.sql"
            ),
        ),
    ],
    &[
        (
            "examples/artgo/marketplace/product.odps.yaml",
            include_str!("../../../../examples/artgo/marketplace/product.odps.yaml"),
        ),
        (
            "examples/artgo/marketplace/provenance.odcs.yaml",
            include_str!("../../../../examples/artgo/marketplace/provenance.odcs.yaml"),
        ),
        (
            "examples/artgo/marketplace/transforms/ownership_history.sql",
            include_str!("../../../../examples/artgo/marketplace/transforms/ownership_history.sql"),
        ),
    ],
    &[
        (
            "examples/artgo/marketplace_collectors/product.odps.yaml",
            include_str!("../../../../examples/artgo/marketplace_collectors/product.odps.yaml"),
        ),
        (
            "examples/artgo/marketplace_collectors/collectors.odcs.yaml",
            include_str!("../../../../examples/artgo/marketplace_collectors/collectors.odcs.yaml"),
        ),
        (
            "examples/artgo/marketplace_collectors/transforms/collectors.sql",
            include_str!(
                "../../../../examples/artgo/marketplace_collectors/transforms/collectors.sql"
            ),
        ),
    ],
    &[
        (
            "examples/artgo/marketing/product.odps.yaml",
            include_str!("../../../../examples/artgo/marketing/product.odps.yaml"),
        ),
        (
            "examples/artgo/marketing/campaign_targets.odcs.yaml",
            include_str!("../../../../examples/artgo/marketing/campaign_targets.odcs.yaml"),
        ),
        (
            "examples/artgo/marketing/transforms/campaign_targets.sql",
            include_str!("../../../../examples/artgo/marketing/transforms/campaign_targets.sql"),
        ),
    ],
];

/// The queries the demo suggests, one per paragraph of `examples/artgo/queries.sql`: a `--`
/// comment that says what it shows, then the statement. The benchmark reads the same file.
const EXAMPLE_QUERIES: &str = include_str!("../../../../examples/artgo/queries.sql");

/// (what it shows, SQL on one line) for each example query.
pub fn example_queries() -> Vec<(String, String)> {
    EXAMPLE_QUERIES
        .split(';')
        .filter_map(|block| {
            let mut title = String::new();
            let mut sql = Vec::new();
            for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
                match line.strip_prefix("--") {
                    Some(comment) => title = comment.trim().to_string(),
                    None => sql.push(line),
                }
            }
            (!sql.is_empty()).then(|| (title, sql.join(" ")))
        })
        .collect()
}

/// The artgo governance council's shared definition and global policy (beside the standard
/// library): the glossary term `customer_id`, and the rule that customer-id columns use it.
const COUNCIL_TERM: (&str, &str) = (
    "examples/artgo/governance/customer_id.yaml",
    include_str!("../../../../examples/artgo/governance/customer_id.yaml"),
);
const COUNCIL_POLICY: (&str, &str) = (
    "examples/artgo/governance/customer-ids-use-the-glossary.yaml",
    include_str!("../../../../examples/artgo/governance/customer-ids-use-the-glossary.yaml"),
);

/// Publishes the council's term and policy before any product, so every product is checked
/// against them; on a mesh that has them already, nothing is written.
async fn council_governance(mesh: &Mesh) -> Result<()> {
    let file = |(name, content): (&str, &str)| SourceFile {
        name: name.to_string(),
        content: content.to_string(),
    };
    let published = mesh
        .apply_glossary(
            &demo(),
            &GlossaryFilesRequest {
                files: vec![file(COUNCIL_TERM)],
            },
        )
        .await?;
    let policy_id = "customer-ids-use-the-glossary";
    if mesh.governance_policy(&demo(), policy_id).await.is_err() {
        mesh.apply_global_policies(
            &demo(),
            &PolicyFilesRequest {
                files: vec![file(COUNCIL_POLICY)],
            },
        )
        .await?;
    }
    let terms: Vec<String> = published
        .terms
        .iter()
        .map(|t| format!("{}@{}", t.name, t.version))
        .collect();
    println!(
        "  governance council: glossary term {}, global policy {policy_id}",
        terms.join(", ")
    );
    Ok(())
}

/// Rows per ingested batch of a large source dataset.
const CHUNK_ROWS: usize = 100_000;

/// The demo's own work (applying, loading, checking) runs as the system principal
/// `system:demo`.
fn demo() -> RequestContext {
    RequestContext::system("demo", "demo", FrontEnd::Demo)
}

pub async fn run(args: &DemoArgs) -> Result<()> {
    if !(args.scale > 0.0 && args.scale.is_finite()) {
        bail!("--scale must be a positive number, got {}", args.scale);
    }
    check_same_parameters(&args.serve.data_dir, args.seed, args.scale)?;
    let config = serve::config(&args.serve);
    let started = Instant::now();
    let mesh = std::sync::Arc::new(Mesh::open(&config).await?);
    println!(
        "Loading the artgo mesh (scale {}, seed {}) into {}",
        args.scale,
        args.seed,
        args.serve.data_dir.display()
    );
    council_governance(&mesh).await?;
    for folder in FOLDERS {
        let request = ApplyRequest {
            files: folder
                .iter()
                .map(|(name, content)| SourceFile {
                    name: name.to_string(),
                    content: content.to_string(),
                })
                .collect(),
            dry_run: false,
        };
        let plan = mesh.apply(&demo(), &request).await?;
        let created = plan
            .changes
            .iter()
            .filter(|c| c.action != tessera_server::views::Action::Unchanged)
            .count();
        let governance = plan.policies.as_ref().map_or(String::new(), |o| {
            format!(
                "; governance: {} policies, {} blocking, {} warning(s)",
                o.evaluated, o.blocking, o.warnings
            )
        });
        println!(
            "  applied {} ({} change(s){governance})",
            plan.product, created
        );
    }

    grant_standing_access(&mesh).await?;

    let sizes = Sizes::at(args.scale);
    let seed = args.seed;
    let data = tokio::task::spawn_blocking(move || generate(seed, sizes));
    let data = data.await.context("generating the synthetic data")?;
    let mut total_rows = 0i64;
    let prefix = format!("artgo-{}-{}", args.seed, args.scale);
    // Sales come in 10 batches: the last one carries the tampered sale, and the contract's
    // hash-chain rule refuses it whole at the commit gate.
    let batches_of = |rows: usize, batches: usize| rows.div_ceil(batches).clamp(1, CHUNK_ROWS);
    // The asset catalog arrives as CSV files the upload service drops into a folder, which the
    // product's files source (`sources/upload_drops.yaml`) pulls from.
    total_rows += drop_files(
        &mesh,
        &args.serve.data_dir,
        "digital_assets.asset_catalog.assets",
        "upload_drops",
        "incoming/digital_assets/assets",
        &data.assets,
    )
    .await?;
    // The engagement stream arrives through the event API, in many small requests.
    total_rows += stream_events(
        &mesh,
        "artwork_engagement.engagement.events_raw",
        &data.events_raw,
        &prefix,
    )
    .await?;
    let sales = batches_of(data.sales.num_rows(), 10);
    total_rows += load(
        &mesh,
        "marketplace.provenance.sales",
        data.sales,
        &prefix,
        sales,
    )
    .await?;
    maintain(&mesh, &config.maintenance.policy).await?;
    total_rows += compute_derived(&mesh).await?;
    println!(
        "Loaded {total_rows} rows in {:.1} s.",
        started.elapsed().as_secs_f64()
    );
    print_checks(&mesh).await?;
    if args.no_serve {
        mesh.close().await;
        return Ok(());
    }
    let tokens = mint_persona_tokens(&mesh).await?;
    let app = Application::with_mesh(mesh, &config).await?;
    let url = serve::local_url(&app);
    let admin_token = &tokens[0].1;
    let kept = serve::keep_admin_token(&args.serve, &app, admin_token)?;
    println!();
    println!(
        "Tokens of the demo's personas (new on every run; the admin's is in {kept}, so the CLI on this machine uses it):"
    );
    for ((persona, token), (_, _, _, role)) in tokens.iter().zip(PERSONAS) {
        println!("  {persona:<10} {role:<58} {token}");
    }
    println!(
        "Act as one with `tessera --token TOKEN ...`, TESSERA_TOKEN=TOKEN, or `tessera login TOKEN`; `tessera whoami` says who you are."
    );
    println!();
    serve::announce(&app);
    println!("Try (with TESSERA_URL={url}, or --server {url}):");
    for (what, sql) in example_queries() {
        println!("  # {what}");
        println!("  tessera query \"{sql}\"");
    }
    println!("Or over HTTP:");
    println!(
        "  curl -s {url}/api/v1/query -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' -d '{{\"sql\": \"SELECT count(*) FROM marketplace.provenance.sales\"}}'"
    );
    serve::serve(app).await
}

/// The demo's people: (user, groups, teams, who they are). The first is the platform admin; the
/// owner teams are those of the artgo product files.
const PERSONAS: &[(&str, &[&str], &[&str], &str)] = &[
    (
        "admin",
        &[ADMIN_GROUP],
        &[],
        "platform admin (group admins)",
    ),
    (
        "mkowalski",
        &[],
        &["asset platform engineering"],
        "owner team of digital_assets (asset platform engineering)",
    ),
    (
        "asato",
        &[],
        &["community & UX"],
        "owner team of artwork_engagement (community & UX)",
    ),
    (
        "obanjo",
        &[],
        &["marketplace & payments"],
        "owner team of marketplace (marketplace & payments)",
    ),
    (
        "lferreira",
        &[],
        &["growth"],
        "owner team of marketing (growth)",
    ),
    (
        "dpatel",
        &[ANALYSTS],
        &[],
        "marketing analyst, not in the growth team",
    ),
    (
        "hmueller",
        &["governance council"],
        &[],
        "governance council member",
    ),
];

/// The group of the marketing analyst persona, granted read on the engagement product.
const ANALYSTS: &str = "marketing analysts";

/// The grants the demo mesh starts with: each product's owner team reads the products its input
/// ports name (so what it derives from them, and its `sql` rules, can read them), and the
/// marketing analysts read the engagement and collectors products (their personal data masked).
/// Made once; a later run finds them.
async fn grant_standing_access(mesh: &Mesh) -> Result<()> {
    let products = mesh.products(&demo(), None).await?;
    let datasets = mesh.datasets(&demo(), None).await?;
    let existing = mesh.grants(&demo(), None).await?;
    let mut wanted: Vec<(String, String)> =
        ["artwork_engagement.engagement", "marketplace.collectors"]
            .iter()
            .map(|p| (p.to_string(), format!("group:{ANALYSTS}")))
            .collect();
    for p in &products {
        let Some(owner) = &p.owner else { continue };
        let view = mesh.product(&demo(), &p.domain, &p.name).await?;
        for contract in view
            .input_ports
            .iter()
            .filter_map(|i| i.contract_id.as_ref())
        {
            for d in datasets.iter().filter(|d| &d.contract_id == contract) {
                let source = format!("{}.{}", d.domain, d.product);
                let pair = (source, format!("team:{owner}"));
                if (d.domain != p.domain || d.product != p.name) && !wanted.contains(&pair) {
                    wanted.push(pair);
                }
            }
        }
    }
    for (product, grantee) in wanted {
        if existing
            .iter()
            .any(|g| g.product == product && g.grantee == grantee)
        {
            continue;
        }
        let grant = mesh
            .grant(
                &demo(),
                &GrantRequest {
                    product: product.clone(),
                    grantee: grantee.clone(),
                    days: None,
                    row_filter: None,
                },
            )
            .await
            .with_context(|| format!("granting {grantee} read on {product}"))?;
        println!("  granted {} read on {}", grant.grantee, grant.product);
    }
    Ok(())
}

/// A fresh token for every persona, in the order of [`PERSONAS`]: (user, token).
async fn mint_persona_tokens(mesh: &Mesh) -> Result<Vec<(String, String)>> {
    let mut tokens = Vec::new();
    for (user, groups, teams, _) in PERSONAS {
        let created = mesh
            .create_token(
                &demo(),
                &TokenRequest {
                    user: user.to_string(),
                    groups: groups.iter().map(|g| g.to_string()).collect(),
                    teams: teams.iter().map(|t| t.to_string()).collect(),
                    description: Some("tessera demo".into()),
                },
            )
            .await
            .with_context(|| format!("making a token for the demo persona {user}"))?;
        tokens.push((created.user, created.token));
    }
    Ok(tokens)
}

/// Runs every product's contract checks and says what did not pass: the demo data breaks some
/// rules on purpose (bot traffic in `events_raw`, a tampered link in the sales hash chain).
async fn print_checks(mesh: &Mesh) -> Result<()> {
    println!("Contract checks:");
    for folder in FOLDERS {
        let (_, descriptor) = folder[0];
        let product = match tessera_spec::load("product.odps.yaml", descriptor)? {
            tessera_spec::Loaded::Product(p) => p,
            _ => bail!("the first file of a demo folder is its product"),
        };
        let report = mesh
            .check(
                &demo(),
                product.domain.as_str(),
                product.name.as_str(),
                None,
                "on_demand",
            )
            .await?;
        let score = report.score.map_or("-".into(), |s| format!("{s:.1}"));
        println!("  {:<48} {:<8} score {score}", report.target, report.result);
        for run in &report.runs {
            for c in run.checks.iter().filter(|c| c.result != "passed") {
                println!(
                    "    {} {}: {} ({})",
                    c.result, run.dataset, c.name, c.reason
                );
            }
            // What the commit gate kept out: the data is not in the table, the run is kept.
            let dataset = run.dataset.rsplit('.').next().unwrap_or_default();
            let history = mesh
                .check_history(
                    &demo(),
                    product.domain.as_str(),
                    product.name.as_str(),
                    dataset,
                    100,
                )
                .await?;
            for refused in history.iter().filter(|r| r.trigger == REFUSED_COMMIT) {
                for c in refused.checks.iter().filter(|c| c.result == "failed") {
                    println!(
                        "    refused a batch of {}: {} ({})",
                        run.dataset, c.name, c.reason
                    );
                }
            }
        }
    }
    Ok(())
}

/// Ingests one dataset's rows in batches of at most `chunk_rows`, with fixed ids and a progress
/// bar; says which batches the commit gate refused; returns the rows.
async fn load(
    mesh: &Mesh,
    dataset: &str,
    batch: RecordBatch,
    prefix: &str,
    chunk_rows: usize,
) -> Result<i64> {
    let reference: DatasetRef = dataset.parse()?;
    let rows = batch.num_rows();
    let bar = ProgressBar::new(rows as u64).with_style(
        ProgressStyle::with_template("  {msg:<48} [{bar:30}] {pos}/{len} rows")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(dataset.to_string());
    let (mut accepted, mut quarantined) = (0, 0);
    let mut refusals = Vec::new();
    let mut offset = 0;
    let mut chunk = 0;
    while offset < rows.max(1) {
        let len = chunk_rows.min(rows - offset);
        if len == 0 {
            break;
        }
        let report: IngestReport = mesh
            .ingest(
                &demo(),
                &reference,
                BatchData::Arrow(batch.slice(offset, len)),
                Some(format!("{prefix}-{}-{chunk}", reference.dataset)),
            )
            .await
            .with_context(|| format!("ingesting {dataset}"))?;
        accepted += report.accepted;
        quarantined += report.quarantined;
        if let Some(reason) = &report.refused {
            refusals.push(format!("batch {} refused whole: {reason}", report.batch_id));
        }
        offset += len;
        chunk += 1;
        bar.inc(len as u64);
    }
    bar.finish_and_clear();
    let note = if quarantined > 0 {
        format!(", {quarantined} quarantined")
    } else {
        String::new()
    };
    println!("  {dataset:<48} {accepted} rows accepted{note}");
    for refusal in refusals {
        println!("    {refusal}");
    }
    Ok(accepted + quarantined)
}

/// Events per request the demo posts to the event API.
const EVENTS_PER_REQUEST: usize = 500;
/// Event requests in flight at once (they share the event log's fsyncs).
const REQUESTS_IN_FLIGHT: usize = 8;

/// What a dataset and its quarantine hold: (rows accepted, rows quarantined).
async fn held(mesh: &Mesh, dataset: &str) -> Result<(i64, i64)> {
    let count = |table: String| async move {
        let (_, batches) = mesh
            .query_all(&demo(), &format!("SELECT count(*) FROM {table}"))
            .await?;
        let n = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .map_or(0, |a| a.value(0))
            })
            .unwrap_or(0);
        Ok::<i64, anyhow::Error>(n)
    };
    Ok((
        count(dataset.to_string()).await?,
        count(format!("{dataset}_quarantine")).await?,
    ))
}

/// One pass of table maintenance over the loaded tables, as a server's would make within its
/// first minute (the asset catalog arrives in many small files, the events in many commits):
/// the mesh the demo leaves, and the transforms computed next, read compacted files and
/// checkpoints.
async fn maintain(mesh: &Mesh, policy: &tessera_server::MaintenancePolicy) -> Result<()> {
    let done = mesh.maintain_tables(policy).await?;
    let (compacted, written, checkpoints) =
        done.iter().fold((0, 0, 0), |(c, w, k), (_, report)| {
            (
                c + report.files_compacted,
                w + report.files_written,
                k + u64::from(report.newest_checkpoint.is_some()),
            )
        });
    println!(
        "  maintained the tables: {compacted} small files compacted into {written}, {checkpoints} table(s) checkpointed"
    );
    Ok(())
}

/// Runs the transforms whose inputs moved (all of them on a new mesh), in the order they feed
/// each other, and shows what each computed dataset holds; the rows they hold.
async fn compute_derived(mesh: &Mesh) -> Result<i64> {
    let runs = mesh.run_stale_transforms(&demo()).await?;
    if let Some(failed) = runs.iter().find(|r| r.status != "succeeded") {
        bail!(
            "the transform computing {}.{}.{} failed: {}",
            failed.domain,
            failed.product,
            failed.dataset,
            failed.error.as_deref().unwrap_or("?")
        );
    }
    let mut rows = 0;
    for transform in mesh.transforms(&demo(), None).await? {
        let held = held(mesh, &transform.dataset).await?;
        print_held(
            &transform.dataset,
            held,
            &format!(
                "computed by {}, {}",
                transform.file, transform.materialization
            ),
        );
        rows += held.0;
    }
    Ok(rows)
}

/// The line `load` prints for a dataset, from what its tables hold, and how the rows came.
fn print_held(dataset: &str, (accepted, quarantined): (i64, i64), how: &str) {
    let note = if quarantined > 0 {
        format!(", {quarantined} quarantined")
    } else {
        String::new()
    };
    println!("  {dataset:<48} {accepted} rows accepted{note} ({how})");
}

/// Posts `batch` to the dataset's event API as NDJSON in small requests, several in flight,
/// with an occasional malformed event among them (a dwell time that is not a number, an event
/// without its id: quarantined, each named by its index in its request), then commits what
/// waits. A dataset that holds events already (an earlier run) is left as it is.
async fn stream_events(
    mesh: &Mesh,
    dataset: &str,
    batch: &RecordBatch,
    prefix: &str,
) -> Result<i64> {
    use futures::StreamExt;
    let reference: DatasetRef = dataset.parse()?;
    if held(mesh, dataset).await? == (0, 0) {
        let mut ndjson = Vec::new();
        {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut ndjson);
            writer.write(batch)?;
            writer.finish()?;
        }
        let lines: Vec<&[u8]> = ndjson
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let bar = ProgressBar::new(lines.len() as u64).with_style(
            ProgressStyle::with_template("  {msg:<48} [{bar:30}] {pos}/{len} events")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(format!("{dataset} (event API)"));
        let requests: Vec<(usize, Vec<u8>, usize)> = lines
            .chunks(EVENTS_PER_REQUEST)
            .enumerate()
            .map(|(i, chunk)| {
                let mut body = chunk.join(&b'\n');
                body.push(b'\n');
                // Now and then a client sends what the contract cannot take.
                if i % 40 == 7 {
                    body.extend_from_slice(
                        br#"{"event_id": "E-broken", "event_type": "view", "dwell_ms": "a while"}"#,
                    );
                    body.extend_from_slice(
                        b"\n{\"event_type\": \"like\", \"asset_id\": \"A00000001\"}\n",
                    );
                }
                (i, body, chunk.len())
            })
            .collect();
        let mut posted = futures::stream::iter(requests)
            .map(|(i, body, events)| {
                let reference = reference.clone();
                async move {
                    let body = bytes::Bytes::from(body);
                    // A full event log (a large scale posts faster than events are committed)
                    // is committed now — the demo runs no committer while it loads — and the
                    // request tried again; its key makes the retry safe.
                    let receipt = loop {
                        let sent = mesh
                            .send_events(
                                &demo(),
                                &reference,
                                tessera_server::EventBody {
                                    bytes: body.clone(),
                                    gzip: false,
                                },
                                Some(format!("{prefix}-events-{i}")),
                            )
                            .await;
                        match sent {
                            Err(tessera_server::ServiceError::Backlogged(_)) => {
                                mesh.flush_events()
                                    .await
                                    .with_context(|| format!("committing events to {dataset}"))?;
                            }
                            other => {
                                break other
                                    .with_context(|| format!("posting events to {dataset}"))?;
                            }
                        }
                    };
                    Ok::<_, anyhow::Error>((receipt, events))
                }
            })
            .buffer_unordered(REQUESTS_IN_FLIGHT);
        while let Some(posted) = posted.next().await {
            let (_, events) = posted?;
            bar.inc(events as u64);
        }
        bar.finish_and_clear();
        mesh.flush_events()
            .await
            .with_context(|| format!("committing the events of {dataset}"))?;
    }
    let held = held(mesh, dataset).await?;
    print_held(dataset, held, "posted to the event API");
    Ok(held.0 + held.1)
}

/// Writes `batch` as NDJSON files (of up to 1,000 rows) into `folder` under the data directory, as
/// an upload service would (a file is written under a `_` name, then renamed), and runs the
/// dataset's files source `source` once, so the rows are in before the datasets derived from
/// them. A file that is there already is left as it is.
async fn drop_files(
    mesh: &Mesh,
    data_dir: &Path,
    dataset: &str,
    source: &str,
    folder: &str,
    batch: &RecordBatch,
) -> Result<i64> {
    let reference: DatasetRef = dataset.parse()?;
    let dir = data_dir.join(folder);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut offset = 0;
    let mut file = 0;
    while offset < batch.num_rows() {
        let len = 1_000.min(batch.num_rows() - offset);
        let path = dir.join(format!("upload-{file:04}.ndjson"));
        if !path.exists() {
            let partial = dir.join(format!("_upload-{file:04}.ndjson"));
            let mut writer =
                arrow::json::LineDelimitedWriter::new(std::fs::File::create(&partial)?);
            writer.write(&batch.slice(offset, len))?;
            writer.finish()?;
            std::fs::rename(&partial, &path)?;
        }
        offset += len;
        file += 1;
    }
    let state = mesh
        .run_source(
            &demo(),
            reference.domain.as_str(),
            reference.product.as_str(),
            source,
        )
        .await
        .with_context(|| format!("pulling {dataset} from its source {source}"))?;
    if let Some(error) = state.last_error.filter(|_| state.state == "failing") {
        bail!("the source {source} of {dataset} failed: {error}");
    }
    let held = held(mesh, dataset).await?;
    print_held(
        dataset,
        held,
        &format!("pulled by its files source {source} from {folder}"),
    );
    Ok(held.0 + held.1)
}

/// A data directory holds one demo: loading another seed or scale on top would mix two
/// datasets' worth of rows with colliding keys.
fn check_same_parameters(data_dir: &Path, seed: u64, scale: f64) -> Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let marker = data_dir.join("artgo-demo.json");
    let wanted = serde_json::json!({ "seed": seed, "scale": scale });
    match std::fs::read_to_string(&marker) {
        Ok(text) => {
            let found: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if found != wanted {
                bail!(
                    "{} already holds the artgo demo with {found}; use another --data-dir for seed {seed} and scale {scale}",
                    data_dir.display()
                );
            }
            Ok(())
        }
        Err(_) => std::fs::write(&marker, wanted.to_string())
            .with_context(|| format!("cannot write {}", marker.display())),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_queries_are_read_from_their_file() {
        let queries = super::example_queries();
        assert_eq!(queries.len(), 3);
        assert!(queries[0].0.contains("join across two domains"));
        assert!(queries[0].1.starts_with("SELECT a.title"));
        assert!(!queries[2].1.contains('\n'));
    }
}
