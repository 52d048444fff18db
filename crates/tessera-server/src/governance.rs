//! Who may do what, decided: the Cedar model of `tessera-governance` over what the metadata
//! store knows (users, products and their datasets, active grants, admins' policies), kept as
//! an [`AccessState`] that is rebuilt when the store's access generation moves (any instance
//! changed who may do what) or when a grant expires. Every check of the service layer asks it:
//! [`Mesh::authorize`] for one action, [`Mesh::snapshot_for`] for what a principal's query
//! session holds, and listings through [`AccessState::allowed`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tessera_catalog::{GrantRecord, store_time};
use tessera_core::{DatasetRef, Principal, QUARANTINE_SUFFIX, RequestContext};
use tessera_governance::{
    AccessModel, Action, Decision, FILTERED_READ_POLICY, Grantee, PolicyText, ProductFacts,
    Resource, UserFacts,
};
use tessera_query::{DatasetEntry, MeshSnapshot, TableAccess};

use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;

/// The access model as of one access generation, with what was derived from it.
pub(crate) struct AccessState {
    generation: i64,
    /// When the first active grant expires (RFC 3339, as the store writes times): the state is
    /// rebuilt then.
    next_expiry: Option<String>,
    model: AccessModel,
    /// The active grants with a row filter, by product.
    filtered_grants: HashMap<(String, String), Vec<GrantRecord>>,
    /// Principals by token id, with the secret hash a token must match: authentication without
    /// the store while nothing changed.
    principals: Mutex<HashMap<String, (String, Principal)>>,
    /// Each principal's view of the mesh snapshot it was made from.
    views: Mutex<HashMap<Principal, View>>,
    /// Decisions made with this state: a decision is a function of the model and the request
    /// alone (no context), so it holds as long as the state does.
    decisions: Mutex<HashMap<(Principal, Action, Resource), Decision>>,
}

/// Decisions an access state keeps at most (it forgets them all past this).
const DECISIONS_KEPT: usize = 100_000;

/// A principal's view, and the whole-mesh snapshot and metadata rows it was made from.
type View = (
    Arc<MeshSnapshot>,
    Arc<crate::meta::MetaSource>,
    Arc<MeshSnapshot>,
);

/// Now as the metadata store writes times, so that they compare as text.
/// The resource that governs a table: a quarantine table is governed as its dataset.
pub(crate) fn dataset_resource(reference: &DatasetRef) -> Resource {
    let dataset = reference.dataset.as_str();
    Resource::Dataset {
        domain: reference.domain.to_string(),
        product: reference.product.to_string(),
        dataset: dataset
            .strip_suffix(QUARANTINE_SUFFIX)
            .unwrap_or(dataset)
            .to_string(),
    }
}

pub(crate) fn product_resource(domain: &str, product: &str) -> Resource {
    Resource::Product {
        domain: domain.to_string(),
        product: product.to_string(),
    }
}

impl AccessState {
    /// The access generation this state was built at.
    pub(crate) fn generation(&self) -> i64 {
        self.generation
    }

    /// Whether `principal` may do `action` to `resource`, and which policies decided.
    pub(crate) fn decide(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
    ) -> Result<Decision> {
        let key = (principal.clone(), action, resource.clone());
        if let Some(decision) = self.decisions.lock().expect("decisions").get(&key) {
            return Ok(decision.clone());
        }
        let decision = self
            .model
            .decide(principal, action, resource)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let mut decisions = self.decisions.lock().expect("decisions");
        if decisions.len() >= DECISIONS_KEPT {
            decisions.clear();
        }
        decisions.insert(key, decision.clone());
        Ok(decision)
    }

    /// Whether `principal` may do `action` to `resource`; a model error counts as a denial (and
    /// is logged), never as a permission.
    pub(crate) fn allowed(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
    ) -> bool {
        match self.decide(principal, action, resource) {
            Ok(d) => d.allowed,
            Err(e) => {
                tracing::error!(error = %e, %principal, action = action.as_str(), %resource, "access decision failed");
                false
            }
        }
    }

    pub(crate) fn cached_principal(
        &self,
        token_id: &str,
        secret_sha256: &str,
    ) -> Option<Principal> {
        let principals = self.principals.lock().expect("principal cache");
        principals
            .get(token_id)
            .filter(|(hash, _)| hash == secret_sha256)
            .map(|(_, p)| p.clone())
    }

    pub(crate) fn remember_principal(&self, token_id: &str, secret_sha256: &str, p: &Principal) {
        self.principals
            .lock()
            .expect("principal cache")
            .insert(token_id.to_string(), (secret_sha256.to_string(), p.clone()));
    }

    /// The row filter `principal` reads a table of `domain.product` through when only
    /// row-filtered grants let it read: the filters of its grants that apply to the table
    /// (`applies`), any of which lets a row through; none when no filter applies.
    fn row_filter(
        &self,
        principal: &Principal,
        domain: &str,
        product: &str,
        applies: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let filters: Vec<String> = self
            .filtered_grants
            .get(&(domain.to_string(), product.to_string()))?
            .iter()
            .filter(|g| holds(principal, g))
            .filter_map(|g| g.row_filter.as_deref())
            .filter(|f| applies(f))
            .map(|f| format!("({f})"))
            .collect();
        (!filters.is_empty()).then(|| filters.join(" OR "))
    }

    /// The tables of `mesh` that `principal` may discover, each marked readable or not, with
    /// masks and row filters. `filter_plans` says whether a row filter applies to a table's
    /// columns; a table a row-filtered grant cannot filter (and every quarantine table) is not
    /// read through it.
    fn view(
        &self,
        principal: &Principal,
        mesh: &Arc<MeshSnapshot>,
        meta: &Arc<crate::meta::MetaSource>,
        filter_plans: &dyn Fn(&str, &DatasetEntry) -> bool,
    ) -> Result<Arc<MeshSnapshot>> {
        if let Some((of, of_meta, view)) = self.views.lock().expect("view cache").get(principal)
            && Arc::ptr_eq(of, mesh)
            && Arc::ptr_eq(of_meta, meta)
        {
            return Ok(view.clone());
        }
        let tables = mesh
            .tables
            .iter()
            .filter_map(|entry| {
                let resource = dataset_resource(&entry.reference);
                if !self.allowed(principal, Action::Discover, &resource) {
                    return None;
                }
                let read = self
                    .decide(principal, Action::Read, &resource)
                    .unwrap_or(Decision {
                        allowed: false,
                        policies: Vec::new(),
                    });
                let mut row_filter = None;
                if read.allowed && read.policies == [FILTERED_READ_POLICY] {
                    let reference = &entry.reference;
                    row_filter = self
                        .row_filter(
                            principal,
                            reference.domain.as_str(),
                            reference.product.as_str(),
                            |f| filter_plans(f, entry),
                        )
                        .filter(|_| !reference.dataset.as_str().ends_with(QUARANTINE_SUFFIX));
                    if row_filter.is_none() {
                        return Some(DatasetEntry {
                            access: TableAccess::DiscoverOnly,
                            ..entry.clone()
                        });
                    }
                }
                let access = if !read.allowed {
                    TableAccess::DiscoverOnly
                } else if entry.personal.is_empty()
                    || self.allowed(principal, Action::ReadPii, &resource)
                {
                    TableAccess::Read
                } else {
                    TableAccess::ReadMasked
                };
                Some(DatasetEntry {
                    access,
                    row_filter,
                    ..entry.clone()
                })
            })
            .collect();
        let meta_tables =
            meta.visible(&|resource| self.allowed(principal, Action::Discover, resource))?;
        let view = Arc::new(MeshSnapshot {
            tables,
            mask_key: mesh.mask_key.clone(),
            governed: Default::default(),
            meta: meta_tables,
        });
        self.views.lock().expect("view cache").insert(
            principal.clone(),
            (mesh.clone(), meta.clone(), view.clone()),
        );
        Ok(view)
    }
}

/// Whether `principal` holds grant `g`: it is for the principal, one of its groups or teams.
pub(crate) fn holds(principal: &Principal, g: &GrantRecord) -> bool {
    match g.grantee_kind.as_str() {
        "user" => {
            principal.kind == tessera_core::PrincipalKind::User && principal.name == g.grantee
        }
        "group" => principal.groups.contains(&g.grantee),
        "team" => principal.teams.contains(&g.grantee),
        _ => false,
    }
}

fn grantee(g: &GrantRecord) -> Grantee {
    match g.grantee_kind.as_str() {
        "group" => Grantee::Group(g.grantee.clone()),
        "team" => Grantee::Team(g.grantee.clone()),
        _ => Grantee::User(g.grantee.clone()),
    }
}

impl Mesh {
    /// The access state as of now: the cached one unless the store's access generation moved
    /// or a grant expired since it was built.
    pub(crate) async fn access(&self) -> Result<Arc<AccessState>> {
        // As of at most `GENERATIONS_RECHECK` ago: a token revoked on another instance is
        // refused here within it (at once when revoked through this one).
        let generation = self.catalog.generations().await?.access;
        self.access_at(generation).await
    }

    /// The access state a request is decided by: as of the generation its principal was
    /// authenticated at while that is the cached one (no store read), else as of now.
    pub(crate) async fn access_for(&self, cx: &RequestContext) -> Result<Arc<AccessState>> {
        match cx.access_generation {
            Some(generation) => self.access_at(generation).await,
            None => self.access().await,
        }
    }

    /// The cached state if it is of `generation` and no grant expired since; otherwise the
    /// state loaded now.
    async fn access_at(&self, generation: i64) -> Result<Arc<AccessState>> {
        let now = store_time(chrono::Utc::now());
        let mut cached = self.access_state.lock().await;
        if let Some(state) = cached.as_ref()
            && state.generation == generation
            && state.next_expiry.as_ref().is_none_or(|e| *e > now)
        {
            return Ok(state.clone());
        }
        let generation = self.catalog.access_generation().await?;
        let state = Arc::new(self.load_access(generation, &now).await?);
        *cached = Some(state.clone());
        Ok(state)
    }

    async fn load_access(&self, generation: i64, now: &str) -> Result<AccessState> {
        let users: Vec<UserFacts> = self
            .catalog
            .users()
            .await?
            .into_iter()
            .map(|u| UserFacts {
                name: u.name,
                groups: u.groups,
                teams: u.teams,
            })
            .collect();
        let mut grants: HashMap<(String, String), Vec<GrantRecord>> = HashMap::new();
        let mut filtered_grants: HashMap<(String, String), Vec<GrantRecord>> = HashMap::new();
        let mut next_expiry: Option<String> = None;
        for g in self.catalog.active_grants(now, None).await? {
            if let Some(e) = &g.expires_at
                && next_expiry.as_ref().is_none_or(|n| e < n)
            {
                next_expiry = Some(e.clone());
            }
            let by_product = match g.row_filter {
                Some(_) => &mut filtered_grants,
                None => &mut grants,
            };
            by_product
                .entry((g.domain.clone(), g.product.clone()))
                .or_default()
                .push(g);
        }
        let mut datasets: HashMap<(String, String), Vec<String>> = HashMap::new();
        for d in self.catalog.datasets(None).await? {
            datasets
                .entry((d.domain, d.product))
                .or_default()
                .push(d.name);
        }
        let products: Vec<ProductFacts> = self
            .catalog
            .products(None)
            .await?
            .into_iter()
            .map(|p| {
                let key = (p.domain.clone(), p.name.clone());
                ProductFacts {
                    readers: grants
                        .get(&key)
                        .into_iter()
                        .flatten()
                        .map(grantee)
                        .collect(),
                    filtered_readers: filtered_grants
                        .get(&key)
                        .into_iter()
                        .flatten()
                        .map(grantee)
                        .collect(),
                    datasets: datasets.remove(&key).unwrap_or_default(),
                    domain: p.domain,
                    product: p.name,
                    owner_team: p.owner,
                }
            })
            .collect();
        let policies: Vec<PolicyText> = self
            .catalog
            .policies()
            .await?
            .into_iter()
            .map(|p| PolicyText {
                id: p.policy_id,
                text: p.source,
            })
            .collect();
        let model = AccessModel::new(&users, &products, &policies).map_err(|e| {
            ServiceError::Internal(format!("the stored access policies do not load: {e}"))
        })?;
        Ok(AccessState {
            generation,
            next_expiry,
            model,
            filtered_grants,
            principals: Mutex::new(HashMap::new()),
            views: Mutex::new(HashMap::new()),
            decisions: Mutex::new(HashMap::new()),
        })
    }

    /// `Ok` when the request's principal may do `action` to `resource`; otherwise 403 with a
    /// reason that names the action and the resource (and a forbidding policy, if one decided),
    /// nothing else.
    pub(crate) async fn authorize(
        &self,
        cx: &RequestContext,
        action: Action,
        resource: &Resource,
    ) -> Result<()> {
        let decision = self
            .access_for(cx)
            .await?
            .decide(&cx.principal, action, resource)?;
        if decision.allowed {
            return Ok(());
        }
        self.query_log
            .record_denial(crate::audit::denial(cx, action, resource));
        let why = if decision.policies.is_empty() {
            "no policy permits it".to_string()
        } else {
            format!("forbidden by policy {}", decision.policies.join(", "))
        };
        Err(ServiceError::Forbidden(format!(
            "{} may not {} {resource}: {why}",
            cx.principal,
            action.as_str()
        )))
    }

    /// `Ok` when the principal may discover `resource`; `NotFound` (with `missing`, the same
    /// answer as for something that does not exist) otherwise.
    pub(crate) async fn discoverable(
        &self,
        cx: &RequestContext,
        resource: &Resource,
        missing: impl FnOnce() -> String,
    ) -> Result<()> {
        if self
            .access_for(cx)
            .await?
            .allowed(&cx.principal, Action::Discover, resource)
        {
            Ok(())
        } else {
            self.query_log
                .record_denial(crate::audit::denial(cx, Action::Discover, resource));
            Err(ServiceError::NotFound(missing()))
        }
    }

    /// The mesh as the request's principal may see it: the datasets (and quarantine tables) it
    /// may discover, each marked readable or not. Every query session is made over it.
    pub(crate) async fn snapshot_for(&self, cx: &RequestContext) -> Result<Arc<MeshSnapshot>> {
        let mesh = self.snapshot().await?;
        let filter_plans = |filter: &str, entry: &DatasetEntry| {
            self.engine()
                .check_row_filter(filter, &entry.schema)
                .is_ok()
        };
        let access = self.access_for(cx).await?;
        let meta = self.meta_source(&mesh, access.generation()).await?;
        access.view(&cx.principal, &mesh, &meta, &filter_plans)
    }
}
