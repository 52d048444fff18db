//! The OpenAPI document is true to the server: schemathesis (from PyPI, in the test venv)
//! generates requests from `/api/openapi.json` — valid ones and ones the document says are
//! invalid — sends them to a real server with a product applied and data loaded, and runs
//! every check it has on the answers: no 5xx, only documented statuses, content types and
//! headers, bodies that match their schemas, valid requests accepted and invalid ones refused.

use std::path::PathBuf;

use crate::support::*;

fn schemathesis() -> PathBuf {
    let python = std::env::var("TESSERA_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("TESSERA_TEST_PYTHON is not set: run the suite with scripts/test, which sets up the venv with schemathesis")
    });
    PathBuf::from(python)
        .parent()
        .expect("the venv's bin directory")
        .join("schemathesis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_difference_between_the_openapi_document_and_the_server() {
    let server = TestServer::start(Store::Sqlite, Tables::Local).await;
    let (status, body) = server.apply(&shop_folder(), false).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .ingest("shop.orders.orders", "batch_id=b1", "text/csv", ORDERS_CSV)
        .await;
    assert_eq!(status, 201, "{body}");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let output = tokio::process::Command::new(schemathesis())
        .args([
            "--config-file",
            config,
            "run",
            &format!("{}/api/openapi.json", server.url),
            "--checks",
            "all",
            "--max-examples",
            "25",
            "--seed",
            "7",
            // One worker: with two threads, CPython 3.11's `ast` (which hypothesis uses to
            // describe strategies) can fail with "AST constructor recursion depth mismatch".
            "--workers",
            "1",
            // Hypothesis gives up on an operation when too many of its generated examples are
            // filtered out (the batch upload's several body types, at random): a health check
            // of the generator, not a difference between the document and the server.
            "--suppress-health-check",
            "filter_too_much",
            "--no-color",
            "--header",
            &format!("Authorization: Bearer {}", server.admin_token),
        ])
        .current_dir(std::env::temp_dir())
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .await
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found differences:\n{stdout}\n{stderr}"
    );
    assert!(
        !stdout.contains("failures") || stdout.contains("0 failures"),
        "{stdout}"
    );
}
