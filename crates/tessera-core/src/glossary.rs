//! Shared definitions: glossary terms the governance council agrees on (`customer_id` is `U`
//! and eight digits), versioned, and referenced by columns of any domain's contracts. A column
//! that references a term declares a compatible type and may not loosen the term's rules; the
//! term's rules, classification and mask become the column's, so the definition is enforced on
//! the data of every domain that uses it, and its values are masked alike everywhere.

use std::fmt;

use crate::model::Column;
use crate::types::LogicalType;

/// One version of a glossary term (`kind: GlossaryTerm`). A published version never changes.
#[derive(Debug, Clone, PartialEq)]
pub struct GlossaryTerm {
    /// snake_case, unique in the mesh.
    pub name: String,
    pub version: String,
    pub description: String,
    pub logical_type: LogicalType,
    /// A regular expression every value matches (searched, as ODCS `pattern`).
    pub pattern: Option<String>,
    /// The values allowed, as in ODCS `validValues`.
    pub valid_values: Option<Vec<serde_json::Value>>,
    /// The classification every column of the term carries (`pii`, `internal`, …).
    pub classification: Option<String>,
    /// How the term's values are masked for readers without `read_pii` (when it is personal
    /// data): the council's rule for every column of the term. A column may mask more strictly,
    /// never less.
    pub mask: Option<crate::model::MaskKind>,
}

/// A column's reference to one version of a term: the tag `glossary:NAME@VERSION`, or an ODCS
/// `authoritativeDefinitions` entry whose url is `tessera:glossary/NAME/VERSION`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TermRef {
    pub name: String,
    pub version: String,
}

impl fmt::Display for TermRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// The tag prefix of a glossary reference.
pub const GLOSSARY_TAG: &str = "glossary:";
/// The url prefix of a glossary reference in `authoritativeDefinitions`.
pub const GLOSSARY_URL: &str = "tessera:glossary/";

impl TermRef {
    /// `NAME@VERSION` (the tag's text after `glossary:`).
    pub fn parse_tag(text: &str) -> Result<Self, String> {
        match text.split_once('@') {
            Some((name, version)) if !name.is_empty() && !version.is_empty() => Ok(Self {
                name: name.to_string(),
                version: version.to_string(),
            }),
            _ => Err(format!(
                "a glossary reference is `glossary:NAME@VERSION` (a column references one version of a term), not `glossary:{text}`"
            )),
        }
    }

    /// `NAME/VERSION` (the url's text after `tessera:glossary/`).
    pub fn parse_url(text: &str) -> Result<Self, String> {
        match text.split_once('/') {
            Some((name, version)) if !name.is_empty() && !version.is_empty() => Ok(Self {
                name: name.to_string(),
                version: version.to_string(),
            }),
            _ => Err(format!(
                "a glossary reference's url is `{GLOSSARY_URL}NAME/VERSION`, not `{GLOSSARY_URL}{text}`"
            )),
        }
    }
}

impl GlossaryTerm {
    pub fn reference(&self) -> TermRef {
        TermRef {
            name: self.name.clone(),
            version: self.version.clone(),
        }
    }

    /// Why `column` cannot reference this term: a type other than the term's, or rules that
    /// loosen its own (another pattern, values the term does not allow). Empty when it can.
    pub fn conflicts(&self, column: &Column) -> Vec<String> {
        let mut problems = Vec::new();
        let term = self.reference();
        match column.logical_type {
            Some(t) if t == self.logical_type => {}
            Some(t) => problems.push(format!(
                "the column is declared {} but glossary term {term} is {}",
                t.as_str(),
                self.logical_type.as_str()
            )),
            None => problems.push(format!(
                "the column declares no logicalType; glossary term {term} is {}",
                self.logical_type.as_str()
            )),
        }
        if let (Some(own), Some(terms)) = (&column.constraints.pattern, &self.pattern)
            && own != terms
        {
            problems.push(format!(
                "the column's pattern {own} is not glossary term {term}'s {terms}: leave it out (the term's applies) or write the term's"
            ));
        }
        if let (Some(own), Some(terms)) = (&column.constraints.valid_values, &self.valid_values) {
            let extra: Vec<String> = own
                .iter()
                .filter(|v| !terms.contains(v))
                .map(|v| v.to_string())
                .collect();
            if !extra.is_empty() {
                problems.push(format!(
                    "the column allows {} that glossary term {term} does not",
                    extra.join(", ")
                ));
            }
        }
        if let (Some(own), Some(terms)) = (&column.classification, &self.classification)
            && own != terms
        {
            problems.push(format!(
                "the column is classified {own} but glossary term {term} is {terms}"
            ));
        }
        if let (Some(own), Some(terms)) = (column.mask_tag(), self.mask)
            && own.reveals() > terms.reveals()
        {
            problems.push(format!(
                "the column is masked {} but glossary term {term} says {}, which shows less: leave the mask tag out (the term's applies) or mask as strictly",
                own.as_str(),
                terms.as_str()
            ));
        }
        problems
    }

    /// Makes the term's rules and classification the column's (where the column states none:
    /// [`conflicts`](Self::conflicts) refused any that differ), so they are enforced at ingest
    /// and in checks like the column's own.
    pub fn enforce_on(&self, column: &mut Column) {
        if column.constraints.pattern.is_none() {
            column.constraints.pattern = self.pattern.clone();
        }
        if column.constraints.valid_values.is_none() {
            column.constraints.valid_values = self.valid_values.clone();
        }
        if column.classification.is_none() {
            column.classification = self.classification.clone();
        }
        if column.description.is_none() {
            column.description = Some(self.description.clone());
        }
        if let Some(mask) = self.mask
            && column.mask_tag().is_none()
        {
            column.tags.push(format!("mask:{}", mask.as_str()));
        }
    }

    /// Whether this version allows less than `older` does: another pattern where one was, a
    /// pattern where there was none, fewer valid values, or another type. A contract moving to
    /// a stricter version makes a breaking change.
    pub fn stricter_than(&self, older: &GlossaryTerm) -> bool {
        self.logical_type != older.logical_type
            || (self.pattern.is_some() && self.pattern != older.pattern)
            || match (&self.valid_values, &older.valid_values) {
                (Some(_), None) => true,
                (Some(new), Some(old)) => old.iter().any(|v| !new.contains(v)),
                _ => false,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer_id() -> GlossaryTerm {
        GlossaryTerm {
            name: "customer_id".into(),
            version: "1.0.0".into(),
            description: "A customer: U and eight digits.".into(),
            logical_type: LogicalType::String,
            pattern: Some("^U[0-9]{8}$".into()),
            valid_values: None,
            classification: Some("internal".into()),
            mask: None,
        }
    }

    fn column(logical_type: LogicalType) -> Column {
        Column {
            logical_type: Some(logical_type),
            required: true,
            ..Column::new("buyer_id")
        }
    }

    #[test]
    fn references_name_a_version() {
        assert_eq!(
            TermRef::parse_tag("customer_id@1.0.0").unwrap().to_string(),
            "customer_id@1.0.0"
        );
        assert!(TermRef::parse_tag("customer_id").is_err());
        assert_eq!(
            TermRef::parse_url("customer_id/2.0.0").unwrap(),
            TermRef {
                name: "customer_id".into(),
                version: "2.0.0".into()
            }
        );
        assert!(TermRef::parse_url("customer_id").is_err());
    }

    #[test]
    fn a_column_takes_the_terms_rules_unless_it_loosens_them() {
        let term = customer_id();
        let mut ok = column(LogicalType::String);
        assert!(term.conflicts(&ok).is_empty());
        term.enforce_on(&mut ok);
        assert_eq!(ok.constraints.pattern.as_deref(), Some("^U[0-9]{8}$"));
        assert_eq!(ok.classification.as_deref(), Some("internal"));

        let integer = column(LogicalType::Integer);
        assert_eq!(
            term.conflicts(&integer),
            ["the column is declared integer but glossary term customer_id@1.0.0 is string"]
        );
        let mut looser = column(LogicalType::String);
        looser.constraints.pattern = Some("^U".into());
        assert!(term.conflicts(&looser)[0].starts_with("the column's pattern ^U is not"));
    }

    #[test]
    fn a_column_is_masked_as_its_term_says_or_more_strictly() {
        let mut term = customer_id();
        term.classification = Some("pii".into());
        term.mask = Some(crate::model::MaskKind::Null);
        let mut plain = column(LogicalType::String);
        term.enforce_on(&mut plain);
        assert_eq!(plain.mask(), crate::model::MaskKind::Null);

        term.mask = Some(crate::model::MaskKind::Hash);
        let mut stricter = column(LogicalType::String);
        stricter.tags.push("mask:null".into());
        assert!(term.conflicts(&stricter).is_empty());
        term.enforce_on(&mut stricter);
        assert_eq!(stricter.mask(), crate::model::MaskKind::Null);

        let mut looser = column(LogicalType::String);
        looser.tags.push("mask:partial".into());
        assert!(
            term.conflicts(&looser)[0].starts_with(
                "the column is masked partial but glossary term customer_id@1.0.0 says hash"
            ),
            "{:?}",
            term.conflicts(&looser)
        );
    }

    #[test]
    fn stricter_versions_are_told_apart() {
        let v1 = customer_id();
        let mut same = v1.clone();
        same.version = "1.1.0".into();
        same.description = "Reworded.".into();
        assert!(!same.stricter_than(&v1));
        let mut v2 = v1.clone();
        v2.version = "2.0.0".into();
        v2.pattern = Some("^U[0-9]{9}$".into());
        assert!(v2.stricter_than(&v1));
    }
}
