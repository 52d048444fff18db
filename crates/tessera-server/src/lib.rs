//! Tessera's service layer, its HTTP API and its PostgreSQL wire front end.
//!
//! [`Mesh`] is the service: apply product folders, ingest batches, answer queries, list and show
//! the catalog. It ties the metadata store (`tessera-catalog`), the Delta tables
//! (`tessera-storage`), batch preparation (`tessera-ingest`) and the query engine
//! (`tessera-query`) together, and is the only thing front ends call. [`api`] is the HTTP front
//! end (axum; its OpenAPI document is generated from the handlers by utoipa); [`views`] are the
//! answers as serialised, shared with the CLI. `pgwire` serves PostgreSQL clients through the
//! same governed query path; `tls` gives both TLS. [`Application`] binds and serves.
//!
//! This crate holds no SQL of its own and no Delta or DataFusion details: those stay behind the
//! crates it ties together. Errors become HTTP statuses in one place, `api::error`.

mod access;
pub mod api;
mod app;
mod apply;
mod audit;
mod checks;
mod config;
mod error;
mod events;
mod flightsql;
mod front_end;
mod gate;
mod glossary;
mod governance;
mod lineage;
mod local_test;
mod maintenance;
mod mesh;
mod meta;
mod openlineage;
mod pgwire;
mod policies;
mod query_log;
mod scheduler;
mod scorecard;
pub mod service;
mod sources;
mod tls;
mod transform_runs;
mod transforms;
pub mod views;

pub use access::{ADMIN_GROUP, ADMIN_USER};
pub use app::Application;
pub use checks::REFUSED_COMMIT;
pub use config::ServerConfig;
pub use error::{Result, ServiceError, render_violation};
pub use events::{EVENTS_APP_ID, EventBody, EventConfig};
pub use flightsql::{FlightConfig, QUALITY_WARNINGS_KEY};
pub use local_test::{read_local_file, test_contract};
pub use maintenance::MaintenanceConfig;
pub use mesh::{BatchData, Mesh};
pub use openlineage::OpenLineageConfig;
pub use pgwire::PostgresConfig;
pub use service::{
    AccessService, AuditService, CatalogService, GlossaryService, GovernanceService, IngestService,
    LineageService, OperationsService, PublishService, QualityService, QueryService, RunScope,
    Services, SourcesService, TransformsService,
};
pub use tessera_core::{FrontEnd, Principal, RequestContext};
pub use tessera_ingest::Format;
pub use tessera_query::{QueryConfig, STACK_BYTES};
pub use tessera_spec::FileLimits;
pub use tessera_storage::{MaintenancePolicy, MaintenanceReport};
pub use tls::TlsConfig;
pub use transform_runs::Debounce;
