//! A dataset read through a row filter, as one opaque table: its governed plan (`masks.rs`:
//! projection of masks over the row filter over the scan) is planned inside `scan`, and no
//! predicate of the query is pushed into it. A view would be inlined, and the optimizer could
//! then merge the query's predicates with the row filter and evaluate them first — an error or
//! a division by zero in the query's predicate would then tell something about rows the filter
//! hides.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Column;
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::ExecutionPlan;
use tessera_core::DatasetRef;

#[derive(Debug)]
pub(crate) struct RowFilteredTable {
    pub(crate) reference: DatasetRef,
    plan: LogicalPlan,
    schema: SchemaRef,
}

impl RowFilteredTable {
    pub(crate) fn new(reference: DatasetRef, plan: LogicalPlan) -> Self {
        let schema = Arc::new(plan.schema().as_arrow().clone());
        Self {
            reference,
            plan,
            schema,
        }
    }
}

#[async_trait]
impl TableProvider for RowFilteredTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    // The default answers every filter `Unsupported`: the query's predicates stay above.

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        // A hint only: the query's own LIMIT stays above this scan.
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = match projection {
            Some(columns) => LogicalPlanBuilder::from(self.plan.clone())
                .project(
                    columns
                        .iter()
                        .map(|&i| Expr::Column(Column::from_name(self.schema.field(i).name())))
                        .collect::<Vec<_>>(),
                )?
                .build()?,
            None => self.plan.clone(),
        };
        state.create_physical_plan(&plan).await
    }
}
