//! The HTTP API, as a client uses it, against a real server on port 0. Every test that involves
//! metadata runs on both stores (SQLite and a real PostgreSQL); `s3` runs the tables on a real
//! S3-compatible server.

mod access;
mod api;
mod audit;
mod authorization;
mod events;
mod glossary;
mod governance;
mod hardening;
mod lineage_in;
mod meta;
mod openapi;
mod query_log;
mod s3;
mod sources;
mod support;
mod transform_runs;
mod transforms;

/// Runs each named `async fn(Store)` test once per metadata store.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::Store::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::support::Store::Postgres).await
                }
            }
        )*
    };
}
