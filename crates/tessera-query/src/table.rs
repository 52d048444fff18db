//! A dataset as a DataFusion table: the schema comes from the metadata snapshot, the data from
//! the Delta table's latest snapshot, brought up to date when a query scans it.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use tessera_core::DatasetRef;
use tessera_storage::Storage;

use crate::barrier::{Barrier, PushdownBarrier};
use crate::engine::TableAccess;

/// A table of small files (see [`PRUNING_MIN_FILE_ROWS`]) is read whole rather than pruned by
/// the query's predicates while it holds less than this.
pub(crate) const PRUNING_MIN_BYTES: u64 = 32 << 20;
/// The rows a file holds on average under which pruning it costs more than reading it whole.
pub(crate) const PRUNING_MIN_FILE_ROWS: u64 = 20_000;

#[derive(Debug)]
pub(crate) struct DatasetTable {
    pub(crate) storage: Arc<Storage>,
    pub(crate) reference: DatasetRef,
    pub(crate) location: String,
    pub(crate) schema: SchemaRef,
    pub(crate) access: TableAccess,
    /// Read only through the governed plan of a masked or row-filtered principal (so EXPLAIN,
    /// which would show that plan, is refused).
    pub(crate) governed: bool,
}

#[async_trait]
impl TableProvider for DatasetTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Filters go to the Delta scan for file skipping; DataFusion still applies them.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // `plan_sql` refuses such plans with a clear message; this is the second lock.
        if self.access != TableAccess::Read {
            return Err(DataFusionError::Plan(crate::engine::refusal(
                None,
                &self.reference,
            )));
        }
        let provider = self
            .storage
            .scan_provider(&self.location, state)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        match provider {
            // Skipping files and row groups by a predicate costs delta-rs and the Parquet reader
            // fixed work for every file (the predicate built against its statistics, its bloom
            // filters read: about 0.1 ms a file here); a file of fewer than
            // `PRUNING_MIN_FILE_ROWS` rows is read whole in less time than that buys. A table of
            // such files (under `PRUNING_MIN_BYTES` in all) is read whole: the filters stay above
            // the scan (they are Inexact: DataFusion applies them either way), and the scan
            // declines the physical pushdown that would carry them down again.
            Some((delta, files))
                if files.bytes < PRUNING_MIN_BYTES
                    && files.rows.is_some_and(|rows| {
                        rows < PRUNING_MIN_FILE_ROWS * files.count.max(1) as u64
                    }) =>
            {
                Ok(PushdownBarrier::new(
                    Barrier::WholeScan,
                    delta.scan(state, projection, &[], limit).await?,
                ))
            }
            Some((delta, _)) => delta.scan(state, projection, filters, limit).await,
            // The table is gone from storage: an empty result, as for a dataset never loaded.
            None => {
                let schema = match projection {
                    Some(p) => Arc::new(self.schema.project(p)?),
                    None => self.schema.clone(),
                };
                Ok(Arc::new(EmptyExec::new(schema)))
            }
        }
    }
}
