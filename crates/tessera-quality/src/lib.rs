//! Contract rules checked on data.
//!
//! Two halves. [`RowValidator`]: the row-level rules of a contract (required, length, pattern,
//! minimum/maximum, valid values) evaluated column-wise with Arrow kernels over a batch already
//! cast to the contract's types, telling which rows break which rule and why — the ingest gate.
//! [`run_checks`]: every check of a contract (schema promises, ODCS library metrics, `sql`
//! rules, SLA freshness and retention) measured with DataFusion over a table, all count-style
//! checks in one fused scan, with failed-row samples.
//!
//! This crate writes no tables and stores no results: it gets data and returns verdicts.

mod checks;
mod error;
mod key_index;
mod row_rules;

pub use checks::{
    CheckResult, Outcome, SAMPLES, TableFacts, compatible, count_measures, ident, key_counts,
    literal, run_checks, shared_keys, sql_measure, substitute, verdict,
};
pub use error::{QualityError, Result};
pub use key_index::{BatchKeys, IndexedKeys, KeyIndex, batch_keys};
pub use row_rules::{RowValidator, RowVerdicts, Violation};
