use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::common::ParamValues;
use datafusion::common::config::Dialect;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::{ViewTable, provider_as_source, source_as_provider};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{ExprSchemable, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::prelude::{DataFrame, SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use futures::{FutureExt, StreamExt, TryStreamExt};
use tessera_core::sql::{MAX_NESTING, nesting, read_only, too_deep_message};
use tessera_core::{DatasetRef, QUARANTINE_REASON, QUARANTINE_SUFFIX, RequestContext};
use tessera_storage::Storage;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{QueryError, Result};
use crate::executor::{Executor, Task};
use crate::masks::PersonalColumn;
use crate::report::{QueryObserver, QueryOutcome, Reporter, datasets_read};
use crate::stream::{QueryStream, ResultLimits};
use crate::table::DatasetTable;

/// Limits and tuning for queries. Per query: memory, time, result size, SQL size. Server-wide:
/// the memory pool, how many queries run at once and how many may wait.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Memory one query may hold (hash tables, sorts, built values) before it spills or fails.
    pub memory_limit_bytes: usize,
    /// Memory all running queries may hold together.
    pub memory_pool_bytes: usize,
    /// Longest a query may run, from admission to its last row (it may wait as long again for
    /// its turn).
    pub timeout_seconds: u64,
    /// Most rows a query may return.
    pub max_result_rows: u64,
    /// Most bytes (Arrow's in-memory size) a query may return.
    pub max_result_bytes: u64,
    /// Longest SQL text accepted.
    pub max_sql_bytes: usize,
    /// Queries that run at once.
    pub concurrency: usize,
    /// Queries that may wait for a turn; more are refused as busy.
    pub queue_length: usize,
    /// Threads of the query runtime; by default one per partition of every query that may run
    /// at once, at most 256.
    pub threads: usize,
    /// Partitions per scan; defaults to the number of cores.
    pub target_partitions: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let concurrency = (cores * 2).max(4);
        Self {
            memory_limit_bytes: 1 << 30,
            memory_pool_bytes: 4 << 30,
            timeout_seconds: 300,
            max_result_rows: 10_000_000,
            max_result_bytes: 1 << 30,
            max_sql_bytes: 1 << 20,
            concurrency,
            queue_length: 64,
            // A thread for every partition of every running query, so one that computes
            // without yielding never holds up the others.
            threads: (concurrency * cores + 1).clamp(cores, 256),
            target_partitions: cores,
        }
    }
}

/// A table the snapshot knows: where it is, what it looks like, and what the session's
/// principal may do with it.
#[derive(Debug, Clone)]
pub struct DatasetEntry {
    pub reference: DatasetRef,
    /// Location relative to the storage root.
    pub location: String,
    pub schema: SchemaRef,
    pub access: TableAccess,
    /// The columns the contract classifies as personal data (masked under `ReadMasked`).
    pub personal: Vec<PersonalColumn>,
    /// A predicate (SQL over the table's columns) the rows the principal sees must pass: the
    /// row filter of its grant.
    pub row_filter: Option<String>,
}

/// What a session's principal may do with a table, as the service layer's policies decided. A
/// table the principal may not even discover is not in its snapshot at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableAccess {
    /// Listed (`information_schema`, SHOW, DESCRIBE) but not read: a statement whose plan
    /// scans it is refused before it runs.
    DiscoverOnly,
    /// Read, personal data included.
    Read,
    /// Read with its personal-data columns masked.
    ReadMasked,
}

/// The mesh's metadata as of one moment, as one principal may see it: every table it may
/// discover, each with what it may do.
#[derive(Debug, Clone, Default)]
pub struct MeshSnapshot {
    pub tables: Vec<DatasetEntry>,
    /// The mesh's key for hashing masked values (kept in the metadata store, so every
    /// instance masks alike).
    pub mask_key: Arc<[u8]>,
    /// The governed tables of this snapshot, planned once and shared by its sessions.
    pub governed: GovernedTables,
    /// The tables of the `tessera_meta` schema: the mesh's metadata as the principal may
    /// discover it.
    pub meta: Vec<MetaTable>,
}

/// The schema, in the default catalog, that holds the mesh's metadata as tables.
pub const META_SCHEMA: &str = "tessera_meta";

/// A table of [`META_SCHEMA`]: rows in memory, made once per principal's view.
#[derive(Debug, Clone)]
pub struct MetaTable {
    pub name: &'static str,
    table: Arc<datafusion::datasource::MemTable>,
}

impl MetaTable {
    pub fn new(name: &'static str, batch: RecordBatch) -> Result<Self> {
        let table = datafusion::datasource::MemTable::try_new(batch.schema(), vec![vec![batch]])
            .map_err(QueryError::from_datafusion)?;
        Ok(Self {
            name,
            table: Arc::new(table),
        })
    }
}

/// The masked or row-filtered tables a snapshot's sessions register, by dataset: planning
/// them (masks, the row filter parsed) is done once per snapshot, not once per query. A
/// snapshot's plans hold nothing of the session they were planned in. A clone starts empty,
/// so a snapshot changed after cloning never sees another's tables.
#[derive(Default)]
pub struct GovernedTables(std::sync::Mutex<HashMap<DatasetRef, Arc<dyn TableProvider>>>);

impl Clone for GovernedTables {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for GovernedTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let planned = self.0.lock().map(|m| m.len()).unwrap_or(0);
        write!(f, "GovernedTables({planned} planned)")
    }
}

/// How a session reads identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Identifiers {
    /// Folded to lower case unless quoted, as in PostgreSQL (the mesh's SQL).
    #[default]
    Folded,
    /// Taken as written, as DuckDB matches them (rules written for datacontract-cli).
    AsWritten,
}

/// How a front end shapes the session the one session factory makes
/// ([`QueryEngine::session_shaped`]): the mesh's tables and governance are always the same;
/// what a front end may add is how identifiers read, where unqualified names resolve, and
/// schemas or functions of its own (the PostgreSQL front end's `pg_catalog`).
#[derive(Clone, Default)]
pub struct SessionShape {
    pub identifiers: Identifiers,
    /// The catalog (a domain) that `product.dataset` resolves in; by default the built-in
    /// `tessera` catalog, so datasets are named `domain.product.dataset`.
    pub default_catalog: Option<String>,
    /// Registers a front end's own schemas and functions once the mesh's tables are in.
    pub extend: Option<SessionExtension>,
    /// How the front end's own type names plan (PostgreSQL's `regclass` and other oid types).
    pub type_planner: Option<Arc<dyn datafusion::logical_expr::planner::TypePlanner>>,
}

/// See [`SessionShape::extend`].
pub type SessionExtension =
    Arc<dyn Fn(&SessionContext) -> datafusion::error::Result<()> + Send + Sync>;

impl SessionShape {
    /// The default shape with identifiers read as `identifiers` says.
    pub fn identifiers(identifiers: Identifiers) -> Self {
        Self {
            identifiers,
            ..Self::default()
        }
    }
}

impl std::fmt::Debug for SessionShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionShape")
            .field("identifiers", &self.identifiers)
            .field("default_catalog", &self.default_catalog)
            .field("extended", &self.extend.is_some())
            .field("type_planner", &self.type_planner)
            .finish()
    }
}

/// How long a cancelled query may take to notice before its caller stops waiting for it.
const CANCEL_GRACE: Duration = Duration::from_secs(1);

/// What every session carries for [`plan_sql`] and the engine: the limit on SQL text, the
/// token that cancels its queries, and the request it runs for.
#[derive(Debug)]
struct SessionControl {
    max_sql_bytes: usize,
    token: CancellationToken,
    /// Who the session's queries run for.
    request: RequestContext,
}

/// The request a session made by [`QueryEngine::session`] runs for.
pub fn request_of(ctx: &SessionContext) -> Option<RequestContext> {
    ctx.state_ref()
        .read()
        .config()
        .get_extension::<SessionControl>()
        .map(|c| c.request.clone())
}

/// The cancellation token of a session made by [`QueryEngine::session`].
fn token_of(ctx: &SessionContext) -> Option<CancellationToken> {
    // Under the lock: `ctx.state()` would copy the whole session.
    ctx.state_ref()
        .read()
        .config()
        .get_extension::<SessionControl>()
        .map(|c| c.token.clone())
}

/// A session kept for the statements of one connection (the PostgreSQL front end's), so a
/// statement does not pay for a new session (DataFusion's ~400 functions registered, the
/// catalogs and a front end's schemas built). Made by [`QueryEngine::keep_session`] over one
/// snapshot, which the caller keeps beside it: a snapshot that changed (a grant, a new
/// dataset) needs a new session. Its statements run one at a time.
pub struct KeptSession {
    /// Tells the plans made in it ([`PreparedPlan`]) from those of another session.
    id: u64,
    ctx: SessionContext,
    joins: crate::interrupt::TokenSlot,
}

impl std::fmt::Debug for KeptSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeptSession({})", self.id)
    }
}

/// A statement planned in a kept session ([`QueryEngine::plan_kept`]): run in that session it
/// is not planned again; anywhere else it is planned from its SQL.
#[derive(Debug, Clone)]
pub struct PreparedPlan {
    session: u64,
    plan: Arc<LogicalPlan>,
    /// A statement of constants (see [`constant_statement`]) planned to the end once: it runs
    /// from this physical plan, with this task context, on the caller's own task.
    constant: Option<(Arc<dyn ExecutionPlan>, Arc<TaskContext>)>,
}

impl PreparedPlan {
    /// The plan, before parameters are bound (their types, the result's schema).
    pub fn plan(&self) -> &LogicalPlan {
        &self.plan
    }
}

/// The session a statement runs in (see [`QueryEngine::start_query`]).
enum SessionFor<'a> {
    /// A new one, made over the snapshot in the shape.
    New(&'a MeshSnapshot, &'a SessionShape),
    /// A connection's, with the statement's plan if it was prepared in this same session
    /// ([`QueryEngine::execute_kept`] keeps no other).
    Kept(&'a KeptSession, Option<&'a PreparedPlan>),
}

/// Plans and runs read-only SQL over a [`MeshSnapshot`], on a runtime of its own.
#[derive(Clone)]
pub struct QueryEngine {
    storage: Arc<Storage>,
    executor: Arc<Executor>,
    /// The server-wide memory pool, temporary files, caches and object stores every session
    /// shares; each session gets its own memory limit inside the pool.
    shared: Arc<RuntimeEnv>,
    config: QueryConfig,
    /// A session over no tables, made once, in which row filters are parsed and typed.
    expressions: Arc<std::sync::OnceLock<SessionContext>>,
}

/// The catalog a session resolves `schema.table` in by default (see [`SessionShape`]).
pub const DEFAULT_CATALOG: &str = "tessera";
const DEFAULT_SCHEMA: &str = "public";

impl QueryEngine {
    pub fn new(storage: Arc<Storage>, config: QueryConfig) -> Result<Self> {
        let shared = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(config.memory_pool_bytes)))
            .build_arc()
            .map_err(QueryError::from_datafusion)?;
        let executor = Executor::new(config.threads, config.concurrency, config.queue_length)?;
        let engine = Self {
            storage,
            executor: Arc::new(executor),
            shared,
            config,
            expressions: Default::default(),
        };
        let cx = RequestContext::system("row-filter", "check", tessera_core::FrontEnd::System);
        let expressions = engine.session(&MeshSnapshot::default(), &cx)?;
        engine.expressions.get_or_init(|| expressions);
        Ok(engine)
    }

    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    /// The session factory, the one way any code gets a DataFusion session: a fresh context
    /// for one request (`cx`: who asks, carried by the session, which is where access policies
    /// will apply) whose catalogs are the snapshot's domains, with its own memory limit,
    /// Tessera's functions and checked integer arithmetic.
    pub fn session(&self, snapshot: &MeshSnapshot, cx: &RequestContext) -> Result<SessionContext> {
        self.session_shaped(snapshot, cx, &SessionShape::default())
    }

    /// [`session`](Self::session) shaped for a front end (see [`SessionShape`]).
    pub fn session_shaped(
        &self,
        snapshot: &MeshSnapshot,
        cx: &RequestContext,
        shape: &SessionShape,
    ) -> Result<SessionContext> {
        Ok(self.build_session(snapshot, cx, shape)?.0)
    }

    /// A session for the statements of one connection, made once by the session factory
    /// ([`session_shaped`](Self::session_shaped)) over `snapshot` and renewed for each
    /// statement by [`execute_kept`](Self::execute_kept) and [`plan_kept`](Self::plan_kept).
    pub fn keep_session(
        &self,
        snapshot: &MeshSnapshot,
        cx: &RequestContext,
        shape: &SessionShape,
    ) -> Result<KeptSession> {
        static SESSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let (ctx, joins) = self.build_session(snapshot, cx, shape)?;
        Ok(KeptSession {
            id: SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ctx,
            joins,
        })
    }

    /// The kept session, ready for its next statement: a new cancellation token (its plans'
    /// joins check it) and the statement's request. Its catalogs, functions and the front
    /// end's schemas stay as they were made.
    fn renew(&self, kept: &KeptSession, cx: &RequestContext) -> SessionContext {
        let token = self.executor.query_token();
        kept.ctx
            .state_ref()
            .write()
            .config_mut()
            .set_extension(Arc::new(SessionControl {
                max_sql_bytes: self.config.max_sql_bytes,
                token: token.clone(),
                request: cx.clone(),
            }));
        kept.joins.set(token);
        kept.ctx.clone()
    }

    /// A runtime for one query: the shared pool, disk, caches and object stores, with the
    /// query's own memory limit inside the pool.
    fn query_runtime(&self) -> Arc<RuntimeEnv> {
        Arc::new(RuntimeEnv {
            // An error for want of memory names the query's largest holders.
            memory_pool: Arc::new(TrackConsumersPool::new(
                crate::memory::QueryPool::new(
                    self.shared.memory_pool.clone(),
                    self.config.memory_limit_bytes,
                ),
                NonZeroUsize::new(3).expect("three"),
            )),
            disk_manager: self.shared.disk_manager.clone(),
            cache_manager: self.shared.cache_manager.clone(),
            object_store_registry: self.shared.object_store_registry.clone(),
        })
    }

    /// The session factory itself; see [`session_shaped`](Self::session_shaped).
    fn build_session(
        &self,
        snapshot: &MeshSnapshot,
        cx: &RequestContext,
        shape: &SessionShape,
    ) -> Result<(SessionContext, crate::interrupt::TokenSlot)> {
        let token = self.executor.query_token();
        let mut config = session_config(self.config.target_partitions).with_extension(Arc::new(
            SessionControl {
                max_sql_bytes: self.config.max_sql_bytes,
                token: token.clone(),
                request: cx.clone(),
            },
        ));
        if shape.identifiers == Identifiers::AsWritten {
            config.options_mut().sql_parser.enable_ident_normalization = false;
        }
        let joins = crate::interrupt::TokenSlot::new(token);
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(self.query_runtime())
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(crate::interrupt::InterruptibleJoins {
                token: joins.clone(),
            }))
            .with_physical_optimizer_rule(Arc::new(crate::compact::CompactSortInputs));
        if let Some(planner) = &shape.type_planner {
            state = state.with_type_planner(planner.clone());
        }
        let state = state.build();
        let ctx = SessionContext::new_with_state(state);
        // After type coercion, which the default rules end with.
        ctx.add_analyzer_rule(Arc::new(
            crate::overflow::CheckedIntegerArithmetic::default(),
        ));
        // After DataFusion's optimizer rules, which push filters down first.
        ctx.add_optimizer_rule(Arc::new(crate::utc_dates::FastUtcDates::default()));
        crate::functions::register_functions(&ctx);
        crate::bounded::bound_functions(&ctx, self.config.memory_limit_bytes);
        let mut catalogs: BTreeMap<String, BTreeMap<String, Vec<&DatasetEntry>>> = BTreeMap::new();
        for entry in &snapshot.tables {
            catalogs
                .entry(entry.reference.domain.to_string())
                .or_default()
                .entry(entry.reference.product.to_string())
                .or_default()
                .push(entry);
        }
        for (domain, products) in catalogs {
            let catalog = MemoryCatalogProvider::new();
            for (product, tables) in products {
                let schema = MemorySchemaProvider::new();
                for entry in tables {
                    let table = self.table(&ctx, entry, snapshot)?;
                    schema
                        .register_table(entry.reference.dataset.to_string(), table)
                        .map_err(QueryError::from_datafusion)?;
                }
                catalog
                    .register_schema(&product, Arc::new(schema))
                    .map_err(QueryError::from_datafusion)?;
            }
            ctx.register_catalog(domain, Arc::new(catalog));
        }
        if let Some(catalog) = &shape.default_catalog
            && ctx.catalog(catalog).is_none()
        {
            // A domain whose datasets the principal may not discover still resolves (empty).
            ctx.register_catalog(catalog, Arc::new(MemoryCatalogProvider::new()));
        }
        if !snapshot.meta.is_empty() {
            let schema = Arc::new(MemorySchemaProvider::new());
            for meta in &snapshot.meta {
                schema
                    .register_table(meta.name.to_string(), meta.table.clone())
                    .map_err(QueryError::from_datafusion)?;
            }
            for catalog in std::iter::once(DEFAULT_CATALOG).chain(shape.default_catalog.as_deref())
            {
                ctx.catalog(catalog)
                    .ok_or_else(|| {
                        QueryError::Internal(format!("the catalog {catalog} is missing"))
                    })?
                    .register_schema(META_SCHEMA, schema.clone())
                    .map_err(QueryError::from_datafusion)?;
            }
        }
        if let Some(catalog) = &shape.default_catalog {
            // Read when a name resolves, so it applies to every statement planned from here on.
            ctx.state_ref()
                .write()
                .config_mut()
                .options_mut()
                .catalog
                .default_catalog = catalog.clone();
        }
        if let Some(extend) = &shape.extend {
            extend(&ctx).map_err(QueryError::from_datafusion)?;
        }
        Ok((ctx, joins))
    }

    /// The table a session registers for `entry`: the dataset itself, or, when the principal
    /// sees it masked or row-filtered, the governed plan over it (see `masks.rs`).
    fn table(
        &self,
        ctx: &SessionContext,
        entry: &DatasetEntry,
        snapshot: &MeshSnapshot,
    ) -> Result<Arc<dyn TableProvider>> {
        let mask_key = &snapshot.mask_key;
        let masked = entry.access == TableAccess::ReadMasked && !entry.personal.is_empty();
        let governed =
            entry.access != TableAccess::DiscoverOnly && (masked || entry.row_filter.is_some());
        let dataset = Arc::new(DatasetTable {
            storage: self.storage.clone(),
            reference: entry.reference.clone(),
            location: entry.location.clone(),
            schema: entry.schema.clone(),
            access: match entry.access {
                TableAccess::DiscoverOnly => TableAccess::DiscoverOnly,
                _ => TableAccess::Read,
            },
            governed,
        });
        if !governed {
            return Ok(dataset);
        }
        if let Some(table) = snapshot
            .governed
            .0
            .lock()
            .expect("governed tables")
            .get(&entry.reference)
        {
            return Ok(table.clone());
        }
        let does_not_plan = |e: datafusion::error::DataFusionError| {
            QueryError::Internal(format!(
                "the access policy of {} does not plan: {}",
                entry.reference,
                e.strip_backtrace()
            ))
        };
        let plan = (|| -> datafusion::common::Result<LogicalPlan> {
            let mut builder = LogicalPlanBuilder::scan(
                entry.reference.dataset.as_str(),
                provider_as_source(dataset.clone()),
                None,
            )?;
            if let Some(filter) = &entry.row_filter {
                let predicate = ctx.parse_sql_expr(filter, builder.schema())?;
                builder = builder.filter(predicate)?;
            }
            let quarantine = entry
                .reference
                .dataset
                .as_str()
                .ends_with(QUARANTINE_SUFFIX);
            let mut columns = Vec::new();
            for field in entry.schema.fields() {
                let name = field.name();
                let personal = entry.personal.iter().find(|p| &p.name == name);
                columns.push(match personal {
                    Some(p) if masked => {
                        crate::masks::mask_expr(name, field.data_type(), p.mask, mask_key)
                    }
                    _ if masked && quarantine && name == QUARANTINE_REASON => {
                        crate::masks::masked_reason(&entry.personal)?
                    }
                    _ => datafusion::logical_expr::col(name),
                });
            }
            builder.project(columns)?.build()
        })()
        .map_err(does_not_plan)?;
        let table: Arc<dyn TableProvider> = if entry.row_filter.is_some() {
            // Opaque, so no predicate of the query is evaluated before the row filter. Its
            // expressions are analyzed (types coerced) once here; each query plans only the
            // physical operators over them.
            let state = ctx.state();
            let analyzed = state
                .analyzer()
                .execute_and_check(plan, state.config_options(), |_, _| {})
                .map_err(does_not_plan)?;
            Arc::new(crate::governed::RowFilteredTable::new(
                entry.reference.clone(),
                dataset,
                &analyzed,
            )?)
        } else {
            // Masks only: DataFusion inlines a view's plan where a query names it, so the
            // query's filters reach the scan (they see masked values only).
            Arc::new(ViewTable::new(plan, None))
        };
        snapshot
            .governed
            .0
            .lock()
            .expect("governed tables")
            .insert(entry.reference.clone(), table.clone());
        Ok(table)
    }

    /// `Ok` when `filter` is a row filter for a table of `schema`: one boolean SQL expression
    /// over the row's own columns (no subquery), as the governed plan will use it.
    pub fn check_row_filter(&self, filter: &str, schema: &SchemaRef) -> Result<()> {
        const MAX_FILTER_BYTES: usize = 4096;
        if filter.trim().is_empty() || filter.len() > MAX_FILTER_BYTES {
            return Err(QueryError::Invalid(format!(
                "a row filter is a SQL predicate of 1 to {MAX_FILTER_BYTES} bytes"
            )));
        }
        let ctx = self.expressions.get().expect("made in QueryEngine::new");
        let columns = datafusion::common::DFSchema::try_from(schema.as_ref().clone())
            .map_err(QueryError::from_datafusion)?;
        let expr = ctx
            .parse_sql_expr(filter, &columns)
            .map_err(QueryError::from_datafusion)?;
        let reads_more = expr
            .exists(|e| {
                Ok(matches!(
                    e,
                    datafusion::logical_expr::Expr::ScalarSubquery(_)
                        | datafusion::logical_expr::Expr::Exists(_)
                        | datafusion::logical_expr::Expr::InSubquery(_)
                ))
            })
            .map_err(QueryError::from_datafusion)?;
        if reads_more {
            return Err(QueryError::Invalid(
                "a row filter reads only the row's own columns: no subqueries".into(),
            ));
        }
        let data_type = expr
            .get_type(&columns)
            .map_err(QueryError::from_datafusion)?;
        if data_type != arrow::datatypes::DataType::Boolean {
            return Err(QueryError::Invalid(format!(
                "a row filter is true or false for a row, not a {data_type} value"
            )));
        }
        Ok(())
    }

    /// Runs one read-only statement for a user: admitted (or refused as busy), planned and
    /// executed on the query runtime under the time limit, its result streamed with the result
    /// limits. Returns once the first batch is ready, so errors found that early are answered
    /// as errors rather than inside a started result.
    pub async fn execute(
        &self,
        snapshot: &MeshSnapshot,
        sql: &str,
        cx: &RequestContext,
    ) -> Result<QueryStream> {
        self.execute_observed(snapshot, sql, cx, Box::new(|_| {}))
            .await
    }

    /// [`execute`](Self::execute), telling `observer` what the query did once it ends, however
    /// it ends: refused, failed, finished, or abandoned by its reader (see [`QueryReport`]).
    pub async fn execute_observed(
        &self,
        snapshot: &MeshSnapshot,
        sql: &str,
        cx: &RequestContext,
        observer: QueryObserver,
    ) -> Result<QueryStream> {
        self.execute_refined(snapshot, sql, cx, observer, Box::new(Ok))
            .await
    }

    /// [`execute_refined`](Self::execute_refined) in a session shaped for a front end.
    pub async fn execute_shaped(
        &self,
        snapshot: &MeshSnapshot,
        sql: &str,
        cx: &RequestContext,
        observer: QueryObserver,
        refine: Refine,
        shape: &SessionShape,
    ) -> Result<QueryStream> {
        self.start_reported(SessionFor::New(snapshot, shape), sql, cx, observer, refine)
            .await
    }

    /// [`execute_shaped`](Self::execute_shaped) in a connection's kept session, with
    /// `parameters` bound: renewed for this statement, and planned from `prepared` when that
    /// was planned in this same session ([`plan_kept`](Self::plan_kept)), from `sql`
    /// otherwise. A prepared statement of constants runs from its physical plan.
    pub async fn execute_kept(
        &self,
        kept: &KeptSession,
        sql: &str,
        prepared: Option<&PreparedPlan>,
        parameters: Option<ParamValues>,
        cx: &RequestContext,
        observer: QueryObserver,
    ) -> Result<QueryStream> {
        let prepared = prepared.filter(|p| p.session == kept.id);
        if let Some(constant) = prepared.and_then(|p| p.constant.as_ref())
            && parameters.is_none()
        {
            return self.run_constant(constant, observer).await;
        }
        let refine = bind(parameters);
        self.start_reported(SessionFor::Kept(kept, prepared), sql, cx, observer, refine)
            .await
    }

    /// Plans a statement in a connection's kept session without running it (a prepared
    /// statement), on the query runtime under the time limit as every planning is. The plan
    /// runs later through [`execute_kept`](Self::execute_kept) without being planned again,
    /// while the connection keeps this session.
    pub async fn plan_kept(
        &self,
        kept: &KeptSession,
        sql: &str,
        cx: &RequestContext,
    ) -> Result<PreparedPlan> {
        let ctx = self.renew(kept, cx);
        let (planning, sql) = (ctx.clone(), sql.to_string());
        let (plan, constant) = self
            .run(&ctx, async move {
                let df = plan_sql(&planning, &sql).await?;
                let plan = df.logical_plan().clone();
                if !constant_statement(&plan) {
                    return Ok((plan, None));
                }
                // Its immutable functions are folded to literals here, under the time limit.
                let task_ctx = df.task_ctx();
                let physical = df
                    .create_physical_plan()
                    .await
                    .map_err(QueryError::from_datafusion)?;
                Ok((plan, Some((physical, Arc::new(task_ctx)))))
            })
            .await?;
        Ok(PreparedPlan {
            session: kept.id,
            plan: Arc::new(plan),
            constant,
        })
    }

    /// Runs a prepared statement of constants on the caller's task: what it computes was
    /// computed when it was planned, so there is nothing to plan, cancel or take a query slot
    /// for. It is logged as every statement is.
    async fn run_constant(
        &self,
        (plan, task_ctx): &(Arc<dyn ExecutionPlan>, Arc<TaskContext>),
        observer: QueryObserver,
    ) -> Result<QueryStream> {
        let mut reporter = Reporter::new(Arc::new(std::sync::Mutex::new(Some(observer))));
        let ran = async {
            let plan = reset_plan_states(plan.clone()).map_err(QueryError::from_datafusion)?;
            let batches = datafusion::physical_plan::collect(plan.clone(), task_ctx.clone())
                .await
                .map_err(QueryError::from_datafusion)?;
            let mut counted = self.result_limits().counter();
            for batch in &batches {
                counted.add(batch)?;
            }
            Ok::<_, QueryError>((plan, batches, counted))
        };
        match ran.await {
            Ok((plan, batches, counted)) => {
                let schema = plan.schema();
                (reporter.rows_returned, reporter.bytes_returned) =
                    (counted.rows(), counted.bytes());
                reporter.plan = Some(plan);
                reporter.finish(QueryOutcome::Finished);
                Ok(QueryStream::whole(schema, batches))
            }
            Err(e) => {
                reporter.finish(QueryOutcome::Failed(e.clone()));
                Err(e)
            }
        }
    }

    fn result_limits(&self) -> ResultLimits {
        ResultLimits {
            max_rows: self.config.max_result_rows,
            max_bytes: self.config.max_result_bytes,
        }
    }

    /// Starts a query, telling `observer` of a refusal or failure before it started (the
    /// query's own task tells it of the rest).
    async fn start_reported(
        &self,
        session: SessionFor<'_>,
        sql: &str,
        cx: &RequestContext,
        observer: QueryObserver,
        refine: Refine,
    ) -> Result<QueryStream> {
        let observer = Arc::new(std::sync::Mutex::new(Some(observer)));
        let result = self
            .start_query(session, sql, cx, observer.clone(), refine)
            .await;
        if let Err(e) = &result {
            // Unless the query's own task told it already.
            crate::report::report_early(&observer, e);
        }
        result
    }

    /// [`execute_observed`](Self::execute_observed), with the planned statement passed through
    /// `refine` before it runs (a transform keeps only the rows past its watermark: a filter
    /// the optimizer pushes down to the scans).
    pub async fn execute_refined(
        &self,
        snapshot: &MeshSnapshot,
        sql: &str,
        cx: &RequestContext,
        observer: QueryObserver,
        refine: Refine,
    ) -> Result<QueryStream> {
        self.execute_shaped(
            snapshot,
            sql,
            cx,
            observer,
            refine,
            &SessionShape::default(),
        )
        .await
    }

    async fn start_query(
        &self,
        session: SessionFor<'_>,
        sql: &str,
        cx: &RequestContext,
        observer: Arc<std::sync::Mutex<Option<QueryObserver>>>,
        refine: Refine,
    ) -> Result<QueryStream> {
        let timeout = Duration::from_secs(self.config.timeout_seconds);
        let asked = Instant::now();
        // A query waits for its turn at most as long as it may run; its time starts then.
        let admission = self.executor.admit(timeout).await?;
        let deadline = Instant::now() + timeout;
        let (ctx, prepared) = match session {
            SessionFor::New(snapshot, shape) => (self.session_shaped(snapshot, cx, shape)?, None),
            SessionFor::Kept(kept, prepared) => (
                self.renew(kept, cx),
                prepared.map(|p| p.plan.as_ref().clone()),
            ),
        };
        let runtime = self.query_runtime();
        let token = token_of(&ctx).expect("sessions carry a token");
        self.executor.cancel_at(deadline, token.clone());
        let why = Cancelled {
            deadline,
            timeout_seconds: self.config.timeout_seconds,
            token: token.clone(),
        };
        let sql = sql.to_string();
        let limits = self.result_limits();
        let (ready_tx, ready_rx) = oneshot::channel::<Result<Started>>();
        let (batches_tx, batches_rx) = mpsc::channel::<Result<RecordBatch>>(2);
        let task = self.executor.spawn(async move {
            // Dropped unfinished (the task aborted), it reports the query abandoned.
            let mut reporter = Reporter::new(observer);
            let began = Instant::now();
            // The datasets are known once it is planned, so a query refused by a policy or one
            // that fails on its data still names them.
            let planned = match prepared {
                Some(plan) => checked_frame(ctx.state(), plan, &mut reporter.datasets),
                None => {
                    why.guard(plan_sql_reading(&ctx, &sql, &mut reporter.datasets))
                        .await
                }
            }
            .and_then(|df| refine(df).map_err(QueryError::from_datafusion));
            let df = match planned {
                Ok(df) => df,
                Err(e) => {
                    reporter.finish(QueryOutcome::Failed(e.clone()));
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let planned_us = began.elapsed().as_micros();
            let start = async {
                let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
                // The query's own memory limit, also in a session kept for many queries.
                let task_ctx = Arc::new(df.task_ctx().with_runtime(runtime));
                let plan = df
                    .create_physical_plan()
                    .await
                    .map_err(QueryError::from_datafusion)?;
                let physical_us = began.elapsed().as_micros();
                let mut stream = datafusion::physical_plan::execute_stream(plan.clone(), task_ctx)
                    .map_err(QueryError::from_datafusion)?;
                let first = stream
                    .next()
                    .await
                    .transpose()
                    .map_err(QueryError::from_datafusion)?;
                // Where a query's time goes before its first rows, for whoever tunes it.
                tracing::debug!(
                    admitted_in_a_session_us = began.duration_since(asked).as_micros(),
                    planned_us,
                    physical_us,
                    first_batch_us = began.elapsed().as_micros(),
                    "query started"
                );
                Ok::<_, QueryError>((schema, stream, first, plan))
            };
            let (schema, mut stream, first) = match why.guard(start).await {
                Ok((schema, stream, first, plan)) => {
                    reporter.plan = Some(plan);
                    (schema, stream, first)
                }
                Err(e) => {
                    reporter.finish(QueryOutcome::Failed(e.clone()));
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let mut counted = limits.counter();
            // A result that is whole already (no batch, or one and then its end, as `SELECT 1`
            // gives) is answered with the word that the query started: its reader is woken
            // once, not again for the batch, the end and this task's own end.
            let mut peeked = match &first {
                None => Some(None),
                Some(_) => stream.next().now_or_never(),
            };
            if let Some(None) = peeked {
                let outcome = match first.map(|batch| counted.add(&batch).map(|()| batch)) {
                    Some(Ok(batch)) => batches_tx
                        .try_send(Ok(batch))
                        .map(|()| QueryOutcome::Finished),
                    Some(Err(e)) => batches_tx
                        .try_send(Err(e.clone()))
                        .map(|()| QueryOutcome::Failed(e)),
                    None => Ok(QueryOutcome::Finished),
                }
                .expect("a new channel holds two batches");
                (reporter.rows_returned, reporter.bytes_returned) =
                    (counted.rows(), counted.bytes());
                let datasets = reporter.datasets.clone();
                reporter.finish(outcome);
                drop(batches_tx);
                let _ = ready_tx.send(Ok(Started {
                    schema,
                    datasets,
                    whole: true,
                }));
                return;
            }
            if ready_tx
                .send(Ok(Started {
                    schema,
                    datasets: reporter.datasets.clone(),
                    whole: false,
                }))
                .is_err()
            {
                return;
            }
            let forward = async {
                let mut next = first;
                while let Some(batch) = next {
                    counted.add(&batch)?;
                    if batches_tx.send(Ok(batch)).await.is_err() {
                        // Nobody reads the result any more: the query stops here.
                        return Ok(false);
                    }
                    next = match peeked.take() {
                        Some(item) => item,
                        None => stream.next().await,
                    }
                    .transpose()
                    .map_err(QueryError::from_datafusion)?;
                }
                Ok::<_, QueryError>(true)
            };
            let ended = why.guard(forward).await;
            (reporter.rows_returned, reporter.bytes_returned) = (counted.rows(), counted.bytes());
            match ended {
                Ok(true) => reporter.finish(QueryOutcome::Finished),
                Ok(false) => reporter.finish(QueryOutcome::Abandoned),
                Err(e) => {
                    reporter.finish(QueryOutcome::Failed(e.clone()));
                    let _ = batches_tx.send(Err(e)).await;
                }
            }
        });
        let started = match tokio::time::timeout_at(deadline + CANCEL_GRACE, ready_rx).await {
            Ok(Ok(ready)) => ready?,
            // The task ended without a word: it panicked or the server is stopping.
            Ok(Err(_)) => {
                return Err(match task.await {
                    Err(e) => e,
                    Ok(()) => QueryError::Internal("the query ended before it started".into()),
                });
            }
            Err(_) => {
                task.abort();
                return Err(QueryError::Timeout(self.config.timeout_seconds));
            }
        };
        if started.whole {
            token.cancel();
            return Ok(QueryStream::ended(
                started.schema,
                started.datasets,
                batches_rx,
            ));
        }
        Ok(QueryStream::new(
            started.schema,
            started.datasets,
            batches_rx,
            task,
            token,
            deadline + CANCEL_GRACE,
            self.config.timeout_seconds,
            admission,
        ))
    }

    /// Runs a statement and collects its whole result (tests, small internal answers).
    pub async fn collect(
        &self,
        snapshot: &MeshSnapshot,
        sql: &str,
        cx: &RequestContext,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let stream = self.execute(snapshot, sql, cx).await?;
        let schema = stream.schema();
        let batches = stream.try_collect().await?;
        Ok((schema, batches))
    }

    /// Runs Tessera's own work over a session from [`session`](Self::session) (contract
    /// checks, the commit gate, planning rules) on the query runtime, under the query time
    /// limit: it never runs on the threads that answer requests, and it is cancelled when it
    /// runs too long or the caller stops waiting.
    pub async fn run<T, F>(&self, ctx: &SessionContext, work: F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let seconds = self.config.timeout_seconds;
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let token = token_of(ctx).unwrap_or_else(|| self.executor.query_token());
        self.executor.cancel_at(deadline, token.clone());
        let why = Cancelled {
            deadline,
            timeout_seconds: seconds,
            token: token.clone(),
        };
        let _cancel_when_done = token.drop_guard();
        let task = self.executor.spawn(async move { why.guard(work).await });
        match tokio::time::timeout_at(deadline + CANCEL_GRACE, task).await {
            Ok(joined) => joined?,
            Err(_) => Err(QueryError::Timeout(seconds)),
        }
    }

    /// Runs `work` on the query runtime; dropping the handle cancels it.
    pub fn spawn<F>(&self, work: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.executor.spawn(work)
    }

    /// Cancels every running query and refuses new ones (graceful shutdown).
    pub fn shut_down(&self) {
        self.executor.shut_down();
    }

    pub fn is_shut_down(&self) -> bool {
        self.executor.is_shut_down()
    }
}

/// Binds `parameters` (if any) to a statement when it runs, as a [`Refine`].
pub fn bind(parameters: Option<ParamValues>) -> Refine {
    match parameters {
        Some(values) => Box::new(move |df| df.with_param_values(values)),
        None => Box::new(Ok),
    }
}

/// Whether a plan is a statement of constants: projections (filtered, sorted, limited) of no
/// relation, without parameters or subqueries, whose functions are all immutable (`SELECT 1`,
/// `SELECT version()`, what drivers and pools send to check a connection). Planning folds its
/// functions to literals, so its physical plan gives the same rows every time it runs.
fn constant_statement(plan: &LogicalPlan) -> bool {
    use datafusion::logical_expr::{Expr, Volatility};
    let mut constant = true;
    let _ = plan.apply(|node| {
        constant &= matches!(
            node,
            LogicalPlan::Projection(_)
                | LogicalPlan::EmptyRelation(_)
                | LogicalPlan::SubqueryAlias(_)
                | LogicalPlan::Filter(_)
                | LogicalPlan::Sort(_)
                | LogicalPlan::Limit(_)
        );
        let _ = node.apply_expressions(|expr| {
            expr.apply(|e| {
                constant &= match e {
                    Expr::ScalarFunction(f) => {
                        f.func.signature().volatility == Volatility::Immutable
                    }
                    Expr::Placeholder(_)
                    | Expr::ScalarSubquery(_)
                    | Expr::Exists(_)
                    | Expr::InSubquery(_)
                    | Expr::SetComparison(_)
                    | Expr::OuterReferenceColumn(..)
                    | Expr::ScalarVariable(..)
                    | Expr::AggregateFunction(_)
                    | Expr::WindowFunction(_) => false,
                    _ => true,
                };
                Ok(if constant {
                    TreeNodeRecursion::Continue
                } else {
                    TreeNodeRecursion::Stop
                })
            })
        });
        Ok(if constant {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    constant
}

/// What a query's task tells once its result starts.
struct Started {
    schema: SchemaRef,
    /// The datasets its plan reads.
    datasets: Vec<DatasetRef>,
    /// The whole result is in the batch channel already, and the query's outcome reported.
    whole: bool,
}

/// A change to a planned statement before it runs (see [`QueryEngine::execute_refined`]).
pub type Refine = Box<dyn FnOnce(DataFrame) -> datafusion::error::Result<DataFrame> + Send>;

/// Plans one read-only statement on `ctx`: the one way SQL text becomes a plan, for queries
/// and contract rules alike. Refused before planning: empty or over-long text, more than one
/// statement, anything that writes (DDL, DML, SET), and statements nested deeper than
/// [`MAX_NESTING`]; DataFusion's SQL options refuse the same statements again.
pub async fn plan_sql(ctx: &SessionContext, sql: &str) -> Result<DataFrame> {
    plan_sql_reading(ctx, sql, &mut Vec::new()).await
}

/// [`plan_sql`], telling `read` which datasets the plan reads once it is planned — also when
/// it is then refused, so the query log names what a denied query tried to read.
async fn plan_sql_reading(
    ctx: &SessionContext,
    sql: &str,
    read: &mut Vec<DatasetRef>,
) -> Result<DataFrame> {
    if sql.trim().is_empty() {
        return Err(QueryError::Invalid("the query is empty".into()));
    }
    let state = ctx.state();
    if let Some(limits) = state.config().get_extension::<SessionControl>()
        && sql.len() > limits.max_sql_bytes
    {
        return Err(QueryError::Invalid(format!(
            "the SQL text is {} bytes, more than the limit of {} bytes (--query-max-sql-bytes)",
            sql.len(),
            limits.max_sql_bytes
        )));
    }
    let statement = state
        .sql_to_statement(sql, &Dialect::Generic)
        .map_err(|e| match QueryError::from_datafusion(e) {
            QueryError::Invalid(m) if m.contains("single SQL statement") => {
                QueryError::Invalid("expected one SQL statement, found several".into())
            }
            other => other,
        })?;
    check_statement(&statement)?;
    let plan = state
        .statement_to_plan(statement)
        .await
        .map_err(QueryError::from_datafusion)?;
    // Defence in depth: DataFusion refuses the same statements.
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|e| QueryError::ReadOnly(e.strip_backtrace()))?;
    checked_frame(state, plan, read)
}

/// A read-only plan as a statement of `state`'s session, refused when it scans a table the
/// session may not read; `read` is told which datasets it reads either way. A plan made by
/// [`plan_sql`] earlier in the same session (a kept one's prepared statement) runs through
/// here again.
fn checked_frame(
    state: datafusion::execution::SessionState,
    plan: LogicalPlan,
    read: &mut Vec<DatasetRef>,
) -> Result<DataFrame> {
    *read = datasets_read(&plan);
    refuse_unreadable(
        &plan,
        state.config().get_extension::<SessionControl>().as_deref(),
    )?;
    Ok(DataFrame::new(state, plan))
}

/// Refuses a plan that scans a table its session may only discover, subqueries and EXPLAIN
/// included, naming the first such table (which the principal may discover, so naming it leaks
/// nothing).
fn refuse_unreadable(plan: &LogicalPlan, control: Option<&SessionControl>) -> Result<()> {
    let mut refused = None;
    let mut governed = None;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
            && let Some(table) = provider.downcast_ref::<DatasetTable>()
        {
            if table.access == TableAccess::DiscoverOnly {
                refused = Some(table.reference.clone());
                return Ok(TreeNodeRecursion::Stop);
            }
            if table.governed {
                governed = Some(table.reference.clone());
            }
        }
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
            && let Some(table) = provider.downcast_ref::<crate::governed::RowFilteredTable>()
        {
            governed = Some(table.reference.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(QueryError::from_datafusion)?;
    let who = control.map(|c| &c.request.principal);
    if let Some(table) = refused {
        return Err(QueryError::Forbidden(refusal(who, &table)));
    }
    // The plan of a governed table is a policy's internals: its masks and row filter.
    if let (LogicalPlan::Explain(_) | LogicalPlan::Analyze(_), Some(table)) = (plan, governed) {
        let who = who.map_or_else(|| "this session".to_string(), |p| p.to_string());
        return Err(QueryError::Forbidden(format!(
            "{who} reads dataset {table} masked or row-filtered, and EXPLAIN would show how: EXPLAIN is for plans over datasets read in full"
        )));
    }
    Ok(())
}

/// Why reading `table` is refused: who may not read what, and how to ask. A team (a product's
/// owner, reading for its transform) is granted by the input's owners, not by a request: a
/// request grants the user who makes it.
pub(crate) fn refusal(principal: Option<&tessera_core::Principal>, table: &DatasetRef) -> String {
    let who = principal.map_or_else(|| "this session".to_string(), |p| p.to_string());
    let product = format!("{}.{}", table.domain, table.product);
    let how = match principal {
        Some(p) if p.kind == tessera_core::PrincipalKind::Team => format!(
            "its owner team or an admin grants it with `tessera access grant {product} --team \"{}\"`",
            p.name
        ),
        _ => format!(
            "ask for one with `tessera access request {product} --purpose \"what it is for\"`"
        ),
    };
    format!(
        "{who} may not read dataset {table}: reading another team's product needs a grant ({how})"
    )
}

/// Accepts exactly what only reads, nested no deeper than [`MAX_NESTING`].
fn check_statement(statement: &DFStatement) -> Result<()> {
    match statement {
        DFStatement::Statement(s) => {
            read_only(s).map_err(|kind| {
                QueryError::ReadOnly(format!("{kind} statements are not allowed"))
            })?;
            if nesting(s, MAX_NESTING).is_none() {
                return Err(QueryError::Invalid(too_deep_message(MAX_NESTING)));
            }
            Ok(())
        }
        DFStatement::Explain(explain) => check_statement(&explain.statement),
        DFStatement::CreateExternalTable(_) => Err(QueryError::ReadOnly(
            "CREATE EXTERNAL TABLE statements are not allowed".into(),
        )),
        DFStatement::CopyTo(_) => Err(QueryError::ReadOnly(
            "COPY statements are not allowed".into(),
        )),
        DFStatement::Reset(_) => Err(QueryError::ReadOnly(
            "RESET statements are not allowed".into(),
        )),
    }
}

/// The settings of every Tessera session.
fn session_config(target_partitions: usize) -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_target_partitions(target_partitions)
        .with_default_catalog_and_schema(DEFAULT_CATALOG, DEFAULT_SCHEMA)
        .with_create_default_catalog_and_schema(true);
    // Tables declare their contract's types (Utf8, not Utf8View); scans must produce those same
    // types, and results keep the types the contracts name.
    let options = config.options_mut();
    options.execution.parquet.schema_force_view_types = false;
    options.sql_parser.map_string_types_to_utf8view = false;
    config
}

/// Why a query's token was cancelled, for the error it ends with.
struct Cancelled {
    deadline: Instant,
    timeout_seconds: u64,
    token: CancellationToken,
}

impl Cancelled {
    /// Runs `work` until it ends or its token is cancelled; an error caused by the
    /// cancellation (an interrupted join) is reported as the cancellation.
    async fn guard<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let outcome = tokio::select! {
            biased;
            _ = self.token.cancelled() => Err(self.reason()),
            outcome = work => outcome,
        };
        outcome.map_err(|e| {
            if self.token.is_cancelled() {
                self.reason()
            } else {
                e
            }
        })
    }

    fn reason(&self) -> QueryError {
        if Instant::now() >= self.deadline {
            QueryError::Timeout(self.timeout_seconds)
        } else {
            QueryError::ShuttingDown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn constant(sql: &str) -> bool {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t (a INT)").await.unwrap();
        let df = ctx.sql(sql).await.unwrap();
        constant_statement(df.logical_plan())
    }

    #[tokio::test]
    async fn statements_of_constants_are_told_from_the_rest() {
        for sql in [
            "SELECT 1",
            "SELECT version()",
            "SELECT upper('a') AS x WHERE 1 < 2 ORDER BY x LIMIT 1",
        ] {
            assert!(constant(sql).await, "{sql}");
        }
        for sql in [
            "SELECT a FROM t",
            "SELECT now()",
            "SELECT random()",
            "SELECT $1",
            "SELECT (SELECT max(a) FROM t)",
            "SELECT * FROM (VALUES (1), (2))",
            "SELECT count(*)",
        ] {
            assert!(!constant(sql).await, "{sql}");
        }
    }
}
