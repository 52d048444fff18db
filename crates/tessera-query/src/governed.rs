//! A dataset read through a row filter, as one opaque table: its governed plan (`masks.rs`:
//! projection of masks over the row filter over the scan) is planned inside `scan`, and no
//! predicate of the query is pushed into it. A view would be inlined, and the optimizer could
//! then merge the query's predicates with the row filter and evaluate them first — an error or
//! a division by zero in the query's predicate would then tell something about rows the filter
//! hides.
//!
//! The physical plan of that scan sits under a [`RowFilterBarrier`], for the same reason one
//! level down: DataFusion's physical filter pushdown would otherwise carry the query's
//! `FilterExec` predicates (and operators' dynamic filters, which can hold a user's sort
//! expression) down into the row filter's `FilterExec`, to be evaluated on every row. The
//! barrier also keeps the scan's statistics and metrics from telling how many rows the filter
//! hides: the query log counts the rows that come out of it (see `report.rs`).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Column;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
    ReplaceChildrenOptions,
};
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
        Ok(Arc::new(RowFilterBarrier {
            input: state.create_physical_plan(&plan).await?,
        }))
    }
}

/// The rows a row filter kept, as they come out of its plan: nothing above looks into it.
/// Every pushdown DataFusion offers (filters, dynamic filters, limits, projections, sorts,
/// statistics) is the trait's default here, which declines it.
#[derive(Debug)]
pub(crate) struct RowFilterBarrier {
    input: Arc<dyn ExecutionPlan>,
}

impl RowFilterBarrier {
    /// The plan under the barrier (its root's output rows are the rows the filter kept).
    pub(crate) fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
}

impl DisplayAs for RowFilterBarrier {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "RowFilterBarrier")
    }
}

impl ExecutionPlan for RowFilterBarrier {
    fn name(&self) -> &str {
        "RowFilterBarrier"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match children.pop() {
            Some(input) if children.is_empty() => Ok(Arc::new(RowFilterBarrier { input })),
            _ => datafusion::common::internal_err!("a row filter barrier has one child"),
        }
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(
                datafusion::physical_plan::ChildrenPropertiesMode::Recompute,
            ),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}
