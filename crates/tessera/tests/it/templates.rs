//! Golden paths against the real binary and a real server with the standard policies on: every
//! template is made with `tessera new`, applied as written (no policy violated), fed its sample
//! data (or its source, or its inputs) and queried. Options fill the template in: a sample file's
//! schema, a PostgreSQL table's, a platform team's own template folder.

use crate::support::*;

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// The apply printed no policy violation and applied.
fn assert_applied_cleanly(applied: &Run) {
    assert!(
        applied.stdout.contains("0 blocking, 0 warning(s)") && applied.stdout.contains("Applied:"),
        "{}\n{}",
        applied.stdout,
        applied.stderr
    );
}

fn count(server: &Server, table: &str) -> String {
    server
        .cli(&[
            "query",
            &format!("SELECT count(*) AS n FROM {table}"),
            "--format",
            "csv",
        ])
        .ok()
        .stdout
}

#[test]
fn every_template_applies_as_written_takes_its_data_and_answers_queries() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start("serve", data.path(), &["--transform-tick-seconds", "0"]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    let listed = run(&["new", "--list"]).ok();
    for name in ["source-aligned", "aggregate", "consumer"] {
        assert!(listed.stdout.contains(name), "{}", listed.stdout);
    }

    // A domain, then a source-aligned product in it that takes the domain's owner team.
    run(&[
        "new",
        "domain",
        "shop",
        "--owner",
        "shop team",
        "--dir",
        path(dir),
    ])
    .ok();
    let made = server
        .cli(&[
            "new",
            "product",
            "shop/orders",
            "--template",
            "source-aligned",
            "--dir",
            path(dir),
        ])
        .ok();
    assert!(made.stdout.contains("ok: "), "{}", made.stdout);
    let orders = dir.join("shop/orders");
    for file in [
        "product.odps.yaml",
        "orders.odcs.yaml",
        "sources/orders.yaml",
        "policies/orders-rules.yaml",
        "README.md",
        "sample/orders.csv",
    ] {
        assert!(orders.join(file).is_file(), "{file} was not written");
    }
    let product = std::fs::read_to_string(orders.join("product.odps.yaml")).unwrap();
    assert!(product.contains("name: \"shop team\""), "{product}");
    run(&["lint", path(&orders)]).ok();
    assert_applied_cleanly(&server.cli(&["apply", path(&orders)]).ok());
    // Applied again from the domain's parent folder, as `new` suggests (`./shop/orders`) or
    // without the `./`: the same files, so the second apply changes nothing.
    server.cli_in(dir, &["apply", "shop/orders"]).ok();
    let again = server.cli_in(dir, &["apply", "./shop/orders"]).ok();
    assert!(
        again
            .stdout
            .contains("shop.orders: no changes, everything is up to date."),
        "{}",
        again.stdout
    );
    let ingested = server
        .cli(&[
            "ingest",
            "shop.orders.orders",
            path(&orders.join("sample/orders.csv")),
        ])
        .ok();
    assert!(
        ingested.stdout.contains("3 accepted"),
        "{}",
        ingested.stdout
    );
    assert_eq!(count(&server, "shop.orders.orders"), "n\n3\n");
    // The source the template wrote takes files dropped into the server's folder.
    let incoming = data.path().join("incoming/shop/orders/orders");
    std::fs::create_dir_all(&incoming).unwrap();
    std::fs::write(
        incoming.join("day-2.csv"),
        "id,status,amount,updated_at\nr-0004,new,1.00,2026-01-04T08:00:00Z\n",
    )
    .unwrap();
    server
        .cli(&["sources", "run", "shop.orders.orders_drops"])
        .ok();
    assert_eq!(count(&server, "shop.orders.orders"), "n\n4\n");
    // The sample query the descriptor carries works as written.
    let newest = server
        .cli(&[
            "query",
            "SELECT * FROM shop.orders.orders ORDER BY updated_at DESC LIMIT 10",
            "--format",
            "csv",
        ])
        .ok();
    assert!(
        newest
            .stdout
            .starts_with("id,status,amount,updated_at\nr-0004,"),
        "{}",
        newest.stdout
    );

    // An aggregate of it: an input port resolved through the server, a transform run by hand.
    let made = server
        .cli(&[
            "new",
            "product",
            "shop/order_stats",
            "--template",
            "aggregate",
            "--input",
            "shop.orders.orders",
            "--dir",
            path(dir),
        ])
        .ok();
    assert!(
        made.stdout.contains("transforms/order_stats.sql"),
        "{}",
        made.stdout
    );
    let stats = dir.join("shop/order_stats");
    let descriptor = std::fs::read_to_string(stats.join("product.odps.yaml")).unwrap();
    assert!(
        descriptor.contains(
            "inputPorts:\n  - name: orders\n    version: 1.0.0\n    contractId: shop-orders-orders"
        ),
        "{descriptor}"
    );
    assert!(!stats.join("sources").exists() && !stats.join("sample").exists());
    assert_applied_cleanly(&server.cli(&["apply", path(&stats)]).ok());
    let ran = server.cli(&["run", "shop.order_stats.order_stats"]).ok();
    assert!(ran.stdout.contains("succeeded"), "{}", ran.stdout);
    let rows = server
        .cli(&[
            "query",
            "SELECT input, row_count FROM shop.order_stats.order_stats",
            "--format",
            "csv",
        ])
        .ok();
    assert_eq!(rows.stdout, "input,row_count\nshop.orders.orders,4\n");
    // Its lineage names its input, though the query reads no column of it (`count(*)`).
    let upstream = server
        .cli(&["lineage", "shop.order_stats.order_stats"])
        .ok();
    assert!(
        upstream
            .stdout
            .contains("shop.orders.orders -> shop.order_stats.order_stats"),
        "{}",
        upstream.stdout
    );

    // A consumer product in another domain, owned by another team: it starts as a copy of its
    // input's columns, and runs once its team may read the input.
    let made = server
        .cli(&[
            "new",
            "product",
            "finance/open_orders",
            "--template",
            "consumer",
            "--owner",
            "finance team",
            "--input",
            "shop.orders.orders",
            "--dir",
            path(dir),
        ])
        .ok();
    let open = dir.join("finance/open_orders");
    let contract = std::fs::read_to_string(open.join("open_orders.odcs.yaml")).unwrap();
    assert!(
        contract.contains("- name: id\n        logicalType: string\n        description: \"The record's identifier, unique in the dataset.\"\n        primaryKey: true"),
        "{}\n{contract}",
        made.stdout
    );
    let sql = std::fs::read_to_string(open.join("transforms/open_orders.sql")).unwrap();
    assert!(
        sql.contains("SELECT id, status, amount, updated_at\nFROM shop.orders.orders"),
        "{sql}"
    );
    assert_applied_cleanly(&server.cli(&["apply", path(&open)]).ok());
    let refused = server
        .cli(&["run", "finance.open_orders.open_orders"])
        .failed();
    // The refusal says how the owner team gets read access (a request would grant its maker,
    // not the team), and that is what makes the run succeed.
    assert!(
        refused.stderr.contains("failed and committed nothing")
            && refused.stderr.contains(
                "team finance team may not read dataset shop.orders.orders: reading another team's product needs a grant (its owner team or an admin grants it with `tessera access grant shop.orders --team \"finance team\"`)"
            ),
        "{}",
        refused.stderr
    );
    server
        .cli(&["access", "grant", "shop.orders", "--team", "finance team"])
        .ok();
    server.cli(&["run", "finance.open_orders.open_orders"]).ok();
    assert_eq!(count(&server, "finance.open_orders.open_orders"), "n\n4\n");
}

#[test]
fn a_sample_file_gives_the_schema_and_personal_data_is_classified() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start("serve", data.path(), &[]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let sample = dir.join("signups.csv");
    std::fs::write(
        &sample,
        "signup_id,contact,plan,seats,signed_up_at\n\
         s1,ana@example.com,team,5,2026-03-01T09:00:00Z\n\
         s2,bo@example.com,solo,1,2026-03-02T10:30:00Z\n\
         s3,cy@example.com,team,12,2026-03-03T11:45:00Z\n",
    )
    .unwrap();
    server
        .cli(&[
            "new",
            "product",
            "growth/signups",
            "--owner",
            "growth team",
            "--from-file",
            path(&sample),
            "--dir",
            path(dir),
        ])
        .ok();
    let folder = dir.join("growth/signups");
    let contract = std::fs::read_to_string(folder.join("signups.odcs.yaml")).unwrap();
    for expected in [
        // The key: an id column whose values are unique.
        "- name: signup_id\n        logicalType: string\n        description: \"Signup id, as signups.csv holds it.\"\n        primaryKey: true\n        required: true",
        // E-mail addresses under another name: found by their values.
        "- name: contact\n        logicalType: string\n        description: \"Contact, as signups.csv holds it.\"\n        required: true\n        classification: pii",
        "- name: seats\n        logicalType: integer",
        "- name: signed_up_at\n        logicalType: timestamp",
        // Personal data needs a retention limit; freshness follows the time column.
        "- property: retention",
        "element: signups.signed_up_at",
    ] {
        assert!(contract.contains(expected), "{expected}\n---\n{contract}");
    }
    assert_eq!(
        std::fs::read(folder.join("sample/signups.csv")).unwrap(),
        std::fs::read(&sample).unwrap()
    );
    assert_applied_cleanly(&server.cli(&["apply", path(&folder)]).ok());
    server
        .cli(&[
            "ingest",
            "growth.signups.signups",
            path(&folder.join("sample/signups.csv")),
        ])
        .ok();
    // Readers without the right to see personal data see it masked.
    let rows = server
        .cli(&[
            "query",
            "SELECT plan, sum(seats) AS seats FROM growth.signups.signups GROUP BY plan ORDER BY plan",
            "--format",
            "csv",
        ])
        .ok();
    assert_eq!(rows.stdout, "plan,seats\nsolo,1\nteam,17\n");

    // What cannot be made says why, and writes nothing.
    let again = server
        .cli(&[
            "new",
            "product",
            "growth/signups",
            "--owner",
            "growth team",
            "--dir",
            path(dir),
        ])
        .failed();
    assert!(
        again.stderr.contains("exists and is not empty"),
        "{}",
        again.stderr
    );
    let no_owner = server
        .cli(&["new", "product", "sales/leads", "--dir", path(dir)])
        .failed();
    assert!(
        no_owner
            .stderr
            .contains("tessera new domain sales --owner TEAM"),
        "{}",
        no_owner.stderr
    );
    let camel = server
        .cli(&[
            "new",
            "product",
            "sales/Leads",
            "--owner",
            "x",
            "--dir",
            path(dir),
        ])
        .failed();
    assert!(camel.stderr.contains("snake_case"), "{}", camel.stderr);
    let no_input = server
        .cli(&[
            "new",
            "product",
            "sales/stats",
            "--owner",
            "x",
            "--template",
            "aggregate",
            "--dir",
            path(dir),
        ])
        .failed();
    assert!(no_input.stderr.contains("--input"), "{}", no_input.stderr);
    let unknown = server
        .cli(&[
            "new",
            "product",
            "sales/stats",
            "--owner",
            "x",
            "--input",
            "shop.nothing.here",
            "--template",
            "aggregate",
            "--dir",
            path(dir),
        ])
        .failed();
    assert!(
        unknown.stderr.contains("no such dataset"),
        "{}",
        unknown.stderr
    );
    assert!(!dir.join("sales").exists());
}

#[test]
fn a_postgres_table_gives_the_schema_and_the_source() {
    let admin = std::env::var("TESSERA_TEST_POSTGRES_URL").expect(
        "TESSERA_TEST_POSTGRES_URL is not set: run the suite with scripts/test, which starts PostgreSQL",
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let database = format!("tessera_new_{}", std::process::id());
    let url = runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {database}")))
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let url = format!("{}/{database}", admin.rsplit_once('/').unwrap().0);
        let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE public.customers (
                customer_id integer PRIMARY KEY,
                email text NOT NULL,
                credit numeric(10,2),
                active boolean,
                updated_at timestamptz NOT NULL
             );
             COMMENT ON COLUMN public.customers.credit IS 'What the customer may still spend, in euros.';
             INSERT INTO public.customers VALUES
               (1, 'ana@example.com', 10.50, true, '2026-01-01T10:00:00Z'),
               (2, 'bo@example.com', 0, false, '2026-01-02T10:00:00Z');",
        )
        .execute(&mut db)
        .await
        .unwrap();
        url
    });

    let data = tempfile::tempdir().unwrap();
    let server = Server::start("serve", data.path(), &[]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let made = server
        .cli(&[
            "new",
            "product",
            "crm/customers",
            "--owner",
            "crm team",
            "--source",
            &url,
            "--table",
            "public.customers",
            "--dir",
            path(dir),
        ])
        .ok();
    let folder = dir.join("crm/customers");
    let source = std::fs::read_to_string(folder.join("sources/customers.yaml")).unwrap();
    assert!(
        source.contains("connector: postgres")
            && source.contains("secret: {name: crm_customers_db}")
            && source.contains("table: public.customers")
            && source.contains("cursor: {timestamp: updated_at, key: customer_id}"),
        "{source}"
    );
    let contract = std::fs::read_to_string(folder.join("customers.odcs.yaml")).unwrap();
    for expected in [
        "- name: customer_id\n        logicalType: integer",
        "- name: email\n        logicalType: string",
        "classification: pii",
        "physicalType: \"decimal(10,2)\"\n        description: \"What the customer may still spend, in euros.\"",
    ] {
        assert!(contract.contains(expected), "{expected}\n---\n{contract}");
    }
    // The connection URL (and its password) is in no file the command wrote.
    for file in walk(&folder) {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains(&url), "{} holds the URL", file.display());
    }
    assert!(
        made.stdout.contains("tessera secret set crm_customers_db"),
        "{}",
        made.stdout
    );

    // The secret first (the source names it), then the product.
    let mut set = tessera()
        .env("TESSERA_CREDENTIALS", &server.credentials)
        .env("CRM_DB", &url)
        .args([
            "secret",
            "set",
            "crm_customers_db",
            "--team",
            "crm team",
            "--from-env",
            "CRM_DB",
            "--server",
            &server.url,
        ])
        .output()
        .unwrap();
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert_applied_cleanly(&server.cli(&["apply", path(&folder)]).ok());
    set = tessera()
        .env("TESSERA_CREDENTIALS", &server.credentials)
        .args([
            "sources",
            "run",
            "crm.customers.customers_db",
            "--server",
            &server.url,
        ])
        .output()
        .unwrap();
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert_eq!(count(&server, "crm.customers.customers"), "n\n2\n");
}

#[test]
fn a_platform_template_folder_adds_its_own_golden_path() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start("serve", data.path(), &[]);
    let work = tempfile::tempdir().unwrap();
    let templates = work.path().join("templates");
    // The platform's own: source-aligned's files, with a README of its own and a rule.
    let own = templates.join("audited");
    std::fs::create_dir_all(own.join("policies")).unwrap();
    std::fs::write(
        own.join("template.yaml"),
        "name: audited\ndescription: Source-aligned, with the platform's audit columns.\nbase: source-aligned\ncolumns:\n  - name: id\n    logicalType: string\n    description: The record's identifier.\n    primaryKey: true\n    required: true\n  - name: loaded_by\n    logicalType: string\n    description: The job that loaded the record.\n    required: true\n  - name: loaded_at\n    logicalType: timestamp\n    description: When the record was loaded.\n    required: true\nsample: |\n  id,loaded_by,loaded_at\n  a1,nightly,2026-05-01T01:00:00Z\n",
    )
    .unwrap();
    std::fs::write(
        own.join("README.md"),
        "# {{ domain }}.{{ product }} (audited)\n\nLoaded by {{ owner }}.\n",
    )
    .unwrap();
    let dir = work.path().join("products");
    let templates_flag = path(&templates).to_string();
    let listed = run(&["new", "--list", "--templates", &templates_flag]).ok();
    assert!(
        listed
            .stdout
            .contains(&format!("audited ({})", own.display())),
        "{}",
        listed.stdout
    );
    server
        .cli(&[
            "new",
            "product",
            "ops/loads",
            "--template",
            "audited",
            "--templates",
            &templates_flag,
            "--owner",
            "ops team",
            "--dir",
            path(&dir),
        ])
        .ok();
    let folder = dir.join("ops/loads");
    assert_eq!(
        std::fs::read_to_string(folder.join("README.md")).unwrap(),
        "# ops.loads (audited)\n\nLoaded by ops team.\n"
    );
    assert_applied_cleanly(&server.cli(&["apply", path(&folder)]).ok());
    server
        .cli(&[
            "ingest",
            "ops.loads.loads",
            path(&folder.join("sample/loads.csv")),
        ])
        .ok();
    assert_eq!(count(&server, "ops.loads.loads"), "n\n1\n");

    // A template that does not render says which file and why.
    std::fs::write(own.join("broken.md"), "{{ no_such_value }}\n").unwrap();
    let broken = server
        .cli(&[
            "new",
            "product",
            "ops/other",
            "--template",
            "audited",
            "--templates",
            &templates_flag,
            "--owner",
            "ops team",
            "--dir",
            path(&dir),
        ])
        .failed();
    assert!(broken.stderr.contains("broken.md"), "{}", broken.stderr);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
