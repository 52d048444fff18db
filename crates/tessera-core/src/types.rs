//! Contract types (ODCS `logicalType` + `physicalType`) to Arrow types.
//!
//! Every column of a table is stored nullable: `required` is a row-level rule checked at ingest
//! (so a violating row is quarantined with a reason) rather than a table invariant that would
//! reject the whole batch.

use std::str::FromStr;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, TimeUnit};

use crate::error::{CoreError, Result};
use crate::model::Column;

/// ODCS v3.1.0 `logicalType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogicalType {
    String,
    Date,
    Timestamp,
    Time,
    Number,
    Integer,
    Object,
    Array,
    Boolean,
    /// Not an ODCS logical type: bytes, from a physical type (`bytes`, `binary`, `blob`...).
    Binary,
}

impl LogicalType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Date => "date",
            Self::Timestamp => "timestamp",
            Self::Time => "time",
            Self::Number => "number",
            Self::Integer => "integer",
            Self::Object => "object",
            Self::Array => "array",
            Self::Boolean => "boolean",
            Self::Binary => "binary",
        }
    }
}

impl FromStr for LogicalType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "string" => Self::String,
            "date" => Self::Date,
            "timestamp" => Self::Timestamp,
            "time" => Self::Time,
            "number" => Self::Number,
            "integer" => Self::Integer,
            "object" => Self::Object,
            "array" => Self::Array,
            "boolean" => Self::Boolean,
            other => return Err(format!("unknown logicalType {other:?}")),
        })
    }
}

/// The UTC timestamp type every `timestamp` column is stored as (Delta `timestamp`).
pub fn utc_timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

/// Normalised physical type: lowercase, parameters split off: `DECIMAL(10, 2)` → ("decimal", [10, 2]).
fn physical_parts(physical: &str) -> (String, Vec<u32>) {
    let lower = physical.trim().to_ascii_lowercase();
    match lower.split_once('(') {
        Some((base, rest)) => {
            let params = rest
                .trim_end_matches(')')
                .split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect();
            (base.trim().to_string(), params)
        }
        None => (lower, Vec::new()),
    }
}

fn logical_from_physical(base: &str) -> Option<LogicalType> {
    Some(match base {
        "varchar" | "char" | "text" | "string" | "nvarchar" | "character varying" | "uuid"
        | "json" | "jsonb" => LogicalType::String,
        "tinyint" | "smallint" | "int" | "integer" | "bigint" | "int2" | "int4" | "int8"
        | "long" | "short" | "byte" | "int32" | "int64" | "int16" | "int1" => LogicalType::Integer,
        "decimal" | "numeric" | "float" | "real" | "double" | "double precision" | "float4"
        | "float8" | "float32" | "float64" | "number" => LogicalType::Number,
        "boolean" | "bool" => LogicalType::Boolean,
        "date" => LogicalType::Date,
        "timestamp"
        | "timestamptz"
        | "timestamp_ntz"
        | "datetime"
        | "timestamp with time zone"
        | "timestamp without time zone" => LogicalType::Timestamp,
        "time" => LogicalType::Time,
        "struct" | "record" | "object" | "map" => LogicalType::Object,
        "array" | "list" => LogicalType::Array,
        "bytes" | "binary" | "blob" | "varbinary" | "bytea" => LogicalType::Binary,
        _ => return None,
    })
}

/// Whether the contract says if a timestamp column carries a time zone: the `timezone` option,
/// or a physicalType that names the kind (`timestamptz`, `timestamp_ntz`, `datetime`, `timestamp
/// with[out] time zone`). A plain `timestamp` does not say: SQL engines disagree on what it means.
/// When it is not said, ODCS reads a timestamp without a zone in `defaultTimezone` (UTC), so the
/// type check accepts either kind.
pub fn timestamp_zone_stated(column: &Column) -> bool {
    let base = column
        .physical_type
        .as_deref()
        .map(physical_parts)
        .unwrap_or_default()
        .0;
    column.constraints.timezone.is_some()
        || matches!(
            base.as_str(),
            "timestamptz"
                | "timestamp_ntz"
                | "datetime"
                | "timestamp with time zone"
                | "timestamp without time zone"
        )
}

/// The Arrow type a column is stored as. See [`type_mapping_table`] for the rules.
pub fn arrow_type(column: &Column) -> Result<DataType> {
    let unsupported = |reason: String| CoreError::UnsupportedType {
        column: column.name.clone(),
        reason,
    };
    let (base, params) = column
        .physical_type
        .as_deref()
        .map(physical_parts)
        .unwrap_or_default();
    let logical = match column.logical_type {
        Some(t) => t,
        None => logical_from_physical(&base).ok_or_else(|| {
            unsupported(match &column.physical_type {
                Some(p) => format!(
                    "no logicalType and physicalType {p:?} is not one Tessera knows; add a logicalType"
                ),
                None => "no logicalType and no physicalType; add a logicalType".to_string(),
            })
        })?,
    };
    let format = column.constraints.format.as_deref();
    Ok(match logical {
        LogicalType::String | LogicalType::Time => DataType::Utf8,
        LogicalType::Boolean => DataType::Boolean,
        LogicalType::Binary => DataType::Binary,
        LogicalType::Date => DataType::Date32,
        LogicalType::Timestamp => {
            let no_zone = matches!(
                base.as_str(),
                "timestamp_ntz" | "datetime" | "timestamp without time zone"
            ) || column.constraints.timezone == Some(false);
            if no_zone {
                DataType::Timestamp(TimeUnit::Microsecond, None)
            } else {
                utc_timestamp()
            }
        }
        LogicalType::Integer => match (format, base.as_str()) {
            (Some("i8"), _) | (None, "tinyint" | "byte" | "int1") => DataType::Int8,
            (Some("i16"), _) | (None, "smallint" | "short" | "int2" | "int16") => DataType::Int16,
            (Some("i32"), _) | (None, "int" | "integer" | "int4" | "int32") => DataType::Int32,
            (Some("i64" | "u8" | "u16" | "u32"), _) | (None, _) => DataType::Int64,
            (Some(other), _) => {
                return Err(unsupported(format!(
                    "integer format {other:?} does not fit a Delta column (at most i64)"
                )));
            }
        },
        LogicalType::Number => match (format, base.as_str()) {
            (_, "decimal" | "numeric") => {
                let precision = params.first().copied().unwrap_or(38);
                let scale = params.get(1).copied().unwrap_or(0);
                if !(1..=38).contains(&precision) || scale > precision {
                    return Err(unsupported(format!(
                        "decimal({precision},{scale}) is out of range (precision 1..=38, scale <= precision)"
                    )));
                }
                DataType::Decimal128(precision as u8, scale as i8)
            }
            (Some("f32"), _) | (None, "float" | "real" | "float4" | "float32") => DataType::Float32,
            _ => DataType::Float64,
        },
        LogicalType::Object if base == "map" => DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![
                    Field::new("key", DataType::Utf8, false),
                    Field::new("value", DataType::Utf8, true),
                ])),
                false,
            )),
            false,
        ),
        LogicalType::Object if column.properties.is_empty() => DataType::Utf8,
        LogicalType::Object => {
            let fields = column
                .properties
                .iter()
                .map(|c| Ok(Field::new(&c.name, arrow_type(c)?, true)))
                .collect::<Result<Fields>>()?;
            DataType::Struct(fields)
        }
        LogicalType::Array => {
            let item = match &column.items {
                Some(items) => arrow_type(items)?,
                None => DataType::Utf8,
            };
            DataType::List(Arc::new(Field::new("element", item, true)))
        }
    })
}

/// The mapping as documentation rows: (logicalType, physicalType or option, Arrow type, Delta type).
pub fn type_mapping_table() -> &'static [(&'static str, &'static str, &'static str, &'static str)] {
    &[
        ("string", "any", "Utf8", "string"),
        (
            "integer",
            "tinyint, byte, int1 or format i8",
            "Int8",
            "byte",
        ),
        (
            "integer",
            "smallint, short, int2 or format i16",
            "Int16",
            "short",
        ),
        (
            "integer",
            "int, integer, int4 or format i32",
            "Int32",
            "integer",
        ),
        (
            "integer",
            "anything else (bigint, long, none)",
            "Int64",
            "long",
        ),
        (
            "number",
            "decimal(p,s), numeric(p,s)",
            "Decimal128(p,s)",
            "decimal(p,s)",
        ),
        (
            "number",
            "float, real, float4 or format f32",
            "Float32",
            "float",
        ),
        (
            "number",
            "anything else (double, none)",
            "Float64",
            "double",
        ),
        ("boolean", "any", "Boolean", "boolean"),
        ("date", "any", "Date32", "date"),
        (
            "timestamp",
            "timestamp_ntz, datetime, or option timezone: false",
            "Timestamp(µs)",
            "timestamp_ntz",
        ),
        (
            "timestamp",
            "anything else",
            "Timestamp(µs, UTC)",
            "timestamp",
        ),
        (
            "time",
            "any (Delta has no time type)",
            "Utf8 (HH:MM:SS[.ffffff])",
            "string",
        ),
        ("object", "with properties", "Struct", "struct"),
        (
            "object",
            "physicalType map",
            "Map(Utf8, Utf8)",
            "map<string,string>",
        ),
        ("object", "without properties", "Utf8 (JSON text)", "string"),
        ("array", "with items", "List(items)", "array"),
        ("array", "without items", "List(Utf8)", "array<string>"),
        (
            "none",
            "bytes, binary, blob, varbinary, bytea",
            "Binary",
            "binary",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(logical: Option<LogicalType>, physical: Option<&str>) -> Column {
        Column {
            logical_type: logical,
            physical_type: physical.map(str::to_string),
            ..Column::new("c")
        }
    }

    #[test]
    fn logical_and_physical_types_map_to_arrow() {
        use LogicalType::*;
        let cases = [
            (Some(String), None, DataType::Utf8),
            (Some(Integer), None, DataType::Int64),
            (Some(Integer), Some("INT"), DataType::Int32),
            (
                Some(Number),
                Some("DECIMAL(10, 2)"),
                DataType::Decimal128(10, 2),
            ),
            (Some(Number), Some("double"), DataType::Float64),
            (Some(Timestamp), None, utc_timestamp()),
            (
                Some(Timestamp),
                Some("timestamp_ntz"),
                DataType::Timestamp(TimeUnit::Microsecond, None),
            ),
            (None, Some("varchar(20)"), DataType::Utf8),
            (None, Some("bigint"), DataType::Int64),
            (Some(Date), None, DataType::Date32),
            (Some(Time), None, DataType::Utf8),
        ];
        for (logical, physical, expected) in cases {
            assert_eq!(
                arrow_type(&col(logical, physical)).unwrap(),
                expected,
                "{logical:?} {physical:?}"
            );
        }
    }

    #[test]
    fn unknown_types_are_named_in_the_error() {
        let err = arrow_type(&col(None, Some("geography"))).unwrap_err();
        assert!(err.to_string().contains("geography"), "{err}");
        let err = arrow_type(&col(Some(LogicalType::Number), Some("decimal(50,2)"))).unwrap_err();
        assert!(err.to_string().contains("decimal(50,2)"), "{err}");
    }

    #[test]
    fn nested_types_map_to_struct_and_list() {
        let mut obj = col(Some(LogicalType::Object), None);
        obj.properties = vec![col(Some(LogicalType::Integer), None)];
        assert!(matches!(arrow_type(&obj).unwrap(), DataType::Struct(f) if f.len() == 1));
        let mut arr = col(Some(LogicalType::Array), None);
        arr.items = Some(Box::new(col(Some(LogicalType::Number), None)));
        assert!(
            matches!(arrow_type(&arr).unwrap(), DataType::List(f) if f.data_type() == &DataType::Float64)
        );
    }
}
