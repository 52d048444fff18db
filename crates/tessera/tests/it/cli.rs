//! The CLI against a `tessera serve` process.

use std::path::Path;

use crate::support::*;

#[test]
fn lint_accepts_the_standards_examples_and_rejects_every_negative_test() {
    let standards = repo_root().join("tests/standards");
    let odcs = standards.join("odcs/examples-v3.1.0");
    let odps = standards.join("odps/examples");
    let ok = run(&["lint", odcs.to_str().unwrap(), odps.to_str().unwrap()]).ok();
    assert_eq!(
        ok.stdout.lines().filter(|l| l.starts_with("ok: ")).count(),
        20,
        "{}",
        ok.stdout
    );

    let negatives = standards.join("odcs/negative-tests-v3.2.0-dev");
    let mut files: Vec<_> = std::fs::read_dir(&negatives)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 28);
    for file in files {
        let name = file.display().to_string();
        let failed = run(&["lint", &name]).failed();
        // Each message names the file and a line, then the field and what is wrong.
        let first = failed.stderr.lines().next().unwrap_or_default();
        let prefix = format!("error: {name}:");
        assert!(first.starts_with(&prefix), "{first}");
        let line_number = first[prefix.len()..].split(':').next().unwrap();
        assert!(
            line_number.parse::<u32>().is_ok(),
            "no line number in {first}"
        );
    }

    // The artgo mesh lints clean, and a folder with a broken file fails naming it.
    run(&["lint", repo_root().join("examples/artgo").to_str().unwrap()]).ok();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.odcs.yaml");
    std::fs::write(&bad, "apiVersion: v3.1.0\nkind: DataContract\nid: x\nversion: 1.0.0\nstatus: active\nschema:\n  - name: t\n    properties:\n      - name: a\n        logicalType: texty\n").unwrap();
    let failed = run(&["lint", dir.path().to_str().unwrap()]).failed();
    assert!(
        failed
            .stderr
            .contains("bad.odcs.yaml:10: schema[0].properties[0].logicalType"),
        "{}",
        failed.stderr
    );
}

fn write(dir: &Path, name: &str, content: &str) {
    std::fs::write(dir.join(name), content).unwrap();
}

/// `shop.orders` with one dataset, `orders` (`order_id`, `amount` at least 0).
pub(crate) const PRODUCT: &str = "apiVersion: v1.0.0
kind: DataProduct
id: shop-orders
name: orders
domain: shop
status: active
team:
  name: shop team
outputPorts:
  - name: orders
    version: 1.0.0
    contractId: shop-orders
";

pub(crate) const CONTRACT: &str = "apiVersion: v3.1.0
kind: DataContract
id: shop-orders
version: 1.0.0
status: active
schema:
  - name: orders
    properties:
      - name: order_id
        logicalType: integer
        required: true
      - name: amount
        logicalType: number
        logicalTypeOptions:
          minimum: 0
";

#[test]
fn a_product_is_applied_ingested_and_queried_from_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start("serve", data.path(), &[]);
    server.without_standard_policies();
    let folder = tempfile::tempdir().unwrap();
    write(folder.path(), "product.odps.yaml", PRODUCT);
    write(folder.path(), "orders.odcs.yaml", CONTRACT);
    write(folder.path(), "notes.yaml", "not: a standard file\n");
    let dir = folder.path().to_str().unwrap();

    let plan = server.cli(&["apply", dir, "--dry-run"]).ok();
    assert!(
        plan.stdout
            .contains("+ create    dataset   shop.orders.orders"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Dry run, nothing applied: 3 to create"),
        "{}",
        plan.stdout
    );
    let applied = server.cli(&["apply", dir]).ok();
    assert!(
        applied
            .stdout
            .contains("Applied: 3 created, 0 changed, 0 unchanged."),
        "{}",
        applied.stdout
    );
    let again = server.cli(&["apply", dir]).ok();
    assert_eq!(
        again.stdout.trim(),
        "shop.orders: no changes, everything is up to date."
    );

    let csv = folder.path().join("orders.csv");
    std::fs::write(&csv, "order_id,amount\n1,10\n2,-5\n3,2.5\n").unwrap();
    let csv = csv.to_str().unwrap();
    let ingested = server.cli(&["ingest", "shop.orders.orders", csv]).ok();
    assert!(
        ingested
            .stdout
            .contains("shop.orders.orders: 3 rows, 2 accepted, 1 quarantined"),
        "{}",
        ingested.stdout
    );
    assert!(
        ingested
            .stdout
            .contains("row 2: amount: \"-5\" is not >= 0 [minimum]"),
        "{}",
        ingested.stdout
    );
    let again = server.cli(&["ingest", "shop.orders.orders", csv]).ok();
    assert!(
        again
            .stdout
            .contains("was ingested before; nothing written"),
        "{}",
        again.stdout
    );

    let table = server
        .cli(&[
            "query",
            "SELECT order_id, amount FROM shop.orders.orders ORDER BY order_id",
        ])
        .ok();
    assert!(
        table.stdout.contains("| order_id | amount |"),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains("(2 rows)"), "{}", table.stdout);
    let csv_out = server
        .cli(&[
            "query",
            "SELECT order_id, amount FROM shop.orders.orders ORDER BY order_id",
            "--format",
            "csv",
        ])
        .ok();
    assert_eq!(csv_out.stdout, "order_id,amount\n1,10.0\n3,2.5\n");
    let json_out = server
        .cli(&[
            "query",
            "SELECT _reason FROM shop.orders.orders_quarantine",
            "--format",
            "json",
        ])
        .ok();
    let rows: serde_json::Value = serde_json::from_str(&json_out.stdout).unwrap();
    assert_eq!(
        rows,
        serde_json::json!([{"_reason": "amount: \"-5\" is not >= 0"}])
    );

    let listed = server.cli(&["datasets"]).ok();
    assert!(
        listed.stdout.contains("shop.orders.orders"),
        "{}",
        listed.stdout
    );
    let shown = server.cli(&["datasets", "show", "shop.orders.orders"]).ok();
    assert!(shown.stdout.contains("order_id"), "{}", shown.stdout);
    let products = server.cli(&["products", "show", "shop.orders"]).ok();
    assert!(
        products.stdout.contains("owner:       shop team"),
        "{}",
        products.stdout
    );
    let contract = server.cli(&["contracts", "show", "shop-orders"]).ok();
    assert!(contract.stdout.ends_with(CONTRACT), "{}", contract.stdout);

    // Errors: exit code 1 and the server's message.
    let refused = server
        .cli(&["query", "DELETE FROM shop.orders.orders"])
        .failed();
    assert!(refused.stderr.contains("read-only"), "{}", refused.stderr);
    let unknown = server.cli(&["ingest", "shop.orders.nope", csv]).failed();
    assert!(
        unknown.stderr.contains("no dataset shop.orders.nope"),
        "{}",
        unknown.stderr
    );
    let malformed = server.cli(&["ingest", "shop.orders", csv]).failed();
    assert!(
        malformed.stderr.contains("expected DOMAIN.PRODUCT.DATASET"),
        "{}",
        malformed.stderr
    );
}

#[test]
fn the_client_says_when_no_server_answers() {
    let failed = tessera()
        .args(["domains", "--server", "http://127.0.0.1:9"])
        .output()
        .map(Run::from)
        .unwrap()
        .failed();
    assert!(
        failed
            .stderr
            .contains("cannot reach the Tessera server at http://127.0.0.1:9/"),
        "{}",
        failed.stderr
    );
    let failed = tessera()
        .env("TESSERA_URL", "not a url")
        .arg("domains")
        .output()
        .map(Run::from)
        .unwrap()
        .failed();
    assert!(
        failed.stderr.contains("invalid server URL"),
        "{}",
        failed.stderr
    );
}

/// The README's five-minute walkthrough, command for command, on `examples/quickstart`.
#[test]
fn the_readme_walkthrough_works() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start("serve", data.path(), &[]);
    let quickstart = repo_root().join("examples/quickstart");
    let folder = quickstart.to_str().unwrap();
    let lint = run(&["lint", folder]).ok();
    assert!(
        lint.stdout.contains("ODCS contract shop-orders@1.0.0"),
        "{}",
        lint.stdout
    );
    let applied = server.cli(&["apply", folder]).ok();
    assert!(
        applied
            .stdout
            .contains("Applied: 3 created, 0 changed, 0 unchanged."),
        "{}",
        applied.stdout
    );
    let csv = quickstart.join("orders.csv");
    let ingested = server
        .cli(&["ingest", "shop.orders.orders", csv.to_str().unwrap()])
        .ok();
    for expected in [
        "6 rows, 3 accepted, 3 quarantined",
        "row 4: customer_id: \"U0001\" is not a match for pattern ^U[0-9]{8}$ [pattern]",
        "row 5: amount: \"-2.00\" is not >= 0 [minimum]",
        "row 6: status: \"lost\" is not one of [\"open\", \"shipped\", \"returned\"] [validValues]",
    ] {
        assert!(
            ingested.stdout.contains(expected),
            "{expected}: {}",
            ingested.stdout
        );
    }
    let totals = server
        .cli(&[
            "query",
            "SELECT status, count(*) AS orders, sum(amount) AS total FROM shop.orders.orders GROUP BY status ORDER BY status",
            "--format",
            "csv",
        ])
        .ok();
    assert_eq!(
        totals.stdout,
        "status,orders,total\nopen,1,10.50\nreturned,1,24.00\nshipped,1,99.99\n"
    );

    // The standard library passed, the sample query is listed and runs, by number or name.
    let governance = format!(
        "Governance: {} policies evaluated on shop.orders, 0 blocking, 0 warning(s).",
        tessera_governance::STANDARD_POLICIES.len()
    );
    assert!(applied.stdout.contains(&governance), "{}", applied.stdout);
    let shown = server.cli(&["products", "show", "shop.orders"]).ok();
    for expected in [
        "sample queries (run one with `tessera query --sample N shop.orders`):",
        "  1. revenue_by_status (port orders): Orders and revenue by where they stand.",
        &format!(
            "compliance:  compliant, {n} of {n} policies passing",
            n = tessera_governance::STANDARD_POLICIES.len()
        ),
    ] {
        assert!(
            shown.stdout.contains(expected),
            "{expected}: {}",
            shown.stdout
        );
    }
    for which in ["1", "revenue_by_status"] {
        let sample = server
            .cli(&["query", "--sample", which, "shop.orders", "--format", "csv"])
            .ok();
        assert_eq!(
            sample.stdout,
            "status,orders,revenue\nopen,1,10.50\nreturned,1,24.00\nshipped,1,99.99\n"
        );
        assert!(
            sample
                .stderr
                .contains("sample query 1 of shop.orders, revenue_by_status (port orders)"),
            "{}",
            sample.stderr
        );
    }
    let unknown = server
        .cli(&["query", "--sample", "7", "shop.orders"])
        .failed();
    assert!(
        unknown
            .stderr
            .contains("shop.orders has no sample query \"7\"; it has 1 (revenue_by_status)"),
        "{}",
        unknown.stderr
    );

    // The scorecard: one compliant product, as a table and as CSV.
    let report = server.cli(&["policy", "report"]).ok();
    assert!(
        report.stdout.contains(&format!(
            "1 of 1 product(s) compliant; {n} of {n} policy standings passing (100.0 %)",
            n = tessera_governance::STANDARD_POLICIES.len()
        )),
        "{}",
        report.stdout
    );
    let csv = server
        .cli(&["policy", "report", "shop.orders", "--format", "csv"])
        .ok();
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "domain,product,policy_id,severity,passing,violations,since,evaluated_at"
    );
    assert_eq!(lines.len(), 1 + tessera_governance::STANDARD_POLICIES.len());
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("shop,orders,sample-queries,warn,true,0,")),
        "{}",
        csv.stdout
    );
    let json = server.cli(&["policy", "report", "--format", "json"]).ok();
    let card: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let n = tessera_governance::STANDARD_POLICIES.len();
    assert_eq!(
        card["total"],
        serde_json::json!({"products": 1, "compliant": 1, "standings": n, "passing": n, "share_passing": 100.0}),
        "{}",
        json.stdout
    );
    assert_eq!(card["products"][0]["product"], "orders", "{}", json.stdout);

    // Glossary terms from the CLI: published (the admin may), listed, shown; an unknown one named.
    let terms = tempfile::tempdir().unwrap();
    let term = terms.path().join("order_status.yaml");
    std::fs::write(
        &term,
        "apiVersion: tessera/v1\nkind: GlossaryTerm\nname: order_status\nversion: 1.0.0\ndescription: Where an order stands.\nlogicalType: string\nvalidValues: [open, shipped, returned]\n",
    )
    .unwrap();
    let published = server
        .cli(&["glossary", "apply", term.to_str().unwrap()])
        .ok();
    let file = term.to_str().unwrap();
    assert_eq!(
        published.stdout,
        format!("glossary term order_status@1.0.0 ({file})\n")
    );
    let listed = server.cli(&["glossary", "list"]).ok();
    let row = listed
        .stdout
        .lines()
        .find(|l| l.contains("order_status@1.0.0"))
        .unwrap_or_else(|| panic!("{}", listed.stdout));
    for cell in ["string", "one of [", "shipped", " 0 "] {
        assert!(row.contains(cell), "{cell}: {row}");
    }
    let shown = server.cli(&["glossary", "show", "order_status"]).ok();
    let lines: Vec<&str> = shown.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("order_status@1.0.0  ({file}, published ")),
        "{}",
        shown.stdout
    );
    assert_eq!(lines[1], "  Where an order stands.");
    assert!(
        lines[2].starts_with("  type: string; rules: "),
        "{}",
        shown.stdout
    );
    let unknown = server.cli(&["glossary", "show", "order_state"]).failed();
    assert!(
        unknown
            .stderr
            .contains("no glossary term \"order_state\" (`tessera glossary list` shows the terms)"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn checks_print_as_a_table_as_datacontract_json_and_as_junit() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start("serve", data.path(), &[]);
    server.without_standard_policies();
    let folder = tempfile::tempdir().unwrap();
    write(folder.path(), "product.odps.yaml", PRODUCT);
    let contract = CONTRACT.replace(
        "  - name: orders\n",
        "  - name: orders\n    quality:\n      - metric: rowCount\n        mustBeGreaterThan: 5\n",
    );
    write(folder.path(), "orders.odcs.yaml", &contract);
    server.cli(&["apply", folder.path().to_str().unwrap()]).ok();
    let csv = folder.path().join("orders.csv");
    std::fs::write(&csv, "order_id,amount\n1,10\n2,20\n").unwrap();
    server
        .cli(&["ingest", "shop.orders.orders", csv.to_str().unwrap()])
        .ok();
    // The commit's checks already fail (2 rows, not more than 5): a query answers, and says so.
    let count = "SELECT count(*) FROM shop.orders.orders";
    let warned = server.cli(&["query", count]).ok();
    assert!(
        warned
            .stderr
            .contains("warning: shop.orders.orders: blocking checks fail in its latest check run")
            && warned.stderr.contains("row_count > 5"),
        "{}",
        warned.stderr
    );

    let table = server.cli(&["check", "shop.orders"]).failed();
    assert!(
        table
            .stdout
            .contains("shop.orders.orders  (contract shop-orders@1.0.0, table version 1): FAILED"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("failed  row_count"),
        "{}",
        table.stdout
    );
    assert!(
        table.stderr.contains("blocking checks failed"),
        "{}",
        table.stderr
    );

    let json = server
        .cli(&["check", "shop.orders.orders", "--format", "json"])
        .failed();
    let result: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(result["dataContractId"], "shop-orders");
    assert_eq!(result["dataContractVersion"], "1.0.0");
    assert_eq!(result["result"], "failed");
    let row_count = result["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "row_count")
        .unwrap();
    assert_eq!(row_count["result"], "failed");
    assert_eq!(row_count["model"], "orders");
    assert_eq!(row_count["diagnostics"]["measured"], 2.0);
    for key in ["runId", "timestampStart", "timestampEnd", "checks", "logs"] {
        assert!(result.get(key).is_some(), "{key} missing");
    }

    let junit = server
        .cli(&["check", "shop.orders.orders", "--format", "junit"])
        .failed();
    assert!(junit.stdout.starts_with("<?xml"), "{}", junit.stdout);
    assert!(
        junit
            .stdout
            .contains("<testsuite name=\"shop.orders.orders\""),
        "{}",
        junit.stdout
    );
    assert!(
        junit
            .stdout
            .contains("<failure message=\"2 rows, which does not meet &gt; 5\""),
        "{}",
        junit.stdout
    );

    let shown = server.cli(&["products", "show", "shop.orders"]).ok();
    assert!(
        shown.stdout.contains("quality:     score "),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("(failed in the latest checks)"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("not passed: row_count"),
        "{}",
        shown.stdout
    );
    // Three runs of the same failing checks so far: the same score three times.
    let history = shown
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("score history, newest first: "))
        .unwrap_or_else(|| panic!("no score history in {}", shown.stdout));
    let scores: Vec<&str> = history.split(", ").collect();
    assert_eq!(scores.len(), 3, "{history}");
    assert!(
        scores.iter().all(|s| *s == scores[0] && *s != "100.0"),
        "{history}"
    );

    // Once a check run passes, queries stop warning (what they say follows the latest run).
    std::fs::write(&csv, "order_id,amount\n3,30\n4,40\n5,50\n6,60\n").unwrap();
    server
        .cli(&["ingest", "shop.orders.orders", csv.to_str().unwrap()])
        .ok();
    server.cli(&["check", "shop.orders"]).ok();
    let passing = server.cli(&["query", count]).ok();
    assert!(!passing.stderr.contains("warning:"), "{}", passing.stderr);
}

#[test]
fn diff_marks_breaking_changes_in_the_changelog_pair() {
    let pair =
        repo_root().join("tests/standards/datacontract-cli/tests/fixtures/changelog/integration");
    let (v1, v2) = (
        pair.join("changelog_integration_v1.yaml"),
        pair.join("changelog_integration_v2.yaml"),
    );
    let table = run(&["diff", v1.to_str().unwrap(), v2.to_str().unwrap()]).ok();
    for line in [
        "removed  schema.orders.properties.customer_id",
        "yes: column customer_id removed",
        "yes: column order_date changes type (string → date)",
        "yes: column total_amount becomes required",
        "yes: SLO availability weakened (99.9 → 99.5)",
        "8 change(s); 4 breaking, with a major version bump (1.0.0 -> 2.0.0): can be applied.",
    ] {
        assert!(table.stdout.contains(line), "{line}\n{}", table.stdout);
    }
    let json = run(&[
        "diff",
        v1.to_str().unwrap(),
        v2.to_str().unwrap(),
        "--format",
        "json",
    ])
    .ok();
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let added: Vec<(&str, bool)> = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["change"] == "added")
        .map(|c| {
            (
                c["path"].as_str().unwrap(),
                c["breaking"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        added,
        vec![
            ("schema.customers", false),
            ("schema.orders.properties.region", false)
        ]
    );
    // Backwards, with no major bump, --fail-on-breaking fails.
    let failed = run(&[
        "diff",
        v2.to_str().unwrap(),
        v1.to_str().unwrap(),
        "--fail-on-breaking",
    ])
    .failed();
    assert!(
        failed
            .stderr
            .contains("breaking change(s) without a major version bump"),
        "{}",
        failed.stderr
    );
    // Two different contracts, or a product descriptor, are not two versions of one contract.
    let other = repo_root().join("examples/quickstart/orders.odcs.yaml");
    let product = repo_root().join("examples/quickstart/product.odps.yaml");
    let refused = run(&["diff", v1.to_str().unwrap(), other.to_str().unwrap()]).failed();
    assert!(
        refused
            .stderr
            .contains("compares two versions of one contract"),
        "{}",
        refused.stderr
    );
    let refused = run(&["diff", product.to_str().unwrap(), v1.to_str().unwrap()]).failed();
    assert!(
        refused.stderr.contains("not a data contract (ODCS)"),
        "{}",
        refused.stderr
    );
}

/// Tokens from the CLI (issue 8): the first start's admin token is in the credentials file,
/// `token create` makes one for a user, `login` keeps one, `whoami` says who it is, and a
/// revoked token or none gets a message that says what to do.
#[test]
fn tokens_are_made_kept_and_revoked_from_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start("serve", data.path(), &[]);
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("its admin token (user admin, group admins) is shown this once")),
        "{:?}",
        server.banner
    );
    // The server wrote its admin token and address for the CLI, readable by its owner only.
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&server.credentials).unwrap()).unwrap();
    assert_eq!(kept["server"], server.url.as_str());
    assert_eq!(kept["token"], server.admin_token.as_str());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&server.credentials)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    let me = server.cli(&["whoami"]).ok();
    assert!(me.stdout.starts_with("admin (user)"), "{}", me.stdout);
    assert!(me.stdout.contains("groups: admins"), "{}", me.stdout);

    // Without a token the CLI says how to get one.
    let anonymous = tessera()
        .args(["domains", "--server", &server.url])
        .output()
        .unwrap();
    let anonymous = Run::from(anonymous).failed();
    assert!(
        anonymous.stderr.contains("tessera login"),
        "{}",
        anonymous.stderr
    );

    let created = server
        .cli(&[
            "token",
            "create",
            "--user",
            "ada",
            "--team",
            "shop team",
            "--description",
            "laptop",
        ])
        .ok();
    let ada = created.stdout.trim().to_string();
    assert!(ada.starts_with("tsr_"), "{}", created.stdout);
    assert!(
        created.stderr.contains("shown this once"),
        "{}",
        created.stderr
    );
    let me = server.cli_as(&ada, &["whoami"]).ok();
    assert!(me.stdout.starts_with("ada (user)"), "{}", me.stdout);
    assert!(me.stdout.contains("teams: shop team"), "{}", me.stdout);

    // Only admins make tokens.
    let refused = server
        .cli_as(&ada, &["token", "create", "--user", "mallory"])
        .failed();
    assert!(
        refused
            .stderr
            .contains("user ada may not manage the platform"),
        "{}",
        refused.stderr
    );

    // `login` checks a token, then keeps it with the server: later commands need neither.
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("tessera/credentials");
    let file = file.to_str().unwrap();
    let bad = run(&[
        "login",
        "tsr_0_0",
        "--server",
        &server.url,
        "--credentials",
        file,
    ])
    .failed();
    assert!(
        bad.stderr.contains("a valid API token is needed"),
        "{}",
        bad.stderr
    );
    assert!(!Path::new(file).exists(), "a refused token is not kept");
    let login = run(&[
        "login",
        &ada,
        "--server",
        &server.url,
        "--credentials",
        file,
    ])
    .ok();
    assert!(login.stdout.contains("as ada"), "{}", login.stdout);
    let me = run(&["whoami", "--credentials", file]).ok();
    assert!(me.stdout.starts_with("ada (user)"), "{}", me.stdout);
    // The file's token goes only to the file's server: another URL gets no token, and is told why.
    let elsewhere = server.url.replace("127.0.0.1", "localhost");
    let refused = run(&["whoami", "--credentials", file, "--server", &elsewhere]).failed();
    assert!(
        refused.stderr.contains(&format!(
            "no token was sent: the one in {file} is for {}",
            server.url
        )),
        "{}",
        refused.stderr
    );
    // Without a token on the command line, `login` reads it from standard input.
    let piped = home.path().join("piped");
    let mut login = tessera()
        .args(["login", "--server", &server.url, "--credentials"])
        .arg(&piped)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(login.stdin.take().unwrap(), "{ada}").unwrap();
    let login = Run::from(login.wait_with_output().unwrap()).ok();
    assert!(login.stdout.contains("as ada"), "{}", login.stdout);
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&piped).unwrap()).unwrap();
    assert_eq!(kept["token"], ada.as_str());

    // The admin lists and revokes; the revoked token is refused, and the CLI says whose it was.
    let listed = server.cli(&["token", "list"]).ok();
    assert!(listed.stdout.contains("laptop"), "{}", listed.stdout);
    assert!(!listed.stdout.contains("tsr_"), "{}", listed.stdout);
    let ada_id = ada.strip_prefix("tsr_").unwrap().split('_').next().unwrap();
    let revoked = server.cli(&["token", "revoke", ada_id]).ok();
    assert!(
        revoked
            .stdout
            .contains(&format!("Revoked token {ada_id} of ada")),
        "{}",
        revoked.stdout
    );
    let refused = run(&["whoami", "--credentials", file]).failed();
    assert!(
        refused.stderr.contains("a valid API token is needed"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains(file), "{}", refused.stderr);
}

#[test]
fn access_is_granted_explained_and_ruled_by_policies_from_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start("serve", data.path(), &[]);
    let quickstart = repo_root().join("examples/quickstart");
    server.cli(&["apply", quickstart.to_str().unwrap()]).ok();
    let bob = server
        .cli(&["token", "create", "--user", "bob", "--group", "analysts"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let count = "SELECT count(*) FROM shop.orders.orders";

    let explained = server
        .cli(&["access", "explain", "bob", "read", "shop.orders.orders"])
        .ok();
    assert!(
        explained.stdout.starts_with(
            "DENY: bob may not read dataset shop.orders.orders (no policy permits it)"
        ),
        "{}",
        explained.stdout
    );
    let refused = server.cli_as(&bob, &["query", count]).failed();
    assert!(
        refused
            .stderr
            .contains("user bob may not read dataset shop.orders.orders")
            && refused
                .stderr
                .contains("tessera access request shop.orders"),
        "{}",
        refused.stderr
    );

    // A grant for his group lets bob read, and is listed as the product's consumer.
    let granted = server
        .cli(&[
            "access",
            "grant",
            "shop.orders",
            "--group",
            "analysts",
            "--days",
            "7",
        ])
        .ok();
    assert!(
        granted
            .stdout
            .contains("group:analysts may read shop.orders until 20"),
        "{}",
        granted.stdout
    );
    let grant_id = granted.stdout["Grant ".len()..]
        .split(':')
        .next()
        .unwrap()
        .to_string();
    let listed = server.cli(&["access", "grants", "shop.orders"]).ok();
    assert!(listed.stdout.contains(&grant_id), "{}", listed.stdout);
    server.cli_as(&bob, &["query", count]).ok();
    let explained = server
        .cli_as(
            &bob,
            &["access", "explain", "bob", "read", "shop.orders.orders"],
        )
        .ok();
    assert!(
        explained.stdout.starts_with(
            "ALLOW: bob may read dataset shop.orders.orders (decided by granted-read)"
        ),
        "{}",
        explained.stdout
    );
    // Only its managers grant; bob explains only himself.
    let refused = server
        .cli_as(&bob, &["access", "grant", "shop.orders", "--user", "eve"])
        .failed();
    assert!(
        refused
            .stderr
            .contains("user bob may not manage product shop.orders"),
        "{}",
        refused.stderr
    );
    server
        .cli_as(&bob, &["access", "explain", "admin", "read", "shop"])
        .failed();

    // An admin's forbid outweighs the grant, until it is deleted.
    let policy = data.path().join("no-analysts.cedar");
    std::fs::write(
        &policy,
        "forbid(principal in Group::\"analysts\", action == Action::\"read\", resource in Domain::\"shop\");\n",
    )
    .unwrap();
    let applied = server
        .cli(&["access", "policy", "apply", policy.to_str().unwrap()])
        .ok();
    assert!(
        applied.stdout.contains("Policy no-analysts from"),
        "{}",
        applied.stdout
    );
    let listed = server.cli(&["access", "policy", "list"]).ok();
    assert!(
        listed
            .stdout
            .contains("forbid(principal in Group::\"analysts\""),
        "{}",
        listed.stdout
    );
    let explained = server
        .cli(&["access", "explain", "bob", "read", "shop.orders.orders"])
        .ok();
    assert!(
        explained.stdout.starts_with(
            "DENY: bob may not read dataset shop.orders.orders (decided by no-analysts:0)"
        ),
        "{}",
        explained.stdout
    );
    server.cli_as(&bob, &["query", count]).failed();
    let broken = data.path().join("broken.cedar");
    std::fs::write(&broken, "permit(principal, action").unwrap();
    let refused = server
        .cli(&["access", "policy", "apply", broken.to_str().unwrap()])
        .failed();
    assert!(
        refused.stderr.contains("is not valid Cedar"),
        "{}",
        refused.stderr
    );
    server
        .cli(&["access", "policy", "delete", "no-analysts"])
        .ok();
    server.cli_as(&bob, &["query", count]).ok();

    // Revoked, the grant no longer lets him read.
    let revoked = server.cli(&["access", "revoke", &grant_id]).ok();
    assert!(
        revoked.stdout.contains("no longer reads shop.orders"),
        "{}",
        revoked.stdout
    );
    server.cli_as(&bob, &["query", count]).failed();

    // Bob asks; the request's id is what the command prints. An admin approves it.
    let asked = server
        .cli_as(
            &bob,
            &[
                "access",
                "request",
                "shop.orders",
                "--purpose",
                "weekly report",
                "--days",
                "14",
            ],
        )
        .ok();
    let request_id = asked.stdout.trim().to_string();
    assert_eq!(request_id.len(), 12, "{}", asked.stdout);
    assert!(
        asked
            .stderr
            .contains("pending until its owner team decides"),
        "{}",
        asked.stderr
    );
    let pending = server.cli(&["access", "requests"]).ok();
    assert!(
        pending.stdout.lines().any(|l| l.contains(&request_id)
            && l.contains("pending")
            && l.contains("weekly report")),
        "{}",
        pending.stdout
    );
    server
        .cli_as(&bob, &["access", "approve", &request_id])
        .failed();
    let approved = server.cli(&["access", "approve", &request_id]).ok();
    assert!(
        approved.stdout.contains(&format!(
            "Approved request {request_id}: bob may read shop.orders until 20"
        )),
        "{}",
        approved.stdout
    );
    server.cli_as(&bob, &["query", count]).ok();
    let mine = server.cli_as(&bob, &["access", "requests"]).ok();
    assert!(
        mine.stdout
            .lines()
            .any(|l| l.contains(&request_id) && l.contains("approved")),
        "{}",
        mine.stdout
    );
    // A second request is denied, with the reason the requester sees.
    let again = server
        .cli_as(
            &bob,
            &["access", "request", "shop.orders", "--purpose", "more"],
        )
        .ok()
        .stdout
        .trim()
        .to_string();
    server
        .cli(&["access", "deny", &again, "--reason", "one grant is enough"])
        .ok();
    // Every query bob ran is in the query log, refused ones too, as soon as he looks.
    let logged = server
        .cli_as(&bob, &["queries", "--limit", "100"])
        .ok()
        .stdout;
    assert!(
        logged.contains("user bob")
            && logged.contains("denied (forbidden)")
            && logged.contains("finished"),
        "{logged}"
    );
    let mine = server.cli_as(&bob, &["access", "requests"]).ok();
    assert!(
        mine.stdout.lines().any(|l| l.contains(&again)
            && l.contains("denied")
            && l.contains("one grant is enough")),
        "{}",
        mine.stdout
    );
}
