//! A physical plan node that passes its input's rows through and declines every pushdown
//! DataFusion offers from above (filters, dynamic filters, limits, projections, sorts: the
//! trait's defaults). Two uses, told apart by [`Barrier`]: the rows a row filter kept
//! (`governed.rs`), and the scan of a table small enough to read whole (`table.rs`).

use std::sync::Arc;

use datafusion::common::Statistics;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
    ReplaceChildrenOptions, StatisticsArgs,
};

/// Why a plan sits under a [`PushdownBarrier`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Barrier {
    /// The rows a row filter kept: nothing above looks into them, their statistics included
    /// (they would tell how many rows the filter hides).
    RowFilter,
    /// A table of small files read whole: the query's predicates stay above the scan (pruning
    /// would cost more than it saves); its statistics are the scan's.
    WholeScan,
}

#[derive(Debug)]
pub(crate) struct PushdownBarrier {
    kind: Barrier,
    input: Arc<dyn ExecutionPlan>,
}

impl PushdownBarrier {
    pub(crate) fn new(kind: Barrier, input: Arc<dyn ExecutionPlan>) -> Arc<Self> {
        Arc::new(Self { kind, input })
    }

    pub(crate) fn kind(&self) -> Barrier {
        self.kind
    }

    /// The plan under the barrier.
    pub(crate) fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
}

/// The child of a node that has one (`node` names it in the error otherwise).
pub(crate) fn only_child(
    mut children: Vec<Arc<dyn ExecutionPlan>>,
    node: &str,
) -> Result<Arc<dyn ExecutionPlan>> {
    match children.pop() {
        Some(input) if children.is_empty() => Ok(input),
        _ => datafusion::common::internal_err!("a {node} has one child"),
    }
}

impl DisplayAs for PushdownBarrier {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}", self.name())
    }
}

impl ExecutionPlan for PushdownBarrier {
    fn name(&self) -> &str {
        match self.kind {
            Barrier::RowFilter => "RowFilterBarrier",
            Barrier::WholeScan => "WholeScan",
        }
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
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = only_child(children, self.name())?;
        Ok(PushdownBarrier::new(self.kind, input))
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

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        match (self.kind, input_stats.first()) {
            (Barrier::WholeScan, Some(stats)) => Ok(stats.clone()),
            (Barrier::WholeScan, None) => Ok(Arc::new(Statistics::new_unknown(&self.schema()))),
            // The trait's default, which knows nothing of the input.
            (Barrier::RowFilter, _) => {
                #[expect(deprecated)]
                let unknown = self.partition_statistics(args.partition());
                unknown
            }
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}
