//! Contract checks measured with DataFusion over one table of a session.
//!
//! All count-style checks of a table (row count, nulls, missing and invalid values, lengths,
//! bounds, patterns, distinct counts for uniqueness, the newest and oldest timestamps) are
//! computed by one fused aggregate: one scan, all cores. Compound keys take one hash aggregate
//! each; `sql` rules run as written (placeholders replaced). Failing row-level checks fetch up
//! to [`SAMPLES`] failing rows, without the columns the contract classifies as PII.

use std::collections::HashMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use serde_json::{Map, Value};
use tessera_core::{Bound, Check, CheckKind, DatasetSchema, Severity, Unit};

use crate::error::{QualityError, Result};

/// Failing rows kept per check.
pub const SAMPLES: usize = 5;

/// How a check came out. A run's result is the worst of its checks' (error > failed > warning
/// > passed), as in datacontract-cli.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Passed,
    Warning,
    Failed,
    /// The check could not be measured (e.g. its SQL does not run).
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Warning => "warning",
            Outcome::Failed => "failed",
            Outcome::Error => "error",
        }
    }
}

/// One measured check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub check: Check,
    pub outcome: Outcome,
    /// What was measured, in the check's unit (rows, percent, seconds, or the SQL's number).
    pub measured: Option<f64>,
    /// The threshold as text, e.g. `= 0`, `< 10 %`, `<= 300 s`.
    pub threshold: String,
    /// Why it did not pass, or what was measured when it did.
    pub reason: String,
    /// Up to [`SAMPLES`] failing rows (PII columns left out), as JSON objects.
    pub samples: Vec<Map<String, Value>>,
}

/// Where the table comes from, for the checks that need more than its rows.
#[derive(Debug, Clone, Default)]
pub struct TableFacts {
    /// Seconds since the Unix epoch, "now" for freshness and retention.
    pub now_seconds: f64,
    /// When the table last committed, for freshness without a timestamp column.
    pub last_commit_seconds: Option<f64>,
    /// Whether the stored types are meaningful (false for CSV and JSON files, whose types are
    /// only inferred): `field_type` checks are skipped when they are not.
    pub typed: bool,
}

/// Measures `checks` over `table` (a name `ctx` resolves, e.g. `domain.product.dataset`).
/// `schema` is the contract's view of the dataset (for PII columns and column types).
pub async fn run_checks(
    ctx: &SessionContext,
    table: &str,
    schema: &DatasetSchema,
    checks: &[Check],
    facts: &TableFacts,
) -> Result<Vec<CheckResult>> {
    let data_schema = ctx
        .table(table)
        .await
        .map_err(|e| QualityError::Query(format!("{table}: {e}")))?
        .schema()
        .as_arrow()
        .clone();
    let present = |c: &str| data_schema.field_with_name(c).is_ok();

    // Checks on a column the data does not have only report that it is missing.
    let runnable: Vec<&Check> = checks
        .iter()
        .filter(|c| match (&c.kind, &c.field) {
            (CheckKind::FieldIsPresent, _) => true,
            (CheckKind::FieldType { .. }, _) if !facts.typed => false,
            (_, Some(f)) => present(f) && columns_of(c).iter().all(|k| present(k)),
            (_, None) => columns_of(c).iter().all(|k| present(k)),
        })
        .collect();

    let mut fused = FusedAggregate::default();
    let mut plans: Vec<Plan> = Vec::with_capacity(runnable.len());
    for check in &runnable {
        plans.push(plan(check, &mut fused, &data_schema));
    }
    let aggregates = fused.run(ctx, table).await?;
    let row_count = aggregates.first().copied().flatten().unwrap_or(0.0);

    let pii: Vec<&str> = schema
        .columns
        .iter()
        .filter(|c| c.is_personal_data())
        .map(|c| c.name.as_str())
        .collect();
    let shown_columns: Vec<String> = data_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| !pii.contains(&n.as_str()))
        .collect();

    let mut results = Vec::with_capacity(runnable.len());
    for (check, plan) in runnable.into_iter().zip(plans) {
        let measured: std::result::Result<Option<f64>, String> = match &plan {
            Plan::Present => Ok(Some(
                if present(check.field.as_deref().unwrap_or_default()) {
                    0.0
                } else {
                    1.0
                },
            )),
            Plan::Type { actual } => Ok(Some(match (&check.kind, actual) {
                (
                    CheckKind::FieldType {
                        expected,
                        zone_stated,
                    },
                    Some(actual),
                ) if compatible(expected, actual)
                    || (!zone_stated
                        && matches!(
                            (expected, actual),
                            (DataType::Timestamp(..), DataType::Timestamp(..))
                        )) =>
                {
                    0.0
                }
                _ => 1.0,
            })),
            Plan::Count { index, .. } => Ok(aggregates[*index]),
            Plan::Extra { non_null, distinct } => Ok(Some(
                aggregates[*non_null].unwrap_or(0.0) - aggregates[*distinct].unwrap_or(0.0),
            )),
            Plan::Compound { columns } => compound_duplicates(ctx, table, columns).await.map(Some),
            Plan::Age { index } => Ok(aggregates[*index].map(|t| facts.now_seconds - t)),
            Plan::Commit => Ok(facts.last_commit_seconds.map(|t| facts.now_seconds - t)),
            Plan::Sql { query } => {
                scalar(ctx, &substitute(query, table, check.field.as_deref())).await
            }
        };
        let mut result = judge(check, measured, row_count);
        if let (
            Plan::Type {
                actual: Some(actual),
            },
            CheckKind::FieldType { expected, .. },
        ) = (&plan, &check.kind)
        {
            result.reason = if result.outcome == Outcome::Passed {
                format!("the column is {actual}")
            } else {
                format!("expected {expected}, found {actual}")
            };
        }
        if result.outcome != Outcome::Passed && result.outcome != Outcome::Error {
            result.samples = samples(ctx, table, check, &plan, &shown_columns)
                .await
                .unwrap_or_default();
        }
        results.push(result);
    }
    Ok(results)
}

/// The columns a check reads besides its field.
fn columns_of(check: &Check) -> Vec<String> {
    match &check.kind {
        CheckKind::PrimaryKeyUnique { columns }
        | CheckKind::DuplicateValues { columns }
        | CheckKind::Completeness { columns } => columns.clone(),
        CheckKind::Freshness { column: Some(c) } | CheckKind::Retention { column: c } => {
            vec![c.clone()]
        }
        _ => check.field.iter().cloned().collect(),
    }
}

/// Whether stored data of type `actual` keeps the promise of a contract type `expected`: the
/// same kind of value, not necessarily the same width — any integer for an integer, any float
/// or decimal for a number, any string or binary encoding, a timestamp with a
/// time zone exactly when one is expected; lists, structs and maps compared inside.
pub fn compatible(expected: &DataType, actual: &DataType) -> bool {
    use DataType::*;
    let string = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    let binary = |t: &DataType| matches!(t, Binary | LargeBinary | BinaryView | FixedSizeBinary(_));
    match (expected, actual) {
        (e, a) if e == a => true,
        (e, a) if e.is_integer() && a.is_integer() => true,
        // ODCS `number`: binary floats and decimals are both numbers with a fraction.
        (e, a)
            if (e.is_floating() || matches!(e, Decimal128(..) | Decimal256(..)))
                && (a.is_floating() || matches!(a, Decimal128(..) | Decimal256(..))) =>
        {
            true
        }
        (e, a) if string(e) && string(a) => true,
        (e, a) if binary(e) && binary(a) => true,
        (Date32 | Date64, Date32 | Date64) => true,
        (Timestamp(_, e), Timestamp(_, a)) => e.is_some() == a.is_some(),
        (
            List(e) | LargeList(e) | ListView(e),
            List(a) | LargeList(a) | ListView(a) | FixedSizeList(a, _),
        ) => compatible(e.data_type(), a.data_type()),
        (Struct(e), Struct(a)) => e.iter().all(|f| {
            a.iter()
                .find(|g| g.name() == f.name())
                .is_some_and(|g| compatible(f.data_type(), g.data_type()))
        }),
        (Map(e, _), Map(a, _)) => {
            compatible(e.data_type(), a.data_type()) || matches!(a.data_type(), Struct(_))
        }
        (e, Dictionary(_, a)) => compatible(e, a),
        _ => false,
    }
}

/// How one check is measured.
#[derive(Debug)]
enum Plan {
    Present,
    Type {
        actual: Option<DataType>,
    },
    /// A count in the fused aggregate; `predicate` selects the failing rows (for samples).
    Count {
        index: usize,
        predicate: String,
    },
    /// `count(non-null) - count(distinct)` from the fused aggregate.
    Extra {
        non_null: usize,
        distinct: usize,
    },
    /// Duplicate rows over several columns, by their own hash aggregate.
    Compound {
        columns: Vec<String>,
    },
    /// Seconds since a timestamp from the fused aggregate.
    Age {
        index: usize,
    },
    /// Seconds since the last commit.
    Commit,
    Sql {
        query: String,
    },
}

/// The expressions of the one aggregate query, deduplicated. Expression 0 is `count(*)`.
#[derive(Default)]
struct FusedAggregate {
    expressions: Vec<String>,
    index: HashMap<String, usize>,
}

impl FusedAggregate {
    fn add(&mut self, expression: String) -> usize {
        if self.expressions.is_empty() {
            self.expressions.push("count(*)".into());
            self.index.insert("count(*)".into(), 0);
        }
        if let Some(i) = self.index.get(&expression) {
            return *i;
        }
        self.expressions.push(expression.clone());
        self.index.insert(expression, self.expressions.len() - 1);
        self.expressions.len() - 1
    }

    fn count_where(&mut self, predicate: &str) -> usize {
        self.add(format!("count(*) FILTER (WHERE {predicate})"))
    }

    /// Runs the query; every value as f64 (timestamps as seconds since the epoch).
    async fn run(mut self, ctx: &SessionContext, table: &str) -> Result<Vec<Option<f64>>> {
        self.add("count(*)".into());
        let select: Vec<String> = self
            .expressions
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{e} AS m{i}"))
            .collect();
        let sql = format!("SELECT {} FROM {table}", select.join(", "));
        let batches = collect(ctx, &sql).await?;
        let batch = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .ok_or_else(|| QualityError::Query("the check query returned no row".into()))?;
        (0..batch.num_columns())
            .map(|i| number(batch, i, 0))
            .collect()
    }
}

fn plan(check: &Check, fused: &mut FusedAggregate, data_schema: &Schema) -> Plan {
    let field = check.field.as_deref().map(ident).unwrap_or_default();
    let text = |f: &str| format!("CAST({f} AS VARCHAR)");
    let count = |fused: &mut FusedAggregate, predicate: String| Plan::Count {
        index: fused.count_where(&predicate),
        predicate,
    };
    match &check.kind {
        CheckKind::FieldIsPresent => Plan::Present,
        CheckKind::FieldType { .. } => Plan::Type {
            actual: check
                .field
                .as_deref()
                .and_then(|f| data_schema.field_with_name(f).ok())
                .map(|f| f.data_type().clone()),
        },
        CheckKind::FieldRequired | CheckKind::NullValues => {
            count(fused, format!("{field} IS NULL"))
        }
        CheckKind::MissingValues(values) => {
            let listed = in_list(&field, values, data_schema, check.field.as_deref());
            let predicate = match listed {
                Some(l) => format!("({field} IS NULL OR {l})"),
                None => format!("{field} IS NULL"),
            };
            count(fused, predicate)
        }
        CheckKind::InvalidValues {
            valid_values,
            pattern,
        } => {
            let mut invalid = Vec::new();
            if let Some(values) = valid_values
                && let Some(l) = in_list(&field, values, data_schema, check.field.as_deref())
            {
                invalid.push(format!("NOT {l}"));
            }
            if let Some(p) = pattern {
                invalid.push(format!("NOT regexp_like({}, {})", text(&field), literal(p)));
            }
            let predicate = format!("({field} IS NOT NULL AND ({}))", invalid.join(" OR "));
            count(fused, predicate)
        }
        CheckKind::FieldEnum(values) => {
            let predicate = match in_list(&field, values, data_schema, check.field.as_deref()) {
                Some(l) => format!("({field} IS NOT NULL AND NOT {l})"),
                None => "false".into(),
            };
            count(fused, predicate)
        }
        CheckKind::FieldMinLength(n) => {
            count(fused, format!("character_length({}) < {n}", text(&field)))
        }
        CheckKind::FieldMaxLength(n) => {
            count(fused, format!("character_length({}) > {n}", text(&field)))
        }
        CheckKind::FieldMinimum(bound, exclusive) => {
            let op = if *exclusive { "<=" } else { "<" };
            count(fused, format!("{field} {op} {}", bound_literal(bound)))
        }
        CheckKind::FieldMaximum(bound, exclusive) => {
            let op = if *exclusive { ">=" } else { ">" };
            count(fused, format!("{field} {op} {}", bound_literal(bound)))
        }
        CheckKind::FieldRegex(p) => count(
            fused,
            format!(
                "({field} IS NOT NULL AND NOT regexp_like({}, {}))",
                text(&field),
                literal(p)
            ),
        ),
        CheckKind::RowCount => Plan::Count {
            index: fused.add("count(*)".into()),
            predicate: "true".into(),
        },
        CheckKind::FieldUnique => single_distinct(fused, &field),
        CheckKind::PrimaryKeyUnique { columns } | CheckKind::DuplicateValues { columns } => {
            if columns.len() == 1 {
                single_distinct(fused, &ident(&columns[0]))
            } else {
                Plan::Compound {
                    columns: columns.clone(),
                }
            }
        }
        CheckKind::Freshness { column: Some(c) } => Plan::Age {
            index: fused.add(format!("max({})", epoch(&ident(c)))),
        },
        CheckKind::Freshness { column: None } => Plan::Commit,
        CheckKind::Retention { column } => Plan::Age {
            index: fused.add(format!("min({})", epoch(&ident(column)))),
        },
        CheckKind::Sql { query } => Plan::Sql {
            query: query.clone(),
        },
        CheckKind::Completeness { columns } => {
            let missing: Vec<String> = columns
                .iter()
                .map(|c| format!("{} IS NULL", ident(c)))
                .collect();
            count(fused, format!("({})", missing.join(" OR ")))
        }
    }
}

/// Duplicates of one column: the non-null count minus the distinct count.
fn single_distinct(fused: &mut FusedAggregate, column: &str) -> Plan {
    let non_null = fused.add(format!("count({column})"));
    let distinct = fused.add(format!("count(DISTINCT {column})"));
    Plan::Extra { non_null, distinct }
}

/// Seconds since the epoch of a timestamp or date column.
fn epoch(column: &str) -> String {
    format!("CAST(to_unixtime({column}) AS DOUBLE)")
}

/// `column IN (...)` with the values as literals of the column's kind; `None` for no values.
fn in_list(column: &str, values: &[Value], schema: &Schema, name: Option<&str>) -> Option<String> {
    if values.is_empty() {
        return None;
    }
    let numeric = name
        .and_then(|n| schema.field_with_name(n).ok())
        .is_some_and(|f| f.data_type().is_numeric());
    let items: Vec<String> = values
        .iter()
        .map(|v| match v {
            Value::Number(n) if numeric => n.to_string(),
            Value::String(s) => literal(s),
            other => literal(&other.to_string()),
        })
        .collect();
    if numeric {
        Some(format!("{column} IN ({})", items.join(", ")))
    } else {
        Some(format!(
            "CAST({column} AS VARCHAR) IN ({})",
            items.join(", ")
        ))
    }
}

fn bound_literal(bound: &Bound) -> String {
    match bound {
        Bound::Number(n) => format!("{n}"),
        Bound::Text(t) => literal(t),
    }
}

/// A SQL identifier, quoted.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Replaces the placeholders of an ODCS `sql` rule: `{object}` and `{property}` (the
/// standard's), and `${table}`, `${model}`, `${schema}`, `${column}`, `${field}`
/// (datacontract-cli's).
pub fn substitute(query: &str, table: &str, column: Option<&str>) -> String {
    tessera_core::substitute_placeholders(query, table, &column.map(ident).unwrap_or_default())
}

/// Runs one of the checks' queries: planned like any query (read-only, bounded), collected.
async fn collect(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    let df = tessera_query::plan_sql(ctx, sql)
        .await
        .map_err(|e| QualityError::Query(e.to_string()))?;
    df.collect()
        .await
        .map_err(|e| QualityError::Query(tessera_query::QueryError::from_datafusion(e).to_string()))
}

/// The one number a `sql` rule returns.
async fn scalar(ctx: &SessionContext, sql: &str) -> std::result::Result<Option<f64>, String> {
    let batches = collect(ctx, sql).await.map_err(|e| e.to_string())?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let batch = batches.iter().find(|b| b.num_rows() > 0);
    match batch {
        Some(b) if rows == 1 && b.num_columns() == 1 => number(b, 0, 0).map_err(|e| e.to_string()),
        _ => Err(format!(
            "the query must return one row with one number; it returned {rows} row(s) of {} column(s)",
            batches.first().map_or(0, |b| b.num_columns())
        )),
    }
}

/// A cell as f64: numbers, booleans (1/0), timestamps and dates (seconds since the epoch).
fn number(batch: &RecordBatch, column: usize, row: usize) -> Result<Option<f64>> {
    let array = batch.column(column);
    if array.is_null(row) {
        return Ok(None);
    }
    let as_f64 = match array.data_type() {
        DataType::Boolean => {
            return Ok(Some(if array.as_boolean().value(row) {
                1.0
            } else {
                0.0
            }));
        }
        t if t.is_numeric() => arrow::compute::cast(array, &DataType::Float64)?,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => {
            let micros = arrow::compute::cast(
                array,
                &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
            )?;
            let micros = arrow::compute::cast(&micros, &DataType::Int64)?;
            let v = micros
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(row);
            return Ok(Some(v as f64 / 1e6));
        }
        other => {
            return Err(QualityError::Query(format!(
                "expected a number, got {other}"
            )));
        }
    };
    Ok(Some(as_f64.as_primitive::<Float64Type>().value(row)))
}

async fn compound_duplicates(
    ctx: &SessionContext,
    table: &str,
    columns: &[String],
) -> std::result::Result<f64, String> {
    let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let not_null: Vec<String> = cols.iter().map(|c| format!("{c} IS NOT NULL")).collect();
    let sql = format!(
        "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {table} WHERE {} GROUP BY {} HAVING count(*) > 1)",
        not_null.join(" AND "),
        cols.join(", ")
    );
    scalar(ctx, &sql).await.map(|v| v.unwrap_or(0.0))
}

/// Compares the measurement with the threshold.
fn judge(
    check: &Check,
    measured: std::result::Result<Option<f64>, String>,
    row_count: f64,
) -> CheckResult {
    let threshold = match (check.unit, &check.kind) {
        (Unit::Percent, _) => format!("{} %", check.operator),
        (_, CheckKind::Freshness { .. } | CheckKind::Retention { .. }) => {
            format!("{} s", check.operator)
        }
        _ => check.operator.to_string(),
    };
    let mut result = CheckResult {
        check: check.clone(),
        outcome: Outcome::Passed,
        measured: None,
        threshold,
        reason: String::new(),
        samples: Vec::new(),
    };
    let value = match measured {
        Err(e) => {
            result.outcome = Outcome::Error;
            result.reason = format!("could not be measured: {e}");
            return result;
        }
        Ok(None) => match check.kind {
            CheckKind::Freshness { .. } | CheckKind::Retention { .. } => {
                result.outcome = failed(check.severity);
                result.reason = "no data to measure the age of".into();
                return result;
            }
            _ => 0.0,
        },
        Ok(Some(v)) => v,
    };
    let value = match (check.unit, &check.kind) {
        // Completeness counts the incomplete rows and is judged on the complete ones.
        (_, CheckKind::Completeness { .. }) if row_count > 0.0 => 100.0 - value / row_count * 100.0,
        (_, CheckKind::Completeness { .. }) => 100.0,
        (Unit::Percent, _) if row_count > 0.0 => value / row_count * 100.0,
        (Unit::Percent, _) => 0.0,
        (Unit::Rows, _) => value,
    };
    result.measured = Some(value);
    let passes = check.operator.passes(value);
    result.outcome = if passes {
        Outcome::Passed
    } else {
        failed(check.severity)
    };
    result.reason = describe(check, value, row_count, passes);
    result
}

fn failed(severity: Severity) -> Outcome {
    if severity.blocks() {
        Outcome::Failed
    } else {
        Outcome::Warning
    }
}

fn describe(check: &Check, value: f64, rows: f64, passes: bool) -> String {
    let v = if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value:.4}")
    };
    let verdict = if passes { "meets" } else { "does not meet" };
    let measured = match (&check.kind, check.unit) {
        (CheckKind::FieldIsPresent, _) => {
            return if passes {
                "the column is present".into()
            } else {
                format!(
                    "column {} is missing",
                    check.field.as_deref().unwrap_or("?")
                )
            };
        }
        (CheckKind::FieldType { expected, .. }, _) => {
            return if passes {
                format!("the column is {expected}")
            } else {
                format!("expected type {expected}")
            };
        }
        (CheckKind::Completeness { .. }, _) => format!("{v} % of {rows} rows complete"),
        (_, Unit::Percent) => format!("{v} % of {rows} rows"),
        (CheckKind::RowCount, _) => format!("{v} rows"),
        (CheckKind::Sql { .. }, _) => format!("the query returned {v}"),
        (CheckKind::Freshness { .. } | CheckKind::Retention { .. }, _) => {
            format!("{} old", age(value))
        }
        (
            CheckKind::FieldUnique
            | CheckKind::PrimaryKeyUnique { .. }
            | CheckKind::DuplicateValues { .. },
            _,
        ) => {
            format!("{v} duplicate row(s)")
        }
        _ => format!("{v} failing row(s) of {rows}"),
    };
    let threshold = match (&check.kind, check.unit) {
        (_, Unit::Percent) => format!("{} %", check.operator),
        (CheckKind::Freshness { .. } | CheckKind::Retention { .. }, _) => {
            format!("{} s", check.operator)
        }
        _ => check.operator.to_string(),
    };
    format!("{measured}, which {verdict} {threshold}")
}

/// Up to [`SAMPLES`] rows that fail a row-level check, or the duplicated keys of a uniqueness
/// check, without PII columns.
async fn samples(
    ctx: &SessionContext,
    table: &str,
    check: &Check,
    plan: &Plan,
    columns: &[String],
) -> Result<Vec<Map<String, Value>>> {
    let sql = match plan {
        Plan::Count { predicate, .. } if !matches!(check.kind, CheckKind::RowCount) => {
            if columns.is_empty() {
                return Ok(Vec::new());
            }
            let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
            format!(
                "SELECT {} FROM {table} WHERE {predicate} LIMIT {SAMPLES}",
                cols.join(", ")
            )
        }
        Plan::Extra { .. } | Plan::Compound { .. } => {
            let key = columns_of(check);
            if key.iter().any(|k| !columns.contains(k)) {
                return Ok(Vec::new());
            }
            let cols: Vec<String> = key.iter().map(|c| ident(c)).collect();
            format!(
                "SELECT {cols}, count(*) AS duplicate_count FROM {table} WHERE {not_null} GROUP BY {cols} HAVING count(*) > 1 ORDER BY {cols} LIMIT {SAMPLES}",
                cols = cols.join(", "),
                not_null = cols
                    .iter()
                    .map(|c| format!("{c} IS NOT NULL"))
                    .collect::<Vec<_>>()
                    .join(" AND "),
            )
        }
        _ => return Ok(Vec::new()),
    };
    let batches = collect(ctx, &sql).await?;
    let mut buf = Vec::new();
    {
        let mut writer = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut buf);
        for b in &batches {
            writer.write(b)?;
        }
        writer.finish()?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    Ok(serde_json::from_slice(&buf).unwrap_or_default())
}

/// A duration in seconds for people: `42 s`, `7.5 min`, `3.2 h`, `27.4 days`.
fn age(seconds: f64) -> String {
    match seconds.abs() {
        s if s >= 86_400.0 => format!("{:.1} days", seconds / 86_400.0),
        s if s >= 3_600.0 => format!("{:.1} h", seconds / 3_600.0),
        s if s >= 60.0 => format!("{:.1} min", seconds / 60.0),
        _ => format!("{seconds:.0} s"),
    }
}

/// Raw measurements of count-style checks (see `Check::counts_rows`) over `table`, in one fused
/// scan: the number of rows, and per check the number of rows it counts (failing rows, or all
/// rows for a row count), before units and thresholds. Counts of two tables add up, which is
/// what lets the commit gate measure a batch alone and add what it knows of the dataset.
pub async fn count_measures(
    ctx: &SessionContext,
    table: &str,
    checks: &[&Check],
) -> Result<(f64, Vec<f64>)> {
    let data_schema = ctx
        .table(table)
        .await
        .map_err(|e| QualityError::Query(format!("{table}: {e}")))?
        .schema()
        .as_arrow()
        .clone();
    let mut fused = FusedAggregate::default();
    let indexes: Vec<Option<usize>> = checks
        .iter()
        .map(|c| match plan(c, &mut fused, &data_schema) {
            Plan::Count { index, .. } => Some(index),
            _ => None,
        })
        .collect();
    let aggregates = fused.run(ctx, table).await?;
    let rows = aggregates.first().copied().flatten().unwrap_or(0.0);
    Ok((
        rows,
        indexes
            .into_iter()
            .map(|i| i.and_then(|i| aggregates[i]).unwrap_or(0.0))
            .collect(),
    ))
}

/// Non-null keys and distinct keys over `columns` of `table` (one hash aggregate that reads
/// only the key columns).
pub async fn key_counts(
    ctx: &SessionContext,
    table: &str,
    columns: &[String],
) -> Result<(f64, f64)> {
    let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let not_null = all_present(&cols);
    let sql = format!(
        "SELECT count(*) AS keys, (SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {not_null} GROUP BY {group})) AS distinct_keys FROM {table} WHERE {not_null}",
        group = cols.join(", ")
    );
    let batches = collect(ctx, &sql).await?;
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| QualityError::Query("no row".into()))?;
    Ok((
        number(batch, 0, 0)?.unwrap_or(0.0),
        number(batch, 1, 0)?.unwrap_or(0.0),
    ))
}

/// How many distinct keys of table `incoming` (over `columns`) are already in `table`: a join
/// that reads only the key columns of `table`.
pub async fn shared_keys(
    ctx: &SessionContext,
    incoming: &str,
    table: &str,
    columns: &[String],
) -> Result<f64> {
    let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let on = cols
        .iter()
        .map(|c| format!("t.{c} = b.{c}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let not_null = all_present(&cols);
    let sql = format!(
        "SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {incoming} WHERE {not_null}) b \
         WHERE EXISTS (SELECT 1 FROM (SELECT {keys} FROM {table}) t WHERE {on})",
        keys = cols.join(", ")
    );
    let batches = collect(ctx, &sql).await?;
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| QualityError::Query("no row".into()))?;
    Ok(number(batch, 0, 0)?.unwrap_or(0.0))
}

/// `c1 IS NOT NULL AND c2 IS NOT NULL …` over quoted columns: the rows that have a key.
pub(crate) fn all_present(quoted: &[String]) -> String {
    quoted
        .iter()
        .map(|c| format!("{c} IS NOT NULL"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// A check judged on a raw measurement (what it counts, or the number a `sql` rule returned)
/// for a table of `rows` rows: the unit applied, the threshold compared, the reason written.
pub fn verdict(
    check: &Check,
    raw: std::result::Result<Option<f64>, String>,
    rows: f64,
) -> CheckResult {
    judge(check, raw, rows)
}

/// The number a `sql` rule returns over `table`.
pub async fn sql_measure(
    ctx: &SessionContext,
    table: &str,
    check: &Check,
) -> std::result::Result<Option<f64>, String> {
    match &check.kind {
        CheckKind::Sql { query } => {
            scalar(ctx, &substitute(query, table, check.field.as_deref())).await
        }
        _ => Err("not a sql rule".into()),
    }
}
