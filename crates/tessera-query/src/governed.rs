//! A dataset read through a row filter, as one opaque table: its governed plan (`masks.rs`:
//! projection of masks over the row filter over the scan) is analyzed once, and each query's
//! `scan` plans the physical filter and projection over the dataset's scan directly; no
//! predicate of the query is pushed into it. A view would be inlined, and the optimizer could
//! then merge the query's predicates with the row filter and evaluate them first — an error or
//! a division by zero in the query's predicate would then tell something about rows the filter
//! hides.
//!
//! The physical plan of that scan sits under a row-filter [`PushdownBarrier`], for the same reason one
//! level down: DataFusion's physical filter pushdown would otherwise carry the query's
//! `FilterExec` predicates (and operators' dynamic filters, which can hold a user's sort
//! expression) down into the row filter's `FilterExec`, to be evaluated on every row. The
//! barrier also keeps the scan's statistics and metrics from telling how many rows the filter
//! hides: the query log counts the rows that come out of it (see `report.rs`).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, TableReference};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use tessera_core::DatasetRef;

use crate::barrier::{Barrier, PushdownBarrier};
use crate::error::QueryError;

/// A dataset read through a row filter: `SELECT outputs FROM dataset WHERE row_filter`, its
/// expressions analyzed (types coerced) once, when the principal's view is made.
#[derive(Debug)]
pub(crate) struct RowFilteredTable {
    pub(crate) reference: DatasetRef,
    /// The dataset as the scan reads it.
    dataset: Arc<dyn TableProvider>,
    /// The name its columns are qualified with in the expressions below.
    qualifier: TableReference,
    row_filter: Expr,
    /// One expression per column of `schema`: the column itself, or its mask.
    outputs: Vec<Expr>,
    schema: SchemaRef,
}

impl RowFilteredTable {
    /// From the analyzed governed plan `Projection(outputs) ← Filter(row filter) ← TableScan`.
    pub(crate) fn new(
        reference: DatasetRef,
        dataset: Arc<dyn TableProvider>,
        analyzed: &LogicalPlan,
    ) -> std::result::Result<Self, QueryError> {
        let shape = || {
            QueryError::Internal(format!(
                "the governed plan of {reference} is not a projection over a filter over a scan"
            ))
        };
        let LogicalPlan::Projection(projection) = analyzed else {
            return Err(shape());
        };
        let LogicalPlan::Filter(filter) = projection.input.as_ref() else {
            return Err(shape());
        };
        let LogicalPlan::TableScan(scan) = filter.input.as_ref() else {
            return Err(shape());
        };
        Ok(Self {
            qualifier: scan.table_name.clone(),
            dataset,
            row_filter: filter.predicate.clone(),
            outputs: projection
                .expr
                .iter()
                .map(|e| e.clone().unalias())
                .collect(),
            schema: Arc::new(analyzed.schema().as_arrow().clone()),
            reference,
        })
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
        let wanted: Vec<usize> = match projection {
            Some(columns) => columns.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        // The dataset's columns the wanted outputs and the row filter read.
        let dataset_schema = self.dataset.schema();
        let mut read = BTreeSet::new();
        for expr in wanted
            .iter()
            .map(|&i| &self.outputs[i])
            .chain(std::iter::once(&self.row_filter))
        {
            for column in expr.column_refs() {
                read.insert(dataset_schema.index_of(&column.name)?);
            }
        }
        let read: Vec<usize> = read.into_iter().collect();
        // The row filter goes into the scan too, for skipping files (it is applied above).
        let input = self
            .dataset
            .scan(
                state,
                Some(&read),
                std::slice::from_ref(&self.row_filter),
                None,
            )
            .await?;
        let columns = DFSchema::try_from_qualified_schema(self.qualifier.clone(), &input.schema())?;
        let predicate = state.create_physical_expr(self.row_filter.clone(), &columns)?;
        let filtered: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(predicate, input)?);
        let outputs = wanted
            .iter()
            .map(|&i| {
                Ok((
                    state.create_physical_expr(self.outputs[i].clone(), &columns)?,
                    self.schema.field(i).name().clone(),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PushdownBarrier::new(
            Barrier::RowFilter,
            Arc::new(ProjectionExec::try_new(outputs, filtered)?),
        ))
    }
}
