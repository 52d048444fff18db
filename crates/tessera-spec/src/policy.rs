//! Policy document (`kind: Policy`) → [`GovernancePolicy`], and glossary term document (`kind:
//! GlossaryTerm`) → [`GlossaryTerm`]: the council's two kinds of file. The JSON Schemas check the
//! fields; this checks the two forms a policy takes: a rule (`query` and `message`), or a
//! stricter severity for a global rule (`extends`, nothing else), and that a term's pattern is a
//! regular expression.

use tessera_core::{GlossaryTerm, GovernancePolicy, LogicalType, PolicySeverity};

use crate::document::SpecDocument;
use crate::error::{Result, SpecError};
use crate::odcs::text;

/// Converts a validated policy document.
pub fn policy_from_document(doc: &SpecDocument) -> Result<GovernancePolicy> {
    let v = &doc.value;
    let query = text(v, "query").filter(|q| !q.trim().is_empty());
    let message = text(v, "message");
    let extends = text(v, "extends");
    let mut problems = Vec::new();
    match (&extends, &query, &message) {
        (None, None, _) => problems.push(doc.diagnostic(
            "",
            "missing required field `query`: a policy is SQL over tessera_meta that returns one row per violation (or `extends` a global policy)",
        )),
        (None, Some(_), None) => problems.push(doc.diagnostic(
            "",
            "missing required field `message`: what a violation of this policy says",
        )),
        (Some(_), Some(_), _) => problems.push(doc.diagnostic(
            "/query",
            "a policy that `extends` another only raises its severity: it has no `query` of its own (write a new policy for a new rule)",
        )),
        (Some(_), None, Some(_)) => problems.push(doc.diagnostic(
            "/message",
            "a policy that `extends` another only raises its severity: the message is the extended policy's",
        )),
        _ => {}
    }
    let severity = text(v, "severity")
        .as_deref()
        .and_then(PolicySeverity::parse)
        .unwrap_or(PolicySeverity::Block);
    if !problems.is_empty() {
        return Err(SpecError::Invalid(problems));
    }
    Ok(GovernancePolicy {
        id: text(v, "id").unwrap_or_default(),
        description: text(v, "description").unwrap_or_default(),
        severity,
        message,
        query,
        extends,
        rationale: text(v, "rationale"),
    })
}

/// Converts a validated glossary term document.
pub fn term_from_document(doc: &SpecDocument) -> Result<GlossaryTerm> {
    let v = &doc.value;
    let pattern = text(v, "pattern");
    if let Some(p) = &pattern
        && let Err(e) = regex::Regex::new(p)
    {
        return Err(SpecError::Invalid(vec![doc.diagnostic(
            "/pattern",
            format!("pattern is not a valid regular expression: {e}"),
        )]));
    }
    let logical_type: LogicalType = text(v, "logicalType")
        .unwrap_or_default()
        .parse()
        .map_err(|e: String| SpecError::Invalid(vec![doc.diagnostic("/logicalType", e)]))?;
    Ok(GlossaryTerm {
        name: text(v, "name").unwrap_or_default(),
        version: text(v, "version").unwrap_or_default(),
        description: text(v, "description").unwrap_or_default(),
        logical_type,
        pattern,
        valid_values: v.get("validValues").and_then(|x| x.as_array()).cloned(),
        classification: text(v, "classification"),
        mask: text(v, "mask")
            .as_deref()
            .and_then(tessera_core::MaskKind::parse),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> std::result::Result<GovernancePolicy, Vec<String>> {
        let doc = SpecDocument::parse("p.yaml", text).unwrap();
        crate::validate(&doc)
            .and_then(|_| policy_from_document(&doc))
            .map_err(|e| e.diagnostics().iter().map(|d| d.to_string()).collect())
    }

    const RULE: &str = "apiVersion: tessera/v1\nkind: Policy\nid: described-columns\ndescription: Every column is described.\nseverity: warn\nmessage: the column has no description\nquery: SELECT domain, product, column_name AS object FROM tessera_meta.columns WHERE description IS NULL\n";

    #[test]
    fn a_glossary_term_converts_and_its_pattern_must_compile() {
        let term = "apiVersion: tessera/v1\nkind: GlossaryTerm\nname: customer_id\nversion: 1.0.0\ndescription: A customer.\nlogicalType: string\npattern: \"^U[0-9]{8}$\"\n";
        let doc = SpecDocument::parse("t.yaml", term).unwrap();
        crate::validate(&doc).unwrap();
        let t = term_from_document(&doc).unwrap();
        assert_eq!(t.reference().to_string(), "customer_id@1.0.0");
        assert_eq!(t.logical_type, LogicalType::String);
        let bad = term.replace("^U[0-9]{8}$", "^U[0-9");
        let doc = SpecDocument::parse("t.yaml", &bad).unwrap();
        let err = term_from_document(&doc).unwrap_err().to_string();
        assert!(
            err.starts_with("t.yaml:7: pattern: pattern is not a valid regular expression"),
            "{err}"
        );
        let doc = SpecDocument::parse("t.yaml", &format!("{term}owner: council\n")).unwrap();
        let err = crate::validate(&doc).unwrap_err().to_string();
        assert!(
            err.contains("t.yaml:8: owner: unknown field `owner`: a glossary term has"),
            "{err}"
        );
    }

    #[test]
    fn a_rule_converts() {
        let p = load(RULE).unwrap();
        assert_eq!(p.id, "described-columns");
        assert_eq!(p.severity, PolicySeverity::Warn);
        assert!(p.query.unwrap().starts_with("SELECT domain"));
        assert_eq!(p.extends, None);
    }

    #[test]
    fn an_extension_raises_a_severity_and_nothing_else() {
        let p = load("apiVersion: tessera/v1\nkind: Policy\nid: strict-descriptions\ndescription: In finance, undescribed columns block.\nseverity: block\nextends: described-columns\n").unwrap();
        assert_eq!(p.extends.as_deref(), Some("described-columns"));
        assert_eq!(p.query, None);
        let errs = load(&format!("{RULE}extends: other-policy\n")).unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.starts_with("p.yaml:7: query: a policy that `extends` another")),
            "{errs:?}"
        );
    }

    #[test]
    fn a_policy_without_a_rule_or_with_unknown_fields_is_refused_naming_the_line() {
        let errs = load("apiVersion: tessera/v1\nkind: Policy\nid: x\ndescription: d\nseverity: warn\nmessage: m\n").unwrap_err();
        assert!(
            errs[0].contains("missing required field `query`"),
            "{errs:?}"
        );
        let errs = load(&format!("{RULE}enabled: false\n")).unwrap_err();
        assert!(
            errs[0].starts_with("p.yaml:8: enabled: unknown field `enabled`: a policy has"),
            "{errs:?}"
        );
        let errs = load(&RULE.replace("severity: warn", "severity: error")).unwrap_err();
        assert!(
            errs[0].contains("expected one of: block, warn, off"),
            "{errs:?}"
        );
        let errs =
            load(&RULE.replace("id: described-columns", "id: Described_Columns")).unwrap_err();
        assert!(errs[0].starts_with("p.yaml:3: id: "), "{errs:?}");
    }
}
