//! Data products, their datasets and contracts, as Tessera works with them. Built from the
//! standard files by `tessera-spec`; the files themselves stay the source of truth.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::error::Result;
use crate::name::Name;
use crate::quality::{Check, CheckKind, Operator, QualityRule, Severity, Unit};
use crate::rules::{Bound, RowRule, RowRuleKind};
use crate::types::{LogicalType, arrow_type, utc_timestamp};

/// Quarantine columns after the contract's own: the batch, the row's 1-based number in it, the
/// first rule it broke and that rule's column, every reason, and when.
pub const QUARANTINE_BATCH_ID: &str = "_batch_id";
pub const QUARANTINE_ROW_NUMBER: &str = "_row_number";
pub const QUARANTINE_RULE: &str = "_rule";
pub const QUARANTINE_COLUMN: &str = "_column";
pub const QUARANTINE_REASON: &str = "_reason";
pub const QUARANTINE_AT: &str = "_quarantined_at";

/// A data product (ODPS): owned by a team in a domain, publishing datasets through output ports.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    /// The ODPS `id`, stable across renames.
    pub id: String,
    pub domain: Name,
    pub name: Name,
    pub version: Option<String>,
    pub status: String,
    pub description: Option<String>,
    /// The owning team's name (`team.name`).
    pub owner: Option<String>,
    pub output_ports: Vec<OutputPort>,
    pub input_ports: Vec<InputPort>,
    /// Where consumers get help (ODPS `support`).
    pub support: Vec<SupportChannel>,
}

/// A support or communication channel of a product (ODPS `support`).
#[derive(Debug, Clone, PartialEq)]
pub struct SupportChannel {
    pub channel: String,
    pub url: String,
    /// `email`, `slack`, `teams`, `ticket`, … as the descriptor says.
    pub tool: Option<String>,
}

/// An output port: a contract (by id and version) whose schema objects become datasets.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputPort {
    pub name: String,
    pub version: String,
    pub contract_id: Option<String>,
    pub description: Option<String>,
    /// Queries that show a consumer how to use the port (the port's `sampleQueries` custom
    /// property), checked to plan when the product is published.
    pub sample_queries: Vec<SampleQuery>,
}

/// A sample query of an output port: SQL over `domain.product.dataset` names.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleQuery {
    pub name: String,
    pub description: Option<String>,
    pub sql: String,
}

/// An input port: a contract this product consumes (product-level lineage).
#[derive(Debug, Clone, PartialEq)]
pub struct InputPort {
    pub name: String,
    pub version: String,
    pub contract_id: String,
}

/// A data contract (ODCS) reduced to what Tessera enforces; each schema object is a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Contract {
    pub id: String,
    pub version: String,
    pub status: String,
    pub name: Option<String>,
    pub domain: Option<String>,
    pub description: Option<String>,
    pub datasets: Vec<DatasetSchema>,
    pub sla: Vec<SlaProperty>,
    /// When the server runs the contract's checks by itself: a cron expression, from the
    /// contract's `checkSchedule` custom property, else the first quality rule's `schedule`
    /// (with `scheduler: cron` or no scheduler).
    pub check_schedule: Option<String>,
}

impl Contract {
    pub fn dataset(&self, name: &str) -> Option<&DatasetSchema> {
        self.datasets.iter().find(|d| d.name.as_str() == name)
    }
}

/// An ODCS `slaProperties` entry, as declared.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaProperty {
    pub property: String,
    pub value: serde_json::Value,
    pub unit: Option<String>,
    pub element: Option<String>,
}

impl SlaProperty {
    /// The parts of `element` as written: `table.column` items separated by commas, each as
    /// (the item, its table if it names one, the rest). A bare name is a column or a dataset;
    /// the caller, which knows the datasets, tells which.
    pub fn element_parts(&self) -> Vec<(&str, Option<&str>, &str)> {
        self.element
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| match e.split_once('.') {
                Some((t, c)) => (e, Some(t.trim()), c.trim()),
                None => (e, None, e),
            })
            .collect()
    }
}

/// One schema object of a contract: a dataset's columns and rules.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSchema {
    pub name: Name,
    pub description: Option<String>,
    pub columns: Vec<Column>,
    /// The ODCS quality rules of the schema object and of its properties, in file order.
    pub quality: Vec<QualityRule>,
}

impl DatasetSchema {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The Arrow schema of the dataset's table: one nullable field per column, in contract order.
    pub fn arrow_schema(&self) -> Result<SchemaRef> {
        let fields = self
            .columns
            .iter()
            .map(|c| Ok(Field::new(&c.name, arrow_type(c)?, true)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Schema::new(fields)))
    }

    /// The schema of the dataset's quarantine table: every contract column as text (the value as
    /// received, which may not even have the right type), then where the row came from and why it
    /// was refused.
    pub fn quarantine_arrow_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| Field::new(&c.name, DataType::Utf8, true))
            .collect();
        fields.extend([
            Field::new(QUARANTINE_BATCH_ID, DataType::Utf8, false),
            Field::new(QUARANTINE_ROW_NUMBER, DataType::Int64, false),
            Field::new(QUARANTINE_RULE, DataType::Utf8, false),
            Field::new(QUARANTINE_COLUMN, DataType::Utf8, false),
            Field::new(QUARANTINE_REASON, DataType::Utf8, false),
            Field::new(QUARANTINE_AT, utc_timestamp(), false),
        ]);
        Arc::new(Schema::new(fields))
    }

    /// Every check the contract states for this dataset: the schema's promises per column
    /// (present, type, required, unique, lengths, bounds, pattern), the primary key, the
    /// quality rules, and the SLA properties of `sla` that concern it (freshness, latency,
    /// retention). datacontract-cli's default dimensions apply where the contract names none.
    pub fn checks(&self, sla: &[SlaProperty]) -> Vec<Check> {
        let model = self.name.as_str();
        let mut checks = Vec::new();
        let mut schema_check = |field: &str,
                                check_type: &'static str,
                                kind: CheckKind,
                                name: String,
                                dimension: &str| {
            checks.push(Check {
                check_type,
                name,
                model: model.to_string(),
                field: Some(field.to_string()),
                kind,
                operator: Operator::MustBe(0.0),
                unit: Unit::Rows,
                severity: Severity::Error,
                dimension: dimension.to_string(),
                quality_id: None,
                tags: Vec::new(),
            })
        };
        for column in &self.columns {
            let c = column.name.as_str();
            let constraints = &column.constraints;
            schema_check(
                c,
                "field_is_present",
                CheckKind::FieldIsPresent,
                format!("{c} is present"),
                "completeness",
            );
            if let Ok(expected) = crate::types::arrow_type(column) {
                // Named by the type as the contract writes it; the reason of a failure shows the
                // Arrow types compared.
                let written = match (column.logical_type, &column.physical_type) {
                    (Some(logical), _) => logical.as_str().to_string(),
                    (None, Some(physical)) => physical.clone(),
                    (None, None) => expected.to_string(),
                };
                let name = format!("{c} has type {written}");
                let zone_stated = crate::types::timestamp_zone_stated(column);
                schema_check(
                    c,
                    "field_type",
                    CheckKind::FieldType {
                        expected,
                        zone_stated,
                    },
                    name,
                    "conformity",
                );
            }
            if column.required || column.primary_key {
                schema_check(
                    c,
                    "field_required",
                    CheckKind::FieldRequired,
                    format!("{c} has no missing values"),
                    "completeness",
                );
            }
            if column.unique {
                schema_check(
                    c,
                    "field_unique",
                    CheckKind::FieldUnique,
                    format!("{c} values are unique"),
                    "uniqueness",
                );
            }
            if let Some(n) = constraints.min_length {
                schema_check(
                    c,
                    "field_min_length",
                    CheckKind::FieldMinLength(n),
                    format!("{c} is at least {n} characters"),
                    "conformity",
                );
            }
            if let Some(n) = constraints.max_length {
                schema_check(
                    c,
                    "field_max_length",
                    CheckKind::FieldMaxLength(n),
                    format!("{c} is at most {n} characters"),
                    "conformity",
                );
            }
            for (bound, exclusive, minimum) in [
                (&constraints.minimum, false, true),
                (&constraints.exclusive_minimum, true, true),
                (&constraints.maximum, false, false),
                (&constraints.exclusive_maximum, true, false),
            ] {
                let Some(b) = bound else { continue };
                let sign = match (minimum, exclusive) {
                    (true, false) => ">=",
                    (true, true) => ">",
                    (false, false) => "<=",
                    (false, true) => "<",
                };
                let (check_type, kind) = if minimum {
                    (
                        "field_minimum",
                        CheckKind::FieldMinimum(b.clone(), exclusive),
                    )
                } else {
                    (
                        "field_maximum",
                        CheckKind::FieldMaximum(b.clone(), exclusive),
                    )
                };
                schema_check(c, check_type, kind, format!("{c} {sign} {b}"), "accuracy");
            }
            if let Some(p) = &constraints.pattern {
                schema_check(
                    c,
                    "field_regex",
                    CheckKind::FieldRegex(p.clone()),
                    format!("{c} matches {p}"),
                    "conformity",
                );
            }
        }
        let key: Vec<String> = self
            .columns
            .iter()
            .filter(|c| c.primary_key)
            .map(|c| c.name.clone())
            .collect();
        if !key.is_empty() {
            checks.push(Check {
                check_type: "primary_key_unique",
                name: format!("primary key ({}) is unique", key.join(", ")),
                model: model.to_string(),
                field: (key.len() == 1).then(|| key[0].clone()),
                kind: CheckKind::PrimaryKeyUnique { columns: key },
                operator: Operator::MustBe(0.0),
                unit: Unit::Rows,
                severity: Severity::Error,
                dimension: "uniqueness".into(),
                quality_id: None,
                tags: Vec::new(),
            });
        }
        checks.extend(self.quality.iter().filter_map(|rule| rule.check(model)));
        checks.extend(sla.iter().filter_map(|p| self.sla_check(p)));
        checks
    }

    /// The check an SLA property becomes for this dataset, if it concerns it and can be
    /// measured: `freshness`/`latency` (newest data no older than the value), `retention`
    /// (oldest data no older than the value) and `completeness` (at least the value, in percent,
    /// of the rows have every `element` column — all columns when there is no element).
    /// `element` is `table.column`, several separated by commas; a property without one
    /// concerns every dataset of the contract (freshness then uses the commit time).
    pub fn sla_check(&self, property: &SlaProperty) -> Option<Check> {
        let elements: Vec<(Option<&str>, &str)> = property
            .element_parts()
            .into_iter()
            .map(|(_, table, name)| match table {
                Some(t) => (Some(t), name),
                // A bare name is a column, or this dataset as a whole.
                None if name == self.name.as_str() && self.column(name).is_none() => {
                    (Some(name), "")
                }
                None => (None, name),
            })
            .collect();
        let mine: Vec<&(Option<&str>, &str)> = elements
            .iter()
            .filter(|(t, _)| t.is_none_or(|t| t == self.name.as_str()))
            .collect();
        if !elements.is_empty() && mine.is_empty() {
            return None;
        }
        let columns: Vec<String> = mine
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|(_, c)| c.to_string())
            .collect();
        if columns.iter().any(|c| self.column(c).is_none()) {
            return None;
        }
        let column = columns.first().cloned();
        let property_name = property.property.to_ascii_lowercase();
        if property_name == "completeness" {
            return self.completeness_check(property, columns);
        }
        let seconds = sla_duration_seconds(&property.value, property.unit.as_deref())?;
        let (check_type, kind, what) = match property_name.as_str() {
            "freshness" | "latency" => (
                "servicelevel_freshness",
                CheckKind::Freshness {
                    column: column.clone(),
                },
                "newest data",
            ),
            "retention" => (
                "servicelevel_retention",
                CheckKind::Retention {
                    column: column.clone()?,
                },
                "oldest data",
            ),
            _ => return None,
        };
        let limit = match (&property.value, property.unit.as_deref()) {
            (serde_json::Value::String(text), None) => text.clone(),
            (value, unit) => format!("{value} {}", unit.unwrap_or("s")),
        };
        Some(Check {
            check_type,
            name: format!("{} ({what}) is at most {limit} old", property.property),
            model: self.name.to_string(),
            field: column,
            kind,
            operator: Operator::LessOrEqualTo(seconds),
            unit: Unit::Rows,
            severity: Severity::Error,
            dimension: "timeliness".into(),
            quality_id: None,
            tags: Vec::new(),
        })
    }

    /// SLA `completeness`: the value is a percentage (`unit` percent, `%` or none).
    fn completeness_check(&self, property: &SlaProperty, columns: Vec<String>) -> Option<Check> {
        let percent = property.value.as_f64()?;
        if !matches!(
            property
                .unit
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            None | Some("percent" | "%")
        ) {
            return None;
        }
        let columns = if columns.is_empty() {
            self.columns.iter().map(|c| c.name.clone()).collect()
        } else {
            columns
        };
        let field = (columns.len() == 1).then(|| columns[0].clone());
        Some(Check {
            check_type: "servicelevel_completeness",
            name: format!(
                "{} (rows with a value in {}) is at least {percent} %",
                property.property,
                columns.join(", ")
            ),
            model: self.name.to_string(),
            field,
            kind: CheckKind::Completeness { columns },
            operator: Operator::GreaterOrEqualTo(percent),
            unit: Unit::Percent,
            severity: Severity::Error,
            dimension: "completeness".into(),
            quality_id: None,
            tags: Vec::new(),
        })
    }

    /// The row-level rules of the contract: what a single row must satisfy to be accepted.
    /// Type conformity is the cast to [`Self::arrow_schema`] and is not listed here.
    pub fn row_rules(&self) -> Vec<RowRule> {
        let mut rules = Vec::new();
        for column in &self.columns {
            let mut add = |kind| {
                // A pattern or a list of values on a column of a glossary term is the term's
                // (a column may not loosen it): a refused row names the term.
                let term = match kind {
                    RowRuleKind::Pattern(_) | RowRuleKind::ValidValues(_) => {
                        column.glossary.as_ref().map(ToString::to_string)
                    }
                    _ => None,
                };
                rules.push(RowRule {
                    column: column.name.clone(),
                    kind,
                    term,
                })
            };
            let c = &column.constraints;
            if column.required || column.primary_key {
                add(RowRuleKind::Required);
            }
            if let Some(n) = c.min_length {
                add(RowRuleKind::MinLength(n));
            }
            if let Some(n) = c.max_length {
                add(RowRuleKind::MaxLength(n));
            }
            if let Some(p) = &c.pattern {
                add(RowRuleKind::Pattern(p.clone()));
            }
            if let Some(b) = &c.minimum {
                add(RowRuleKind::Minimum(b.clone(), false));
            }
            if let Some(b) = &c.exclusive_minimum {
                add(RowRuleKind::Minimum(b.clone(), true));
            }
            if let Some(b) = &c.maximum {
                add(RowRuleKind::Maximum(b.clone(), false));
            }
            if let Some(b) = &c.exclusive_maximum {
                add(RowRuleKind::Maximum(b.clone(), true));
            }
            if let Some(values) = &c.valid_values {
                add(RowRuleKind::ValidValues(values.clone()));
            }
        }
        rules
    }
}

/// A column (ODCS schema property).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub logical_type: Option<LogicalType>,
    pub physical_type: Option<String>,
    pub required: bool,
    pub unique: bool,
    pub primary_key: bool,
    pub description: Option<String>,
    pub classification: Option<String>,
    /// The ODCS property's `tags`: `pii` marks personal data, `mask:null`, `mask:partial` or
    /// `mask:hash` how it is masked (see [`Column::mask`]).
    pub tags: Vec<String>,
    /// The glossary term (version) the column is an instance of; its rules are the column's
    /// once [`GlossaryTerm::enforce_on`](crate::GlossaryTerm::enforce_on) applied them.
    pub glossary: Option<crate::glossary::TermRef>,
    pub constraints: Constraints,
    /// Element type of an array.
    pub items: Option<Box<Column>>,
    /// Fields of an object.
    pub properties: Vec<Column>,
}

/// How a personal-data column is shown to a reader without `read_pii`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MaskKind {
    /// A keyed hash (HMAC-SHA-256, hex) of the value as text: equal values mask alike, so joins
    /// and counts of distinct values still work, and the value cannot be recovered.
    #[default]
    Hash,
    /// NULL.
    Null,
    /// Most of the value starred out: an e-mail keeps its first character and its domain,
    /// anything else its last four characters.
    Partial,
}

impl MaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MaskKind::Hash => "hash",
            MaskKind::Null => "null",
            MaskKind::Partial => "partial",
        }
    }

    /// `hash`, `null` or `partial`.
    pub fn parse(text: &str) -> Option<MaskKind> {
        match text.trim().to_ascii_lowercase().as_str() {
            "hash" => Some(MaskKind::Hash),
            "null" => Some(MaskKind::Null),
            "partial" => Some(MaskKind::Partial),
            _ => None,
        }
    }

    /// How much of a value the mask lets through: NULL nothing, a keyed hash equality, a
    /// partial mask some characters.
    pub fn reveals(self) -> u8 {
        match self {
            MaskKind::Null => 0,
            MaskKind::Hash => 1,
            MaskKind::Partial => 2,
        }
    }
}

impl Column {
    /// Whether the contract says this column holds personal data: its `classification` is one
    /// of `pii`, `personal`, `personal_data`, `sensitive`, `restricted`, `confidential` (any
    /// case), or it carries the tag `pii`. The one test of personal data: masks, failed-row
    /// samples and quarantine all ask it.
    pub fn is_personal_data(&self) -> bool {
        let classified = matches!(
            self.classification
                .as_deref()
                .map(|c| c.trim().to_ascii_lowercase())
                .as_deref(),
            Some(
                "pii" | "personal" | "personal_data" | "sensitive" | "restricted" | "confidential"
            )
        );
        classified
            || self
                .tags
                .iter()
                .any(|t| t.trim().eq_ignore_ascii_case("pii"))
    }

    /// How the column is masked when it holds personal data: the tag `mask:null`,
    /// `mask:partial` or `mask:hash` (or its glossary term's mask, which enforcing the term
    /// made a tag), a keyed hash when it has none.
    pub fn mask(&self) -> MaskKind {
        self.mask_tag().unwrap_or_default()
    }

    /// The mask the column's tags name, if any.
    pub fn mask_tag(&self) -> Option<MaskKind> {
        self.tags.iter().find_map(|t| {
            t.trim()
                .to_ascii_lowercase()
                .strip_prefix("mask:")
                .and_then(MaskKind::parse)
        })
    }

    /// A column with no type, no rules: a starting point for builders and tests.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            logical_type: None,
            physical_type: None,
            required: false,
            unique: false,
            primary_key: false,
            description: None,
            classification: None,
            tags: Vec::new(),
            glossary: None,
            constraints: Constraints::default(),
            items: None,
            properties: Vec::new(),
        }
    }
}

/// `logicalTypeOptions`, plus the valid values of a zero-tolerance `invalidValues` rule.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Constraints {
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub pattern: Option<String>,
    pub format: Option<String>,
    pub minimum: Option<Bound>,
    pub maximum: Option<Bound>,
    pub exclusive_minimum: Option<Bound>,
    pub exclusive_maximum: Option<Bound>,
    pub valid_values: Option<Vec<serde_json::Value>>,
    pub timezone: Option<bool>,
}

/// The duration an SLA `value` states, in seconds: a number with a `unit` (see
/// [`duration_seconds`]), or an ISO 8601 duration such as `P1Y`, `P30D` or `PT24H` (as
/// datacontract-cli accepts), whose unit is in the text.
pub fn sla_duration_seconds(value: &serde_json::Value, unit: Option<&str>) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => duration_seconds(n.as_f64()?, unit),
        serde_json::Value::String(text) => match text.trim().parse::<f64>() {
            Ok(n) => duration_seconds(n, unit),
            Err(_) => iso8601_seconds(text.trim()),
        },
        _ => None,
    }
}

/// `PnYnMnWnDTnHnMnS` in seconds (a year of 365 days, a month of 30), as [`duration_seconds`].
fn iso8601_seconds(text: &str) -> Option<f64> {
    let rest = text.strip_prefix('P').or_else(|| text.strip_prefix('p'))?;
    let (date, time) = rest.split_once(['T', 't']).unwrap_or((rest, ""));
    let mut total = 0.0;
    let mut any = false;
    for (part, units) in [(date, "YMWD"), (time, "HMS")] {
        let mut number = String::new();
        for ch in part.chars() {
            if ch.is_ascii_digit() || ch == '.' {
                number.push(ch);
                continue;
            }
            let upper = ch.to_ascii_uppercase();
            if !units.contains(upper) || number.is_empty() {
                return None;
            }
            let unit = match (units, upper) {
                (_, 'Y') => "y",
                ("YMWD", 'M') => "mo",
                (_, 'W') => "w",
                (_, 'D') => "d",
                (_, 'H') => "h",
                (_, 'M') => "m",
                _ => "s",
            };
            total += duration_seconds(number.parse().ok()?, Some(unit))?;
            number.clear();
            any = true;
        }
        if !number.is_empty() {
            return None;
        }
    }
    any.then_some(total)
}

/// A duration written as an SLA value and unit, in seconds. Units: `ms`, `s`, `m`/`min`, `h`,
/// `d`, `w`, `mo` (30 days), `y` (365 days), with their long forms.
pub fn duration_seconds(value: f64, unit: Option<&str>) -> Option<f64> {
    let unit = unit.unwrap_or("s").trim().to_ascii_lowercase();
    let factor = match unit.as_str() {
        "ms" | "millisecond" | "milliseconds" => 0.001,
        "s" | "sec" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "week" | "weeks" => 7.0 * 86_400.0,
        "mo" | "month" | "months" => 30.0 * 86_400.0,
        "y" | "yr" | "year" | "years" => 365.0 * 86_400.0,
        _ => return None,
    };
    Some(value * factor)
}
