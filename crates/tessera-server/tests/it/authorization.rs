//! Who may do what (issue 8): Cedar decides discover, read, ingest, publish and manage on
//! products and datasets; grants let others read; admins add policies; `explain` says which
//! policy decided; a product's `sql` rules read other domains only with a grant.

use serde_json::{Value, json};

use crate::on_both_stores;
use crate::support::*;

on_both_stores!(
    owners_read_and_ingest_grantees_read_everyone_else_is_refused_by_name,
    publishing_needs_the_owner_team_or_an_admin,
    admins_policies_decide_on_top_of_the_defaults_and_explain_names_them,
    a_sql_rule_reads_another_domain_only_with_a_grant,
    access_is_requested_decided_by_the_owner_team_and_ends_by_itself,
    personal_data_is_masked_for_readers_without_read_pii,
    a_row_filtered_grant_shows_only_the_rows_it_keeps,
    a_row_filtered_reader_sees_check_results_without_failed_rows,
);

fn forbidden(status: u16, body: &Value, says: &str) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "expected {says:?} in {message:?}");
}

async fn owners_read_and_ingest_grantees_read_everyone_else_is_refused_by_name(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    server.apply(&shop_folder(), false).await;
    let ada = server.token_for("ada", &[], &["shop team"]).await;
    let bob = server.token_for("bob", &["analysts"], &[]).await;
    let eve = server.token_for("eve", &[], &[]).await;

    // The owner team ingests; nobody else does.
    let ingest = |token: &str| {
        server
            .client(Some(token))
            .post(format!(
                "{}/api/v1/datasets/shop/orders/orders/batches",
                server.url
            ))
            .header("content-type", "text/csv")
            .body(ORDERS_CSV)
            .send()
    };
    let refused = ingest(&eve).await.unwrap();
    let status = refused.status().as_u16();
    forbidden(
        status,
        &refused.json().await.unwrap(),
        "user eve may not ingest dataset shop.orders.orders",
    );
    assert_eq!(ingest(&ada).await.unwrap().status().as_u16(), 201);

    // Everyone discovers the product and its datasets.
    let (status, products) = server.get_as(&eve, "/api/v1/products").await;
    assert_eq!(status, 200);
    assert_eq!(products.as_array().unwrap().len(), 1, "{products}");
    let (status, described) = server.query_as(&eve, "DESCRIBE shop.orders.orders").await;
    assert_eq!(status, 200, "{described}");

    // Reading needs the owner team or a grant; the refusal names who, what and how to ask.
    let count = "SELECT count(*) AS n FROM shop.orders.orders";
    let (status, body) = server.query_as(&ada, count).await;
    assert_eq!((status, &body["rows"][0]["n"]), (200, &json!(4)), "{body}");
    for sql in [
        count,
        "SELECT * FROM shop.orders.customers",
        "SELECT o.* FROM shop.orders.orders o JOIN shop.orders.customers c USING (customer_id)",
        "SELECT count(*) FROM shop.orders.orders_quarantine",
        "EXPLAIN SELECT * FROM shop.orders.orders",
    ] {
        let (status, body) = server.query_as(&bob, sql).await;
        forbidden(status, &body, "user bob may not read dataset shop.orders.");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("tessera access request shop.orders"),
            "{body}"
        );
    }
    let (status, body) = server
        .post_json_as(
            Some(&eve),
            "/api/v1/grants",
            &json!({"product": "shop.orders", "grantee": "group:analysts"}),
        )
        .await;
    forbidden(status, &body, "user eve may not manage product shop.orders");

    // The owner team grants the analysts read: bob reads, eve still does not.
    let (status, grant) = server
        .post_json_as(
            Some(&ada),
            "/api/v1/grants",
            &json!({"product": "shop.orders", "grantee": "group:analysts", "days": 30}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    assert!(grant["expires_at"].is_string(), "{grant}");
    assert_eq!(grant["created_by"], "user ada");
    let (status, body) = server.query_as(&bob, count).await;
    assert_eq!((status, &body["rows"][0]["n"]), (200, &json!(4)), "{body}");
    let (status, body) = server.query_as(&eve, count).await;
    forbidden(
        status,
        &body,
        "user eve may not read dataset shop.orders.orders",
    );
    // A grant lets its holder read, not ingest.
    let refused = ingest(&bob).await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);

    // Grants are listed per product: its declared consumers.
    let (status, grants) = server
        .get_as(&eve, "/api/v1/grants?product=shop.orders")
        .await;
    assert_eq!(status, 200);
    let grantees: Vec<&str> = grants
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["grantee"].as_str().unwrap())
        .collect();
    assert_eq!(grantees, ["group:analysts"]);
    let (status, body) = server
        .get_as(&eve, "/api/v1/grants?product=shop.nothing")
        .await;
    assert_eq!(status, 404, "{body}");
    for bad in [
        json!({"product": "shop.orders", "grantee": "analysts"}),
        json!({"product": "shop", "grantee": "user:x"}),
        json!({"product": "shop.orders", "grantee": "user:x", "days": 0}),
    ] {
        let (status, body) = server
            .post_json_as(Some(&ada), "/api/v1/grants", &bad)
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // Revoked, it no longer lets bob read.
    let id = grant["grant_id"].as_str().unwrap();
    let r = server
        .client(Some(&ada))
        .delete(format!("{}/api/v1/grants/{id}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (status, body) = server.query_as(&bob, count).await;
    forbidden(
        status,
        &body,
        "user bob may not read dataset shop.orders.orders",
    );
}

/// A second product of the shop domain, owned by `team`.
fn returns_folder(team: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "returns/product.odps.yaml",
            format!(
                "apiVersion: v1.0.0\nkind: DataProduct\nid: shop-returns\nname: returns\ndomain: shop\nstatus: active\nversion: 1.0.0\nteam:\n  name: {team}\noutputPorts:\n  - name: returns\n    version: 1.0.0\n    contractId: shop-returns-contract\n"
            ),
        ),
        (
            "returns/returns.odcs.yaml",
            "apiVersion: v3.1.0\nkind: DataContract\nid: shop-returns-contract\nversion: 1.0.0\nstatus: active\nschema:\n  - name: returns\n    properties:\n      - name: order_id\n        logicalType: integer\n".to_string(),
        ),
    ]
}

fn borrowed<'a>(files: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    files.iter().map(|(n, c)| (*n, c.as_str())).collect()
}

async fn publishing_needs_the_owner_team_or_an_admin(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    let ada = server.token_for("ada", &[], &["shop team"]).await;
    let eve = server.token_for("eve", &[], &[]).await;
    // A new domain is made by admins only.
    let (status, body) = server.apply_as(&ada, &shop_folder(), false).await;
    forbidden(status, &body, "user ada may not publish domain shop");
    let (status, body) = server.apply(&shop_folder(), false).await;
    assert_eq!(status, 200, "{body}");
    // The owner team publishes its product again (a plan, or for real); others may not even
    // ask for the plan.
    let (status, body) = server.apply_as(&ada, &shop_folder(), true).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.apply_as(&eve, &shop_folder(), true).await;
    forbidden(
        status,
        &body,
        "user eve may not publish product shop.orders",
    );
    // A team that owns a product in a domain publishes new products there.
    let returns = returns_folder("shop team");
    let (status, body) = server.apply_as(&eve, &borrowed(&returns), false).await;
    forbidden(status, &body, "user eve may not publish domain shop");
    // The owner it names must be the publisher's: its rules run with that team's rights.
    let theirs = returns_folder("finance team");
    let (status, body) = server.apply_as(&ada, &borrowed(&theirs), false).await;
    forbidden(
        status,
        &body,
        "user ada may not make team \"finance team\" the owner of product shop.returns",
    );
    let (status, body) = server.apply_as(&ada, &borrowed(&returns), false).await;
    assert_eq!(status, 200, "{body}");
    let (_, products) = server.get_as(&eve, "/api/v1/products?domain=shop").await;
    assert_eq!(products.as_array().unwrap().len(), 2, "{products}");
}

async fn admins_policies_decide_on_top_of_the_defaults_and_explain_names_them(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    server.apply(&shop_folder(), false).await;
    let ada = server.token_for("ada", &[], &["shop team"]).await;
    let bob = server.token_for("bob", &["analysts"], &[]).await;
    let put_policy = |token: &str, id: &str, source: &str| {
        server
            .client(Some(token))
            .put(format!("{}/api/v1/policies/{id}", server.url))
            .json(&json!({ "source": source }))
            .send()
    };
    let explain = |token: &str, user: &str, action: &str, resource: &str| {
        let path =
            format!("/api/v1/access/explain?user={user}&action={action}&resource={resource}");
        let token = token.to_string();
        let server = &server;
        async move { server.get_as(&token, &path).await }
    };

    // By default bob discovers shop but may not read it; ada reads as the owner team.
    let (status, d) = explain(&server.admin_token, "bob", "read", "shop.orders.orders").await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        (d["allowed"].clone(), d["policies"].clone()),
        (json!(false), json!([]))
    );
    let (_, d) = explain(
        &server.admin_token,
        "ada",
        "read_pii",
        "shop.orders.customers",
    )
    .await;
    assert_eq!(
        (d["allowed"].clone(), d["policies"].clone()),
        (json!(true), json!(["owner-team-owns"]))
    );
    let (_, d) = explain(&bob, "bob", "discover", "shop.orders").await;
    assert_eq!(d["policies"], json!(["everyone-discovers"]));
    // Only what exists and may be discovered is explained to a non-admin.
    let (status, _) = explain(&bob, "bob", "read", "shop.nothing").await;
    assert_eq!(status, 404);
    // Only admins explain somebody else's rights, or set policies.
    let (status, body) = explain(&bob, "ada", "read", "shop.orders").await;
    forbidden(status, &body, "user bob may not manage the platform");
    let forbid = r#"forbid(principal in Group::"analysts", action, resource in Domain::"shop");"#;
    let r = put_policy(&ada, "no-analysts-in-shop", forbid)
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // An admin's forbid hides the domain from analysts altogether.
    let r = put_policy(&server.admin_token, "no-analysts-in-shop", forbid)
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, products) = server.get_as(&bob, "/api/v1/products").await;
    assert_eq!(products, json!([]));
    let (status, _) = server.get_as(&bob, "/api/v1/products/shop/orders").await;
    assert_eq!(status, 404);
    let (status, body) = server
        .query_as(&bob, "SELECT * FROM shop.orders.orders")
        .await;
    assert_eq!(
        status, 400,
        "an undiscoverable dataset is not there: {body}"
    );
    let (_, tables) = server
        .query_as(
            &bob,
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_catalog = 'shop'",
        )
        .await;
    assert_eq!(tables["rows"][0]["n"], 0, "{tables}");
    let (status, _) = explain(&bob, "bob", "discover", "shop.orders").await;
    assert_eq!(status, 404, "hidden from bob, as if it did not exist");
    let (_, d) = explain(&server.admin_token, "bob", "discover", "shop.orders").await;
    assert_eq!(
        (d["allowed"].clone(), d["policies"].clone()),
        (json!(false), json!(["no-analysts-in-shop:0"]))
    );
    // Even a grant does not outweigh a forbid.
    let (status, _) = server
        .post_json(
            "/api/v1/grants",
            &json!({"product": "shop.orders", "grantee": "user:bob"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = server
        .query_as(&bob, "SELECT * FROM shop.orders.orders")
        .await;
    assert_eq!(status, 400, "{body}");

    // Text that is not Cedar is refused and changes nothing; bad questions are 400s.
    let r = put_policy(&server.admin_token, "broken", "permit(")
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid Cedar"),
        "{body}"
    );
    let (status, _) = explain(&server.admin_token, "bob", "fly", "shop").await;
    assert_eq!(status, 400);
    let (status, _) = explain(&server.admin_token, "nobody", "read", "shop").await;
    assert_eq!(status, 404);
    let (_, policies) = server.get_as(&server.admin_token, "/api/v1/policies").await;
    assert_eq!(policies.as_array().unwrap().len(), 1, "{policies}");

    // Removed, the defaults decide again: bob's grant lets him read.
    let r = server
        .client(Some(&server.admin_token))
        .delete(format!(
            "{}/api/v1/policies/no-analysts-in-shop",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (status, body) = server
        .query_as(&bob, "SELECT count(*) FROM shop.orders.orders")
        .await;
    assert_eq!(status, 200, "{body}");
}

/// A product of the domain `audit` whose `sql` rule reads the shop's orders.
fn audit_folder() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "audit/product.odps.yaml",
            "apiVersion: v1.0.0\nkind: DataProduct\nid: audit-findings\nname: findings\ndomain: audit\nstatus: active\nversion: 1.0.0\nteam:\n  name: audit team\noutputPorts:\n  - name: findings\n    version: 1.0.0\n    contractId: audit-findings-contract\n",
        ),
        (
            "audit/findings.odcs.yaml",
            "apiVersion: v3.1.0\nkind: DataContract\nid: audit-findings-contract\nversion: 1.0.0\nstatus: active\nschema:\n  - name: findings\n    quality:\n      - id: no_negative_orders\n        type: sql\n        query: SELECT count(*) FROM shop.orders.orders WHERE amount < 0\n        mustBe: 0\n    properties:\n      - name: finding\n        logicalType: string\n",
        ),
    ]
}

async fn a_sql_rule_reads_another_domain_only_with_a_grant(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    server.apply(&shop_folder(), false).await;
    server
        .ingest("shop.orders.orders", "", "text/csv", ORDERS_CSV)
        .await;
    // Planned at apply with the owner team's rights: without a grant it cannot read the shop.
    let (status, body) = server.apply(&audit_folder(), false).await;
    assert_eq!(status, 422, "{body}");
    let message = body.to_string();
    assert!(
        message.contains("team audit team may not read dataset shop.orders.orders"),
        "{message}"
    );
    // With a grant to the team, it is published and its check runs.
    let (status, grant) = server
        .post_json(
            "/api/v1/grants",
            &json!({"product": "shop.orders", "grantee": "team:audit team"}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    let (status, body) = server.apply(&audit_folder(), false).await;
    assert_eq!(status, 200, "{body}");
    let rule = |report: &Value| {
        report["runs"][0]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["quality_id"] == "no_negative_orders")
            .cloned()
            .unwrap()
    };
    let (status, report) = server
        .post_json("/api/v1/products/audit/findings/checks", &json!({}))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(rule(&report)["result"], "passed", "{report}");
    // The grant revoked, the rule fails to run, saying why, whoever asked for the check.
    let id = grant["grant_id"].as_str().unwrap();
    server
        .client(Some(&server.admin_token))
        .delete(format!("{}/api/v1/grants/{id}", server.url))
        .send()
        .await
        .unwrap();
    let (_, report) = server
        .post_json("/api/v1/products/audit/findings/checks", &json!({}))
        .await;
    let check = rule(&report);
    assert_eq!(check["result"], "error", "{report}");
    assert!(
        check["reason"]
            .as_str()
            .unwrap()
            .contains("team audit team may not read dataset shop.orders.orders"),
        "{check}"
    );
}

async fn access_is_requested_decided_by_the_owner_team_and_ends_by_itself(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    server.apply(&shop_folder(), false).await;
    server
        .ingest("shop.orders.orders", "", "text/csv", ORDERS_CSV)
        .await;
    let ada = server.token_for("ada", &[], &["shop team"]).await;
    let bob = server.token_for("bob", &["analysts"], &[]).await;
    let eve = server.token_for("eve", &[], &[]).await;
    let count = "SELECT count(*) AS n FROM shop.orders.orders";
    let post_as = |token: &str, path: String, body: Value| {
        let token = token.to_string();
        let server = &server;
        async move { server.post_json_as(Some(&token), &path, &body).await }
    };

    let (status, request) = post_as(
        &bob,
        "/api/v1/access-requests".into(),
        json!({"product": "shop.orders", "purpose": "churn analysis", "days": 7}),
    )
    .await;
    assert_eq!(status, 201, "{request}");
    assert_eq!(
        (&request["state"], &request["requester"], &request["days"]),
        (&json!("pending"), &json!("bob"), &json!(7))
    );
    let id = request["request_id"].as_str().unwrap().to_string();
    // The requester and the owner team see it; nobody else does.
    for (token, seen) in [(&bob, 1), (&ada, 1), (&eve, 0)] {
        let (_, listed) = server.get_as(token, "/api/v1/access-requests").await;
        assert_eq!(listed.as_array().unwrap().len(), seen, "{listed}");
    }
    let approve = format!("/api/v1/access-requests/{id}/approve");
    let (status, _) = post_as(&eve, approve.clone(), json!({})).await;
    assert_eq!(status, 404);
    let (status, body) = post_as(&bob, approve.clone(), json!({})).await;
    forbidden(
        status,
        &body,
        "user bob may not approve product shop.orders",
    );
    let (status, body) = server.query_as(&bob, count).await;
    assert_eq!(status, 403, "pending is not granted: {body}");

    // Approved by the owner team: a grant for bob that ends after the days asked for.
    let (status, approved) = post_as(&ada, approve.clone(), json!({})).await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["state"], "approved");
    assert_eq!(approved["decided_by"], "user ada");
    let until =
        chrono::DateTime::parse_from_rfc3339(approved["expires_at"].as_str().unwrap()).unwrap();
    let days = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!((7 * 24 - 1..=7 * 24).contains(&days), "{approved}");
    let (status, body) = server.query_as(&bob, count).await;
    assert_eq!((status, &body["rows"][0]["n"]), (200, &json!(4)), "{body}");
    let (status, _) = post_as(&ada, approve, json!({})).await;
    assert_eq!(status, 409, "decided once");
    // The grant is one of the product's declared consumers, tied to the request.
    let (_, grants) = server
        .get_as(&eve, "/api/v1/grants?product=shop.orders")
        .await;
    assert_eq!(grants[0]["grantee"], "user:bob", "{grants}");
    assert_eq!(grants[0]["access_request"], id.as_str());

    // A denial says why; it needs a reason.
    let (_, second) = post_as(
        &eve,
        "/api/v1/access-requests".into(),
        json!({"product": "shop.orders", "purpose": "curiosity"}),
    )
    .await;
    assert_eq!(second["days"], 30, "the default period: {second}");
    let deny = format!(
        "/api/v1/access-requests/{}/deny",
        second["request_id"].as_str().unwrap()
    );
    let (status, _) = post_as(&ada, deny.clone(), json!({"reason": " "})).await;
    assert_eq!(status, 400);
    let (status, denied) = post_as(&ada, deny, json!({"reason": "no purpose given"})).await;
    assert_eq!(status, 200, "{denied}");
    let (_, mine) = server.get_as(&eve, "/api/v1/access-requests").await;
    assert_eq!(
        (&mine[0]["state"], &mine[0]["reason"]),
        (&json!("denied"), &json!("no purpose given"))
    );
    let (status, _) = server.query_as(&eve, count).await;
    assert_eq!(status, 403);
    for bad in [
        json!({"product": "shop.orders", "purpose": ""}),
        json!({"product": "shop.orders", "purpose": "x", "days": 4000}),
        json!({"product": "shop", "purpose": "x"}),
    ] {
        let (status, body) = post_as(&bob, "/api/v1/access-requests".into(), bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // The grant ends by itself: brought forward to two seconds from now (as if the days had
    // passed), bob reads until then and not after, with nothing else changing.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let url = server.config.metadata_url();
    execute_in_store(
        &url,
        &format!("UPDATE grants SET expires_at = '{soon}' WHERE access_request = '{id}'"),
    )
    .await;
    execute_in_store(
        &url,
        "UPDATE generations SET value = value + 1 WHERE name = 'access'",
    )
    .await;
    server.get_as(&bob, "/api/v1/whoami").await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (status, body) = server.query_as(&bob, count).await;
    forbidden(
        status,
        &body,
        "user bob may not read dataset shop.orders.orders",
    );
    let (_, grants) = server
        .get_as(&eve, "/api/v1/grants?product=shop.orders")
        .await;
    assert_eq!(grants, json!([]), "an ended grant is no consumer");
}

const CONTACTS_PRODUCT: &str = "apiVersion: v1.0.0
kind: DataProduct
id: crm-people
name: people
domain: crm
status: active
version: 1.0.0
team:
  name: crm team
outputPorts:
  - name: contacts
    version: 1.0.0
    contractId: crm-contacts
";

const CONTACTS_CONTRACT: &str = r#"apiVersion: v3.1.0
kind: DataContract
id: crm-contacts
version: 1.0.0
status: active
schema:
  - name: contacts
    properties:
      - name: contact_id
        logicalType: integer
        required: true
      - name: email
        logicalType: string
        classification: pii
        logicalTypeOptions:
          pattern: "^[^@]+@[^@]+$"
      - name: phone
        logicalType: string
        tags: [pii, "mask:partial"]
      - name: note
        logicalType: string
        tags: [pii, "mask:null"]
      - name: city
        logicalType: string
"#;

const CONTACTS_CSV: &str = "contact_id,email,phone,note,city
1,ada@example.com,+44 20 7946 0001,likes tea,London
2,bob@example.com,+44 20 7946 0002,,Leeds
3,ada@example.com,+44 20 7946 0003,twin account,London
4,not-an-email,+44 20 7946 0004,,York
five,bad-email-2,+44 20 7946 0005,,York
";

async fn personal_data_is_masked_for_readers_without_read_pii(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    let (status, body) = server
        .apply(
            &[
                ("crm/product.odps.yaml", CONTACTS_PRODUCT),
                ("crm/contacts.odcs.yaml", CONTACTS_CONTRACT),
            ],
            false,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .ingest("crm.people.contacts", "", "text/csv", CONTACTS_CSV)
        .await;
    assert_eq!((status, &body["quarantined"]), (201, &json!(2)), "{body}");
    let owner = server.token_for("cora", &[], &["crm team"]).await;
    let bob = server.token_for("bob", &[], &[]).await;
    server
        .post_json(
            "/api/v1/grants",
            &json!({"product": "crm.people", "grantee": "user:bob"}),
        )
        .await;
    let rows = |token: String, sql: &'static str| {
        let server = &server;
        async move {
            let (status, body) = server.query_as(&token, sql).await;
            assert_eq!(status, 200, "{sql}: {body}");
            body["rows"].as_array().unwrap().clone()
        }
    };
    let all =
        "SELECT contact_id, email, phone, note, city FROM crm.people.contacts ORDER BY contact_id";

    // The owner team reads everything as it is.
    let raw = rows(owner.clone(), all).await;
    assert_eq!(raw[0]["email"], "ada@example.com");
    // A granted reader without read_pii: a keyed hash by default, partial or NULL where the
    // contract's tags say, everything else as it is.
    let key: Vec<(String, String)> = stored_rows(
        &server.config.metadata_url(),
        "SELECT name, value FROM mesh_secrets",
    )
    .await;
    let key = hex::decode(&key[0].1).unwrap();
    let masked = rows(bob.clone(), all).await;
    assert_eq!(
        masked[0],
        json!({
            "contact_id": 1,
            "email": tessera_query::hash_mask(&key, "ada@example.com"),
            "phone": "************0001",
            "note": null,
            "city": "London",
        })
    );
    // Equal values mask alike: counts of distinct values and joins on a masked key still work.
    let distinct = rows(
        bob.clone(),
        "SELECT count(DISTINCT email) AS n FROM crm.people.contacts",
    )
    .await;
    assert_eq!(distinct[0]["n"], 2);
    let pairs = rows(
        bob.clone(),
        "SELECT count(*) AS n FROM crm.people.contacts a JOIN crm.people.contacts b ON a.email = b.email AND a.contact_id < b.contact_id",
    )
    .await;
    assert_eq!(pairs[0]["n"], 1);
    // Nothing a query does brings the value back: filters on it, min and max, errors.
    let found = rows(
        bob.clone(),
        "SELECT count(*) AS n FROM crm.people.contacts WHERE email = 'ada@example.com' OR email LIKE '%example%'",
    )
    .await;
    assert_eq!(found[0]["n"], 0);
    let extremes = rows(
        bob.clone(),
        "SELECT min(email) AS lo, max(email) AS hi, min(note) AS n FROM crm.people.contacts",
    )
    .await;
    assert!(
        !extremes[0].to_string().contains("example.com"),
        "{extremes:?}"
    );
    let (status, body) = server
        .query_as(&bob, "SELECT CAST(email AS INT) FROM crm.people.contacts")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(!body.to_string().contains("example.com"), "{body}");
    // The quarantine masks the refused value and the reason that quotes it.
    let refused = rows(
        bob.clone(),
        "SELECT email, _reason FROM crm.people.contacts_quarantine",
    )
    .await;
    // The second row fails on its id first, and its reason lists the e-mail's failure too.
    assert_eq!(refused.len(), 2);
    for row in &refused {
        let text = row.to_string();
        assert!(
            !text.contains("not-an-email") && !text.contains("bad-email-2"),
            "{refused:?}"
        );
        assert!(
            row["_reason"].as_str().unwrap().contains("masked"),
            "{refused:?}"
        );
    }
    let owner_sees = rows(
        owner.clone(),
        "SELECT _reason FROM crm.people.contacts_quarantine ORDER BY _row_number",
    )
    .await;
    assert!(
        owner_sees[0]["_reason"]
            .as_str()
            .unwrap()
            .contains("not-an-email"),
        "{owner_sees:?}"
    );
    // EXPLAIN would show the masks: refused for whoever reads the dataset masked.
    let (status, body) = server
        .query_as(&bob, "EXPLAIN SELECT email FROM crm.people.contacts")
        .await;
    forbidden(
        status,
        &body,
        "user bob reads dataset crm.people.contacts masked",
    );
    let (status, _) = server
        .query_as(&owner, "EXPLAIN SELECT email FROM crm.people.contacts")
        .await;
    assert_eq!(status, 200);
}

async fn a_row_filtered_grant_shows_only_the_rows_it_keeps(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    server
        .apply(
            &[
                ("crm/product.odps.yaml", CONTACTS_PRODUCT),
                ("crm/contacts.odcs.yaml", CONTACTS_CONTRACT),
            ],
            false,
        )
        .await;
    server
        .ingest("crm.people.contacts", "", "text/csv", CONTACTS_CSV)
        .await;
    let owner = server.token_for("cora", &[], &["crm team"]).await;
    let bob = server.token_for("bob", &["north"], &[]).await;
    let (_, request) = server
        .post_json_as(
            Some(&bob),
            "/api/v1/access-requests",
            &json!({"product": "crm.people", "purpose": "London campaign"}),
        )
        .await;
    let approve = format!(
        "/api/v1/access-requests/{}/approve",
        request["request_id"].as_str().unwrap()
    );
    // A filter must apply to the product's datasets, and read nothing but the row.
    for bad in [
        "nope = 1",
        "city",
        "contact_id IN (SELECT contact_id FROM crm.people.contacts)",
        "",
    ] {
        let (status, body) = server
            .post_json_as(Some(&owner), &approve, &json!({ "row_filter": bad }))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, approved) = server
        .post_json_as(
            Some(&owner),
            &approve,
            &json!({"row_filter": "city = 'London'"}),
        )
        .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["row_filter"], "city = 'London'");
    let ids = |token: String| {
        let server = &server;
        async move {
            let (status, body) = server
                .query_as(
                    &token,
                    "SELECT contact_id, email FROM crm.people.contacts ORDER BY contact_id",
                )
                .await;
            assert_eq!(status, 200, "{body}");
            body["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["contact_id"].as_i64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(ids(bob.clone()).await, [1, 3]);
    assert_eq!(ids(owner.clone()).await, [1, 2, 3]);
    // Aggregates see the same rows; the quarantine is not read through a filtered grant;
    // EXPLAIN would show the filter.
    let (_, body) = server
        .query_as(
            &bob,
            "SELECT count(*) AS n, count(DISTINCT email) AS d FROM crm.people.contacts",
        )
        .await;
    assert_eq!(
        (&body["rows"][0]["n"], &body["rows"][0]["d"]),
        (&json!(2), &json!(1)),
        "{body}"
    );
    let (status, body) = server
        .query_as(&bob, "SELECT * FROM crm.people.contacts_quarantine")
        .await;
    forbidden(
        status,
        &body,
        "user bob may not read dataset crm.people.contacts_quarantine",
    );
    let (status, body) = server
        .query_as(&bob, "EXPLAIN SELECT * FROM crm.people.contacts")
        .await;
    forbidden(status, &body, "masked or row-filtered");
    // The query's own predicates see only the rows the filter keeps: an error never quotes a
    // hidden row.
    let (status, body) = server
        .query_as(
            &bob,
            "SELECT count(*) FROM crm.people.contacts WHERE CAST(city AS INT) = 1",
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let text = body.to_string();
    assert!(!text.contains("Leeds") && !text.contains("York"), "{text}");
    // Not even the physical plan's filter pushdown evaluates them on hidden rows: this one
    // divides by zero on contact 2 only.
    let (status, body) = server
        .query_as(
            &bob,
            "SELECT contact_id FROM crm.people.contacts WHERE 10 / (contact_id - 2) <> 0 ORDER BY contact_id",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([{"contact_id": 1}, {"contact_id": 3}]));
    // The query log tells its reader the rows the filter kept, not how many it hides.
    let mut divided = None;
    for _ in 0..100 {
        let logged = crate::query_log::log_as(&server, &bob).await;
        divided = logged.into_iter().find(|q| {
            q["sql"]
                .as_str()
                .is_some_and(|s| s.contains("(contact_id - 2)"))
        });
        if divided.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let divided = divided.expect("the query is logged");
    assert_eq!(divided["rows_scanned"], 2, "{divided}");
    assert_eq!(divided["bytes_scanned"], 0, "{divided}");
    let (_, d) = server
        .get_as(
            &bob,
            "/api/v1/access/explain?user=bob&action=read&resource=crm.people.contacts",
        )
        .await;
    assert_eq!(d["policies"], json!(["granted-read-filtered"]), "{d}");
    // A filter is for its grantee and the managers to see; the files' address for readers of
    // every row.
    let zed = server.token_for("zed", &[], &[]).await;
    let (_, theirs) = server
        .get_as(&zed, "/api/v1/grants?product=crm.people")
        .await;
    assert!(
        theirs[0]["row_filter"]
            .as_str()
            .unwrap()
            .starts_with("(shown to"),
        "{theirs}"
    );
    let (_, mine) = server
        .get_as(&bob, "/api/v1/grants?product=crm.people")
        .await;
    assert_eq!(mine[0]["row_filter"], "city = 'London'");
    let (_, dataset) = server
        .get_as(&bob, "/api/v1/datasets/crm/people/contacts")
        .await;
    assert!(
        dataset["table_url"]
            .as_str()
            .unwrap()
            .starts_with("(shown to"),
        "{dataset}"
    );
    let (_, dataset) = server
        .get_as(&owner, "/api/v1/datasets/crm/people/contacts")
        .await;
    assert!(
        dataset["table_url"]
            .as_str()
            .unwrap()
            .starts_with("file://"),
        "{dataset}"
    );

    // A second filtered grant, to bob's group, adds its rows; an unfiltered one lifts both.
    let (status, grant) = server
        .post_json_as(
            Some(&owner),
            "/api/v1/grants",
            &json!({"product": "crm.people", "grantee": "group:north", "row_filter": "city IN ('Leeds', 'York')"}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    assert_eq!(ids(bob.clone()).await, [1, 2, 3]);
    let (status, body) = server
        .query_as(
            &bob,
            "SELECT count(*) AS n FROM crm.people.contacts WHERE city = 'Leeds'",
        )
        .await;
    assert_eq!((status, &body["rows"][0]["n"]), (200, &json!(1)));
    let id = grant["grant_id"].as_str().unwrap();
    server
        .client(Some(&owner))
        .delete(format!("{}/api/v1/grants/{id}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ids(bob.clone()).await, [1, 3]);
    server
        .post_json(
            "/api/v1/grants",
            &json!({"product": "crm.people", "grantee": "user:bob"}),
        )
        .await;
    let (status, _) = server
        .query_as(&bob, "SELECT * FROM crm.people.contacts_quarantine")
        .await;
    assert_eq!(status, 200);
    let (_, body) = server
        .query_as(&bob, "SELECT count(*) AS n FROM crm.people.contacts")
        .await;
    assert_eq!(body["rows"][0]["n"], 3, "{body}");
}

/// Failed-row samples are taken as the owner team, so a reader whose grant hides rows gets the
/// checks' results without them (they could show the hidden rows).
async fn a_row_filtered_reader_sees_check_results_without_failed_rows(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    let contract = CONTACTS_CONTRACT.replace(
        "      - name: city\n        logicalType: string\n",
        "      - name: city\n        logicalType: string\n        quality:\n          - metric: invalidValues\n            arguments:\n              validValues: [London]\n            mustBe: 0\n            severity: warning\n",
    );
    assert_ne!(contract, CONTACTS_CONTRACT);
    let (status, body) = server
        .apply(
            &[
                ("crm/product.odps.yaml", CONTACTS_PRODUCT),
                ("crm/contacts.odcs.yaml", &contract),
            ],
            false,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    server
        .ingest("crm.people.contacts", "", "text/csv", CONTACTS_CSV)
        .await;
    let owner = server.token_for("cora", &[], &["crm team"]).await;
    let bob = server.token_for("bob", &[], &[]).await;
    let (status, grant) = server
        .post_json(
            "/api/v1/grants",
            &json!({"product": "crm.people", "grantee": "user:bob", "row_filter": "city = 'London'"}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    let path = "/api/v1/datasets/crm/people/contacts/checks";
    let (status, _) = server.post_json_as(Some(&owner), path, &json!({})).await;
    assert_eq!(status, 200);
    // The failing rows of the invalid-values check, as each reader is shown them.
    let samples = |token: String| {
        let server = &server;
        async move {
            let (status, runs) = server.get_as(&token, path).await;
            assert_eq!(status, 200, "{runs}");
            let check = runs[0]["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["field"] == "city" && c["result"] == "warning")
                .unwrap_or_else(|| panic!("no warning on city: {runs}"))
                .clone();
            check["samples"].as_array().cloned().unwrap_or_default()
        }
    };
    let owners = samples(owner.clone()).await;
    assert!(
        owners.iter().any(|row| row.to_string().contains("Leeds")),
        "{owners:?}"
    );
    assert_eq!(samples(bob.clone()).await, Vec::<Value>::new());
    // The same when bob runs the checks himself.
    let (status, report) = server.post_json_as(Some(&bob), path, &json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert!(!report.to_string().contains("Leeds"), "{report}");
}
