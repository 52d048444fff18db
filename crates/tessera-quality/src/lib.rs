//! Contract rules checked on Arrow data.
//!
//! Today: the row-level rules of a contract (required, length, pattern, minimum/maximum,
//! valid values), evaluated column-wise with Arrow kernels over a batch already cast to the
//! contract's types, telling which rows break which rule and why. Dataset-level checks (library
//! metrics, `sql` rules, SLOs) will live here too, compiled to DataFusion plans.
//!
//! This crate reads no files and writes no tables: it gets batches and returns verdicts.

mod error;
mod row_rules;

pub use error::{QualityError, Result};
pub use row_rules::{RowValidator, RowVerdicts, Violation};
