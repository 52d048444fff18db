//! `CAST(t AS DATE)` of a timestamp in UTC (every contract `timestamp` column) or without a
//! zone, by arithmetic: the days since the epoch, floored. Arrow's cast goes value by value
//! through chrono, and through chrono-tz for a zone: over 2M events the cast was ~120 ms of a
//! 146 ms query (`GROUP BY CAST(occurred_at AS DATE)`, the commonest query on event data).
//!
//! [`FastUtcDates`] is an optimizer rule that runs after DataFusion's own: it replaces such
//! casts in projections, aggregations and windows with a call of [`UtcDate`], names kept. It
//! leaves filters alone, and by then the filters have been pushed into the scans as they were
//! written, so Parquet statistics still prune by `CAST(t AS DATE) >= …` (a transform's
//! watermark on a day relies on that).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Date32Array};
use arrow::datatypes::{
    ArrowTimestampType, DataType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use chrono::NaiveDate;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, exec_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// The optimizer rule; see the module documentation.
#[derive(Debug)]
pub(crate) struct FastUtcDates {
    utc_date: Arc<ScalarUDF>,
}

impl Default for FastUtcDates {
    fn default() -> Self {
        Self {
            utc_date: Arc::new(ScalarUDF::from(UtcDate::default())),
        }
    }
}

/// Whether a timestamp of this zone (or none) falls on the same date as its UTC instant.
fn dates_as_in_utc(zone: Option<&str>) -> bool {
    zone.is_none_or(crate::functions::is_utc)
}

impl OptimizerRule for FastUtcDates {
    fn name(&self) -> &str {
        "tessera_fast_utc_dates"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        plan.transform_up_with_subqueries(|plan| {
            if !matches!(
                plan,
                LogicalPlan::Projection(_) | LogicalPlan::Aggregate(_) | LogicalPlan::Window(_)
            ) {
                return Ok(Transformed::no(plan));
            }
            let schema = merge_schema(&plan.inputs());
            let names = NamePreserver::new(&plan);
            plan.map_expressions(|expr| {
                let name = names.save(&expr);
                let rewritten = expr.transform_up(|e| self.rewrite_cast(e, &schema))?;
                Ok(if rewritten.transformed {
                    rewritten.update_data(|e| name.restore(e))
                } else {
                    rewritten
                })
            })
        })
    }
}

impl FastUtcDates {
    fn rewrite_cast(&self, expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        let Expr::Cast(Cast { expr: from, field }) = &expr else {
            return Ok(Transformed::no(expr));
        };
        if field.data_type() != &DataType::Date32 {
            return Ok(Transformed::no(expr));
        }
        let utc = matches!(
            from.get_type(schema),
            Ok(DataType::Timestamp(_, zone)) if dates_as_in_utc(zone.as_deref())
        );
        if !utc {
            return Ok(Transformed::no(expr));
        }
        Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(self.utc_date.clone(), vec![from.as_ref().clone()]),
        )))
    }
}

/// `tessera_utc_date(t)`: the date of a timestamp in UTC or without a zone, as
/// `CAST(t AS DATE)` gives it (an error for an instant outside the dates chrono can name, as
/// Arrow's cast has it).
#[derive(Debug, PartialEq, Eq, Hash)]
struct UtcDate {
    signature: Signature,
}

impl Default for UtcDate {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for UtcDate {
    fn name(&self) -> &str {
        "tessera_utc_date"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Date32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return exec_err!("tessera_utc_date takes one timestamp");
        };
        let scalar = matches!(value, ColumnarValue::Scalar(_));
        let array = value.to_array(args.number_rows)?;
        let dates = match array.data_type() {
            DataType::Timestamp(TimeUnit::Second, _) => days::<TimestampSecondType>(&array)?,
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                days::<TimestampMillisecondType>(&array)?
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                days::<TimestampMicrosecondType>(&array)?
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                days::<TimestampNanosecondType>(&array)?
            }
            other => return exec_err!("tessera_utc_date takes a timestamp, not {other}"),
        };
        Ok(if scalar {
            ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&dates, 0)?)
        } else {
            ColumnarValue::Array(dates)
        })
    }
}

/// The days since the epoch of each timestamp of `array`, floored.
fn days<T: ArrowTimestampType>(array: &ArrayRef) -> Result<ArrayRef> {
    let per_day: i64 = match T::UNIT {
        TimeUnit::Second => 86_400,
        TimeUnit::Millisecond => 86_400_000,
        TimeUnit::Microsecond => 86_400_000_000,
        TimeUnit::Nanosecond => 86_400_000_000_000,
    };
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch is a date");
    let first = (NaiveDate::MIN - epoch).num_days();
    let last = (NaiveDate::MAX - epoch).num_days();
    let dates: Date32Array = array.as_primitive::<T>().try_unary(|t| {
        let day = t.div_euclid(per_day);
        if (first..=last).contains(&day) {
            Ok(day as i32)
        } else {
            Err(arrow::error::ArrowError::CastError(format!(
                "Cannot convert {} {t} to datetime",
                std::any::type_name::<T>()
            )))
        }
    })?;
    Ok(Arc::new(dates) as ArrayRef)
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    /// Instants around the epoch, before it, a leap day, the last microsecond of a day, a
    /// null; in UTC, without a zone, at `+00:00`, in nanoseconds and seconds, and in Berlin
    /// (which the rule leaves to Arrow's cast).
    const DATES: &str = r#"
        WITH raw AS (SELECT column1 AS t FROM (VALUES
            ('1969-12-31T23:59:59.999999'), ('1970-01-01T00:00:00'), ('1900-03-01T12:00:00'),
            ('2024-02-29T23:59:59.999999'), ('2024-03-31T00:30:00'), ('2026-12-06T23:45:12.345678'),
            (NULL))),
        t AS (SELECT arrow_cast(t, 'Timestamp(Microsecond, Some("UTC"))') AS utc,
                     arrow_cast(t, 'Timestamp(Microsecond, None)') AS naive,
                     arrow_cast(t, 'Timestamp(Nanosecond, Some("+00:00"))') AS plus_zero,
                     arrow_cast(t, 'Timestamp(Second, None)') AS seconds,
                     arrow_cast(t, 'Timestamp(Millisecond, Some("Europe/Berlin"))') AS berlin
              FROM raw)
        SELECT CAST(utc AS DATE) AS utc_day, CAST(naive AS DATE) AS naive_day,
               CAST(plus_zero AS DATE) AS plus_zero_day, CAST(seconds AS DATE) AS seconds_day,
               CAST(berlin AS DATE) AS berlin_day, count(*) AS n
        FROM t GROUP BY 1, 2, 3, 4, 5 ORDER BY 1 NULLS LAST"#;

    async fn dates(ctx: &SessionContext) -> (String, String) {
        let df = ctx.sql(DATES).await.unwrap();
        let plan = format!(
            "{}",
            df.clone().into_optimized_plan().unwrap().display_indent()
        );
        let batches = df.collect().await.unwrap();
        let shown = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        (shown, plan)
    }

    #[tokio::test]
    async fn dates_of_utc_timestamps_are_what_the_cast_gives_and_computed_by_arithmetic() {
        let tessera = crate::functions::tests::tessera_session();
        let (got, plan) = dates(&tessera).await;
        let (expected, datafusion_plan) = dates(&SessionContext::new()).await;
        assert_eq!(got, expected);
        assert!(got.contains("| 1969-12-31 "), "{got}");
        // The UTC, zone-less and +00:00 casts went to the arithmetic, Berlin's did not.
        assert_eq!(plan.matches("tessera_utc_date(").count(), 4, "{plan}");
        assert!(plan.contains("CAST(t.berlin AS Date32)"), "{plan}");
        assert!(!datafusion_plan.contains("tessera_utc_date"));
    }

    #[tokio::test]
    async fn a_filter_on_the_date_keeps_the_cast_that_statistics_prune_by() {
        let tessera = crate::functions::tests::tessera_session();
        let sql = "SELECT d, count(*) FROM (SELECT CAST(t AS DATE) AS d FROM \
                   (SELECT arrow_cast(column1, 'Timestamp(Microsecond, Some(\"UTC\"))') AS t \
                    FROM (VALUES ('2026-12-05T10:00:00'), ('2026-12-06T10:00:00')))) \
                   WHERE d >= DATE '2026-12-06' GROUP BY d";
        let df = tessera.sql(sql).await.unwrap();
        let plan = format!(
            "{}",
            df.clone().into_optimized_plan().unwrap().display_indent()
        );
        let filter = plan
            .lines()
            .find(|l| l.trim_start().starts_with("Filter:"))
            .unwrap_or_else(|| panic!("no filter in {plan}"));
        assert!(filter.contains("CAST("), "{plan}");
        assert!(!filter.contains("tessera_utc_date"), "{plan}");
        let batches = df.collect().await.unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    }
}
