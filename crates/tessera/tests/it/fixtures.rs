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
