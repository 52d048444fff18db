//! Row-level rules over Arrow arrays. Each rule becomes a boolean mask ("row passes") computed
//! with vectorised kernels; a null value passes every rule but `required` (as in SQL and JSON
//! Schema, where an absent value is not checked against a bound).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, BooleanBuilder, Float64Array, StringArray};
use arrow::compute::kernels::cmp;
use arrow::compute::{CastOptions, cast_with_options, is_not_null};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use regex::Regex;
use tessera_core::{Bound, DatasetSchema, RowRule, RowRuleKind};

use crate::error::{QualityError, Result};

/// A rule prepared for one column type.
struct Compiled {
    rule: RowRule,
    column_index: usize,
    check: Check,
}

enum Check {
    Required,
    MinChars(u64),
    MaxChars(u64),
    Pattern(Regex),
    /// Compare (cast to Float64 when `numeric`) against a one-element array of the column type.
    Compare {
        bound: ArrayRef,
        numeric: bool,
        lower: bool,
        exclusive: bool,
    },
    OneOf(ArrayRef),
}

/// The row-level rules of one dataset, ready to run on batches with its Arrow schema.
pub struct RowValidator {
    rules: Vec<Compiled>,
}

/// One broken rule in one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub rule: &'static str,
    pub column: String,
    pub reason: String,
}

/// The verdict on a batch: which rows pass, and for the others every rule they broke.
#[derive(Debug, Default)]
pub struct RowVerdicts {
    /// Row index → violations, for every failing row, in row order.
    pub failures: BTreeMap<usize, Vec<Violation>>,
}

impl RowVerdicts {
    /// Adds a violation for a row (used by callers for type errors found while casting).
    pub fn add(&mut self, row: usize, violation: Violation) {
        self.failures.entry(row).or_default().push(violation);
    }

    /// Whether `row` already has a violation of `rule` on `column`.
    pub fn has(&self, row: usize, rule: &str, column: &str) -> bool {
        self.failures
            .get(&row)
            .is_some_and(|vs| vs.iter().any(|v| v.rule == rule && v.column == column))
    }

    /// A mask with `true` for rows without violations.
    pub fn passing_mask(&self, num_rows: usize) -> BooleanArray {
        let mut mask = vec![true; num_rows];
        for row in self.failures.keys() {
            mask[*row] = false;
        }
        BooleanArray::from(mask)
    }
}

impl RowValidator {
    /// Prepares the rules of `dataset` for batches of its Arrow schema.
    pub fn new(dataset: &DatasetSchema) -> Result<Self> {
        let schema = dataset
            .arrow_schema()
            .map_err(|e| QualityError::InvalidRule {
                column: String::new(),
                rule: "type".into(),
                reason: e.to_string(),
            })?;
        let mut rules = Vec::new();
        for rule in dataset.row_rules() {
            let column_index = schema.index_of(&rule.column)?;
            let data_type = schema.field(column_index).data_type().clone();
            let check = compile(&rule, &data_type)?;
            rules.push(Compiled {
                rule,
                column_index,
                check,
            });
        }
        Ok(Self { rules })
    }

    /// Evaluates every rule on a batch of the dataset's schema.
    pub fn check(&self, batch: &RecordBatch) -> Result<RowVerdicts> {
        self.check_showing(batch, batch.columns())
    }

    /// Like [`Self::check`], but quotes values in reasons from `as_received` (the columns before
    /// they were cast, same order), so a reason shows what the producer sent.
    pub fn check_showing(
        &self,
        batch: &RecordBatch,
        as_received: &[ArrayRef],
    ) -> Result<RowVerdicts> {
        let mut verdicts = RowVerdicts::default();
        let format = FormatOptions::default().with_null("null");
        for compiled in &self.rules {
            let column = batch.column(compiled.column_index);
            let passes = evaluate(&compiled.check, column)?;
            if passes.true_count() == passes.len() {
                continue;
            }
            let shown = &as_received[compiled.column_index];
            let formatter = ArrayFormatter::try_new(shown.as_ref(), &format)?;
            for row in 0..passes.len() {
                if !passes.value(row) {
                    let value = formatter.value(row).to_string();
                    verdicts.add(
                        row,
                        Violation {
                            rule: compiled.rule.name(),
                            column: compiled.rule.column.clone(),
                            reason: reason(&compiled.rule, &value),
                        },
                    );
                }
            }
        }
        Ok(verdicts)
    }
}

fn reason(rule: &RowRule, value: &str) -> String {
    match rule.kind {
        RowRuleKind::Required => format!("{} is required but missing", rule.column),
        _ => {
            let value = clip(value);
            format!("{}: {value:?} is not {}", rule.column, rule.expectation())
        }
    }
}

fn clip(value: &str) -> String {
    match value.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &value[..i]),
        None => value.to_string(),
    }
}

fn is_numeric(t: &DataType) -> bool {
    t.is_integer()
        || t.is_floating()
        || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
}

fn compile(rule: &RowRule, data_type: &DataType) -> Result<Check> {
    let invalid = |reason: String| QualityError::InvalidRule {
        column: rule.column.clone(),
        rule: rule.name().to_string(),
        reason,
    };
    let text_only = |check: Check| {
        if matches!(
            data_type,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            Ok(check)
        } else {
            Err(invalid(format!(
                "applies to text, but the column is {data_type}"
            )))
        }
    };
    // A one-element array holding `bound` in the type the column is compared in.
    let bound_array = |bound: &Bound| -> Result<(ArrayRef, bool)> {
        match bound {
            Bound::Number(n) if is_numeric(data_type) => {
                Ok((Arc::new(Float64Array::from(vec![*n])) as ArrayRef, true))
            }
            Bound::Number(n) => Err(invalid(format!(
                "a numeric bound {n} on a {data_type} column"
            ))),
            Bound::Text(t) => {
                let text: ArrayRef = Arc::new(StringArray::from(vec![t.as_str()]));
                let target = if is_numeric(data_type) {
                    &DataType::Float64
                } else {
                    data_type
                };
                let cast = cast_with_options(
                    &text,
                    target,
                    &CastOptions {
                        safe: false,
                        ..Default::default()
                    },
                )
                .map_err(|e| invalid(format!("bound {t:?} is not a {target}: {e}")))?;
                Ok((cast, is_numeric(data_type)))
            }
        }
    };
    Ok(match &rule.kind {
        RowRuleKind::Required => Check::Required,
        RowRuleKind::MinLength(n) => text_only(Check::MinChars(*n))?,
        RowRuleKind::MaxLength(n) => text_only(Check::MaxChars(*n))?,
        RowRuleKind::Pattern(p) => text_only(Check::Pattern(
            Regex::new(p).map_err(|e| invalid(e.to_string()))?,
        ))?,
        RowRuleKind::Minimum(b, exclusive) | RowRuleKind::Maximum(b, exclusive) => {
            let (bound, numeric) = bound_array(b)?;
            Check::Compare {
                bound,
                numeric,
                lower: matches!(rule.kind, RowRuleKind::Minimum(..)),
                exclusive: *exclusive,
            }
        }
        RowRuleKind::ValidValues(values) => {
            let texts: Vec<String> = values
                .iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            let text: ArrayRef = Arc::new(StringArray::from(texts));
            let allowed = cast_with_options(
                &text,
                data_type,
                &CastOptions {
                    safe: false,
                    ..Default::default()
                },
            )
            .map_err(|e| invalid(format!("valid values are not all {data_type}: {e}")))?;
            Check::OneOf(allowed)
        }
    })
}

/// `true` where the row passes; nulls pass every check but `Required`.
fn evaluate(check: &Check, column: &ArrayRef) -> Result<BooleanArray> {
    Ok(match check {
        Check::Required => is_not_null(column.as_ref())?,
        Check::MinChars(n) => by_text(column, |s| s.chars().count() as u64 >= *n)?,
        Check::MaxChars(n) => by_text(column, |s| s.chars().count() as u64 <= *n)?,
        Check::Pattern(re) => by_text(column, |s| re.is_match(s))?,
        Check::Compare {
            bound,
            numeric,
            lower,
            exclusive,
        } => {
            let values = if *numeric {
                cast_with_options(column, &DataType::Float64, &CastOptions::default())?
            } else {
                column.clone()
            };
            let bound = arrow::array::Scalar::new(bound.clone());
            let result = match (lower, exclusive) {
                (true, false) => cmp::gt_eq(&values, &bound)?,
                (true, true) => cmp::gt(&values, &bound)?,
                (false, false) => cmp::lt_eq(&values, &bound)?,
                (false, true) => cmp::lt(&values, &bound)?,
            };
            nulls_pass(&result)
        }
        Check::OneOf(allowed) => {
            let mut any = BooleanArray::from(vec![false; column.len()]);
            for i in 0..allowed.len() {
                let one = arrow::array::Scalar::new(allowed.slice(i, 1));
                let eq = cmp::eq(column, &one)?;
                any = arrow::compute::or_kleene(&any, &eq)?;
            }
            // A null value is not checked.
            let null_ok = arrow::compute::is_null(column.as_ref())?;
            arrow::compute::or_kleene(&nulls_pass_false(&any), &null_ok)?
        }
    })
}

fn by_text(column: &ArrayRef, ok: impl Fn(&str) -> bool) -> Result<BooleanArray> {
    let text = cast_with_options(column, &DataType::Utf8, &CastOptions::default())?;
    let text = text
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("cast to Utf8 yields a StringArray");
    let mut out = BooleanBuilder::with_capacity(text.len());
    for value in text.iter() {
        out.append_value(value.is_none_or(&ok));
    }
    Ok(out.finish())
}

/// Null comparison results (null inputs) count as passing.
fn nulls_pass(result: &BooleanArray) -> BooleanArray {
    result.iter().map(|v| Some(v.unwrap_or(true))).collect()
}

/// Null results count as not matching.
fn nulls_pass_false(result: &BooleanArray) -> BooleanArray {
    result.iter().map(|v| Some(v.unwrap_or(false))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use tessera_core::{Column, Constraints, LogicalType, Name};

    fn col(name: &str, t: LogicalType, c: Constraints, required: bool) -> Column {
        Column {
            logical_type: Some(t),
            required,
            constraints: c,
            ..Column::new(name)
        }
    }

    fn dataset() -> DatasetSchema {
        DatasetSchema {
            name: Name::parse("orders").unwrap(),
            description: None,
            quality: Vec::new(),
            columns: vec![
                col("id", LogicalType::Integer, Constraints::default(), true),
                col(
                    "amount",
                    LogicalType::Integer,
                    Constraints {
                        minimum: Some(Bound::Number(0.0)),
                        exclusive_maximum: Some(Bound::Number(100.0)),
                        ..Default::default()
                    },
                    false,
                ),
                col(
                    "status",
                    LogicalType::String,
                    Constraints {
                        valid_values: Some(vec!["open".into(), "shipped".into()]),
                        max_length: Some(7),
                        pattern: Some("^[a-z]+$".into()),
                        ..Default::default()
                    },
                    false,
                ),
                col(
                    "placed",
                    LogicalType::Timestamp,
                    Constraints {
                        minimum: Some(Bound::Text("2020-01-01T00:00:00Z".into())),
                        ..Default::default()
                    },
                    false,
                ),
            ],
        }
    }

    #[test]
    fn every_broken_rule_is_reported_per_row() {
        let ds = dataset();
        let batch = RecordBatch::try_new(
            ds.arrow_schema().unwrap(),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3), Some(4)])),
                Arc::new(Int64Array::from(vec![Some(5), Some(-1), Some(100), None])),
                Arc::new(StringArray::from(vec![
                    Some("open"),
                    Some("OPEN"),
                    None,
                    Some("cancelled"),
                ])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![
                        Some(1_700_000_000_000_000),
                        None,
                        Some(0),
                        None,
                    ])
                    .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        let verdicts = RowValidator::new(&ds).unwrap().check(&batch).unwrap();
        let summary: Vec<(usize, Vec<&str>)> = verdicts
            .failures
            .iter()
            .map(|(row, v)| (*row, v.iter().map(|v| v.rule).collect()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, vec!["required", "minimum", "pattern", "validValues"]),
                (2, vec!["exclusiveMaximum", "minimum"]),
                (3, vec!["maxLength", "validValues"]),
            ]
        );
        let reasons: Vec<&str> = verdicts.failures[&1]
            .iter()
            .map(|v| v.reason.as_str())
            .collect();
        assert_eq!(reasons[0], "id is required but missing");
        assert_eq!(reasons[1], "amount: \"-1\" is not >= 0");
        assert_eq!(
            verdicts.passing_mask(4),
            BooleanArray::from(vec![true, false, false, false])
        );
    }

    #[test]
    fn rules_that_do_not_fit_the_column_are_refused() {
        let ds = DatasetSchema {
            name: Name::parse("t").unwrap(),
            description: None,
            quality: Vec::new(),
            columns: vec![col(
                "n",
                LogicalType::Integer,
                Constraints {
                    max_length: Some(3),
                    ..Default::default()
                },
                false,
            )],
        };
        let err = RowValidator::new(&ds).err().unwrap().to_string();
        assert!(err.contains("applies to text"), "{err}");
    }
}
