//! ODCS document → [`Contract`]. Runs after [`crate::validate`], so the shape is the standard's;
//! what is checked here is what Tessera needs on top (SQL names, types it can store, rules it can
//! evaluate), each with the file, line and field.

use std::collections::HashSet;

use serde_json::Value;
use sqlparser::ast::Statement;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use tessera_core::{
    Bound, COLUMN_PLACEHOLDERS, CheckKind, Column, Constraints, Contract, DatasetSchema,
    GLOSSARY_TAG, GLOSSARY_URL, LogicalType, Name, Operator, QUARANTINE_SUFFIX, QualityRule,
    RuleKind, Severity, SlaProperty, TermRef, Unit, arrow_type, sla_duration_seconds,
    substitute_placeholders,
};

use crate::document::SpecDocument;
use crate::error::{Diagnostic, Result, SpecError};

/// Converts a validated ODCS document into the contract Tessera enforces.
pub fn contract_from_document(doc: &SpecDocument) -> Result<Contract> {
    convert(doc, false)
}

/// Like [`contract_from_document`], but a column without any type is kept (untyped) instead of
/// refused: enough to check data against the contract (`tessera test`), not to publish it,
/// which needs a type for every column.
pub fn contract_for_checks(doc: &SpecDocument) -> Result<Contract> {
    convert(doc, true)
}

fn convert(doc: &SpecDocument, untyped_columns: bool) -> Result<Contract> {
    let v = &doc.value;
    let mut problems = Vec::new();
    let mut datasets = Vec::new();
    let mut seen = HashSet::new();
    for (i, object) in array(v, "schema").iter().enumerate() {
        let at = format!("/schema/{i}");
        let name = text(object, "name").unwrap_or_default();
        let name = match Name::parse(&name) {
            Ok(n) if n.as_str().ends_with(QUARANTINE_SUFFIX) => {
                problems.push(doc.diagnostic(
                    &format!("{at}/name"),
                    format!("a dataset name may not end in {QUARANTINE_SUFFIX:?}: Tessera uses that suffix for quarantine tables"),
                ));
                continue;
            }
            Ok(n) => n,
            Err(e) => {
                problems.push(doc.diagnostic(
                    &format!("{at}/name"),
                    format!("{e}: a dataset is queried as domain.product.{name:?}, so its name must be a SQL identifier"),
                ));
                continue;
            }
        };
        if !seen.insert(name.clone()) {
            problems.push(doc.diagnostic(
                &format!("{at}/name"),
                format!("dataset {name} is defined twice in this contract"),
            ));
        }
        let mut columns = Vec::new();
        let mut column_names = HashSet::new();
        for (j, property) in array(object, "properties").iter().enumerate() {
            let pat = format!("{at}/properties/{j}");
            match column(doc, property, &pat, &mut problems, untyped_columns) {
                Some(c) => {
                    if !column_names.insert(c.name.clone()) {
                        problems.push(doc.diagnostic(
                            &format!("{pat}/name"),
                            format!("column {:?} is defined twice in dataset {name}", c.name),
                        ));
                    }
                    columns.push(c)
                }
                None => continue,
            }
        }
        // Quality rules: the schema object's, then each property's, in file order.
        let mut quality = Vec::new();
        for (k, rule) in array(object, "quality").iter().enumerate() {
            quality.extend(quality_rule(
                doc,
                rule,
                &format!("{at}/quality/{k}"),
                None,
                &mut problems,
            ));
        }
        for (j, property) in array(object, "properties").iter().enumerate() {
            let column = text(property, "name").unwrap_or_default();
            for (k, rule) in array(property, "quality").iter().enumerate() {
                let rule_at = format!("{at}/properties/{j}/quality/{k}");
                quality.extend(quality_rule(
                    doc,
                    rule,
                    &rule_at,
                    Some(&column),
                    &mut problems,
                ));
            }
        }
        datasets.push(DatasetSchema {
            name,
            description: description(object),
            columns,
            quality,
        });
    }
    let sla: Vec<SlaProperty> = array(v, "slaProperties")
        .iter()
        .map(|p| SlaProperty {
            property: text(p, "property").unwrap_or_default(),
            value: p.get("value").cloned().unwrap_or(Value::Null),
            unit: text(p, "unit"),
            element: text(p, "element"),
        })
        .collect();
    check_sla(doc, &datasets, &sla, &mut problems);
    let check_schedule = check_schedule(doc, &mut problems);
    if !problems.is_empty() {
        return Err(SpecError::Invalid(problems));
    }
    Ok(Contract {
        id: text(v, "id").unwrap_or_default(),
        version: text(v, "version").unwrap_or_default(),
        status: text(v, "status").unwrap_or_default(),
        name: text(v, "name"),
        domain: text(v, "domain"),
        description: description(v),
        datasets,
        sla,
        check_schedule,
    })
}

/// A `sql` rule must be one read-only statement (a query); `{property}` and its kin only in a
/// rule on a property, which has a column to stand for. Checked when the contract is read, so
/// that a broken rule is refused at publish time, not found at the first commit.
fn read_only_query(query: &str, on_property: bool) -> std::result::Result<(), String> {
    if !on_property && let Some(p) = COLUMN_PLACEHOLDERS.iter().find(|p| query.contains(**p)) {
        return Err(format!(
            "{p} stands for the rule's column: it can only be used in a rule on a property"
        ));
    }
    let sql = substitute_placeholders(query, "rule_table", "rule_column");
    let statements = Parser::parse_sql(&GenericDialect {}, &sql)
        .map_err(|e| format!("the query does not parse: {e}"))?;
    match statements.as_slice() {
        [statement @ Statement::Query(_)] => {
            match tessera_core::sql::nesting(statement, tessera_core::sql::MAX_NESTING) {
                Some(_) => Ok(()),
                None => Err(tessera_core::sql::too_deep_message(
                    tessera_core::sql::MAX_NESTING,
                )),
            }
        }
        [other] => Err(format!(
            "a sql rule must be a read-only query (SELECT …), not {}",
            other
                .to_string()
                .split_whitespace()
                .next()
                .unwrap_or("this statement")
        )),
        many => Err(format!(
            "a sql rule must be one statement; this query has {}",
            many.len()
        )),
    }
}

/// The SLA properties Tessera measures must be measurable: a number (or an ISO 8601 duration)
/// with a unit it knows, and an `element` that names the contract's datasets and columns — a
/// date or timestamp column for freshness, latency and retention. Others are only declared.
fn check_sla(
    doc: &SpecDocument,
    datasets: &[DatasetSchema],
    sla: &[SlaProperty],
    problems: &mut Vec<Diagnostic>,
) {
    for (i, declared) in sla.iter().enumerate() {
        let at = format!("/slaProperties/{i}");
        let property = declared.property.to_ascii_lowercase();
        let (value, unit) = (&declared.value, &declared.unit);
        let mut problem = |field: &str, message: String| {
            problems.push(doc.diagnostic(&format!("{at}{field}"), message));
        };
        let timed = matches!(property.as_str(), "freshness" | "latency" | "retention");
        if timed && sla_duration_seconds(value, unit.as_deref()).is_none() {
            let field = if value.is_number() && unit.is_some() {
                "/unit"
            } else {
                "/value"
            };
            problem(
                field,
                format!(
                    "{property} needs a duration: a number with a unit (s, m, h, d, w, mo, y) or an ISO 8601 duration such as P1D; found {value}{}",
                    unit.as_deref().map(|u| format!(" {u}")).unwrap_or_default()
                ),
            );
        }
        if property == "completeness" {
            if !value.is_number() {
                problem(
                    "/value",
                    format!("completeness needs a percentage, found {value}"),
                );
            }
            if !matches!(unit.as_deref(), None | Some("percent" | "%")) {
                problem(
                    "/unit",
                    "completeness is a percentage: unit percent, %, or none".into(),
                );
            }
        }
        if !(timed || property == "completeness") {
            continue;
        }
        if property == "retention" && declared.element.is_none() {
            problem(
                "/element",
                "retention is measured on a column: name it in `element` (table.column)".into(),
            );
        }
        for (part, table, name) in declared.element_parts() {
            let (table, name) = match table {
                Some(t) => (Some(t), Some(name)),
                None if datasets.iter().any(|d| d.name.as_str() == name) => (Some(name), None),
                None => (None, Some(name)),
            };
            let candidates: Vec<&DatasetSchema> = datasets
                .iter()
                .filter(|d| table.is_none_or(|t| d.name.as_str() == t))
                .collect();
            if candidates.is_empty() {
                problem(
                    "/element",
                    format!(
                        "element {part:?}: the contract has no dataset {:?}",
                        table.unwrap_or_default()
                    ),
                );
                continue;
            }
            let Some(name) = name else { continue };
            let found: Vec<&Column> = candidates.iter().filter_map(|d| d.column(name)).collect();
            if found.is_empty() {
                problem(
                    "/element",
                    format!("element {part:?}: no column {name:?} there"),
                );
            } else if timed
                && found.iter().any(|c| {
                    c.logical_type
                        .is_some_and(|t| !matches!(t, LogicalType::Date | LogicalType::Timestamp))
                })
            {
                problem(
                    "/element",
                    format!(
                        "element {part:?}: {property} is measured on a date or timestamp column"
                    ),
                );
            }
        }
    }
}

/// The glossary term a property references: a `glossary:NAME@VERSION` tag or an
/// `authoritativeDefinitions` entry with the url `tessera:glossary/NAME/VERSION`; at most one.
fn glossary_reference(
    doc: &SpecDocument,
    p: &Value,
    at: &str,
    problems: &mut Vec<Diagnostic>,
) -> Option<TermRef> {
    let mut found: Vec<(String, Result<TermRef, String>)> = Vec::new();
    for (i, tag) in array(p, "tags").iter().enumerate() {
        if let Some(rest) = tag.as_str().and_then(|t| t.strip_prefix(GLOSSARY_TAG)) {
            found.push((format!("{at}/tags/{i}"), TermRef::parse_tag(rest)));
        }
    }
    for (i, definition) in array(p, "authoritativeDefinitions").iter().enumerate() {
        if let Some(rest) = text(definition, "url")
            .as_deref()
            .and_then(|u| u.strip_prefix(GLOSSARY_URL))
        {
            found.push((
                format!("{at}/authoritativeDefinitions/{i}/url"),
                TermRef::parse_url(rest),
            ));
        }
    }
    let mut reference: Option<TermRef> = None;
    for (pointer, parsed) in found {
        match parsed {
            Err(message) => problems.push(doc.diagnostic(&pointer, message)),
            Ok(r) => match &reference {
                Some(first) if *first != r => problems.push(doc.diagnostic(
                    &pointer,
                    format!("the column already references glossary term {first}: a column references one term"),
                )),
                _ => reference = Some(r),
            },
        }
    }
    reference
}

/// The contract's check schedule (see `Contract::check_schedule`), checked to be a cron
/// expression where it is written.
fn check_schedule(doc: &SpecDocument, problems: &mut Vec<Diagnostic>) -> Option<String> {
    let v = &doc.value;
    let custom = array(v, "customProperties")
        .iter()
        .enumerate()
        .find(|(_, p)| text(p, "property").as_deref() == Some("checkSchedule"))
        .map(|(i, p)| {
            (
                format!("/customProperties/{i}/value"),
                p.get("value").and_then(Value::as_str).map(str::to_string),
            )
        });
    let from_rules = || {
        for (i, object) in array(v, "schema").iter().enumerate() {
            let mut rules: Vec<(String, &Value)> = array(object, "quality")
                .iter()
                .enumerate()
                .map(|(k, r)| (format!("/schema/{i}/quality/{k}/schedule"), r))
                .collect();
            for (j, p) in array(object, "properties").iter().enumerate() {
                for (k, r) in array(p, "quality").iter().enumerate() {
                    rules.push((
                        format!("/schema/{i}/properties/{j}/quality/{k}/schedule"),
                        r,
                    ));
                }
            }
            for (at, rule) in rules {
                let cron = matches!(text(rule, "scheduler").as_deref(), None | Some("cron"));
                if let (true, Some(s)) = (cron, text(rule, "schedule")) {
                    return Some((at, Some(s)));
                }
            }
        }
        None
    };
    let (at, expression) = custom.or_else(from_rules)?;
    let Some(expression) = expression else {
        problems.push(doc.diagnostic(
            &at,
            "checkSchedule needs a cron expression, e.g. \"0 * * * *\"",
        ));
        return None;
    };
    match crate::schedule::parse_schedule(&expression) {
        Ok(_) => Some(expression),
        Err(e) => {
            problems
                .push(doc.diagnostic(&at, format!("{expression:?} is not a cron expression: {e}")));
            None
        }
    }
}

fn column(
    doc: &SpecDocument,
    p: &Value,
    at: &str,
    problems: &mut Vec<Diagnostic>,
    untyped_ok: bool,
) -> Option<Column> {
    let name = text(p, "name").unwrap_or_default();
    if name.is_empty() {
        problems.push(doc.diagnostic(&format!("{at}/name"), "a column needs a name"));
        return None;
    }
    let logical_type = text(p, "logicalType").and_then(|t| t.parse::<LogicalType>().ok());
    let options = p.get("logicalTypeOptions");
    let opt = |key: &str| options.and_then(|o| o.get(key));
    let bound = |key: &str| {
        opt(key).and_then(|b| match b {
            Value::Number(n) => n.as_f64().map(Bound::Number),
            Value::String(s) => Some(Bound::Text(s.clone())),
            _ => None,
        })
    };
    let mut constraints = Constraints {
        min_length: opt("minLength").and_then(Value::as_u64),
        max_length: opt("maxLength").and_then(Value::as_u64),
        pattern: opt("pattern").and_then(Value::as_str).map(str::to_string),
        format: opt("format").and_then(Value::as_str).map(str::to_string),
        minimum: bound("minimum"),
        maximum: bound("maximum"),
        exclusive_minimum: bound("exclusiveMinimum"),
        exclusive_maximum: bound("exclusiveMaximum"),
        valid_values: None,
        timezone: opt("timezone").and_then(Value::as_bool),
    };
    // A property-level `invalidValues` rule that tolerates no invalid value is a row-level rule:
    // each row either has a valid value or is quarantined.
    for rule in array(p, "quality") {
        let metric = text(rule, "metric").or_else(|| text(rule, "rule"));
        if metric.as_deref() != Some("invalidValues") || !zero_tolerance(rule) {
            continue;
        }
        let args = rule.get("arguments");
        if let Some(values) = args
            .and_then(|a| a.get("validValues"))
            .and_then(Value::as_array)
        {
            constraints.valid_values = Some(values.clone());
        }
        if let Some(pattern) = args.and_then(|a| a.get("pattern")).and_then(Value::as_str) {
            constraints
                .pattern
                .get_or_insert_with(|| pattern.to_string());
        }
    }
    if let Some(pattern) = &constraints.pattern
        && let Err(e) = regex::Regex::new(pattern)
    {
        problems.push(doc.diagnostic(
            &format!("{at}/logicalTypeOptions/pattern"),
            format!("pattern is not a valid regular expression: {e}"),
        ));
    }
    let glossary = glossary_reference(doc, p, at, problems);
    let column = Column {
        name,
        logical_type,
        glossary,
        physical_type: text(p, "physicalType"),
        required: p.get("required").and_then(Value::as_bool).unwrap_or(false),
        unique: p.get("unique").and_then(Value::as_bool).unwrap_or(false),
        primary_key: p
            .get("primaryKey")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        description: text(p, "description"),
        classification: text(p, "classification"),
        tags: array(p, "tags")
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        constraints,
        items: p.get("items").and_then(|items| {
            column(
                doc,
                &with_default_name(items, "element"),
                &format!("{at}/items"),
                problems,
                untyped_ok,
            )
            .map(Box::new)
        }),
        properties: array(p, "properties")
            .iter()
            .enumerate()
            .filter_map(|(k, c)| {
                column(
                    doc,
                    c,
                    &format!("{at}/properties/{k}"),
                    problems,
                    untyped_ok,
                )
            })
            .collect(),
    };
    let untyped = column.logical_type.is_none() && column.physical_type.is_none();
    if let Err(e) = arrow_type(&column)
        && !(untyped && untyped_ok)
    {
        let field = if column.physical_type.is_some() {
            "physicalType"
        } else {
            "logicalType"
        };
        problems.push(doc.diagnostic(&format!("{at}/{field}"), e.to_string()));
        return None;
    }
    Some(column)
}

const OPERATORS: [&str; 8] = [
    "mustBe",
    "mustNotBe",
    "mustBeGreaterThan",
    "mustBeGreaterOrEqualTo",
    "mustBeLessThan",
    "mustBeLessOrEqualTo",
    "mustBeBetween",
    "mustNotBeBetween",
];

/// One ODCS quality rule, on the schema object (`column` is `None`) or on a property. What the
/// standard allows but cannot be executed as written (a column metric without a column, a
/// `rowCount` or `sql` rule without a threshold) is reported where it is.
fn quality_rule(
    doc: &SpecDocument,
    v: &Value,
    at: &str,
    column: Option<&str>,
    problems: &mut Vec<Diagnostic>,
) -> Option<QualityRule> {
    let metric = text(v, "metric").or_else(|| text(v, "rule"));
    let kind = text(v, "type").unwrap_or_else(|| {
        if metric.is_some() {
            "library".into()
        } else {
            "text".into()
        }
    });
    let args = v.get("arguments");
    let arg_list = |key: &str| {
        args.and_then(|a| a.get(key))
            .and_then(Value::as_array)
            .cloned()
    };
    let mut problem = |field: &str, message: String| {
        problems.push(doc.diagnostic(&format!("{at}{field}"), message));
        None::<QualityRule>
    };
    let rule = match kind.as_str() {
        "sql" => match text(v, "query") {
            Some(q) => match read_only_query(&q, column.is_some()) {
                Ok(()) => RuleKind::Sql(q),
                Err(message) => return problem("/query", message),
            },
            None => return problem("", "a sql quality rule needs a `query`".into()),
        },
        "library" => {
            let Some(metric) = metric else {
                return problem("", "a library quality rule needs a `metric`".into());
            };
            match metric.as_str() {
                "rowCount" => RuleKind::Metric(CheckKind::RowCount),
                "nullValues" if column.is_some() => RuleKind::Metric(CheckKind::NullValues),
                "missingValues" if column.is_some() => RuleKind::Metric(CheckKind::MissingValues(
                    arg_list("missingValues").unwrap_or_default(),
                )),
                "invalidValues" if column.is_some() => {
                    let valid_values = arg_list("validValues");
                    let pattern = args
                        .and_then(|a| a.get("pattern"))
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    if valid_values.is_none() && pattern.is_none() {
                        return problem(
                            "/arguments",
                            "invalidValues needs `arguments.validValues` or `arguments.pattern`"
                                .into(),
                        );
                    }
                    if let Some(p) = &pattern
                        && let Err(e) = regex::Regex::new(p)
                    {
                        return problem(
                            "/arguments/pattern",
                            format!("pattern is not a valid regular expression: {e}"),
                        );
                    }
                    RuleKind::Metric(CheckKind::InvalidValues {
                        valid_values,
                        pattern,
                    })
                }
                "duplicateValues" => {
                    let columns: Vec<String> = match (arg_list("properties"), column) {
                        (Some(list), _) => list
                            .iter()
                            .filter_map(|c| c.as_str().map(str::to_string))
                            .collect(),
                        (None, Some(c)) => vec![c.to_string()],
                        (None, None) => {
                            return problem("/arguments", "duplicateValues on a schema object needs `arguments.properties`, the columns of the key".into());
                        }
                    };
                    RuleKind::Metric(CheckKind::DuplicateValues { columns })
                }
                "nullValues" | "missingValues" | "invalidValues" => {
                    return problem(
                        "/metric",
                        format!(
                            "{metric} is a column metric: put it on a property, not on the schema object"
                        ),
                    );
                }
                other => return problem("/metric", format!("unknown metric {other:?}")),
            }
        }
        other => RuleKind::NotExecuted(other.to_string()),
    };
    let operator = OPERATORS
        .iter()
        .find_map(|key| v.get(*key).map(|value| (key, value)));
    let operator = match operator {
        Some((key, value)) => match Operator::from_odcs(key, value) {
            Some(Operator::Between(low, high) | Operator::NotBetween(low, high)) if low > high => {
                return problem(
                    &format!("/{key}"),
                    format!("{key} needs [low, high] with low ≤ high; found [{low}, {high}]"),
                );
            }
            Some(op) => Some(op),
            None => {
                return problem(
                    &format!("/{key}"),
                    format!("{key} needs a number (or [low, high] for a range)"),
                );
            }
        },
        None => None,
    };
    let executable = !matches!(rule, RuleKind::NotExecuted(_));
    let needs_threshold = matches!(
        rule,
        RuleKind::Sql(_) | RuleKind::Metric(CheckKind::RowCount)
    );
    if executable && needs_threshold && operator.is_none() {
        return problem(
            "",
            format!(
                "this rule needs a threshold: one of {}",
                OPERATORS.join(", ")
            ),
        );
    }
    Some(QualityRule {
        column: column.map(str::to_string),
        id: text(v, "id"),
        name: text(v, "name"),
        description: text(v, "description"),
        rule,
        operator,
        unit: if text(v, "unit").as_deref() == Some("percent") {
            Unit::Percent
        } else {
            Unit::Rows
        },
        severity: Severity::parse(text(v, "severity").as_deref()),
        dimension: text(v, "dimension"),
        tags: array(v, "tags")
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
    })
}

/// Whether a quality rule allows no failing row at all (and is blocking).
fn zero_tolerance(rule: &Value) -> bool {
    let severity_blocks = matches!(text(rule, "severity").as_deref(), None | Some("error"));
    let zero = |key: &str, limit: f64| rule.get(key).and_then(Value::as_f64) == Some(limit);
    severity_blocks
        && (zero("mustBe", 0.0) || zero("mustBeLessThan", 1.0) || zero("mustBeLessOrEqualTo", 0.0))
}

fn with_default_name(v: &Value, name: &str) -> Value {
    let mut v = v.clone();
    if let Value::Object(map) = &mut v {
        map.entry("name").or_insert_with(|| Value::from(name));
    }
    v
}

pub(crate) fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

pub(crate) fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `description` is a string on schema objects and `{purpose, usage, ...}` at the top level.
pub(crate) fn description(v: &Value) -> Option<String> {
    match v.get("description")? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("purpose").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::RowRuleKind;

    const CONTRACT: &str = r#"apiVersion: v3.1.0
kind: DataContract
id: orders-contract
version: 1.2.0
status: active
description:
  purpose: Orders of the shop
schema:
  - name: orders
    properties:
      - name: order_id
        logicalType: integer
        required: true
      - name: status
        logicalType: string
        quality:
          - metric: invalidValues
            arguments:
              validValues: [open, shipped]
            mustBe: 0
      - name: amount
        logicalType: number
        physicalType: decimal(10,2)
        logicalTypeOptions:
          minimum: 0
      - name: email
        logicalType: string
        logicalTypeOptions:
          pattern: "^[^@]+@[^@]+$"
          maxLength: 80
      - name: placed_at
        logicalType: timestamp
slaProperties:
  - property: freshness
    value: 5
    unit: m
    element: orders.placed_at
"#;

    #[test]
    fn contracts_convert_with_their_rules() {
        let doc = SpecDocument::parse("c.yaml", CONTRACT).unwrap();
        crate::validate(&doc).unwrap();
        let c = contract_from_document(&doc).unwrap();
        assert_eq!(
            (c.id.as_str(), c.version.as_str()),
            ("orders-contract", "1.2.0")
        );
        assert_eq!(c.description.as_deref(), Some("Orders of the shop"));
        let orders = c.dataset("orders").unwrap();
        let kinds: Vec<(String, &str)> = orders
            .row_rules()
            .iter()
            .map(|r| (r.column.clone(), r.name()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("order_id".into(), "required"),
                ("status".into(), "validValues"),
                ("amount".into(), "minimum"),
                ("email".into(), "maxLength"),
                ("email".into(), "pattern"),
            ]
        );
        assert!(
            matches!(&orders.row_rules()[2].kind, RowRuleKind::Minimum(Bound::Number(n), false) if *n == 0.0)
        );
        assert_eq!(c.sla[0].property, "freshness");
    }

    #[test]
    fn dataset_names_must_be_sql_identifiers() {
        let text = CONTRACT.replace("  - name: orders", "  - name: Orders Table");
        let doc = SpecDocument::parse("c.yaml", &text).unwrap();
        let err = contract_from_document(&doc).unwrap_err().to_string();
        assert!(
            err.starts_with("c.yaml:9: schema[0].name: invalid name"),
            "{err}"
        );
    }

    #[test]
    fn unknown_physical_types_are_reported_where_they_are() {
        let text = CONTRACT
            .replace("        logicalType: number\n", "")
            .replace("physicalType: decimal(10,2)", "physicalType: geography");
        let doc = SpecDocument::parse("c.yaml", &text).unwrap();
        let err = contract_from_document(&doc).unwrap_err().to_string();
        assert!(
            err.contains("c.yaml:22: schema[0].properties[2].physicalType"),
            "{err}"
        );
    }

    const WITH_QUALITY: &str = r#"apiVersion: v3.1.0
kind: DataContract
id: q
version: 1.0.0
status: active
schema:
  - name: orders
    quality:
      - id: not_empty
        metric: rowCount
        mustBeGreaterThan: 1
      - metric: duplicateValues
        arguments:
          properties: [order_id, email]
        mustBe: 0
      - type: sql
        query: SELECT COUNT(*) FROM {object} WHERE amount < 0
        mustBe: 0
        severity: warning
      - type: text
        description: Orders are reviewed by a person.
    properties:
      - name: order_id
        logicalType: integer
        primaryKey: true
      - name: email
        logicalType: string
        logicalTypeOptions:
          maxLength: 20
        quality:
          - metric: nullValues
            mustBeLessThan: 10
            unit: percent
            dimension: completeness
      - name: placed_at
        logicalType: timestamp
  - name: other
    properties:
      - name: placed_at
        logicalType: timestamp
slaProperties:
  - property: latency
    value: 5
    unit: m
    element: orders.placed_at
  - property: retention
    value: 1
    unit: y
    element: other.placed_at
"#;

    #[test]
    fn quality_rules_schema_promises_and_slas_become_checks() {
        let doc = SpecDocument::parse("q.yaml", WITH_QUALITY).unwrap();
        crate::validate(&doc).unwrap();
        let c = contract_from_document(&doc).unwrap();
        let orders = c.dataset("orders").unwrap();
        assert_eq!(orders.quality.len(), 5);
        let checks = orders.checks(&c.sla);
        let types: Vec<(&str, Option<&str>)> = checks
            .iter()
            .map(|k| (k.check_type, k.field.as_deref()))
            .collect();
        assert_eq!(
            types,
            [
                ("field_is_present", Some("order_id")),
                ("field_type", Some("order_id")),
                ("field_required", Some("order_id")),
                ("field_is_present", Some("email")),
                ("field_type", Some("email")),
                ("field_max_length", Some("email")),
                ("field_is_present", Some("placed_at")),
                ("field_type", Some("placed_at")),
                ("primary_key_unique", Some("order_id")),
                ("row_count", None),
                ("model_duplicate_values", None),
                ("model_quality_sql", None),
                ("field_null_values", Some("email")),
                ("servicelevel_freshness", Some("placed_at")),
            ]
        );
        let row_count = &checks[9];
        assert_eq!(row_count.quality_id.as_deref(), Some("not_empty"));
        assert_eq!(row_count.operator, Operator::GreaterThan(1.0));
        assert_eq!(row_count.dimension, "completeness");
        assert_eq!(checks[11].severity, Severity::Warning);
        assert_eq!(checks[12].unit, Unit::Percent);
        assert_eq!(checks[13].operator, Operator::LessOrEqualTo(300.0));
        assert_eq!(checks[13].dimension, "timeliness");
    }

    #[test]
    fn completeness_slo_counts_rows_with_every_element_column() {
        let with = |sla: &str| {
            let text = format!("{WITH_QUALITY}{sla}");
            let doc = SpecDocument::parse("q.yaml", &text).unwrap();
            crate::validate(&doc).unwrap();
            let c = contract_from_document(&doc).unwrap();
            let orders = c.dataset("orders").unwrap();
            orders
                .checks(&c.sla)
                .into_iter()
                .find(|k| k.check_type == "servicelevel_completeness")
        };
        let two = with(
            "  - property: completeness\n    value: 99.5\n    unit: percent\n    element: orders.email, orders.placed_at\n",
        )
        .unwrap();
        assert_eq!(
            two.kind,
            CheckKind::Completeness {
                columns: vec!["email".into(), "placed_at".into()]
            }
        );
        assert_eq!(two.operator, Operator::GreaterOrEqualTo(99.5));
        assert_eq!((two.field, two.dimension.as_str()), (None, "completeness"));
        // No element: every column of every dataset.
        let all = with("  - property: completeness\n    value: 90\n").unwrap();
        assert_eq!(
            all.kind,
            CheckKind::Completeness {
                columns: vec!["order_id".into(), "email".into(), "placed_at".into()]
            }
        );
        // Another dataset's column: not this dataset's check.
        assert!(
            with("  - property: completeness\n    value: 90\n    element: other.placed_at\n")
                .is_none()
        );
    }

    #[test]
    fn sql_rules_and_measured_slos_are_checked_when_read() {
        let refused = |text: String| -> Vec<String> {
            let doc = SpecDocument::parse("q.yaml", &text).unwrap();
            crate::validate(&doc).unwrap();
            match contract_from_document(&doc) {
                Ok(_) => Vec::new(),
                Err(e) => e.diagnostics().iter().map(|d| d.to_string()).collect(),
            }
        };
        let sql = |query: &str| {
            WITH_QUALITY.replace("SELECT COUNT(*) FROM {object} WHERE amount < 0", query)
        };
        assert!(refused(sql("SELECT count(*) FROM ${table} WHERE amount < 0")).is_empty());
        for (query, message) in [
            ("SELEKT 1", "the query does not parse"),
            (
                "DELETE FROM {object}",
                "must be a read-only query (SELECT …), not DELETE",
            ),
            (
                "SELECT 1; SELECT 2",
                "must be one statement; this query has 2",
            ),
            (
                "SELECT max({property}) FROM {object}",
                "{property} stands for the rule's column",
            ),
        ] {
            let found = refused(sql(query));
            assert!(
                found.len() == 1
                    && found[0].contains("schema[0].quality[2].query")
                    && found[0].contains(message),
                "{query}: {found:?}"
            );
        }
        let sla = |entry: &str| format!("{WITH_QUALITY}  - {entry}\n");
        assert!(
            refused(sla(
                "property: retention\n    value: P1Y\n    element: orders.placed_at"
            ))
            .is_empty()
        );
        for (entry, message) in [
            (
                "property: latency\n    value: 5\n    unit: fortnight",
                "latency needs a duration",
            ),
            (
                "property: freshness\n    value: soon",
                "freshness needs a duration",
            ),
            (
                "property: latency\n    value: 5\n    unit: m\n    element: orders.nope",
                "no column \"nope\" there",
            ),
            (
                "property: latency\n    value: 5\n    unit: m\n    element: nosuch.placed_at",
                "no dataset \"nosuch\"",
            ),
            (
                "property: latency\n    value: 5\n    unit: m\n    element: orders.email",
                "measured on a date or timestamp column",
            ),
            (
                "property: retention\n    value: 1\n    unit: y",
                "retention is measured on a column",
            ),
            (
                "property: completeness\n    value: abc",
                "completeness needs a percentage",
            ),
            (
                "property: completeness\n    value: 90\n    unit: rows",
                "completeness is a percentage",
            ),
        ] {
            let found = refused(sla(entry));
            assert!(
                found.len() == 1
                    && found[0].contains("slaProperties[2]")
                    && found[0].contains(message),
                "{entry}: {found:?}"
            );
        }
        let reversed =
            refused(WITH_QUALITY.replace("mustBeGreaterThan: 1\n", "mustBeBetween: [20, 10]\n"));
        assert!(
            reversed.len() == 1 && reversed[0].contains("schema[0].quality[0].mustBeBetween: mustBeBetween needs [low, high] with low ≤ high; found [20, 10]"),
            "{reversed:?}"
        );
        // Declared-only properties are not measured, so not checked beyond the standard.
        assert!(refused(sla("property: availability\n    value: 99.9%")).is_empty());
    }

    #[test]
    fn quality_rules_that_cannot_run_are_reported_where_they_are() {
        // The standard itself refuses a library metric without an operator; what it allows
        // but cannot run is a column metric on the schema object.
        let text = WITH_QUALITY.replace("metric: rowCount", "metric: nullValues");
        let doc = SpecDocument::parse("q.yaml", &text).unwrap();
        crate::validate(&doc).unwrap();
        let err = contract_from_document(&doc).unwrap_err().to_string();
        assert!(
            err.contains("q.yaml:10: schema[0].quality[0].metric: nullValues is a column metric"),
            "{err}"
        );
    }
}

/// Where a `sql` quality rule is in a contract file: so that a rule found wrong later (when it is
/// planned against the mesh at publish time) is reported at its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlRuleSite {
    /// The schema object (dataset) the rule is on.
    pub dataset: String,
    /// The property, for a rule on a property.
    pub column: Option<String>,
    /// The query as written, placeholders included.
    pub query: String,
    /// JSON pointer of the rule's `query`, for [`SpecDocument::diagnostic`].
    pub pointer: String,
}

/// Every `sql` quality rule of a contract document, with its place.
pub fn sql_rules(doc: &SpecDocument) -> Vec<SqlRuleSite> {
    let mut sites = Vec::new();
    let Some(schema) = doc.value.get("schema").and_then(Value::as_array) else {
        return sites;
    };
    let mut collect = |rules: Option<&Value>, dataset: &str, column: Option<&str>, at: String| {
        for (j, rule) in rules
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if rule.get("type").and_then(Value::as_str) == Some("sql")
                && let Some(query) = rule.get("query").and_then(Value::as_str)
            {
                sites.push(SqlRuleSite {
                    dataset: dataset.to_string(),
                    column: column.map(str::to_string),
                    query: query.to_string(),
                    pointer: format!("{at}/quality/{j}/query"),
                });
            }
        }
    };
    for (i, object) in schema.iter().enumerate() {
        let dataset = object
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        collect(object.get("quality"), dataset, None, format!("/schema/{i}"));
        for (k, property) in object
            .get("properties")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let column = property.get("name").and_then(Value::as_str);
            collect(
                property.get("quality"),
                dataset,
                column,
                format!("/schema/{i}/properties/{k}"),
            );
        }
    }
    sites
}
