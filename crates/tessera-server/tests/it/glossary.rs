//! Shared definitions (issue 9): the council publishes glossary terms; a column that references
//! one declares a compatible type and no looser rule, and the term's rules are enforced on its
//! data at ingest, naming the term; a new version reports which products would fail under it,
//! and a contract moves to a stricter one only with a major version.

use serde_json::{Value, json};

use crate::on_both_stores;
use crate::support::*;

on_both_stores!(
    the_council_publishes_terms_and_columns_take_their_rules,
    a_new_term_version_reports_what_would_fail_and_needs_a_major_contract_version,
    a_terms_mask_is_how_every_column_of_it_is_masked,
);

const CUSTOMER_ID: &str = "apiVersion: tessera/v1\nkind: GlossaryTerm\nname: customer_id\nversion: 1.0.0\ndescription: A customer, as the identity service issues it (U and eight digits).\nlogicalType: string\npattern: \"^U[0-9]{8}$\"\nclassification: internal\n";

const PRODUCT: &str = "apiVersion: v1.0.0\nkind: DataProduct\nid: shop-orders\nname: orders\ndomain: shop\nstatus: active\nteam:\n  name: shop team\noutputPorts:\n  - name: orders\n    version: 1.0.0\n    contractId: shop-orders\n";

/// The shop's orders contract whose `customer_id` references a term version (and states no
/// pattern of its own): `customer_type` and `extra` are written into the column.
fn contract(version: &str, customer_type: &str, term: &str, extra: &str) -> String {
    format!(
        "apiVersion: v3.1.0\nkind: DataContract\nid: shop-orders\nversion: {version}\nstatus: active\nschema:\n  - name: orders\n    properties:\n      - name: order_id\n        logicalType: integer\n        primaryKey: true\n      - name: customer_id\n        logicalType: {customer_type}\n        tags: [\"glossary:customer_id@{term}\"]{extra}\n      - name: amount\n        logicalType: number\n"
    )
}

async fn publish(server: &TestServer, token: &str, files: &[(&str, &str)]) -> (u16, Value) {
    server.put_files(token, "/api/v1/glossary", files).await
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

async fn the_council_publishes_terms_and_columns_take_their_rules(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    let council = server
        .token_for("hmueller", &["governance council"], &[])
        .await;
    let analyst = server.token_for("dpatel", &["analysts"], &[]).await;

    // Only the council publishes terms.
    let (status, body) = publish(&server, &analyst, &[("customer_id.yaml", CUSTOMER_ID)]).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = publish(&server, &council, &[("customer_id.yaml", CUSTOMER_ID)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["terms"][0]["name"], "customer_id");
    assert_eq!(body["impact"], json!([]));
    // Again: nothing changes; other content under the same version is refused.
    let (status, _) = publish(&server, &council, &[("customer_id.yaml", CUSTOMER_ID)]).await;
    assert_eq!(status, 200);
    let changed = CUSTOMER_ID.replace("eight digits", "8 digits");
    let (status, body) = publish(&server, &council, &[("customer_id.yaml", &changed)]).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(
            "glossary term customer_id@1.0.0 is already published with different content"
        ),
        "{body}"
    );

    // A column of the wrong type, a looser pattern, or an unknown version is refused at its line.
    for (column_type, term, extra, expected) in [
        (
            "integer",
            "1.0.0",
            "",
            "the column is declared integer but glossary term customer_id@1.0.0 is string",
        ),
        (
            "string",
            "1.0.0",
            "\n        logicalTypeOptions:\n          pattern: \"^U\"",
            "the column's pattern ^U is not glossary term customer_id@1.0.0's ^U[0-9]{8}$",
        ),
        (
            "string",
            "9.9.9",
            "",
            "glossary term customer_id has no version 9.9.9 (published: 1.0.0)",
        ),
    ] {
        let c = contract("1.0.0", column_type, term, extra);
        let (status, body) = server
            .apply(
                &[("product.odps.yaml", PRODUCT), ("orders.odcs.yaml", &c)],
                false,
            )
            .await;
        assert_eq!(status, 422, "{body}");
        let d = &body["error"]["diagnostics"][0];
        assert_eq!(d["file"], "orders.odcs.yaml");
        assert_eq!(d["line"], line_of(&c, "- name: customer_id"), "{body}");
        assert!(
            d["message"].as_str().unwrap().starts_with(expected),
            "{expected}: {body}"
        );
    }

    // A column that references the term publishes, and takes its rules and classification.
    let c = contract("1.0.0", "string", "1.0.0", "");
    let (status, body) = server
        .apply(
            &[("product.odps.yaml", PRODUCT), ("orders.odcs.yaml", &c)],
            false,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let rows = server
        .rows(
            "SELECT column_name, glossary_term, classification FROM tessera_meta.columns
             WHERE glossary_term IS NOT NULL",
        )
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"column_name": "customer_id", "glossary_term": "customer_id@1.0.0", "classification": "internal"})
        ]
    );
    let terms = server
        .rows("SELECT reference, pattern FROM tessera_meta.glossary_terms")
        .await;
    assert_eq!(
        terms,
        vec![json!({"reference": "customer_id@1.0.0", "pattern": "^U[0-9]{8}$"})]
    );
    let (_, listed) = server.get("/api/v1/glossary").await;
    assert_eq!(
        listed[0]["used_by"],
        json!(["shop.orders.orders.customer_id"])
    );

    // At ingest the term's pattern holds: breaking rows are quarantined naming the term.
    let csv = "order_id,customer_id,amount\n1,U00000001,10\n2,U12,5\n3,C00000003,7\n";
    let (status, report) = server
        .ingest("shop.orders.orders", "", "text/csv", csv)
        .await;
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["accepted"], 1, "{report}");
    let quarantined = server
        .rows(
            "SELECT order_id, _rule, _reason FROM shop.orders.orders_quarantine ORDER BY order_id",
        )
        .await;
    assert_eq!(quarantined.len(), 2, "{quarantined:?}");
    for (row, value) in quarantined.iter().zip(["U12", "C00000003"]) {
        assert_eq!(row["_rule"], "pattern");
        assert_eq!(
            row["_reason"],
            format!(
                "customer_id: \"{value}\" is not a match for pattern ^U[0-9]{{8}}$ (glossary term customer_id@1.0.0)"
            )
        );
    }
}

async fn a_new_term_version_reports_what_would_fail_and_needs_a_major_contract_version(
    store: Store,
) {
    let server = TestServer::start(store, Tables::Local).await;
    let council = server
        .token_for("hmueller", &["governance council"], &[])
        .await;
    let (status, _) = publish(&server, &council, &[("customer_id.yaml", CUSTOMER_ID)]).await;
    assert_eq!(status, 200);
    let c = contract("1.0.0", "string", "1.0.0", "");
    let (status, body) = server
        .apply(
            &[("product.odps.yaml", PRODUCT), ("orders.odcs.yaml", &c)],
            false,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let csv = "order_id,customer_id,amount\n1,U00000001,10\n2,U10000002,5\n3,U20000003,7\n4,U00000004,1\n";
    let (status, report) = server
        .ingest("shop.orders.orders", "", "text/csv", csv)
        .await;
    assert_eq!(status, 201, "{report}");

    // Version 2 allows only customers whose number starts with 0.
    let v2 = CUSTOMER_ID
        .replace("version: 1.0.0", "version: 2.0.0")
        .replace("^U[0-9]{8}$", "^U0[0-9]{7}$");
    let (status, body) = publish(&server, &council, &[("customer_id-2.yaml", &v2)]).await;
    assert_eq!(status, 200, "{body}");
    let expected = server
        .scalar(
            "SELECT count(*) FROM shop.orders.orders WHERE NOT regexp_like(customer_id, '^U0[0-9]{7}$')",
        )
        .await;
    assert_eq!(expected, 2);
    assert_eq!(
        body["impact"],
        json!([{
            "term": "customer_id@2.0.0",
            "column": "shop.orders.orders.customer_id",
            "product": "shop.orders",
            "references": "customer_id@1.0.0",
            "would_fail": true,
            "failing_rows": expected,
            "conflicts": [],
        }])
    );

    // Moving the contract to the stricter version is breaking: a minor version is refused.
    let minor = contract("1.1.0", "string", "2.0.0", "");
    let (status, body) = server
        .apply(
            &[("product.odps.yaml", PRODUCT), ("orders.odcs.yaml", &minor)],
            false,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(
            "orders.customer_id: glossary term customer_id@2.0.0 allows less than the column did"
        ),
        "{body}"
    );
    let major = contract("2.0.0", "string", "2.0.0", "");
    let product = PRODUCT.replace("    version: 1.0.0\n", "    version: 2.0.0\n");
    let (status, body) = server
        .apply(
            &[
                ("product.odps.yaml", &product),
                ("orders.odcs.yaml", &major),
            ],
            false,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, listed) = server.get("/api/v1/glossary").await;
    let on = |version: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["version"] == version)
            .unwrap()["used_by"]
            .clone()
    };
    assert_eq!(on("2.0.0"), json!(["shop.orders.orders.customer_id"]));
    assert_eq!(on("1.0.0"), json!([]));
}

/// The council's term says how its values are masked: every column that references it is
/// masked so for readers without `read_pii`, and a column may not mask less strictly.
async fn a_terms_mask_is_how_every_column_of_it_is_masked(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    let council = server
        .token_for("hmueller", &["governance council"], &[])
        .await;
    let email = "apiVersion: tessera/v1\nkind: GlossaryTerm\nname: email\nversion: 1.0.0\ndescription: An e-mail address.\nlogicalType: string\nclassification: pii\nmask: partial\n";
    let (status, body) = publish(&server, &council, &[("email.yaml", email)]).await;
    assert_eq!(status, 200, "{body}");
    let contract = |tags: &str| {
        format!(
            "apiVersion: v3.1.0\nkind: DataContract\nid: shop-orders\nversion: 1.0.0\nstatus: active\nschema:\n  - name: orders\n    properties:\n      - name: order_id\n        logicalType: integer\n      - name: contact\n        logicalType: string\n        tags: [\"glossary:email@1.0.0\"{tags}]\n"
        )
    };
    // A column may mask more strictly than its term (a hash shows less than a partial mask)...
    let stricter = contract(", \"mask:hash\"");
    let (status, body) = server
        .apply(
            &[("p.odps.yaml", PRODUCT), ("c.odcs.yaml", &stricter)],
            false,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // ...but not less: under a term that says NULL, a partial mask is refused at the column.
    let strict_term = email
        .replace("mask: partial", "mask: \"null\"")
        .replace("1.0.0", "2.0.0");
    let (status, body) = publish(&server, &council, &[("email-2.yaml", &strict_term)]).await;
    assert_eq!(status, 200, "{body}");
    let showing_more = contract(", \"mask:partial\"")
        .replace("email@1.0.0", "email@2.0.0")
        .replace("version: 1.0.0\nstatus", "version: 2.0.0\nstatus");
    let (status, body) = server
        .apply(
            &[("p.odps.yaml", PRODUCT), ("c.odcs.yaml", &showing_more)],
            false,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string()
            .contains("the column is masked partial but glossary term email@2.0.0 says null"),
        "{body}"
    );

    // The column states no mask: the term's (partial) applies to a reader without read_pii.
    let server = TestServer::start(store, Tables::Local).await;
    let council = server
        .token_for("hmueller", &["governance council"], &[])
        .await;
    publish(&server, &council, &[("email.yaml", email)]).await;
    let (status, body) = server
        .apply(
            &[("p.odps.yaml", PRODUCT), ("c.odcs.yaml", &contract(""))],
            false,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .ingest(
            "shop.orders.orders",
            "",
            "text/csv",
            "order_id,contact\n1,ana.lopez@example.com\n",
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let reader = server.token_for("dpatel", &[], &["readers"]).await;
    let (status, body) = server
        .post_json(
            "/api/v1/grants",
            &json!({"product": "shop.orders", "grantee": "team:readers"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server
        .query_as(&reader, "SELECT contact FROM shop.orders.orders")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([{"contact": "a***@example.com"}]));
}
