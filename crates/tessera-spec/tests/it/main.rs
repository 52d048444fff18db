//! Conformance of `tessera-spec` with the standards' own material (copied under
//! `tests/standards/` at the repository root, see its SOURCES.md): every published example is
//! accepted, every negative test is rejected, and the datacontract-cli lint fixtures give that
//! tool's verdicts — except where the standard is stricter than the tool, which is said below.

use std::path::{Path, PathBuf};

use tessera_spec::{DocumentKind, SpecDocument, SpecError, validate};

fn standards() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/standards")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn lint(path: &Path) -> Result<DocumentKind, SpecError> {
    let doc = SpecDocument::read(path)?;
    validate(&doc)
}

fn lint_text(name: &str, text: &str) -> Result<DocumentKind, SpecError> {
    validate(&SpecDocument::parse(name, text)?)
}

#[test]
fn all_18_odcs_v3_1_0_examples_are_valid() {
    let files = yaml_files(&standards().join("odcs/examples-v3.1.0"));
    assert_eq!(files.len(), 18);
    for f in files {
        assert_eq!(
            lint(&f).unwrap_or_else(|e| panic!("{e}")),
            DocumentKind::Contract
        );
    }
}

#[test]
fn all_odcs_v3_2_0_examples_are_valid() {
    let files = yaml_files(&standards().join("odcs/examples-v3.2.0-dev"));
    assert_eq!(files.len(), 10);
    for f in files {
        lint(&f).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn all_28_negative_tests_are_rejected_as_v3_2_0_and_as_v3_1_0() {
    let files = yaml_files(&standards().join("odcs/negative-tests-v3.2.0-dev"));
    assert_eq!(files.len(), 28);
    for f in files {
        let err = lint(&f).expect_err(&f.display().to_string());
        let d = &err.diagnostics()[0];
        assert_eq!(d.file, f.display().to_string());
        assert!(d.line.is_some(), "no line in {d}");
        // The same file declared as v3.1.0 is still invalid.
        let text = std::fs::read_to_string(&f)
            .unwrap()
            .replace("v3.2.0", "v3.1.0");
        lint_text("as-3.1.0.yaml", &text).expect_err(&f.display().to_string());
    }
}

#[test]
fn both_odps_examples_are_valid() {
    let files = yaml_files(&standards().join("odps/examples"));
    assert_eq!(files.len(), 2);
    for f in files {
        assert_eq!(
            lint(&f).unwrap_or_else(|e| panic!("{e}")),
            DocumentKind::Product
        );
    }
}

fn messages(err: &SpecError) -> Vec<String> {
    err.diagnostics().iter().map(|d| d.to_string()).collect()
}

#[test]
fn datacontract_cli_lint_fixtures_give_the_cli_verdicts() {
    let dir = standards().join("datacontract-cli/tests/fixtures/lint");
    lint(&dir.join("valid.odcs.yaml")).unwrap();
    lint(&dir.join("valid-3.1.0.odcs.yaml")).unwrap();

    let err = lint(&dir.join("invalid.odcs.yaml")).unwrap_err();
    assert!(
        messages(&err)
            .iter()
            .any(|m| m.contains("status: missing required field `status`")),
        "{err}"
    );

    // The CLI reports 2 errors with --all-errors; Tessera always reports all.
    let err = lint(&dir.join("invalid_multiple_errors.odcs.yaml")).unwrap_err();
    assert_eq!(err.diagnostics().len(), 2, "{err}");

    let err = lint(&dir.join("invalid_multiple_schema_errors.odcs.yaml")).unwrap_err();
    assert!(
        messages(&err).iter().any(|m| m.contains("description")),
        "{err}"
    );

    let err = lint(&dir.join("odcs_with_extra_top_level.yaml")).unwrap_err();
    assert!(
        messages(&err).iter().any(|m| m.contains("unknown field")),
        "{err}"
    );
}

/// Stricter than datacontract-cli, because the standard is: its default lint ignores
/// draft-2019 keywords and accepts `delimiter` on a `type: local` server.
#[test]
fn schema_evolution_v2_is_invalid_as_the_standard_says() {
    let f = standards().join(
        "datacontract-cli/tests/fixtures/schema-evolution/odcs-datacontract-cities-version-2.yaml",
    );
    let err = lint(&f).unwrap_err();
    assert!(
        messages(&err).iter().any(|m| m.contains("delimiter")),
        "{err}"
    );
}

#[test]
fn the_192_kb_adventureworks_contract_converts() {
    let f =
        standards().join("odcs/examples-v3.1.0/all/postgresql-adventureworks-contract.odcs.yaml");
    let doc = SpecDocument::read(&f).unwrap();
    validate(&doc).unwrap();
    // Its schema names are not all SQL identifiers; conversion says which, with lines.
    match tessera_spec::contract_from_document(&doc) {
        Ok(c) => assert!(!c.datasets.is_empty()),
        Err(e) => assert!(e.diagnostics().iter().all(|d| d.line.is_some()), "{e}"),
    }
}
