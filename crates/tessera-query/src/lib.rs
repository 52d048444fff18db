//! The one place SQL is planned: a DataFusion session factory over every dataset of the mesh,
//! named `domain.product.dataset` (catalog.schema.table), joins across domains included, plus
//! `domain.product.dataset_quarantine` for refused rows.
//!
//! Every front end (HTTP, CLI, later Postgres wire and Flight SQL) goes through
//! [`QueryEngine::plan`], so read-only enforcement — and later access policies, masks and row
//! filters — apply the same way everywhere. The mesh's metadata comes in as a
//! [`MeshSnapshot`] taken before planning; table providers never look metadata up themselves.
//! This crate writes nothing.

mod engine;
mod error;
mod functions;
mod sources;
mod table;

pub use engine::{DatasetEntry, MeshSnapshot, QueryConfig, QueryEngine, session_config};
pub use error::{QueryError, Result};
pub use functions::register_functions;
pub use sources::{SourceFormat, register_source};
