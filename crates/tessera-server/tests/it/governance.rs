//! Federated computational governance (issue 9): the standard library refuses what it must and
//! lets a documented product through, domain policies add rules or raise severities but never
//! weaken a global one, the council writes global policies and turns standard ones off, and
//! `check` and `test` evaluate on demand. Servers here start with the standard library on, as
//! a real mesh does.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::on_both_stores;
use crate::support::*;

on_both_stores!(
    the_standard_library_refuses_a_noncompliant_product,
    a_compliant_product_publishes_with_its_compliance_status,
    domain_policies_add_rules_and_raise_severities_but_never_weaken,
    the_council_writes_global_policies_and_turns_standard_ones_off,
    policies_are_tested_and_checked_on_demand,
    sample_queries_are_planned_at_publish_and_listed,
    the_scorecard_agrees_with_the_metadata_and_keeps_history,
    personal_data_found_at_ingest_shows_on_the_scorecard_and_blocks_the_next_publish,
);

/// A file of the repository's `examples/` folder.
fn example(path: &str) -> String {
    let file = format!("{}/../../examples/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn quickstart() -> Vec<(String, String)> {
    vec![
        (
            "quickstart/product.odps.yaml".to_string(),
            example("quickstart/product.odps.yaml"),
        ),
        (
            "quickstart/orders.odcs.yaml".to_string(),
            example("quickstart/orders.odcs.yaml"),
        ),
    ]
}

fn as_refs(files: &[(String, String)]) -> Vec<(&str, &str)> {
    files
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_str()))
        .collect()
}

/// The (severity, policy, object) of every violation in an outcome.
fn violations(outcome: &Value) -> BTreeSet<(String, String, String)> {
    outcome["violations"]
        .as_array()
        .unwrap_or_else(|| panic!("no violations in {outcome}"))
        .iter()
        .map(|v| {
            (
                v["severity"].as_str().unwrap().to_string(),
                v["policy"].as_str().unwrap().to_string(),
                v["object"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

async fn put_global(server: &TestServer, token: &str, files: &[(&str, &str)]) -> (u16, Value) {
    server
        .put_files(token, "/api/v1/governance/policies", files)
        .await
}

async fn the_standard_library_refuses_a_noncompliant_product(store: Store) {
    let server = TestServer::start_governed(store, Tables::Local).await;
    let product = example("noncompliant/product.odps.yaml");
    let contract = example("noncompliant/signups.odcs.yaml");
    let files = [
        ("noncompliant/product.odps.yaml", product.as_str()),
        ("noncompliant/signups.odcs.yaml", contract.as_str()),
    ];
    let (status, body) = server.apply(&files, false).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "policy_violations", "{body}");
    let plan = &body["error"]["plan"];
    assert_eq!(plan["applied"], false);
    assert_eq!(
        violations(&plan["policies"]),
        set(&[
            ("block", "product-owner", "product newsletter.signups"),
            ("block", "support-channel", "product newsletter.signups"),
            ("block", "snake-case-names", "column signups.signedUpAt"),
            ("block", "personal-data-classified", "column signups.email"),
            ("block", "freshness-slo", "dataset signups"),
            ("warn", "described-columns", "column signups.email"),
            ("warn", "described-columns", "column signups.source"),
            ("warn", "sample-queries", "output port signups"),
        ])
    );
    assert_eq!(plan["policies"]["blocking"], 5);
    assert_eq!(plan["policies"]["warnings"], 3);
    // Each violation points at where to fix it: a column at its line in the contract.
    let email = plan["policies"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["policy"] == "personal-data-classified")
        .unwrap();
    let line = contract
        .lines()
        .position(|l| l.trim() == "- name: email")
        .unwrap()
        + 1;
    assert_eq!(email["file"], "noncompliant/signups.odcs.yaml");
    assert_eq!(email["line"], line);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("newsletter.signups: refused by the governance policies: 5 blocking violation(s), 3 warning(s)")
            && message.contains(&format!(
                "block personal-data-classified: column signups.email: the column's name looks like personal data but it is not classified: add classification: pii (or a pii tag) (noncompliant/signups.odcs.yaml:{line})"
            )),
        "{message}"
    );
    // Nothing was published.
    let (status, _) = server.get("/api/v1/products/newsletter/signups").await;
    assert_eq!(status, 404);
    // A dry run shows the same violations without refusing.
    let (status, dry) = server.apply(&files, true).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["applied"], false);
    assert_eq!(dry["policies"]["blocking"], 5);
}

async fn a_compliant_product_publishes_with_its_compliance_status(store: Store) {
    let server = TestServer::start_governed(store, Tables::Local).await;
    let files = quickstart();
    let (status, plan) = server.apply(&as_refs(&files), false).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["applied"], true);
    let standard = tessera_governance::STANDARD_POLICIES.len();
    let mut outcome = plan["policies"].clone();
    assert!(outcome["duration_ms"].is_u64(), "{outcome}");
    outcome.as_object_mut().unwrap().remove("duration_ms");
    assert_eq!(
        outcome,
        json!({"evaluated": standard, "blocking": 0, "warnings": 0, "violations": []})
    );
    // Where the product stands, in tessera_meta: every standard policy, passing.
    let results = server
        .rows(
            "SELECT policy_id, passing, violations FROM tessera_meta.policy_results
             WHERE domain = 'shop' AND product = 'orders' ORDER BY policy_id",
        )
        .await;
    assert_eq!(results.len(), standard, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| r["passing"] == true && r["violations"] == 0),
        "{results:?}"
    );
    let policies = server
        .rows(
            "SELECT count(*) AS n FROM tessera_meta.policies WHERE origin = 'standard' AND enabled",
        )
        .await;
    assert_eq!(policies[0]["n"], standard);
}

/// The quickstart folder with one policy file added under `policies/`.
fn with_policy(name: &str, policy: &str) -> Vec<(String, String)> {
    let mut files = quickstart();
    files.push((format!("quickstart/policies/{name}"), policy.to_string()));
    files
}

async fn domain_policies_add_rules_and_raise_severities_but_never_weaken(store: Store) {
    let server = TestServer::start_governed(store, Tables::Local).await;

    // Weakening a global policy is refused, naming the file and the line.
    let lenient = "apiVersion: tessera/v1\nkind: Policy\nid: lenient-freshness\ndescription: Freshness is optional in shop.\nseverity: warn\nextends: freshness-slo\n";
    let (status, body) = server
        .apply(&as_refs(&with_policy("lenient.yaml", lenient)), false)
        .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("quickstart/policies/lenient.yaml:5: severity: a domain policy cannot weaken or switch off global policy \"freshness-slo\" (severity block)"),
        "{message}"
    );
    let off = lenient.replace("severity: warn", "severity: off");
    let (status, body) = server
        .apply(&as_refs(&with_policy("lenient.yaml", &off)), false)
        .await;
    assert_eq!(status, 422, "{body}");
    // So is replacing one under its id.
    let replacing = "apiVersion: tessera/v1\nkind: Policy\nid: product-owner\ndescription: Owners are optional.\nseverity: warn\nmessage: no owner\nquery: SELECT domain, product, 'x' AS object FROM tessera_meta.products WHERE false\n";
    let (status, body) = server
        .apply(&as_refs(&with_policy("owner.yaml", replacing)), false)
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(
            "quickstart/policies/owner.yaml:3: id: policy id \"product-owner\" is a global policy's"
        ),
        "{body}"
    );

    // A stricter severity and a rule of shop's own apply to shop's products only.
    let strict = "apiVersion: tessera/v1\nkind: Policy\nid: shop-described-columns\ndescription: In shop, every column is described before it publishes.\nseverity: block\nextends: described-columns\n";
    let versioned = "apiVersion: tessera/v1\nkind: Policy\nid: shop-versioned\ndescription: Shop's products state a version.\nseverity: block\nmessage: the product states no version\nquery: |\n  SELECT domain, product, 'product ' || product AS object\n  FROM tessera_meta.products WHERE version IS NULL\n";
    let mut files = with_policy("strict.yaml", strict);
    files.push((
        "quickstart/policies/versioned.yaml".into(),
        versioned.into(),
    ));
    let (status, plan) = server.apply(&as_refs(&files), false).await;
    assert_eq!(status, 200, "{plan}");
    let kinds: Vec<(&str, &str)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "policy")
        .map(|c| (c["name"].as_str().unwrap(), c["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("shop-described-columns", "create"),
            ("shop-versioned", "create")
        ]
    );
    // The standard library and shop's own rule (the raised one is a standard policy's).
    assert_eq!(
        plan["policies"]["evaluated"],
        tessera_governance::STANDARD_POLICIES.len() + 1
    );

    // A shop product with an undescribed column is now refused; a product of another domain
    // with the same column publishes with a warning.
    let contract = example("quickstart/orders.odcs.yaml");
    let bare = strip_description(&contract, "status");
    let product = example("quickstart/product.odps.yaml");
    let second = product
        .replace("id: shop-orders", "id: shop-returns")
        .replace("name: orders\n", "name: returns\n")
        .replace("contractId: shop-orders", "contractId: shop-returns");
    let second_contract = bare.replace("id: shop-orders", "id: shop-returns");
    let (status, body) = server
        .apply(
            &[
                ("returns/product.odps.yaml", second.as_str()),
                ("returns/returns.odcs.yaml", second_contract.as_str()),
            ],
            false,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        violations(&body["error"]["plan"]["policies"]),
        set(&[("block", "described-columns", "column orders.status")])
    );
    let other = second
        .replace("domain: shop", "domain: billing")
        .replace("name: shop team", "name: billing team")
        .replace("FROM shop.orders.orders", "FROM billing.returns.orders");
    let (status, plan) = server
        .apply_as(
            &server.admin_token.clone(),
            &[
                ("billing/product.odps.yaml", other.as_str()),
                ("billing/returns.odcs.yaml", second_contract.as_str()),
            ],
            false,
        )
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(
        violations(&plan["policies"]),
        set(&[("warn", "described-columns", "column orders.status")])
    );
    // Shop's own rule does not apply to billing (billing's product has a version anyway; the
    // count says shop's policies were not evaluated there).
    assert_eq!(
        plan["policies"]["evaluated"],
        tessera_governance::STANDARD_POLICIES.len()
    );

    // Removing the files removes the policies.
    let (status, plan) = server.apply(&as_refs(&quickstart()), false).await;
    assert_eq!(status, 200, "{plan}");
    let removed: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "remove")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(removed, vec!["shop-described-columns", "shop-versioned"]);
    let (_, listed) = server.get("/api/v1/governance/policies").await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["origin"] == "standard"),
        "{listed}"
    );
}

/// `contract` with the description of column `column` taken out.
fn strip_description(contract: &str, column: &str) -> String {
    let mut out = Vec::new();
    let mut in_column = false;
    for line in contract.lines() {
        if line.trim_start().starts_with("- name: ") {
            in_column = line.trim_start() == format!("- name: {column}");
        } else if in_column && line.trim_start().starts_with("description:") {
            continue;
        }
        out.push(line);
    }
    let stripped = out.join("\n") + "\n";
    assert_ne!(stripped, contract, "column {column} had no description");
    stripped
}

async fn the_council_writes_global_policies_and_turns_standard_ones_off(store: Store) {
    let server = TestServer::start_governed(store, Tables::Local).await;
    let council = server
        .token_for("hmueller", &["governance council"], &[])
        .await;
    let analyst = server.token_for("pnair", &["analysts"], &[]).await;
    let no_drafts = "apiVersion: tessera/v1\nkind: Policy\nid: no-draft-products\ndescription: Only finished products are published.\nseverity: block\nmessage: the product is a draft\nquery: |\n  SELECT domain, product, 'product ' || domain || '.' || product AS object\n  FROM tessera_meta.products WHERE status = 'draft'\n";

    let (status, body) = put_global(&server, &analyst, &[("no-drafts.yaml", no_drafts)]).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only members of group \"governance council\""),
        "{body}"
    );
    let (status, body) = put_global(&server, &council, &[("no-drafts.yaml", no_drafts)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["id"], "no-draft-products");
    assert_eq!(body[0]["origin"], "global");

    // A global policy is a rule of its own: no `extends`, and a query that names its objects.
    let extending = "apiVersion: tessera/v1\nkind: Policy\nid: strict\ndescription: d\nseverity: block\nextends: described-columns\n";
    let (status, body) = put_global(&server, &council, &[("strict.yaml", extending)]).await;
    assert_eq!(status, 422, "{body}");
    let nameless = "apiVersion: tessera/v1\nkind: Policy\nid: nameless\ndescription: d\nseverity: warn\nmessage: m\nquery: SELECT domain, product FROM tessera_meta.products\n";
    let (status, body) = put_global(&server, &council, &[("nameless.yaml", nameless)]).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nameless.yaml:7: query: the policy's query returns no column object"),
        "{body}"
    );

    // The new policy refuses a draft.
    let files = quickstart();
    let draft = files[0].1.replace("status: active", "status: draft");
    let (status, body) = server
        .apply(
            &[
                (&files[0].0, draft.as_str()),
                (&files[1].0, files[1].1.as_str()),
            ],
            false,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        violations(&body["error"]["plan"]["policies"]),
        set(&[("block", "no-draft-products", "product shop.orders")])
    );

    // The council turns a standard policy off for the whole mesh; an analyst may not.
    let (status, _) = server
        .post_json_as(
            Some(&analyst),
            "/api/v1/governance/policies/support-channel/disable",
            &json!({}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = server
        .post_json_as(
            Some(&council),
            "/api/v1/governance/policies/support-channel/disable",
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enabled"], false);
    let unsupported = strip_support(&files[0].1);
    let (status, plan) = server
        .apply(
            &[
                (&files[0].0, unsupported.as_str()),
                (&files[1].0, files[1].1.as_str()),
            ],
            false,
        )
        .await;
    assert_eq!(status, 200, "{plan}");
    // It is in the audit log, by whom.
    let (_, audit) = server.get("/api/v1/audit?after=0&limit=1000").await;
    let switched: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "standard_policy.disable")
        .collect();
    assert_eq!(switched.len(), 1, "{audit}");
    assert_eq!(switched[0]["subject"], "support-channel");
    assert_eq!(switched[0]["actor"], "user hmueller");
    // A standard policy is turned off, not removed.
    let r = server
        .client(Some(&council))
        .delete(format!(
            "{}/api/v1/governance/policies/product-owner",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
}

/// The quickstart descriptor without its support channel.
fn strip_support(product: &str) -> String {
    let start = product.find("support:\n").expect("a support section");
    let end = product[start..]
        .find("outputPorts:")
        .map(|i| start + i)
        .unwrap();
    format!("{}{}", &product[..start], &product[end..])
}

async fn policies_are_tested_and_checked_on_demand(store: Store) {
    let server = TestServer::start_governed(store, Tables::Local).await;
    let files = quickstart();
    let (status, plan) = server.apply(&as_refs(&files), false).await;
    assert_eq!(status, 200, "{plan}");

    // `test`: a policy file against a folder, nothing applied.
    let amounts = "apiVersion: tessera/v1\nkind: Policy\nid: money-is-decimal\ndescription: Amounts are stored as decimals.\nseverity: block\nmessage: a money column that is not a decimal\nquery: |\n  SELECT domain, product, dataset, column_name, 'column ' || dataset || '.' || column_name AS object\n  FROM tessera_meta.columns\n  WHERE column_name IN ('amount', 'price') AND (physical_type IS NULL OR physical_type NOT LIKE 'decimal%')\n";
    // A new product of another domain, with a money column stored as a double.
    let float = files[1]
        .1
        .replace("physicalType: decimal(10,2)", "physicalType: double");
    let finance = files[0].1.replace("domain: shop", "domain: finance");
    let folder: Vec<Value> = [
        (&files[0].0, finance.as_str()),
        (&files[1].0, float.as_str()),
    ]
    .iter()
    .map(|(n, c)| json!({"name": n, "content": c}))
    .collect();
    let (status, found) = server
        .post_json(
            "/api/v1/governance/policies/test",
            &json!({"policy": {"name": "money.yaml", "content": amounts}, "files": folder}),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["trigger"], "test");
    assert_eq!(
        violations(&found),
        set(&[("block", "money-is-decimal", "column orders.amount")])
    );
    assert_eq!(found["violations"][0]["domain"], "finance");
    // Nothing was applied, and the policy is not stored.
    let (status, _) = server.get("/api/v1/products/finance/orders").await;
    assert_eq!(status, 404);
    let (status, _) = server
        .get("/api/v1/governance/policies/money-is-decimal")
        .await;
    assert_eq!(status, 404);

    // `check`: on demand over the mesh; its results agree with our own count of the
    // metadata. The council adds a warning about columns without a unit in their name.
    let council = server
        .token_for("hmueller", &["governance council"], &[])
        .await;
    let unitless = "apiVersion: tessera/v1\nkind: Policy\nid: numbers-say-their-unit\ndescription: Numeric columns end in their unit.\nseverity: warn\nmessage: a number without a unit\nquery: |\n  SELECT domain, product, dataset, column_name, 'column ' || dataset || '.' || column_name AS object\n  FROM tessera_meta.columns\n  WHERE logical_type = 'number' AND NOT regexp_like(column_name, '_(usd|eur|ms|bytes)$')\n";
    let (status, body) = put_global(&server, &council, &[("unitless.yaml", unitless)]).await;
    assert_eq!(status, 200, "{body}");
    let expected = server
        .scalar(
            "SELECT count(*) FROM tessera_meta.columns
             WHERE logical_type = 'number' AND NOT regexp_like(column_name, '_(usd|eur|ms|bytes)$')",
        )
        .await;
    let (status, checked) = server
        .post_json("/api/v1/governance/check", &json!({"target": "shop"}))
        .await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["products"], 1);
    assert_eq!(checked["warnings"], expected, "{checked}");
    assert_eq!(checked["blocking"], 0);
    let status_rows = server
        .rows(
            "SELECT violations, passing FROM tessera_meta.policy_results
             WHERE policy_id = 'numbers-say-their-unit'",
        )
        .await;
    assert_eq!(status_rows[0]["violations"], expected);
    assert_eq!(status_rows[0]["passing"], false);
    let (status, _) = server
        .post_json(
            "/api/v1/governance/check",
            &json!({"target": "nowhere.nothing"}),
        )
        .await;
    assert_eq!(status, 404);
}

async fn sample_queries_are_planned_at_publish_and_listed(store: Store) {
    let server = TestServer::start_governed(store, Tables::Local).await;
    let files = quickstart();
    let (status, plan) = server.apply(&as_refs(&files), false).await;
    assert_eq!(status, 200, "{plan}");
    // The quickstart's port has its sample query, so the sample-queries policy passes.
    assert_eq!(plan["policies"]["warnings"], 0, "{plan}");

    // Listed with the product, and in tessera_meta.
    let (status, product) = server.get("/api/v1/products/shop/orders").await;
    assert_eq!(status, 200, "{product}");
    let samples = &product["output_ports"][0]["sample_queries"];
    assert_eq!(samples[0]["name"], "revenue_by_status", "{product}");
    assert_eq!(
        samples[0]["sql"],
        "SELECT status, count(*) AS orders, sum(amount) AS revenue FROM shop.orders.orders GROUP BY status ORDER BY status"
    );
    let rows = server
        .rows("SELECT domain, product, port, name FROM tessera_meta.sample_queries")
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"domain": "shop", "product": "orders", "port": "orders", "name": "revenue_by_status"})
        ]
    );

    // A sample query that does not plan is refused at its line, and nothing changes.
    let descriptor = &files[0].1;
    let broken = descriptor.replace("sum(amount) AS revenue", "sum(price) AS revenue");
    assert_ne!(&broken, descriptor);
    let sql_line = broken
        .lines()
        .position(|l| l.trim_start().starts_with("sql: SELECT status"))
        .unwrap()
        + 1;
    let (status, body) = server
        .apply(
            &[
                ("quickstart/product.odps.yaml", broken.as_str()),
                ("quickstart/orders.odcs.yaml", files[1].1.as_str()),
            ],
            false,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let d = &body["error"]["diagnostics"][0];
    assert_eq!(d["file"], "quickstart/product.odps.yaml", "{body}");
    assert_eq!(d["line"], sql_line, "{body}");
    assert_eq!(
        d["field"],
        "outputPorts[0].customProperties[0].value[0].sql"
    );
    let message = d["message"].as_str().unwrap();
    assert!(
        message.starts_with("the sample query cannot run:") && message.contains("price"),
        "{message}"
    );

    // Without one, the port is a warning, and the product still publishes.
    let bare = descriptor[..descriptor.find("    customProperties:").unwrap()].to_string();
    let bare = bare.replace("version: 1.0.0\ndescription", "version: 1.1.0\ndescription");
    let (status, plan) = server
        .apply(
            &[
                ("quickstart/product.odps.yaml", bare.as_str()),
                ("quickstart/orders.odcs.yaml", files[1].1.as_str()),
            ],
            false,
        )
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(
        violations(&plan["policies"]),
        set(&[("warn", "sample-queries", "output port orders")])
    );
}

async fn the_scorecard_agrees_with_the_metadata_and_keeps_history(store: Store) {
    let server = TestServer::start_governed(store, Tables::Local).await;
    // Two products: shop.orders complies in full; returns.orders (the same folder in another
    // domain, without its sample query) complies with one warning.
    let files = quickstart();
    let (status, plan) = server.apply(&as_refs(&files), false).await;
    assert_eq!(status, 200, "{plan}");
    let descriptor = &files[0].1;
    let returns = descriptor[..descriptor.find("    customProperties:").unwrap()]
        .replace("domain: shop", "domain: returns");
    let (status, plan) = server
        .apply(
            &[
                ("returns/product.odps.yaml", returns.as_str()),
                ("returns/orders.odcs.yaml", files[1].1.as_str()),
            ],
            false,
        )
        .await;
    assert_eq!(status, 200, "{plan}");

    // The council adds a warning; the mesh is evaluated again at once, without a `check`.
    let council = server
        .token_for("hmueller", &["governance council"], &[])
        .await;
    let unitless = "apiVersion: tessera/v1\nkind: Policy\nid: numbers-say-their-unit\ndescription: Numeric columns end in their unit.\nseverity: warn\nmessage: a number without a unit\nquery: |\n  SELECT domain, product, dataset, column_name, 'column ' || dataset || '.' || column_name AS object\n  FROM tessera_meta.columns\n  WHERE logical_type = 'number' AND NOT regexp_like(column_name, '_(usd|eur|ms|bytes)$')\n";
    let (status, body) = put_global(&server, &council, &[("unitless.yaml", unitless)]).await;
    assert_eq!(status, 200, "{body}");

    let (status, card) = server.get("/api/v1/governance/scorecard").await;
    assert_eq!(status, 200, "{card}");
    let products = card["products"].as_array().unwrap();
    let names: Vec<String> = products
        .iter()
        .map(|p| {
            format!(
                "{}.{}",
                p["domain"].as_str().unwrap(),
                p["product"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names, ["returns.orders", "shop.orders"]);

    // Our own count over tessera_meta: the policies in force and the violations we expect.
    let in_force = server
        .scalar("SELECT count(*) FROM tessera_meta.policies WHERE enabled AND origin IN ('standard', 'global')")
        .await
        .as_u64()
        .unwrap() as usize;
    let unitless_columns = |domain: &str| {
        format!(
            "SELECT count(*) FROM tessera_meta.columns WHERE domain = '{domain}'
             AND logical_type = 'number' AND NOT regexp_like(column_name, '_(usd|eur|ms|bytes)$')"
        )
    };
    let shop_unitless = server.scalar(&unitless_columns("shop")).await;
    assert_eq!(shop_unitless, 1, "amount has no unit");
    let returns_unsampled = server
        .scalar(
            "SELECT count(*) FROM tessera_meta.output_ports p WHERE p.domain = 'returns'
             AND NOT EXISTS (SELECT 1 FROM tessera_meta.sample_queries s
                             WHERE s.domain = p.domain AND s.product = p.product AND s.port = p.port)",
        )
        .await;
    assert_eq!(returns_unsampled, 1);
    for (p, failing) in [
        (
            &products[0],
            vec!["numbers-say-their-unit", "sample-queries"],
        ),
        (&products[1], vec!["numbers-say-their-unit"]),
    ] {
        assert_eq!(p["policies"], in_force, "{p}");
        assert_eq!(p["passing"], in_force - failing.len(), "{p}");
        assert_eq!(p["compliant"], true, "warnings only: {p}");
        let share = 100.0 * (in_force - failing.len()) as f64 / in_force as f64;
        assert!(
            (p["share_passing"].as_f64().unwrap() - share).abs() < 1e-9,
            "{p}"
        );
        let not_passing: Vec<&str> = p["standings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["passing"] == false)
            .map(|s| s["policy_id"].as_str().unwrap())
            .collect();
        assert_eq!(not_passing, failing, "{p}");
        // The scorecard and tessera_meta.policy_results say the same.
        let results = server
            .rows(&format!(
                "SELECT policy_id, violations FROM tessera_meta.policy_results
                 WHERE domain = '{}' AND product = 'orders' ORDER BY policy_id",
                p["domain"].as_str().unwrap()
            ))
            .await;
        let from_card: Vec<Value> = p["standings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| json!({"policy_id": s["policy_id"], "violations": s["violations"]}))
            .collect();
        assert_eq!(results, from_card);
        let unitless = p["standings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["policy_id"] == "numbers-say-their-unit")
            .unwrap();
        assert_eq!(unitless["violations"], shop_unitless);
        // History, newest first: the council's change, then the apply.
        let history = p["history"].as_array().unwrap();
        assert_eq!(history[0]["trigger"], "policy-change", "{p}");
        assert_eq!(history[0]["passing"], p["passing"]);
        assert_eq!(history[1]["trigger"], "apply", "{p}");
        assert_eq!(
            history[1]["policies"],
            in_force - 1,
            "before the council's policy: {p}"
        );
    }
    assert_eq!(
        card["total"],
        json!({
            "products": 2, "compliant": 2, "standings": 2 * in_force,
            "passing": 2 * in_force - 3,
            "share_passing": 100.0 * (2 * in_force - 3) as f64 / (2 * in_force) as f64,
        })
    );
    assert_eq!(card["domains"][0]["domain"], "returns");
    assert_eq!(card["domains"][0]["passing"], in_force - 2);

    // CSV: one row per product and policy.
    let r = server
        .client(Some(&server.admin_token))
        .get(format!(
            "{}/api/v1/governance/scorecard?format=csv&target=shop",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "domain,product,policy_id,severity,passing,violations,since,evaluated_at"
    );
    assert_eq!(lines.len(), 1 + in_force, "{csv}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("shop,orders,numbers-say-their-unit,warn,false,1,")),
        "{csv}"
    );

    // One product, and the errors a user can make.
    let (status, one) = server
        .get("/api/v1/governance/scorecard?target=shop.orders&history=0")
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["products"].as_array().unwrap().len(), 1);
    assert_eq!(one["products"][0]["history"], json!([]));
    let (status, _) = server
        .get("/api/v1/governance/scorecard?target=nowhere")
        .await;
    assert_eq!(status, 404);
    let (status, body) = server.get("/api/v1/governance/scorecard?format=xml").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = server.get("/api/v1/governance/scorecard?history=-1").await;
    assert_eq!(status, 400, "{body}");
    // The product's page shows its standing too.
    let (_, product) = server.get("/api/v1/products/returns/orders").await;
    assert_eq!(product["compliance"]["passing"], in_force - 2, "{product}");
}

async fn personal_data_found_at_ingest_shows_on_the_scorecard_and_blocks_the_next_publish(
    store: Store,
) {
    let server = TestServer::start_governed(store, Tables::Local).await;
    // The quickstart with a column whose name gives nothing away.
    let mut files = quickstart();
    files[1].1 = files[1].1.replace(
        "      - name: placed_at\n",
        "      - name: reference\n        description: Where the order came from.\n        logicalType: string\n      - name: placed_at\n",
    );
    let (status, plan) = server.apply(&as_refs(&files), false).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["policies"]["blocking"], 0, "{plan}");

    // Its values are e-mail addresses (four of five).
    let csv = "order_id,customer_id,amount,status,placed_at,reference\n\
        1,U00000001,10,open,2026-11-20T10:00:00Z,ada@example.com\n\
        2,U00000002,11,open,2026-11-20T10:00:00Z,grace@example.org\n\
        3,U00000003,12,open,2026-11-20T10:00:00Z,web\n\
        4,U00000004,13,open,2026-11-20T10:00:00Z,alan@example.net\n\
        5,U00000005,14,open,2026-11-20T10:00:00Z,edsger@example.com\n";
    let (status, report) = server
        .ingest("shop.orders.orders", "", "text/csv", csv)
        .await;
    assert_eq!(status, 201, "{report}");
    let found = server
        .rows(
            "SELECT column_name, detector, matched, sampled, holds
             FROM tessera_meta.personal_data_detections",
        )
        .await;
    assert_eq!(
        found,
        vec![
            json!({"column_name": "reference", "detector": "email", "matched": 4, "sampled": 5, "holds": true})
        ]
    );

    // The product is evaluated again at once: the scorecard shows the violation...
    let (_, card) = server
        .get("/api/v1/governance/scorecard?target=shop.orders")
        .await;
    let product = &card["products"][0];
    assert_eq!(product["compliant"], false, "{card}");
    let failing: Vec<&str> = product["standings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["passing"] == false)
        .map(|s| s["policy_id"].as_str().unwrap())
        .collect();
    assert_eq!(failing, ["personal-data-classified"]);
    assert_eq!(product["history"][0]["trigger"], "ingest");

    // ...and the next publish is refused, saying what the values looked like.
    let (status, body) = server.apply(&as_refs(&files), false).await;
    assert_eq!(status, 422, "{body}");
    let plan = &body["error"]["plan"];
    let violations = plan["policies"]["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 1, "{body}");
    assert_eq!(violations[0]["object"], "column orders.reference");
    assert_eq!(
        violations[0]["message"],
        "the column is not classified but 4 of 5 values sampled at ingest look like e-mail addresses: add classification: pii (or a pii tag)"
    );
    assert_eq!(plan["policies"]["blocking"], 1);
}
