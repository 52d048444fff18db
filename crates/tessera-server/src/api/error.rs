//! The one place service errors become HTTP answers: a status and an [`ErrorBody`]. Details of
//! server-side failures are logged, and the client gets the message without internals.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::ServiceError;
use crate::views::{DiagnosticView, ErrorBody, ErrorDetail};

/// What a busy server asks a client to wait before it tries again, in seconds.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// A [`ServiceError`] on its way out of a handler.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError(e)
    }
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError(ServiceError::BadRequest(message.into()))
    }

    /// A body that could not be read: too large (413) or otherwise unusable (400).
    pub fn from_bytes_rejection(rejection: BytesRejection, limit_bytes: usize) -> Self {
        Self::from_bytes_rejection_of(rejection, limit_bytes, "--max-body-bytes")
    }

    /// As [`ApiError::from_bytes_rejection`], for a body whose limit `option` sets.
    pub fn from_bytes_rejection_of(
        rejection: BytesRejection,
        limit_bytes: usize,
        option: &'static str,
    ) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError(ServiceError::PayloadTooLarge {
                limit_bytes,
                option,
            })
        } else {
            Self::bad_request(format!(
                "cannot read the request body: {}",
                rejection.body_text()
            ))
        }
    }

    pub fn from_json_rejection(rejection: JsonRejection, limit_bytes: usize) -> Self {
        match rejection {
            JsonRejection::BytesRejection(r) => Self::from_bytes_rejection(r, limit_bytes),
            JsonRejection::MissingJsonContentType(_) => {
                Self::bad_request("expected a JSON body with Content-Type: application/json")
            }
            other => Self::bad_request(format!("invalid JSON body: {}", other.body_text())),
        }
    }

    pub fn from_query_rejection(rejection: QueryRejection) -> Self {
        Self::bad_request(format!("invalid query string: {}", rejection.body_text()))
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        status_and_code(&self.0)
    }
}

/// The HTTP status and error code of a service error: the one mapping, for error answers and
/// for the error markers of streamed results.
pub(crate) fn status_and_code(error: &ServiceError) -> (StatusCode, &'static str) {
    use ServiceError::*;
    match error {
        NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        InvalidFiles(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_files"),
        PolicyViolations(_) => (StatusCode::UNPROCESSABLE_ENTITY, "policy_violations"),
        Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        UnusableBatch(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unusable_batch"),
        InvalidQuery(_) => (StatusCode::BAD_REQUEST, "invalid_query"),
        QueryFailed(_) => (StatusCode::BAD_REQUEST, "query_failed"),
        QueryLimit(_) => (StatusCode::UNPROCESSABLE_ENTITY, "query_limit"),
        Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        Backlogged(_) => (StatusCode::TOO_MANY_REQUESTS, "backlogged"),
        PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        TooManyEvents { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_events"),
        UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        // A busy server refusing a query is its admission control at work, not a failure.
        if status.is_server_error() && !matches!(self.0, ServiceError::Busy(_)) {
            tracing::error!(error = %self.0, "request failed");
        }
        let diagnostics = match &self.0 {
            ServiceError::InvalidFiles(d) => d
                .iter()
                .map(|d| DiagnosticView {
                    file: d.file.clone(),
                    line: d.line,
                    field: d.field.clone(),
                    message: d.message.clone(),
                })
                .collect(),
            _ => Vec::new(),
        };
        let plan = match &self.0 {
            ServiceError::PolicyViolations(plan) => Some(plan.clone()),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: self.0.to_string(),
                diagnostics,
                plan,
            },
        };
        let mut response = (status, Json(body)).into_response();
        match self.0 {
            ServiceError::Busy(_) | ServiceError::Backlogged(_) => {
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
            }
            ServiceError::Unauthenticated(_) => {
                response.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer realm=\"tessera\""),
                );
            }
            _ => {}
        }
        response
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
