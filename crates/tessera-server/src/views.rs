//! What the service answers with, as the API serialises it. The CLI deserialises the same
//! types, so the client and the server cannot drift apart.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` when the metadata store answers.
    pub status: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DomainView {
    pub name: String,
    pub product_count: i64,
    pub created_at: String,
}

/// A product as listed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductSummary {
    pub domain: String,
    pub name: String,
    /// The ODPS `id`.
    pub id: String,
    pub version: Option<String>,
    pub status: String,
    pub description: Option<String>,
    /// The owning team.
    pub owner: Option<String>,
    pub updated_at: String,
}

/// A product with its ports, datasets and descriptor.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductView {
    #[serde(flatten)]
    pub summary: ProductSummary,
    pub output_ports: Vec<PortView>,
    pub input_ports: Vec<PortView>,
    pub datasets: Vec<DatasetSummary>,
    /// The latest check run of each dataset, and the product's score over them.
    pub quality: QualitySummary,
    /// Where it stands on the governance policies (as on the scorecard).
    pub compliance: Option<ProductCompliance>,
    pub descriptor_file: String,
    /// The ODPS descriptor as applied.
    pub descriptor: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PortView {
    pub name: String,
    pub version: String,
    pub contract_id: Option<String>,
    /// The port's sample queries (output ports only), in the descriptor's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sample_queries: Vec<SampleQueryView>,
}

/// A sample query of an output port: how the product's owners suggest it be used.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SampleQueryView {
    pub name: String,
    pub description: Option<String>,
    pub sql: String,
}

/// A dataset as listed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DatasetSummary {
    /// `domain.product.dataset`, its name in SQL.
    pub reference: String,
    pub domain: String,
    pub product: String,
    pub name: String,
    pub description: Option<String>,
    pub contract_id: String,
    pub contract_version: String,
}

/// A dataset with its columns and its tables.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DatasetView {
    #[serde(flatten)]
    pub summary: DatasetSummary,
    pub columns: Vec<ColumnView>,
    /// URL of the Delta table, readable by any Delta reader.
    pub table_url: String,
    /// Latest Delta version; `None` before the first commit.
    pub table_version: Option<i64>,
    /// Data files in the latest version and their bytes (what maintenance compacts), shown to
    /// those who may read the table whole.
    pub table_files: Option<i64>,
    pub table_bytes: Option<i64>,
    /// `domain.product.dataset_quarantine`: refused rows with their reasons.
    pub quarantine: String,
    pub quarantine_table_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ColumnView {
    pub name: String,
    pub logical_type: Option<String>,
    pub physical_type: Option<String>,
    /// The Arrow type the column is stored as.
    pub arrow_type: String,
    pub required: bool,
    pub unique: bool,
    pub primary_key: bool,
    pub classification: Option<String>,
    pub description: Option<String>,
}

/// A contract and its versions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContractSummary {
    /// The domain the contract belongs to; a contract is identified by its domain and id.
    pub domain: String,
    pub id: String,
    /// The most recently applied version.
    pub latest_version: String,
    pub status: String,
    /// Every version, oldest first.
    pub versions: Vec<String>,
}

/// One version of a contract, with the ODCS file as applied.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContractView {
    pub domain: String,
    pub id: String,
    pub version: String,
    pub status: String,
    pub file_name: String,
    pub created_at: String,
    pub source: String,
}

/// A standard file sent to the server: its name (for diagnostics) and its text.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SourceFile {
    pub name: String,
    pub content: String,
}

/// `POST /api/v1/apply`: a product folder's files.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApplyRequest {
    /// One ODPS descriptor and the ODCS contracts its output ports reference.
    pub files: Vec<SourceFile>,
    /// Only compute the plan.
    #[serde(default)]
    pub dry_run: bool,
}

/// What an apply does (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApplyPlan {
    /// `domain.product`.
    pub product: String,
    /// Whether the changes were made (false for a dry run, or a publish the policies refused).
    pub applied: bool,
    pub changes: Vec<PlannedChange>,
    /// The governance policies evaluated on the product as it would be after the apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<PolicyOutcomeView>,
    /// The datasets downstream of a dataset whose contract changes in a breaking way, and
    /// whom to tell.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub impact: Vec<ImpactView>,
}

/// A dataset computed (directly or not) from one whose contract changes in a breaking way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ImpactView {
    /// `domain.product.dataset` downstream.
    pub dataset: String,
    /// Its product, `domain.product`, and that product's owner team.
    pub product: String,
    pub owner: Option<String>,
    /// The changed dataset it is computed from.
    pub changed: String,
}

/// What the governance policies found on a product (or on the mesh).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyOutcomeView {
    /// Policies evaluated.
    pub evaluated: usize,
    /// Violations of blocking policies (any refuses a publish), and of warning ones.
    pub blocking: usize,
    pub warnings: usize,
    /// Blocking ones first.
    pub violations: Vec<ViolationView>,
    /// How long the evaluation took, in milliseconds: building `tessera_meta` and running
    /// every policy over it (storing the result not included).
    #[serde(default)]
    pub duration_ms: u64,
}

/// One violation of a governance policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ViolationView {
    /// The policy's id.
    pub policy: String,
    /// `block` or `warn`: the severity the policy has for this product.
    pub severity: String,
    pub domain: String,
    pub product: String,
    /// What the violation concerns, e.g. `column orders.customerEmail`.
    pub object: String,
    pub message: String,
    /// The file (and line) the object is declared in, where it can be known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

/// A governance policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GovernancePolicyView {
    pub id: String,
    /// `standard` (ships with Tessera), `global` (the council's) or `domain`.
    pub origin: String,
    /// For a domain's policy: its domain and the product whose folder holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// `block`, `warn` or `off`, as its file says.
    pub severity: String,
    /// False for a standard policy the council turned off.
    pub enabled: bool,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The global policy a domain's policy makes stricter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
    pub file_name: String,
    /// The policy file's text.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

/// `PUT /api/v1/governance/policies`: global policy files.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyFilesRequest {
    pub files: Vec<SourceFile>,
}

/// `POST /api/v1/governance/policies/test`: one policy file, evaluated against a product
/// folder as it would be applied, with nothing stored but the evaluation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyTestRequest {
    pub policy: SourceFile,
    pub files: Vec<SourceFile>,
}

/// `POST /api/v1/governance/check`: evaluate the policies on the mesh as it is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct PolicyCheckRequest {
    /// `DOMAIN` or `DOMAIN.PRODUCT`; every product when left out (or null).
    pub target: Option<String>,
}

/// `PUT /api/v1/glossary`: glossary term files (`kind: GlossaryTerm`) to publish.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GlossaryFilesRequest {
    pub files: Vec<SourceFile>,
}

/// One published version of a glossary term.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GlossaryTermView {
    pub name: String,
    pub version: String,
    pub description: String,
    pub logical_type: String,
    pub pattern: Option<String>,
    pub valid_values: Option<Vec<serde_json::Value>>,
    pub classification: Option<String>,
    pub file_name: String,
    pub created_at: String,
    pub created_by: String,
    /// The columns (`domain.product.dataset.column`) of published datasets that reference this
    /// version (empty in the answer to a publish).
    pub used_by: Vec<String>,
}

/// What publishing glossary terms did: the versions, and what each new one would do to the
/// columns that reference an older version of the same term.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GlossaryApplyView {
    pub terms: Vec<GlossaryTermView>,
    pub impact: Vec<TermImpactView>,
}

/// A column on an older version of a term, measured against a new one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TermImpactView {
    /// The new version, `name@version`.
    pub term: String,
    /// `domain.product.dataset.column`.
    pub column: String,
    /// `domain.product`.
    pub product: String,
    /// The version the column references now.
    pub references: String,
    /// Whether the product would fail if its contract moved to the new version.
    pub would_fail: bool,
    /// Rows whose value breaks the new version's rules (null when the type differs).
    pub failing_rows: Option<i64>,
    /// Why the column as declared could not reference the new version.
    pub conflicts: Vec<String>,
}

/// `GET /api/v1/governance/scorecard`: whose compliance, and how much history.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScorecardRequest {
    /// `DOMAIN` or `DOMAIN.PRODUCT`; every product the caller may discover when left out.
    pub target: Option<String>,
    /// Points of history per product, newest first (10 when left out, 0 for none, at most
    /// 1000).
    #[param(minimum = 0, maximum = 1000)]
    pub history: Option<u32>,
}

/// The compliance scorecard: where each product stands on each policy that applies to it, at
/// the newest evaluation of the mesh as it is, since when, and the share passing per product,
/// per domain and over everything shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScorecardView {
    pub total: ComplianceShare,
    pub domains: Vec<DomainCompliance>,
    pub products: Vec<ProductCompliance>,
}

/// How many products comply (pass every blocking policy), and the share of (product, policy)
/// standings passing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ComplianceShare {
    pub products: usize,
    /// Products that pass every blocking policy.
    pub compliant: usize,
    /// (product, policy) standings, and how many of them pass.
    pub standings: usize,
    pub passing: usize,
    /// `passing / standings` in percent; null with no standing.
    pub share_passing: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DomainCompliance {
    pub domain: String,
    #[serde(flatten)]
    pub share: ComplianceShare,
}

/// One product on the scorecard.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductCompliance {
    pub domain: String,
    pub product: String,
    /// Passes every blocking policy.
    pub compliant: bool,
    pub policies: usize,
    pub passing: usize,
    /// In percent; null when no policy applies to it.
    pub share_passing: Option<f64>,
    /// When it was last evaluated on the mesh as it is; null when never.
    pub evaluated_at: Option<String>,
    pub standings: Vec<PolicyStanding>,
    /// Newest first.
    pub history: Vec<CompliancePoint>,
}

/// Where a product stands on one policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyStanding {
    pub policy_id: String,
    /// `block` or `warn`, as the policy applies to this product.
    pub severity: String,
    pub passing: bool,
    pub violations: i64,
    /// Since when it has been passing (or failing).
    pub since: String,
}

/// A product's standing in one past evaluation of the mesh as it was.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompliancePoint {
    pub evaluated_at: String,
    /// What evaluated: `apply`, `check`, `policy-change` (the council changed the policies) or
    /// `ingest` (personal data found in a column's values).
    pub trigger: String,
    pub policies: i64,
    pub passing: i64,
    pub share_passing: Option<f64>,
}

/// One stored evaluation of governance policies.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyEvaluationView {
    pub evaluation_id: String,
    /// `mesh`, `DOMAIN` or `DOMAIN.PRODUCT`.
    pub target: String,
    /// `apply`, `plan` (a dry run), `check`, `test`, or `policy-change` (the whole mesh,
    /// after the council changed the policies).
    pub trigger: String,
    pub evaluated_at: String,
    pub evaluated_by: String,
    /// Products evaluated.
    pub products: usize,
    #[serde(flatten)]
    pub outcome: PolicyOutcomeView,
}

impl ApplyPlan {
    /// True when applying would change nothing.
    pub fn is_noop(&self) -> bool {
        self.changes.iter().all(|c| c.action == Action::Unchanged)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlannedChange {
    pub kind: ResourceKind,
    /// The resource: `domain.product`, `contract-id@version`, `domain.product.dataset`.
    pub name: String,
    pub action: Action,
    /// What changes, for `change`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Product,
    Contract,
    Dataset,
    /// A domain policy the product's folder holds (`policies/*.yaml`).
    Policy,
    /// A source one of its datasets pulls from (`sources/*.yaml`).
    Source,
    /// A transform that computes one of its datasets (`transforms/<dataset>.sql`).
    Transform,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Change,
    Unchanged,
    /// Only a product's domain policies, sources and transforms are removed with their files.
    Remove,
}

/// What became of an ingested batch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IngestReport {
    /// `domain.product.dataset`.
    pub dataset: String,
    pub batch_id: String,
    pub rows: i64,
    pub accepted: i64,
    pub quarantined: i64,
    /// The batch id was ingested before: nothing was written this time, the counts are the
    /// first ingest's.
    pub duplicate: bool,
    /// The dataset table's version that holds the accepted rows.
    pub table_version: Option<i64>,
    /// The first refused rows and why (all of them are in the quarantine table).
    pub rejections: Vec<Rejection>,
    /// Set when the whole batch was refused by a blocking dataset-level check it would have
    /// made fail (every row is then in the quarantine table, with this reason).
    #[serde(default)]
    pub refused: Option<String>,
    /// The check run the commit (or the refusal) recorded, when the contract has
    /// dataset-level checks.
    #[serde(default)]
    pub check_run: Option<String>,
}

/// What became of an event request: every event is durable (the valid ones bound for the
/// dataset, the rest for its quarantine table).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventsReceipt {
    /// `domain.product.dataset`.
    pub dataset: String,
    /// The request's id: the quarantined events carry it as their batch id.
    pub request_id: String,
    pub events: i64,
    pub accepted: i64,
    pub quarantined: i64,
    /// Every quarantined event, by its 0-based index in the request, and why.
    pub rejections: Vec<EventRejection>,
    /// This answers a retry with the same `Idempotency-Key`: nothing was written this time.
    #[serde(default)]
    pub replayed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventRejection {
    /// 0-based index of the event in the request.
    pub index: i64,
    pub rule: String,
    pub column: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Rejection {
    /// 1-based row number in the batch.
    pub row: i64,
    pub rule: String,
    pub column: String,
    pub reason: String,
}

/// `POST /api/v1/query`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueryRequest {
    /// One read-only SQL statement; datasets are `domain.product.dataset`.
    pub sql: String,
}

/// A query result as JSON (`Accept: application/json`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueryResult {
    pub columns: Vec<ResultColumn>,
    /// One object per row, keyed by column name.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// The rows sent; with `error`, the rows before the query stopped.
    pub row_count: usize,
    /// Present when the query failed or reached a limit after its first rows were sent: the
    /// rows are then incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResultColumn {
    pub name: String,
    /// The Arrow type.
    pub data_type: String,
}

/// Every error answer: `{"error": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `not_found`, `bad_request`, `invalid_files`, `conflict`,
    /// `unusable_batch`, `policy_violations`, `invalid_query`, `query_failed`, `query_limit`, `payload_too_large`,
    /// `busy`, `unavailable`, `internal`.
    pub code: String,
    pub message: String,
    /// For `invalid_files`: each problem with its file, line and field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<DiagnosticView>,
    /// For `policy_violations`: the plan that was refused, with every violation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Box<ApplyPlan>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DiagnosticView {
    pub file: String,
    pub line: Option<usize>,
    pub field: String,
    pub message: String,
}

/// The checks of a product or one dataset, run now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckReport {
    /// `domain.product` or `domain.product.dataset`.
    pub target: String,
    /// The worst result of all checks: `passed`, `warning`, `failed` or `error`.
    pub result: String,
    /// Severity-weighted share of passing checks, in percent (see the README).
    pub score: Option<f64>,
    /// One run per dataset.
    pub runs: Vec<CheckRunView>,
}

/// One run of one dataset's checks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckRunView {
    pub run_id: String,
    /// `domain.product.dataset`.
    pub dataset: String,
    pub contract_id: String,
    pub contract_version: String,
    /// `on_demand`, `schedule` or `commit`.
    pub trigger: String,
    pub started_at: String,
    pub finished_at: String,
    pub result: String,
    pub score: Option<f64>,
    /// The table version the checks saw.
    pub table_version: Option<i64>,
    pub checks: Vec<CheckResultView>,
}

/// One check's result.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckResultView {
    /// datacontract-cli's check type, e.g. `field_required`, `row_count`, `model_quality_sql`.
    #[serde(rename = "type")]
    pub check_type: String,
    pub name: String,
    /// The dataset (ODCS schema object).
    pub model: String,
    pub field: Option<String>,
    pub dimension: String,
    pub severity: String,
    pub quality_id: Option<String>,
    /// `passed`, `warning`, `failed` or `error`.
    pub result: String,
    /// What was measured: rows, percent, seconds, or the number a `sql` rule returned.
    pub measured: Option<f64>,
    pub threshold: String,
    pub reason: String,
    /// Up to 5 failing rows, without PII columns.
    #[schema(value_type = Vec<Object>)]
    pub samples: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Quality as of the latest check run of each dataset.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QualitySummary {
    /// Severity-weighted share of passing checks over the latest runs of all datasets.
    pub score: Option<f64>,
    /// The worst result of those runs; `None` before any run.
    pub result: Option<String>,
    pub datasets: Vec<DatasetQuality>,
}

/// A product's quality after one full check run of one of its datasets.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductQualityPoint {
    /// When the run finished.
    pub checked_at: String,
    /// `domain.product.dataset` of the run.
    pub dataset: String,
    pub run_id: String,
    /// `on_demand` or `schedule`.
    pub trigger: String,
    /// Severity-weighted share of passing checks over the latest full run of each dataset
    /// as of this run.
    pub score: Option<f64>,
    /// The worst result of those runs.
    pub result: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DatasetQuality {
    /// `domain.product.dataset`.
    pub dataset: String,
    pub score: Option<f64>,
    pub result: String,
    pub checked_at: String,
    /// `type field` of every check that did not pass.
    pub not_passed: Vec<String>,
}

/// `POST /api/v1/tokens`: a token for a user, who is created if new and given these groups and
/// teams in addition to those it has.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenRequest {
    pub user: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub teams: Vec<String>,
    /// What the token is for, shown in listings.
    #[serde(default)]
    pub description: Option<String>,
}

/// A token just made: the only time the token itself is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    pub token_id: String,
    pub user: String,
    /// Send it as `Authorization: Bearer TOKEN`; it is stored only as a hash.
    pub token: String,
    pub groups: Vec<String>,
    pub teams: Vec<String>,
}

/// A token as listed (never the token itself).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub token_id: String,
    pub user: String,
    pub description: Option<String>,
    pub created_at: String,
    /// When it was revoked; a revoked token is refused.
    pub revoked_at: Option<String>,
}

/// `POST /api/v1/grants`: read access to a product for a user, a group or a team, made by
/// whoever may manage the product.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GrantRequest {
    /// `domain.product`.
    pub product: String,
    /// `user:NAME`, `group:NAME` or `team:NAME`.
    pub grantee: String,
    /// Days until the grant expires by itself (1 to 3650); for good when absent.
    #[serde(default)]
    pub days: Option<i64>,
    /// A SQL predicate over the product's datasets: the grantee reads only the rows it keeps,
    /// of the datasets that have the columns it names.
    #[serde(default)]
    pub row_filter: Option<String>,
}

/// A grant of read access: who holds it on which product, until when.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GrantView {
    pub grant_id: String,
    /// `domain.product`.
    pub product: String,
    /// `user:NAME`, `group:NAME` or `team:NAME`.
    pub grantee: String,
    /// When it ends by itself; never when absent.
    pub expires_at: Option<String>,
    /// The rows it lets its grantee read; all when absent.
    pub row_filter: Option<String>,
    pub created_at: String,
    /// Who made it (or approved the request it came from).
    pub created_by: String,
    pub revoked_at: Option<String>,
    /// The access request it was approved from.
    pub access_request: Option<String>,
}

/// `POST /api/v1/access-requests`: the caller asks to read a product, for a purpose and a time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccessRequestBody {
    /// `domain.product`.
    pub product: String,
    /// Why: shown to the owner team that decides.
    pub purpose: String,
    /// How long the grant lasts once approved, 1 to 3650 days (default 30).
    #[serde(default)]
    pub days: Option<i64>,
}

/// A request for read access and what became of it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccessRequestView {
    pub request_id: String,
    /// `domain.product`.
    pub product: String,
    pub requester: String,
    pub purpose: String,
    pub days: i64,
    /// `pending`, `approved` or `denied`.
    pub state: String,
    pub created_at: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    /// Why it was denied.
    pub reason: Option<String>,
    /// The grant an approval made.
    pub grant_id: Option<String>,
    /// When that grant ends.
    pub expires_at: Option<String>,
    /// The rows that grant lets the requester read; all when absent.
    pub row_filter: Option<String>,
}

/// `POST /api/v1/access-requests/{id}/approve`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ApproveBody {
    /// Restrict the grant to the rows this SQL predicate keeps (see `GrantRequest`).
    #[serde(default)]
    pub row_filter: Option<String>,
}

/// `POST /api/v1/access-requests/{id}/deny`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DenyBody {
    /// Why, for the requester.
    pub reason: String,
}

/// `PUT /api/v1/policies/{id}`: an admin's Cedar policies, stored under an id.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyRequest {
    /// Cedar text: one or more `permit`/`forbid` policies over Tessera's entity types.
    pub source: String,
}

/// An admin's policy as stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    pub id: String,
    pub source: String,
    pub updated_at: String,
    pub updated_by: String,
}

/// `GET /api/v1/access/explain`: would this user be allowed this action on this resource?
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExplainRequest {
    pub user: String,
    /// `discover`, `read`, `read_pii`, `ingest`, `publish`, `manage` or `approve`.
    pub action: String,
    /// `platform`, `DOMAIN`, `DOMAIN.PRODUCT` or `DOMAIN.PRODUCT.DATASET`.
    pub resource: String,
}

/// The decision, and the policies that made it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExplainView {
    pub user: String,
    pub groups: Vec<String>,
    pub teams: Vec<String>,
    pub action: String,
    pub resource: String,
    pub allowed: bool,
    /// The permits that allowed it, or the forbids that denied it; empty when nothing
    /// permitted it.
    pub policies: Vec<String>,
}

/// Who a request runs as (`GET /api/v1/whoami`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PrincipalView {
    pub name: String,
    /// `user`, `team` or `system`.
    pub kind: String,
    pub groups: Vec<String>,
    pub teams: Vec<String>,
}

/// One query of the query log (`GET /api/v1/queries`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueryLogView {
    pub query_id: String,
    /// The request it came with (`X-Request-Id`).
    pub request_id: String,
    /// Who ran it: `user ada`, `team growth`, `system:demo`.
    pub principal: String,
    /// `http`, `scheduler`, `demo`...
    pub front_end: String,
    pub sql: String,
    /// The datasets its plan read, `domain.product.dataset`.
    pub datasets: Vec<String>,
    /// Their products, `domain.product`.
    pub products: Vec<String>,
    pub started_at: String,
    pub wall_ms: f64,
    /// Operator compute time, summed over threads.
    pub cpu_ms: f64,
    pub rows_returned: i64,
    pub bytes_returned: i64,
    pub rows_scanned: i64,
    pub bytes_scanned: i64,
    /// `finished`, `failed`, `denied` (an access policy refused it) or `abandoned` (its reader
    /// went away).
    pub status: String,
    /// `invalid`, `forbidden`, `read_only`, `failed`, `timeout`, `resources_exhausted`,
    /// `result_too_large`, `busy`, `shutting_down`, `unavailable` or `internal`.
    pub error_class: Option<String>,
    pub error: Option<String>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryView {
    pub seq: i64,
    pub at: String,
    /// Who did it: `user ada`, `system:demo`.
    pub actor: String,
    /// `apply`, `contract.version`, `ingest`, `token.create`, `token.revoke`, `grant.create`,
    /// `grant.revoke`, `policy.put`, `policy.delete`, `access_request.create`,
    /// `access_request.approve`, `access_request.deny`, `access.denied` or `query`.
    pub action: String,
    /// What it was done to: a product, a dataset, a token, grant, request or query id.
    pub subject: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// The SHA-256 of the entry (over the previous entry's hash too).
    pub hash: String,
}

/// A page of the audit log (`GET /api/v1/audit`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntryView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// What `GET /api/v1/audit/verify` found.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditVerificationView {
    /// The chain is whole and every entry authentic.
    pub ok: bool,
    /// Entries verified (up to the first problem).
    pub entries: i64,
    /// The newest entry the chain head kept outside the store names.
    pub head_seq: Option<i64>,
    pub problem: Option<AuditProblemView>,
}

/// The first entry found edited, forged, removed or cut off.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditProblemView {
    pub seq: i64,
    /// `edited`, `forged`, `removed`, `truncated`, `head_mismatch` or `head_missing`.
    pub kind: String,
    pub message: String,
}

/// A source a dataset pulls from, and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SourceView {
    pub domain: String,
    pub product: String,
    pub name: String,
    /// `domain.product.dataset`: what it fills.
    pub dataset: String,
    pub connector: String,
    /// When it pulls: `every 30s`, `schedule */5 * * * *`, `continuous`.
    pub trigger: String,
    pub description: Option<String>,
    /// The connector's options as the file gives them (a source never holds a credential).
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
    /// Which credential it is given, by name only: `secret NAME`, `environment variable VAR`.
    pub secret: Option<String>,
    pub file: String,
    /// `idle` (it has not pulled yet, or its last pull succeeded) or `failing`.
    pub state: String,
    /// The last committed position, as the connector says it.
    pub position: Option<String>,
    pub last_pull_at: Option<String>,
    pub last_success_at: Option<String>,
    /// Rows its last pull read, and since it was applied: each committed to the dataset or
    /// to its quarantine.
    pub last_rows: i64,
    pub total_rows: i64,
    /// Of those, the rows that went to the quarantine (`DATASET_quarantine`, with the reason).
    pub last_quarantined: i64,
    pub total_quarantined: i64,
    /// How far behind its origin it was after its last pull, where the connector can tell.
    pub lag_seconds: Option<f64>,
    /// Failed pulls in a row; the source backs off longer after each.
    pub failures: i64,
    pub last_error: Option<String>,
}

/// A secret, by name: its value is never shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretView {
    pub name: String,
    /// The team whose products' sources may use it.
    pub team: String,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A secret to set.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretRequest {
    /// The team whose products' sources may use it (the caller's own, unless an admin).
    #[schema(min_length = 1, pattern = "\\S")]
    pub team: String,
    /// The value (a connection URL, a password); stored sealed, never shown again.
    #[schema(min_length = 1, max_length = 65536)]
    pub value: String,
}

/// A transform: the SQL that computes one of a product's datasets, and its last run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TransformView {
    pub domain: String,
    pub product: String,
    /// `domain.product.dataset`: what it computes.
    pub dataset: String,
    pub description: Option<String>,
    /// `full`, `append by COLUMN` or `merge`.
    pub materialization: String,
    /// The datasets it reads, `domain.product.dataset`.
    pub inputs: Vec<String>,
    /// When it runs besides by hand: `every 1h`, `after an upstream commit`.
    pub triggers: Vec<String>,
    pub file: String,
    /// The query as written (header included).
    pub sql: String,
    pub last_run: Option<TransformRunView>,
}

/// One run of a transform.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TransformRunView {
    pub run_id: String,
    /// `domain.product.dataset`: what it computed.
    pub dataset: String,
    /// `manual`, `interval` or `upstream`.
    pub trigger: String,
    /// How its result was written: `full` (a full refresh), `append` or `merge`.
    pub mode: String,
    /// `succeeded` or `failed` (a failed run committed nothing).
    pub status: String,
    /// Who started it; it ran as the product's owner team.
    pub principal: String,
    pub started_at: String,
    pub duration_ms: i64,
    /// Rows its query read from the datasets' tables.
    pub rows_in: i64,
    /// Rows it committed to the dataset.
    pub rows_out: i64,
    /// The dataset's table version it committed.
    pub table_version: Option<i64>,
    /// What it read, each dataset at the table version it read: `d.p.x@3`.
    pub inputs: Vec<String>,
    pub error: Option<String>,
    /// What it says beside its outcome: why a merge by the keys of new input rows recomputed
    /// everything (its mode is then `full`).
    pub note: Option<String>,
}

/// Lineage reached from a dataset or a column, one way.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LineageView {
    /// `domain.product.dataset` or `domain.product.dataset.column`.
    pub start: String,
    /// `upstream` or `downstream`.
    pub direction: String,
    pub depth: i64,
    /// The edges reached, nearest first.
    pub edges: Vec<LineageEdgeView>,
}

/// `from` feeds `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LineageEdgeView {
    /// A dataset (`domain.product.dataset`), a column (`….column`), or a source
    /// (`source:domain.product.name`).
    pub from: String,
    pub to: String,
    /// What moves the data: `transform domain.product.dataset`, `source domain.product.name (kafka)`.
    pub job: String,
    /// For column edges, how `to` depends on `from`: `identity`, `transformation`, `aggregation`
    /// (direct), `filter`, `join`, `group_by`, `sort`, `window`, `conditional` (indirect).
    pub derivations: Vec<String>,
}

/// An OpenLineage event Tessera took.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReceivedLineageView {
    pub event_id: String,
    /// `run`, `dataset` or `job`.
    pub kind: String,
    /// `NAMESPACE/NAME` of its job, if it has one.
    pub job: Option<String>,
    pub run_id: Option<String>,
    /// The datasets it read and wrote, as the lineage graph names them.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}
