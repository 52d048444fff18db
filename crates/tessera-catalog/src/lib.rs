//! Tessera's metadata store: domains, products, contract versions, datasets and ingested
//! batches, users and their tokens, grants, access requests and policies, governance policies and their evaluations, sources and their state, secrets (sealed), the query log and the
//! hash-chained audit log (its key and head kept in files outside the store), in SQLite (the embedded default) or PostgreSQL (several server instances), through
//! sqlx's `Any` driver so that one set of SQL and one test suite serve both.
//!
//! The store keeps the standard files' text as the source of truth plus the few columns it is
//! searched by; turning a file into the model is `tessera-spec`'s job, not this crate's. It knows
//! nothing of Delta tables or queries.

mod access;
mod audit;
mod error;
mod governance;
mod lineage_events;
mod migrate;
mod query_log;
mod records;
mod sources;
mod store;
mod transforms;

pub use audit::{
    AuditEntryRecord, AuditEvent, AuditProblem, AuditVerification, GENESIS_HASH, KeyFiles,
    entry_hash,
};
pub use error::{CatalogError, Result};
pub use lineage_events::{LineageEventRecord, ReceivedLineageRecord};
pub use records::{
    AccessRequestRecord, BatchRecord, CheckResultRecord, CheckRunRecord, ContractRecord,
    DatasetRecord, DetectionRecord, DomainRecord, GlossaryTermRecord, GovernancePolicyRecord,
    GrantRecord, MetadataChange, PolicyEvaluationRecord, PolicyHistoryPoint, PolicyOutcomeRecord,
    PolicyRecord, PolicyStatusRecord, PolicyViolationRecord, ProductRecord, QueryRecord, RunFilter,
    StandardPolicySwitch, TokenRecord, Triggers, UserRecord,
};
pub use sources::{SecretRecord, SourceRecord, SourceStateRecord};
pub use store::{Catalog, GENERATIONS_RECHECK, Generations, store_time};
pub use transforms::{RunsOf, TransformRecord, TransformRunRecord};
