//! The one place SQL is planned and run: a DataFusion session factory over every dataset of
//! the mesh, named `domain.product.dataset` (catalog.schema.table), joins across domains
//! included, plus `domain.product.dataset_quarantine` for refused rows.
//!
//! [`QueryEngine::session`] is the only way any code gets a DataFusion session, and
//! [`plan_sql`] the only way SQL text becomes a plan, so read-only enforcement, the nesting and
//! size limits on SQL, checked integer arithmetic, bounded functions and each query's memory
//! limit apply the same way to user queries, contract checks and the commit gate (and later to
//! access policies, masks and row filters). Queries run on a runtime of their own
//! ([`QueryEngine::execute`], [`QueryEngine::run`]), apart from the threads that answer
//! requests, under admission control, a time limit that cancels them, and result limits; their
//! results stream ([`QueryStream`]).
//!
//! The mesh's metadata comes in as a [`MeshSnapshot`] taken before planning; table providers
//! never look metadata up themselves. This crate writes nothing.

mod barrier;
mod bounded;
mod compact;
mod engine;
mod error;
mod executor;
mod functions;
mod governed;
mod interrupt;
mod key_set;
mod lineage;
mod masks;
mod memory;
mod overflow;
mod report;
mod sources;
mod stream;
mod table;
mod utc_dates;

pub use engine::{
    DEFAULT_CATALOG, DatasetEntry, Identifiers, KeptSession, META_SCHEMA, MeshSnapshot, MetaTable,
    PreparedPlan, QueryConfig, QueryEngine, Refine, SessionExtension, SessionShape, TableAccess,
    bind, plan_sql, request_of,
};
pub use error::{QueryError, Result};
pub use executor::{Admission, STACK_BYTES, Task};
pub use key_set::key_in;
pub use lineage::query_lineage;
pub use masks::{PersonalColumn, hash_mask, partial_mask};
pub use report::{QueryObserver, QueryOutcome, QueryReport, datasets_read};
pub use sources::{SourceFormat, register_source};
pub use stream::QueryStream;
