//! Data quality checks as a contract states them: the ODCS `quality` rules (library metrics,
//! `sql`), the schema's own promises (present, type, required, unique, lengths, bounds, pattern,
//! valid values) and the SLA properties that can be measured (freshness, retention).
//!
//! Everything here is a description; measuring is `tessera-quality`'s job. The names of check
//! types are datacontract-cli's (`field_required`, `row_count`, ...), so results line up with
//! that tool's output.

use std::fmt;

use crate::rules::Bound;

/// How bad a failed check is. `Error` blocks a commit; the others only warn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    /// ODCS leaves `severity` free text; like datacontract-cli, `info`, `warning`, `low`,
    /// `minor` and `trivial` downgrade a failure to a warning, anything else is an error.
    pub fn parse(text: Option<&str>) -> Severity {
        match text.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            Some("info") => Severity::Info,
            Some("warning" | "warn" | "low" | "minor" | "trivial") => Severity::Warning,
            _ => Severity::Error,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    /// Whether a failure of a check with this severity stops a commit.
    pub fn blocks(self) -> bool {
        self == Severity::Error
    }

    /// The weight of a check in the quality score (see [`quality_score`]).
    pub fn weight(self) -> f64 {
        match self {
            Severity::Error => 3.0,
            Severity::Warning => 2.0,
            Severity::Info => 1.0,
        }
    }
}

/// An ODCS quality operator with its threshold.
///
/// `mustBeBetween [a, b]` is inclusive (`a <= x <= b`) and `mustNotBeBetween [a, b]` its
/// complement (`x < a or x > b`). The ODCS text calls between exclusive, but datacontract-cli —
/// the tool whose verdicts contracts are written against today — evaluates it inclusively, and a
/// contract that passes there must not fail here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Operator {
    MustBe(f64),
    MustNotBe(f64),
    GreaterThan(f64),
    GreaterOrEqualTo(f64),
    LessThan(f64),
    LessOrEqualTo(f64),
    Between(f64, f64),
    NotBetween(f64, f64),
}

impl Operator {
    /// Whether a measured value meets the operator.
    pub fn passes(&self, value: f64) -> bool {
        match *self {
            Operator::MustBe(t) => value == t,
            Operator::MustNotBe(t) => value != t,
            Operator::GreaterThan(t) => value > t,
            Operator::GreaterOrEqualTo(t) => value >= t,
            Operator::LessThan(t) => value < t,
            Operator::LessOrEqualTo(t) => value <= t,
            Operator::Between(a, b) => a <= value && value <= b,
            Operator::NotBetween(a, b) => value < a || value > b,
        }
    }

    /// The ODCS key of the operator.
    pub fn key(&self) -> &'static str {
        match self {
            Operator::MustBe(_) => "mustBe",
            Operator::MustNotBe(_) => "mustNotBe",
            Operator::GreaterThan(_) => "mustBeGreaterThan",
            Operator::GreaterOrEqualTo(_) => "mustBeGreaterOrEqualTo",
            Operator::LessThan(_) => "mustBeLessThan",
            Operator::LessOrEqualTo(_) => "mustBeLessOrEqualTo",
            Operator::Between(..) => "mustBeBetween",
            Operator::NotBetween(..) => "mustNotBeBetween",
        }
    }

    /// Reads the one operator of an ODCS quality rule from `(key, value)` pairs; `None` when
    /// there is none. The JSON Schema already guarantees at most one.
    pub fn from_odcs(key: &str, value: &serde_json::Value) -> Option<Operator> {
        let n = || value.as_f64();
        let pair = || {
            let a = value.as_array()?;
            Some((a.first()?.as_f64()?, a.get(1)?.as_f64()?))
        };
        Some(match key {
            "mustBe" => Operator::MustBe(n()?),
            "mustNotBe" => Operator::MustNotBe(n()?),
            "mustBeGreaterThan" => Operator::GreaterThan(n()?),
            "mustBeGreaterOrEqualTo" | "mustBeGreaterThanOrEqualTo" => {
                Operator::GreaterOrEqualTo(n()?)
            }
            "mustBeLessThan" => Operator::LessThan(n()?),
            "mustBeLessOrEqualTo" | "mustBeLessThanOrEqualTo" => Operator::LessOrEqualTo(n()?),
            "mustBeBetween" => {
                let (a, b) = pair()?;
                Operator::Between(a, b)
            }
            "mustNotBeBetween" => {
                let (a, b) = pair()?;
                Operator::NotBetween(a, b)
            }
            _ => return None,
        })
    }

    /// Whether a change from `self` to `other` lets through a value `self` refused (used to
    /// tell a loosened threshold from a tightened one).
    pub fn admits_more_than(&self, other: &Operator) -> bool {
        // Probe a few values around both thresholds: a value `other` refuses and `self` admits.
        let mut probes = Vec::new();
        for op in [self, other] {
            let (a, b) = op.bounds();
            for t in [a, b] {
                probes.extend([t - 1.0, t - 1e-9, t, t + 1e-9, t + 1.0]);
            }
        }
        probes.iter().any(|v| self.passes(*v) && !other.passes(*v))
    }

    fn bounds(&self) -> (f64, f64) {
        match *self {
            Operator::MustBe(t)
            | Operator::MustNotBe(t)
            | Operator::GreaterThan(t)
            | Operator::GreaterOrEqualTo(t)
            | Operator::LessThan(t)
            | Operator::LessOrEqualTo(t) => (t, t),
            Operator::Between(a, b) | Operator::NotBetween(a, b) => (a, b),
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |v: f64| {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{}", v as i64)
            } else {
                format!("{v}")
            }
        };
        match *self {
            Operator::MustBe(t) => write!(f, "= {}", n(t)),
            Operator::MustNotBe(t) => write!(f, "!= {}", n(t)),
            Operator::GreaterThan(t) => write!(f, "> {}", n(t)),
            Operator::GreaterOrEqualTo(t) => write!(f, ">= {}", n(t)),
            Operator::LessThan(t) => write!(f, "< {}", n(t)),
            Operator::LessOrEqualTo(t) => write!(f, "<= {}", n(t)),
            Operator::Between(a, b) => write!(f, "between {} and {}", n(a), n(b)),
            Operator::NotBetween(a, b) => write!(f, "not between {} and {}", n(a), n(b)),
        }
    }
}

/// Whether a count is of rows or a percentage of the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unit {
    #[default]
    Rows,
    Percent,
}

/// What a check measures.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// The column exists in the data.
    FieldIsPresent,
    /// The column's stored type is the contract's (the same kind of type; `tessera-quality`
    /// says what counts as the same).
    FieldType {
        expected: arrow_schema::DataType,
        /// Whether a timestamp's time zone kind must match too (see
        /// `types::timestamp_zone_stated`); when false, naive and zoned timestamps both pass.
        zone_stated: bool,
    },
    /// Rows where the column is null.
    FieldRequired,
    /// Values that appear more than once (`count - count distinct`, nulls ignored).
    FieldUnique,
    /// Key values (over the primary key columns) that appear more than once.
    PrimaryKeyUnique {
        columns: Vec<String>,
    },
    FieldMinLength(u64),
    FieldMaxLength(u64),
    /// Rows below the bound; `true` when the bound itself is refused too.
    FieldMinimum(Bound, bool),
    FieldMaximum(Bound, bool),
    FieldRegex(String),
    FieldEnum(Vec<serde_json::Value>),
    /// ODCS `rowCount`.
    RowCount,
    /// ODCS `nullValues`.
    NullValues,
    /// ODCS `missingValues`: null or one of the listed values.
    MissingValues(Vec<serde_json::Value>),
    /// ODCS `invalidValues`: not null and not valid (not in the list, or not matching).
    InvalidValues {
        valid_values: Option<Vec<serde_json::Value>>,
        pattern: Option<String>,
    },
    /// ODCS `duplicateValues` on a column (`field_duplicate_values`) or on a compound key
    /// (`model_duplicate_values`): rows whose value is also in another row.
    DuplicateValues {
        columns: Vec<String>,
    },
    /// An ODCS `sql` rule: one read-only statement that returns one number.
    Sql {
        query: String,
    },
    /// SLA `freshness`/`latency`: age in seconds of the newest value of `column` (or of the
    /// last commit when there is none).
    Freshness {
        column: Option<String>,
    },
    /// SLA `retention`: age in seconds of the oldest value of `column`.
    Retention {
        column: String,
    },
    /// SLA `completeness`: the share of rows (percent) with a value in every one of `columns`,
    /// measured by counting the rows that miss one.
    Completeness {
        columns: Vec<String>,
    },
}

/// One check of one dataset, ready to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// datacontract-cli's check type: `field_required`, `row_count`, `model_quality_sql`...
    pub check_type: &'static str,
    /// What it checks, for people.
    pub name: String,
    /// The dataset (ODCS schema object).
    pub model: String,
    pub field: Option<String>,
    pub kind: CheckKind,
    /// The threshold the measured value must meet.
    pub operator: Operator,
    pub unit: Unit,
    pub severity: Severity,
    pub dimension: String,
    /// The ODCS quality rule's `id`, when the check comes from one.
    pub quality_id: Option<String>,
    pub tags: Vec<String>,
}

impl Check {
    /// Whether the check gates commits: blocking (error severity) and about the dataset as a
    /// whole — a row count, uniqueness, a share of null, missing or invalid values, a `sql`
    /// rule. Row-level rules need no gate (failing rows are quarantined one by one), schema
    /// checks hold by construction (every batch is cast to the contract), and SLA properties
    /// are service levels reported over time, not rules a batch is refused for (a `nullValues`
    /// rule is how a contract refuses incomplete batches).
    pub fn gates_commits(&self) -> bool {
        self.severity.blocks()
            && matches!(
                self.kind,
                CheckKind::RowCount
                    | CheckKind::FieldUnique
                    | CheckKind::PrimaryKeyUnique { .. }
                    | CheckKind::DuplicateValues { .. }
                    | CheckKind::NullValues
                    | CheckKind::MissingValues(_)
                    | CheckKind::InvalidValues { .. }
                    | CheckKind::Sql { .. }
            )
    }

    /// Whether the check counts rows (a row count, or null, missing, invalid or incomplete
    /// values): its measurements of two tables add up.
    pub fn counts_rows(&self) -> bool {
        matches!(
            self.kind,
            CheckKind::RowCount
                | CheckKind::NullValues
                | CheckKind::MissingValues(_)
                | CheckKind::InvalidValues { .. }
                | CheckKind::Completeness { .. }
        )
    }

    /// The key columns of a uniqueness check (a unique column, the primary key, duplicate
    /// values of a column or a compound key).
    pub fn key_columns(&self) -> Option<Vec<String>> {
        match &self.kind {
            CheckKind::FieldUnique => self.field.clone().map(|f| vec![f]),
            CheckKind::PrimaryKeyUnique { columns } | CheckKind::DuplicateValues { columns } => {
                Some(columns.clone())
            }
            _ => None,
        }
    }

    /// How messages name the check: its key, and for a `sql` rule without an id its name too
    /// (several such rules of one dataset share a key).
    pub fn label(&self) -> String {
        match (&self.quality_id, &self.kind) {
            (None, CheckKind::Sql { .. }) => format!("{} ({:?})", self.key(), self.name),
            _ => self.key(),
        }
    }

    /// A key that identifies the check across runs of the same contract.
    pub fn key(&self) -> String {
        match (&self.quality_id, &self.field) {
            (Some(id), _) => format!("{}.{id}", self.model),
            (None, Some(field)) => format!("{}.{field}.{}", self.model, self.check_type),
            (None, None) => format!("{}.{}", self.model, self.check_type),
        }
    }
}

/// An ODCS quality rule as written in a contract, on a schema object or on one property.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityRule {
    /// The property it is on; `None` for a schema-level rule.
    pub column: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub rule: RuleKind,
    /// `None` when the rule states no operator (a library metric then defaults to `mustBe: 0`,
    /// except `rowCount`, which needs one).
    pub operator: Option<Operator>,
    pub unit: Unit,
    pub severity: Severity,
    pub dimension: Option<String>,
    pub tags: Vec<String>,
}

/// What kind of quality rule it is.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    /// A library `metric` (or the deprecated `rule`).
    Metric(CheckKind),
    /// `type: sql` with its `query`.
    Sql(String),
    /// `type: text` or `type: custom`: documented, not executed by Tessera.
    NotExecuted(String),
}

impl QualityRule {
    /// The check this rule becomes on dataset `model`; `None` for rules Tessera does not
    /// execute (text, custom).
    pub fn check(&self, model: &str) -> Option<Check> {
        let (check_type, kind, default_dimension) = match &self.rule {
            RuleKind::NotExecuted(_) => return None,
            RuleKind::Sql(query) => (
                if self.column.is_some() {
                    "field_quality_sql"
                } else {
                    "model_quality_sql"
                },
                CheckKind::Sql {
                    query: query.clone(),
                },
                "accuracy",
            ),
            RuleKind::Metric(kind) => {
                let check_type = match kind {
                    CheckKind::RowCount => "row_count",
                    CheckKind::NullValues => "field_null_values",
                    CheckKind::MissingValues(_) => "field_missing_values",
                    CheckKind::InvalidValues { .. } => "field_invalid_values",
                    CheckKind::DuplicateValues { columns }
                        if columns.len() > 1 || self.column.is_none() =>
                    {
                        "model_duplicate_values"
                    }
                    CheckKind::DuplicateValues { .. } => "field_duplicate_values",
                    _ => "field_quality",
                };
                let dimension = match kind {
                    CheckKind::RowCount | CheckKind::NullValues | CheckKind::MissingValues(_) => {
                        "completeness"
                    }
                    CheckKind::DuplicateValues { .. } => "uniqueness",
                    _ => "conformity",
                };
                (check_type, kind.clone(), dimension)
            }
        };
        let operator = self.operator.or(match &kind {
            CheckKind::RowCount | CheckKind::Sql { .. } => None,
            _ => Some(Operator::MustBe(0.0)),
        })?;
        let what = match (&self.column, &kind) {
            (_, CheckKind::Sql { .. }) => "SQL rule".to_string(),
            (Some(c), _) => format!("{check_type} on {c}"),
            (None, _) => check_type.to_string(),
        };
        Some(Check {
            check_type,
            name: self
                .name
                .clone()
                .or_else(|| self.description.clone())
                .unwrap_or_else(|| format!("{what} {operator}")),
            model: model.to_string(),
            field: self.column.clone(),
            kind,
            operator,
            unit: self.unit,
            severity: self.severity,
            dimension: self
                .dimension
                .clone()
                .unwrap_or_else(|| default_dimension.to_string()),
            quality_id: self.id.clone(),
            tags: self.tags.clone(),
        })
    }
}

/// The quality score of a set of results: the severity-weighted share of passing checks, in
/// percent. Error-severity checks weigh 3, warnings 2, info 1; a check that could not run
/// counts as failed. `None` when there are no checks.
pub fn quality_score<'a>(results: impl IntoIterator<Item = (Severity, bool)> + 'a) -> Option<f64> {
    let (mut passed, mut total) = (0.0, 0.0);
    for (severity, ok) in results {
        total += severity.weight();
        if ok {
            passed += severity.weight();
        }
    }
    (total > 0.0).then(|| (passed / total * 1000.0).round() / 10.0)
}

/// The placeholders of an ODCS `sql` rule that stand for its table: `{object}` (the
/// standard's) and those datacontract-cli accepts.
pub const TABLE_PLACEHOLDERS: &[&str] = &[
    "${table}",
    "${model}",
    "${schema}",
    "{object}",
    "{model}",
    "{table}",
];

/// The placeholders that stand for the rule's column: `{property}` (the standard's) and
/// datacontract-cli's. Only a rule on a property has one.
pub const COLUMN_PLACEHOLDERS: &[&str] =
    &["${column}", "${field}", "{property}", "{column}", "{field}"];

/// `query` with its placeholders replaced by `table` and `column` (already quoted as needed).
pub fn substitute_placeholders(query: &str, table: &str, column: &str) -> String {
    let mut out = query.to_string();
    for key in TABLE_PLACEHOLDERS {
        out = out.replace(key, table);
    }
    for key in COLUMN_PLACEHOLDERS {
        out = out.replace(key, column);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operators_read_from_odcs_and_between_is_inclusive() {
        let between = Operator::from_odcs("mustBeBetween", &json!([-50, 50])).unwrap();
        assert!(between.passes(-50.0) && between.passes(50.0) && !between.passes(50.5));
        let outside = Operator::from_odcs("mustNotBeBetween", &json!([0, 10])).unwrap();
        assert!(outside.passes(-1.0) && !outside.passes(0.0) && !outside.passes(10.0));
        assert_eq!(
            Operator::from_odcs("mustBeGreaterThan", &json!(1)),
            Some(Operator::GreaterThan(1.0))
        );
        assert_eq!(Operator::from_odcs("mustBe", &json!("x")), None);
        assert_eq!(Operator::LessOrEqualTo(0.5).to_string(), "<= 0.5");
        assert_eq!(Operator::Between(1.0, 3.0).to_string(), "between 1 and 3");
    }

    #[test]
    fn loosening_and_tightening_are_told_apart() {
        assert!(Operator::LessThan(10.0).admits_more_than(&Operator::LessThan(5.0)));
        assert!(!Operator::LessThan(5.0).admits_more_than(&Operator::LessThan(10.0)));
        assert!(Operator::Between(0.0, 10.0).admits_more_than(&Operator::Between(1.0, 10.0)));
        assert!(!Operator::MustBe(0.0).admits_more_than(&Operator::MustBe(0.0)));
    }

    #[test]
    fn severities_follow_datacontract_cli() {
        assert_eq!(Severity::parse(None), Severity::Error);
        assert_eq!(Severity::parse(Some("Warning")), Severity::Warning);
        assert_eq!(Severity::parse(Some("minor")), Severity::Warning);
        assert_eq!(Severity::parse(Some("info")), Severity::Info);
        assert_eq!(Severity::parse(Some("critical")), Severity::Error);
    }

    #[test]
    fn the_score_weighs_checks_by_severity() {
        assert_eq!(quality_score([]), None);
        assert_eq!(
            quality_score([(Severity::Error, true), (Severity::Info, false)]),
            Some(75.0)
        );
        assert_eq!(quality_score([(Severity::Warning, false)]), Some(0.0));
    }
}
