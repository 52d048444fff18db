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

/// Who an offline command acts as: the local user, in the CLI's own process.
pub fn local_context(request_id: &str) -> tessera_server::RequestContext {
    let user = std::env::var("USER").unwrap_or_else(|_| "local".into());
    tessera_server::RequestContext::new(
        tessera_server::Principal::user(user, Vec::new(), Vec::new()),
        request_id,
        tessera_server::FrontEnd::Offline,
    )
}
