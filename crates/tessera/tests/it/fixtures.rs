//! datacontract-cli's own test fixtures (`tests/standards/datacontract-cli/tests/fixtures`) run
//! with `tessera test`, from the directory that tool's tests run in, with the verdicts its tests
//! assert. Where Tessera is stricter than the tool because the standard is, the test says so.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::*;

fn cli_tests_dir() -> PathBuf {
    repo_root().join("tests/standards/datacontract-cli/tests")
}

/// `tessera test CONTRACT --server SERVER --format json`, run where datacontract-cli's tests
/// run; the JSON result and whether the command succeeded.
fn test(contract: &Path, server: Option<&str>) -> (bool, Value) {
    let mut command = tessera();
    command
        .current_dir(cli_tests_dir())
        .arg("test")
        .arg(contract)
        .args(["--format", "json"]);
    if let Some(s) = server {
        command.args(["--server", s]);
    }
    let run: Run = command.output().unwrap().into();
    let json = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\nstderr: {}", run.stdout, run.stderr));
    (run.success, json)
}

fn failing(result: &Value) -> Vec<String> {
    result["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["result"] != "passed")
        .map(|c| {
            format!(
                "{} {}",
                c["type"].as_str().unwrap(),
                c["field"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// The schema-evolution contracts declare `delimiter` on `type: local` servers, which the ODCS
/// schema does not allow (datacontract-cli's lenient default lint lets it through): Tessera
/// refuses the file as it is, so the test drops that key first.
fn strict_copy(name: &str, dir: &Path) -> PathBuf {
    let original = cli_tests_dir().join("fixtures/schema-evolution").join(name);
    let text = std::fs::read_to_string(&original).unwrap();
    let refused = run(&["lint", original.to_str().unwrap()]);
    if text.contains("delimiter:") {
        assert!(
            !refused.success,
            "the standard refuses `delimiter` on a local server"
        );
        assert!(refused.stderr.contains("delimiter"), "{}", refused.stderr);
    }
    let strict: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("delimiter:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let copy = dir.join(name);
    std::fs::write(&copy, strict).unwrap();
    copy
}

#[test]
fn schema_evolution_gives_the_verdicts_of_datacontract_cli() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = strict_copy("odcs-datacontract-cities-version-2.yaml", dir.path());
    for format in ["csv", "parquet", "json"] {
        let (ok, result) = test(&v2, Some(&format!("historical-{format}")));
        assert!(!ok, "historical-{format}");
        assert_eq!(result["result"], "failed");
        assert_eq!(
            failing(&result),
            vec!["field_is_present population"],
            "historical-{format}"
        );
        for server in [
            format!("current-{format}"),
            format!("mixed-schema-{format}"),
        ] {
            let (ok, result) = test(&v2, Some(&server));
            assert!(ok, "{server}: {:?}", failing(&result));
            assert_eq!(result["result"], "passed", "{server}");
        }
    }
    for format in ["csv", "parquet"] {
        let (ok, result) = test(&v2, Some(&format!("current-{format}-invalid")));
        assert!(!ok);
        assert_eq!(
            failing(&result),
            vec!["field_minimum population"],
            "current-{format}-invalid"
        );
    }
    let v3 = strict_copy("odcs-datacontract-cities-version-3.yaml", dir.path());
    for server in ["historical-csv", "historical-parquet"] {
        let (ok, result) = test(&v3, Some(server));
        assert!(!ok, "{server}");
        assert_eq!(result["result"], "failed", "{server}");
    }
}

fn fixture(path: &str) -> PathBuf {
    cli_tests_dir().join("fixtures").join(path)
}

fn types_of(result: &Value) -> Vec<(String, String)> {
    result["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_string(),
                c["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The Data Contract Specification fixtures are read as the ODCS contracts they convert to
/// (`tessera import` shows the conversion).
#[test]
fn parquet_delta_and_json_fixtures_pass_as_in_datacontract_cli() {
    // combined.parquet: every column present and of its type. datacontract-cli counts 24 checks;
    // Tessera checks the presence and the type of all 13 columns (26), all passing.
    let (ok, result) = test(&fixture("parquet/datacontract.yaml"), None);
    assert!(ok, "{:?}", failing(&result));
    assert_eq!(result["checks"].as_array().unwrap().len(), 26);
    for name in [
        "array",
        "bigint",
        "binary",
        "boolean",
        "date",
        "decimal",
        "double",
        "float",
        "integer",
        "map",
        "string",
        "struct",
        "timestamp",
        "timestamp_ntz",
    ] {
        let (ok, result) = test(&fixture(&format!("parquet/datacontract_{name}.yaml")), None);
        assert!(ok, "{name}: {:?}", failing(&result));
    }
    let (ok, _) = test(
        &fixture("parquet/datacontract_number_no_precision.odcs.yaml"),
        None,
    );
    assert!(ok, "a number without precision takes a decimal column");
    let (ok, result) = test(
        &fixture("parquet/datacontract_invalid_logical_types_example.yaml"),
        None,
    );
    assert!(!ok);
    assert_eq!(
        failing(&result),
        vec!["field_type values", "field_type metadata"]
    );

    // local-delta: a real Delta table, 9 checks, all passing.
    let (ok, result) = test(&fixture("local-delta/datacontract.yaml"), None);
    assert!(ok, "{:?}", failing(&result));
    assert_eq!(result["checks"].as_array().unwrap().len(), 9);

    // local-json-nd: NDJSON under a ** glob, with sql rules written for DuckDB (upper-case
    // column names, an average between -50 and 50).
    let (ok, result) = test(&fixture("local-json-nd/datacontract.yaml"), None);
    assert!(ok, "{:?}", failing(&result));
    let sql: Vec<(String, String)> = types_of(&result)
        .into_iter()
        .filter(|(t, _)| t == "model_quality_sql")
        .collect();
    assert_eq!(sql.len(), 2);

    // quality-local-fallback: DuckDB's date_diff in a sql rule.
    let (ok, result) = test(&fixture("quality-local-fallback/datacontract.yaml"), None);
    assert!(ok, "{:?}", failing(&result));
}

#[test]
fn diagnostics_and_junit_fixtures_fail_where_datacontract_cli_says() {
    let (ok, result) = test(&fixture("diagnostics/datacontract.yaml"), None);
    assert!(!ok);
    let mut failed = failing(&result);
    failed.sort();
    assert_eq!(
        failed,
        vec![
            "field_max_length email",
            "field_maximum amount",
            "field_minimum amount",
            "field_regex email",
            "field_unique order_id"
        ]
    );
    let check = |t: &str, f: &str| {
        result["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t && c["field"] == f)
            .unwrap()
            .clone()
    };
    assert_eq!(
        check("field_unique", "order_id")["diagnostics"]["measured"],
        1.0
    );
    assert_eq!(
        check("field_max_length", "email")["diagnostics"]["measured"],
        1.0
    );
    assert_eq!(check("field_required", "email")["result"], "passed");

    // junit: a CSV without a header (columns in contract order); field_nok is too short.
    let dir = tempfile::tempdir().unwrap();
    let contract = fixture("junit/datacontract.yaml");
    let out = tessera()
        .current_dir(cli_tests_dir())
        .args(["test", contract.to_str().unwrap(), "--format", "junit"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let xml = String::from_utf8(out.stdout).unwrap();
    std::fs::write(dir.path().join("TEST-junit.xml"), &xml).unwrap();
    assert!(
        xml.contains("<testsuite name=\"my_object\" tests=\"6\" failures=\"1\" errors=\"0\""),
        "{xml}"
    );
    assert!(xml.contains("field_min_length field_nok"), "{xml}");
    assert!(
        xml.contains("<failure message=\"1 failing row(s) of 1, which does not meet = 0\""),
        "{xml}"
    );
}

#[test]
fn dcs_files_import_as_valid_odcs() {
    let imported = run(&[
        "import",
        fixture("diagnostics/datacontract.yaml").to_str().unwrap(),
    ])
    .ok();
    assert!(
        imported.stdout.contains("apiVersion: v3.1.0"),
        "{}",
        imported.stdout
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("diagnostics.odcs.yaml");
    std::fs::write(&file, &imported.stdout).unwrap();
    run(&["lint", file.to_str().unwrap()]).ok();
    let refused = run(&[
        "import",
        fixture("quality-id/datacontract.yaml").to_str().unwrap(),
    ])
    .failed();
    assert!(
        refused
            .stderr
            .contains("not a Data Contract Specification file"),
        "{}",
        refused.stderr
    );
}
