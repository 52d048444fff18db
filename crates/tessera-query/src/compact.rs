//! Sorting what an aggregation emits without counting its memory over and over.
//!
//! An aggregation emits its groups as one large batch cut into slices of `batch_size` rows,
//! and each slice still points into the whole batch's buffers. A sort reserves memory for each
//! batch it buffers by the size of the buffers the batch holds, so every slice is counted as
//! the whole output: 944k groups of 44 MB were counted as 2.7 GB, the sort spilled four times
//! alone and failed its query's memory limit when another query ran beside it (DataFusion
//! issue 19679 and its neighbours). [`CompactSortInputs`] puts a [`CompactSlices`] under every
//! sort that buffers its whole input; it copies a batch into buffers of its own only when the
//! batch holds far more memory than its rows use, so the sort counts what it keeps and the
//! large batch is freed once its last slice has been copied. Batches of their own (a scan's,
//! a join's) pass through untouched.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take;
use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::utils::memory::get_record_batch_memory_size;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterDescription, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr,
    PlanProperties, ReplaceChildrenOptions,
};
use futures::StreamExt;

/// A batch is copied when the buffers it holds are more than this many times what its rows
/// use (and more than [`COPY_AT_LEAST_BYTES`] over it): a slice of a large batch, not a
/// batch with some spare capacity.
const OVERCOUNT_FACTOR: usize = 2;
const COPY_AT_LEAST_BYTES: usize = 1 << 20;

/// The physical optimizer rule; see the module documentation. It runs after DataFusion's own
/// rules, so the pushdowns they made through the sort's input stay as they are.
#[derive(Debug, Default)]
pub(crate) struct CompactSortInputs;

impl PhysicalOptimizerRule for CompactSortInputs {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(sort) = node.downcast_ref::<SortExec>() else {
                return Ok(Transformed::no(node));
            };
            // A top-k sort keeps only its best rows and compacts them itself.
            if sort.fetch().is_some() || sort.input().downcast_ref::<CompactSlices>().is_some() {
                return Ok(Transformed::no(node));
            }
            // The sort's input keeps its properties (they are the same `Arc`).
            let input: Arc<dyn ExecutionPlan> = CompactSlices::new(sort.input().clone());
            let keep = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep);
            Ok(Transformed::yes(
                node.clone().replace_children(vec![input], keep)?,
            ))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "tessera_compact_sort_inputs"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Passes its input's batches through, copying those that are slices of a much larger batch
/// into buffers of their own. Its output is its input's: same rows, order and partitions.
#[derive(Debug)]
pub(crate) struct CompactSlices {
    input: Arc<dyn ExecutionPlan>,
    metrics: ExecutionPlanMetricsSet,
}

impl CompactSlices {
    pub(crate) fn new(input: Arc<dyn ExecutionPlan>) -> Arc<Self> {
        Arc::new(Self {
            input,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

impl DisplayAs for CompactSlices {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}", self.name())
    }
}

impl ExecutionPlan for CompactSlices {
    fn name(&self) -> &str {
        "CompactSlices"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
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
        let input = crate::barrier::only_child(children, self.name())?;
        Ok(CompactSlices::new(input))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn gather_filters_for_pushdown(
        &self,
        _phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> Result<FilterDescription> {
        FilterDescription::from_children(parent_filters, &self.children())
    }

    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        Ok(FilterPushdownPropagation::if_all(child_pushdown_result))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let copied: Count = MetricBuilder::new(&self.metrics).counter("copied_slices", partition);
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let batches = input.map(move |batch| {
            let batch = batch?;
            if !is_slice_of_larger(&batch)? {
                return Ok(batch);
            }
            copied.add(1);
            compacted(&batch)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

/// Whether the buffers `batch` holds are far larger than what its rows use.
fn is_slice_of_larger(batch: &RecordBatch) -> Result<bool> {
    let held = get_record_batch_memory_size(batch);
    // Most batches (a scan's) hold less than the margin: no need to sum what their rows use.
    if held <= COPY_AT_LEAST_BYTES {
        return Ok(false);
    }
    let mut used = 0;
    for column in batch.columns() {
        used += column.to_data().get_slice_memory_size()?;
        // A view array's slice size counts its views, not the strings they point to.
        if let Some(views) = column.as_string_view_opt() {
            used += out_of_line_bytes(views.views());
        } else if let Some(views) = column.as_binary_view_opt() {
            used += out_of_line_bytes(views.views());
        }
    }
    Ok(held
        > used
            .saturating_mul(OVERCOUNT_FACTOR)
            .saturating_add(COPY_AT_LEAST_BYTES))
}

/// The bytes of the values a view array keeps in its data buffers: those longer than the 12
/// a view holds inline (a view's low 32 bits are its value's length).
fn out_of_line_bytes(views: &[u128]) -> usize {
    views
        .iter()
        .map(|view| *view as u32 as usize)
        .filter(|length| *length > 12)
        .sum()
}

/// `batch`'s rows copied into buffers of their own, sized to them: taken row by row (string
/// views: their views taken and the strings they point to copied).
fn compacted(batch: &RecordBatch) -> Result<RecordBatch> {
    let rows = UInt32Array::from_iter_values(0..batch.num_rows() as u32);
    let columns = batch
        .columns()
        .iter()
        .map(|column| {
            if let Some(views) = column.as_string_view_opt() {
                Ok(Arc::new(views.gc()) as ArrayRef)
            } else if let Some(views) = column.as_binary_view_opt() {
                Ok(Arc::new(views.gc()) as ArrayRef)
            } else {
                take(column, &rows, None)
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}
