//! The service layer: everything Tessera does, once, for every front end. The HTTP API, the CLI
//! (through the API) and the demo call [`Mesh`]; none of them touches sqlx, Delta or DataFusion.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::AsArray;
use arrow::datatypes::{Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use tessera_catalog::{BatchRecord, Catalog, DatasetRecord};
use tessera_core::{
    Contract, DatasetRef, DatasetSchema, QUARANTINE_COLUMN, QUARANTINE_REASON,
    QUARANTINE_ROW_NUMBER, QUARANTINE_RULE, arrow_type,
};
use tessera_core::{Principal, RequestContext};
use tessera_ingest::{Format, Prepared};
use tessera_quality::RowValidator;
use tessera_query::{
    DatasetEntry, MeshSnapshot, PersonalColumn, QueryEngine, QueryStream, SessionShape,
    TableAccess, Task,
};

use crate::service::{CatalogService, IngestService, OperationsService, QueryService};
use tessera_storage::Storage;

use crate::config::ServerConfig;
use crate::error::{Result, ServiceError};
use crate::gate::{Commit, GateMode};
use crate::governance::{dataset_resource, product_resource};
use crate::openlineage::{CommitRun, EventJob};
use crate::views::*;
use tessera_governance::{Action, Resource};

/// The name of the mesh secret that keys masked values.
const MASK_KEY: &str = "mask_key";

/// How many refused rows an ingest answer lists (all of them are in the quarantine table).
const REJECTIONS_SHOWN: usize = 10;

/// A batch to ingest.
#[derive(Debug, Clone)]
pub enum BatchData {
    /// File bytes; the format is detected from the name or content when not given.
    File {
        bytes: Bytes,
        format: Option<Format>,
        file_name: Option<String>,
    },
    /// Rows already in Arrow form (the demo, later connectors).
    Arrow(RecordBatch),
}

/// The platform: metadata store, tables and query engine behind one interface.
pub struct Mesh {
    pub(crate) catalog: Catalog,
    pub(crate) storage: Arc<Storage>,
    engine: QueryEngine,
    /// Parsed contract versions; versions are immutable, so entries never go stale.
    contracts: Mutex<HashMap<(String, String, String), Arc<Contract>>>,
    /// Parsed product descriptors by (domain, name), with the source text they were parsed
    /// from: a descriptor changes on apply, so an entry is used only while its text is stored.
    products: Mutex<HashMap<(String, String), ParsedProduct>>,
    /// The mesh as the query engine sees it, with the catalog generation it was built from.
    snapshot: tokio::sync::Mutex<Option<(String, Arc<MeshSnapshot>)>>,
    /// The `tessera_meta` rows of the whole mesh, with the snapshot and access generation
    /// they were built at (see `meta.rs`).
    meta: tokio::sync::Mutex<Option<MetaCache>>,
    /// Each dataset's failing blocking checks as of the store's quality generation (see
    /// [`Mesh::quality_warnings`]).
    pub(crate) failing_checks: tokio::sync::Mutex<Option<FailingChecks>>,
    /// Who may do what, as of the store's access generation (see `governance.rs`).
    pub(crate) access_state: tokio::sync::Mutex<Option<Arc<crate::governance::AccessState>>>,
    /// One apply at a time, so plans are computed against what is really there.
    pub(crate) apply_lock: tokio::sync::Mutex<()>,
    /// One ingest at a time per dataset (by table location), from the gate to the commit.
    ingest_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// What the commit gate knows of each dataset (by table location), see `gate.rs`.
    pub(crate) gate_states: Mutex<HashMap<String, crate::gate::GateState>>,
    /// The gate's kept indexes of each dataset's keys (by table location), see `gate.rs`.
    pub(crate) key_indexes: Mutex<HashMap<String, crate::gate::SharedKeyIndexes>>,
    /// How large a contract `apply` accepts.
    pub(crate) contract_limits: tessera_spec::FileLimits,
    /// The key masked values are hashed with, shared by every instance through the store.
    pub(crate) mask_key: Arc<[u8]>,
    /// Every query, written in groups off the response path (see `query_log.rs`).
    pub(crate) query_log: Arc<crate::query_log::QueryLog>,
    /// Acknowledged events until their commit (see `events.rs`), and how they are committed.
    pub(crate) events: Arc<tessera_pipeline::EventLog>,
    pub(crate) event_config: crate::events::EventConfig,
    /// The sources' readers and turns (see `sources.rs`).
    pub(crate) sources: crate::sources::SourceRunners,
    pub(crate) transform_runners: crate::transform_runs::TransformRunners,
    /// What validating each dataset's events needs (see `events.rs`).
    pub(crate) event_targets: Mutex<crate::events::EventTargets>,
    /// Small event requests validated a group at a time (see `events.rs`).
    pub(crate) event_groups: crate::events::EventGroups,
    /// The server's data directory (the files connector's relative folders are under it).
    pub(crate) data_dir: std::path::PathBuf,
    /// What OpenLineage events name Tessera's datasets and jobs in.
    pub(crate) openlineage: crate::openlineage::OpenLineageConfig,
}

/// The quality generation, and a line for each dataset (by `domain.product.dataset`) whose
/// latest check run has failing blocking checks.
pub(crate) type FailingChecks = (i64, Arc<HashMap<String, String>>);

/// A product descriptor's source text and the model parsed from it.
type ParsedProduct = (String, Arc<tessera_core::Product>);

/// The `tessera_meta` rows, and the mesh snapshot and access generation they were built at.
type MetaCache = (Arc<MeshSnapshot>, (i64, i64), Arc<crate::meta::MetaSource>);

impl Mesh {
    /// Opens (and migrates) the metadata store and the table storage named by `config`.
    pub async fn open(config: &ServerConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            ServiceError::BadRequest(format!(
                "cannot create the data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let catalog = Catalog::connect(&config.metadata_url(), &config.key_files()).await?;
        let storage = Arc::new(
            Storage::new(&config.storage_url(), config.storage_options.clone())?
                .with_checkpoint_every(config.maintenance.policy.checkpoint_every),
        );
        let engine = QueryEngine::new(storage.clone(), config.query.clone())?;
        let fresh = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mask_key = hex::decode(catalog.secret(MASK_KEY, &fresh).await?)
            .map_err(|e| ServiceError::Internal(format!("the stored mask key is not hex: {e}")))?;
        let events = crate::events::open_log(config)?;
        Ok(Self {
            events,
            event_config: config.events.clone(),
            sources: Default::default(),
            transform_runners: crate::transform_runs::TransformRunners::new(
                config.transform_debounce,
                config.transform_concurrency,
                config.transform_rewrite_max_bytes,
            ),
            event_targets: Mutex::new(Default::default()),
            event_groups: Default::default(),
            data_dir: config.data_dir.clone(),
            openlineage: config.openlineage.clone(),
            mask_key: mask_key.into(),
            query_log: Arc::new(crate::query_log::QueryLog::start(catalog.clone())),
            catalog,
            storage,
            engine,
            contracts: Mutex::new(HashMap::new()),
            products: Mutex::new(HashMap::new()),
            snapshot: tokio::sync::Mutex::new(None),
            meta: tokio::sync::Mutex::new(None),
            failing_checks: tokio::sync::Mutex::new(None),
            access_state: tokio::sync::Mutex::new(None),
            apply_lock: tokio::sync::Mutex::new(()),
            ingest_locks: Mutex::new(HashMap::new()),
            gate_states: Mutex::new(HashMap::new()),
            key_indexes: Mutex::new(HashMap::new()),
            contract_limits: config.contract_limits,
        })
    }

    /// Where the metadata and the tables are, for logs and the startup banner.
    pub fn describe(&self) -> String {
        format!(
            "metadata {}, tables {}",
            self.catalog.display_url(),
            self.storage.root()
        )
    }

    /// Closes the event log (what it holds is committed on the next start; a server commits
    /// it before stopping queries, see `app.rs`), waits for a table checkpoint being written,
    /// stops queries, writes what the query log still holds, and closes the store.
    pub async fn close(&self) {
        self.events.close();
        if !self
            .storage
            .finish_background_work(std::time::Duration::from_secs(30))
            .await
        {
            tracing::warn!(
                "a table checkpoint was still being written at shutdown; the next start writes it again"
            );
        }
        self.engine.shut_down();
        self.query_log.close().await;
        self.catalog.close().await;
    }

    /// A contract version as the model, parsed once.
    pub(crate) async fn contract_model(
        &self,
        domain: &str,
        id: &str,
        version: &str,
    ) -> Result<Arc<Contract>> {
        let key = (domain.to_string(), id.to_string(), version.to_string());
        if let Some(c) = self.contracts.lock().expect("contract cache").get(&key) {
            return Ok(c.clone());
        }
        let record = self
            .catalog
            .contract(domain, id, version)
            .await?
            .ok_or_else(|| {
                ServiceError::Internal(format!(
                    "contract {id} {version} of domain {domain} is referenced but not stored"
                ))
            })?;
        let mut contract = tessera_spec::load_contract(&record.file_name, &record.source)?;
        // Term versions never change, so the contract with its terms' rules is cached as is.
        if contract
            .datasets
            .iter()
            .any(|d| d.columns.iter().any(|c| c.glossary.is_some()))
        {
            let terms: Vec<tessera_core::GlossaryTerm> = self
                .glossary_terms()
                .await?
                .into_iter()
                .map(|(_, t)| t)
                .collect();
            crate::glossary::enforce_glossary(&mut contract, &terms);
        }
        let contract = Arc::new(contract);
        self.contracts
            .lock()
            .expect("contract cache")
            .insert(key, contract.clone());
        Ok(contract)
    }

    /// A stored product's descriptor, as the model, parsed once per stored text.
    pub(crate) fn product_model(
        &self,
        record: &tessera_catalog::ProductRecord,
    ) -> Result<Arc<tessera_core::Product>> {
        let key = (record.domain.clone(), record.name.clone());
        if let Some((source, product)) = self.products.lock().expect("product cache").get(&key)
            && *source == record.source
        {
            return Ok(product.clone());
        }
        let product = match tessera_spec::load_with(
            &record.file_name,
            &record.source,
            &tessera_spec::FileLimits::NONE,
        )? {
            tessera_spec::Loaded::Product(p) => Arc::new(p),
            _ => {
                return Err(ServiceError::Internal(format!(
                    "product {}.{} is stored with another kind of file as its descriptor",
                    record.domain, record.name
                )));
            }
        };
        self.products
            .lock()
            .expect("product cache")
            .insert(key, (record.source.clone(), product.clone()));
        Ok(product)
    }

    pub(crate) async fn dataset_record(&self, reference: &DatasetRef) -> Result<DatasetRecord> {
        let (domain, product) = (reference.domain.as_str(), reference.product.as_str());
        self.catalog
            .datasets(Some((domain, product)))
            .await?
            .into_iter()
            .find(|d| d.name == reference.dataset.as_str())
            .ok_or_else(|| ServiceError::NotFound(format!("no dataset {reference}")))
    }

    pub(crate) async fn dataset_schema(&self, record: &DatasetRecord) -> Result<DatasetSchema> {
        let contract = self
            .contract_model(
                &record.domain,
                &record.contract_id,
                &record.contract_version,
            )
            .await?;
        contract.dataset(&record.name).cloned().ok_or_else(|| {
            ServiceError::Internal(format!(
                "dataset {}.{}.{} is not in its contract {} {}",
                record.domain,
                record.product,
                record.name,
                record.contract_id,
                record.contract_version
            ))
        })
    }

    pub(crate) fn ingest_lock(&self, location: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.ingest_locks
            .lock()
            .expect("ingest lock map")
            .entry(location.to_string())
            .or_default()
            .clone()
    }

    /// The whole mesh as of now, rebuilt only when datasets were added or changed contract (by
    /// this instance or another one sharing the metadata store). Sessions are made over a
    /// principal's view of it ([`Mesh::snapshot_for`]), never over it.
    pub(crate) async fn snapshot(&self) -> Result<Arc<MeshSnapshot>> {
        let generation = self.catalog.generations().await?.datasets;
        let mut cached = self.snapshot.lock().await;
        if let Some((g, snapshot)) = cached.as_ref()
            && *g == generation
        {
            return Ok(snapshot.clone());
        }
        let mut tables = Vec::new();
        for record in self.catalog.datasets(None).await? {
            let schema = self.dataset_schema(&record).await?;
            let personal: Vec<PersonalColumn> = schema
                .columns
                .iter()
                .filter(|c| c.is_personal_data())
                .map(|c| PersonalColumn {
                    name: c.name.clone(),
                    mask: c.mask(),
                })
                .collect();
            let reference = DatasetRef::new(
                tessera_core::Name::parse(&record.domain).map_err(internal)?,
                tessera_core::Name::parse(&record.product).map_err(internal)?,
                schema.name.clone(),
            );
            tables.push(DatasetEntry {
                reference: reference.clone(),
                location: record.location.clone(),
                schema: schema.arrow_schema().map_err(internal)?,
                access: TableAccess::Read,
                personal: personal.clone(),
                row_filter: None,
            });
            tables.push(DatasetEntry {
                location: reference.quarantine().relative_path(),
                reference: reference.quarantine(),
                schema: schema.quarantine_arrow_schema(),
                access: TableAccess::Read,
                personal,
                row_filter: None,
            });
        }
        let snapshot = Arc::new(MeshSnapshot {
            tables,
            mask_key: self.mask_key.clone(),
            governed: Default::default(),
            meta: Vec::new(),
        });
        *cached = Some((generation, snapshot.clone()));
        Ok(snapshot)
    }

    /// The `tessera_meta` rows of the whole mesh as of `mesh`, access generation `generation`
    /// and the governance generation: rebuilt when any moved (a product's descriptor changing
    /// moves the access generation; policies and their results the governance one).
    pub(crate) async fn meta_source(
        &self,
        mesh: &Arc<MeshSnapshot>,
        generation: i64,
    ) -> Result<Arc<crate::meta::MetaSource>> {
        let generations = (generation, self.catalog.generations().await?.governance);
        let mut cached = self.meta.lock().await;
        if let Some((of, g, meta)) = cached.as_ref()
            && Arc::ptr_eq(of, mesh)
            && *g == generations
        {
            return Ok(meta.clone());
        }
        let meta = Arc::new(self.build_meta().await?);
        *cached = Some((mesh.clone(), generations, meta.clone()));
        Ok(meta)
    }

    /// A query session over the mesh as of now, as `cx`'s principal may see it (the one session
    /// factory every reader uses).
    pub(crate) async fn session(
        &self,
        cx: &RequestContext,
    ) -> Result<datafusion::prelude::SessionContext> {
        let snapshot = self.snapshot_for(cx).await?;
        Ok(self.engine.session(&snapshot, cx)?)
    }

    /// A user's query as every front end runs it: the principal's governed snapshot, the
    /// engine's limits, the query log (naming `cx.front_end`). `refine` binds parameters;
    /// `shape` is the front end's (see [`SessionShape`]). The outer error is the service's
    /// (the snapshot), the inner the query's, kept whole for a front end's own status codes.
    pub(crate) async fn query_shaped(
        &self,
        cx: &RequestContext,
        sql: &str,
        refine: tessera_query::Refine,
        shape: &SessionShape,
    ) -> Result<tessera_query::Result<QueryStream>> {
        let snapshot = self.snapshot_for(cx).await?;
        Ok(self
            .engine
            .execute_shaped(&snapshot, sql, cx, self.logged(cx, sql), refine, shape)
            .await)
    }

    /// What writes a user's query into the query log once it ends.
    pub(crate) fn logged(&self, cx: &RequestContext, sql: &str) -> tessera_query::QueryObserver {
        let log = self.query_log.clone();
        let entry = crate::query_log::entry_for(cx, sql);
        Box::new(move |report| log.record(entry.with(report)))
    }

    /// Plans a user's statement without running it (a prepared statement's types), in the
    /// session [`query_shaped`](Self::query_shaped) would run it in.
    pub(crate) async fn plan_shaped(
        &self,
        cx: &RequestContext,
        sql: &str,
        shape: &SessionShape,
    ) -> Result<tessera_query::Result<datafusion::prelude::DataFrame>> {
        let snapshot = self.snapshot_for(cx).await?;
        let ctx = match self.engine.session_shaped(&snapshot, cx, shape) {
            Ok(ctx) => ctx,
            Err(e) => return Ok(Err(e)),
        };
        // On the query runtime, under the time limit, as every planning is.
        let (planning, sql) = (ctx.clone(), sql.to_string());
        Ok(self
            .engine
            .run(&ctx, async move {
                tessera_query::plan_sql(&planning, &sql).await
            })
            .await)
    }

    pub(crate) fn engine(&self) -> &QueryEngine {
        &self.engine
    }

    /// Runs one read-only SQL statement and collects its whole result (the demo, tests).
    pub async fn query_all(
        &self,
        cx: &RequestContext,
        sql: &str,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        use futures::TryStreamExt;
        let stream = self.query(cx, sql).await?;
        let schema = stream.schema();
        let batches = stream.try_collect().await?;
        Ok((schema, batches))
    }

    /// Runs CPU-heavy work on the query runtime, off the threads that answer requests (and on
    /// their large stacks). Dropping the handle cancels it.
    pub(crate) fn offload_work<F>(&self, work: F) -> Task<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.engine.spawn(work)
    }

    /// `cx` acting as the owner team of `domain.product`: the rights a product's checks and
    /// contract rules run with, whoever asked. A product without an owner team acts as the
    /// system principal `system:unowned`.
    pub(crate) async fn as_owner(
        &self,
        cx: &RequestContext,
        domain: &str,
        product: &str,
    ) -> Result<RequestContext> {
        let owner = self
            .catalog
            .product(domain, product)
            .await?
            .and_then(|p| p.owner);
        Ok(cx.acting_as(owner_principal(owner)))
    }

    /// Whether a contract may be discovered, as a function of its domain and id: when a dataset
    /// it governs may be, or (a contract that governs none yet) when its domain may be.
    async fn discoverable_contracts(
        &self,
        cx: &RequestContext,
    ) -> Result<impl Fn(&str, &str) -> bool + use<>> {
        let access = self.access_for(cx).await?;
        let mut governed: HashMap<(String, String), bool> = HashMap::new();
        for d in self.catalog.datasets(None).await? {
            let seen = access.allowed(
                &cx.principal,
                Action::Discover,
                &Resource::Dataset {
                    domain: d.domain.clone(),
                    product: d.product.clone(),
                    dataset: d.name.clone(),
                },
            );
            *governed.entry((d.domain, d.contract_id)).or_default() |= seen;
        }
        let principal = cx.principal.clone();
        Ok(move |domain: &str, id: &str| {
            match governed.get(&(domain.to_string(), id.to_string())) {
                Some(seen) => *seen,
                None => access.allowed(
                    &principal,
                    Action::Discover,
                    &Resource::Domain(domain.to_string()),
                ),
            }
        })
    }

    /// Cancels running queries and refuses new ones: the first step of a graceful shutdown.
    pub fn stop_queries(&self) {
        self.engine.shut_down();
    }
}

#[async_trait]
impl OperationsService for Mesh {
    async fn health(&self, _cx: &RequestContext) -> Result<Health> {
        self.catalog.domains().await?;
        Ok(Health {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }
}

#[async_trait]
impl CatalogService for Mesh {
    async fn domains(&self, cx: &RequestContext) -> Result<Vec<DomainView>> {
        let access = self.access_for(cx).await?;
        let products = self.catalog.products(None).await?;
        Ok(self
            .catalog
            .domains()
            .await?
            .into_iter()
            .filter(|d| {
                access.allowed(
                    &cx.principal,
                    Action::Discover,
                    &Resource::Domain(d.name.clone()),
                )
            })
            .map(|d| DomainView {
                // Products the caller may not discover are not counted either.
                product_count: products
                    .iter()
                    .filter(|p| {
                        p.domain == d.name
                            && access.allowed(
                                &cx.principal,
                                Action::Discover,
                                &product_resource(&p.domain, &p.name),
                            )
                    })
                    .count() as i64,
                name: d.name,
                created_at: d.created_at,
            })
            .collect())
    }

    async fn domain(&self, cx: &RequestContext, name: &str) -> Result<DomainView> {
        self.domains(cx)
            .await?
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| ServiceError::NotFound(format!("no domain {name:?}")))
    }

    async fn products(
        &self,
        cx: &RequestContext,
        domain: Option<&str>,
    ) -> Result<Vec<ProductSummary>> {
        if let Some(d) = domain {
            self.domain(cx, d).await?;
        }
        let access = self.access_for(cx).await?;
        Ok(self
            .catalog
            .products(domain)
            .await?
            .into_iter()
            .filter(|p| {
                access.allowed(
                    &cx.principal,
                    Action::Discover,
                    &product_resource(&p.domain, &p.name),
                )
            })
            .map(product_summary)
            .collect())
    }

    async fn product(&self, cx: &RequestContext, domain: &str, name: &str) -> Result<ProductView> {
        self.discoverable(cx, &product_resource(domain, name), || {
            format!("no product {domain}.{name}")
        })
        .await?;
        let record = self
            .catalog
            .product(domain, name)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no product {domain}.{name}")))?;
        let product = self.product_model(&record)?;
        let datasets = self.datasets(cx, Some((domain, name))).await?;
        let quality = self.quality_summary(domain, name).await?;
        let compliance = self
            .scorecard_for(
                cx,
                Some(&format!("{domain}.{name}")),
                crate::scorecard::DEFAULT_HISTORY,
            )
            .await?
            .products
            .pop();
        Ok(ProductView {
            quality,
            compliance,
            output_ports: product
                .output_ports
                .iter()
                .map(|p| PortView {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    contract_id: p.contract_id.clone(),
                    sample_queries: p
                        .sample_queries
                        .iter()
                        .map(|q| SampleQueryView {
                            name: q.name.clone(),
                            description: q.description.clone(),
                            sql: q.sql.clone(),
                        })
                        .collect(),
                })
                .collect(),
            input_ports: product
                .input_ports
                .iter()
                .map(|p| PortView {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    contract_id: Some(p.contract_id.clone()),
                    sample_queries: Vec::new(),
                })
                .collect(),
            datasets,
            descriptor_file: record.file_name.clone(),
            descriptor: record.source.clone(),
            summary: product_summary(record),
        })
    }

    async fn datasets(
        &self,
        cx: &RequestContext,
        product: Option<(&str, &str)>,
    ) -> Result<Vec<DatasetSummary>> {
        let access = self.access_for(cx).await?;
        if let Some((domain, name)) = product
            && (self.catalog.product(domain, name).await?.is_none()
                || !access.allowed(
                    &cx.principal,
                    Action::Discover,
                    &product_resource(domain, name),
                ))
        {
            return Err(ServiceError::NotFound(format!(
                "no product {domain}.{name}"
            )));
        }
        let mut out = Vec::new();
        for record in self.catalog.datasets(product).await? {
            let resource = Resource::Dataset {
                domain: record.domain.clone(),
                product: record.product.clone(),
                dataset: record.name.clone(),
            };
            if !access.allowed(&cx.principal, Action::Discover, &resource) {
                continue;
            }
            let schema = self.dataset_schema(&record).await?;
            out.push(dataset_summary(&record, &schema));
        }
        Ok(out)
    }

    async fn dataset(&self, cx: &RequestContext, reference: &DatasetRef) -> Result<DatasetView> {
        self.discoverable(cx, &dataset_resource(reference), || {
            format!("no dataset {reference}")
        })
        .await?;
        let record = self.dataset_record(reference).await?;
        let schema = self.dataset_schema(&record).await?;
        let table = self.storage.table_info(&record.location).await?;
        let quarantine_location = reference.quarantine().relative_path();
        let columns = schema
            .columns
            .iter()
            .map(|c| ColumnView {
                name: c.name.clone(),
                logical_type: c.logical_type.map(|t| t.as_str().to_string()),
                physical_type: c.physical_type.clone(),
                arrow_type: arrow_type(c).map(|t| t.to_string()).unwrap_or_default(),
                required: c.required,
                unique: c.unique,
                primary_key: c.primary_key,
                classification: c.classification.clone(),
                description: c.description.clone(),
            })
            .collect();
        // Where the files are is for who may read them whole: the files hold no masks.
        let whole = |r: &DatasetRef, view: &MeshSnapshot| {
            view.tables.iter().any(|t| {
                &t.reference == r && t.access == TableAccess::Read && t.row_filter.is_none()
            })
        };
        let view = self.snapshot_for(cx).await?;
        let url = |r: &DatasetRef, location: &str| -> Result<String> {
            Ok(if whole(r, &view) {
                self.storage.table_url(location)?.to_string()
            } else {
                "(shown to readers of every row and column)".to_string()
            })
        };
        let size = table
            .as_ref()
            .filter(|_| whole(reference, &view))
            .map(|t| (t.files as i64, t.bytes as i64));
        Ok(DatasetView {
            summary: dataset_summary(&record, &schema),
            columns,
            table_url: url(reference, &record.location)?,
            table_version: table.as_ref().and_then(|t| t.version),
            table_files: size.map(|s| s.0),
            table_bytes: size.map(|s| s.1),
            quarantine: reference.quarantine().to_string(),
            quarantine_table_url: url(&reference.quarantine(), &quarantine_location)?,
        })
    }

    async fn contracts(&self, cx: &RequestContext) -> Result<Vec<ContractSummary>> {
        let visible = self.discoverable_contracts(cx).await?;
        let mut by_id: Vec<ContractSummary> = Vec::new();
        // Ordered by domain and id, then by the time each version was applied.
        for c in self.catalog.contracts().await? {
            if !visible(&c.domain, &c.contract_id) {
                continue;
            }
            match by_id.last_mut() {
                Some(last) if last.domain == c.domain && last.id == c.contract_id => {
                    last.versions.push(c.version.clone());
                    last.latest_version = c.version;
                    last.status = c.status;
                }
                _ => by_id.push(ContractSummary {
                    domain: c.domain,
                    id: c.contract_id,
                    latest_version: c.version.clone(),
                    status: c.status,
                    versions: vec![c.version],
                }),
            }
        }
        Ok(by_id)
    }

    async fn contract_versions(
        &self,
        cx: &RequestContext,
        domain: &str,
        id: &str,
    ) -> Result<Vec<ContractView>> {
        let versions = self.catalog.contract_versions(domain, id).await?;
        if versions.is_empty() || !self.discoverable_contracts(cx).await?(domain, id) {
            return Err(ServiceError::NotFound(format!(
                "no contract {id:?} in domain {domain}"
            )));
        }
        Ok(versions.into_iter().map(contract_view).collect())
    }

    async fn contract(
        &self,
        cx: &RequestContext,
        domain: &str,
        id: &str,
        version: &str,
    ) -> Result<ContractView> {
        let visible = self.discoverable_contracts(cx).await?;
        self.catalog
            .contract(domain, id, version)
            .await?
            .filter(|_| visible(domain, id))
            .map(contract_view)
            .ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "no contract {id:?} version {version:?} in domain {domain}"
                ))
            })
    }
}

#[async_trait]
impl IngestService for Mesh {
    /// Loads one batch into a dataset: rows cast to the contract's types, rows breaking its
    /// row-level rules to the quarantine table, the rest appended in one commit. A batch id
    /// already ingested writes nothing and answers with the first ingest's counts.
    async fn ingest(
        &self,
        cx: &RequestContext,
        reference: &DatasetRef,
        data: BatchData,
        batch_id: Option<String>,
    ) -> Result<IngestReport> {
        self.ingest_as(
            cx,
            reference,
            data,
            batch_id,
            EventJob::ingest(reference),
            Vec::new(),
        )
        .await
    }

    async fn send_events(
        &self,
        cx: &RequestContext,
        reference: &DatasetRef,
        body: crate::events::EventBody,
        idempotency_key: Option<String>,
    ) -> Result<EventsReceipt> {
        self.accept_events(cx, reference, body, idempotency_key)
            .await
    }
}

impl Mesh {
    /// [`IngestService::ingest`] as `job` (a source's pull of a file, or a batch posted),
    /// which read `inputs` (OpenLineage `(namespace, name)`s outside the mesh). A batch that
    /// fails once it is taken (not a duplicate) is a failed run of the job.
    pub(crate) async fn ingest_as(
        &self,
        cx: &RequestContext,
        reference: &DatasetRef,
        data: BatchData,
        batch_id: Option<String>,
        job: EventJob,
        inputs: Vec<(String, String)>,
    ) -> Result<IngestReport> {
        let started = chrono::Utc::now();
        let resource = dataset_resource(reference);
        self.discoverable(cx, &resource, || format!("no dataset {reference}"))
            .await?;
        self.authorize(cx, Action::Ingest, &resource).await?;
        let record = self.dataset_record(reference).await?;
        let batch_id = match (batch_id, &data) {
            (Some(id), _) if id.trim().is_empty() => {
                return Err(ServiceError::BadRequest("the batch id is empty".into()));
            }
            (Some(id), _) => id,
            (None, BatchData::File { bytes, .. }) => tessera_ingest::batch_id_of(bytes),
            (None, BatchData::Arrow(_)) => {
                return Err(ServiceError::BadRequest(
                    "an Arrow batch needs a batch id".into(),
                ));
            }
        };
        if let Some(previous) = self
            .catalog
            .batch(&record.domain, &record.product, &record.name, &batch_id)
            .await?
        {
            return Ok(IngestReport {
                dataset: reference.to_string(),
                batch_id,
                rows: previous.accepted + previous.quarantined,
                accepted: previous.accepted,
                quarantined: previous.quarantined,
                duplicate: true,
                table_version: previous.table_version,
                rejections: Vec::new(),
                refused: None,
                check_run: None,
            });
        }
        let run = CommitRun {
            job,
            inputs,
            started,
        };
        let outcome = self
            .commit_batch(cx, reference, &record, data, batch_id, &run)
            .await;
        if let Err(e) = &outcome {
            self.emit_commit_run(&run, &record, None, &[], Some(&e.to_string()))
                .await;
        }
        outcome
    }

    /// Prepares, gates and commits a batch that is not in the dataset yet.
    async fn commit_batch(
        &self,
        cx: &RequestContext,
        reference: &DatasetRef,
        record: &DatasetRecord,
        data: BatchData,
        batch_id: String,
        run: &CommitRun,
    ) -> Result<IngestReport> {
        let schema = self.dataset_schema(record).await?;
        let now = chrono::Utc::now();
        // One batch at a time per dataset, from the gate to the commit, so that two batches
        // that each pass cannot break a rule together.
        let dataset_lock = self.ingest_lock(&record.location);
        let _one_at_a_time = dataset_lock.lock().await;
        let contract_schema = schema.clone();
        let (mut prepared, hits) = {
            let batch_id = batch_id.clone();
            tokio::task::spawn_blocking(
                move || -> Result<(Prepared, Vec<tessera_ingest::DetectorHits>)> {
                    let validator = RowValidator::new(&schema)
                        .map_err(|e| ServiceError::Internal(format!("contract rules: {e}")))?;
                    let prepared = match data {
                        BatchData::File {
                            bytes,
                            format,
                            file_name,
                        } => {
                            let format = match format {
                                Some(f) => f,
                                None => Format::detect(file_name.as_deref(), &bytes)
                                    .ok_or(tessera_ingest::IngestError::UnknownFormat)?,
                            };
                            tessera_ingest::prepare(
                                &schema,
                                &validator,
                                format,
                                bytes,
                                &batch_id,
                                now.timestamp_micros(),
                            )?
                        }
                        BatchData::Arrow(batch) => tessera_ingest::prepare_batch(
                            &schema,
                            &validator,
                            batch,
                            &batch_id,
                            now.timestamp_micros(),
                        )?,
                    };
                    let hits = personal_data_hits(&schema, &prepared.valid);
                    Ok((prepared, hits))
                },
            )
            .await
            .map_err(|e| ServiceError::Internal(format!("batch preparation panicked: {e}")))??
        };
        // A batch already in the table (committed before a crash lost its acknowledgement) is
        // not gated again: it would be compared with itself.
        let gate = if self.storage.committed(&record.location, &batch_id).await? {
            None
        } else {
            let owner = self.as_owner(cx, &record.domain, &record.product).await?;
            self.gate(&owner, record, &prepared.valid, GateMode::Append)
                .await?
        };
        let mut refusal = None;
        if let Some((rule, column, reason)) = gate.as_ref().and_then(|g| g.refused_by.clone()) {
            prepared
                .refuse_all(&contract_schema, rule, &column, &reason)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            refusal = Some(reason);
        }
        // Quarantine first, then the dataset: each commit carries the batch id, so a retry after
        // a crash between the two writes only the missing half.
        let quarantine_location = reference.quarantine().relative_path();
        if prepared.quarantined() > 0 {
            self.storage
                .append(
                    &quarantine_location,
                    vec![prepared.quarantine.clone()],
                    Some(&batch_id),
                )
                .await?;
        }
        let outcome = self
            .storage
            .append(
                &record.location,
                vec![prepared.valid.clone()],
                Some(&batch_id),
            )
            .await?;
        let table_version = match outcome.version {
            Some(v) => Some(v),
            None => self.storage.version(&record.location).await?,
        };
        let rows = prepared.rows as i64;
        let (accepted, quarantined) = (prepared.accepted() as i64, prepared.quarantined() as i64);
        let batch = BatchRecord {
            domain: record.domain.clone(),
            product: record.product.clone(),
            dataset: record.name.clone(),
            batch_id: batch_id.clone(),
            accepted,
            quarantined,
            table_version,
            committed_at: tessera_catalog::store_time(now),
        };
        // A batch already committed is not gated, so it leaves no run; nor personal data found
        // again (its first commit recorded it).
        let hits = if outcome.duplicate { Vec::new() } else { hits };
        let check_run = self
            .record_commit(
                cx,
                Commit {
                    record,
                    gate: gate.filter(|_| !outcome.duplicate),
                    refused: refusal.is_some(),
                    committed: outcome.version,
                    table_version,
                    batch,
                    hits,
                    // A batch already in the table was its run's commit before a crash.
                    run: (!outcome.duplicate).then(|| run.clone()),
                },
            )
            .await?;
        Ok(IngestReport {
            dataset: reference.to_string(),
            batch_id,
            rows,
            accepted,
            quarantined,
            duplicate: outcome.duplicate,
            table_version,
            rejections: rejections(&prepared.quarantine, REJECTIONS_SHOWN),
            refused: refusal,
            check_run,
        })
    }

    /// Keeps what a committed batch's values revealed; when a column turns out to hold
    /// personal data, the product is evaluated again, so the scorecard shows it at once (and
    /// the next publish is gated on it). The batch is committed either way: a failure here is
    /// logged, not answered.
    pub(crate) async fn record_detections(
        &self,
        cx: &RequestContext,
        record: &DatasetRecord,
        hits: Vec<tessera_ingest::DetectorHits>,
    ) {
        let records: Vec<tessera_catalog::DetectionRecord> = hits
            .into_iter()
            .map(|h| tessera_catalog::DetectionRecord {
                domain: record.domain.clone(),
                product: record.product.clone(),
                dataset: record.name.clone(),
                column_name: h.column,
                detector: h.detector.to_string(),
                matched: h.matched as i64,
                sampled: h.sampled as i64,
                detected_at: String::new(),
            })
            .collect();
        let product = format!("{}.{}", record.domain, record.product);
        let result = async {
            if self.catalog.record_detections(&records).await? {
                let system = cx.acting_as(tessera_core::Principal::system("governance"));
                self.evaluate_mesh(&system, Some(&product), "ingest")
                    .await?;
            }
            Ok::<_, ServiceError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(product, error = %e, "personal data found at ingest was not recorded");
        }
    }
}

#[async_trait]
impl QueryService for Mesh {
    /// Runs one read-only SQL statement over every dataset. The result streams: the answer
    /// comes back once its first rows are ready, and ends with an error item if the query
    /// fails or passes a limit after that.
    async fn query(&self, cx: &RequestContext, sql: &str) -> Result<QueryStream> {
        Ok(self
            .query_shaped(cx, sql, Box::new(Ok), &SessionShape::default())
            .await??)
    }

    async fn quality_warnings(&self, datasets: &[tessera_core::DatasetRef]) -> Vec<String> {
        self.failing_check_warnings(datasets).await
    }

    async fn queries(&self, cx: &RequestContext, limit: i64) -> Result<Vec<QueryLogView>> {
        let access = self.access_for(cx).await?;
        let limit = limit.clamp(1, 1000);
        self.query_log.written().await;
        let records = if access.allowed(&cx.principal, Action::Manage, &Resource::Platform) {
            self.catalog.queries(None, limit).await?
        } else {
            let managed: Vec<String> = self
                .catalog
                .products(None)
                .await?
                .into_iter()
                .filter(|p| {
                    access.allowed(
                        &cx.principal,
                        Action::Manage,
                        &product_resource(&p.domain, &p.name),
                    )
                })
                .map(|p| format!("{}.{}", p.domain, p.name))
                .collect();
            let me = cx.principal.to_string();
            let mut records = self.catalog.queries(Some((&me, &managed)), limit).await?;
            // Another principal's query on a product the caller manages: who, when, what it
            // cost and how it ended, not its text or error (they may quote what the caller may
            // not read), and only the datasets the caller may discover.
            for q in records.iter_mut().filter(|q| q.principal != me) {
                q.sql = "(run by another principal: its text is shown to it and to admins)".into();
                q.error = None;
                q.datasets.retain(|d| {
                    d.parse::<DatasetRef>().is_ok_and(|r| {
                        access.allowed(&cx.principal, Action::Discover, &dataset_resource(&r))
                    })
                });
                q.products.retain(|p| managed.contains(p));
            }
            records
        };
        Ok(records.into_iter().map(crate::query_log::view).collect())
    }

    fn offload(&self, work: BoxFuture<'static, ()>) -> Task<()> {
        self.engine.spawn(work)
    }
}

/// The principal a product's owner team acts as; `system:unowned` without one.
pub(crate) fn owner_principal(owner: Option<String>) -> Principal {
    match owner {
        Some(team) => Principal::team(team),
        None => Principal::system("unowned"),
    }
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(e.to_string())
}

fn product_summary(r: tessera_catalog::ProductRecord) -> ProductSummary {
    ProductSummary {
        domain: r.domain,
        name: r.name,
        id: r.product_id,
        version: r.version,
        status: r.status,
        description: r.description,
        owner: r.owner,
        updated_at: r.updated_at,
    }
}

fn dataset_summary(r: &DatasetRecord, schema: &DatasetSchema) -> DatasetSummary {
    DatasetSummary {
        reference: format!("{}.{}.{}", r.domain, r.product, r.name),
        domain: r.domain.clone(),
        product: r.product.clone(),
        name: r.name.clone(),
        description: schema.description.clone(),
        contract_id: r.contract_id.clone(),
        contract_version: r.contract_version.clone(),
    }
}

fn contract_view(c: tessera_catalog::ContractRecord) -> ContractView {
    ContractView {
        domain: c.domain,
        id: c.contract_id,
        version: c.version,
        status: c.status,
        file_name: c.file_name,
        created_at: c.created_at,
        source: c.source,
    }
}

/// The first refused rows of a quarantine batch, for the ingest answer.
/// What a batch's text values reveal: the columns the contract does not treat as personal
/// data, sampled for what is.
pub(crate) fn personal_data_hits(
    schema: &DatasetSchema,
    valid: &RecordBatch,
) -> Vec<tessera_ingest::DetectorHits> {
    let unclassified: Vec<String> = schema
        .columns
        .iter()
        .filter(|c| {
            !c.is_personal_data() && c.logical_type == Some(tessera_core::LogicalType::String)
        })
        .map(|c| c.name.clone())
        .collect();
    tessera_ingest::personal_data_hits(valid, &unclassified)
}

/// The first `limit` refused rows of a quarantine batch, with why.
pub(crate) fn rejections(quarantine: &RecordBatch, limit: usize) -> Vec<Rejection> {
    let text = |name: &str| {
        quarantine
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
            .cloned()
    };
    let (Some(rule), Some(column), Some(reason), Some(row)) = (
        text(QUARANTINE_RULE),
        text(QUARANTINE_COLUMN),
        text(QUARANTINE_REASON),
        quarantine
            .column_by_name(QUARANTINE_ROW_NUMBER)
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .cloned(),
    ) else {
        return Vec::new();
    };
    (0..quarantine.num_rows().min(limit))
        .map(|i| Rejection {
            row: row.value(i),
            rule: rule.value(i).to_string(),
            column: column.value(i).to_string(),
            reason: reason.value(i).to_string(),
        })
        .collect()
}
