//! The service layer's interface, split by concern: what front ends call. Each operation takes
//! the [`RequestContext`] it runs for — who asks, which request, through which front end — so
//! nothing runs anonymously.
//!
//! A front end (the HTTP API today; the Postgres wire, Flight SQL and the web UI later) holds an
//! `Arc<dyn Services>` and implements no business logic: it turns its protocol into these calls
//! and their answers (and [`ServiceError`](crate::ServiceError)s) back into its protocol.
//! [`Mesh`](crate::Mesh) implements every trait.

use async_trait::async_trait;
use futures::future::BoxFuture;
use tessera_core::{DatasetRef, FrontEnd, RequestContext};
use tessera_query::{QueryStream, Task};

use crate::error::Result;
use crate::mesh::BatchData;
use crate::views::*;

/// Health of the platform.
#[async_trait]
pub trait OperationsService: Send + Sync {
    /// The server and its metadata store answer.
    async fn health(&self, cx: &RequestContext) -> Result<Health>;
}

/// Domains, products, datasets and contracts, as published.
#[async_trait]
pub trait CatalogService: Send + Sync {
    async fn domains(&self, cx: &RequestContext) -> Result<Vec<DomainView>>;
    async fn domain(&self, cx: &RequestContext, name: &str) -> Result<DomainView>;
    /// Every product, or those of one domain.
    async fn products(
        &self,
        cx: &RequestContext,
        domain: Option<&str>,
    ) -> Result<Vec<ProductSummary>>;
    async fn product(&self, cx: &RequestContext, domain: &str, name: &str) -> Result<ProductView>;
    /// Every dataset, or those of one product (`(domain, product)`).
    async fn datasets(
        &self,
        cx: &RequestContext,
        product: Option<(&str, &str)>,
    ) -> Result<Vec<DatasetSummary>>;
    async fn dataset(&self, cx: &RequestContext, reference: &DatasetRef) -> Result<DatasetView>;
    async fn contracts(&self, cx: &RequestContext) -> Result<Vec<ContractSummary>>;
    async fn contract_versions(
        &self,
        cx: &RequestContext,
        domain: &str,
        id: &str,
    ) -> Result<Vec<ContractView>>;
    async fn contract(
        &self,
        cx: &RequestContext,
        domain: &str,
        id: &str,
        version: &str,
    ) -> Result<ContractView>;
}

/// Publishing product folders.
#[async_trait]
pub trait PublishService: Send + Sync {
    /// The plan for a product folder, applied unless `dry_run`.
    async fn apply(&self, cx: &RequestContext, request: &ApplyRequest) -> Result<ApplyPlan>;
}

/// Loading data into datasets.
#[async_trait]
pub trait IngestService: Send + Sync {
    /// One batch, committed whole or refused whole; a batch id seen before writes nothing.
    async fn ingest(
        &self,
        cx: &RequestContext,
        reference: &DatasetRef,
        data: BatchData,
        batch_id: Option<String>,
    ) -> Result<IngestReport>;
    /// A request's events, validated at the edge and durable when this returns; committed
    /// within about the commit interval. An idempotency key seen within the window answers
    /// with the first answer and writes nothing.
    async fn send_events(
        &self,
        cx: &RequestContext,
        reference: &DatasetRef,
        body: crate::events::EventBody,
        idempotency_key: Option<String>,
    ) -> Result<EventsReceipt>;
}

/// Read-only SQL over the mesh.
#[async_trait]
pub trait QueryService: Send + Sync {
    /// One statement; the result streams (see [`QueryStream`]).
    async fn query(&self, cx: &RequestContext, sql: &str) -> Result<QueryStream>;

    /// One line for each of `datasets` (what a query read) whose latest check run has failing
    /// blocking checks: the query answered, and its reader should know.
    async fn quality_warnings(&self, datasets: &[tessera_core::DatasetRef]) -> Vec<String>;
    /// Runs CPU-heavy work of a front end (encoding a result) on the query runtime, off the
    /// threads that answer requests. Dropping the handle cancels it.
    fn offload(&self, work: BoxFuture<'static, ()>) -> Task<()>;
    /// The newest queries of the query log the caller may see: admins all of them; others
    /// their own and those that read a product they manage.
    async fn queries(&self, cx: &RequestContext, limit: i64) -> Result<Vec<QueryLogView>>;
}

/// Contract checks, their history and quality scores.
#[async_trait]
pub trait QualityService: Send + Sync {
    /// Runs the checks of every dataset of `domain.product` (or only `dataset`) and stores each
    /// run. `trigger` says why: `on_demand`, `schedule`.
    async fn check(
        &self,
        cx: &RequestContext,
        domain: &str,
        product: &str,
        dataset: Option<&str>,
        trigger: &str,
    ) -> Result<CheckReport>;
    /// A dataset's stored runs, newest first.
    async fn check_history(
        &self,
        cx: &RequestContext,
        domain: &str,
        product: &str,
        dataset: &str,
        limit: i64,
    ) -> Result<Vec<CheckRunView>>;
    /// A product's quality score over time, newest first.
    async fn product_quality_history(
        &self,
        cx: &RequestContext,
        domain: &str,
        product: &str,
        limit: i64,
    ) -> Result<Vec<ProductQualityPoint>>;
}

/// Who calls and what they may do: API tokens, the principal a token stands for, grants,
/// policies and explanations of decisions.
#[async_trait]
pub trait AccessService: Send + Sync {
    /// The request of the principal an API token stands for (decided as of the access state
    /// it was authenticated by); `Unauthenticated` for an unknown, malformed or revoked token.
    /// Front ends call it before anything else.
    async fn authenticate(
        &self,
        token: &str,
        request_id: String,
        front_end: FrontEnd,
    ) -> Result<RequestContext>;
    /// A new token for a user (created if new, given the groups and teams asked for); the
    /// token text is in the answer and nowhere else.
    async fn create_token(
        &self,
        cx: &RequestContext,
        request: &TokenRequest,
    ) -> Result<TokenCreated>;
    /// Every token (admins) or the caller's own.
    async fn tokens(&self, cx: &RequestContext) -> Result<Vec<TokenView>>;
    async fn revoke_token(&self, cx: &RequestContext, token_id: &str) -> Result<TokenView>;
    /// The principal the request runs as.
    async fn whoami(&self, cx: &RequestContext) -> Result<PrincipalView>;
    /// Read access to a product for a user, group or team (needs `manage` on the product).
    async fn grant(&self, cx: &RequestContext, request: &GrantRequest) -> Result<GrantView>;
    /// Active grants, of one product (`domain.product`) or of every product the caller may
    /// discover: the products' declared consumers.
    async fn grants(&self, cx: &RequestContext, product: Option<&str>) -> Result<Vec<GrantView>>;
    async fn revoke_grant(&self, cx: &RequestContext, grant_id: &str) -> Result<GrantView>;
    /// Stores an admin's Cedar policies under `id` (replacing those of the same id) once they
    /// load with every other policy.
    async fn put_policy(
        &self,
        cx: &RequestContext,
        id: &str,
        request: &PolicyRequest,
    ) -> Result<PolicyView>;
    async fn policies(&self, cx: &RequestContext) -> Result<Vec<PolicyView>>;
    /// Removes a policy; the answer is the policy as it was.
    async fn delete_policy(&self, cx: &RequestContext, id: &str) -> Result<PolicyView>;
    /// The caller asks for read access to a product; the request waits for its owner team.
    async fn request_access(
        &self,
        cx: &RequestContext,
        request: &AccessRequestBody,
    ) -> Result<AccessRequestView>;
    /// The caller's own requests and those it may decide (`approve` on the product), oldest
    /// first.
    async fn access_requests(&self, cx: &RequestContext) -> Result<Vec<AccessRequestView>>;
    /// Approves a pending request: a grant for the requester that ends after the requested days.
    async fn approve_access(
        &self,
        cx: &RequestContext,
        id: &str,
        approval: &ApproveBody,
    ) -> Result<AccessRequestView>;
    async fn deny_access(
        &self,
        cx: &RequestContext,
        id: &str,
        reason: &str,
    ) -> Result<AccessRequestView>;
    /// Whether a user may do an action to a resource, and which policies decided.
    async fn explain(&self, cx: &RequestContext, request: &ExplainRequest) -> Result<ExplainView>;
}

/// The hash-chained audit log (admins only).
#[async_trait]
pub trait AuditService: Send + Sync {
    /// Entries after `after`, oldest first, at most `limit`; without `after`, the newest.
    async fn audit_entries(
        &self,
        cx: &RequestContext,
        after: Option<i64>,
        limit: i64,
    ) -> Result<AuditPage>;
    /// Walks the whole chain: the first edited, forged, removed or cut-off entry, or OK.
    async fn verify_audit(&self, cx: &RequestContext) -> Result<AuditVerificationView>;
}

/// Governance policies: the standard library, the council's global policies, domains' own,
/// and their evaluations.
#[async_trait]
pub trait GovernanceService: Send + Sync {
    /// Every policy, of every origin, standard ones first.
    async fn governance_policies(&self, cx: &RequestContext) -> Result<Vec<GovernancePolicyView>>;
    async fn governance_policy(
        &self,
        cx: &RequestContext,
        id: &str,
    ) -> Result<GovernancePolicyView>;
    /// Stores global policy files (members of the governance council group, or admins), each
    /// replacing the policy of its id, once every one of them loads and its query plans.
    async fn apply_global_policies(
        &self,
        cx: &RequestContext,
        request: &PolicyFilesRequest,
    ) -> Result<Vec<GovernancePolicyView>>;
    /// Removes a global policy (the council); the answer is the policy as it was.
    async fn delete_global_policy(
        &self,
        cx: &RequestContext,
        id: &str,
    ) -> Result<GovernancePolicyView>;
    /// Turns a standard policy on or off for the whole mesh (the council; audited).
    async fn switch_standard_policy(
        &self,
        cx: &RequestContext,
        id: &str,
        enabled: bool,
    ) -> Result<GovernancePolicyView>;
    /// Evaluates one policy file against a product folder as it would be applied, as if the
    /// policy were global; nothing is applied.
    async fn test_policy(
        &self,
        cx: &RequestContext,
        request: &PolicyTestRequest,
    ) -> Result<PolicyEvaluationView>;
    /// Evaluates every policy on the mesh as it is (one domain or product, or all), and stores
    /// where each product stands.
    async fn check_policies(
        &self,
        cx: &RequestContext,
        request: &PolicyCheckRequest,
    ) -> Result<PolicyEvaluationView>;
    /// The compliance scorecard of the products the caller may discover (one domain or
    /// product, or all): each one's standing on each policy and since when, the share
    /// passing per product, domain and overall, and each product's history.
    async fn scorecard(
        &self,
        cx: &RequestContext,
        request: &ScorecardRequest,
    ) -> Result<ScorecardView>;
}

/// The governance council's shared definitions: glossary terms and their versions.
#[async_trait]
pub trait GlossaryService: Send + Sync {
    /// Every published version of every term, with the columns that reference it.
    async fn glossary(&self, cx: &RequestContext) -> Result<Vec<GlossaryTermView>>;
    /// Publishes term files (members of the governance council group, or admins): new
    /// versions are stored (a published one never changes), and each new one is measured
    /// against the data of the columns on an older version of the same term.
    async fn apply_glossary(
        &self,
        cx: &RequestContext,
        request: &GlossaryFilesRequest,
    ) -> Result<GlossaryApplyView>;
}

/// Sources datasets pull from, and the secrets they name.
#[async_trait]
pub trait SourcesService: Send + Sync {
    /// Every source of the products the caller may discover (or of one product), with where
    /// each stands.
    async fn sources(
        &self,
        cx: &RequestContext,
        product: Option<(&str, &str)>,
    ) -> Result<Vec<SourceView>>;
    async fn source(
        &self,
        cx: &RequestContext,
        domain: &str,
        product: &str,
        name: &str,
    ) -> Result<SourceView>;
    /// Pulls now (needs `ingest` on the dataset), until nothing new waits or a cycle's pulls
    /// are done; where the source stands then.
    async fn run_source(
        &self,
        cx: &RequestContext,
        domain: &str,
        product: &str,
        name: &str,
    ) -> Result<SourceView>;
    /// The secrets of the caller's teams (admins: all), by name.
    async fn secrets(&self, cx: &RequestContext) -> Result<Vec<SecretView>>;
    /// Sets a secret for a team the caller is in (admins: any team).
    async fn put_secret(
        &self,
        cx: &RequestContext,
        name: &str,
        request: &SecretRequest,
    ) -> Result<SecretView>;
    /// Deletes a secret no source names any more; the answer is the secret as it was.
    async fn delete_secret(&self, cx: &RequestContext, name: &str) -> Result<SecretView>;
}

/// Which transforms a run started by hand takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunScope<'a> {
    /// Across the mesh, each transform whose dataset is behind its inputs: one of them
    /// committed rows since it was last computed (judged when its turn comes, so a run also
    /// takes what the runs before it committed), or it was never computed. With a full
    /// refresh, every transform. Needs `ingest` on every dataset a transform computes.
    Behind,
    /// A product's transforms, each run whether behind or not.
    Product { domain: &'a str, product: &'a str },
    /// The transform computing one dataset.
    Dataset {
        domain: &'a str,
        product: &'a str,
        dataset: &'a str,
    },
}

/// Transforms: the SQL that computes datasets, and their runs.
#[async_trait]
pub trait TransformsService: Send + Sync {
    /// Every transform of the products the caller may discover (or of one product), with its
    /// last run.
    async fn transforms(
        &self,
        cx: &RequestContext,
        product: Option<(&str, &str)>,
    ) -> Result<Vec<TransformView>>;
    /// Runs the transforms `scope` names now, in the order they feed each other (needs
    /// `ingest` on each dataset they compute); the runs, in order. A failed run committed
    /// nothing and says why in its error.
    async fn run_transforms(
        &self,
        cx: &RequestContext,
        scope: RunScope<'_>,
        full_refresh: bool,
    ) -> Result<Vec<TransformRunView>>;
    /// The newest runs, newest first, of the transforms `of` names whose products the caller
    /// may discover.
    async fn transform_runs(
        &self,
        cx: &RequestContext,
        of: tessera_catalog::RunsOf<'_>,
        limit: i64,
    ) -> Result<Vec<TransformRunView>>;
}

/// Lineage: which datasets and columns feed which.
#[async_trait]
pub trait LineageService: Send + Sync {
    /// The lineage edges reached from `dataset` (or one of its columns) walking `direction`, at
    /// most `depth` edges away, between datasets the caller may discover.
    async fn lineage(
        &self,
        cx: &RequestContext,
        dataset: &DatasetRef,
        column: Option<&str>,
        direction: tessera_core::Direction,
        depth: usize,
    ) -> Result<LineageView>;
    /// The lineage around a node named as Marquez names them — `dataset:NAMESPACE:NAME` or
    /// `job:NAMESPACE:NAME` —, both ways, at most `depth` edges away.
    async fn node_lineage(
        &self,
        cx: &RequestContext,
        node: &str,
        depth: usize,
    ) -> Result<LineageView>;
    /// Takes an OpenLineage event another tool sent (strictly checked against the schema, or
    /// as leniently as Marquez); what it was read as.
    async fn receive_lineage(
        &self,
        cx: &RequestContext,
        event: &serde_json::Value,
        lenient: bool,
    ) -> Result<ReceivedLineageView>;
}

/// Everything a front end may call.
pub trait Services:
    OperationsService
    + CatalogService
    + PublishService
    + IngestService
    + QueryService
    + QualityService
    + AccessService
    + AuditService
    + GovernanceService
    + GlossaryService
    + SourcesService
    + TransformsService
    + LineageService
{
}

impl<T> Services for T where
    T: OperationsService
        + CatalogService
        + PublishService
        + IngestService
        + QueryService
        + QualityService
        + AccessService
        + AuditService
        + GovernanceService
        + GlossaryService
        + SourcesService
        + TransformsService
        + LineageService
{
}
