//! What a query did, told once when it ends, however it ends: the datasets its plan read, what
//! it scanned and returned, its CPU and wall time, and its outcome. The engine reports; the
//! service layer keeps the query log (this crate writes nothing).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::MetricValue;
use tessera_core::DatasetRef;

use crate::error::QueryError;
use crate::table::DatasetTable;

/// How a query ended.
#[derive(Debug, Clone)]
pub enum QueryOutcome {
    /// Every row was returned.
    Finished,
    /// It was refused or failed (the error says whose fault).
    Failed(QueryError),
    /// Its reader went away before the end (a client that disconnected, a dropped stream).
    Abandoned,
}

/// One query's account.
#[derive(Debug, Clone)]
pub struct QueryReport {
    /// The tables its plan read (quarantine tables as themselves), sorted, once each.
    pub datasets: Vec<DatasetRef>,
    pub rows_returned: u64,
    pub bytes_returned: u64,
    /// Rows the scans produced, and the bytes they read from storage.
    pub rows_scanned: u64,
    pub bytes_scanned: u64,
    /// Time the operators computed, summed over threads.
    pub cpu_time: Duration,
    pub wall_time: Duration,
    pub outcome: QueryOutcome,
}

/// Called once with the report of a query.
pub type QueryObserver = Box<dyn FnOnce(QueryReport) + Send>;

/// Collects a query's account as it runs and reports it exactly once: when it ends, or, if it
/// is dropped first (the query was cancelled or abandoned), as `Abandoned`.
pub(crate) struct Reporter {
    observer: Arc<Mutex<Option<QueryObserver>>>,
    started: Instant,
    pub(crate) datasets: Vec<DatasetRef>,
    pub(crate) plan: Option<Arc<dyn ExecutionPlan>>,
    pub(crate) rows_returned: u64,
    pub(crate) bytes_returned: u64,
    finished: bool,
}

impl Reporter {
    pub(crate) fn new(observer: Arc<Mutex<Option<QueryObserver>>>) -> Self {
        Self {
            observer,
            started: Instant::now(),
            datasets: Vec::new(),
            plan: None,
            rows_returned: 0,
            bytes_returned: 0,
            finished: false,
        }
    }

    pub(crate) fn finish(mut self, outcome: QueryOutcome) {
        self.send(outcome);
    }

    fn send(&mut self, outcome: QueryOutcome) {
        self.finished = true;
        let Some(observer) = self.observer.lock().expect("query observer").take() else {
            return;
        };
        let (mut rows_scanned, mut bytes_scanned, mut cpu) = (0, 0, 0u64);
        if let Some(plan) = &self.plan {
            measure(
                plan.as_ref(),
                &mut rows_scanned,
                &mut bytes_scanned,
                &mut cpu,
            );
        }
        observer(QueryReport {
            datasets: std::mem::take(&mut self.datasets),
            rows_returned: self.rows_returned,
            bytes_returned: self.bytes_returned,
            rows_scanned,
            bytes_scanned,
            cpu_time: Duration::from_nanos(cpu),
            wall_time: self.started.elapsed(),
            outcome,
        });
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if !self.finished {
            self.send(QueryOutcome::Abandoned);
        }
    }
}

/// Reports `error` for a query that ended before its reporter ran, unless it was reported.
pub(crate) fn report_early(observer: &Arc<Mutex<Option<QueryObserver>>>, error: &QueryError) {
    Reporter::new(observer.clone()).finish(QueryOutcome::Failed(error.clone()));
}

/// The datasets a logical plan scans, subqueries included.
pub fn datasets_read(plan: &LogicalPlan) -> Vec<DatasetRef> {
    let mut found = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
            && let Some(table) = provider.downcast_ref::<DatasetTable>()
        {
            found.push(table.reference.clone());
        }
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
            && let Some(table) = provider.downcast_ref::<crate::governed::RowFilteredTable>()
        {
            found.push(table.reference.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found.sort_by_key(|r| r.to_string());
    found.dedup();
    found
}

/// Adds up the plan's metrics: rows out of its leaves (the scans), bytes they read, and the
/// compute time of every operator. A scan through a row filter counts the rows the filter
/// kept and no bytes: its reader is not told how much the filter hides.
fn measure(plan: &dyn ExecutionPlan, rows: &mut u64, bytes: &mut u64, cpu: &mut u64) {
    if let Some(barrier) = plan
        .downcast_ref::<crate::barrier::PushdownBarrier>()
        .filter(|b| b.kind() == crate::barrier::Barrier::RowFilter)
    {
        let kept = barrier.input().metrics().and_then(|m| m.output_rows());
        *rows += kept.unwrap_or(0) as u64;
        let (mut hidden_rows, mut hidden_bytes) = (0, 0);
        measure(
            barrier.input().as_ref(),
            &mut hidden_rows,
            &mut hidden_bytes,
            cpu,
        );
        return;
    }
    if let Some(metrics) = plan.metrics() {
        for metric in metrics.iter() {
            match metric.value() {
                MetricValue::ElapsedCompute(t) => *cpu += t.value() as u64,
                MetricValue::OutputRows(n) if plan.children().is_empty() => {
                    *rows += n.value() as u64
                }
                MetricValue::Count { name, count } if name == "bytes_scanned" => {
                    *bytes += count.value() as u64
                }
                _ => {}
            }
        }
    }
    for child in plan.children() {
        measure(child.as_ref(), rows, bytes, cpu);
    }
}
