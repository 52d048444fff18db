//! The standard files Tessera speaks, read strictly: ODCS v3.1.0 data contracts (v3.2.0 read
//! too) and ODPS v1.0.0 product descriptors, and Tessera's own governance policy files
//! (`kind: Policy`, checked against a JSON Schema of ours the same way), and transform files
//! (`transforms/<dataset>.sql`: one query under a header of `-- key: value` lines).
//!
//! A file is parsed as YAML without timestamp coercion, validated against the official JSON
//! Schema (draft 2019-09, embedded), then converted into `tessera-core`'s model. Every problem is
//! a [`Diagnostic`] naming the file, the line and the field. The file text itself stays the
//! source of truth: this crate never rewrites a document, and it does no IO besides reading
//! the file a caller names (see [`SpecDocument::read`]).

mod dcs;
mod diff;
mod document;
mod error;
mod load;
mod odcs;
mod odps;
mod openlineage;
mod policy;
mod schedule;
mod source;
mod transform;
mod validate;

pub use dcs::{dcs_to_odcs, is_dcs};
pub use diff::{Change, ChangeKind, diff_contracts, major_version};
pub use document::{DocumentKind, SpecDocument};
pub use error::{Diagnostic, SpecError};
pub use load::{FileLimits, LintOutcome, Loaded, lint, load, load_contract, load_with};
pub use odcs::{SqlRuleSite, contract_for_checks, contract_from_document, sql_rules};
pub use odps::{SAMPLE_QUERIES_PROPERTY, SampleQuerySite, product_from_document, sample_queries};
pub use openlineage::{
    LineageEventError, LineageEventKind, NamedDataset, ReceivedLineageEvent, read_lineage_event,
};
pub use policy::{policy_from_document, term_from_document};
pub use schedule::{Schedule, parse_schedule};
pub use source::source_from_document;
pub use transform::{TRANSFORM_KEYS, transform_from_file};
pub use validate::validate;
