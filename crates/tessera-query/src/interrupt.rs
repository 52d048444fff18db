//! Stopping a query inside an operator that does not yield.
//!
//! Cancelling a task takes effect when it next yields to the runtime, and DataFusion's
//! operators yield between batches. A join with a filter does not: for each batch of one side
//! it evaluates the filter against every row of the other, and returns only once it has a
//! batch of matches — with a filter that matches little, one poll can run for minutes. Each
//! session carries a cancellation token (cancelled when its query runs out of time, its reader
//! goes away or the server stops), and [`InterruptibleJoins`] wraps the filter of every nested
//! loop and hash join in [`Interruptible`], which checks the token before each evaluation (an
//! atomic load per batch step): the join then ends with an error within one step. A session
//! kept for a connection's statements gets a new token for each; the rule reads it from a
//! [`TokenSlot`] when the statement is planned, so each plan holds its own statement's token.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::datatypes::{FieldRef, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::utils::JoinFilter;
use datafusion::physical_plan::joins::{
    HashJoinExec, NestedLoopJoinExec, NestedLoopJoinExecBuilder,
};
use tokio_util::sync::CancellationToken;

/// The message of the error an interrupted join ends with; the engine reports the reason
/// (time limit, shutdown) instead.
pub(crate) const INTERRUPTED: &str = "the query was cancelled";

/// The physical optimizer rule; see the module documentation. One per session.
#[derive(Debug)]
pub(crate) struct InterruptibleJoins {
    pub(crate) token: TokenSlot,
}

/// The token of the statement a session plans now: set when the session is made and again
/// when a kept session is renewed for its next statement.
#[derive(Debug, Clone)]
pub(crate) struct TokenSlot(Arc<std::sync::Mutex<CancellationToken>>);

impl TokenSlot {
    pub(crate) fn new(token: CancellationToken) -> Self {
        Self(Arc::new(std::sync::Mutex::new(token)))
    }

    pub(crate) fn set(&self, token: CancellationToken) {
        *self.0.lock().expect("token slot") = token;
    }

    fn get(&self) -> CancellationToken {
        self.0.lock().expect("token slot").clone()
    }
}

impl PhysicalOptimizerRule for InterruptibleJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let token = self.token.get();
        plan.transform_up(|node| {
            if let Some(join) = node.downcast_ref::<NestedLoopJoinExec>()
                && let Some(filter) = join.filter()
                && !is_interruptible(filter)
            {
                let rebuilt = NestedLoopJoinExecBuilder::from(join)
                    .with_filter(Some(wrap(filter, &token)))
                    .build()?;
                return Ok(Transformed::yes(Arc::new(rebuilt) as Arc<dyn ExecutionPlan>));
            }
            if let Some(join) = node.downcast_ref::<HashJoinExec>()
                && let Some(filter) = join.filter()
                && !is_interruptible(filter)
            {
                let rebuilt = join
                    .builder()
                    .with_filter(Some(wrap(filter, &token)))
                    .build()?;
                return Ok(Transformed::yes(Arc::new(rebuilt) as Arc<dyn ExecutionPlan>));
            }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "tessera_interruptible_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn wrap(filter: &JoinFilter, token: &CancellationToken) -> JoinFilter {
    JoinFilter::new(
        Arc::new(Interruptible {
            inner: filter.expression().clone(),
            token: token.clone(),
        }),
        filter.column_indices().to_vec(),
        filter.schema().clone(),
    )
}

fn is_interruptible(filter: &JoinFilter) -> bool {
    filter
        .expression()
        .downcast_ref::<Interruptible>()
        .is_some()
}

/// An expression that fails once its query is cancelled, and is its inner expression until
/// then (shown as it, too).
#[derive(Debug)]
pub(crate) struct Interruptible {
    inner: Arc<dyn PhysicalExpr>,
    token: CancellationToken,
}

impl PartialEq for Interruptible {
    fn eq(&self, other: &Self) -> bool {
        self.inner.as_ref() == other.inner.as_ref()
    }
}

impl Eq for Interruptible {}

impl Hash for Interruptible {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
    }
}

impl fmt::Display for Interruptible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl PhysicalExpr for Interruptible {
    fn return_field(&self, input_schema: &Schema) -> Result<FieldRef> {
        self.inner.return_field(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        if self.token.is_cancelled() {
            return Err(DataFusionError::Execution(INTERRUPTED.into()));
        }
        self.inner.evaluate(batch)
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.inner]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        match children.pop() {
            Some(inner) if children.is_empty() => Ok(Arc::new(Interruptible {
                inner,
                token: self.token.clone(),
            })),
            _ => Err(DataFusionError::Internal(
                "an interruptible expression has one child".into(),
            )),
        }
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt_sql(f)
    }
}
