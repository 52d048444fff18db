//! Governance policies, evaluated: the standard library that ships with Tessera, the council's
//! global policies and each domain's own, run as SQL over `tessera_meta` by the system
//! principal `system:policies` (over the whole mesh's metadata, whoever asked), each returning
//! one row per violation.
//!
//! Which policies apply to a product: every enabled standard and global policy, and its
//! domain's. A domain's policy that `extends` a global one raises that policy's severity for
//! the domain's products; it can never lower it or switch it off (refused when applied). The
//! gate of `apply` (see `apply.rs`) evaluates them on the mesh as it would be after the apply;
//! `policy check` on the mesh as it is.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use tessera_catalog::{
    GovernancePolicyRecord, PolicyEvaluationRecord, PolicyOutcomeRecord, PolicyViolationRecord,
};
use tessera_core::{
    GovernancePolicy, POLICY_OPTIONAL_COLUMNS, POLICY_REQUIRED_COLUMNS, PolicySeverity, Principal,
    RequestContext,
};
use tessera_query::MeshSnapshot;
use tessera_spec::{Diagnostic, Loaded, SpecDocument};

use crate::error::{Result, ServiceError};
use crate::mesh::{Mesh, owner_principal};
use crate::meta::MetaSource;
use crate::service::GovernanceService;
use crate::views::{
    GovernancePolicyView, PolicyCheckRequest, PolicyEvaluationView, PolicyFilesRequest,
    PolicyOutcomeView, PolicyTestRequest, ScorecardRequest, ScorecardView, SourceFile,
    ViolationView,
};

/// Where a policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Ships with Tessera.
    Standard,
    /// The governance council's.
    Global,
    /// A domain's own, kept with the product whose folder holds it.
    Domain { domain: String, product: String },
}

impl Origin {
    pub(crate) fn is_global(&self) -> bool {
        !matches!(self, Origin::Domain { .. })
    }
}

/// The severity one policy has on each (domain, product) it applies to.
type SeverityByProduct = BTreeMap<(String, String), PolicySeverity>;

/// A policy with where it comes from.
#[derive(Debug, Clone)]
pub(crate) struct LoadedPolicy {
    pub(crate) policy: GovernancePolicy,
    pub(crate) origin: Origin,
    pub(crate) file_name: String,
    pub(crate) source: String,
    /// False for a standard policy the council turned off.
    pub(crate) enabled: bool,
    /// Whose view of `tessera_meta` its query runs over: `None`, the system principal's (the
    /// whole mesh); a domain's policy, its product's owner team's (a rule a team writes sees
    /// no more than the team may discover).
    pub(crate) viewer: Option<Principal>,
    pub(crate) updated_at: Option<String>,
    pub(crate) updated_by: Option<String>,
}

/// A policy file's text as the model (any problem named with file, line and field).
pub(crate) fn parse_policy(file: &str, text: &str) -> Result<GovernancePolicy> {
    match tessera_spec::load(file, text)? {
        Loaded::Policy(p) => Ok(p),
        other => Err(ServiceError::InvalidFiles(vec![Diagnostic {
            file: file.to_string(),
            line: Some(1),
            field: "kind".into(),
            message: format!(
                "expected a policy (kind: Policy, apiVersion: tessera/v1), found a {}",
                match other.kind() {
                    tessera_spec::DocumentKind::Contract => "data contract",
                    tessera_spec::DocumentKind::GlossaryTerm => "glossary term",
                    tessera_spec::DocumentKind::Source => "source",
                    _ => "data product",
                }
            ),
        }])),
    }
}

/// The standard library, parsed once.
fn standard_library() -> &'static [(String, String, GovernancePolicy)] {
    static LIBRARY: OnceLock<Vec<(String, String, GovernancePolicy)>> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        tessera_governance::STANDARD_POLICIES
            .iter()
            .map(|(file, text)| {
                let name = format!("standard/{file}");
                let policy = parse_policy(&name, text)
                    .unwrap_or_else(|e| panic!("standard policy {file} does not load: {e}"));
                (name, text.to_string(), policy)
            })
            .collect()
    })
}

/// A violation found by an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Violation {
    pub(crate) policy_id: String,
    pub(crate) severity: PolicySeverity,
    pub(crate) domain: String,
    pub(crate) product: String,
    pub(crate) object: String,
    pub(crate) message: String,
    pub(crate) dataset: Option<String>,
    pub(crate) column: Option<String>,
    pub(crate) file: Option<String>,
    pub(crate) line: Option<usize>,
}

/// What an evaluation found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Evaluation {
    /// Policies evaluated (on at least one product).
    pub(crate) policies: usize,
    pub(crate) outcomes: Vec<PolicyOutcomeRecord>,
    pub(crate) violations: Vec<Violation>,
    /// From reading the metadata to the last policy's result.
    pub(crate) duration: std::time::Duration,
}

impl Evaluation {
    pub(crate) fn blocking(&self) -> usize {
        self.count(PolicySeverity::Block)
    }

    pub(crate) fn warnings(&self) -> usize {
        self.count(PolicySeverity::Warn)
    }

    fn count(&self, severity: PolicySeverity) -> usize {
        self.violations
            .iter()
            .filter(|v| v.severity == severity)
            .count()
    }

    pub(crate) fn view(&self) -> PolicyOutcomeView {
        PolicyOutcomeView {
            evaluated: self.policies,
            blocking: self.blocking(),
            warnings: self.warnings(),
            violations: self.violations.iter().map(violation_view).collect(),
            duration_ms: self.duration.as_millis() as u64,
        }
    }

    /// As stored: every evaluation is kept.
    pub(crate) fn record(
        &self,
        cx: &RequestContext,
        target: &str,
        trigger: &str,
    ) -> PolicyEvaluationRecord {
        PolicyEvaluationRecord {
            evaluation_id: uuid::Uuid::new_v4().to_string(),
            target: target.to_string(),
            trigger: trigger.to_string(),
            evaluated_at: tessera_catalog::store_time(chrono::Utc::now()),
            evaluated_by: cx.principal.to_string(),
            policies: self.policies as i64,
            blocking: self.blocking() as i64,
            warnings: self.warnings() as i64,
            outcomes: self.outcomes.clone(),
            violations: self
                .violations
                .iter()
                .map(|v| PolicyViolationRecord {
                    policy_id: v.policy_id.clone(),
                    severity: v.severity.as_str().to_string(),
                    domain: v.domain.clone(),
                    product: v.product.clone(),
                    object: v.object.clone(),
                    message: v.message.clone(),
                    file_name: v.file.clone(),
                    line: v.line.map(|l| l as i64),
                })
                .collect(),
        }
    }
}

pub(crate) fn violation_view(v: &Violation) -> ViolationView {
    ViolationView {
        policy: v.policy_id.clone(),
        severity: v.severity.as_str().to_string(),
        domain: v.domain.clone(),
        product: v.product.clone(),
        object: v.object.clone(),
        message: v.message.clone(),
        file: v.file.clone(),
        line: v.line,
    }
}

/// The files a product is written in, to point a violation at its file and line.
pub(crate) struct Locator {
    product: SpecDocument,
    contracts: Vec<SpecDocument>,
}

impl Locator {
    /// `product` is the descriptor's file, `contracts` those of its datasets' contracts.
    pub(crate) fn new(product: (&str, &str), contracts: &[(&str, &str)]) -> Result<Self> {
        Ok(Self {
            product: SpecDocument::parse(product.0, product.1)?,
            contracts: contracts
                .iter()
                .map(|(name, text)| SpecDocument::parse(name, text))
                .collect::<std::result::Result<_, _>>()?,
        })
    }

    /// The file (and line, where known) of a violation: a column's or dataset's schema entry
    /// in its contract, else the product descriptor.
    fn locate(&self, v: &mut Violation) {
        if let Some(dataset) = &v.dataset {
            for doc in &self.contracts {
                let Some(schema) = doc.value.get("schema").and_then(|s| s.as_array()) else {
                    continue;
                };
                let Some(i) = schema
                    .iter()
                    .position(|o| o.get("name").and_then(|n| n.as_str()) == Some(dataset))
                else {
                    continue;
                };
                let mut pointer = format!("/schema/{i}");
                if let Some(column) = &v.column
                    && let Some(j) = schema[i]
                        .get("properties")
                        .and_then(|p| p.as_array())
                        .and_then(|ps| {
                            ps.iter().position(|p| {
                                p.get("name").and_then(|n| n.as_str()) == Some(column)
                            })
                        })
                {
                    pointer = format!("{pointer}/properties/{j}");
                }
                v.file = Some(doc.file.clone());
                v.line = doc.line_of(&pointer);
                return;
            }
        }
        v.file = Some(self.product.file.clone());
        v.line = None;
    }
}

impl Mesh {
    /// Every policy: the standard library (with the council's switches) and those stored.
    pub(crate) async fn stored_policies(&self) -> Result<Vec<LoadedPolicy>> {
        let switches: HashMap<String, tessera_catalog::StandardPolicySwitch> = self
            .catalog
            .standard_policy_switches()
            .await?
            .into_iter()
            .map(|s| (s.policy_id.clone(), s))
            .collect();
        let mut out: Vec<LoadedPolicy> = standard_library()
            .iter()
            .map(|(file, text, policy)| {
                let switch = switches.get(&policy.id);
                LoadedPolicy {
                    policy: policy.clone(),
                    origin: Origin::Standard,
                    file_name: file.clone(),
                    source: text.clone(),
                    enabled: switch.is_none_or(|s| s.enabled),
                    viewer: None,
                    updated_at: switch.map(|s| s.updated_at.clone()),
                    updated_by: switch.map(|s| s.updated_by.clone()),
                }
            })
            .collect();
        let records = self.catalog.governance_policies().await?;
        let owners: HashMap<(String, String), Option<String>> =
            if records.iter().any(|r| r.domain.is_some()) {
                self.catalog
                    .products(None)
                    .await?
                    .into_iter()
                    .map(|p| ((p.domain, p.name), p.owner))
                    .collect()
            } else {
                HashMap::new()
            };
        for r in records {
            let mut loaded = loaded_from_record(&r)?;
            if let (Some(d), Some(p)) = (&r.domain, &r.product) {
                loaded.viewer = Some(owner_principal(
                    owners.get(&(d.clone(), p.clone())).cloned().flatten(),
                ));
            }
            out.push(loaded);
        }
        Ok(out)
    }

    /// A session over `tessera_meta` alone, as the system principal that evaluates policies:
    /// over the whole mesh's metadata, or as `viewer` may discover it.
    async fn policy_session(
        &self,
        cx: &RequestContext,
        meta: &MetaSource,
        viewer: Option<&Principal>,
    ) -> Result<datafusion::prelude::SessionContext> {
        let tables = match viewer {
            None => meta.visible(&|_| true)?,
            Some(viewer) => {
                let access = self.access_for(cx).await?;
                meta.visible(&|r| access.allowed(viewer, tessera_governance::Action::Discover, r))?
            }
        };
        let snapshot = MeshSnapshot {
            tables: Vec::new(),
            mask_key: self.mask_key.clone(),
            governed: Default::default(),
            meta: tables,
        };
        let system = cx.acting_as(Principal::system("policies"));
        Ok(self.engine().session(&snapshot, &system)?)
    }

    /// Plans each policy's query over `tessera_meta` and checks that it returns the columns a
    /// violation needs: the problems, each pointing at its file's `query`.
    pub(crate) async fn check_policy_queries(
        &self,
        cx: &RequestContext,
        meta: &MetaSource,
        policies: &[(&SourceFile, &GovernancePolicy)],
    ) -> Result<Vec<Diagnostic>> {
        let queries: Vec<(Diagnostic, String)> = policies
            .iter()
            .filter_map(|(file, p)| {
                let query = p.query.clone()?;
                let doc = SpecDocument::parse(&file.name, &file.content).ok()?;
                Some((doc.diagnostic("/query", String::new()), query))
            })
            .collect();
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        let ctx = self.policy_session(cx, meta, None).await?;
        let session = ctx.clone();
        let problems = self
            .engine()
            .run(&session, async move {
                let mut problems = Vec::new();
                for (mut diagnostic, sql) in queries {
                    match tessera_query::plan_sql(&ctx, &sql).await {
                        Err(e) => {
                            diagnostic.message =
                                format!("the policy's query does not plan over tessera_meta: {e}");
                            problems.push(diagnostic);
                        }
                        Ok(frame) => {
                            let schema = frame.schema();
                            let missing: Vec<&str> = POLICY_REQUIRED_COLUMNS
                                .iter()
                                .copied()
                                .filter(|c| schema.field_with_unqualified_name(c).is_err())
                                .collect();
                            if !missing.is_empty() {
                                diagnostic.message = format!(
                                    "the policy's query returns no column {}: it returns one row per violation with the columns {} (and optionally {})",
                                    missing.join(", "),
                                    POLICY_REQUIRED_COLUMNS.join(", "),
                                    POLICY_OPTIONAL_COLUMNS.join(", ")
                                );
                                problems.push(diagnostic);
                            }
                        }
                    }
                }
                Ok(problems)
            })
            .await?;
        Ok(problems)
    }

    /// Evaluates `policies` on the products `targets` over `meta`: every enabled rule that
    /// applies to one of them, at the severity it has for each.
    pub(crate) async fn evaluate_policies(
        &self,
        cx: &RequestContext,
        policies: &[LoadedPolicy],
        meta: &MetaSource,
        targets: &[(String, String)],
    ) -> Result<Evaluation> {
        // A domain's extensions: the severity a global policy has for its products.
        let mut raised: HashMap<(&str, &str), PolicySeverity> = HashMap::new();
        for p in policies {
            if let (Some(extended), Origin::Domain { domain, .. }) = (&p.policy.extends, &p.origin)
            {
                let s = raised
                    .entry((extended.as_str(), domain.as_str()))
                    .or_insert(p.policy.severity);
                *s = (*s).max(p.policy.severity);
            }
        }
        let severity_for = |p: &LoadedPolicy, domain: &str| -> Option<PolicySeverity> {
            let applies = match &p.origin {
                Origin::Domain { domain: own, .. } => own == domain,
                _ => true,
            };
            if !applies {
                return None;
            }
            let raise = raised.get(&(p.policy.id.as_str(), domain)).copied();
            // A council-disabled standard policy is off, unless a domain raised it for itself.
            let base = if p.enabled {
                p.policy.severity
            } else {
                PolicySeverity::Off
            };
            let s = raise.map_or(base, |r| base.max(r));
            (s > PolicySeverity::Off).then_some(s)
        };

        let rules: Vec<(&LoadedPolicy, SeverityByProduct)> = policies
            .iter()
            .filter(|p| p.policy.query.is_some())
            .map(|p| {
                let on: SeverityByProduct = targets
                    .iter()
                    .filter_map(|(d, pr)| severity_for(p, d).map(|s| ((d.clone(), pr.clone()), s)))
                    .collect();
                (p, on)
            })
            .filter(|(_, on)| !on.is_empty())
            .collect();
        let mut evaluation = Evaluation {
            policies: rules.len(),
            ..Default::default()
        };
        if rules.is_empty() {
            return Ok(evaluation);
        }

        // One session per view the rules run over (the system's, and each owner team's).
        let mut sessions: Vec<(Option<&Principal>, datafusion::prelude::SessionContext)> =
            Vec::new();
        for (p, _) in &rules {
            let viewer = p.viewer.as_ref();
            if !sessions.iter().any(|(v, _)| *v == viewer) {
                sessions.push((viewer, self.policy_session(cx, meta, viewer).await?));
            }
        }
        let queries: Vec<(String, String, datafusion::prelude::SessionContext)> = rules
            .iter()
            .map(|(p, _)| {
                let viewer = p.viewer.as_ref();
                let ctx = sessions
                    .iter()
                    .find(|(v, _)| *v == viewer)
                    .map(|(_, c)| c.clone())
                    .expect("a session for every view");
                (
                    p.policy.id.clone(),
                    p.policy.query.clone().unwrap_or_default(),
                    ctx,
                )
            })
            .collect();
        let session = sessions[0].1.clone();
        let results: Vec<Vec<RecordBatch>> = self
            .engine()
            .run(&session, async move {
                // Each policy planned and run as a task of its own, so that the policies of one
                // evaluation use every core of the query runtime (planning is single-threaded).
                let tasks: Vec<_> = queries
                    .into_iter()
                    .map(|(id, sql, ctx)| {
                        tokio::spawn(async move {
                            let frame = tessera_query::plan_sql(&ctx, &sql).await.map_err(|e| {
                                tessera_query::QueryError::Invalid(format!("policy {id}: {e}"))
                            })?;
                            frame.collect().await.map_err(|e| {
                                tessera_query::QueryError::Failed(format!("policy {id}: {e}"))
                            })
                        })
                    })
                    .collect();
                // Dropped with this future (a cancelled evaluation), the tasks are aborted.
                let guard = AbortOnDrop(tasks.iter().map(|t| t.abort_handle()).collect());
                let mut out = Vec::with_capacity(tasks.len());
                for task in tasks {
                    out.push(task.await.map_err(|e| {
                        tessera_query::QueryError::Internal(format!(
                            "a policy's evaluation stopped: {e}"
                        ))
                    })??);
                }
                drop(guard);
                Ok(out)
            })
            .await?;

        for ((p, on), batches) in rules.iter().zip(results) {
            let mut counts: BTreeMap<&(String, String), i64> = on.keys().map(|k| (k, 0)).collect();
            for batch in &batches {
                for row in violation_rows(batch).map_err(|e| {
                    ServiceError::Conflict(format!("policy {} ({}): {e}", p.policy.id, p.file_name))
                })? {
                    let key = (row.domain.clone(), row.product.clone());
                    let Some(severity) = on.get(&key) else {
                        continue;
                    };
                    if let Some(n) = counts.get_mut(&key) {
                        *n += 1;
                    }
                    evaluation.violations.push(Violation {
                        policy_id: p.policy.id.clone(),
                        severity: *severity,
                        message: row
                            .message
                            .or_else(|| p.policy.message.clone())
                            .unwrap_or_else(|| p.policy.description.clone()),
                        domain: row.domain,
                        product: row.product,
                        object: row.object,
                        dataset: row.dataset,
                        column: row.column,
                        file: None,
                        line: None,
                    });
                }
            }
            for ((domain, product), n) in counts {
                evaluation.outcomes.push(PolicyOutcomeRecord {
                    domain: domain.clone(),
                    product: product.clone(),
                    policy_id: p.policy.id.clone(),
                    severity: on[&(domain.clone(), product.clone())].as_str().to_string(),
                    violations: n,
                });
            }
        }
        // Blocking first, then by product and policy, in the order each policy found them.
        evaluation.violations.sort_by(|a, b| {
            b.severity.cmp(&a.severity).then_with(|| {
                (&a.domain, &a.product, &a.policy_id).cmp(&(&b.domain, &b.product, &b.policy_id))
            })
        });
        Ok(evaluation)
    }

    /// Points each violation at its file and line: `locators` by product.
    pub(crate) fn locate_violations(
        evaluation: &mut Evaluation,
        locators: &HashMap<(String, String), Locator>,
    ) {
        for v in &mut evaluation.violations {
            if let Some(l) = locators.get(&(v.domain.clone(), v.product.clone())) {
                l.locate(v);
            }
        }
    }
}

/// A stored policy record as loaded.
fn loaded_from_record(r: &GovernancePolicyRecord) -> Result<LoadedPolicy> {
    let policy = parse_policy(&r.file_name, &r.source).map_err(|e| {
        ServiceError::Internal(format!("stored policy {} does not load: {e}", r.policy_id))
    })?;
    Ok(LoadedPolicy {
        policy,
        origin: match (&r.domain, &r.product) {
            (Some(domain), Some(product)) => Origin::Domain {
                domain: domain.clone(),
                product: product.clone(),
            },
            _ => Origin::Global,
        },
        file_name: r.file_name.clone(),
        source: r.source.clone(),
        enabled: true,
        viewer: None,
        updated_at: Some(r.updated_at.clone()),
        updated_by: Some(r.updated_by.clone()),
    })
}

/// One row a policy's query returned.
struct ViolationRow {
    domain: String,
    product: String,
    object: String,
    dataset: Option<String>,
    column: Option<String>,
    message: Option<String>,
}

/// The rows of one result batch, its columns found by name and read as text.
fn violation_rows(batch: &RecordBatch) -> std::result::Result<Vec<ViolationRow>, String> {
    let column = |name: &str| -> std::result::Result<Option<Arc<dyn Array>>, String> {
        match batch.schema().index_of(name) {
            Ok(i) => arrow::compute::cast(batch.column(i), &DataType::Utf8)
                .map(Some)
                .map_err(|e| format!("column {name} is not text: {e}")),
            Err(_) => Ok(None),
        }
    };
    let required =
        |name: &str| column(name)?.ok_or_else(|| format!("the query returns no column {name}"));
    let (domain, product, object) = (
        required("domain")?,
        required("product")?,
        required("object")?,
    );
    let (dataset, col, message) = (
        column("dataset")?,
        column("column_name")?,
        column("message")?,
    );
    let text = |a: &Arc<dyn Array>, i: usize| -> Option<String> {
        let s = a.as_string::<i32>();
        (!s.is_null(i)).then(|| s.value(i).to_string())
    };
    Ok((0..batch.num_rows())
        .filter_map(|i| {
            Some(ViolationRow {
                // A row that names no product concerns none this evaluation looks at.
                domain: text(&domain, i)?,
                product: text(&product, i)?,
                object: text(&object, i).unwrap_or_default(),
                dataset: dataset.as_ref().and_then(|a| text(a, i)),
                column: col.as_ref().and_then(|a| text(a, i)),
                message: message.as_ref().and_then(|a| text(a, i)),
            })
        })
        .collect())
}

/// A product folder's domain policies, planned: as they will be stored (`None`: as they are),
/// and as loaded for the gate.
pub(crate) struct DomainPolicies {
    pub(crate) records: Option<Vec<GovernancePolicyRecord>>,
    pub(crate) loaded: Vec<LoadedPolicy>,
}

impl Mesh {
    /// Checks a folder's policies against every other policy — a domain's policy has an id of
    /// its own, and extends only a global policy, never lowering its severity — and lists what
    /// applying them changes in `changes`.
    pub(crate) async fn plan_domain_policies(
        &self,
        product: &tessera_core::Product,
        files: &[(&SourceFile, GovernancePolicy)],
        changes: &mut Vec<crate::views::PlannedChange>,
    ) -> Result<DomainPolicies> {
        use crate::views::{Action, PlannedChange, ResourceKind};
        let (domain, name) = (product.domain.as_str(), product.name.as_str());
        let all = self.stored_policies().await?;
        let own = |p: &LoadedPolicy| matches!(&p.origin, Origin::Domain { domain: d, product: n } if d == domain && n == name);
        let mut problems = Vec::new();
        for (file, policy) in files {
            let doc = SpecDocument::parse(&file.name, &file.content)?;
            if let Some(other) = all.iter().find(|p| p.policy.id == policy.id && !own(p)) {
                problems.push(doc.diagnostic(
                    "/id",
                    match &other.origin {
                        Origin::Domain { domain: d, product: n } => format!(
                            "policy id {:?} is already used by a policy of product {d}.{n} ({}); policy ids are unique in the mesh",
                            policy.id, other.file_name
                        ),
                        _ => format!(
                            "policy id {:?} is a global policy's ({}): a domain policy cannot replace, weaken or switch off a global policy; give this one an id of its own, or write `extends: {}` to make it stricter for domain {domain}",
                            policy.id, other.file_name, policy.id
                        ),
                    },
                ));
            }
            if let Some(extended) = &policy.extends {
                match all.iter().find(|p| &p.policy.id == extended) {
                    None => problems.push(doc.diagnostic(
                        "/extends",
                        format!("there is no global policy {extended:?} to extend (`tessera policy list` lists them)"),
                    )),
                    Some(p) if !p.origin.is_global() => problems.push(doc.diagnostic(
                        "/extends",
                        format!("{extended:?} is a domain's policy: only a global policy can be extended"),
                    )),
                    Some(p) if policy.severity < p.policy.severity => problems.push(doc.diagnostic(
                        "/severity",
                        format!(
                            "a domain policy cannot weaken or switch off global policy {extended:?} (severity {}): only the governance council changes global policies; a domain may keep its severity or raise it (warn to block)",
                            p.policy.severity
                        ),
                    )),
                    Some(_) => {}
                }
            }
        }
        if !problems.is_empty() {
            return Err(ServiceError::InvalidFiles(problems));
        }

        let stored: Vec<&LoadedPolicy> = all.iter().filter(|p| own(p)).collect();
        let mut changed = false;
        for (file, policy) in files {
            let action = match stored.iter().find(|p| p.policy.id == policy.id) {
                None => Action::Create,
                Some(p) if p.source == file.content && p.file_name == file.name => {
                    Action::Unchanged
                }
                Some(_) => Action::Change,
            };
            changed |= action != Action::Unchanged;
            changes.push(PlannedChange {
                kind: ResourceKind::Policy,
                name: policy.id.clone(),
                action,
                detail: None,
            });
        }
        for p in &stored {
            if !files.iter().any(|(_, f)| f.id == p.policy.id) {
                changed = true;
                changes.push(PlannedChange {
                    kind: ResourceKind::Policy,
                    name: p.policy.id.clone(),
                    action: Action::Remove,
                    detail: Some(format!("{} is no longer in the folder", p.file_name)),
                });
            }
        }
        let loaded: Vec<LoadedPolicy> = files
            .iter()
            .map(|(file, policy)| LoadedPolicy {
                policy: policy.clone(),
                origin: Origin::Domain {
                    domain: domain.to_string(),
                    product: name.to_string(),
                },
                file_name: file.name.clone(),
                source: file.content.clone(),
                enabled: true,
                viewer: Some(owner_principal(product.owner.clone())),
                updated_at: None,
                updated_by: None,
            })
            .collect();
        let records = changed.then(|| {
            loaded
                .iter()
                .map(|p| GovernancePolicyRecord {
                    policy_id: p.policy.id.clone(),
                    domain: Some(domain.to_string()),
                    product: Some(name.to_string()),
                    severity: p.policy.severity.as_str().to_string(),
                    file_name: p.file_name.clone(),
                    source: p.source.clone(),
                    updated_at: String::new(),
                    updated_by: String::new(),
                })
                .collect()
        });
        Ok(DomainPolicies { records, loaded })
    }
}

fn policy_view(p: &LoadedPolicy) -> GovernancePolicyView {
    let (origin, domain, product) = match &p.origin {
        Origin::Standard => ("standard", None, None),
        Origin::Global => ("global", None, None),
        Origin::Domain { domain, product } => {
            ("domain", Some(domain.clone()), Some(product.clone()))
        }
    };
    GovernancePolicyView {
        id: p.policy.id.clone(),
        origin: origin.to_string(),
        domain,
        product,
        severity: p.policy.severity.as_str().to_string(),
        enabled: p.enabled,
        description: p.policy.description.clone(),
        message: p.policy.message.clone(),
        query: p.policy.query.clone(),
        extends: p.policy.extends.clone(),
        rationale: p.policy.rationale.clone(),
        file_name: p.file_name.clone(),
        source: p.source.clone(),
        updated_at: p.updated_at.clone(),
        updated_by: p.updated_by.clone(),
    }
}

fn evaluation_view(
    record: &PolicyEvaluationRecord,
    evaluation: &Evaluation,
) -> PolicyEvaluationView {
    PolicyEvaluationView {
        evaluation_id: record.evaluation_id.clone(),
        target: record.target.clone(),
        trigger: record.trigger.clone(),
        evaluated_at: record.evaluated_at.clone(),
        evaluated_by: record.evaluated_by.clone(),
        products: PolicyOutcomeRecord::products(&evaluation.outcomes).len(),
        outcome: evaluation.view(),
    }
}

impl Mesh {
    /// Members of the governance council group and admins change global policies.
    pub(crate) async fn authorize_council(&self, cx: &RequestContext, what: &str) -> Result<()> {
        let council = cx
            .principal
            .groups
            .iter()
            .any(|g| g == tessera_governance::GOVERNANCE_COUNCIL_GROUP);
        if council || self.administers(cx).await? {
            return Ok(());
        }
        self.query_log.record_denial(crate::audit::denial(
            cx,
            tessera_governance::Action::Manage,
            &tessera_governance::Resource::Platform,
        ));
        Err(ServiceError::Forbidden(format!(
            "{} may not {what}: only members of group {:?} (and admins) change global governance policies",
            cx.principal,
            tessera_governance::GOVERNANCE_COUNCIL_GROUP
        )))
    }

    /// Whether the caller sees the whole mesh's metadata when it runs a policy of its own.
    async fn sees_all_metadata(&self, cx: &RequestContext) -> Result<bool> {
        Ok(cx
            .principal
            .groups
            .iter()
            .any(|g| g == tessera_governance::GOVERNANCE_COUNCIL_GROUP)
            || self.administers(cx).await?)
    }

    async fn find_policy(&self, id: &str) -> Result<LoadedPolicy> {
        self.stored_policies()
            .await?
            .into_iter()
            .find(|p| p.policy.id == id)
            .ok_or_else(|| ServiceError::NotFound(format!("no governance policy {id:?}")))
    }
}

#[async_trait::async_trait]
impl GovernanceService for Mesh {
    async fn governance_policies(&self, cx: &RequestContext) -> Result<Vec<GovernancePolicyView>> {
        let access = self.access_for(cx).await?;
        Ok(self
            .stored_policies()
            .await?
            .iter()
            .filter(|p| match &p.origin {
                Origin::Domain { domain, .. } => access.allowed(
                    &cx.principal,
                    tessera_governance::Action::Discover,
                    &tessera_governance::Resource::Domain(domain.clone()),
                ),
                _ => true,
            })
            .map(policy_view)
            .collect())
    }

    async fn governance_policy(
        &self,
        cx: &RequestContext,
        id: &str,
    ) -> Result<GovernancePolicyView> {
        self.governance_policies(cx)
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| ServiceError::NotFound(format!("no governance policy {id:?}")))
    }

    async fn apply_global_policies(
        &self,
        cx: &RequestContext,
        request: &PolicyFilesRequest,
    ) -> Result<Vec<GovernancePolicyView>> {
        self.authorize_council(cx, "apply global governance policies")
            .await?;
        if request.files.is_empty() {
            return Err(ServiceError::BadRequest(
                "no files: give one or more policy files (kind: Policy)".into(),
            ));
        }
        let existing = self.stored_policies().await?;
        let mut problems = Vec::new();
        let mut parsed: Vec<(&SourceFile, GovernancePolicy)> = Vec::new();
        for file in &request.files {
            let policy = match parse_policy(&file.name, &file.content) {
                Ok(p) => p,
                Err(ServiceError::InvalidFiles(d)) => {
                    problems.extend(d);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let doc = SpecDocument::parse(&file.name, &file.content)?;
            if policy.extends.is_some() {
                problems.push(doc.diagnostic(
                    "/extends",
                    "`extends` is for a domain's policies (in a product folder's policies/): a global policy is a rule of its own; the council turns a standard policy off with `tessera policy disable ID`",
                ));
            }
            if let Some(other) = existing.iter().find(|p| p.policy.id == policy.id) {
                match &other.origin {
                    Origin::Standard => problems.push(doc.diagnostic(
                        "/id",
                        format!(
                            "policy id {:?} is a standard policy's: turn it off with `tessera policy disable {}` and write yours under an id of its own",
                            policy.id, policy.id
                        ),
                    )),
                    Origin::Domain { domain, product } => problems.push(doc.diagnostic(
                        "/id",
                        format!(
                            "policy id {:?} is already used by a policy of product {domain}.{product} ({}); policy ids are unique in the mesh",
                            policy.id, other.file_name
                        ),
                    )),
                    Origin::Global => {}
                }
            }
            if let Some((first, _)) = parsed.iter().find(|(_, p)| p.id == policy.id) {
                problems.push(doc.diagnostic(
                    "/id",
                    format!("policy id {:?} is also used by {}", policy.id, first.name),
                ));
            }
            parsed.push((file, policy));
        }
        if !problems.is_empty() {
            return Err(ServiceError::InvalidFiles(problems));
        }
        let meta = self.build_meta().await?;
        let problems = self
            .check_policy_queries(
                cx,
                &meta,
                &parsed.iter().map(|(f, p)| (*f, p)).collect::<Vec<_>>(),
            )
            .await?;
        if !problems.is_empty() {
            return Err(ServiceError::InvalidFiles(problems));
        }
        let records: Vec<GovernancePolicyRecord> = parsed
            .iter()
            .map(|(file, p)| GovernancePolicyRecord {
                policy_id: p.id.clone(),
                domain: None,
                product: None,
                severity: p.severity.as_str().to_string(),
                file_name: file.name.clone(),
                source: file.content.clone(),
                updated_at: String::new(),
                updated_by: String::new(),
            })
            .collect();
        self.catalog
            .put_global_policies(&records, &cx.principal.to_string())
            .await?;
        self.reevaluate_mesh(cx).await?;
        let all = self.stored_policies().await?;
        Ok(parsed
            .iter()
            .filter_map(|(_, p)| all.iter().find(|s| s.policy.id == p.id).map(policy_view))
            .collect())
    }

    async fn delete_global_policy(
        &self,
        cx: &RequestContext,
        id: &str,
    ) -> Result<GovernancePolicyView> {
        self.authorize_council(cx, "remove global governance policies")
            .await?;
        let policy = self.find_policy(id).await?;
        match &policy.origin {
            Origin::Global => {}
            Origin::Standard => {
                return Err(ServiceError::Conflict(format!(
                    "{id:?} is a standard policy: it ships with Tessera and is turned off, not removed (`tessera policy disable {id}`)"
                )));
            }
            Origin::Domain { domain, product } => {
                return Err(ServiceError::Conflict(format!(
                    "{id:?} is a policy of product {domain}.{product}: it is removed by applying the product's folder without its file"
                )));
            }
        }
        self.catalog
            .delete_global_policy(id, &cx.principal.to_string())
            .await?;
        self.reevaluate_mesh(cx).await?;
        Ok(policy_view(&policy))
    }

    async fn switch_standard_policy(
        &self,
        cx: &RequestContext,
        id: &str,
        enabled: bool,
    ) -> Result<GovernancePolicyView> {
        let what = if enabled {
            "turn standard governance policies on"
        } else {
            "turn standard governance policies off"
        };
        self.authorize_council(cx, what).await?;
        let policy = self.find_policy(id).await?;
        if policy.origin != Origin::Standard {
            return Err(ServiceError::Conflict(format!(
                "{id:?} is not a standard policy: only the policies that ship with Tessera are turned on and off (a global policy is removed with `tessera policy delete`)"
            )));
        }
        self.catalog
            .switch_standard_policy(id, enabled, &cx.principal.to_string())
            .await?;
        self.reevaluate_mesh(cx).await?;
        self.find_policy(id).await.map(|p| policy_view(&p))
    }

    async fn test_policy(
        &self,
        cx: &RequestContext,
        request: &PolicyTestRequest,
    ) -> Result<PolicyEvaluationView> {
        let policy = parse_policy(&request.policy.name, &request.policy.content)?;
        if policy.query.is_none() {
            return Err(ServiceError::BadRequest(format!(
                "{}: a policy that only `extends` another has no rule of its own to test: test the policy it extends",
                request.policy.name
            )));
        }
        let viewer = if self.sees_all_metadata(cx).await? {
            None
        } else {
            Some(cx.principal.clone())
        };
        let meta = self.build_meta().await?;
        let problems = self
            .check_policy_queries(cx, &meta, &[(&request.policy, &policy)])
            .await?;
        if !problems.is_empty() {
            return Err(ServiceError::InvalidFiles(problems));
        }
        let loaded = LoadedPolicy {
            policy,
            origin: Origin::Global,
            file_name: request.policy.name.clone(),
            source: request.policy.content.clone(),
            enabled: true,
            viewer,
            updated_at: None,
            updated_by: None,
        };
        let apply = crate::views::ApplyRequest {
            files: request.files.clone(),
            dry_run: true,
        };
        let (plan, record) = self.apply_with(cx, &apply, Some(&loaded)).await?;
        let outcome = plan.policies.unwrap_or(PolicyOutcomeView {
            evaluated: 0,
            blocking: 0,
            warnings: 0,
            violations: Vec::new(),
            duration_ms: 0,
        });
        Ok(PolicyEvaluationView {
            evaluation_id: record.evaluation_id,
            target: record.target,
            trigger: record.trigger,
            evaluated_at: record.evaluated_at,
            evaluated_by: record.evaluated_by,
            products: 1,
            outcome,
        })
    }

    async fn check_policies(
        &self,
        cx: &RequestContext,
        request: &PolicyCheckRequest,
    ) -> Result<PolicyEvaluationView> {
        self.evaluate_mesh(cx, request.target.as_deref(), "check")
            .await
    }

    async fn scorecard(
        &self,
        cx: &RequestContext,
        request: &ScorecardRequest,
    ) -> Result<ScorecardView> {
        let history = match request.history {
            None => crate::scorecard::DEFAULT_HISTORY,
            Some(n) if n <= 1000 => n as usize,
            Some(n) => {
                return Err(ServiceError::BadRequest(format!(
                    "history is at most 1000 points per product, not {n}"
                )));
            }
        };
        self.scorecard_for(cx, request.target.as_deref(), history)
            .await
    }
}

impl Mesh {
    /// After the council changed the policies, the whole mesh is evaluated again (as the
    /// system), so every product's standing and the scorecard follow at once.
    async fn reevaluate_mesh(&self, cx: &RequestContext) -> Result<()> {
        let system = cx.acting_as(Principal::system("governance"));
        self.evaluate_mesh(&system, None, "policy-change").await?;
        Ok(())
    }

    /// Evaluates every policy on the products of `target` (or all) that `cx` may discover, on
    /// the mesh as it is, and stores where each stands.
    pub(crate) async fn evaluate_mesh(
        &self,
        cx: &RequestContext,
        target_name: Option<&str>,
        trigger: &str,
    ) -> Result<PolicyEvaluationView> {
        let started = std::time::Instant::now();
        let input = self.meta_input().await?;
        let target = target_name.unwrap_or("mesh").to_string();
        let targets = self
            .discoverable_targets(
                cx,
                target_name,
                input
                    .products
                    .iter()
                    .map(|(r, _)| (r.domain.clone(), r.name.clone())),
            )
            .await?;
        let meta = input.build()?;
        let mut evaluation = self
            .evaluate_policies(cx, &input.policies, &meta, &targets)
            .await?;
        evaluation.duration = started.elapsed();
        // Point violations at the stored files.
        let mut locators = HashMap::new();
        for (record, _) in &input.products {
            let key = (record.domain.clone(), record.name.clone());
            if !evaluation.violations.iter().any(|v| {
                (v.domain.as_str(), v.product.as_str()) == (key.0.as_str(), key.1.as_str())
            }) {
                continue;
            }
            let contracts: Vec<(String, String)> = input
                .datasets
                .iter()
                .filter(|(d, _)| d.domain == record.domain && d.product == record.name)
                .filter_map(|(d, _)| {
                    input
                        .contracts
                        .iter()
                        .find(|c| {
                            c.domain == d.domain
                                && c.contract_id == d.contract_id
                                && c.version == d.contract_version
                        })
                        .map(|c| (c.file_name.clone(), c.source.clone()))
                })
                .collect();
            let refs: Vec<(&str, &str)> = contracts
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            locators.insert(
                key,
                Locator::new((&record.file_name, &record.source), &refs)?,
            );
        }
        Mesh::locate_violations(&mut evaluation, &locators);
        let record = evaluation.record(cx, &target, trigger);
        self.catalog.record_policy_evaluation(&record, true).await?;
        Ok(evaluation_view(&record, &evaluation))
    }
}

/// Aborts spawned tasks when dropped: work spawned for a future ends with it.
struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
