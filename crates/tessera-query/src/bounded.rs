//! Functions whose result can be far larger than their input — `lpad('a', 2147483647)`,
//! `repeat`, `replace`, `regexp_replace`, `array_repeat`, `range`, `array_resize` — are
//! bounded by the query's memory limit: a value that would not fit is refused before it is
//! built, with an error that names the function.
//!
//! DataFusion's memory pool counts what operators hold (hash tables, sort buffers), not what a
//! scalar function allocates for its result, so without this one call can take gigabytes in a
//! single allocation no pool sees. Each wrapped function gets an upper bound of its result's
//! size per row from its arguments. Rows are evaluated in chunks whose bounds add up to at most
//! the limit, and the results' real sizes are added up as they come, so neither one value nor
//! one batch of values can pass the limit.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::udf_eq::UdfEq;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

/// How a function's result grows with its arguments: an upper bound in bytes of its value at
/// one row, or `None` when it cannot be told (the row is then not bounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `lpad(s, n [, fill])`, `rpad`: `n` characters.
    Pad,
    /// `repeat(s, n)`: `n` copies of `s`.
    Repeat,
    /// `replace(s, from, to)`: each occurrence of `from` becomes `to`.
    Replace,
    /// `regexp_replace(s, pattern, replacement [, flags])`: each match becomes the replacement,
    /// whose `$n` references may copy the whole input.
    RegexpReplace,
    /// `array_repeat(element, n)`: `n` copies of `element`.
    ArrayRepeat,
    /// `range(start, stop [, step])`, `generate_series`: one element per step.
    Range,
    /// `array_resize(array, n [, value])`: `n` elements.
    Resize,
}

const BOUNDED: &[(&str, Growth)] = &[
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("repeat", Growth::Repeat),
    ("replace", Growth::Replace),
    ("regexp_replace", Growth::RegexpReplace),
    ("array_repeat", Growth::ArrayRepeat),
    ("range", Growth::Range),
    ("generate_series", Growth::Range),
    ("array_resize", Growth::Resize),
];

/// Replaces the session's functions that can build huge values with bounded ones.
pub(crate) fn bound_functions(ctx: &SessionContext, limit_bytes: usize) {
    for (name, growth) in BOUNDED {
        // Read under the lock: `ctx.state()` would copy the whole session for each name.
        let inner = ctx
            .state_ref()
            .read()
            .scalar_functions()
            .get(*name)
            .cloned();
        if let Some(inner) = inner {
            let bounded = Bounded {
                inner: UdfEq::from(inner.inner().clone()),
                growth: *growth,
                limit_bytes,
            };
            ctx.register_udf(ScalarUDF::new_from_impl(bounded));
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: UdfEq<Arc<dyn ScalarUDFImpl>>,
    growth: Growth,
    limit_bytes: usize,
}

impl Bounded {
    fn too_large(&self, bytes: u128) -> DataFusionError {
        DataFusionError::ResourcesExhausted(format!(
            "{}() would build about {bytes} bytes, more than the query's memory limit of {} bytes (--query-memory-limit-bytes)",
            self.inner.name(),
            self.limit_bytes
        ))
    }

    fn invoke_bounded(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = if args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            1
        } else {
            args.number_rows
        };
        let limit = self.limit_bytes as u128;
        // Chunks of rows whose bounds add up to at most the limit.
        let mut chunks: Vec<(usize, usize)> = Vec::new();
        let (mut start, mut chunk_bound) = (0usize, 0u128);
        for row in 0..rows {
            let bound = estimate(self.growth, &args.args, row).unwrap_or(0);
            if bound > limit {
                return Err(self.too_large(bound));
            }
            if chunk_bound + bound > limit && row > start {
                chunks.push((start, row - start));
                start = row;
                chunk_bound = 0;
            }
            chunk_bound += bound;
        }
        if chunks.is_empty() {
            // Everything fits at once: the function runs as it is.
            return self.inner.invoke_with_args(args);
        }
        chunks.push((start, rows - start));
        let mut parts: Vec<ArrayRef> = Vec::with_capacity(chunks.len());
        let mut built: u128 = 0;
        for (offset, length) in chunks {
            let part_args = ScalarFunctionArgs {
                args: args
                    .args
                    .iter()
                    .map(|a| match a {
                        ColumnarValue::Array(array) => {
                            ColumnarValue::Array(array.slice(offset, length))
                        }
                        scalar => scalar.clone(),
                    })
                    .collect(),
                arg_fields: args.arg_fields.clone(),
                number_rows: length,
                return_field: args.return_field.clone(),
                config_options: args.config_options.clone(),
            };
            let part = self.inner.invoke_with_args(part_args)?.into_array(length)?;
            built += part.get_array_memory_size() as u128;
            if built > limit {
                return Err(self.too_large(built));
            }
            parts.push(part);
        }
        let refs: Vec<&dyn Array> = parts.iter().map(|p| p.as_ref()).collect();
        Ok(ColumnarValue::Array(arrow::compute::concat(&refs)?))
    }
}

/// An upper bound of the bytes the function's value takes at `row`.
fn estimate(growth: Growth, args: &[ColumnarValue], row: usize) -> Option<u128> {
    let length = |i: usize| args.get(i).and_then(|a| byte_length(a, row));
    let int = |i: usize| args.get(i).and_then(|a| integer(a, row));
    // Characters can take up to 4 bytes in UTF-8.
    const CHAR_BYTES: u128 = 4;
    Some(match growth {
        Growth::Pad => int(1)?.max(0) as u128 * CHAR_BYTES,
        Growth::Repeat => int(1)?.max(0) as u128 * length(0)?,
        Growth::Replace => {
            let (s, from, to) = (length(0)?, length(1)?, length(2)?);
            s + (s / from.max(1) + 1) * to
        }
        Growth::RegexpReplace => {
            let (s, replacement) = (length(0)?, length(2)?);
            let references = args
                .get(2)
                .and_then(|a| text(a, row))
                .map_or(0, |r| r.matches(['$', '\\']).count() as u128);
            s + (s + 1) * (replacement + references * s)
        }
        Growth::ArrayRepeat => int(1)?.max(0) as u128 * element_bytes(args.first()?, row)?,
        Growth::Range => range_elements(args, row)? * 8,
        Growth::Resize => int(1)?.max(0) as u128 * 16,
    })
}

/// Bytes of the string or binary value at `row` (0 for null).
fn byte_length(arg: &ColumnarValue, row: usize) -> Option<u128> {
    match arg {
        ColumnarValue::Scalar(s) => match s {
            ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                Some(v.as_ref().map_or(0, |s| s.len() as u128))
            }
            ScalarValue::Null => Some(0),
            other if other.is_null() => Some(0),
            other => Some(other.size() as u128),
        },
        ColumnarValue::Array(a) => {
            let row = row.min(a.len().saturating_sub(1));
            if a.is_empty() || a.is_null(row) {
                return Some(0);
            }
            match a.data_type() {
                DataType::Utf8 => Some(a.as_string::<i32>().value(row).len() as u128),
                DataType::LargeUtf8 => Some(a.as_string::<i64>().value(row).len() as u128),
                DataType::Utf8View => Some(a.as_string_view().value(row).len() as u128),
                _ => Some(a.slice(row, 1).to_data().get_slice_memory_size().ok()? as u128),
            }
        }
    }
}

fn text(arg: &ColumnarValue, row: usize) -> Option<String> {
    match arg {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v),
        ) => v.clone(),
        ColumnarValue::Array(a) if row < a.len() && !a.is_null(row) => match a.data_type() {
            DataType::Utf8 => Some(a.as_string::<i32>().value(row).to_string()),
            DataType::LargeUtf8 => Some(a.as_string::<i64>().value(row).to_string()),
            DataType::Utf8View => Some(a.as_string_view().value(row).to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// The integer at `row` (0 for null; `None` when the argument is no integer).
fn integer(arg: &ColumnarValue, row: usize) -> Option<i64> {
    match arg {
        ColumnarValue::Scalar(s) if s.is_null() => Some(0),
        ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64).ok()? {
            ScalarValue::Int64(v) => v,
            _ => None,
        },
        ColumnarValue::Array(a) => {
            if row >= a.len() || a.is_null(row) {
                return Some(0);
            }
            let values = arrow::compute::cast(&a.slice(row, 1), &DataType::Int64).ok()?;
            let values = values.as_primitive_opt::<Int64Type>()?;
            (!values.is_null(0)).then(|| values.value(0))
        }
    }
}

/// Bytes one copy of the element at `row` takes.
fn element_bytes(arg: &ColumnarValue, row: usize) -> Option<u128> {
    match arg {
        ColumnarValue::Scalar(s) => Some(s.size() as u128),
        ColumnarValue::Array(a) if row < a.len() => {
            Some(a.slice(row, 1).to_data().get_slice_memory_size().ok()? as u128 + 8)
        }
        ColumnarValue::Array(_) => Some(0),
    }
}

/// How many elements `range(start, stop [, step])` has at `row`: integers, or dates and
/// timestamps stepped by an interval (a month counted as 28 days, so the bound stays above).
fn range_elements(args: &[ColumnarValue], row: usize) -> Option<u128> {
    let value = |i: usize| -> Option<ScalarValue> {
        match args.get(i)? {
            ColumnarValue::Scalar(s) => Some(s.clone()),
            ColumnarValue::Array(a) if row < a.len() => ScalarValue::try_from_array(a, row).ok(),
            ColumnarValue::Array(_) => None,
        }
    };
    let (start, stop) = match args.len() {
        1 => (ScalarValue::Int64(Some(0)), value(0)?),
        _ => (value(0)?, value(1)?),
    };
    let step = if args.len() >= 3 { value(2) } else { None };
    if start.is_null() || stop.is_null() {
        return Some(0);
    }
    let as_i64 = |s: &ScalarValue| match s.cast_to(&DataType::Int64).ok()? {
        ScalarValue::Int64(v) => v,
        _ => None,
    };
    let span_and_step: (i128, i128) = match start.data_type() {
        t if t.is_integer() => {
            let step = step.as_ref().and_then(as_i64).unwrap_or(1);
            (
                as_i64(&stop)? as i128 - as_i64(&start)? as i128,
                step as i128,
            )
        }
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => {
            let micros = |s: &ScalarValue| {
                let t = s
                    .cast_to(&DataType::Timestamp(
                        arrow::datatypes::TimeUnit::Microsecond,
                        None,
                    ))
                    .ok()?;
                match t {
                    ScalarValue::TimestampMicrosecond(v, _) => v,
                    _ => None,
                }
            };
            let step_micros = match step.as_ref()? {
                ScalarValue::IntervalMonthDayNano(Some(v)) => {
                    (v.months as i128 * 28 + v.days as i128) * 86_400_000_000
                        + v.nanoseconds as i128 / 1_000
                }
                ScalarValue::IntervalDayTime(Some(v)) => {
                    v.days as i128 * 86_400_000_000 + v.milliseconds as i128 * 1_000
                }
                ScalarValue::IntervalYearMonth(Some(m)) => *m as i128 * 28 * 86_400_000_000,
                _ => return None,
            };
            (
                micros(&stop)? as i128 - micros(&start)? as i128,
                step_micros,
            )
        }
        _ => return None,
    };
    let (span, step) = span_and_step;
    if step == 0 || (span != 0 && span.signum() != step.signum()) {
        return Some(0);
    }
    Some((span / step).unsigned_abs() + 1)
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_strict(&self) -> bool {
        self.inner.is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.invoke_bounded(args)
    }

    fn with_updated_config(&self, _config: &ConfigOptions) -> Option<ScalarUDF> {
        None
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}
