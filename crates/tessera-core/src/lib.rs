//! Tessera's domain model: the mesh's names (`domain.product.dataset`), data products, datasets,
//! their contracts (columns, types, row-level rules), the sources datasets pull from, the
//! transforms that compute datasets from others (and their graph), governance
//! policies and glossary terms, the
//! mapping of contract types to Arrow,
//! who asks ([`RequestContext`], [`Principal`]) and which SQL is accepted ([`sql`]).
//!
//! This crate does no IO, is not async and does not (de)serialise file formats: reading ODCS and
//! ODPS files is `tessera-spec`'s job, storing them `tessera-catalog`'s. Everything here is plain
//! data and pure functions, so its tests run in microseconds.

mod context;
mod error;
mod glossary;
mod lineage;
mod model;
mod name;
mod policy;
mod quality;
mod rules;
mod source;
pub mod sql;
mod transform;
mod types;

pub use context::{FrontEnd, Principal, PrincipalKind, RequestContext};
pub use error::{CoreError, Result};
pub use glossary::{GLOSSARY_TAG, GLOSSARY_URL, GlossaryTerm, TermRef};
pub use lineage::{
    ColumnRef, Derivation, Direction, LineageEdge, LineageGraph, LineageNode, QueryLineage, Sources,
};
pub use model::{
    Column, Constraints, Contract, DatasetSchema, InputPort, MaskKind, OutputPort, Product,
    QUARANTINE_AT, QUARANTINE_BATCH_ID, QUARANTINE_COLUMN, QUARANTINE_REASON,
    QUARANTINE_ROW_NUMBER, QUARANTINE_RULE, SampleQuery, SlaProperty, SupportChannel,
    duration_seconds, sla_duration_seconds,
};
pub use name::{DatasetRef, Name, QUARANTINE_SUFFIX, RESERVED_NAMES};
pub use policy::{
    GovernancePolicy, POLICY_OPTIONAL_COLUMNS, POLICY_REQUIRED_COLUMNS, PolicySeverity,
};
pub use quality::{
    COLUMN_PLACEHOLDERS, Check, CheckKind, Operator, QualityRule, RuleKind, Severity,
    TABLE_PLACEHOLDERS, Unit, quality_score, substitute_placeholders,
};
pub use rules::{Bound, RowRule, RowRuleKind};
pub use source::{SECRET_ENV_PREFIX, SecretRef, SourceSpec, SourceTrigger, parse_duration};
pub use transform::{Cycle, Materialization, TransformGraph, TransformSpec, referenced_datasets};
pub use types::{
    LogicalType, arrow_type, timestamp_zone_stated, type_mapping_table, utc_timestamp,
};

/// Whether a personal data detector's hits on a column's sampled values say the column holds
/// what the detector looks for: most values (four in five) matched, not the odd one that
/// happens to. Ingest's detections and `tessera new --from-file` both judge by it.
pub fn detection_holds(matched: usize, sampled: usize) -> bool {
    sampled > 0 && matched * 5 >= sampled * 4
}
