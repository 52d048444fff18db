//! The PostgreSQL wire front end: `psql -h HOST -p 5433 -U USER -d DOMAIN` with the user's API
//! token as the password. The database is a domain and a schema is one of its products; SQL may
//! still name any dataset as `domain.product.dataset`. Every statement runs as the token's
//! principal through the one governed session (`Mesh::query_shaped`): the same masks, row
//! filters, limits and query log as the HTTP API, logged with front end `postgres`.
//!
//! `pgwire` speaks the protocol (startup, simple and extended queries, portals); `arrow-pg`
//! encodes Arrow batches as rows and decodes bound parameters; `datafusion-pg-catalog` rewrites
//! the catalog queries of psql and drivers and serves `pg_catalog` (see `catalog.rs`). Tessera
//! supplies what those leave open: the token check, a session kept per connection for its
//! principal (made again when what the principal may see changes; a statement prepared in it
//! is not planned again when it runs), SQLSTATEs, session statements (SET, SHOW, BEGIN) and
//! cancellation.

mod catalog;
mod rows;
mod socket;
mod text;

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use arrow_pg::datatypes::df::deserialize_parameters;
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, into_pg_type};
use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast::{Set, Statement, TransactionAccessMode, TransactionMode};
use datafusion_pg_catalog::pg_catalog::PgCatalogStaticTables;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use futures::{Sink, SinkExt, StreamExt, stream};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DataRowEncoder, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, METADATA_DATABASE, METADATA_USER, PgWireConnectionState,
    PgWireServerHandlers, PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::data::DataRow;
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::types::format::FormatOptions;
use tessera_core::{FrontEnd, RequestContext};
use tessera_query::{PreparedPlan, QueryError, QueryStream, SessionShape};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::error::ServiceError;
use crate::front_end::{ConnectionSession, parameter_types, request_id};
use crate::mesh::Mesh;
use crate::service::{AccessService, CatalogService};

/// The PostgreSQL listener's settings.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// Where it listens; `None` turns the front end off.
    pub address: Option<SocketAddr>,
    /// Connections open at once; one more is refused with SQLSTATE 53300.
    pub max_connections: usize,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            address: None,
            max_connections: 100,
        }
    }
}

/// The front end's handlers, shared by every connection.
#[derive(Clone)]
pub(crate) struct PgServer(Arc<PgInner>);

pub(crate) struct PgInner {
    mesh: Arc<Mesh>,
    parser: Arc<PgParser>,
    cancels: Arc<Cancels>,
    pids: RandomPidSecretKeyGenerator,
    parameters: DefaultServerParameterProvider,
    slots: Arc<Semaphore>,
    /// `pg_catalog`'s fixed tables (pg_type, pg_proc...), decoded once per server.
    tables: Arc<PgCatalogStaticTables>,
    /// `generate_series` and `range` widened for int4 arguments, made once per server.
    series: Arc<catalog::WidenedFunctions>,
}

impl PgServer {
    pub(crate) fn new(mesh: Arc<Mesh>, config: &PostgresConfig) -> crate::error::Result<Self> {
        let tables = PgCatalogStaticTables::try_new()
            .map_err(|e| ServiceError::Internal(format!("pg_catalog does not load: {e}")))?;
        // A session of the engine's, over nothing, only to take the functions from.
        let cx = RequestContext::system("pg-catalog", request_id(), FrontEnd::System);
        let session = mesh
            .engine()
            .session(&tessera_query::MeshSnapshot::default(), &cx)
            .map_err(|e| ServiceError::Internal(format!("pg_catalog does not load: {e}")))?;
        let series = Arc::new(catalog::widened_series_functions(&session));
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.is_superuser = false;
        parameters.default_transaction_read_only = true;
        Ok(Self(Arc::new(PgInner {
            parser: Arc::new(PgParser {
                mesh: mesh.clone(),
                sql: PostgresCompatibilityParser::new(),
            }),
            mesh,
            cancels: Arc::default(),
            pids: RandomPidSecretKeyGenerator::default(),
            parameters,
            slots: Arc::new(Semaphore::new(config.max_connections)),
            tables: Arc::new(tables),
            series,
        })))
    }
}

impl PgWireServerHandlers for PgServer {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.0.clone()
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.0.clone()
    }
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.0.clone()
    }
    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.0.clone()
    }
}

/// Accepts connections until `stop` is cancelled; each is served on a task of its own. With
/// `tls`, a client that asks for TLS (`sslmode=require`) gets it.
pub(crate) async fn serve(
    listener: TcpListener,
    server: PgServer,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: CancellationToken,
) {
    loop {
        let (socket, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a PostgreSQL connection failed");
                    continue;
                }
            },
        };
        let (server, tls, stop) = (server.clone(), tls.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                ended = socket::process_socket(socket, tls, server) => {
                    if let Err(e) = ended {
                        tracing::debug!(%peer, error = %e, "a PostgreSQL connection ended with an error");
                    }
                }
                // Shutdown: running queries are cancelled by the engine; the socket closes.
                _ = stop.cancelled() => {}
            }
        });
    }
}

/// One client connection, kept in pgwire's per-connection extensions (dropped at disconnect,
/// with its connection slot and cancel registration).
struct Conn {
    /// Checked again for every statement, so a revoked token or a changed grant applies to
    /// open connections too.
    token: String,
    /// The principal's session, with the connection's domain as its default catalog and
    /// `pg_catalog` in it.
    session: ConnectionSession,
    /// Cancels the statement running now (a client's CancelRequest).
    running: Mutex<CancellationToken>,
}

impl Conn {
    fn begin(&self) -> CancellationToken {
        let token = CancellationToken::new();
        *self.running.lock().expect("running statement") = token.clone();
        token
    }
}

/// The session shape of a connection to `domain`: `product.dataset` resolves in it, and
/// `pg_catalog` is there.
fn shape(domain: &str, catalog: catalog::PgCatalog) -> SessionShape {
    let catalog = Arc::new(catalog);
    SessionShape {
        default_catalog: Some(domain.to_string()),
        extend: Some(Arc::new(move |ctx| catalog.install(ctx))),
        type_planner: Some(catalog::PgCatalog::type_planner()),
        ..SessionShape::default()
    }
}

/// Open connections by (pid, secret key), for CancelRequests (which come on a new socket).
#[derive(Default)]
struct Cancels(Mutex<HashMap<(i32, Bytes), Weak<Conn>>>);

/// Removes a connection from [`Cancels`] when it closes.
struct Registered(Arc<Cancels>, (i32, Bytes));

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut open) = self.0.0.lock() {
            open.remove(&self.1);
        }
    }
}

/// The connection slot a connection holds while it is open.
struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

#[async_trait]
impl StartupHandler for PgInner {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let token = password.into_password()?.password;
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .ok_or(PgWireError::UserNameRequired)?;
                let domain = client
                    .metadata()
                    .get(METADATA_DATABASE)
                    .cloned()
                    .unwrap_or_else(|| user.clone());
                // A token of another user is as wrong as a wrong one: nothing says whose it is.
                // A store that cannot say is not the password's fault.
                let cx = match self
                    .mesh
                    .authenticate(&token, request_id(), FrontEnd::Postgres)
                    .await
                {
                    Ok(cx) if cx.principal.name == user => cx,
                    Ok(_) | Err(ServiceError::Unauthenticated(_)) => {
                        return Err(PgWireError::InvalidPassword(user.clone()));
                    }
                    Err(e) => return Err(fatal(e.sqlstate(), e.to_string())),
                };
                // Unknown and not discoverable read the same, as over HTTP.
                if self.mesh.domain(&cx, &domain).await.is_err() {
                    return Err(fatal(
                        "3D000",
                        format!(
                            "database \"{domain}\" does not exist (a database is a domain the user may discover; \\l lists them)"
                        ),
                    ));
                }
                let slot = self.slots.clone().try_acquire_owned().map_err(|_| {
                    fatal(
                        "53300",
                        "sorry, too many clients already (--pg-max-connections)",
                    )
                })?;
                let catalog =
                    catalog::PgCatalog::new(&domain, self.tables.clone(), self.series.clone())
                        .map_err(|e| fatal("XX000", format!("pg_catalog does not load: {e}")))?;
                let (pid, key) = self.pids.generate(client);
                client.set_pid_and_secret_key(pid, key.clone());
                let conn = Arc::new(Conn {
                    token,
                    session: ConnectionSession::new(shape(&domain, catalog)),
                    running: Mutex::default(),
                });
                let registered = (pid, key.to_bytes());
                self.cancels
                    .0
                    .lock()
                    .expect("open connections")
                    .insert(registered.clone(), Arc::downgrade(&conn));
                let extensions = client.session_extensions();
                extensions.insert(Registered(self.cancels.clone(), registered));
                extensions.insert(Slot(slot));
                extensions.insert(conn);
                finish_authentication(client, &self.parameters).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

#[async_trait]
impl CancelHandler for PgInner {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let key = (request.pid, request.secret_key.to_bytes());
        let conn = self
            .cancels
            .0
            .lock()
            .expect("open connections")
            .get(&key)
            .and_then(Weak::upgrade);
        if let Some(conn) = conn {
            conn.running.lock().expect("running statement").cancel();
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for PgInner {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = self.parser.parse(query)?;
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            let answer = match SessionStatement::of(&statement)? {
                Some(session) => session.answer(client),
                None => self
                    .run(
                        client,
                        &statement.to_string(),
                        None,
                        None,
                        &Format::UnifiedText,
                    )
                    .await
                    .map(Response::Query),
            };
            match answer {
                Ok(response) => responses.push(response),
                // As PostgreSQL does: the results before stay, the statements after do not run.
                Err(PgWireError::UserError(info)) if info.severity != "FATAL" => {
                    responses.push(Response::Error(info));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(responses)
    }
}

/// A statement as the extended protocol keeps it between Parse and Execute.
#[derive(Clone, Debug)]
pub(crate) enum PgStatement {
    /// A query, planned at Parse in the connection's session (for Describe); run from that
    /// plan, with its parameters bound, while the connection keeps the session (planned again
    /// from its SQL once what the principal may see has changed).
    Query { sql: String, prepared: PreparedPlan },
    /// SET, SHOW, BEGIN and the like, answered by the front end.
    Session(SessionStatement),
}

pub(crate) struct PgParser {
    mesh: Arc<Mesh>,
    sql: PostgresCompatibilityParser,
}

impl PgParser {
    /// PostgreSQL's SQL, with the catalog queries of psql and drivers rewritten to plan.
    fn parse(&self, sql: &str) -> PgWireResult<Vec<Statement>> {
        let sql = regproc_literals_as_names(sql);
        self.sql
            .parse(&sql)
            .map_err(|e| error("42601", format!("syntax error: {e}")))
    }
}

#[async_trait]
impl QueryParser for PgParser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.parse(sql)?;
        if statements.len() > 1 {
            return Err(error(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let Some(statement) = statements.pop() else {
            return Ok(None);
        };
        if let Some(session) = SessionStatement::of(&statement)? {
            return Ok(Some(PgStatement::Session(session)));
        }
        let conn = connection(client)?;
        let cx = request(&self.mesh, &conn).await?;
        let sql = statement.to_string();
        let prepared = self
            .mesh
            .prepare_on(&cx, &sql, &conn.session)
            .await
            .map_err(service_error)?
            .map_err(query_error)?;
        Ok(Some(PgStatement::Query { sql, prepared }))
    }

    fn get_parameter_types(&self, statement: &PgStatement) -> PgWireResult<Vec<Type>> {
        let PgStatement::Query { prepared, .. } = statement else {
            return Ok(Vec::new());
        };
        parameter_types(prepared.plan())
            .map_err(query_error)?
            .iter()
            .map(|t| t.as_ref().map_or(Ok(Type::UNKNOWN), into_pg_type))
            .collect()
    }

    fn get_result_schema(
        &self,
        statement: &PgStatement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match statement {
            PgStatement::Query { prepared, .. } => arrow_schema_to_pg_fields(
                prepared.plan().schema().as_arrow(),
                format.unwrap_or(&Format::UnifiedText),
                None,
            ),
            PgStatement::Session(session) => Ok(session.fields()),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgInner {
    type Statement = PgStatement;
    type QueryParser = PgParser;

    fn query_parser(&self) -> Arc<PgParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match &portal.statement.statement {
            PgStatement::Session(session) => session.answer(client),
            PgStatement::Query { sql, prepared } => {
                let types = parameter_types(prepared.plan()).map_err(query_error)?;
                let types: Vec<Option<&DataType>> = types.iter().map(Option::as_ref).collect();
                // A statement without parameters is run as it is (binding none rewrites it).
                let parameters = match types.is_empty() {
                    true => None,
                    false => Some(deserialize_parameters(portal, &types)?),
                };
                self.run(
                    client,
                    sql,
                    Some(prepared),
                    parameters,
                    &portal.result_column_format,
                )
                .await
                .map(Response::Query)
            }
        }
    }
}

impl PgInner {
    /// One statement through the governed engine path; its rows stream as the client reads.
    /// A NOTICE comes first for each dataset it reads whose blocking checks fail.
    async fn run<C>(
        &self,
        client: &mut C,
        sql: &str,
        prepared: Option<&PreparedPlan>,
        parameters: Option<ParamValues>,
        format: &Format,
    ) -> PgWireResult<QueryResponse>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let conn = connection(client)?;
        let cx = request(&self.mesh, &conn).await?;
        let cancelled = conn.begin();
        let started = tokio::select! {
            biased;
            _ = cancelled.cancelled() => return Err(PgWireError::QueryCanceled),
            started = self.mesh.query_on(&cx, sql, prepared, parameters, &conn.session) => started,
        };
        let stream = started.map_err(service_error)?.map_err(query_error)?;
        for warning in self.mesh.failing_check_warnings(stream.datasets()).await {
            let notice = ErrorInfo::new("NOTICE".into(), "01000".into(), warning);
            client
                .feed(PgWireBackendMessage::NoticeResponse(notice.into()))
                .await?;
        }
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let fields = Arc::new(arrow_schema_to_pg_fields(
            &stream.schema(),
            format,
            Some(options),
        )?);
        Ok(QueryResponse::new(
            fields.clone(),
            rows(&self.mesh, stream, fields, cancelled),
        ))
    }
}

/// A batch of at most this many values is encoded on the connection's own task: less work than
/// handing it to the query runtime and being woken for its rows.
const INLINE_VALUES: usize = 4096;

/// A running query's batches, until the statement is cancelled.
type Batches =
    std::pin::Pin<Box<dyn futures::Stream<Item = tessera_query::Result<RecordBatch>> + Send>>;

/// The batches of a running query as DataRows, as the client reads them. Small batches are
/// encoded where they arrive; from the first large one on, the rest are encoded on the query
/// runtime (never on the threads that serve connections) a batch ahead of the client. A cancel
/// ends them with 57014; dropping the stream (the client went away) drops the `QueryStream`,
/// or aborts the encoding task that holds it, and so cancels the query.
fn rows(
    mesh: &Mesh,
    stream: QueryStream,
    fields: Arc<Vec<FieldInfo>>,
    cancelled: CancellationToken,
) -> impl futures::Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    enum Source {
        Here(Batches),
        Offloaded(
            tokio::sync::mpsc::Receiver<Vec<PgWireResult<DataRow>>>,
            tessera_query::Task<()>,
        ),
        Ended,
    }
    let batches: Batches = Box::pin(stream.take_until(cancelled.clone().cancelled_owned()));
    let engine = mesh.engine().clone();
    stream::unfold(Source::Here(batches), move |source| {
        let (fields, cancelled, engine) = (fields.clone(), cancelled.clone(), engine.clone());
        async move {
            match source {
                Source::Here(mut batches) => match batches.next().await {
                    Some(Ok(batch)) if batch.num_rows() * batch.num_columns() <= INLINE_VALUES => {
                        let rows = encode(batch, &fields);
                        let next = if rows.iter().any(Result::is_err) {
                            Source::Ended
                        } else {
                            Source::Here(batches)
                        };
                        Some((rows, next))
                    }
                    Some(Ok(batch)) => {
                        let (encoded, received) = tokio::sync::mpsc::channel(2);
                        let task =
                            engine.spawn(encode_ahead(batch, batches, fields, cancelled, encoded));
                        Some((Vec::new(), Source::Offloaded(received, task)))
                    }
                    Some(Err(e)) => Some((vec![Err(query_error(e))], Source::Ended)),
                    None if cancelled.is_cancelled() => {
                        Some((vec![Err(PgWireError::QueryCanceled)], Source::Ended))
                    }
                    None => None,
                },
                Source::Offloaded(mut received, task) => {
                    let rows = received.recv().await?;
                    Some((rows, Source::Offloaded(received, task)))
                }
                Source::Ended => None,
            }
        }
    })
    .flat_map(stream::iter)
}

/// Encodes `first` and then the rest of `batches` on the query runtime, a batch ahead of the
/// reader of `encoded`.
async fn encode_ahead(
    first: RecordBatch,
    mut batches: Batches,
    fields: Arc<Vec<FieldInfo>>,
    cancelled: CancellationToken,
    encoded: tokio::sync::mpsc::Sender<Vec<PgWireResult<DataRow>>>,
) {
    let mut next = Some(Ok(first));
    while let Some(batch) = next {
        let rows = match batch {
            Ok(batch) => encode(batch, &fields),
            Err(e) => vec![Err(query_error(e))],
        };
        let failed = rows.iter().any(Result::is_err);
        if encoded.send(rows).await.is_err() || failed {
            return;
        }
        next = batches.next().await;
    }
    if cancelled.is_cancelled() {
        let _ = encoded.send(vec![Err(PgWireError::QueryCanceled)]).await;
    }
}

/// A batch's rows as DataRows of `fields`.
fn encode(batch: RecordBatch, fields: &Arc<Vec<FieldInfo>>) -> Vec<PgWireResult<DataRow>> {
    match text::timestamps_as_text(batch, fields) {
        Ok(batch) => rows::encode_rows(&batch, fields),
        Err(e) => vec![Err(e)],
    }
}

/// `'pg_catalog.array_in'::regproc` as `'array_in'`: this `pg_catalog` keeps regproc columns
/// (`pg_type.typinput`...) as function names, so a literal compared with them must be one too
/// (the PostgreSQL JDBC driver, under DBeaver, asks so whether a type is an array).
fn regproc_literals_as_names(sql: &str) -> std::borrow::Cow<'_, str> {
    static REGPROC: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"(?i)'(?:pg_catalog\.)?([a-z_][a-z0-9_]*)'\s*::\s*(?:pg_catalog\.)?regproc\b",
        )
        .expect("a valid pattern")
    });
    REGPROC.replace_all(sql, "'$1'")
}

/// The statements a PostgreSQL client sends about its session rather than the data: answered
/// here (Tessera is read-only, so a transaction is only a bracket).
#[derive(Clone, Debug)]
pub(crate) enum SessionStatement {
    Begin,
    Commit,
    Rollback,
    /// `SET name = value` (remembered for SHOW) or `SET TIME ZONE`.
    Set {
        name: String,
        value: String,
    },
    Show(String),
    Discard,
}

impl SessionStatement {
    /// `Some` for a session statement; an error for one that would make the session write.
    fn of(statement: &Statement) -> PgWireResult<Option<Self>> {
        let writes = |modes: &[TransactionMode]| {
            modes.contains(&TransactionMode::AccessMode(
                TransactionAccessMode::ReadWrite,
            ))
        };
        let read_only = || {
            error(
                "25006",
                "Tessera's query interface is read-only: a transaction cannot be read-write",
            )
        };
        Ok(Some(match statement {
            Statement::StartTransaction { modes, .. } => {
                if writes(modes) {
                    return Err(read_only());
                }
                SessionStatement::Begin
            }
            Statement::Commit { .. } => SessionStatement::Commit,
            Statement::Rollback { .. } => SessionStatement::Rollback,
            Statement::Set(Set::SetTransaction { modes, .. }) => {
                if writes(modes) {
                    return Err(read_only());
                }
                SessionStatement::Set {
                    name: "transaction".into(),
                    value: String::new(),
                }
            }
            Statement::Set(Set::SingleAssignment {
                variable, values, ..
            }) => SessionStatement::Set {
                name: variable.to_string().to_lowercase(),
                value: values
                    .iter()
                    .map(|v| v.to_string().trim_matches('\'').to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            Statement::Set(Set::SetTimeZone { value, .. }) => SessionStatement::Set {
                name: "timezone".into(),
                value: value.to_string().trim_matches('\'').to_string(),
            },
            Statement::Set(Set::SetNames { charset_name, .. }) => SessionStatement::Set {
                name: "client_encoding".into(),
                value: charset_name.value.clone(),
            },
            Statement::ShowVariable { variable } => SessionStatement::Show(
                variable
                    .iter()
                    .map(|i| i.value.to_lowercase())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            Statement::Discard { .. } => SessionStatement::Discard,
            _ => return Ok(None),
        }))
    }

    fn fields(&self) -> Vec<FieldInfo> {
        match self {
            SessionStatement::Show(name) => vec![FieldInfo::new(
                name.clone(),
                None,
                None,
                Type::TEXT,
                pgwire::api::results::FieldFormat::Text,
            )],
            _ => Vec::new(),
        }
    }

    fn answer<C: ClientInfo>(&self, client: &mut C) -> PgWireResult<Response> {
        Ok(match self {
            SessionStatement::Begin => Response::TransactionStart(Tag::new("BEGIN")),
            SessionStatement::Commit => Response::TransactionEnd(Tag::new("COMMIT")),
            SessionStatement::Rollback => Response::TransactionEnd(Tag::new("ROLLBACK")),
            SessionStatement::Discard => Response::Execution(Tag::new("DISCARD ALL")),
            SessionStatement::Set { name, value } => {
                client.metadata_mut().insert(name.clone(), value.clone());
                Response::Execution(Tag::new("SET"))
            }
            SessionStatement::Show(name) => {
                let value = setting(client, name).ok_or_else(|| {
                    error(
                        "42704",
                        format!("unrecognized configuration parameter \"{name}\""),
                    )
                })?;
                let fields = Arc::new(self.fields());
                let mut encoder = DataRowEncoder::new(fields.clone());
                encoder.encode_field(&Some(value))?;
                let row = encoder.take_row();
                Response::Query(QueryResponse::new(fields, stream::iter([Ok(row)])))
            }
        })
    }
}

/// What `SHOW name` answers: what the client set, or the server's value.
fn setting<C: ClientInfo>(client: &C, name: &str) -> Option<String> {
    if let Some(value) = client.metadata().get(name) {
        return Some(value.clone());
    }
    Some(
        match name {
            "server_version" => "16.6",
            "server_encoding" | "client_encoding" => "UTF8",
            "timezone" | "time zone" => "Etc/UTC",
            "datestyle" => "ISO, YMD",
            "intervalstyle" => "postgres",
            "search_path" => "public",
            "transaction_isolation" | "transaction isolation level" => "read committed",
            "default_transaction_isolation" => "read committed",
            "transaction_read_only" | "default_transaction_read_only" => "on",
            "standard_conforming_strings" | "integer_datetimes" => "on",
            "is_superuser" => "off",
            "max_identifier_length" => "63",
            "lc_collate" | "lc_ctype" => "C.UTF-8",
            "application_name" => "",
            _ => return None,
        }
        .to_string(),
    )
}

/// The connection a handler serves, set up by the startup handler.
fn connection<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<Arc<Conn>> {
    client
        .session_extensions()
        .get::<Arc<Conn>>()
        .map(|conn| (*conn).clone())
        .ok_or_else(|| fatal("08P01", "the connection is not authenticated"))
}

/// The connection's principal, authenticated again for this statement. A store that cannot
/// say is not the token's fault.
async fn request(mesh: &Mesh, conn: &Conn) -> PgWireResult<RequestContext> {
    mesh.authenticate(&conn.token, request_id(), FrontEnd::Postgres)
        .await
        .map_err(|e| match e {
            ServiceError::Unauthenticated(_) => fatal(
                "28000",
                "the connection's token is no longer valid (revoked or expired); connect again with a valid token",
            ),
            other => service_error(other),
        })
}

fn error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message.into(),
    )))
}

fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message.into(),
    )))
}

/// A query's error with its SQLSTATE (see `QueryError::sqlstate`).
fn query_error(e: QueryError) -> PgWireError {
    let severity = if matches!(e, QueryError::ShuttingDown) {
        "FATAL"
    } else {
        "ERROR"
    };
    PgWireError::UserError(Box::new(ErrorInfo::new(
        severity.into(),
        e.sqlstate().into(),
        e.to_string(),
    )))
}

/// An error of the service around a query (its principal, its snapshot).
fn service_error(e: ServiceError) -> PgWireError {
    match &e {
        ServiceError::Unauthenticated(_) => fatal(e.sqlstate(), e.to_string()),
        _ => error(e.sqlstate(), e.to_string()),
    }
}
