use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{DataFrame, SQLOptions, SessionConfig, SessionContext};
use futures::TryStreamExt;
use tessera_core::DatasetRef;
use tessera_storage::Storage;

use crate::error::{QueryError, Result};
use crate::table::DatasetTable;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;

/// Limits and tuning for queries.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Memory all running queries may use together before spilling or failing.
    pub memory_limit_bytes: usize,
    /// Longest a query may run.
    pub timeout_seconds: u64,
    /// Partitions per scan; defaults to the number of cores.
    pub target_partitions: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            memory_limit_bytes: 2 << 30,
            timeout_seconds: 300,
            target_partitions: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// A table the snapshot knows: where it is and what it looks like.
#[derive(Debug, Clone)]
pub struct DatasetEntry {
    pub reference: DatasetRef,
    /// Location relative to the storage root.
    pub location: String,
    pub schema: SchemaRef,
}

/// The mesh's metadata as of one moment: every queryable table.
#[derive(Debug, Clone, Default)]
pub struct MeshSnapshot {
    pub tables: Vec<DatasetEntry>,
}

/// Plans and runs read-only SQL over a [`MeshSnapshot`].
#[derive(Clone)]
pub struct QueryEngine {
    storage: Arc<Storage>,
    runtime: Arc<RuntimeEnv>,
    config: QueryConfig,
}

const DEFAULT_CATALOG: &str = "tessera";
const DEFAULT_SCHEMA: &str = "public";

impl QueryEngine {
    pub fn new(storage: Arc<Storage>, config: QueryConfig) -> Result<Self> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(config.memory_limit_bytes)))
            .build_arc()
            .map_err(QueryError::from_datafusion)?;
        Ok(Self {
            storage,
            runtime,
            config,
        })
    }

    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    /// The session factory: a fresh context whose catalogs are the snapshot's domains.
    pub fn session(&self, snapshot: &MeshSnapshot) -> Result<SessionContext> {
        let config = session_config(self.config.target_partitions);
        let ctx = SessionContext::new_with_config_rt(config, self.runtime.clone());
        crate::functions::register_functions(&ctx);
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
                    let table = DatasetTable {
                        storage: self.storage.clone(),
                        location: entry.location.clone(),
                        schema: entry.schema.clone(),
                    };
                    schema
                        .register_table(entry.reference.dataset.to_string(), Arc::new(table))
                        .map_err(QueryError::from_datafusion)?;
                }
                catalog
                    .register_schema(&product, Arc::new(schema))
                    .map_err(QueryError::from_datafusion)?;
            }
            ctx.register_catalog(domain, Arc::new(catalog));
        }
        Ok(ctx)
    }

    /// Plans one read-only statement. DDL, DML and session statements are refused.
    pub async fn plan(&self, snapshot: &MeshSnapshot, sql: &str) -> Result<DataFrame> {
        if sql.trim().is_empty() {
            return Err(QueryError::Invalid("the query is empty".into()));
        }
        read_only_statement(sql)?;
        let ctx = self.session(snapshot)?;
        // Defence in depth: DataFusion refuses the same statements.
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        ctx.sql_with_options(sql, options)
            .await
            .map_err(QueryError::from_datafusion)
    }

    /// Runs a statement and streams its result, under the time limit for planning and start.
    pub async fn stream(
        &self,
        snapshot: &MeshSnapshot,
        sql: &str,
    ) -> Result<(SchemaRef, SendableRecordBatchStream)> {
        let timeout = Duration::from_secs(self.config.timeout_seconds);
        let run = async {
            let df = self.plan(snapshot, sql).await?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let stream = df
                .execute_stream()
                .await
                .map_err(QueryError::from_datafusion)?;
            Ok((schema, stream))
        };
        tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| QueryError::Timeout(self.config.timeout_seconds))?
    }

    /// Runs a statement and collects its whole result, under the time limit.
    pub async fn collect(
        &self,
        snapshot: &MeshSnapshot,
        sql: &str,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let timeout = Duration::from_secs(self.config.timeout_seconds);
        let run = async {
            let (schema, stream) = self.stream(snapshot, sql).await?;
            let batches: Vec<RecordBatch> = stream
                .try_collect()
                .await
                .map_err(QueryError::from_datafusion)?;
            Ok((schema, batches))
        };
        tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| QueryError::Timeout(self.config.timeout_seconds))?
    }
}

/// The settings of every Tessera session, the mesh's and the ones `tessera test` builds over
/// local files.
pub fn session_config(target_partitions: usize) -> SessionConfig {
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

/// Accepts exactly one statement that only reads: a query, `EXPLAIN` of one, or `SHOW`.
fn read_only_statement(sql: &str) -> Result<()> {
    let statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
        .map_err(|e| QueryError::Invalid(e.to_string()))?;
    if statements.len() != 1 {
        return Err(QueryError::Invalid(format!(
            "expected one SQL statement, found {}",
            statements.len()
        )));
    }
    fn reads_only(statement: &DFStatement) -> bool {
        match statement {
            DFStatement::Statement(s) => match s.as_ref() {
                Statement::Query(_)
                | Statement::ShowTables { .. }
                | Statement::ShowColumns { .. }
                | Statement::ShowSchemas { .. }
                | Statement::ShowCatalogs { .. } => true,
                Statement::Explain { statement, .. } => {
                    matches!(statement.as_ref(), Statement::Query(_))
                }
                _ => false,
            },
            DFStatement::Explain(explain) => reads_only(&explain.statement),
            _ => false,
        }
    }
    let statement = &statements[0];
    if reads_only(statement) {
        Ok(())
    } else {
        // The statement's leading keywords, as the parser prints them: "DROP TABLE", "INSERT INTO".
        let text = statement.to_string();
        let kind: Vec<&str> = text
            .split_whitespace()
            .take_while(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .take(3)
            .collect();
        let kind = if kind.is_empty() {
            "this".to_string()
        } else {
            kind.join(" ")
        };
        Err(QueryError::ReadOnly(format!(
            "{kind} statements are not allowed"
        )))
    }
}
