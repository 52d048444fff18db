//! SQL functions Tessera adds to DataFusion's, registered on every session: the ones contract
//! rules written for datacontract-cli (which runs them on DuckDB) commonly use.
//!
//! - `date_diff(part, start, end)` (also `datediff`): the number of `part` boundaries between
//!   two dates or timestamps, as DuckDB counts them; part is `year`, `quarter`, `month`, `week`,
//!   `day`, `hour`, `minute`, `second` (plural forms too).

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Builder};
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use chrono::{DateTime, Datelike};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Registers Tessera's functions on a session.
pub(crate) fn register_functions(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(DateDiff::default()));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DateDiff {
    signature: Signature,
    aliases: Vec<String>,
}

impl Default for DateDiff {
    fn default() -> Self {
        Self {
            signature: Signature::any(3, Volatility::Immutable),
            aliases: vec!["datediff".to_string()],
        }
    }
}

impl ScalarUDFImpl for DateDiff {
    fn name(&self) -> &str {
        "date_diff"
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [part, start, end] = args.args.as_slice() else {
            return exec_err!("date_diff takes (part, start, end)");
        };
        let part = match part {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(p))
                | ScalarValue::Utf8View(Some(p))
                | ScalarValue::LargeUtf8(Some(p)),
            ) => p.to_ascii_lowercase(),
            _ => return exec_err!("date_diff: the part must be a text literal such as 'day'"),
        };
        let rows = args.number_rows;
        let micros = |v: &ColumnarValue| -> Result<Arc<dyn Array>> {
            let array = v.to_array(rows)?;
            let ts =
                arrow::compute::cast(&array, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            Ok(arrow::compute::cast(&ts, &DataType::Int64)?)
        };
        let (a, b) = (micros(start)?, micros(end)?);
        let (a, b) = (a.as_primitive::<Int64Type>(), b.as_primitive::<Int64Type>());
        let mut out = Int64Builder::with_capacity(rows);
        for i in 0..rows {
            if a.is_null(i) || b.is_null(i) {
                out.append_null();
                continue;
            }
            match boundaries(&part, a.value(i), b.value(i)) {
                Some(n) => out.append_value(n),
                None => {
                    return exec_err!(
                        "date_diff: unknown part {part:?}; use year, quarter, month, week, day, hour, minute or second"
                    );
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// Boundaries of `part` crossed from `a` to `b` (microseconds since the epoch, UTC).
fn boundaries(part: &str, a: i64, b: i64) -> Option<i64> {
    let floor = |v: i64, unit: i64| v.div_euclid(unit);
    const SECOND: i64 = 1_000_000;
    let day = 86_400 * SECOND;
    Some(match part.trim_end_matches('s') {
        "second" => floor(b, SECOND) - floor(a, SECOND),
        "minute" => floor(b, 60 * SECOND) - floor(a, 60 * SECOND),
        "hour" => floor(b, 3_600 * SECOND) - floor(a, 3_600 * SECOND),
        "day" => floor(b, day) - floor(a, day),
        // Weeks start on Monday; 1970-01-01 was a Thursday.
        "week" => floor(b + 3 * day, 7 * day) - floor(a + 3 * day, 7 * day),
        "month" | "quarter" | "year" => {
            let (x, y) = (
                DateTime::from_timestamp_micros(a)?,
                DateTime::from_timestamp_micros(b)?,
            );
            let months = (y.year() as i64 * 12 + y.month0() as i64)
                - (x.year() as i64 * 12 + x.month0() as i64);
            match part.trim_end_matches('s') {
                "month" => months,
                "quarter" => {
                    (y.year() as i64 * 4 + y.month0() as i64 / 3)
                        - (x.year() as i64 * 4 + x.month0() as i64 / 3)
                }
                _ => y.year() as i64 - x.year() as i64,
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn date_diff_counts_boundaries_like_duckdb() {
        let storage = tessera_storage::Storage::new(".", Default::default()).unwrap();
        let engine =
            crate::QueryEngine::new(std::sync::Arc::new(storage), Default::default()).unwrap();
        let cx = tessera_core::RequestContext::system(
            "query-tests",
            "test",
            tessera_core::FrontEnd::System,
        );
        let ctx = engine
            .session(&crate::MeshSnapshot::default(), &cx)
            .unwrap();
        let df = ctx
            .sql("SELECT date_diff('day', DATE '2024-01-31', DATE '2024-03-01') AS d, \
                  date_diff('month', DATE '2024-01-31', DATE '2024-03-01') AS m, \
                  datediff('hour', TIMESTAMP '2024-01-01 10:59:00', TIMESTAMP '2024-01-01 11:00:00') AS h, \
                  date_diff('year', DATE '2023-12-31', DATE '2024-01-01') AS y")
            .await
            .unwrap();
        let batch = &df.collect().await.unwrap()[0];
        let values: Vec<i64> = (0..4)
            .map(|i| batch.column(i).as_primitive::<Int64Type>().value(0))
            .collect();
        assert_eq!(values, vec![30, 2, 1, 1]);
        let err = ctx
            .sql("SELECT date_diff('fortnight', DATE '2024-01-01', DATE '2024-01-02')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("unknown part"), "{err}");
    }
}
