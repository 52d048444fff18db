//! One module per command.

pub mod access;
pub mod apply;
pub mod audit;
pub mod catalog;
pub mod check;
pub mod diff;
pub mod governance;
pub mod ingest;
pub mod lineage;
pub mod lint;
pub mod new;
pub mod query;
pub mod send;
pub mod serve;
pub mod sources;
pub mod transforms;
