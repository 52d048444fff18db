//! Who may do what on the artgo demo, through the HTTP API (issue 8): principals (admin, an
//! owner team, a granted consumer, a consumer whose grant expired, a row-filtered consumer, an
//! ungranted user, no token, a revoked token) × actions (discover, read, read personal data,
//! ingest, publish, approve) × the demo's products, each cell checked against what the default
//! policies and the demo's grants say.

use serde_json::{Value, json};

use crate::support::*;

/// (domain.product, a dataset, a personal-data column of it if any, the product folder)
const PRODUCTS: &[(&str, &str, Option<&str>, &str)] = &[
    (
        "digital_assets.asset_catalog",
        "assets",
        None,
        "digital_assets",
    ),
    (
        "artwork_engagement.engagement",
        "events_raw",
        Some("ip"),
        "artwork_engagement",
    ),
    ("marketplace.provenance", "sales", None, "marketplace"),
    (
        "marketplace.collectors",
        "collectors",
        Some("contact_email"),
        "marketplace_collectors",
    ),
    (
        "marketing.artist_campaigns",
        "campaign_targets",
        None,
        "marketing",
    ),
];

/// (who, its token, the products it owns, those it reads by grant)
type Principal = (Who, Option<String>, Vec<&'static str>, Vec<&'static str>);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Admin,
    Owner,
    Granted,
    Expired,
    RowFiltered,
    Ungranted,
    NoToken,
    Revoked,
}

/// What the policies say `who` may do to `product`: (discover, read, read_pii, ingest, publish,
/// approve). `owner_of` and `grants` say whose products a principal owns and reads.
fn expected(who: Who, product: &str, owns: &[&str], reads: &[&str]) -> [bool; 6] {
    match who {
        Who::Admin => [true; 6],
        Who::NoToken | Who::Revoked => [false; 6],
        _ if owns.contains(&product) => [true; 6],
        _ if reads.contains(&product) => [true, true, false, false, false, false],
        _ => [true, false, false, false, false, false],
    }
}

async fn status(request: reqwest::RequestBuilder) -> (u16, Value) {
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A product folder as `tessera apply` sends it (its files and those of its subfolders).
fn folder(name: &str) -> Value {
    let root = repo_root().join("examples/artgo");
    let mut files = Vec::new();
    let mut pending = vec![root.join(name)];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            files.push(json!({
                "name": path.strip_prefix(&root).unwrap().display().to_string(),
                "content": std::fs::read_to_string(&path).unwrap(),
            }));
        }
    }
    json!({ "files": files, "dry_run": true })
}

#[test]
fn every_principal_may_do_exactly_what_the_policies_say_on_every_demo_product() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start("demo", data.path(), &["--scale", "0.01"]);
    let token = |persona: &str| token_printed_for(&server.banner, persona).unwrap();
    let make = |user: &str| {
        server
            .cli(&["token", "create", "--user", user])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    let (expired, filtered, revoked) = (make("ex"), make("rita"), make("gone"));
    server
        .cli(&[
            "access",
            "grant",
            "marketplace.collectors",
            "--user",
            "ex",
            "--days",
            "1",
        ])
        .ok();
    server
        .cli(&[
            "access",
            "grant",
            "marketplace.collectors",
            "--user",
            "rita",
            "--row-filter",
            "country = 'DE'",
        ])
        .ok();
    let revoked_id = revoked.split('_').nth(1).unwrap().to_string();
    server.cli(&["token", "revoke", &revoked_id]).ok();
    // The grant's day has passed (as another instance, or the clock, would have it).
    let python = std::env::var("TESSERA_TEST_PYTHON").expect("run with scripts/test");
    let sql = "UPDATE grants SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE grantee = 'ex'; UPDATE generations SET value = value + 1 WHERE name = 'access'";
    let done = std::process::Command::new(python)
        .args(["-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()"])
        .arg(data.path().join("metadata.db"))
        .arg(sql)
        .status()
        .unwrap();
    assert!(done.success());

    let principals: Vec<Principal> = vec![
        (Who::Admin, Some(server.admin_token.clone()), vec![], vec![]),
        (
            Who::Owner,
            Some(token("obanjo")),
            vec!["marketplace.provenance", "marketplace.collectors"],
            vec!["digital_assets.asset_catalog"],
        ),
        (
            Who::Owner,
            Some(token("lferreira")),
            vec!["marketing.artist_campaigns"],
            // Its input ports: campaign targets join trends, sales and the asset catalog.
            vec![
                "artwork_engagement.engagement",
                "marketplace.provenance",
                "digital_assets.asset_catalog",
            ],
        ),
        (
            Who::Granted,
            Some(token("dpatel")),
            vec![],
            vec!["artwork_engagement.engagement", "marketplace.collectors"],
        ),
        (Who::Expired, Some(expired), vec![], vec![]),
        (
            Who::RowFiltered,
            Some(filtered),
            vec![],
            vec!["marketplace.collectors"],
        ),
        (Who::Ungranted, Some(token("hmueller")), vec![], vec![]),
        (Who::NoToken, None, vec![], vec![]),
        (Who::Revoked, Some(revoked), vec![], vec![]),
    ];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let asker = token("hmueller");
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let url = &server.url;
        let with = |r: reqwest::RequestBuilder, t: &Option<String>| match t {
            Some(t) => r.bearer_auth(t),
            None => r,
        };
        for (who, tok, owns, reads) in &principals {
            for (product, dataset, personal, dir) in PRODUCTS {
                let want = expected(*who, product, owns, reads);
                let (domain, name) = product.split_once('.').unwrap();
                let cell = format!("{who:?} {tok:?} on {product}");
                let refused = if tok.is_none() || *who == Who::Revoked {
                    401
                } else {
                    403
                };

                let (s, _) = status(with(
                    http.get(format!("{url}/api/v1/products/{domain}/{name}")),
                    tok,
                ))
                .await;
                assert_eq!(s, if want[0] { 200 } else { 401 }, "discover: {cell}");

                let column = personal.unwrap_or("*");
                let read = format!("SELECT {column} FROM {product}.{dataset} LIMIT 1");
                let (s, body) = status(
                    with(http.post(format!("{url}/api/v1/query")), tok)
                        .json(&json!({ "sql": read })),
                )
                .await;
                assert_eq!(
                    s,
                    if want[1] { 200 } else { refused },
                    "read: {cell}: {body}"
                );
                if let (true, Some(column)) = (want[1], personal) {
                    let value = body["rows"][0][column]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let masked = value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit());
                    assert_eq!(!masked, want[2], "read_pii: {cell}: {value}");
                }

                let (s, body) = status(
                    with(
                        http.post(format!(
                            "{url}/api/v1/datasets/{domain}/{name}/{dataset}/batches"
                        )),
                        tok,
                    )
                    .header("content-type", "text/csv")
                    .body(""),
                )
                .await;
                // Allowed, the empty batch is refused for what it is; otherwise for who sends it.
                assert_eq!(
                    s,
                    if want[3] { 422 } else { refused },
                    "ingest: {cell}: {body}"
                );

                let (s, body) =
                    status(with(http.post(format!("{url}/api/v1/apply")), tok).json(&folder(dir)))
                        .await;
                assert_eq!(
                    s,
                    if want[4] { 200 } else { refused },
                    "publish: {cell}: {body}"
                );

                let (s, request) = status(
                    http.post(format!("{url}/api/v1/access-requests"))
                        .bearer_auth(&asker)
                        .json(&json!({"product": product, "purpose": "the matrix"})),
                )
                .await;
                assert_eq!(s, 201, "{request}");
                let id = request["request_id"].as_str().unwrap();
                let (s, body) = status(
                    with(
                        http.post(format!("{url}/api/v1/access-requests/{id}/deny")),
                        tok,
                    )
                    .json(&json!({"reason": "a matrix test"})),
                )
                .await;
                // Who may not decide a request is not shown it either.
                let denied = if refused == 401 {
                    vec![401]
                } else {
                    vec![403, 404]
                };
                assert!(
                    if want[5] {
                        s == 200
                    } else {
                        denied.contains(&s)
                    },
                    "approve: {cell}: {s} {body}"
                );
            }
        }
    });
}
