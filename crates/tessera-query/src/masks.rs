//! Personal data as a reader without `read_pii` sees it, and the rows a row-filtered grant
//! lets it see: a governed table is registered as the plan `Projection(masks) ← Filter(row
//! filter) ← TableScan(dataset)`, which DataFusion inlines into every query that names the
//! table — the query is rewritten, not the data. The mask functions are not registered by name
//! in the session, so SQL cannot call them.
//!
//! A masked quarantine table also masks its `_reason` where the refused value was in a
//! personal-data column (the reason quotes the value).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, cast,
    col, lit, when,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tessera_core::{MaskKind, QUARANTINE_COLUMN, QUARANTINE_REASON, QUARANTINE_RULE};

/// A column the contract classifies as personal data, and how it is masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalColumn {
    pub name: String,
    pub mask: MaskKind,
}

/// The mask of `column` (of type `data_type`) as an expression named like the column.
pub(crate) fn mask_expr(
    column: &str,
    data_type: &DataType,
    kind: MaskKind,
    key: &Arc<[u8]>,
) -> Expr {
    let value = cast(col(column), DataType::Utf8);
    let masked = match kind {
        MaskKind::Hash => ScalarUDF::from(MaskHash::new(key.clone())).call(vec![value]),
        MaskKind::Partial => ScalarUDF::from(MaskPartial::new()).call(vec![value]),
        MaskKind::Null => cast(lit(ScalarValue::Null), data_type.clone()),
    };
    masked.alias(column)
}

/// A quarantine table's `_reason`, masked where a refused value sat in a personal-data column:
/// the row's first violation (`_column`) or any other its reason lists (`COLUMN: …`, joined by
/// `; `). Masking a reason too many is safe; one too few is not.
pub(crate) fn masked_reason(personal: &[PersonalColumn]) -> Result<Expr> {
    let names: Vec<Expr> = personal.iter().map(|p| lit(p.name.clone())).collect();
    let mut quotes_personal = col(QUARANTINE_COLUMN).in_list(names, false);
    for p in personal {
        quotes_personal =
            quotes_personal.or(col(QUARANTINE_REASON).like(lit(format!("%{}: %", p.name))));
    }
    Ok(when(
        quotes_personal,
        datafusion::functions::string::expr_fn::concat(vec![
            lit("the value is personal data and masked; rule: "),
            col(QUARANTINE_RULE),
        ]),
    )
    .otherwise(col(QUARANTINE_REASON))?
    .alias(QUARANTINE_REASON))
}

/// Applies `f` to every non-null text value of the one argument.
fn map_text(
    args: ScalarFunctionArgs,
    name: &str,
    f: impl Fn(&str) -> String,
) -> Result<ColumnarValue> {
    let [value] = args.args.as_slice() else {
        return exec_err!("{name} takes one argument");
    };
    let array: ArrayRef = value.to_array(args.number_rows)?;
    let array = arrow::compute::cast(&array, &DataType::Utf8)?;
    let text = array.as_string::<i32>();
    let mut out = StringBuilder::with_capacity(text.len(), text.len() * 16);
    for i in 0..text.len() {
        if text.is_null(i) {
            out.append_null();
        } else {
            out.append_value(f(text.value(i)));
        }
    }
    Ok(ColumnarValue::Array(Arc::new(out.finish())))
}

/// HMAC-SHA-256 of the text, hex: `tessera_mask_hash`.
#[derive(Debug)]
struct MaskHash {
    key: Arc<[u8]>,
    signature: Signature,
}

impl MaskHash {
    fn new(key: Arc<[u8]>) -> Self {
        Self {
            key,
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl PartialEq for MaskHash {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for MaskHash {}

impl std::hash::Hash for MaskHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl ScalarUDFImpl for MaskHash {
    fn name(&self) -> &str {
        "tessera_mask_hash"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        map_text(args, self.name(), |v| hash_mask(&self.key, v))
    }
}

/// The keyed hash of `value`: what a masked value is, here and in tests' references.
pub fn hash_mask(key: &[u8], value: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Most of the value starred out: `tessera_mask_partial`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct MaskPartial {
    signature: Signature,
}

impl MaskPartial {
    fn new() -> Self {
        Self {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for MaskPartial {
    fn name(&self) -> &str {
        "tessera_mask_partial"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        map_text(args, self.name(), partial_mask)
    }
}

/// An e-mail keeps its first character and its domain (`a***@example.com`); anything else its
/// last four characters (`*******3.45`), or nothing when it is that short.
pub fn partial_mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if let Some(at) = value.rfind('@')
        && at > 0
    {
        let first = value.chars().next().unwrap_or('*');
        return format!("{first}***{}", &value[at..]);
    }
    if chars.len() <= 4 {
        return "*".repeat(chars.len());
    }
    let kept: String = chars[chars.len() - 4..].iter().collect();
    format!("{}{kept}", "*".repeat(chars.len() - 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_hide_the_value_and_keep_equality() {
        let key = b"k".as_slice();
        assert_eq!(hash_mask(key, "a@b.c"), hash_mask(key, "a@b.c"));
        assert_ne!(hash_mask(key, "a@b.c"), hash_mask(key, "a@b.d"));
        assert_ne!(hash_mask(key, "a@b.c"), hash_mask(b"other", "a@b.c"));
        assert_eq!(hash_mask(key, "x").len(), 64);
        assert_eq!(partial_mask("ada@example.com"), "a***@example.com");
        assert_eq!(partial_mask("203.0.113.45"), "********3.45");
        assert_eq!(partial_mask("abc"), "***");
        assert_eq!(partial_mask(""), "");
    }
}
