//! Strict validation against the official JSON Schemas (draft 2019-09, embedded in the binary).

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use crate::document::{DocumentKind, SpecDocument, escape_pointer_segment};
use crate::error::{Diagnostic, Result, SpecError};

const ODCS_V3_1_0: &str = include_str!("../schemas/odcs-json-schema-v3.1.0.json");
const ODCS_V3_2_0: &str = include_str!("../schemas/odcs-json-schema-v3.2.0.json");
const ODPS_V1_0_0: &str = include_str!("../schemas/odps-json-schema-v1.0.0.json");
/// Tessera's own kind: a governance policy file.
const POLICY_V1: &str = include_str!("../schemas/tessera-policy-v1.schema.json");
const GLOSSARY_TERM_V1: &str = include_str!("../schemas/tessera-glossary-term-v1.schema.json");
const SOURCE_V1: &str = include_str!("../schemas/tessera-source-v1.schema.json");

fn compiled(cell: &'static OnceLock<Validator>, schema: &str) -> &'static Validator {
    cell.get_or_init(|| {
        let schema: Value = serde_json::from_str(schema).expect("embedded schema is JSON");
        jsonschema::draft201909::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("embedded schema compiles")
    })
}

/// The schema a document is checked against: ODCS v3.2.0 files against the v3.2.0 schema, every
/// other contract against v3.1.0 (whose `apiVersion` enum rejects unknown versions), and every
/// product against ODPS v1.0.0 (the v0.9.0 examples only validate against the latest schema).
fn validator_for(kind: DocumentKind, value: &Value) -> &'static Validator {
    static V310: OnceLock<Validator> = OnceLock::new();
    static V320: OnceLock<Validator> = OnceLock::new();
    static ODPS: OnceLock<Validator> = OnceLock::new();
    static POLICY: OnceLock<Validator> = OnceLock::new();
    static TERM: OnceLock<Validator> = OnceLock::new();
    static SOURCE: OnceLock<Validator> = OnceLock::new();
    match kind {
        DocumentKind::Contract if value.get("apiVersion") == Some(&Value::from("v3.2.0")) => {
            compiled(&V320, ODCS_V3_2_0)
        }
        DocumentKind::Contract => compiled(&V310, ODCS_V3_1_0),
        DocumentKind::Product => compiled(&ODPS, ODPS_V1_0_0),
        DocumentKind::Policy => compiled(&POLICY, POLICY_V1),
        DocumentKind::GlossaryTerm => compiled(&TERM, GLOSSARY_TERM_V1),
        DocumentKind::Source => compiled(&SOURCE, SOURCE_V1),
    }
}

/// Validates a document against its standard; returns its kind, or every problem found.
pub fn validate(doc: &SpecDocument) -> Result<DocumentKind> {
    let kind = doc.kind().map_err(|d| SpecError::Invalid(vec![d]))?;
    let validator = validator_for(kind, &doc.value);
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    for error in validator.iter_errors(&doc.value) {
        for d in describe(doc, kind, &error) {
            if !diagnostics.contains(&d) {
                diagnostics.push(d);
            }
        }
    }
    if diagnostics.is_empty() {
        Ok(kind)
    } else {
        diagnostics.sort_by_key(|d| d.line.unwrap_or(0));
        Err(SpecError::Invalid(diagnostics))
    }
}

/// Turns one schema error into diagnostics that point at the offending field.
fn describe(
    doc: &SpecDocument,
    kind: DocumentKind,
    error: &ValidationError<'_>,
) -> Vec<Diagnostic> {
    let at = error.instance_path().as_str();
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let mut d = doc.diagnostic(at, format!("missing required field `{name}`"));
            d.field = join_field(&d.field, name);
            vec![d]
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => unexpected
            .iter()
            .map(|key| {
                doc.diagnostic(
                    &format!("{at}/{}", escape_pointer_segment(key)),
                    match kind {
                        DocumentKind::Policy => format!(
                            "unknown field `{key}`: a policy has apiVersion, kind, id, description, severity, message, query, extends and rationale"
                        ),
                        DocumentKind::GlossaryTerm => format!(
                            "unknown field `{key}`: a glossary term has apiVersion, kind, name, version, description, logicalType, pattern, validValues, classification and mask"
                        ),
                        DocumentKind::Source => format!(
                            "unknown field `{key}`: not a field of a source (credentials are never written in a source: name a secret with `secret: {{name: NAME}}`)"
                        ),
                        _ => format!(
                            "unknown field `{key}`: not allowed here by the standard (extensions belong in customProperties)"
                        ),
                    },
                )
            })
            .collect(),
        ValidationErrorKind::OneOfMultipleValid { .. } => vec![doc.diagnostic(
            at,
            "matches more than one of the allowed forms (oneOf); e.g. a quality rule takes exactly one operator",
        )],
        ValidationErrorKind::Enum { options } => {
            let allowed: Vec<String> = match options.as_ref() {
                Value::Array(values) => values
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect(),
                other => vec![other.to_string()],
            };
            vec![doc.diagnostic(
                at,
                clip(&format!(
                    "{} is not allowed here; expected one of: {}",
                    error.instance(),
                    allowed.join(", ")
                )),
            )]
        }
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. } => {
            vec![doc.diagnostic(at, "does not match any of the allowed forms")]
        }
        _ => {
            let message = if matches!(error.instance().as_ref(), Value::Object(_) | Value::Array(_)) {
                error.masked_with("the value").to_string()
            } else {
                error.to_string()
            };
            vec![doc.diagnostic(at, clip(&message))]
        }
    }
}

fn join_field(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

fn clip(message: &str) -> String {
    match message.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &message[..i]),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint(text: &str) -> std::result::Result<DocumentKind, Vec<String>> {
        let doc = SpecDocument::parse("t.yaml", text).unwrap();
        validate(&doc).map_err(|e| e.diagnostics().iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn a_minimal_contract_is_valid() {
        let ok = lint(
            "apiVersion: v3.1.0\nkind: DataContract\nid: c1\nversion: 1.0.0\nstatus: active\n",
        );
        assert_eq!(ok, Ok(DocumentKind::Contract));
    }

    #[test]
    fn missing_and_unknown_fields_are_named_with_their_line() {
        let errs =
            lint("apiVersion: v3.1.0\nkind: DataContract\nid: c1\nversion: 1.0.0\nowner: me\n")
                .unwrap_err();
        assert!(
            errs.contains(&"t.yaml:1: status: missing required field `status`".to_string()),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("t.yaml:5: owner: unknown field `owner`")),
            "{errs:?}"
        );
    }

    #[test]
    fn wrong_values_point_at_the_field() {
        let errs = lint("apiVersion: v3.1.0\nkind: DataContract\nid: c1\nversion: 1.0.0\nstatus: active\nschema:\n  - name: t\n    properties:\n      - name: a\n        logicalType: strin\n").unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.starts_with("t.yaml:10: schema[0].properties[0].logicalType: ")),
            "{errs:?}"
        );
        // Every allowed value is listed, so the fix is in the message.
        assert!(
            errs[0].ends_with("\"strin\" is not allowed here; expected one of: string, date, timestamp, time, number, integer, object, array, boolean"),
            "{errs:?}"
        );
    }

    #[test]
    fn other_kinds_are_refused_with_a_hint() {
        let errs = lint("kind: Something\n").unwrap_err();
        assert!(
            errs[0].contains(
                "expected DataContract (ODCS), DataProduct (ODPS), Policy, GlossaryTerm or Source (Tessera)"
            ),
            "{errs:?}"
        );
        let errs = lint("dataContractSpecification: 1.2.1\nid: x\n").unwrap_err();
        assert!(errs[0].contains("Data Contract Specification"), "{errs:?}");
    }
}
