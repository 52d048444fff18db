//! Row-level rules: what each row of a batch must satisfy. A row that breaks one goes to the
//! dataset's quarantine table with the rule's name and a reason; evaluating them over Arrow
//! arrays is `tessera-quality`'s job.

use std::fmt;

/// A bound of a `minimum`/`maximum` rule: a number, or a date/timestamp written as text.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    Number(f64),
    Text(String),
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Number(n) => write!(f, "{n}"),
            Bound::Text(t) => f.write_str(t),
        }
    }
}

/// One rule on one column.
#[derive(Debug, Clone, PartialEq)]
pub struct RowRule {
    pub column: String,
    pub kind: RowRuleKind,
    /// The glossary term (`name@version`) the rule comes from, if any.
    pub term: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RowRuleKind {
    /// `required: true` (or `primaryKey: true`): no null.
    Required,
    MinLength(u64),
    MaxLength(u64),
    /// An ECMA-262 style regular expression, searched (not anchored) as JSON Schema does.
    Pattern(String),
    /// Lower bound; `true` when exclusive.
    Minimum(Bound, bool),
    /// Upper bound; `true` when exclusive.
    Maximum(Bound, bool),
    ValidValues(Vec<serde_json::Value>),
}

impl RowRule {
    /// The rule's name as it appears in quarantine records, in ODCS terms.
    pub fn name(&self) -> &'static str {
        match &self.kind {
            RowRuleKind::Required => "required",
            RowRuleKind::MinLength(_) => "minLength",
            RowRuleKind::MaxLength(_) => "maxLength",
            RowRuleKind::Pattern(_) => "pattern",
            RowRuleKind::Minimum(_, false) => "minimum",
            RowRuleKind::Minimum(_, true) => "exclusiveMinimum",
            RowRuleKind::Maximum(_, false) => "maximum",
            RowRuleKind::Maximum(_, true) => "exclusiveMaximum",
            RowRuleKind::ValidValues(_) => "validValues",
        }
    }

    /// What a violating value fails to be, for the quarantine reason (naming the glossary
    /// term the rule comes from).
    pub fn expectation(&self) -> String {
        let expected = self.expected();
        match &self.term {
            Some(term) => format!("{expected} (glossary term {term})"),
            None => expected,
        }
    }

    fn expected(&self) -> String {
        match &self.kind {
            RowRuleKind::Required => "a value (required)".to_string(),
            RowRuleKind::MinLength(n) => format!("at least {n} characters"),
            RowRuleKind::MaxLength(n) => format!("at most {n} characters"),
            RowRuleKind::Pattern(p) => format!("a match for pattern {p}"),
            RowRuleKind::Minimum(b, false) => format!(">= {b}"),
            RowRuleKind::Minimum(b, true) => format!("> {b}"),
            RowRuleKind::Maximum(b, false) => format!("<= {b}"),
            RowRuleKind::Maximum(b, true) => format!("< {b}"),
            RowRuleKind::ValidValues(values) => {
                let list: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                format!("one of [{}]", list.join(", "))
            }
        }
    }
}
