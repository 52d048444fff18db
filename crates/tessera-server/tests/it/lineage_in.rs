//! OpenLineage in: `POST /api/v1/lineage` takes what Marquez takes (the Marquez fixtures, the
//! lenient ones with `lenient=true`), refuses what it refuses with the same statuses, and the
//! eight "apples" events make the graph the standards' README describes.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::*;

fn marquez(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/standards/marquez/api/src/test/resources")
        .join(path)
}

fn event(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(marquez(path)).unwrap()).unwrap()
}

async fn post(server: &TestServer, event: &Value, lenient: bool) -> (u16, Value) {
    let path = if lenient {
        "/api/v1/lineage?lenient=true"
    } else {
        "/api/v1/lineage"
    };
    server.post_json(path, event).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_marquez_fixtures_are_taken_as_marquez_takes_them() {
    let server = TestServer::start(Store::Sqlite, Tables::Local).await;
    // Valid against the schema: taken strictly.
    for file in [
        "open_lineage/event_additional_facet.json",
        "open_lineage/event_dataset_event.json",
        "open_lineage/event_full.json",
        "open_lineage/event_job_event.json",
        "open_lineage/event_large.json",
        "open_lineage/event_namespace_naming.json",
        "open_lineage/event_required_nanoseconds.json",
        "open_lineage/event_required_only.json",
        "open_lineage/event_simple.json",
        "open_lineage/event_unicode.json",
        "open_lineage/null_nominal_end_time.json",
    ] {
        let (status, body) = post(&server, &event(file), false).await;
        assert_eq!(status, 201, "{file}: {body}");
    }
    // What only Marquez's leniency lets in: refused strictly, saying why; taken leniently.
    for (file, why) in [
        ("open_lineage/event_without_schema_url.json", "schemaURL"),
        ("open_lineage/event_required_no_timezone.json", "/eventTime"),
        ("open_lineage/listener/1.json", "schemaURL"),
        ("open_lineage/listener/2.json", "schemaURL"),
    ] {
        let (status, body) = post(&server, &event(file), false).await;
        assert_eq!(status, 422, "{file}: {body}");
        assert!(body.to_string().contains(why), "{file}: {body}");
        let (status, body) = post(&server, &event(file), true).await;
        assert_eq!(status, 201, "{file}: {body}");
    }
    let (_, taken) = post(&server, &event("open_lineage/event_simple.json"), false).await;
    assert_eq!(taken["kind"], json!("run"));
    assert_eq!(taken["job"], json!("my-scheduler-namespace/myjob"));

    // What Marquez refuses: a null job name or run id, a parent facet without its run (422),
    // and a namespace it cannot take (400).
    let simple = event("open_lineage/event_simple.json");
    let mut no_name = simple.clone();
    no_name["job"]["name"] = Value::Null;
    let mut no_run = simple.clone();
    no_run["run"]["runId"] = Value::Null;
    let mut empty_parent = simple.clone();
    empty_parent["run"]["facets"] = json!({"parent": {
        "_producer": "https://example.com", "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ParentRunFacet.json#/$defs/ParentRunFacet",
        "run": {}, "job": {"namespace": "n", "name": "j"}}});
    for (bad, field) in [
        (no_name, "/job/name"),
        (no_run, "/run/runId"),
        (empty_parent, "/run/facets/parent/run/runId"),
    ] {
        let (status, body) = post(&server, &bad, true).await;
        assert_eq!(status, 422, "{body}");
        let fields: Vec<&str> = body["error"]["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [field], "{body}");
    }
    let mut emoji = simple;
    emoji["job"]["namespace"] = json!("kitchen🍎");
    let (status, body) = post(&server, &emoji, true).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apples_events_make_the_kitchens_graph() {
    let server = TestServer::start(Store::Sqlite, Tables::Local).await;
    let mut files: Vec<PathBuf> = std::fs::read_dir(marquez("apples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 8);
    for file in &files {
        let event: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let (status, body) = post(&server, &event, true).await;
        assert_eq!(status, 201, "{}: {body}", file.display());
    }
    let (status, body) = server
        .get("/api/v1/lineage?node=job:grandmas.kitchen:prepare_apple_filling&depth=10")
        .await;
    assert_eq!(status, 200, "{body}");
    let mut edges: Vec<(String, String, String)> = body["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            // Datasets of other namespaces than the kitchen's (the cupboard, the backyard) too.
            let name = |n: &Value| n.as_str().unwrap().rsplit(':').next().unwrap().to_string();
            (
                e["job"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("grandmas.kitchen/")
                    .to_string(),
                name(&e["from"]),
                name(&e["to"]),
            )
        })
        .collect();
    edges.sort();
    let expected: Vec<(String, String, String)> = [
        ("gather_apples", "crab.apples", "apples"),
        ("gather_apples", "red.delicious", "apples"),
        ("prepare_apple_cider", "apples", "apple.cider"),
        ("prepare_apple_cider", "sugar", "apple.cider"),
        ("prepare_apple_filling", "apples", "apple.filling"),
        ("prepare_apple_filling", "cinnamon", "apple.filling"),
        ("prepare_apple_filling", "sugar", "apple.filling"),
        ("prepare_apple_pie", "apple.filling", "apple.pie"),
        ("prepare_vinegar", "apple.cider", "apple.vinegar"),
    ]
    .iter()
    .map(|(j, f, t)| (j.to_string(), f.to_string(), t.to_string()))
    .collect();
    assert_eq!(edges, expected);

    // A dataset node answers too; an unknown one is 404, a malformed one 400.
    let (status, body) = server
        .get("/api/v1/lineage?node=dataset:grandmas.kitchen:apple.pie&depth=1")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["edges"].as_array().unwrap().len(), 1, "{body}");
    let (status, _) = server
        .get("/api/v1/lineage?node=dataset:grandmas.kitchen:nothing")
        .await;
    assert_eq!(status, 404);
    let (status, _) = server.get("/api/v1/lineage?node=apple").await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_job_reading_a_tessera_dataset_links_to_it() {
    let server = TestServer::start(Store::Sqlite, Tables::Local).await;
    server.apply(&shop_folder(), false).await;
    let mut report = event("open_lineage/event_simple.json");
    report["inputs"] = json!([{"namespace": "tessera://local", "name": "shop.orders.orders"}]);
    report["outputs"] = json!([{"namespace": "warehouse", "name": "finance.revenue"}]);
    let (status, body) = post(&server, &report, false).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["inputs"], json!(["shop.orders.orders"]));
    let (status, body) = server
        .get("/api/v1/lineage/shop/orders/orders?direction=downstream")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["edges"],
        json!([{
            "from": "shop.orders.orders",
            "to": "dataset:warehouse:finance.revenue",
            "job": "my-scheduler-namespace/myjob",
            "derivations": []
        }])
    );
}
