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
pub use results::{ARROW_STREAM, ResultFormat};

use crate::mesh::{BatchData, Mesh};
use crate::views::*;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub mesh: Arc<Mesh>,
    pub max_body_bytes: usize,
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
    )
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
        .routes(routes!(list_contracts))
        .routes(routes!(list_contract_versions))
        .routes(routes!(get_contract_version))
        .routes(routes!(check_product, product_quality_history))
        .routes(routes!(check_dataset))
        .routes(routes!(check_history))
        .routes(routes!(apply))
        .routes(routes!(query))
        .split_for_parts();
    let openapi = Arc::new(openapi);
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

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(crate::ServiceError::NotFound(format!(
        "no route {}: see /api/openapi.json for the API",
        uri.path()
    )))
}

fn name(value: &str) -> ApiResult<Name> {
    Name::parse(value).map_err(|e| ApiError::bad_request(e.to_string()))
}

#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The server and its metadata store answer", body = Health),
              (status = 503, description = "The metadata store does not answer", body = ErrorBody)))]
async fn health(State(s): State<AppState>) -> ApiResult<Json<Health>> {
    Ok(Json(s.mesh.health().await?))
}

#[utoipa::path(get, path = "/api/v1/domains", tag = "catalog",
    responses((status = 200, description = "Every domain", body = [DomainView])))]
async fn list_domains(State(s): State<AppState>) -> ApiResult<Json<Vec<DomainView>>> {
    Ok(Json(s.mesh.domains().await?))
}

#[utoipa::path(get, path = "/api/v1/domains/{domain}", tag = "catalog",
    params(("domain" = String, Path, description = "Domain name")),
    responses((status = 200, description = "The domain", body = DomainView),
              (status = 404, description = "No such domain", body = ErrorBody)))]
async fn get_domain(
    State(s): State<AppState>,
    Path(domain): Path<String>,
) -> ApiResult<Json<DomainView>> {
    Ok(Json(s.mesh.domain(name(&domain)?.as_str()).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
struct ProductFilter {
    /// Only the products of this domain.
    domain: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/products", tag = "catalog", params(ProductFilter),
    responses((status = 200, description = "Products, by domain and name", body = [ProductSummary]),
              (status = 404, description = "No such domain", body = ErrorBody)))]
async fn list_products(
    State(s): State<AppState>,
    filter: Result<Query<ProductFilter>, QueryRejection>,
) -> ApiResult<Json<Vec<ProductSummary>>> {
    let Query(filter) = filter.map_err(ApiError::from_query_rejection)?;
    let domain = filter.domain.as_deref().map(name).transpose()?;
    Ok(Json(
        s.mesh.products(domain.as_ref().map(Name::as_str)).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/products/{domain}/{product}", tag = "catalog",
    params(("domain" = String, Path), ("product" = String, Path)),
    responses((status = 200, description = "The product with its ports, datasets and descriptor", body = ProductView),
              (status = 404, description = "No such product", body = ErrorBody)))]
async fn get_product(
    State(s): State<AppState>,
    Path((domain, product)): Path<(String, String)>,
) -> ApiResult<Json<ProductView>> {
    Ok(Json(
        s.mesh
            .product(name(&domain)?.as_str(), name(&product)?.as_str())
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
struct DatasetFilter {
    /// With `product`: only the datasets of `domain.product`.
    domain: Option<String>,
    product: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/datasets", tag = "catalog", params(DatasetFilter),
    responses((status = 200, description = "Datasets, by reference", body = [DatasetSummary]),
              (status = 400, description = "`product` without `domain`", body = ErrorBody),
              (status = 404, description = "No such product", body = ErrorBody)))]
async fn list_datasets(
    State(s): State<AppState>,
    filter: Result<Query<DatasetFilter>, QueryRejection>,
) -> ApiResult<Json<Vec<DatasetSummary>>> {
    let Query(filter) = filter.map_err(ApiError::from_query_rejection)?;
    let datasets = match (filter.domain, filter.product) {
        (Some(d), Some(p)) => {
            let (d, p) = (name(&d)?, name(&p)?);
            s.mesh.datasets(Some((d.as_str(), p.as_str()))).await?
        }
        (Some(d), None) => {
            let d = name(&d)?;
            s.mesh.domain(d.as_str()).await?;
            let mut all = s.mesh.datasets(None).await?;
            all.retain(|x| x.domain == d.as_str());
            all
        }
        (None, Some(_)) => return Err(ApiError::bad_request("`product` needs `domain` too")),
        (None, None) => s.mesh.datasets(None).await?,
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
    Path((domain, product, dataset)): Path<(String, String, String)>,
) -> ApiResult<Json<DatasetView>> {
    Ok(Json(
        s.mesh
            .dataset(&dataset_ref(&domain, &product, &dataset)?)
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
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
        .mesh
        .ingest(
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

#[utoipa::path(get, path = "/api/v1/contracts", tag = "catalog",
    responses((status = 200, description = "Every contract with its versions", body = [ContractSummary])))]
async fn list_contracts(State(s): State<AppState>) -> ApiResult<Json<Vec<ContractSummary>>> {
    Ok(Json(s.mesh.contracts().await?))
}

#[utoipa::path(get, path = "/api/v1/contracts/{id}", tag = "catalog",
    params(("id" = String, Path, description = "The ODCS contract id")),
    responses((status = 200, description = "Every version of the contract, oldest first", body = [ContractView]),
              (status = 404, description = "No such contract", body = ErrorBody)))]
async fn list_contract_versions(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ContractView>>> {
    Ok(Json(s.mesh.contract_versions(&id).await?))
}

#[utoipa::path(get, path = "/api/v1/contracts/{id}/versions/{version}", tag = "catalog",
    params(("id" = String, Path), ("version" = String, Path)),
    responses((status = 200, description = "One version of the contract, with its ODCS file", body = ContractView),
              (status = 404, description = "No such contract version", body = ErrorBody)))]
async fn get_contract_version(
    State(s): State<AppState>,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<ContractView>> {
    Ok(Json(s.mesh.contract(&id, &version).await?))
}

#[utoipa::path(post, path = "/api/v1/apply", tag = "publish",
    request_body = ApplyRequest,
    responses((status = 200, description = "The plan, applied unless `dry_run`", body = ApplyPlan),
              (status = 400, description = "Not a product folder", body = ErrorBody),
              (status = 409, description = "Conflicts with what is published", body = ErrorBody),
              (status = 413, description = "The body is over the server's limit", body = ErrorBody),
              (status = 422, description = "Files that break their standard, each problem with file, line and field", body = ErrorBody)))]
async fn apply(
    State(s): State<AppState>,
    request: Result<Json<ApplyRequest>, JsonRejection>,
) -> ApiResult<Json<ApplyPlan>> {
    let Json(request) = request.map_err(|r| ApiError::from_json_rejection(r, s.max_body_bytes))?;
    Ok(Json(s.mesh.apply(&request).await?))
}

#[utoipa::path(post, path = "/api/v1/query", tag = "query",
    request_body = QueryRequest,
    params(("Accept" = Option<String>, Header, description = "application/json (default), text/csv, or application/vnd.apache.arrow.stream")),
    responses((status = 200, description = "The result, encoded as the Accept header asks",
               content((QueryResult = "application/json"), (String = "text/csv"),
                       (Vec<u8> = "application/vnd.apache.arrow.stream"))),
              (status = 400, description = "The SQL does not parse or plan, or it would change something", body = ErrorBody),
              (status = 422, description = "The query hit its time or memory limit", body = ErrorBody)))]
async fn query(
    State(s): State<AppState>,
    headers: HeaderMap,
    request: Result<Json<QueryRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(request) = request.map_err(|r| ApiError::from_json_rejection(r, s.max_body_bytes))?;
    let format =
        ResultFormat::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let (schema, batches) = s.mesh.query(&request.sql).await?;
    let body = format.encode(&schema, &batches)?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

#[utoipa::path(post, path = "/api/v1/products/{domain}/{product}/checks", tag = "quality",
    params(("domain" = String, Path), ("product" = String, Path)),
    responses((status = 200, description = "Every dataset's checks, run now and stored", body = CheckReport),
              (status = 404, description = "No such product", body = ErrorBody)))]
async fn check_product(
    State(s): State<AppState>,
    Path((domain, product)): Path<(String, String)>,
) -> ApiResult<Json<CheckReport>> {
    let (d, p) = (name(&domain)?, name(&product)?);
    Ok(Json(
        s.mesh
            .check(d.as_str(), p.as_str(), None, "on_demand")
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/products/{domain}/{product}/checks", tag = "quality",
    params(("domain" = String, Path), ("product" = String, Path), HistoryParams),
    responses((status = 200, description = "The product's quality score after each full check run of one of its datasets, newest first", body = [ProductQualityPoint]),
              (status = 404, description = "No such product", body = ErrorBody)))]
async fn product_quality_history(
    State(s): State<AppState>,
    Path((domain, product)): Path<(String, String)>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> ApiResult<Json<Vec<ProductQualityPoint>>> {
    let Query(params) = params.map_err(ApiError::from_query_rejection)?;
    let (d, p) = (name(&domain)?, name(&product)?);
    Ok(Json(
        s.mesh
            .product_quality_history(d.as_str(), p.as_str(), params.limit())
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/datasets/{domain}/{product}/{dataset}/checks", tag = "quality",
    params(("domain" = String, Path), ("product" = String, Path), ("dataset" = String, Path)),
    responses((status = 200, description = "The dataset's checks, run now and stored", body = CheckReport),
              (status = 404, description = "No such dataset", body = ErrorBody)))]
async fn check_dataset(
    State(s): State<AppState>,
    Path((domain, product, dataset)): Path<(String, String, String)>,
) -> ApiResult<Json<CheckReport>> {
    let r = dataset_ref(&domain, &product, &dataset)?;
    Ok(Json(
        s.mesh
            .check(
                r.domain.as_str(),
                r.product.as_str(),
                Some(r.dataset.as_str()),
                "on_demand",
            )
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
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
    Path((domain, product, dataset)): Path<(String, String, String)>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> ApiResult<Json<Vec<CheckRunView>>> {
    let Query(params) = params.map_err(ApiError::from_query_rejection)?;
    let r = dataset_ref(&domain, &product, &dataset)?;
    s.mesh.dataset(&r).await?;
    let limit = params.limit();
    Ok(Json(
        s.mesh
            .check_history(
                r.domain.as_str(),
                r.product.as_str(),
                r.dataset.as_str(),
                limit,
            )
            .await?,
    ))
}
