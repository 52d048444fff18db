//! The HTTP API under `/api/v1`, `/health`, and `/api/openapi.json` generated from these
//! handlers by utoipa, so the document is true to the server by construction.

mod error;
mod results;

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use tessera_core::{DatasetRef, Name};
use tessera_ingest::Format;
use utoipa::{IntoParams, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ApiResult};
pub use results::{
    ARROW_ERROR_CONTINUATION, ARROW_STREAM, NDJSON, ResultEncoder, ResultFormat, error_marker,
};

use crate::mesh::BatchData;
use crate::service::{RunScope, Services};
use crate::views::*;
use tessera_core::{FrontEnd, Principal, RequestContext};

/// What every handler shares: the service layer, through its traits only.
#[derive(Clone)]
pub struct AppState {
    pub services: Arc<dyn Services>,
    pub max_body_bytes: usize,
    /// The limit of an event request's body (`--event-max-body-bytes`).
    pub event_max_body_bytes: usize,
}

/// The request context of an authenticated HTTP request: the principal its bearer token stands
/// for (a request without a valid token is refused with 401 before the handler runs), the
/// request's id (the client's `X-Request-Id` when it sends a usable one, else a new one) and the
/// front end.
pub struct Caller(pub RequestContext);

/// The request context of a request that needs no token (`/health`): nobody in particular.
pub struct Anonymous(pub RequestContext);

fn request_id(parts: &axum::http::request::Parts) -> String {
    parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The token of `Authorization: Bearer TOKEN`, if the header is there.
fn bearer_token(parts: &axum::http::request::Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl axum::extract::FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // No token is refused like a bad one, with the one message that says how to send it.
        let token = bearer_token(parts).unwrap_or_default();
        let cx = state
            .services
            .authenticate(token, request_id(parts), FrontEnd::Http)
            .await?;
        Ok(Caller(cx))
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Anonymous {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Anonymous(RequestContext::new(
            Principal::unauthenticated(),
            request_id(parts),
            FrontEnd::Http,
        )))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera",
        description = "A self-serve data mesh platform: data products with contracts, stored as Delta tables, queried with SQL across domains."
    ),
    tags(
        (name = "catalog", description = "Domains, products, datasets and contracts"),
        (name = "publish", description = "Applying product folders"),
        (name = "ingest", description = "Loading batches into datasets"),
        (name = "query", description = "Read-only SQL over every dataset"),
        (name = "quality", description = "Contract checks, their history and quality scores"),
        (name = "operations", description = "Health and API description"),
        (name = "access", description = "API tokens, who a request runs as, grants, policies and decisions"),
        (name = "audit", description = "The hash-chained audit log of every change, denied decision and query"),
        (name = "governance", description = "Governance policies as SQL over tessera_meta: the standard library, the council's global policies, domains' own, and their evaluations"),
        (name = "sources", description = "Sources datasets pull their rows from (PostgreSQL, Kafka, files), where each stands, and the secrets they name"),
        (name = "transforms", description = "SQL transforms that compute datasets from others, their runs and run history"),
        (name = "lineage", description = "Which datasets and columns feed which, derived from transforms' plans and sources"),
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

/// The router with every route, and the OpenAPI document describing them.
pub fn router(state: AppState) -> axum::Router {
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(list_domains))
        .routes(routes!(get_domain))
        .routes(routes!(list_products))
        .routes(routes!(get_product))
        .routes(routes!(list_datasets))
        .routes(routes!(get_dataset))
        .routes(routes!(ingest_batch))
        .merge(
            // Event requests have their own, smaller, body limit.
            OpenApiRouter::new()
                .routes(routes!(send_events))
                .layer(DefaultBodyLimit::max(state.event_max_body_bytes)),
        )
        .routes(routes!(list_contracts))
        .routes(routes!(list_contract_versions))
        .routes(routes!(get_contract_version))
        .routes(routes!(check_product, product_quality_history))
        .routes(routes!(check_dataset))
        .routes(routes!(check_history))
        .routes(routes!(apply))
        .routes(routes!(query))
        .routes(routes!(list_queries))
        .routes(routes!(list_audit))
        .routes(routes!(verify_audit))
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(revoke_token))
        .routes(routes!(whoami))
        .routes(routes!(create_grant, list_grants))
        .routes(routes!(revoke_grant))
        .routes(routes!(list_policies))
        .routes(routes!(put_policy, delete_policy))
        .routes(routes!(explain))
        .routes(routes!(request_access, list_access_requests))
        .routes(routes!(approve_access))
        .routes(routes!(deny_access))
        .routes(routes!(list_governance_policies, apply_governance_policies))
        .routes(routes!(get_governance_policy, delete_governance_policy))
        .routes(routes!(disable_standard_policy))
        .routes(routes!(enable_standard_policy))
        .routes(routes!(test_governance_policy))
        .routes(routes!(check_governance))
        .routes(routes!(governance_scorecard))
        .routes(routes!(list_glossary, apply_glossary))
        .routes(routes!(list_sources))
        .routes(routes!(list_product_sources))
        .routes(routes!(get_source))
        .routes(routes!(run_source))
        .routes(routes!(list_secrets))
        .routes(routes!(put_secret, delete_secret))
        .routes(routes!(list_transforms))
        .routes(routes!(list_product_transforms))
        .routes(routes!(run_behind_transforms))
        .routes(routes!(run_product_transforms))
        .routes(routes!(run_transform))
        .routes(routes!(list_transform_runs))
        .routes(routes!(get_lineage))
        .routes(routes!(get_node_lineage, receive_lineage))
        .split_for_parts();
    let openapi = Arc::new(document_shared_rules(
        serde_json::to_value(&openapi).expect("the OpenAPI document serialises"),
    ));
    router
        .route(
            "/api/openapi.json",
            axum::routing::get(move || {
                let openapi = openapi.clone();
                async move { Json(openapi.as_ref().clone()) }
            }),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state)
}

/// The names of the mesh in paths and query strings, as `Name::parse` checks them.
const NAME_PATTERN: &str = "^[a-z][a-z0-9_]*$";

/// A query's response header, once for each dataset it read whose latest check run has failing
/// blocking checks (the answer is still given): `DOMAIN.PRODUCT.DATASET: blocking checks fail…`.
pub const QUALITY_WARNING: &str = "tessera-quality-warning";
/// Secret names, as `SourcesService::put_secret` checks them.
const SECRET_NAME_PATTERN: &str = "^[a-z][a-z0-9_.-]*$";

/// What every operation shares, written into the generated document once rather than on each
/// handler: the 401 and 403 answers of every operation that needs a token, the rule for names in paths and query strings (a lowercase snake_case SQL
/// identifier of at most 63 characters) and the 400 answer a malformed request gets.
fn document_shared_rules(mut doc: serde_json::Value) -> serde_json::Value {
    let bad_request = serde_json::json!({
        "description": "The request is malformed: a name in the path or query string that is not a lowercase snake_case identifier, a query parameter out of its range, or a body that is not what the operation takes",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    });
    let unauthenticated = serde_json::json!({
        "description": "No valid API token: none sent, or unknown, malformed or revoked (see WWW-Authenticate)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    });
    let forbidden = serde_json::json!({
        "description": "The caller may not do this; the message names the action and the resource",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    });
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return doc;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            let Some(operation) = operation.as_object_mut() else {
                continue;
            };
            for parameter in operation
                .get_mut("parameters")
                .and_then(|p| p.as_array_mut())
                .into_iter()
                .flatten()
            {
                let named = matches!(
                    parameter.get("name").and_then(|n| n.as_str()),
                    Some("domain" | "product" | "dataset" | "source")
                );
                if named {
                    parameter["schema"] = serde_json::json!({
                        "type": "string",
                        "pattern": NAME_PATTERN,
                        "minLength": 1,
                        "maxLength": 63
                    });
                }
                if parameter.get("name").and_then(|n| n.as_str()) == Some("secret_name") {
                    parameter["schema"] = serde_json::json!({
                        "type": "string",
                        "pattern": SECRET_NAME_PATTERN,
                        "minLength": 1,
                        "maxLength": 100
                    });
                }
            }
            let open = operation
                .get("security")
                .and_then(|s| s.as_array())
                .is_some_and(|s| {
                    s.iter()
                        .all(|r| r.as_object().is_some_and(|r| r.is_empty()))
                });
            if !open
                && let Some(responses) = operation
                    .get_mut("responses")
                    .and_then(|r| r.as_object_mut())
            {
                responses
                    .entry("401")
                    .or_insert_with(|| unauthenticated.clone());
                responses.entry("403").or_insert_with(|| forbidden.clone());
            }
            let takes_input = operation.contains_key("requestBody")
                || operation
                    .get("parameters")
                    .and_then(|p| p.as_array())
                    .is_some_and(|p| !p.is_empty());
            if takes_input
                && let Some(responses) = operation
                    .get_mut("responses")
                    .and_then(|r| r.as_object_mut())
            {
                responses
                    .entry("400")
                    .or_insert_with(|| bad_request.clone());
            }
        }
    }
    doc
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(crate::ServiceError::NotFound(format!(
        "no route {}: see /api/openapi.json for the API",
        uri.path()
    )))
}

fn name(value: &str) -> ApiResult<Name> {
    Name::parse(value).map_err(|e| ApiError::bad_request(e.to_string()))
}

#[utoipa::path(get, path = "/health", tag = "operations", security(()),
    responses((status = 200, description = "The server and its metadata store answer", body = Health),
              (status = 503, description = "The metadata store does not answer", body = ErrorBody)))]
async fn health(State(s): State<AppState>, Anonymous(cx): Anonymous) -> ApiResult<Json<Health>> {
    Ok(Json(s.services.health(&cx).await?))
}

#[utoipa::path(get, path = "/api/v1/domains", tag = "catalog",
    responses((status = 200, description = "Every domain", body = [DomainView])))]
async fn list_domains(
    State(s): State<AppState>,
    Caller(cx): Caller,
) -> ApiResult<Json<Vec<DomainView>>> {
    Ok(Json(s.services.domains(&cx).await?))
}

#[utoipa::path(get, path = "/api/v1/domains/{domain}", tag = "catalog",
    params(("domain" = String, Path, description = "Domain name")),
    responses((status = 200, description = "The domain", body = DomainView),
              (status = 404, description = "No such domain", body = ErrorBody)))]
async fn get_domain(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path(domain): Path<String>,
) -> ApiResult<Json<DomainView>> {
    Ok(Json(s.services.domain(&cx, name(&domain)?.as_str()).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ProductFilter {
    /// Only the products of this domain.
    domain: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/products", tag = "catalog", params(ProductFilter),
    responses((status = 200, description = "Products, by domain and name", body = [ProductSummary]),
              (status = 404, description = "No such domain", body = ErrorBody)))]
async fn list_products(
    State(s): State<AppState>,
    Caller(cx): Caller,
    filter: Result<Query<ProductFilter>, QueryRejection>,
) -> ApiResult<Json<Vec<ProductSummary>>> {
    let Query(filter) = filter.map_err(ApiError::from_query_rejection)?;
    let domain = filter.domain.as_deref().map(name).transpose()?;
    Ok(Json(
        s.services
            .products(&cx, domain.as_ref().map(Name::as_str))
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/products/{domain}/{product}", tag = "catalog",
    params(("domain" = String, Path), ("product" = String, Path)),
    responses((status = 200, description = "The product with its ports, datasets and descriptor", body = ProductView),
              (status = 404, description = "No such product", body = ErrorBody)))]
async fn get_product(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path((domain, product)): Path<(String, String)>,
) -> ApiResult<Json<ProductView>> {
    Ok(Json(
        s.services
            .product(&cx, name(&domain)?.as_str(), name(&product)?.as_str())
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DatasetFilter {
    /// Only the datasets of this domain (with `product`: of `domain.product`).
    domain: Option<String>,
    /// Only the datasets of products of this name (in every domain, unless `domain` is given).
    product: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/datasets", tag = "catalog", params(DatasetFilter),
    responses((status = 200, description = "Datasets, by reference", body = [DatasetSummary]),
              (status = 404, description = "No such product", body = ErrorBody)))]
async fn list_datasets(
    State(s): State<AppState>,
    Caller(cx): Caller,
    filter: Result<Query<DatasetFilter>, QueryRejection>,
) -> ApiResult<Json<Vec<DatasetSummary>>> {
    let Query(filter) = filter.map_err(ApiError::from_query_rejection)?;
    let datasets = match (filter.domain, filter.product) {
        (Some(d), Some(p)) => {
            let (d, p) = (name(&d)?, name(&p)?);
            s.services
                .datasets(&cx, Some((d.as_str(), p.as_str())))
                .await?
        }
        (Some(d), None) => {
            let d = name(&d)?;
            s.services.domain(&cx, d.as_str()).await?;
            let mut all = s.services.datasets(&cx, None).await?;
            all.retain(|x| x.domain == d.as_str());
            all
        }
        (None, Some(p)) => {
            let p = name(&p)?;
            let mut all = s.services.datasets(&cx, None).await?;
            all.retain(|x| x.product == p.as_str());
            all
        }
        (None, None) => s.services.datasets(&cx, None).await?,
    };
    Ok(Json(datasets))
}

fn dataset_ref(domain: &str, product: &str, dataset: &str) -> ApiResult<DatasetRef> {
    Ok(DatasetRef::new(
        name(domain)?,
        name(product)?,
        name(dataset)?,
    ))
}

#[utoipa::path(get, path = "/api/v1/datasets/{domain}/{product}/{dataset}", tag = "catalog",
    params(("domain" = String, Path), ("product" = String, Path), ("dataset" = String, Path)),
    responses((status = 200, description = "The dataset with its columns and tables", body = DatasetView),
              (status = 404, description = "No such dataset", body = ErrorBody)))]
async fn get_dataset(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path((domain, product, dataset)): Path<(String, String, String)>,
) -> ApiResult<Json<DatasetView>> {
    Ok(Json(
        s.services
            .dataset(&cx, &dataset_ref(&domain, &product, &dataset)?)
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct IngestParams {
    /// Batch id; the same id is written once. Default: the `Idempotency-Key` header, else the
    /// SHA-256 of the body.
    batch_id: Option<String>,
    /// `csv`, `ndjson` or `parquet`. Default: from `Content-Type`, else detected from the body.
    format: Option<String>,
    /// The file's name, for format detection.
    file_name: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/datasets/{domain}/{product}/{dataset}/batches", tag = "ingest",
    params(("domain" = String, Path), ("product" = String, Path), ("dataset" = String, Path), IngestParams,
           ("Idempotency-Key" = Option<String>, Header, description = "Batch id, if not in the query string")),
    request_body(description = "The batch: a CSV file with a header, NDJSON, or Parquet",
                 content((String = "text/csv"), (String = "application/x-ndjson"),
                         (Vec<u8> = "application/vnd.apache.parquet"), (Vec<u8> = "application/octet-stream"))),
    responses((status = 201, description = "The batch was committed: accepted rows to the dataset, refused ones to its quarantine table", body = IngestReport),
              (status = 200, description = "The batch id was ingested before; nothing was written", body = IngestReport),
              (status = 404, description = "No such dataset", body = ErrorBody),
              (status = 413, description = "The body is over the server's limit", body = ErrorBody),
              (status = 422, description = "The batch cannot be used as a whole (unreadable, empty, unknown columns); nothing was written", body = ErrorBody)))]
async fn ingest_batch(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path((domain, product, dataset)): Path<(String, String, String)>,
    params: Result<Query<IngestParams>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let Query(params) = params.map_err(ApiError::from_query_rejection)?;
    let reference = dataset_ref(&domain, &product, &dataset)?;
    let body = body.map_err(|r| ApiError::from_bytes_rejection(r, s.max_body_bytes))?;
    let format = match params.format.as_deref() {
        Some(f) => Some(
            f.parse::<Format>()
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        ),
        None => headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(Format::from_content_type),
    };
    let batch_id = params.batch_id.or_else(|| {
        headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    let report = s
        .services
        .ingest(
            &cx,
            &reference,
            BatchData::File {
                bytes: body,
                format,
                file_name: params.file_name,
            },
            batch_id,
        )
        .await?;
    let status = if report.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(report)).into_response())
}

/// The media types an event request's body may declare: NDJSON under its usual names, JSON,
/// and the generic types clients send a string or a gzip file as (the body is sniffed).
const EVENT_CONTENT_TYPES: &[&str] = &[
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/jsonlines",
    "application/x-json-stream",
    "text/x-ndjson",
    "application/json",
    "text/plain",
    "application/octet-stream",
    "application/gzip",
    "application/x-gzip",
];

#[utoipa::path(post, path = "/api/v1/datasets/{domain}/{product}/{dataset}/events", tag = "ingest",
    params(("domain" = String, Path), ("product" = String, Path), ("dataset" = String, Path),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry harmless: within the server's idempotency window, a request with the same key to the same dataset is answered with the first answer and writes nothing"),
           ("Content-Encoding" = Option<String>, Header, description = "gzip, if the body is compressed")),
    request_body(description = "Events: NDJSON (one JSON object a line) or a JSON array of objects",
                 content((String = "application/x-ndjson"), (String = "application/json"))),
    responses((status = 202, description = "Every event is durable: valid ones are committed to the dataset, and invalid ones (listed with their index) to its quarantine table, within about the commit interval", body = EventsReceipt),
              (status = 200, description = "The Idempotency-Key was used before: the first answer, nothing written", body = EventsReceipt),
              (status = 400, description = "The body is not NDJSON or a JSON array of objects, or does not decompress", body = ErrorBody),
              (status = 404, description = "No such dataset", body = ErrorBody),
              (status = 409, description = "A request with the same Idempotency-Key is still in progress", body = ErrorBody),
              (status = 413, description = "The body is over --event-max-body-bytes, or holds more events than --event-max-rows", body = ErrorBody),
              (status = 415, description = "The Content-Type is not NDJSON or JSON", body = ErrorBody),
              (status = 422, description = "The events cannot be used (none, unknown columns); nothing was written", body = ErrorBody),
              (status = 429, description = "The event log's backlog is full: retry after Retry-After", body = ErrorBody)))]
async fn send_events(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path((domain, product, dataset)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let reference = dataset_ref(&domain, &product, &dataset)?;
    let body = body.map_err(|r| {
        ApiError::from_bytes_rejection_of(r, s.event_max_body_bytes, "--event-max-body-bytes")
    })?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some(content_type) = header("content-type") {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if !EVENT_CONTENT_TYPES
            .iter()
            .any(|t| t.eq_ignore_ascii_case(essence))
        {
            return Err(ApiError(crate::ServiceError::UnsupportedMediaType(
                format!(
                    "Content-Type {content_type:?} is not events: send application/x-ndjson (one JSON object a line) or application/json (an array of objects, or one object a line); a body without a Content-Type is read as either"
                ),
            )));
        }
    }
    let gzip = match header("content-encoding").as_deref().map(str::trim) {
        None | Some("identity") => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Content-Encoding {other:?} is not supported: send gzip or no encoding"
            )));
        }
    };
    let receipt = s
        .services
        .send_events(
            &cx,
            &reference,
            crate::events::EventBody { bytes: body, gzip },
            header("idempotency-key"),
        )
        .await?;
    let status = if receipt.replayed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(receipt)).into_response())
}

#[utoipa::path(get, path = "/api/v1/contracts", tag = "catalog",
    responses((status = 200, description = "Every contract with its versions", body = [ContractSummary])))]
async fn list_contracts(
    State(s): State<AppState>,
    Caller(cx): Caller,
) -> ApiResult<Json<Vec<ContractSummary>>> {
    Ok(Json(s.services.contracts(&cx).await?))
}

#[utoipa::path(get, path = "/api/v1/contracts/{domain}/{id}", tag = "catalog",
    params(("domain" = String, Path, description = "The domain the contract belongs to"),
           ("id" = String, Path, description = "The ODCS contract id")),
    responses((status = 200, description = "Every version of the contract, oldest first", body = [ContractView]),
              (status = 400, description = "The domain is not a lowercase snake_case name", body = ErrorBody),
              (status = 404, description = "No such contract", body = ErrorBody)))]
async fn list_contract_versions(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path((domain, id)): Path<(String, String)>,
) -> ApiResult<Json<Vec<ContractView>>> {
    let domain = name(&domain)?;
    Ok(Json(
        s.services
            .contract_versions(&cx, domain.as_str(), &id)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/contracts/{domain}/{id}/versions/{version}", tag = "catalog",
    params(("domain" = String, Path), ("id" = String, Path), ("version" = String, Path)),
    responses((status = 200, description = "One version of the contract, with its ODCS file", body = ContractView),
              (status = 400, description = "The domain is not a lowercase snake_case name", body = ErrorBody),
              (status = 404, description = "No such contract version", body = ErrorBody)))]
async fn get_contract_version(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path((domain, id, version)): Path<(String, String, String)>,
) -> ApiResult<Json<ContractView>> {
    let domain = name(&domain)?;
    Ok(Json(
        s.services
            .contract(&cx, domain.as_str(), &id, &version)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/apply", tag = "publish",
    request_body = ApplyRequest,
    responses((status = 200, description = "The plan, applied unless `dry_run`", body = ApplyPlan),
              (status = 400, description = "Not a product folder", body = ErrorBody),
              (status = 409, description = "Conflicts with what is published", body = ErrorBody),
              (status = 413, description = "The body is over the server's limit", body = ErrorBody),
              (status = 422, description = "Files that break their standard, each problem with file, line and field; or a publish the governance policies refused (code `policy_violations`, the plan with every violation in `plan`)", body = ErrorBody)))]
async fn apply(
    State(s): State<AppState>,
    Caller(cx): Caller,
    request: Result<Json<ApplyRequest>, JsonRejection>,
) -> ApiResult<Json<ApplyPlan>> {
    let Json(request) = request.map_err(|r| ApiError::from_json_rejection(r, s.max_body_bytes))?;
    Ok(Json(s.services.apply(&cx, &request).await?))
}

#[utoipa::path(post, path = "/api/v1/query", tag = "query",
    request_body = QueryRequest,
    params(("Accept" = Option<String>, Header, description = "application/json (default), application/x-ndjson, text/csv, or application/vnd.apache.arrow.stream")),
    responses((status = 200, description = "The result, encoded as the Accept header asks and streamed. A failure or a limit reached once rows were sent ends the body with an error marker (see the README). A `Tessera-Quality-Warning` header names each dataset read whose latest check run has failing blocking checks",
               content((QueryResult = "application/json"), (String = "application/x-ndjson"), (String = "text/csv"),
                       (Vec<u8> = "application/vnd.apache.arrow.stream"))),
              (status = 400, description = "The SQL does not parse or plan, would change something, is too long or too deeply nested, or fails on the data (division by zero, a failed cast, an integer overflow)", body = ErrorBody),
              (status = 413, description = "The body is over the server's limit", body = ErrorBody),
              (status = 422, description = "The query hit its time or memory limit, or its result is larger than a query may return", body = ErrorBody),
              (status = 503, description = "As many queries run and wait as the server allows (see Retry-After), or the server is stopping", body = ErrorBody)))]
async fn query(
    State(s): State<AppState>,
    Caller(cx): Caller,
    headers: HeaderMap,
    request: Result<Json<QueryRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(request) = request.map_err(|r| ApiError::from_json_rejection(r, s.max_body_bytes))?;
    let format =
        ResultFormat::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let stream = s.services.query(&cx, &request.sql).await?;
    let encoder = ResultEncoder::new(format, &stream.schema())?;
    let warnings = s.services.quality_warnings(stream.datasets()).await;
    let body = results::stream_body(s.services.as_ref(), stream, encoder);
    let mut response = ([(header::CONTENT_TYPE, format.content_type())], body).into_response();
    for warning in warnings {
        if let Ok(value) = header::HeaderValue::from_str(&crate::checks::header_text(&warning)) {
            response.headers_mut().append(QUALITY_WARNING, value);
        }
    }
    Ok(response)
}

#[utoipa::path(post, path = "/api/v1/products/{domain}/{product}/checks", tag = "quality",
    params(("domain" = String, Path), ("product" = String, Path)),
    responses((status = 200, description = "Every dataset's checks, run now and stored", body = CheckReport),
              (status = 404, description = "No such product", body = ErrorBody)))]
async fn check_product(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path((domain, product)): Path<(String, String)>,
) -> ApiResult<Json<CheckReport>> {
    let (d, p) = (name(&domain)?, name(&product)?);
    Ok(Json(
        s.services
            .check(&cx, d.as_str(), p.as_str(), None, "on_demand")
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/products/{domain}/{product}/checks", tag = "quality",
    params(("domain" = String, Path), ("product" = String, Path), HistoryParams),
    responses((status = 200, description = "The product's quality score after each full check run of one of its datasets, newest first", body = [ProductQualityPoint]),
              (status = 404, description = "No such product", body = ErrorBody)))]
async fn product_quality_history(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path((domain, product)): Path<(String, String)>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> ApiResult<Json<Vec<ProductQualityPoint>>> {
    let Query(params) = params.map_err(ApiError::from_query_rejection)?;
    let (d, p) = (name(&domain)?, name(&product)?);
    Ok(Json(
        s.services
            .product_quality_history(&cx, d.as_str(), p.as_str(), params.limit())
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/datasets/{domain}/{product}/{dataset}/checks", tag = "quality",
    params(("domain" = String, Path), ("product" = String, Path), ("dataset" = String, Path)),
    responses((status = 200, description = "The dataset's checks, run now and stored", body = CheckReport),
              (status = 404, description = "No such dataset", body = ErrorBody)))]
async fn check_dataset(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path((domain, product, dataset)): Path<(String, String, String)>,
) -> ApiResult<Json<CheckReport>> {
    let r = dataset_ref(&domain, &product, &dataset)?;
    Ok(Json(
        s.services
            .check(
                &cx,
                r.domain.as_str(),
                r.product.as_str(),
                Some(r.dataset.as_str()),
                "on_demand",
            )
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryParams {
    /// How many runs, newest first (default 20, at most 1000).
    limit: Option<i64>,
}

impl HistoryParams {
    fn limit(&self) -> i64 {
        self.limit.unwrap_or(20).clamp(1, 1000)
    }
}

#[utoipa::path(get, path = "/api/v1/datasets/{domain}/{product}/{dataset}/checks", tag = "quality",
    params(("domain" = String, Path), ("product" = String, Path), ("dataset" = String, Path), HistoryParams),
    responses((status = 200, description = "Stored check runs, newest first", body = [CheckRunView]),
              (status = 404, description = "No such dataset", body = ErrorBody)))]
async fn check_history(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path((domain, product, dataset)): Path<(String, String, String)>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> ApiResult<Json<Vec<CheckRunView>>> {
    let Query(params) = params.map_err(ApiError::from_query_rejection)?;
    let r = dataset_ref(&domain, &product, &dataset)?;
    s.services.dataset(&cx, &r).await?;
    let limit = params.limit();
    Ok(Json(
        s.services
            .check_history(
                &cx,
                r.domain.as_str(),
                r.product.as_str(),
                r.dataset.as_str(),
                limit,
            )
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "access",
    request_body = TokenRequest,
    responses((status = 201, description = "The token, shown this once (it is stored only as a hash)", body = TokenCreated),
              (status = 403, description = "Only platform admins make tokens", body = ErrorBody)))]
async fn create_token(
    State(s): State<AppState>,
    Caller(cx): Caller,
    request: Result<Json<TokenRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(request) = request.map_err(|r| ApiError::from_json_rejection(r, s.max_body_bytes))?;
    let created = s.services.create_token(&cx, &request).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "access",
    responses((status = 200, description = "Every token (admins) or the caller's own, oldest first; never the token itself", body = [TokenView])))]
async fn list_tokens(
    State(s): State<AppState>,
    Caller(cx): Caller,
) -> ApiResult<Json<Vec<TokenView>>> {
    Ok(Json(s.services.tokens(&cx).await?))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{token_id}", tag = "access",
    params(("token_id" = String, Path, description = "The token's id (the part after `tsr_` up to the next `_`)")),
    responses((status = 200, description = "The token, revoked: requests with it get 401 from now on", body = TokenView),
              (status = 404, description = "No such token among those the caller may see", body = ErrorBody),
              (status = 409, description = "The token was revoked before", body = ErrorBody)))]
async fn revoke_token(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path(token_id): Path<String>,
) -> ApiResult<Json<TokenView>> {
    Ok(Json(s.services.revoke_token(&cx, &token_id).await?))
}

#[utoipa::path(get, path = "/api/v1/whoami", tag = "access",
    responses((status = 200, description = "The principal the request runs as", body = PrincipalView)))]
async fn whoami(State(s): State<AppState>, Caller(cx): Caller) -> ApiResult<Json<PrincipalView>> {
    Ok(Json(s.services.whoami(&cx).await?))
}

#[utoipa::path(post, path = "/api/v1/grants", tag = "access",
    request_body = GrantRequest,
    responses((status = 201, description = "The grant: its grantee may read the product from now on", body = GrantView),
              (status = 400, description = "Not DOMAIN.PRODUCT, not a grantee, or days out of range", body = ErrorBody),
              (status = 404, description = "No such product", body = ErrorBody)))]
async fn create_grant(
    State(s): State<AppState>,
    Caller(cx): Caller,
    request: Result<Json<GrantRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(request) = request.map_err(|r| ApiError::from_json_rejection(r, s.max_body_bytes))?;
    let grant = s.services.grant(&cx, &request).await?;
    Ok((StatusCode::CREATED, Json(grant)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct GrantParams {
    /// Only the grants of this product (`domain.product`).
    product: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/grants", tag = "access",
    params(GrantParams),
    responses((status = 200, description = "Active grants: each product's declared consumers", body = [GrantView]),
              (status = 400, description = "Not DOMAIN.PRODUCT", body = ErrorBody),
              (status = 404, description = "No such product", body = ErrorBody)))]
async fn list_grants(
    State(s): State<AppState>,
    Caller(cx): Caller,
    params: Result<Query<GrantParams>, QueryRejection>,
) -> ApiResult<Json<Vec<GrantView>>> {
    let Query(params) = params.map_err(ApiError::from_query_rejection)?;
    Ok(Json(
        s.services.grants(&cx, params.product.as_deref()).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/grants/{grant_id}", tag = "access",
    params(("grant_id" = String, Path)),
    responses((status = 200, description = "The grant, revoked", body = GrantView),
              (status = 404, description = "No such grant", body = ErrorBody),
              (status = 409, description = "The grant was revoked before", body = ErrorBody)))]
async fn revoke_grant(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path(grant_id): Path<String>,
) -> ApiResult<Json<GrantView>> {
    Ok(Json(s.services.revoke_grant(&cx, &grant_id).await?))
}

#[utoipa::path(get, path = "/api/v1/policies", tag = "access",
    responses((status = 200, description = "Admins' Cedar policies (the defaults that ship with Tessera apply under them)", body = [PolicyView])))]
async fn list_policies(
    State(s): State<AppState>,
    Caller(cx): Caller,
) -> ApiResult<Json<Vec<PolicyView>>> {
    Ok(Json(s.services.policies(&cx).await?))
}

#[utoipa::path(put, path = "/api/v1/policies/{policy_id}", tag = "access",
    params(("policy_id" = String, Path)),
    request_body = PolicyRequest,
    responses((status = 200, description = "The policy, stored and in force", body = PolicyView),
              (status = 400, description = "The text is not valid Cedar, or the id is not a name", body = ErrorBody)))]
async fn put_policy(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path(policy_id): Path<String>,
    request: Result<Json<PolicyRequest>, JsonRejection>,
) -> ApiResult<Json<PolicyView>> {
    let Json(request) = request.map_err(|r| ApiError::from_json_rejection(r, s.max_body_bytes))?;
    Ok(Json(
        s.services.put_policy(&cx, &policy_id, &request).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/policies/{policy_id}", tag = "access",
    params(("policy_id" = String, Path)),
    responses((status = 200, description = "The policy as it was; it no longer applies", body = PolicyView),
              (status = 404, description = "No such policy", body = ErrorBody)))]
async fn delete_policy(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path(policy_id): Path<String>,
) -> ApiResult<Json<PolicyView>> {
    Ok(Json(s.services.delete_policy(&cx, &policy_id).await?))
}

#[utoipa::path(get, path = "/api/v1/governance/policies", tag = "governance",
    responses((status = 200, description = "Every governance policy: standard (on unless the council turned it off), global, and the domains' the caller may discover", body = [GovernancePolicyView])))]
async fn list_governance_policies(
    State(s): State<AppState>,
    Caller(cx): Caller,
) -> ApiResult<Json<Vec<GovernancePolicyView>>> {
    Ok(Json(s.services.governance_policies(&cx).await?))
}

#[utoipa::path(put, path = "/api/v1/governance/policies", tag = "governance",
    request_body = PolicyFilesRequest,
    responses((status = 200, description = "The global policies, stored and in force", body = [GovernancePolicyView]),
              (status = 400, description = "No files", body = ErrorBody),
              (status = 403, description = "Not a member of the governance council group, nor an admin", body = ErrorBody),
              (status = 422, description = "A file that is not a valid policy, or whose query does not plan over tessera_meta, each problem with file, line and field", body = ErrorBody)))]
async fn apply_governance_policies(
    State(s): State<AppState>,
    Caller(cx): Caller,
    request: Result<Json<PolicyFilesRequest>, JsonRejection>,
) -> ApiResult<Json<Vec<GovernancePolicyView>>> {
    let Json(request) = request.map_err(|r| ApiError::from_json_rejection(r, s.max_body_bytes))?;
    Ok(Json(s.services.apply_global_policies(&cx, &request).await?))
}

#[utoipa::path(get, path = "/api/v1/glossary", tag = "governance",
    responses((status = 200, description = "Every published version of every glossary term, with the columns that reference it", body = [GlossaryTermView])))]
async fn list_glossary(
    State(s): State<AppState>,
    Caller(cx): Caller,
) -> ApiResult<Json<Vec<GlossaryTermView>>> {
    Ok(Json(s.services.glossary(&cx).await?))
}

#[utoipa::path(put, path = "/api/v1/glossary", tag = "governance",
    request_body = GlossaryFilesRequest,
    responses((status = 200, description = "The terms published (new versions stored; one already published with the same content is left as it is), and what each new version would do to the columns on an older one", body = GlossaryApplyView),
              (status = 400, description = "No files", body = ErrorBody),
              (status = 403, description = "Not a member of the governance council group, nor an admin", body = ErrorBody),
              (status = 422, description = "A file that is not a valid glossary term, or a published version with other content, each problem with file, line and field", body = ErrorBody)))]
async fn apply_glossary(
    State(s): State<AppState>,
    Caller(cx): Caller,
    request: Result<Json<GlossaryFilesRequest>, JsonRejection>,
) -> ApiResult<Json<GlossaryApplyView>> {
    let Json(request) = request.map_err(|r| ApiError::from_json_rejection(r, s.max_body_bytes))?;
    Ok(Json(s.services.apply_glossary(&cx, &request).await?))
}

#[utoipa::path(get, path = "/api/v1/governance/policies/{policy_id}", tag = "governance",
    params(("policy_id" = String, Path)),
    responses((status = 200, description = "The policy, with its file", body = GovernancePolicyView),
              (status = 404, description = "No such policy", body = ErrorBody)))]
async fn get_governance_policy(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path(policy_id): Path<String>,
) -> ApiResult<Json<GovernancePolicyView>> {
    Ok(Json(s.services.governance_policy(&cx, &policy_id).await?))
}

#[utoipa::path(delete, path = "/api/v1/governance/policies/{policy_id}", tag = "governance",
    params(("policy_id" = String, Path)),
    responses((status = 200, description = "The global policy as it was; it no longer applies", body = GovernancePolicyView),
              (status = 403, description = "Not a member of the governance council group, nor an admin", body = ErrorBody),
              (status = 404, description = "No such policy", body = ErrorBody),
              (status = 409, description = "A standard policy (turned off, not removed) or a domain's", body = ErrorBody)))]
async fn delete_governance_policy(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path(policy_id): Path<String>,
) -> ApiResult<Json<GovernancePolicyView>> {
    Ok(Json(
        s.services.delete_global_policy(&cx, &policy_id).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/governance/policies/{policy_id}/disable", tag = "governance",
    params(("policy_id" = String, Path)),
    responses((status = 200, description = "The standard policy, off for the whole mesh (recorded in the audit log)", body = GovernancePolicyView),
              (status = 403, description = "Not a member of the governance council group, nor an admin", body = ErrorBody),
              (status = 404, description = "No such policy", body = ErrorBody),
              (status = 409, description = "Not a standard policy", body = ErrorBody)))]
async fn disable_standard_policy(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path(policy_id): Path<String>,
) -> ApiResult<Json<GovernancePolicyView>> {
    Ok(Json(
        s.services
            .switch_standard_policy(&cx, &policy_id, false)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/governance/policies/{policy_id}/enable", tag = "governance",
    params(("policy_id" = String, Path)),
    responses((status = 200, description = "The standard policy, on again", body = GovernancePolicyView),
              (status = 403, description = "Not a member of the governance council group, nor an admin", body = ErrorBody),
              (status = 404, description = "No such policy", body = ErrorBody),
              (status = 409, description = "Not a standard policy", body = ErrorBody)))]
async fn enable_standard_policy(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path(policy_id): Path<String>,
) -> ApiResult<Json<GovernancePolicyView>> {
    Ok(Json(
        s.services
            .switch_standard_policy(&cx, &policy_id, true)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/governance/policies/test", tag = "governance",
    request_body = PolicyTestRequest,
    responses((status = 200, description = "What the policy finds on the product folder as it would be applied; nothing is applied", body = PolicyEvaluationView),
              (status = 400, description = "Not a product folder, or a policy with no rule of its own", body = ErrorBody),
              (status = 409, description = "The folder conflicts with what is published", body = ErrorBody),
              (status = 422, description = "A policy or product file that is not valid, each problem with file, line and field", body = ErrorBody)))]
async fn test_governance_policy(
    State(s): State<AppState>,
    Caller(cx): Caller,
    request: Result<Json<PolicyTestRequest>, JsonRejection>,
) -> ApiResult<Json<PolicyEvaluationView>> {
    let Json(request) = request.map_err(|r| ApiError::from_json_rejection(r, s.max_body_bytes))?;
    Ok(Json(s.services.test_policy(&cx, &request).await?))
}

#[utoipa::path(post, path = "/api/v1/governance/check", tag = "governance",
    request_body = PolicyCheckRequest,
    responses((status = 200, description = "Every policy evaluated on the mesh as it is (or a domain, or a product), stored", body = PolicyEvaluationView),
              (status = 400, description = "Not a JSON object with an optional target", body = ErrorBody),
              (status = 404, description = "No such domain or product", body = ErrorBody)))]
async fn check_governance(
    State(s): State<AppState>,
    Caller(cx): Caller,
    request: Result<Json<PolicyCheckRequest>, JsonRejection>,
) -> ApiResult<Json<PolicyEvaluationView>> {
    let Json(request) = request.map_err(|r| ApiError::from_json_rejection(r, s.max_body_bytes))?;
    Ok(Json(s.services.check_policies(&cx, &request).await?))
}

/// `?format=` of the scorecard.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ScorecardFormat {
    /// `json` (the default) or `csv` (one row per product and policy); `Accept: text/csv`
    /// asks for CSV too.
    format: Option<ScorecardEncoding>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum ScorecardEncoding {
    Json,
    Csv,
}

#[utoipa::path(get, path = "/api/v1/governance/scorecard", tag = "governance",
    params(ScorecardRequest, ScorecardFormat),
    responses((status = 200, description = "Where each product the caller may discover stands on each policy, since when, the share passing per product, domain and overall, and each product's history; CSV: one row per product and policy",
               content((ScorecardView = "application/json"), (String = "text/csv"))),
              (status = 400, description = "A malformed parameter (a format other than json or csv, a negative history)", body = ErrorBody),
              (status = 404, description = "No such domain or product", body = ErrorBody)))]
async fn governance_scorecard(
    State(s): State<AppState>,
    Caller(cx): Caller,
    headers: HeaderMap,
    params: Result<Query<ScorecardRequest>, QueryRejection>,
    format: Result<Query<ScorecardFormat>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(request) = params.map_err(ApiError::from_query_rejection)?;
    let Query(format) = format.map_err(ApiError::from_query_rejection)?;
    let csv = match format.format {
        Some(encoding) => encoding == ScorecardEncoding::Csv,
        None => {
            ResultFormat::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))
                == ResultFormat::Csv
        }
    };
    let view = s.services.scorecard(&cx, &request).await?;
    if csv {
        let body = crate::scorecard::scorecard_csv(&view)?;
        return Ok((
            [(header::CONTENT_TYPE, ResultFormat::Csv.content_type())],
            body,
        )
            .into_response());
    }
    Ok(Json(view).into_response())
}

#[utoipa::path(get, path = "/api/v1/access/explain", tag = "access",
    params(ExplainRequest),
    responses((status = 200, description = "Allow or deny, and the policies that decided", body = ExplainView),
              (status = 400, description = "Unknown action or malformed resource", body = ErrorBody),
              (status = 404, description = "No such user", body = ErrorBody)))]
async fn explain(
    State(s): State<AppState>,
    Caller(cx): Caller,
    params: Result<Query<ExplainRequest>, QueryRejection>,
) -> ApiResult<Json<ExplainView>> {
    let Query(request) = params.map_err(ApiError::from_query_rejection)?;
    Ok(Json(s.services.explain(&cx, &request).await?))
}

#[utoipa::path(post, path = "/api/v1/access-requests", tag = "access",
    request_body = AccessRequestBody,
    responses((status = 201, description = "The request, pending until the product's owner team decides", body = AccessRequestView),
              (status = 400, description = "Not DOMAIN.PRODUCT, no purpose, or days out of range", body = ErrorBody),
              (status = 404, description = "No such product", body = ErrorBody)))]
async fn request_access(
    State(s): State<AppState>,
    Caller(cx): Caller,
    request: Result<Json<AccessRequestBody>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(request) = request.map_err(|r| ApiError::from_json_rejection(r, s.max_body_bytes))?;
    let made = s.services.request_access(&cx, &request).await?;
    Ok((StatusCode::CREATED, Json(made)).into_response())
}

#[utoipa::path(get, path = "/api/v1/access-requests", tag = "access",
    responses((status = 200, description = "The caller's own requests and those it may decide, oldest first", body = [AccessRequestView])))]
async fn list_access_requests(
    State(s): State<AppState>,
    Caller(cx): Caller,
) -> ApiResult<Json<Vec<AccessRequestView>>> {
    Ok(Json(s.services.access_requests(&cx).await?))
}

#[utoipa::path(post, path = "/api/v1/access-requests/{request_id}/approve", tag = "access",
    params(("request_id" = String, Path)),
    request_body = ApproveBody,
    responses((status = 200, description = "Approved: the requester reads the product (the rows the row filter keeps) until the grant ends", body = AccessRequestView),
              (status = 400, description = "The row filter does not apply to any of the product's datasets", body = ErrorBody),
              (status = 404, description = "No such request among those the caller may see", body = ErrorBody),
              (status = 409, description = "The request was decided before", body = ErrorBody)))]
async fn approve_access(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path(request_id): Path<String>,
    body: Result<Json<ApproveBody>, JsonRejection>,
) -> ApiResult<Json<AccessRequestView>> {
    let Json(body) = body.map_err(|r| ApiError::from_json_rejection(r, s.max_body_bytes))?;
    Ok(Json(
        s.services.approve_access(&cx, &request_id, &body).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/access-requests/{request_id}/deny", tag = "access",
    params(("request_id" = String, Path)),
    request_body = DenyBody,
    responses((status = 200, description = "Denied, with the reason for the requester", body = AccessRequestView),
              (status = 400, description = "No reason given", body = ErrorBody),
              (status = 404, description = "No such request among those the caller may see", body = ErrorBody),
              (status = 409, description = "The request was decided before", body = ErrorBody)))]
async fn deny_access(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path(request_id): Path<String>,
    body: Result<Json<DenyBody>, JsonRejection>,
) -> ApiResult<Json<AccessRequestView>> {
    let Json(body) = body.map_err(|r| ApiError::from_json_rejection(r, s.max_body_bytes))?;
    Ok(Json(
        s.services
            .deny_access(&cx, &request_id, &body.reason)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/queries", tag = "query",
    params(HistoryParams),
    responses((status = 200, description = "The query log, newest first: admins see every query; others their own and those on products they manage", body = [QueryLogView])))]
async fn list_queries(
    State(s): State<AppState>,
    Caller(cx): Caller,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> ApiResult<Json<Vec<QueryLogView>>> {
    let Query(params) = params.map_err(ApiError::from_query_rejection)?;
    Ok(Json(s.services.queries(&cx, params.limit()).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// Entries after this sequence number, oldest first; without it, the newest entries.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// How many entries (default 50, at most 1000).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(AuditParams),
    responses((status = 200, description = "A page of the audit log, oldest first", body = AuditPage),
              (status = 400, description = "A negative `after`", body = ErrorBody)))]
async fn list_audit(
    State(s): State<AppState>,
    Caller(cx): Caller,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> ApiResult<Json<AuditPage>> {
    let Query(params) = params.map_err(ApiError::from_query_rejection)?;
    let limit = params.limit.unwrap_or(50);
    Ok(Json(
        s.services.audit_entries(&cx, params.after, limit).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, description = "Whether the chain is whole and authentic, or the first entry found edited, forged, removed or cut off", body = AuditVerificationView)))]
async fn verify_audit(
    State(s): State<AppState>,
    Caller(cx): Caller,
) -> ApiResult<Json<AuditVerificationView>> {
    Ok(Json(s.services.verify_audit(&cx).await?))
}

/// The bearer token scheme every operation but `/health` requires.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`tsr_…`) from `tessera token create`, or the admin token the first start of a server prints",
                    ))
                    .build(),
            ),
        );
    }
}

#[utoipa::path(get, path = "/api/v1/sources", tag = "sources",
    responses((status = 200, description = "Every source of the products the caller may discover, with where each stands", body = [SourceView])))]
async fn list_sources(
    State(s): State<AppState>,
    Caller(cx): Caller,
) -> ApiResult<Json<Vec<SourceView>>> {
    Ok(Json(s.services.sources(&cx, None).await?))
}

#[utoipa::path(get, path = "/api/v1/sources/{domain}/{product}", tag = "sources",
    params(("domain" = String, Path), ("product" = String, Path)),
    responses((status = 200, description = "The product's sources, with where each stands (none for a product the caller may not discover)", body = [SourceView])))]
async fn list_product_sources(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path((domain, product)): Path<(String, String)>,
) -> ApiResult<Json<Vec<SourceView>>> {
    let (domain, product) = (name(&domain)?, name(&product)?);
    Ok(Json(
        s.services
            .sources(&cx, Some((domain.as_str(), product.as_str())))
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/sources/{domain}/{product}/{source}", tag = "sources",
    params(("domain" = String, Path), ("product" = String, Path), ("source" = String, Path)),
    responses((status = 200, description = "The source and where it stands: state, last position, lag, rows and the last error", body = SourceView),
              (status = 404, description = "No such source (or one the caller may not discover)", body = ErrorBody)))]
async fn get_source(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path((domain, product, source)): Path<(String, String, String)>,
) -> ApiResult<Json<SourceView>> {
    Ok(Json(
        s.services
            .source(
                &cx,
                name(&domain)?.as_str(),
                name(&product)?.as_str(),
                name(&source)?.as_str(),
            )
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/sources/{domain}/{product}/{source}/run", tag = "sources",
    params(("domain" = String, Path), ("product" = String, Path), ("source" = String, Path)),
    responses((status = 200, description = "The source pulled until nothing new waited (or a turn's pulls were made); where it stands now — a failed pull is in `state` and `last_error`", body = SourceView),
              (status = 404, description = "No such source", body = ErrorBody)))]
async fn run_source(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path((domain, product, source)): Path<(String, String, String)>,
) -> ApiResult<Json<SourceView>> {
    Ok(Json(
        s.services
            .run_source(
                &cx,
                name(&domain)?.as_str(),
                name(&product)?.as_str(),
                name(&source)?.as_str(),
            )
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/secrets", tag = "sources",
    responses((status = 200, description = "The secrets of the caller's teams (admins: all), by name; values are never shown", body = [SecretView])))]
async fn list_secrets(
    State(s): State<AppState>,
    Caller(cx): Caller,
) -> ApiResult<Json<Vec<SecretView>>> {
    Ok(Json(s.services.secrets(&cx).await?))
}

#[utoipa::path(put, path = "/api/v1/secrets/{secret_name}", tag = "sources",
    params(("secret_name" = String, Path, description = "Lower-case letters, digits, '_', '.' and '-', starting with a letter")),
    request_body = SecretRequest,
    responses((status = 200, description = "The secret, set (sealed in the metadata store; its value is never shown again)", body = SecretView)))]
async fn put_secret(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path(secret_name): Path<String>,
    request: Result<Json<SecretRequest>, JsonRejection>,
) -> ApiResult<Json<SecretView>> {
    let Json(request) = request.map_err(|r| ApiError::from_json_rejection(r, s.max_body_bytes))?;
    Ok(Json(
        s.services.put_secret(&cx, &secret_name, &request).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/secrets/{secret_name}", tag = "sources",
    params(("secret_name" = String, Path)),
    responses((status = 200, description = "The secret as it was; it is gone", body = SecretView),
              (status = 404, description = "No such secret (or one of another team)", body = ErrorBody),
              (status = 409, description = "A source still names it", body = ErrorBody)))]
async fn delete_secret(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path(secret_name): Path<String>,
) -> ApiResult<Json<SecretView>> {
    Ok(Json(s.services.delete_secret(&cx, &secret_name).await?))
}

#[utoipa::path(get, path = "/api/v1/transforms", tag = "transforms",
    responses((status = 200, description = "Every transform of the products the caller may discover, with its last run", body = [TransformView])))]
async fn list_transforms(
    State(s): State<AppState>,
    Caller(cx): Caller,
) -> ApiResult<Json<Vec<TransformView>>> {
    Ok(Json(s.services.transforms(&cx, None).await?))
}

#[utoipa::path(get, path = "/api/v1/transforms/{domain}/{product}", tag = "transforms",
    params(("domain" = String, Path), ("product" = String, Path)),
    responses((status = 200, description = "The product's transforms, with their last runs (none for a product the caller may not discover)", body = [TransformView])))]
async fn list_product_transforms(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path((domain, product)): Path<(String, String)>,
) -> ApiResult<Json<Vec<TransformView>>> {
    let (domain, product) = (name(&domain)?, name(&product)?);
    Ok(Json(
        s.services
            .transforms(&cx, Some((domain.as_str(), product.as_str())))
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RunParams {
    /// Recompute the whole dataset, whatever the transform's materialization.
    full_refresh: Option<bool>,
}

#[utoipa::path(post, path = "/api/v1/transforms/run", tag = "transforms",
    params(RunParams),
    responses((status = 200, description = "Across the mesh, in the order they feed each other, the transforms whose datasets are behind their inputs (an input committed rows since the dataset was last computed, or it never was), run now — with `full_refresh`, every transform; each run's status (a failed run committed nothing, its error says why). None when every dataset is up to date", body = [TransformRunView]),
              (status = 403, description = "The caller may not write a dataset a transform computes", body = ErrorBody)))]
async fn run_behind_transforms(
    State(s): State<AppState>,
    Caller(cx): Caller,
    params: Result<Query<RunParams>, QueryRejection>,
) -> ApiResult<Json<Vec<TransformRunView>>> {
    let Query(params) = params.map_err(ApiError::from_query_rejection)?;
    Ok(Json(
        s.services
            .run_transforms(&cx, RunScope::Behind, params.full_refresh.unwrap_or(false))
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/transforms/{domain}/{product}/run", tag = "transforms",
    params(("domain" = String, Path), ("product" = String, Path), RunParams),
    responses((status = 200, description = "The product's transforms, run now in the order they feed each other; each run's status (a failed run committed nothing, its error says why)", body = [TransformRunView]),
              (status = 403, description = "The caller may not write the datasets", body = ErrorBody),
              (status = 404, description = "No such product, or it has no transforms", body = ErrorBody)))]
async fn run_product_transforms(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path((domain, product)): Path<(String, String)>,
    params: Result<Query<RunParams>, QueryRejection>,
) -> ApiResult<Json<Vec<TransformRunView>>> {
    let Query(params) = params.map_err(ApiError::from_query_rejection)?;
    let (domain, product) = (name(&domain)?, name(&product)?);
    Ok(Json(
        s.services
            .run_transforms(
                &cx,
                RunScope::Product {
                    domain: domain.as_str(),
                    product: product.as_str(),
                },
                params.full_refresh.unwrap_or(false),
            )
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/transforms/{domain}/{product}/{dataset}/run", tag = "transforms",
    params(("domain" = String, Path), ("product" = String, Path), ("dataset" = String, Path), RunParams),
    responses((status = 200, description = "The transform computing the dataset, run now; its status (a failed run committed nothing, its error says why)", body = [TransformRunView]),
              (status = 403, description = "The caller may not write the dataset", body = ErrorBody),
              (status = 404, description = "No transform computes the dataset", body = ErrorBody)))]
async fn run_transform(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path((domain, product, dataset)): Path<(String, String, String)>,
    params: Result<Query<RunParams>, QueryRejection>,
) -> ApiResult<Json<Vec<TransformRunView>>> {
    let Query(params) = params.map_err(ApiError::from_query_rejection)?;
    let r = dataset_ref(&domain, &product, &dataset)?;
    Ok(Json(
        s.services
            .run_transforms(
                &cx,
                RunScope::Dataset {
                    domain: r.domain.as_str(),
                    product: r.product.as_str(),
                    dataset: r.dataset.as_str(),
                },
                params.full_refresh.unwrap_or(false),
            )
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TransformRunFilter {
    /// Only this domain's runs.
    #[param(pattern = "^[a-z][a-z0-9_]*$")]
    domain: Option<String>,
    /// Only this product's runs.
    #[param(pattern = "^[a-z][a-z0-9_]*$")]
    product: Option<String>,
    /// Only the runs computing a dataset of this name.
    #[param(pattern = "^[a-z][a-z0-9_]*$")]
    dataset: Option<String>,
    /// How many runs, newest first (default 20, at most 1000).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/transform-runs", tag = "transforms",
    params(TransformRunFilter),
    responses((status = 200, description = "Transform runs, newest first: status, trigger, rows in and out, duration and the error", body = [TransformRunView]),
              (status = 400, description = "A name that is not one", body = ErrorBody)))]
async fn list_transform_runs(
    State(s): State<AppState>,
    Caller(cx): Caller,
    filter: Result<Query<TransformRunFilter>, QueryRejection>,
) -> ApiResult<Json<Vec<TransformRunView>>> {
    let Query(f) = filter.map_err(ApiError::from_query_rejection)?;
    let checked = |v: &Option<String>| v.as_deref().map(name).transpose();
    let (domain, product, dataset) = (
        checked(&f.domain)?,
        checked(&f.product)?,
        checked(&f.dataset)?,
    );
    let of = tessera_catalog::RunsOf {
        domain: domain.as_ref().map(|n| n.as_str()),
        product: product.as_ref().map(|n| n.as_str()),
        dataset: dataset.as_ref().map(|n| n.as_str()),
    };
    let limit = f.limit.unwrap_or(20).clamp(1, 1000);
    Ok(Json(s.services.transform_runs(&cx, of, limit).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LineageParams {
    /// Follow one column of the dataset rather than the whole dataset.
    column: Option<String>,
    /// `upstream` (what feeds it, the default) or `downstream` (what it feeds).
    #[param(pattern = "^(upstream|downstream)$")]
    direction: Option<String>,
    /// How many edges away at most (default 20).
    #[param(minimum = 1, maximum = 100)]
    depth: Option<i64>,
}

/// How far a lineage walk goes: 20 edges unless asked, from 1 to 100.
fn lineage_depth(depth: Option<i64>) -> ApiResult<usize> {
    let depth = depth.unwrap_or(20);
    if !(1..=100).contains(&depth) {
        return Err(ApiError::bad_request(format!(
            "depth is from 1 to 100, not {depth}"
        )));
    }
    Ok(depth as usize)
}

#[utoipa::path(get, path = "/api/v1/lineage/{domain}/{product}/{dataset}", tag = "lineage",
    params(("domain" = String, Path), ("product" = String, Path), ("dataset" = String, Path), LineageParams),
    responses((status = 200, description = "The lineage edges reached, nearest first; column edges say how (identity, transformation, aggregation, filter, join, group_by, sort, window, conditional)", body = LineageView),
              (status = 400, description = "A direction that is neither upstream nor downstream, or a depth below 1", body = ErrorBody),
              (status = 404, description = "No such dataset or column", body = ErrorBody)))]
async fn get_lineage(
    State(s): State<AppState>,
    Caller(cx): Caller,
    Path((domain, product, dataset)): Path<(String, String, String)>,
    params: Result<Query<LineageParams>, QueryRejection>,
) -> ApiResult<Json<LineageView>> {
    let Query(params) = params.map_err(ApiError::from_query_rejection)?;
    let r = dataset_ref(&domain, &product, &dataset)?;
    let direction = match params.direction.as_deref() {
        None | Some("upstream") => tessera_core::Direction::Upstream,
        Some("downstream") => tessera_core::Direction::Downstream,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "direction is upstream or downstream, not {other:?}"
            )));
        }
    };
    let depth = lineage_depth(params.depth)?;
    Ok(Json(
        s.services
            .lineage(&cx, &r, params.column.as_deref(), direction, depth)
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct NodeLineageParams {
    /// `dataset:NAMESPACE:NAME` or `job:NAMESPACE:NAME`, as Marquez names nodes.
    #[param(pattern = "^(dataset|job):.+:.+$")]
    node: String,
    /// How many edges away at most (default 20).
    #[param(minimum = 1, maximum = 100)]
    depth: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/lineage", tag = "lineage",
    params(NodeLineageParams),
    responses((status = 200, description = "The lineage around the node, both ways: Tessera's datasets, and the jobs and datasets other tools reported", body = LineageView),
              (status = 400, description = "A node that is not dataset:NAMESPACE:NAME or job:NAMESPACE:NAME", body = ErrorBody),
              (status = 404, description = "No lineage of that node", body = ErrorBody)))]
async fn get_node_lineage(
    State(s): State<AppState>,
    Caller(cx): Caller,
    params: Result<Query<NodeLineageParams>, QueryRejection>,
) -> ApiResult<Json<LineageView>> {
    let Query(params) = params.map_err(ApiError::from_query_rejection)?;
    let depth = lineage_depth(params.depth)?;
    Ok(Json(
        s.services.node_lineage(&cx, &params.node, depth).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ReceiveParams {
    /// Take what Marquez takes beyond the schema: no `schemaURL`, an event time without offset.
    lenient: Option<bool>,
}

#[utoipa::path(post, path = "/api/v1/lineage", tag = "lineage",
    params(ReceiveParams),
    request_body(content = Object, description = "One OpenLineage 2-0-2 event: a run event, a dataset event or a job event"),
    responses((status = 201, description = "The event, kept; its inputs and outputs are in the lineage graph", body = ReceivedLineageView),
              (status = 400, description = "A namespace with characters a namespace may not have", body = ErrorBody),
              (status = 422, description = "Not an event Tessera can take: each problem with where it is", body = ErrorBody)))]
async fn receive_lineage(
    State(s): State<AppState>,
    Caller(cx): Caller,
    params: Result<Query<ReceiveParams>, QueryRejection>,
    event: Result<Json<serde_json::Value>, JsonRejection>,
) -> ApiResult<Response> {
    let Query(params) = params.map_err(ApiError::from_query_rejection)?;
    let Json(event) = event.map_err(|r| ApiError::from_json_rejection(r, s.max_body_bytes))?;
    let received = s
        .services
        .receive_lineage(&cx, &event, params.lenient.unwrap_or(false))
        .await?;
    Ok((StatusCode::CREATED, Json(received)).into_response())
}
