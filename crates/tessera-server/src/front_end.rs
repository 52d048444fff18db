//! What the PostgreSQL and Flight SQL front ends share: how a statement's parameters are read
//! from its plan and bound, and how a prepared statement is planned.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::DataFrame;
use tessera_core::RequestContext;
use tessera_query::{QueryError, Refine, SessionShape};

use crate::error::Result;
use crate::mesh::Mesh;

/// A new request id for a statement of a front end's connection.
pub(crate) fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `$1..$n` in order, with the types the plan infers for them.
pub(crate) fn parameter_types(plan: &LogicalPlan) -> tessera_query::Result<Vec<Option<DataType>>> {
    let mut types: Vec<(usize, Option<DataType>)> = plan
        .get_parameter_types()
        .map_err(QueryError::from_datafusion)?
        .into_iter()
        .filter_map(|(id, t)| Some((id.strip_prefix('$')?.parse().ok()?, t)))
        .collect();
    types.sort_by_key(|(n, _)| *n);
    Ok(types.into_iter().map(|(_, t)| t).collect())
}

/// Binds `parameters` (if any) to the statement when it runs, through the engine's refine hook.
pub(crate) fn bind(parameters: Option<ParamValues>) -> Refine {
    match parameters {
        Some(values) => Box::new(move |df| df.with_param_values(values)),
        None => Box::new(Ok),
    }
}

impl Mesh {
    /// Plans a statement to be run later (a prepared statement), as `query_shaped` would run
    /// it. One that does not plan is run once through `query_shaped` instead, so the query log
    /// records the refusal as it would when the statement runs.
    pub(crate) async fn prepare_shaped(
        &self,
        cx: &RequestContext,
        sql: &str,
        shape: &SessionShape,
    ) -> Result<tessera_query::Result<DataFrame>> {
        if let Ok(df) = self.plan_shaped(cx, sql, shape).await? {
            return Ok(Ok(df));
        }
        Ok(
            match self.query_shaped(cx, sql, Box::new(Ok), shape).await? {
                Err(e) => Err(e),
                Ok(_) => Err(QueryError::Internal(
                    "the statement plans when it runs but not when it is prepared".into(),
                )),
            },
        )
    }
}
