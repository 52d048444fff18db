//! What the PostgreSQL and Flight SQL front ends share: how a statement's parameters are read
//! from its plan and bound, how a prepared statement is planned, and the session a connection
//! keeps across its statements.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use std::sync::{Arc, Mutex};

use datafusion::prelude::DataFrame;
use tessera_core::RequestContext;
pub(crate) use tessera_query::bind;
use tessera_query::{
    KeptSession, MeshSnapshot, PreparedPlan, QueryError, QueryStream, SessionShape,
};

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
        Ok(not_planned(
            self.query_shaped(cx, sql, Box::new(Ok), shape).await?,
        ))
    }

    /// [`prepare_shaped`](Self::prepare_shaped) in a connection's kept session: the plan runs
    /// through [`query_on`](Self::query_on) without being planned again while the session
    /// stays.
    pub(crate) async fn prepare_on(
        &self,
        cx: &RequestContext,
        sql: &str,
        session: &ConnectionSession,
    ) -> Result<tessera_query::Result<PreparedPlan>> {
        if let Ok(kept) = self.kept_session(cx, session).await?
            && let Ok(plan) = self.engine().plan_kept(&kept, sql, cx).await
        {
            return Ok(Ok(plan));
        }
        Ok(not_planned(
            self.query_on(cx, sql, None, None, session).await?,
        ))
    }

    /// [`query_shaped`](Self::query_shaped) in a connection's kept session with `parameters`
    /// bound, from `prepared` when it was planned in it.
    pub(crate) async fn query_on(
        &self,
        cx: &RequestContext,
        sql: &str,
        prepared: Option<&PreparedPlan>,
        parameters: Option<ParamValues>,
        session: &ConnectionSession,
    ) -> Result<tessera_query::Result<QueryStream>> {
        let Ok(kept) = self.kept_session(cx, session).await? else {
            // A session that cannot be made fails the query as it does for any front end,
            // logged.
            return self
                .query_shaped(cx, sql, bind(parameters), &session.shape)
                .await;
        };
        let observer = self.logged(cx, sql);
        Ok(self
            .engine()
            .execute_kept(&kept, sql, prepared, parameters, cx, observer)
            .await)
    }

    /// The connection's kept session over the principal's snapshot as of now: the one it has
    /// while the snapshot is the same, else a new one.
    async fn kept_session(
        &self,
        cx: &RequestContext,
        session: &ConnectionSession,
    ) -> Result<tessera_query::Result<Arc<KeptSession>>> {
        let snapshot = self.snapshot_for(cx).await?;
        let mut kept = session.kept.lock().expect("kept session");
        if let Some((of, kept)) = kept.as_ref()
            && Arc::ptr_eq(of, &snapshot)
        {
            return Ok(Ok(kept.clone()));
        }
        let made = match self.engine().keep_session(&snapshot, cx, &session.shape) {
            Ok(made) => Arc::new(made),
            Err(e) => return Ok(Err(e)),
        };
        *kept = Some((snapshot, made.clone()));
        Ok(Ok(made))
    }
}

/// A statement that did not plan when prepared, run once so the query log records why: the
/// error it ran into.
fn not_planned<T>(ran: tessera_query::Result<QueryStream>) -> tessera_query::Result<T> {
    match ran {
        Err(e) => Err(e),
        Ok(_) => Err(QueryError::Internal(
            "the statement plans when it runs but not when it is prepared".into(),
        )),
    }
}

/// The session a front end's connection keeps across its statements (the PostgreSQL front
/// end's): the engine's [`KeptSession`] over the principal's snapshot as of its last
/// statement, made again when the snapshot changes (a grant, a revocation, a new dataset or
/// contract), so no statement runs on a stale view of what its principal may read.
pub(crate) struct ConnectionSession {
    shape: SessionShape,
    kept: Mutex<Option<(Arc<MeshSnapshot>, Arc<KeptSession>)>>,
}

impl ConnectionSession {
    pub(crate) fn new(shape: SessionShape) -> Self {
        Self {
            shape,
            kept: Mutex::default(),
        }
    }
}
