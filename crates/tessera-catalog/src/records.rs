//! Rows of the metadata store. Plain data: the standard files' text plus lookup columns.

/// A domain; created when its first product is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainRecord {
    pub name: String,
    pub created_at: String,
    pub product_count: i64,
}

/// A product: its ODPS descriptor as written, and the columns it is listed by.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductRecord {
    pub domain: String,
    pub name: String,
    pub product_id: String,
    pub version: Option<String>,
    pub status: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub file_name: String,
    pub source: String,
    pub created_at: String,
    pub updated_at: String,
}

/// One version of a contract: the ODCS file as written. Versions are immutable once stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractRecord {
    /// The domain the contract belongs to: a contract is identified by domain and id.
    pub domain: String,
    pub contract_id: String,
    pub version: String,
    pub status: String,
    pub file_name: String,
    pub source: String,
    pub created_at: String,
}

/// A dataset: which contract version governs it and where its Delta table is.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRecord {
    pub domain: String,
    pub product: String,
    pub name: String,
    pub contract_id: String,
    pub contract_version: String,
    pub location: String,
    pub created_at: String,
    pub updated_at: String,
}

/// An ingested batch and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRecord {
    pub domain: String,
    pub product: String,
    pub dataset: String,
    pub batch_id: String,
    pub accepted: i64,
    pub quarantined: i64,
    pub table_version: Option<i64>,
    pub committed_at: String,
}

/// Everything one `apply` of a product folder writes, committed in one transaction.
#[derive(Debug, Clone, Default)]
pub struct MetadataChange {
    /// Inserted or updated (by domain and name).
    pub product: Option<ProductRecord>,
    /// New contract versions (existing versions are never rewritten).
    pub contracts: Vec<ContractRecord>,
    /// Inserted or updated (by domain, product and name).
    pub datasets: Vec<DatasetRecord>,
    /// The policies a product's folder holds (domain, product, policies), replacing those it
    /// held (`None`: unchanged).
    pub product_policies: Option<(String, String, Vec<GovernancePolicyRecord>)>,
    /// The sources a product's folder holds (domain, product, sources), replacing those it held
    /// (`None`: unchanged).
    pub product_sources: Option<(String, String, Vec<crate::SourceRecord>)>,
    /// The transforms a product's folder holds (domain, product, transforms), replacing those
    /// it held (`None`: unchanged).
    pub product_transforms: Option<(String, String, Vec<crate::TransformRecord>)>,
}

/// One run of a dataset's checks.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRunRecord {
    pub run_id: String,
    pub domain: String,
    pub product: String,
    pub dataset: String,
    pub contract_id: String,
    pub contract_version: String,
    /// `on_demand`, `schedule` or `commit`.
    pub trigger: String,
    pub started_at: String,
    pub finished_at: String,
    /// The worst outcome: `passed`, `warning`, `failed` or `error`.
    pub result: String,
    pub score: Option<f64>,
    pub table_version: Option<i64>,
}

/// One check's result within a run.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResultRecord {
    pub position: i64,
    pub check_key: String,
    pub check_type: String,
    pub name: String,
    pub model: String,
    pub field: Option<String>,
    pub dimension: String,
    pub severity: String,
    pub quality_id: Option<String>,
    pub result: String,
    pub measured: Option<f64>,
    pub threshold: String,
    pub reason: String,
    /// Failed-row samples as a JSON array.
    pub samples: String,
}

/// Which check runs [`crate::Catalog::check_runs`] lists: those of one dataset or of every
/// dataset of a product, newest first.
#[derive(Debug, Clone, Copy)]
pub struct RunFilter<'a> {
    pub domain: &'a str,
    pub product: &'a str,
    /// One dataset, or `None` for every dataset of the product.
    pub dataset: Option<&'a str>,
    pub triggers: Triggers<'a>,
    /// Only runs that started before this time (RFC 3339, as stored).
    pub before: Option<&'a str>,
    pub limit: i64,
}

/// Runs kept or left out by their trigger.
#[derive(Debug, Clone, Copy)]
pub enum Triggers<'a> {
    Any,
    Only(&'a [&'a str]),
    Except(&'a [&'a str]),
}

impl<'a> RunFilter<'a> {
    /// The newest `limit` runs of one dataset, whatever their trigger.
    pub fn dataset(domain: &'a str, product: &'a str, dataset: &'a str, limit: i64) -> Self {
        Self {
            domain,
            product,
            dataset: Some(dataset),
            triggers: Triggers::Any,
            before: None,
            limit,
        }
    }

    /// The newest `limit` runs of every dataset of a product.
    pub fn product(domain: &'a str, product: &'a str, limit: i64) -> Self {
        Self {
            dataset: None,
            ..Self::dataset(domain, product, "", limit)
        }
    }

    pub fn triggers(self, triggers: Triggers<'a>) -> Self {
        Self { triggers, ..self }
    }

    pub fn before(self, started_at: &'a str) -> Self {
        Self {
            before: Some(started_at),
            ..self
        }
    }
}

/// A user and the groups and teams it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    pub groups: Vec<String>,
    pub teams: Vec<String>,
    pub created_at: String,
}

/// An API token as stored: its id, whose it is, the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub token_id: String,
    pub user_name: String,
    pub secret_sha256: String,
    pub description: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// A grant of read access to a product: for a user, a group or a team (`grantee_kind` is
/// `user`, `group` or `team`), until `expires_at` or for good, restricted to the rows
/// `row_filter` (a SQL predicate over the product's datasets) keeps when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub grant_id: String,
    pub domain: String,
    pub product: String,
    pub grantee_kind: String,
    pub grantee: String,
    pub row_filter: Option<String>,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub revoked_at: Option<String>,
    /// The access request it was approved from, if any.
    pub access_request: Option<String>,
}

/// An admin's Cedar policy text, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    pub policy_id: String,
    pub source: String,
    pub updated_at: String,
    pub updated_by: String,
}

/// A request for read access to a product, and its decision once made. `state` is
/// `pending`, `approved` or `denied`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequestRecord {
    pub request_id: String,
    pub domain: String,
    pub product: String,
    pub requester: String,
    pub purpose: String,
    pub days: i64,
    pub state: String,
    pub created_at: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub reason: Option<String>,
    pub grant_id: Option<String>,
}

/// One query as the query log keeps it. `principal` is as shown (`user ada`, `team shop team`,
/// `system:scheduler`); `datasets` and `products` are `domain.product[.dataset]` names;
/// `status` is `finished`, `failed`, `denied` or `abandoned`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRecord {
    pub query_id: String,
    pub request_id: String,
    pub principal: String,
    pub front_end: String,
    pub sql: String,
    pub datasets: Vec<String>,
    pub products: Vec<String>,
    pub started_at: String,
    pub wall_ms: f64,
    pub cpu_ms: f64,
    pub rows_returned: i64,
    pub bytes_returned: i64,
    pub rows_scanned: i64,
    pub bytes_scanned: i64,
    pub status: String,
    pub error_class: Option<String>,
    pub error: Option<String>,
}

/// A governance policy file as stored: global (`domain` NULL) or a domain's own, kept with the
/// product whose folder holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct GovernancePolicyRecord {
    pub policy_id: String,
    pub domain: Option<String>,
    pub product: Option<String>,
    /// `block`, `warn` or `off`, as the file says.
    pub severity: String,
    pub file_name: String,
    pub source: String,
    pub updated_at: String,
    pub updated_by: String,
}

/// What one detector found in one column's values at ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionRecord {
    pub domain: String,
    pub product: String,
    pub dataset: String,
    pub column_name: String,
    pub detector: String,
    /// Of the values sampled from the latest batch with a hit, how many matched.
    pub matched: i64,
    pub sampled: i64,
    pub detected_at: String,
}

impl DetectionRecord {
    /// Most sampled values matched (four in five): the column holds what the detector looks
    /// for, not the odd value that happens to.
    pub fn holds(&self) -> bool {
        tessera_core::detection_holds(self.matched as usize, self.sampled as usize)
    }
}

/// One version of a glossary term as published.
#[derive(Debug, Clone, PartialEq)]
pub struct GlossaryTermRecord {
    pub name: String,
    pub version: String,
    pub file_name: String,
    pub source: String,
    pub created_at: String,
    pub created_by: String,
}

/// The council turned a standard policy on or off for the whole mesh.
#[derive(Debug, Clone, PartialEq)]
pub struct StandardPolicySwitch {
    pub policy_id: String,
    pub enabled: bool,
    pub updated_at: String,
    pub updated_by: String,
}

/// One evaluation of policies: of the mesh, a domain, a product (on apply, on demand) or a
/// policy file under test.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyEvaluationRecord {
    pub evaluation_id: String,
    /// `mesh`, `DOMAIN` or `DOMAIN.PRODUCT`.
    pub target: String,
    /// `apply`, `check`, `test`.
    pub trigger: String,
    pub evaluated_at: String,
    pub evaluated_by: String,
    /// Policies evaluated.
    pub policies: i64,
    /// Violations of blocking policies, and of warning ones.
    pub blocking: i64,
    pub warnings: i64,
    /// Filled when storing; listings leave them empty.
    pub outcomes: Vec<PolicyOutcomeRecord>,
    pub violations: Vec<PolicyViolationRecord>,
}

/// How one product fared on one policy in an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyOutcomeRecord {
    pub domain: String,
    pub product: String,
    pub policy_id: String,
    /// The severity the policy had for this product.
    pub severity: String,
    pub violations: i64,
}

impl PolicyOutcomeRecord {
    /// The distinct (domain, product) pairs some outcomes are about, sorted.
    pub fn products(outcomes: &[PolicyOutcomeRecord]) -> Vec<(&str, &str)> {
        let mut products: Vec<(&str, &str)> = outcomes
            .iter()
            .map(|o| (o.domain.as_str(), o.product.as_str()))
            .collect();
        products.sort_unstable();
        products.dedup();
        products
    }
}

/// One violation an evaluation found.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyViolationRecord {
    pub policy_id: String,
    pub severity: String,
    pub domain: String,
    pub product: String,
    pub object: String,
    pub message: String,
    pub file_name: Option<String>,
    pub line: Option<i64>,
}

/// One product's standing in one evaluation that reflected the mesh: a point of the
/// compliance scorecard's history.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyHistoryPoint {
    pub domain: String,
    pub product: String,
    pub evaluated_at: String,
    /// What evaluated (`apply`, `check`, `policy-change`, `ingest`).
    pub trigger: String,
    /// Policies evaluated on the product, and how many of them it passed.
    pub policies: i64,
    pub passing: i64,
}

/// Where a product stands on a policy now: its violations at the newest evaluation of the mesh
/// as it is, and since when it has been passing (or failing).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyStatusRecord {
    pub domain: String,
    pub product: String,
    pub policy_id: String,
    pub severity: String,
    pub violations: i64,
    pub since: String,
    pub evaluated_at: String,
    pub evaluation_id: String,
}
