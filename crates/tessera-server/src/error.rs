//! The service layer's errors. Each variant says whose fault it is, which is all a front end
//! needs to pick an HTTP status (see `api::error`), a SQLSTATE or an exit code.

use tessera_spec::{Diagnostic, SpecError};

/// Why a service call did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A domain, product, dataset or contract that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request carries no valid API token (missing, unknown, revoked).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this. The message names the action and the resource
    /// and nothing the caller may not see.
    #[error("{0}")]
    Forbidden(String),
    /// The request is malformed or asks for something that makes no sense.
    #[error("{0}")]
    BadRequest(String),
    /// Standard files that are not valid, each problem with file, line and field.
    #[error("{}", render_diagnostics(.0))]
    InvalidFiles(Vec<Diagnostic>),
    /// A publish the governance policies refused: the plan, with every violation.
    #[error("{}", render_refusal(.0))]
    PolicyViolations(Box<crate::views::ApplyPlan>),
    /// The request is valid but conflicts with what is stored (e.g. a published contract version
    /// changed without a new version number).
    #[error("{0}")]
    Conflict(String),
    /// A batch that cannot be used as a whole (unreadable, no rows, unknown columns).
    #[error("{0}")]
    UnusableBatch(String),
    /// A query that does not parse or plan, or that would write.
    #[error("{0}")]
    InvalidQuery(String),
    /// A query that failed on the data it read (division by zero, a failed cast, an integer
    /// overflow, an invalid regular expression): the query's fault, not the server's.
    #[error("{0}")]
    QueryFailed(String),
    /// A query that needs more memory or time than allowed, or returns more than it may.
    #[error("{0}")]
    QueryLimit(String),
    /// As many queries run and wait as the server allows; `Retry-After` says when to try again.
    #[error("{0}")]
    Busy(String),
    /// The event log holds as much acknowledged, uncommitted data as it may: retry after
    /// `Retry-After` (HTTP 429).
    #[error("{0}")]
    Backlogged(String),
    /// An event request of more events than one request may hold (HTTP 413).
    #[error(
        "the request holds {events} events, more than the {limit} one request may hold (server option --event-max-rows): send them in smaller requests"
    )]
    TooManyEvents { events: usize, limit: usize },
    /// A request body of a media type the endpoint does not take (HTTP 415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A request body over the configured limit.
    #[error(
        "the request body is larger than the limit of {limit_bytes} bytes (server option {option})"
    )]
    PayloadTooLarge {
        limit_bytes: usize,
        /// The server option that sets the limit.
        option: &'static str,
    },
    /// A dependency (metadata store, object storage) failed; not the caller's fault.
    #[error("{0}")]
    Unavailable(String),
    /// A bug in Tessera.
    #[error("internal error (this is a bug in Tessera): {0}")]
    Internal(String),
}

impl ServiceError {
    /// The PostgreSQL SQLSTATE of an error around a query (its principal, its snapshot), which
    /// the front ends other than HTTP answer with (as `QueryError::sqlstate` for the query's own).
    pub fn sqlstate(&self) -> &'static str {
        use ServiceError::*;
        match self {
            Unauthenticated(_) => "28000",
            Forbidden(_) => "42501",
            NotFound(_) => "42P01",
            InvalidQuery(_) | BadRequest(_) => "42000",
            QueryLimit(_) => "54000",
            Busy(_) => "53300",
            Unavailable(_) => "58000",
            _ => "XX000",
        }
    }

    /// Whether trying again as it is may succeed: the server or a dependency was busy or
    /// failing, or another writer got there first — not a refusal that would come again.
    pub fn is_transient(&self) -> bool {
        use ServiceError::*;
        matches!(
            self,
            Busy(_) | Backlogged(_) | Unavailable(_) | Internal(_) | Conflict(_)
        )
    }

    /// The same error, its message prefixed with what was being done.
    pub fn with_context(self, context: &str) -> Self {
        use ServiceError::*;
        let prefixed = |m: String| format!("{context}: {m}");
        match self {
            NotFound(m) => NotFound(prefixed(m)),
            Unauthenticated(m) => Unauthenticated(prefixed(m)),
            Forbidden(m) => Forbidden(prefixed(m)),
            BadRequest(m) => BadRequest(prefixed(m)),
            Conflict(m) => Conflict(prefixed(m)),
            UnusableBatch(m) => UnusableBatch(prefixed(m)),
            InvalidQuery(m) => InvalidQuery(prefixed(m)),
            QueryFailed(m) => QueryFailed(prefixed(m)),
            QueryLimit(m) => QueryLimit(prefixed(m)),
            Busy(m) => Busy(prefixed(m)),
            Backlogged(m) => Backlogged(prefixed(m)),
            UnsupportedMediaType(m) => UnsupportedMediaType(prefixed(m)),
            Unavailable(m) => Unavailable(prefixed(m)),
            Internal(m) => Internal(prefixed(m)),
            other @ (InvalidFiles(_)
            | PolicyViolations(_)
            | PayloadTooLarge { .. }
            | TooManyEvents { .. }) => other,
        }
    }
}

fn render_refusal(plan: &crate::views::ApplyPlan) -> String {
    let Some(outcome) = &plan.policies else {
        return format!("{}: refused by the governance policies", plan.product);
    };
    let mut text = format!(
        "{}: refused by the governance policies: {} blocking violation(s), {} warning(s)",
        plan.product, outcome.blocking, outcome.warnings
    );
    for v in &outcome.violations {
        text.push_str(&format!("\n  - {}", render_violation(v)));
    }
    text
}

/// One violation on one line: `block snake-case-names: column orders.customerId: message (file:line)`.
pub fn render_violation(v: &crate::views::ViolationView) -> String {
    let at = match (&v.file, v.line) {
        (Some(f), Some(l)) => format!(" ({f}:{l})"),
        (Some(f), None) => format!(" ({f})"),
        _ => String::new(),
    };
    format!(
        "{} {}: {}: {}{at}",
        v.severity, v.policy, v.object, v.message
    )
}

fn render_diagnostics(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl From<SpecError> for ServiceError {
    fn from(e: SpecError) -> Self {
        match e {
            SpecError::Invalid(d) => ServiceError::InvalidFiles(d),
            SpecError::Io { .. } => ServiceError::BadRequest(e.to_string()),
        }
    }
}

impl From<tessera_catalog::CatalogError> for ServiceError {
    fn from(e: tessera_catalog::CatalogError) -> Self {
        ServiceError::Unavailable(e.to_string())
    }
}

impl From<tessera_storage::StorageError> for ServiceError {
    fn from(e: tessera_storage::StorageError) -> Self {
        use tessera_storage::StorageError as S;
        match e {
            S::SchemaMismatch { .. } | S::Conflict { .. } => ServiceError::Conflict(e.to_string()),
            S::InvalidLocation { .. } => ServiceError::BadRequest(e.to_string()),
            S::Delta { .. } | S::Io { .. } => ServiceError::Unavailable(e.to_string()),
        }
    }
}

impl From<tessera_query::QueryError> for ServiceError {
    fn from(e: tessera_query::QueryError) -> Self {
        use tessera_query::QueryError as Q;
        match e {
            Q::Invalid(_) | Q::ReadOnly(_) => ServiceError::InvalidQuery(e.to_string()),
            Q::Failed(_) => ServiceError::QueryFailed(e.to_string()),
            Q::ResourcesExhausted(_) | Q::ResultTooLarge(_) | Q::Timeout(_) => {
                ServiceError::QueryLimit(e.to_string())
            }
            Q::Busy => ServiceError::Busy(e.to_string()),
            Q::ShuttingDown | Q::Unavailable(_) => ServiceError::Unavailable(e.to_string()),
            Q::Forbidden(_) => ServiceError::Forbidden(e.to_string()),
            Q::Internal(_) => ServiceError::Internal(e.to_string()),
        }
    }
}

impl From<tessera_ingest::IngestError> for ServiceError {
    fn from(e: tessera_ingest::IngestError) -> Self {
        use tessera_ingest::IngestError as I;
        match e {
            I::Internal(_) => ServiceError::Internal(e.to_string()),
            _ => ServiceError::UnusableBatch(e.to_string()),
        }
    }
}

/// Result with [`ServiceError`].
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;
