//! The Arrow Flight SQL front end: ADBC, JDBC and other Flight SQL clients at
//! `grpc://HOST:50051` (`grpc+tls://` with `--tls-cert`), the user's API token as a bearer token
//! or as the password of basic auth. Catalog = domain, schema = product, table = dataset; SQL
//! names datasets `domain.product.dataset`. Every statement runs as the token's principal through
//! the one governed path (`Mesh::query_shaped`): the same masks, row filters, limits and query
//! log as the HTTP API and PostgreSQL, logged with front end `flight_sql`.
//!
//! `arrow-flight` speaks the protocol (its `FlightSqlService` dispatches the commands); Tessera
//! supplies the token check, the statements, the listings and the status codes. It keeps no
//! state between calls: GetFlightInfo plans and hands out a sealed ticket holding the SQL and
//! its parameters ([`ticket`]); DoGet authenticates again and runs it. Batches pass through as
//! the engine makes them (no dictionary or type rewriting); a dataset whose blocking checks fail
//! is named in the schema's metadata (`tessera.quality_warnings`) and in response headers.

mod ticket;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow::record_batch::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::{DictionaryHandling, FlightDataEncoderBuilder};
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    SqlSupportedCaseSensitivity, SqlSupportedTransaction, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use base64::Engine;
use bytes::Bytes;
use datafusion::common::TableReference;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::DataFrame;
use futures::{Stream, TryStreamExt, stream};
use prost::Message;
use tessera_core::{FrontEnd, RequestContext};
use tessera_query::{QueryError, SessionShape};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status, Streaming};

use crate::error::ServiceError;
use crate::front_end::{bind, parameter_types, request_id};
use crate::mesh::Mesh;
use crate::service::AccessService;

use ticket::{Handle, Keys, Kind};

/// The mesh secret that seals statement handles and tickets.
const HANDLE_KEY: &str = "flight_sql_handle_key";

/// The schema metadata key that names the datasets whose blocking checks fail.
pub const QUALITY_WARNINGS_KEY: &str = "tessera.quality_warnings";

type DoGetStream = <TesseraFlightSql as FlightService>::DoGetStream;
type HandshakeStream = Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;

/// The Flight SQL listener's settings.
#[derive(Debug, Clone, Default)]
pub struct FlightConfig {
    /// Where it listens; `None` turns the front end off.
    pub address: Option<SocketAddr>,
}

/// The front end's service, shared by every connection.
pub(crate) struct TesseraFlightSql {
    mesh: Arc<Mesh>,
    keys: Keys,
    sql_info: SqlInfoData,
}

impl TesseraFlightSql {
    pub(crate) async fn new(mesh: Arc<Mesh>) -> crate::error::Result<Self> {
        let mut info = SqlInfoDataBuilder::new();
        info.append(SqlInfo::FlightSqlServerName, "Tessera");
        info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        info.append(SqlInfo::FlightSqlServerArrowVersion, "1.5");
        info.append(SqlInfo::FlightSqlServerReadOnly, true);
        info.append(SqlInfo::FlightSqlServerSql, true);
        info.append(SqlInfo::FlightSqlServerSubstrait, false);
        info.append(
            SqlInfo::FlightSqlServerTransaction,
            SqlSupportedTransaction::None as i32,
        );
        info.append(SqlInfo::FlightSqlServerCancel, false);
        info.append(SqlInfo::FlightSqlServerBulkIngestion, false);
        // Prepared handles hold nothing on the server, so they never time out.
        info.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
        info.append(SqlInfo::SqlDdlCatalog, false);
        info.append(SqlInfo::SqlDdlSchema, false);
        info.append(SqlInfo::SqlDdlTable, false);
        info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        info.append(
            SqlInfo::SqlIdentifierCase,
            SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
        );
        let sql_info = info
            .build()
            .map_err(|e| ServiceError::Internal(format!("Flight SQL server info: {e}")))?;
        // A ticket waits for its DoGet at most as long as its query may run, and a minute.
        let lifetime =
            Duration::from_secs(mesh.engine().config().timeout_seconds.saturating_add(60));
        // A secret of its own in the metadata store (so every instance sharing it accepts the
        // same handles), made on first use.
        let fresh = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let secret = mesh.catalog.secret(HANDLE_KEY, &fresh).await?;
        Ok(Self {
            keys: Keys::new(secret.as_bytes(), lifetime),
            mesh,
            sql_info,
        })
    }

    /// The caller of this call, authenticated again (there are no server-side sessions, so a
    /// revoked token or a changed grant applies at the next call).
    async fn caller(&self, metadata: &MetadataMap) -> Result<RequestContext, Status> {
        let (token, user) = credentials(metadata)?;
        // A token of another user is as wrong as a wrong one: nothing says whose it is. A store
        // that cannot say is not the token's fault.
        match self
            .mesh
            .authenticate(&token, request_id(), FrontEnd::FlightSql)
            .await
        {
            Ok(cx) if user.as_deref().is_none_or(|u| cx.principal.name == u) => Ok(cx),
            Ok(_) | Err(ServiceError::Unauthenticated(_)) => Err(Status::unauthenticated(
                "the API token is not valid (unknown, revoked or expired, or not this user's)",
            )),
            Err(e) => Err(service_status(e)),
        }
    }

    /// Plans `sql` as `cx` would run it (a refusal is in the query log).
    async fn plan(&self, cx: &RequestContext, sql: &str) -> Result<DataFrame, Status> {
        self.mesh
            .prepare_shaped(cx, sql, &SessionShape::default())
            .await
            .map_err(service_status)?
            .map_err(query_status)
    }

    /// FlightInfo for one execution of a statement: its schema as DoGet will send it, and a
    /// sealed ticket.
    async fn statement_info(
        &self,
        cx: &RequestContext,
        handle: &Handle,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let mut df = self.plan(cx, &handle.sql).await?;
        if let Some(values) = handle.parameter_values()? {
            df = df
                .with_param_values(values)
                .map_err(|e| query_status(QueryError::from_datafusion(e)))?;
        }
        let datasets = tessera_query::datasets_read(df.logical_plan());
        let warnings = self.mesh.failing_check_warnings(&datasets).await;
        let schema = wire_schema(with_warnings(
            Arc::new(df.schema().as_arrow().clone()),
            &warnings,
        ));
        let ticket = TicketStatementQuery {
            statement_handle: self.keys.seal(&handle.to_ticket()),
        };
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(internal)?
            .with_endpoint(
                FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec())),
            )
            .with_descriptor(descriptor)
            .with_ordered(true)
            .with_app_metadata(
                serde_json::json!({ "quality_warnings": &warnings })
                    .to_string()
                    .into_bytes(),
            );
        let mut response = Response::new(info);
        warning_headers(response.metadata_mut(), &warnings);
        Ok(response)
    }

    /// DoGet of a statement: run through the governed path; its batches stream as the client
    /// reads them (HTTP/2 flow control holds the engine back). Dropping the response (a client
    /// that cancels or goes away) drops the query, which cancels it.
    async fn run(
        &self,
        cx: RequestContext,
        handle: Handle,
    ) -> Result<Response<DoGetStream>, Status> {
        let refine = bind(handle.parameter_values()?);
        let stream = self
            .mesh
            .query_shaped(&cx, &handle.sql, refine, &SessionShape::default())
            .await
            .map_err(service_status)?
            .map_err(query_status)?;
        let warnings = self.mesh.failing_check_warnings(stream.datasets()).await;
        let schema = with_warnings(stream.schema(), &warnings);
        let batches = stream.map_err(|e| FlightError::Tonic(Box::new(query_status(e))));
        let data = encoder(schema).build(batches).map_err(Status::from);
        let mut response = Response::new(Box::pin(data) as DoGetStream);
        warning_headers(response.metadata_mut(), &warnings);
        Ok(response)
    }

    /// FlightInfo for a listing: its ticket is the command itself (DoGet authenticates again
    /// and lists what that caller may discover, so there is nothing to seal).
    async fn listing_info(
        &self,
        metadata: &MetadataMap,
        command: Any,
        schema: SchemaRef,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(metadata).await?;
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(internal)?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(command.encode_to_vec())))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    /// The datasets `cx` may discover (including those it may not read, as
    /// `information_schema` lists them), in `catalog` when given.
    async fn discoverable(
        &self,
        cx: &RequestContext,
        catalog: Option<&str>,
    ) -> Result<Vec<tessera_core::DatasetRef>, Status> {
        let snapshot = self.mesh.snapshot_for(cx).await.map_err(service_status)?;
        Ok(snapshot
            .tables
            .iter()
            .map(|table| table.reference.clone())
            .filter(|r| catalog.is_none_or(|c| r.domain.as_str() == c))
            .collect())
    }
}

#[tonic::async_trait]
impl FlightSqlService for TesseraFlightSql {
    type FlightService = TesseraFlightSql;

    /// Basic auth (`username`/`password` in ADBC): the password is the API token, and the
    /// answer's `authorization` header is what the client sends from then on.
    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<HandshakeStream>, Status> {
        let (token, _) = credentials(request.metadata())?;
        self.caller(request.metadata()).await?;
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: Bytes::new(),
        };
        let mut response = Response::new(Box::pin(stream::iter([Ok(reply)])) as HandshakeStream);
        let bearer = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Status::unauthenticated("the API token is not valid"))?;
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let cx = self.caller(request.metadata()).await?;
        let handle = Handle::new(Kind::Ticket, query.query, &cx);
        self.statement_info(&cx, &handle, request.into_inner())
            .await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let cx = self.caller(request.metadata()).await?;
        let handle = self
            .keys
            .open(&query.prepared_statement_handle, Kind::Prepared, &cx)?;
        self.statement_info(&cx, &handle, request.into_inner())
            .await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let cx = self.caller(request.metadata()).await?;
        let handle = self
            .keys
            .open(&ticket.statement_handle, Kind::Ticket, &cx)?;
        self.run(cx, handle).await
    }

    /// A prepared statement's handle used as a ticket (the protocol allows it).
    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let cx = self.caller(request.metadata()).await?;
        let handle = self
            .keys
            .open(&query.prepared_statement_handle, Kind::Prepared, &cx)?;
        self.run(cx, handle).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let cx = self.caller(request.metadata()).await?;
        let df = self.plan(&cx, &query.query).await?;
        let schema = wire_schema(Arc::new(df.schema().as_arrow().clone()));
        let parameters = parameter_schema(df.logical_plan())?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: self.keys.seal(&Handle::new(
                Kind::Prepared,
                query.query,
                &cx,
            )),
            dataset_schema: ipc_schema(&schema)?,
            parameter_schema: ipc_schema(&parameters)?,
        })
    }

    /// Binds parameters: the answer is a new handle that carries them (nothing is kept here).
    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let cx = self.caller(request.metadata()).await?;
        let mut handle = self
            .keys
            .open(&query.prepared_statement_handle, Kind::Prepared, &cx)?;
        let mut stream = FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(FlightError::from),
        );
        // One row is all a query binds: reading stops at the second.
        let (mut batches, mut rows) = (Vec::new(), 0);
        while rows <= 1 {
            match stream.try_next().await.map_err(|e| {
                Status::invalid_argument(format!("the parameters cannot be read: {e}"))
            })? {
                Some(batch) => {
                    rows += batch.num_rows();
                    batches.push(batch);
                }
                None => break,
            }
        }
        handle.bind(&batches)?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(self.keys.seal(&handle)),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        // Nothing is held for a handle, so there is nothing to release.
        self.caller(request.metadata()).await.map(|_| ())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.listing_info(
            request.metadata(),
            query.as_any(),
            schema,
            request.get_ref().clone(),
        )
        .await
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.listing_info(
            request.metadata(),
            query.as_any(),
            schema,
            request.get_ref().clone(),
        )
        .await
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.listing_info(
            request.metadata(),
            query.as_any(),
            schema,
            request.get_ref().clone(),
        )
        .await
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.listing_info(
            request.metadata(),
            query.as_any(),
            schema,
            request.get_ref().clone(),
        )
        .await
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.sql_info).schema();
        self.listing_info(
            request.metadata(),
            query.as_any(),
            schema,
            request.get_ref().clone(),
        )
        .await
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let cx = self.caller(request.metadata()).await?;
        let mut builder = query.into_builder();
        let domains: std::collections::BTreeSet<String> = self
            .discoverable(&cx, None)
            .await?
            .into_iter()
            .map(|r| r.domain.to_string())
            .collect();
        for domain in domains {
            builder.append(domain);
        }
        one_batch(builder.schema(), builder.build())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let cx = self.caller(request.metadata()).await?;
        let catalog = query.catalog.clone();
        let mut builder = query.into_builder();
        let products: std::collections::BTreeSet<(String, String)> = self
            .discoverable(&cx, catalog.as_deref())
            .await?
            .into_iter()
            .map(|r| (r.domain.to_string(), r.product.to_string()))
            .collect();
        for (domain, product) in products {
            builder.append(domain, product);
        }
        one_batch(builder.schema(), builder.build())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let cx = self.caller(request.metadata()).await?;
        let catalog = query.catalog.clone();
        let datasets = matching(
            self.discoverable(&cx, catalog.as_deref()).await?,
            query.db_schema_filter_pattern.as_deref(),
            query.table_name_filter_pattern.as_deref(),
        )?;
        let mut builder = query.into_builder();
        // Schemas as a query sees them (a masked column is text), from the caller's session.
        let session = if builder.include_schema() {
            let snapshot = self.mesh.snapshot_for(&cx).await.map_err(service_status)?;
            Some(
                self.mesh
                    .engine()
                    .session_shaped(&snapshot, &cx, &SessionShape::default())
                    .map_err(query_status)?,
            )
        } else {
            None
        };
        for dataset in datasets {
            let (domain, product, name) = (
                dataset.domain.as_str(),
                dataset.product.as_str(),
                dataset.dataset.as_str(),
            );
            let schema = match &session {
                Some(session) => session
                    .table_provider(TableReference::full(domain, product, name))
                    .await
                    .map_err(|e| query_status(QueryError::from_datafusion(e)))?
                    .schema(),
                None => Arc::new(Schema::empty()),
            };
            builder
                .append(domain, product, name, "TABLE", &schema)
                .map_err(Status::from)?;
        }
        one_batch(builder.schema(), builder.build())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(request.metadata()).await?;
        let mut builder = query.into_builder();
        builder.append("TABLE");
        one_batch(builder.schema(), builder.build())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(request.metadata()).await?;
        let builder = query.into_builder(&self.sql_info);
        one_batch(builder.schema(), builder.build())
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        Err(Status::unimplemented(format!(
            "Tessera does not support the Flight action {:?} (it is read-only and keeps no sessions)",
            request.get_ref().r#type
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// The datasets whose product and name match GetTables' patterns (SQL `LIKE`, as the builder
/// filters its rows), so that schemas are read for those alone.
fn matching(
    datasets: Vec<tessera_core::DatasetRef>,
    product_pattern: Option<&str>,
    name_pattern: Option<&str>,
) -> Result<Vec<tessera_core::DatasetRef>, Status> {
    use arrow::array::{Array, StringArray};
    let mut keep = vec![true; datasets.len()];
    let patterns = [
        (
            product_pattern,
            datasets
                .iter()
                .map(|d| d.product.as_str())
                .collect::<Vec<_>>(),
        ),
        (
            name_pattern,
            datasets.iter().map(|d| d.dataset.as_str()).collect(),
        ),
    ];
    for (pattern, names) in patterns {
        let Some(pattern) = pattern else { continue };
        let matched = arrow::compute::kernels::comparison::like(
            &StringArray::from(names),
            &StringArray::new_scalar(pattern),
        )
        .map_err(|e| Status::invalid_argument(format!("the filter pattern {pattern:?}: {e}")))?;
        for (i, keep) in keep.iter_mut().enumerate() {
            *keep &= matched.is_valid(i) && matched.value(i);
        }
    }
    Ok(datasets
        .into_iter()
        .zip(keep)
        .filter_map(|(d, keep)| keep.then_some(d))
        .collect())
}

/// Serves until `stop` is cancelled. With `tls` (an acceptor offering ALPN `h2`), only TLS
/// connections are served: gRPC has no way to ask for TLS on a plain connection.
pub(crate) async fn serve(
    listener: TcpListener,
    service: TesseraFlightSql,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: CancellationToken,
) {
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(FlightServiceServer::new(service));
    let served = match tls {
        None => {
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            router
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
        }
        Some(acceptor) => match crate::tls::TlsListener::new(listener, acceptor) {
            Ok(listener) => {
                let incoming = stream::unfold(listener, |mut listener| async move {
                    let (io, _peer) = axum::serve::Listener::accept(&mut listener).await;
                    Some((Ok::<_, std::io::Error>(io), listener))
                });
                router
                    .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                    .await
            }
            Err(e) => {
                tracing::error!(error = %e, "the Flight SQL listener failed");
                return;
            }
        },
    };
    if let Err(e) = served {
        tracing::error!(error = %e, "the Flight SQL front end stopped");
    }
}

/// The API token (and the user name, for basic auth) of a call: `authorization: Bearer TOKEN`,
/// or `Basic base64(USER:TOKEN)`, padded or not (ADBC's Go client sends it unpadded).
fn credentials(metadata: &MetadataMap) -> Result<(String, Option<String>), Status> {
    let missing = || {
        Status::unauthenticated(
            "an API token is required: send it as a bearer token (authorization: Bearer TOKEN) or as the password of basic auth",
        )
    };
    let header = metadata
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(missing)?;
    let (scheme, value) = header.trim().split_once(' ').ok_or_else(missing)?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok((value.trim().to_string(), None));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let decoded = engine
            .decode(value.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(missing)?;
        let (user, token) = decoded.split_once(':').ok_or_else(missing)?;
        return Ok((token.to_string(), Some(user.to_string())));
    }
    Err(missing())
}

/// The encoder every result goes through, so FlightInfo's schema is exactly DoGet's (ADBC
/// refuses a stream whose schema differs). Dictionaries are sent as dictionaries: the types
/// reach the client as the engine made them.
fn encoder(schema: SchemaRef) -> FlightDataEncoderBuilder {
    FlightDataEncoderBuilder::new()
        .with_dictionary_handling(DictionaryHandling::Resend)
        .with_schema(schema)
}

/// The schema exactly as [`encoder`] will send it.
fn wire_schema(schema: SchemaRef) -> SchemaRef {
    encoder(schema.clone())
        .build(stream::empty())
        .known_schema()
        .unwrap_or(schema)
}

/// A listing's result: one batch (ADBC reads only the first of GetTables).
fn one_batch(
    schema: SchemaRef,
    batch: arrow_flight::error::Result<RecordBatch>,
) -> Result<Response<DoGetStream>, Status> {
    let data = encoder(schema)
        .build(stream::once(async move { batch }))
        .map_err(Status::from);
    Ok(Response::new(Box::pin(data)))
}

fn with_warnings(schema: SchemaRef, warnings: &[String]) -> SchemaRef {
    if warnings.is_empty() {
        return schema;
    }
    let mut metadata = schema.metadata().clone();
    metadata.insert(
        QUALITY_WARNINGS_KEY.into(),
        serde_json::to_string(warnings).unwrap_or_default(),
    );
    Arc::new(Schema::new_with_metadata(schema.fields().clone(), metadata))
}

/// The warnings as `tessera-quality-warning` headers, as the HTTP API sends them.
fn warning_headers(metadata: &mut MetadataMap, warnings: &[String]) {
    for warning in warnings {
        if let Ok(value) = MetadataValue::try_from(crate::checks::header_text(warning)) {
            metadata.append(crate::api::QUALITY_WARNING, value);
        }
    }
}

/// `$1..$n` in order as a schema (fields `$1`, `$2`...), typed as the plan infers them.
fn parameter_schema(plan: &LogicalPlan) -> Result<Schema, Status> {
    let types = parameter_types(plan).map_err(query_status)?;
    Ok(Schema::new(
        types
            .into_iter()
            .enumerate()
            .map(|(i, t)| Field::new(format!("${}", i + 1), t.unwrap_or(DataType::Null), true))
            .collect::<Vec<_>>(),
    ))
}

fn ipc_schema(schema: &Schema) -> Result<Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(internal)?;
    Ok(bytes)
}

/// A query's error as a gRPC status, by its SQLSTATE (the one classification every front end
/// uses), which also travels as `tessera-sqlstate` in the status's metadata.
fn query_status(e: QueryError) -> Status {
    status(e.sqlstate(), e.to_string())
}

/// An error of the service around a query (its principal, its snapshot), likewise.
fn service_status(e: ServiceError) -> Status {
    status(e.sqlstate(), e.to_string())
}

fn status(sqlstate: &'static str, message: String) -> Status {
    let code = match sqlstate {
        "28000" => Code::Unauthenticated,
        "42501" => Code::PermissionDenied,
        "42P01" => Code::NotFound,
        "57014" => Code::DeadlineExceeded,
        "53200" | "53300" | "54000" => Code::ResourceExhausted,
        "57P01" | "58000" => Code::Unavailable,
        "XX000" => Code::Internal,
        s if ["42", "22", "0A", "54", "25"]
            .iter()
            .any(|c| s.starts_with(c)) =>
        {
            Code::InvalidArgument
        }
        _ => Code::Internal,
    };
    let mut metadata = MetadataMap::new();
    metadata.insert("tessera-sqlstate", MetadataValue::from_static(sqlstate));
    Status::with_metadata(code, message, metadata)
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(authorization: &str) -> MetadataMap {
        let mut md = MetadataMap::new();
        md.insert("authorization", authorization.parse().unwrap());
        md
    }

    /// GetTables reads schemas only for the datasets its patterns (SQL `LIKE`) keep.
    #[test]
    fn get_tables_patterns_choose_the_datasets_before_any_schema_is_read() {
        let datasets: Vec<tessera_core::DatasetRef> = [
            "shop.orders.orders",
            "shop.orders.order_items",
            "stats.daily.counts",
        ]
        .iter()
        .map(|d| d.parse().unwrap())
        .collect();
        let names = |product: Option<&str>, name: Option<&str>| -> Vec<String> {
            matching(datasets.clone(), product, name)
                .unwrap()
                .iter()
                .map(|d| d.to_string())
                .collect()
        };
        assert_eq!(names(None, None).len(), 3);
        assert_eq!(
            names(Some("ord%"), None),
            ["shop.orders.orders", "shop.orders.order_items"]
        );
        assert_eq!(
            names(Some("ord%"), Some("%\\_items")),
            ["shop.orders.order_items"]
        );
        assert_eq!(names(None, Some("count_")), ["stats.daily.counts"]);
        assert_eq!(names(Some("daily"), Some("orders")), Vec::<String>::new());
    }

    /// The gRPC status for each kind of failure, with its SQLSTATE alongside. The integration
    /// tests cause most of them from ADBC; too many queries at once (53300) is checked here.
    #[test]
    fn each_failure_has_its_grpc_code_and_its_sqlstate() {
        let cases = [
            (
                QueryError::Invalid("syntax error".into()),
                Code::InvalidArgument,
            ),
            (
                QueryError::ReadOnly("a write".into()),
                Code::InvalidArgument,
            ),
            (
                QueryError::Forbidden("no grant".into()),
                Code::PermissionDenied,
            ),
            (QueryError::Timeout(30), Code::DeadlineExceeded),
            // 53300: too many queries at once.
            (QueryError::Busy, Code::ResourceExhausted),
            (
                QueryError::ResultTooLarge("rows".into()),
                Code::ResourceExhausted,
            ),
            (
                QueryError::ResourcesExhausted("memory".into()),
                Code::ResourceExhausted,
            ),
            (QueryError::ShuttingDown, Code::Unavailable),
        ];
        for (error, code) in cases {
            let sqlstate = error.sqlstate();
            let status = query_status(error);
            assert_eq!(status.code(), code, "{sqlstate}");
            assert_eq!(
                status.metadata().get("tessera-sqlstate").unwrap(),
                sqlstate,
                "{sqlstate}"
            );
        }
    }

    #[test]
    fn credentials_come_as_bearer_or_basic_padded_or_not() {
        assert_eq!(
            credentials(&metadata("Bearer tsr_abc")).unwrap(),
            ("tsr_abc".to_string(), None)
        );
        // "ana:tsr_abc" is 11 bytes: its base64 has one '=' of padding.
        for basic in ["Basic YW5hOnRzcl9hYmM=", "basic YW5hOnRzcl9hYmM"] {
            assert_eq!(
                credentials(&metadata(basic)).unwrap(),
                ("tsr_abc".to_string(), Some("ana".to_string()))
            );
        }
        for wrong in ["Token x", "Basic !!!", "Bearer"] {
            assert_eq!(
                credentials(&metadata(wrong)).unwrap_err().code(),
                Code::Unauthenticated
            );
        }
        assert_eq!(
            credentials(&MetadataMap::new()).unwrap_err().code(),
            Code::Unauthenticated
        );
    }
}
