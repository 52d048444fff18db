//! The mesh's metadata as tables (issue 9): `tessera_meta` answers SQL about domains,
//! products, ports, datasets, columns, contracts and SLA properties, holds only what the caller
//! may discover, and is read-only; its reserved names are refused as domain or product names.

use serde_json::{Value, json};

use crate::on_both_stores;
use crate::support::*;

on_both_stores!(
    tessera_meta_describes_the_mesh_as_the_caller_may_discover_it,
    reserved_names_are_refused_as_domains_and_products,
);

const CRM_PRODUCT: &str = "apiVersion: v1.0.0
kind: DataProduct
id: crm-people
name: people
domain: crm
status: active
team:
  name: crm team
inputPorts:
  - name: orders
    version: 1.0.0
    contractId: shop-orders-contract
outputPorts:
  - name: contacts
    version: 1.0.0
    contractId: crm-contacts
";

const CRM_CONTRACT: &str = r#"apiVersion: v3.1.0
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
        description: The contact's number.
      - name: email
        logicalType: string
        classification: pii
      - name: phone
        logicalType: string
        tags: [pii, "mask:partial"]
      - name: updated_at
        logicalType: timestamp
        description: When the contact last changed.
slaProperties:
  - property: freshness
    value: 1
    unit: d
    element: contacts.updated_at
"#;

async fn rows_as(server: &TestServer, token: &str, sql: &str) -> Vec<Value> {
    let (status, body) = server.query_as(token, sql).await;
    assert_eq!(status, 200, "{sql}: {body}");
    body["rows"].as_array().unwrap().clone()
}

async fn tessera_meta_describes_the_mesh_as_the_caller_may_discover_it(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    server.apply(&shop_folder(), false).await;
    let (status, body) = server
        .apply(
            &[
                ("crm/product.odps.yaml", CRM_PRODUCT),
                ("crm/contacts.odcs.yaml", CRM_CONTRACT),
            ],
            false,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let admin = server.admin_token.clone();

    // Products, their owners and ports.
    let products = rows_as(
        &server,
        &admin,
        "SELECT domain, product, owner_team, description FROM tessera_meta.products ORDER BY domain",
    )
    .await;
    assert_eq!(
        products,
        json!([
            {"domain": "crm", "product": "people", "owner_team": "crm team", "description": null},
            {"domain": "shop", "product": "orders", "owner_team": "shop team", "description": "Orders of the web shop."},
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let inputs = rows_as(
        &server,
        &admin,
        "SELECT product, port, contract_id FROM tessera_meta.input_ports",
    )
    .await;
    assert_eq!(
        Value::from(inputs),
        json!([{"product": "people", "port": "orders", "contract_id": "shop-orders-contract"}])
    );
    let outputs = rows_as(
        &server,
        &admin,
        "SELECT domain, port, contract_id FROM tessera_meta.output_ports ORDER BY domain",
    )
    .await;
    assert_eq!(outputs.len(), 2, "{outputs:?}");

    // Columns, with what the contract says of them: the questions policies will ask.
    let columns = rows_as(
        &server,
        &admin,
        "SELECT column_name, ordinal, logical_type, required, description, classification, tags, personal_data, mask
         FROM tessera_meta.columns WHERE domain = 'crm' ORDER BY ordinal",
    )
    .await;
    assert_eq!(
        Value::from(columns),
        json!([
            {"column_name": "contact_id", "ordinal": 1, "logical_type": "integer", "required": true,
             "description": "The contact's number.", "classification": null, "tags": [],
             "personal_data": false, "mask": null},
            {"column_name": "email", "ordinal": 2, "logical_type": "string", "required": false,
             "description": null, "classification": "pii", "tags": [],
             "personal_data": true, "mask": "hash"},
            {"column_name": "phone", "ordinal": 3, "logical_type": "string", "required": false,
             "description": null, "classification": null, "tags": ["pii", "mask:partial"],
             "personal_data": true, "mask": "partial"},
            {"column_name": "updated_at", "ordinal": 4, "logical_type": "timestamp", "required": false,
             "description": "When the contact last changed.", "classification": null, "tags": [],
             "personal_data": false, "mask": null},
        ])
    );
    // A policy-shaped question, against the test's own count of the contracts above: columns
    // without a description (shop: 5 of orders, 2 of customers; crm: 2).
    let undescribed = rows_as(
        &server,
        &admin,
        "SELECT domain, count(*) AS n FROM tessera_meta.columns WHERE description IS NULL GROUP BY domain ORDER BY domain",
    )
    .await;
    assert_eq!(
        Value::from(undescribed),
        json!([{"domain": "crm", "n": 2}, {"domain": "shop", "n": 7}])
    );
    let datasets = rows_as(
        &server,
        &admin,
        "SELECT domain, dataset, contract_version, description FROM tessera_meta.datasets ORDER BY domain, dataset",
    )
    .await;
    assert_eq!(
        Value::from(datasets),
        json!([
            {"domain": "crm", "dataset": "contacts", "contract_version": "1.0.0", "description": null},
            {"domain": "shop", "dataset": "customers", "contract_version": "1.0.0", "description": null},
            {"domain": "shop", "dataset": "orders", "contract_version": "1.0.0", "description": "One row per order."},
        ])
    );
    let sla = rows_as(
        &server,
        &admin,
        "SELECT contract_id, property, value, unit, element FROM tessera_meta.sla_properties",
    )
    .await;
    assert_eq!(
        Value::from(sla),
        json!([{"contract_id": "crm-contacts", "property": "freshness", "value": "1", "unit": "d", "element": "contacts.updated_at"}])
    );
    let contracts = rows_as(
        &server,
        &admin,
        "SELECT domain, contract_id, version FROM tessera_meta.contracts ORDER BY domain",
    )
    .await;
    assert_eq!(contracts.len(), 2, "{contracts:?}");

    // A new version of a descriptor shows at once.
    let described = CRM_PRODUCT.replace(
        "status: active\n",
        "status: active\ndescription:\n  purpose: People we talk to.\n",
    );
    let (status, body) = server
        .apply(
            &[
                ("crm/product.odps.yaml", described.as_str()),
                ("crm/contacts.odcs.yaml", CRM_CONTRACT),
            ],
            false,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let crm = rows_as(
        &server,
        &admin,
        "SELECT description FROM tessera_meta.products WHERE domain = 'crm'",
    )
    .await;
    assert_eq!(crm[0]["description"], "People we talk to.");

    // Only what the caller may discover: an admin's forbid hides crm from contractors, in
    // tessera_meta as everywhere.
    let bob = server.token_for("bob", &["contractors"], &[]).await;
    let r = server
        .client(Some(&admin))
        .put(format!("{}/api/v1/policies/no-contractors-in-crm", server.url))
        .json(&json!({
            "source": r#"forbid(principal in Group::"contractors", action, resource in Domain::"crm");"#
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    for table in [
        "domains",
        "products",
        "output_ports",
        "input_ports",
        "datasets",
        "columns",
        "contracts",
        "sla_properties",
    ] {
        let seen = rows_as(
            &server,
            &bob,
            &format!("SELECT count(*) AS n FROM tessera_meta.{table} WHERE domain = 'crm'"),
        )
        .await;
        assert_eq!(seen[0]["n"], 0, "bob sees crm in tessera_meta.{table}");
    }
    let shop = rows_as(
        &server,
        &bob,
        "SELECT count(*) AS n FROM tessera_meta.columns WHERE domain = 'shop'",
    )
    .await;
    assert_eq!(shop[0]["n"], 7);
    let everyone = rows_as(
        &server,
        &admin,
        "SELECT count(*) AS n FROM tessera_meta.columns WHERE domain = 'crm'",
    )
    .await;
    assert_eq!(everyone[0]["n"], 4);

    // Read-only, like every dataset.
    let (status, body) = server
        .query_as(
            &admin,
            "INSERT INTO tessera_meta.domains VALUES ('fake', '2026-01-01')",
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

async fn reserved_names_are_refused_as_domains_and_products(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    for (field, product) in [
        (
            "domain",
            SHOP_PRODUCT.replace("domain: shop", "domain: tessera_meta"),
        ),
        (
            "name",
            SHOP_PRODUCT.replacen("name: orders", "name: public", 1),
        ),
    ] {
        let (status, body) = server
            .apply(
                &[
                    ("shop/product.odps.yaml", product.as_str()),
                    ("shop/orders.odcs.yaml", SHOP_CONTRACT),
                ],
                false,
            )
            .await;
        assert_eq!(status, 422, "{body}");
        let text = body.to_string();
        assert!(
            text.contains("shop/product.odps.yaml")
                && text.contains(field)
                && text.contains("is reserved"),
            "{text}"
        );
    }
}
