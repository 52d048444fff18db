//! `pg_catalog` for one PostgreSQL connection: what psql's `\l`, `\dn`, `\dt` and `\d`, and the
//! catalog queries of drivers and BI tools, read. The tables come from `datafusion-pg-catalog`
//! and see exactly what the connection's principal may discover (they read the statement's own
//! governed session); the database is the connected domain, its schemas are the domain's
//! products, and `\l` lists every domain the principal may discover.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProviderList, MemoryCatalogProviderList, TableFunctionImpl};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::catalog_info::CatalogInfo;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::{
    PgCatalogSchemaProvider, PgCatalogStaticTables, array_bounds_udf, create_current_database_udf,
    create_current_schema_udf, create_current_schemas_udf, create_pg_backend_pid_udf,
    create_pg_encoding_to_char_udf, create_pg_get_constraintdef,
    create_pg_get_partition_ancestors_udf, create_pg_get_partkeydef_udf,
    create_pg_get_statisticsobjdef_columns_udf, create_pg_get_userbyid_udf,
    create_pg_relation_is_publishable_udf, create_pg_relation_size_udf,
    create_pg_stat_get_numscans, create_pg_table_is_visible, create_pg_total_relation_size_udf,
    create_session_user_udf, format_type, generate_series_arg_coercion, has_privilege_udf,
    oid_type_planner, pg_get_expr_udf, quote_ident_udf,
};

/// The schemas a session has besides the mesh's products, hidden from `\dn` and `\dt`.
const SYSTEM_SCHEMAS: [&str; 3] = [
    "pg_catalog",
    "information_schema",
    tessera_query::META_SCHEMA,
];

/// The catalog as one connection shows it: the catalog list of the statement being planned
/// (its governed session), scoped to the connected domain.
#[derive(Clone, Debug)]
pub(super) struct ScopedCatalog {
    domain: String,
    list: Arc<RwLock<Arc<dyn CatalogProviderList>>>,
}

impl ScopedCatalog {
    fn list(&self) -> Arc<dyn CatalogProviderList> {
        self.list.read().expect("catalog list").clone()
    }
}

#[async_trait]
impl CatalogInfo for ScopedCatalog {
    /// Every domain with something the principal may discover: `\l`.
    async fn catalog_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = CatalogProviderList::catalog_names(self.list().as_ref())
            .into_iter()
            .filter(|c| c != tessera_query::DEFAULT_CATALOG)
            .collect();
        names.sort();
        Ok(names)
    }

    /// The connected domain's products (`\dn`); other domains show none, as another database
    /// of a PostgreSQL server does.
    async fn schema_names(&self, catalog: &str) -> Result<Option<Vec<String>>> {
        if catalog != self.domain {
            return Ok(Some(Vec::new()));
        }
        Ok(self.list().catalog(catalog).map(|c| {
            let mut names: Vec<String> = c
                .schema_names()
                .into_iter()
                .filter(|s| !SYSTEM_SCHEMAS.contains(&s.as_str()))
                .collect();
            names.sort();
            names
        }))
    }

    async fn table_names(&self, catalog: &str, schema: &str) -> Result<Option<Vec<String>>> {
        if catalog != self.domain || SYSTEM_SCHEMAS.contains(&schema) {
            return Ok(Some(Vec::new()));
        }
        CatalogInfo::table_names(&self.list(), catalog, schema).await
    }

    /// As the principal's session sees it: masked columns have their masked type.
    async fn table_schema(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<Option<SchemaRef>> {
        CatalogInfo::table_schema(&self.list(), catalog, schema, table).await
    }

    /// Always a table: a masked or row-filtered dataset is a view inside Tessera, but to its
    /// reader it is the dataset (and `\dt` lists tables only).
    async fn table_type(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<Option<TableType>> {
        Ok(self
            .table_schema(catalog, schema, table)
            .await?
            .map(|_| TableType::Base))
    }
}

/// One connection's `pg_catalog`: built once at connect (so the oids psql reads in one
/// statement hold in the next) and installed into each statement's session.
pub(super) struct PgCatalog {
    domain: String,
    scoped: ScopedCatalog,
    schema: Arc<PgCatalogSchemaProvider<ScopedCatalog, EmptyContextProvider>>,
    functions: Vec<ScalarUDF>,
    keywords: Arc<dyn TableFunctionImpl>,
    series: Arc<WidenedFunctions>,
}

impl PgCatalog {
    pub(super) fn new(
        domain: &str,
        tables: Arc<PgCatalogStaticTables>,
        series: Arc<WidenedFunctions>,
    ) -> Result<Self> {
        let scoped = ScopedCatalog {
            domain: domain.to_string(),
            list: Arc::new(RwLock::new(Arc::new(MemoryCatalogProviderList::new()))),
        };
        let schema = Arc::new(PgCatalogSchemaProvider::try_new(
            scoped.clone(),
            tables.clone(),
            EmptyContextProvider,
        )?);
        // The functions `setup_pg_catalog` registers, made once per connection.
        let functions = vec![
            create_current_database_udf(domain),
            create_current_schema_udf(),
            create_current_schemas_udf(),
            create_pg_get_userbyid_udf(),
            has_privilege_udf::create_has_privilege_udf("has_table_privilege"),
            has_privilege_udf::create_has_privilege_udf("has_schema_privilege"),
            has_privilege_udf::create_has_privilege_udf("has_database_privilege"),
            has_privilege_udf::create_has_privilege_udf("has_any_column_privilege"),
            create_pg_table_is_visible(),
            format_type::create_format_type_udf(),
            create_session_user_udf(),
            pg_get_expr_udf::create_pg_get_expr_udf(),
            create_pg_get_partkeydef_udf(),
            create_pg_relation_is_publishable_udf(),
            create_pg_get_statisticsobjdef_columns_udf(),
            create_pg_encoding_to_char_udf(),
            create_pg_backend_pid_udf(),
            create_pg_relation_size_udf(),
            create_pg_total_relation_size_udf(),
            create_pg_stat_get_numscans(),
            create_pg_get_constraintdef(),
            create_pg_get_partition_ancestors_udf(),
            quote_ident_udf::create_quote_ident_udf(),
            quote_ident_udf::create_parse_ident_udf(),
            array_bounds_udf::create_array_upper_udf(),
            array_bounds_udf::create_array_lower_udf(),
        ];
        Ok(Self {
            domain: domain.to_string(),
            scoped,
            schema,
            functions,
            keywords: tables.pg_get_keywords.clone(),
            series,
        })
    }

    /// How PostgreSQL's oid types (`regclass`, `regproc`...) plan: as int4, as
    /// `setup_pg_catalog` has it (see `SessionShape::type_planner`).
    pub(super) fn type_planner() -> Arc<dyn datafusion::logical_expr::planner::TypePlanner> {
        Arc::new(oid_type_planner::PgOidTypePlanner)
    }

    /// Adds `pg_catalog` and PostgreSQL's catalog functions to a statement's session (see
    /// `SessionShape::extend`); the catalog tables then read that session's tables.
    pub(super) fn install(&self, ctx: &SessionContext) -> Result<()> {
        *self.scoped.list.write().expect("catalog list") =
            ctx.state_ref().read().catalog_list().clone();
        ctx.catalog(&self.domain)
            .ok_or_else(|| {
                DataFusionError::Internal(format!("the catalog {} is missing", self.domain))
            })?
            .register_schema("pg_catalog", self.schema.clone())?;
        for function in &self.functions {
            ctx.register_udf(function.clone());
        }
        ctx.register_udtf("pg_get_keywords", self.keywords.clone());
        for (name, function) in self.series.iter() {
            ctx.register_udtf(name, function.clone());
        }
        Ok(())
    }
}

/// `generate_series` and `range` taking PostgreSQL's int4 arguments, as
/// `CoerceIntArgsToBigInt::widen` makes them in `session` (one of the engine's). Made once per
/// server: `widen` itself copies the whole session state twice, which each statement would pay
/// for.
pub(super) fn widened_series_functions(session: &SessionContext) -> WidenedFunctions {
    generate_series_arg_coercion::CoerceIntArgsToBigInt::widen(session);
    let state = session.state_ref();
    let state = state.read();
    ["generate_series", "range"]
        .into_iter()
        .filter_map(|name| {
            let function = state.table_functions().get(name)?.function().clone();
            Some((name.to_string(), function))
        })
        .collect()
}

/// Table functions by name, installed into every statement's session.
pub(super) type WidenedFunctions = Vec<(String, Arc<dyn TableFunctionImpl>)>;
