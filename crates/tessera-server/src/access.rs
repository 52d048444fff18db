//! Who may call and what they are given: API tokens for users who belong to groups and teams,
//! grants of read access, admins' Cedar policies, and explanations of decisions.
//!
//! A token is `tsr_<id>_<secret>`: the id finds it, the secret proves it. Only the SHA-256 of
//! the secret is stored, so the metadata store holds nothing a caller could present; the token
//! itself is shown once, when it is made. The first start of a new mesh makes a token for the
//! user `admin` in the group `admins` (see [`Mesh::bootstrap_admin`]). Whoever may `manage` the
//! platform (admins, by the default policies) makes tokens for anybody, sees and revokes all of
//! them, and sets policies; everybody else sees and revokes their own tokens. Grants are made
//! and revoked by whoever may `manage` the product.

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tessera_catalog::{AccessRequestRecord, GrantRecord, TokenRecord};
use tessera_core::{FrontEnd, Principal, PrincipalKind, RequestContext};
use tessera_governance::{Action, Resource};

use crate::error::{Result, ServiceError};
use crate::governance::product_resource;
use crate::mesh::Mesh;
use crate::service::AccessService;
use crate::views::{
    AccessRequestBody, AccessRequestView, ApproveBody, ExplainRequest, ExplainView, GrantRequest,
    GrantView, PolicyRequest, PolicyView, PrincipalView, TokenCreated, TokenRequest, TokenView,
};
use tessera_catalog::store_time;

/// The group whose members administer the platform.
pub const ADMIN_GROUP: &str = "admins";

/// The user the first start of a new mesh makes a token for.
pub const ADMIN_USER: &str = "admin";

const TOKEN_PREFIX: &str = "tsr_";

fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new token for `user`: its record (id and hash; the store sets its time) and the token text.
fn new_token(user: &str, description: Option<String>) -> (TokenRecord, String) {
    let token_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    // Two version-4 UUIDs: 244 random bits.
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let record = TokenRecord {
        token_id: token_id.clone(),
        user_name: user.to_string(),
        secret_sha256: secret_hash(&secret),
        description,
        created_at: String::new(),
        revoked_at: None,
    };
    (record, format!("{TOKEN_PREFIX}{token_id}_{secret}"))
}

/// The longest grant, in days.
const MAX_GRANT_DAYS: i64 = 3650;

/// How long an access request asks for when it does not say.
const DEFAULT_REQUEST_DAYS: i64 = 30;

/// When a grant of `days` made now ends; a 400 outside 1 to [`MAX_GRANT_DAYS`].
fn expiry_after(days: i64) -> Result<String> {
    if !(1..=MAX_GRANT_DAYS).contains(&days) {
        return Err(ServiceError::BadRequest(format!(
            "a grant lasts 1 to {MAX_GRANT_DAYS} days, not {days}"
        )));
    }
    Ok(store_time(
        chrono::Utc::now() + chrono::Duration::days(days),
    ))
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

fn request_view(r: AccessRequestRecord, grant: Option<GrantRecord>) -> AccessRequestView {
    let (expires_at, row_filter) = match grant {
        Some(g) => (g.expires_at, g.row_filter),
        None => (None, None),
    };
    AccessRequestView {
        request_id: r.request_id,
        product: format!("{}.{}", r.domain, r.product),
        requester: r.requester,
        purpose: r.purpose,
        days: r.days,
        state: r.state,
        created_at: r.created_at,
        decided_by: r.decided_by,
        decided_at: r.decided_at,
        reason: r.reason,
        grant_id: r.grant_id,
        expires_at,
        row_filter,
    }
}

fn grant_view(g: &GrantRecord) -> GrantView {
    GrantView {
        grant_id: g.grant_id.clone(),
        product: format!("{}.{}", g.domain, g.product),
        grantee: format!("{}:{}", g.grantee_kind, g.grantee),
        expires_at: g.expires_at.clone(),
        row_filter: g.row_filter.clone(),
        created_at: g.created_at.clone(),
        created_by: g.created_by.clone(),
        revoked_at: g.revoked_at.clone(),
        access_request: g.access_request.clone(),
    }
}

/// `user:NAME`, `group:NAME` or `team:NAME` as (kind, name).
fn parse_grantee(text: &str) -> Result<(String, String)> {
    match text.split_once(':') {
        Some((kind @ ("user" | "group" | "team"), name)) if valid_name(name) => {
            Ok((kind.to_string(), name.to_string()))
        }
        _ => Err(ServiceError::BadRequest(format!(
            "{text:?} is not a grantee: write user:NAME, group:NAME or team:NAME"
        ))),
    }
}

/// `domain.product` as its two names.
fn parse_product(text: &str) -> Result<(String, String)> {
    match text.split_once('.') {
        Some((d, p)) if !d.is_empty() && !p.is_empty() && !p.contains('.') => {
            Ok((d.to_string(), p.to_string()))
        }
        _ => Err(ServiceError::BadRequest(format!(
            "{text:?} is not a product: write DOMAIN.PRODUCT"
        ))),
    }
}

/// A user, group, team or policy name: 1 to 128 characters, no control characters, no
/// surrounding spaces.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.chars().any(|c| c.is_control())
        && name.trim() == name
}

fn governance_error(e: tessera_governance::GovernanceError) -> ServiceError {
    match e {
        tessera_governance::GovernanceError::Invalid(m) => ServiceError::BadRequest(m),
        tessera_governance::GovernanceError::Internal(m) => ServiceError::Internal(m),
    }
}

fn token_view(t: TokenRecord) -> TokenView {
    TokenView {
        token_id: t.token_id,
        user: t.user_name,
        description: t.description,
        created_at: t.created_at,
        revoked_at: t.revoked_at,
    }
}

fn unauthenticated() -> ServiceError {
    ServiceError::Unauthenticated(
        "a valid API token is needed: send `Authorization: Bearer TOKEN` (the CLI takes --token, TESSERA_TOKEN or the file `tessera login` writes)".into(),
    )
}

impl Mesh {
    /// Whether the request's principal may manage the platform (admins, by the defaults).
    pub(crate) async fn administers(&self, cx: &RequestContext) -> Result<bool> {
        Ok(self
            .access_for(cx)
            .await?
            .allowed(&cx.principal, Action::Manage, &Resource::Platform))
    }

    /// The product `domain.product` names, when the caller may discover it (404 otherwise,
    /// whether it exists or not).
    async fn known_product(&self, cx: &RequestContext, text: &str) -> Result<(String, String)> {
        let (domain, product) = parse_product(text)?;
        let missing = || format!("no product {domain}.{product}");
        if self.catalog.product(&domain, &product).await?.is_none() {
            return Err(ServiceError::NotFound(missing()));
        }
        self.discoverable(cx, &product_resource(&domain, &product), missing)
            .await?;
        Ok((domain, product))
    }

    /// A request the caller may see (its own, or one it may decide), with whether it may
    /// decide it; 404 otherwise.
    async fn visible_request(
        &self,
        cx: &RequestContext,
        id: &str,
    ) -> Result<(AccessRequestRecord, bool)> {
        let missing = || ServiceError::NotFound(format!("no access request {id:?}"));
        let request = self.catalog.access_request(id).await?.ok_or_else(missing)?;
        let decides = self.access_for(cx).await?.allowed(
            &cx.principal,
            Action::Approve,
            &product_resource(&request.domain, &request.product),
        );
        if !decides && request.requester != cx.principal.name {
            return Err(missing());
        }
        Ok((request, decides))
    }

    /// A request as answered: with its grant's end once approved.
    async fn answered_request(&self, id: &str) -> Result<AccessRequestView> {
        let request = self
            .catalog
            .access_request(id)
            .await?
            .ok_or_else(|| ServiceError::Internal(format!("access request {id} vanished")))?;
        let grant = match &request.grant_id {
            Some(g) => self.catalog.grant(g).await?,
            None => None,
        };
        Ok(request_view(request, grant))
    }

    /// `Ok` when `filter` applies to at least one dataset of `domain.product`; a 400 with why
    /// not otherwise.
    async fn check_row_filter(&self, domain: &str, product: &str, filter: &str) -> Result<()> {
        let mesh = self.snapshot().await?;
        let mut why = None;
        for entry in mesh.tables.iter().filter(|t| {
            t.reference.domain.as_str() == domain
                && t.reference.product.as_str() == product
                && !t
                    .reference
                    .dataset
                    .as_str()
                    .ends_with(tessera_core::QUARANTINE_SUFFIX)
        }) {
            match self.engine().check_row_filter(filter, &entry.schema) {
                Ok(()) => return Ok(()),
                Err(e) => why = why.or(Some(format!("{}: {e}", entry.reference))),
            }
        }
        Err(ServiceError::BadRequest(format!(
            "the row filter {filter:?} applies to no dataset of {domain}.{product} ({})",
            why.unwrap_or_else(|| "it has none".into())
        )))
    }

    /// Decides a pending request the caller may decide: approved (with a grant restricted to
    /// `row_filter` when given), or denied.
    async fn decide_request(
        &self,
        cx: &RequestContext,
        id: &str,
        reason: Option<&str>,
        approve: Option<Option<&str>>,
    ) -> Result<AccessRequestView> {
        let (request, decides) = self.visible_request(cx, id).await?;
        if !decides {
            self.authorize(
                cx,
                Action::Approve,
                &product_resource(&request.domain, &request.product),
            )
            .await?;
        }
        if let Some(Some(filter)) = approve {
            self.check_row_filter(&request.domain, &request.product, filter)
                .await?;
        }
        let grant = if let Some(row_filter) = approve {
            Some(GrantRecord {
                grant_id: short_id(),
                domain: request.domain.clone(),
                product: request.product.clone(),
                grantee_kind: "user".into(),
                grantee: request.requester.clone(),
                row_filter: row_filter.map(str::to_string),
                expires_at: Some(expiry_after(request.days)?),
                created_at: String::new(),
                created_by: cx.principal.to_string(),
                revoked_at: None,
                access_request: Some(request.request_id.clone()),
            })
        } else {
            None
        };
        let decided = self
            .catalog
            .decide_access_request(id, &cx.principal.to_string(), reason, grant.as_ref())
            .await?;
        if !decided {
            return Err(ServiceError::Conflict(format!(
                "access request {id:?} was {} before",
                request.state
            )));
        }
        self.answered_request(id).await
    }

    /// Whether `resource` exists and the caller may discover it.
    async fn visible(&self, cx: &RequestContext, resource: &Resource) -> Result<bool> {
        let exists = match resource {
            Resource::Platform => true,
            Resource::Domain(d) => self.catalog.domains().await?.iter().any(|x| &x.name == d),
            Resource::Product { domain, product } => {
                self.catalog.product(domain, product).await?.is_some()
            }
            Resource::Dataset {
                domain,
                product,
                dataset,
            } => self
                .catalog
                .datasets(Some((domain, product)))
                .await?
                .iter()
                .any(|d| &d.name == dataset),
        };
        Ok(exists
            && self
                .access_for(cx)
                .await?
                .allowed(&cx.principal, Action::Discover, resource))
    }

    /// On the first start of a new mesh (no user yet), makes a token for `admin` in the group
    /// `admins` and returns it, to be shown once.
    pub async fn bootstrap_admin(&self) -> Result<Option<String>> {
        if self.catalog.has_users().await? {
            return Ok(None);
        }
        let (record, token) = new_token(ADMIN_USER, Some("made at the first start".into()));
        self.catalog
            .create_token(
                &record,
                &[ADMIN_GROUP.to_string()],
                &[],
                &tessera_core::Principal::system("bootstrap").to_string(),
            )
            .await?;
        Ok(Some(token))
    }
}

#[async_trait]
impl AccessService for Mesh {
    async fn authenticate(
        &self,
        token: &str,
        request_id: String,
        front_end: FrontEnd,
    ) -> Result<RequestContext> {
        let (token_id, secret) = token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .ok_or_else(unauthenticated)?;
        let hash = secret_hash(secret);
        // Revoking a token or changing memberships moves the access generation on, which
        // empties this cache.
        let access = self.access().await?;
        let request = |principal| {
            RequestContext::new(principal, request_id, front_end).as_of(access.generation())
        };
        if let Some(principal) = access.cached_principal(token_id, &hash) {
            return Ok(request(principal));
        }
        let record = self
            .catalog
            .token(token_id)
            .await?
            .filter(|t| t.revoked_at.is_none() && t.secret_sha256 == hash)
            .ok_or_else(unauthenticated)?;
        let user = self
            .catalog
            .user(&record.user_name)
            .await?
            .ok_or_else(unauthenticated)?;
        let principal = Principal::user(user.name, user.groups, user.teams);
        access.remember_principal(token_id, &hash, &principal);
        Ok(request(principal))
    }

    async fn create_token(
        &self,
        cx: &RequestContext,
        request: &TokenRequest,
    ) -> Result<TokenCreated> {
        self.authorize(cx, Action::Manage, &Resource::Platform)
            .await?;
        let user = request.user.trim();
        let valid = valid_name;
        if !valid(user) {
            return Err(ServiceError::BadRequest(
                "a user name is 1 to 128 characters, without control characters or surrounding spaces".into(),
            ));
        }
        if let Some(bad) = request
            .groups
            .iter()
            .chain(&request.teams)
            .find(|name| !valid(name))
        {
            return Err(ServiceError::BadRequest(format!(
                "invalid group or team name {bad:?}: 1 to 128 characters, without control characters or surrounding spaces"
            )));
        }
        let (record, token) = new_token(user, request.description.clone());
        self.catalog
            .create_token(
                &record,
                &request.groups,
                &request.teams,
                &cx.principal.to_string(),
            )
            .await?;
        let stored = self
            .catalog
            .user(user)
            .await?
            .ok_or_else(|| ServiceError::Internal("the token's user was not stored".into()))?;
        Ok(TokenCreated {
            token_id: record.token_id,
            user: user.to_string(),
            token,
            groups: stored.groups,
            teams: stored.teams,
        })
    }

    async fn tokens(&self, cx: &RequestContext) -> Result<Vec<TokenView>> {
        let only = (!self.administers(cx).await?).then_some(cx.principal.name.as_str());
        Ok(self
            .catalog
            .tokens(only)
            .await?
            .into_iter()
            .map(token_view)
            .collect())
    }

    async fn revoke_token(&self, cx: &RequestContext, token_id: &str) -> Result<TokenView> {
        let admin = self.administers(cx).await?;
        self.catalog
            .token(token_id)
            .await?
            .filter(|t| admin || t.user_name == cx.principal.name)
            // Another user's token is not named to a caller who may not see it.
            .ok_or_else(|| ServiceError::NotFound(format!("no token {token_id:?}")))?;
        // The store says whether this call revoked it: of two at once, one is told it was done
        // before.
        if !self
            .catalog
            .revoke_token(token_id, &cx.principal.to_string())
            .await?
        {
            return Err(ServiceError::Conflict(format!(
                "token {token_id:?} was revoked before"
            )));
        }
        let revoked = self
            .catalog
            .token(token_id)
            .await?
            .ok_or_else(|| ServiceError::Internal("a revoked token vanished".into()))?;
        Ok(token_view(revoked))
    }

    async fn grant(&self, cx: &RequestContext, request: &GrantRequest) -> Result<GrantView> {
        let (domain, product) = self.known_product(cx, &request.product).await?;
        self.authorize(cx, Action::Manage, &product_resource(&domain, &product))
            .await?;
        let (grantee_kind, grantee) = parse_grantee(&request.grantee)?;
        let expires_at = request.days.map(expiry_after).transpose()?;
        let row_filter = request.row_filter.as_deref().map(str::trim);
        if let Some(filter) = row_filter {
            self.check_row_filter(&domain, &product, filter).await?;
        }
        let record = GrantRecord {
            grant_id: short_id(),
            domain,
            product,
            grantee_kind,
            grantee,
            row_filter: row_filter.map(str::to_string),
            expires_at,
            created_at: String::new(),
            created_by: cx.principal.to_string(),
            revoked_at: None,
            access_request: None,
        };
        self.catalog.create_grant(&record).await?;
        let stored = self
            .catalog
            .grant(&record.grant_id)
            .await?
            .ok_or_else(|| ServiceError::Internal("a grant just made is not stored".into()))?;
        Ok(grant_view(&stored))
    }

    async fn grants(&self, cx: &RequestContext, product: Option<&str>) -> Result<Vec<GrantView>> {
        let access = self.access_for(cx).await?;
        let now = store_time(chrono::Utc::now());
        let grants = match product {
            Some(text) => {
                let (domain, product) = self.known_product(cx, text).await?;
                self.catalog
                    .active_grants(&now, Some((&domain, &product)))
                    .await?
            }
            None => self.catalog.active_grants(&now, None).await?,
        };
        // A product's grants are its declared consumers: whoever discovers it sees them; a row
        // filter (which may name customers, regions…) only its grantee and the managers.
        Ok(grants
            .iter()
            .filter(|g| {
                access.allowed(
                    &cx.principal,
                    Action::Discover,
                    &product_resource(&g.domain, &g.product),
                )
            })
            .map(|g| {
                let mut view = grant_view(g);
                let manages = access.allowed(
                    &cx.principal,
                    Action::Manage,
                    &product_resource(&g.domain, &g.product),
                );
                if view.row_filter.is_some()
                    && !manages
                    && !crate::governance::holds(&cx.principal, g)
                {
                    view.row_filter =
                        Some("(shown to its grantee and the product's managers)".into());
                }
                view
            })
            .collect())
    }

    async fn revoke_grant(&self, cx: &RequestContext, grant_id: &str) -> Result<GrantView> {
        let missing = || ServiceError::NotFound(format!("no grant {grant_id:?}"));
        let grant = self.catalog.grant(grant_id).await?.ok_or_else(missing)?;
        let product = product_resource(&grant.domain, &grant.product);
        if !self
            .access_for(cx)
            .await?
            .allowed(&cx.principal, Action::Discover, &product)
        {
            return Err(missing());
        }
        self.authorize(cx, Action::Manage, &product).await?;
        if !self
            .catalog
            .revoke_grant(grant_id, &cx.principal.to_string())
            .await?
        {
            return Err(ServiceError::Conflict(format!(
                "grant {grant_id:?} was revoked before"
            )));
        }
        let revoked = self.catalog.grant(grant_id).await?.ok_or_else(missing)?;
        Ok(grant_view(&revoked))
    }

    async fn put_policy(
        &self,
        cx: &RequestContext,
        id: &str,
        request: &PolicyRequest,
    ) -> Result<PolicyView> {
        self.authorize(cx, Action::Manage, &Resource::Platform)
            .await?;
        if !valid_name(id) || id.contains(':') {
            return Err(ServiceError::BadRequest(format!(
                "{id:?} is not a policy id: 1 to 128 characters, without colons, control characters or surrounding spaces"
            )));
        }
        // The policy must load with all the others before it is stored.
        let mut policies: Vec<tessera_governance::PolicyText> = self
            .catalog
            .policies()
            .await?
            .into_iter()
            .filter(|p| p.policy_id != id)
            .map(|p| tessera_governance::PolicyText {
                id: p.policy_id,
                text: p.source,
            })
            .collect();
        policies.push(tessera_governance::PolicyText {
            id: id.to_string(),
            text: request.source.clone(),
        });
        tessera_governance::AccessModel::new(&[], &[], &policies).map_err(governance_error)?;
        self.catalog
            .put_policy(id, &request.source, &cx.principal.to_string())
            .await?;
        self.policies(cx)
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| ServiceError::Internal("a policy just stored is not there".into()))
    }

    async fn policies(&self, cx: &RequestContext) -> Result<Vec<PolicyView>> {
        self.authorize(cx, Action::Manage, &Resource::Platform)
            .await?;
        Ok(self
            .catalog
            .policies()
            .await?
            .into_iter()
            .map(|p| PolicyView {
                id: p.policy_id,
                source: p.source,
                updated_at: p.updated_at,
                updated_by: p.updated_by,
            })
            .collect())
    }

    async fn delete_policy(&self, cx: &RequestContext, id: &str) -> Result<PolicyView> {
        let missing = || ServiceError::NotFound(format!("no policy {id:?}"));
        let policy = self
            .policies(cx)
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(missing)?;
        if !self
            .catalog
            .delete_policy(id, &cx.principal.to_string())
            .await?
        {
            return Err(missing());
        }
        Ok(policy)
    }

    async fn explain(&self, cx: &RequestContext, request: &ExplainRequest) -> Result<ExplainView> {
        // Admins explain anybody's rights; everybody else their own.
        if request.user != cx.principal.name || cx.principal.kind != PrincipalKind::User {
            self.authorize(cx, Action::Manage, &Resource::Platform)
                .await?;
        }
        let action: Action = request.action.parse().map_err(governance_error)?;
        let resource: Resource = request.resource.parse().map_err(governance_error)?;
        // A non-admin learns nothing of what it may not discover: such a resource, like one
        // that does not exist, is not there.
        if !self.administers(cx).await? && !self.visible(cx, &resource).await? {
            return Err(ServiceError::NotFound(format!("no {resource}")));
        }
        let user = self
            .catalog
            .user(&request.user)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no user {:?}", request.user)))?;
        let principal = Principal::user(user.name.clone(), user.groups.clone(), user.teams.clone());
        let decision = self
            .access_for(cx)
            .await?
            .decide(&principal, action, &resource)?;
        Ok(ExplainView {
            user: user.name,
            groups: user.groups,
            teams: user.teams,
            action: action.as_str().to_string(),
            resource: resource.to_string(),
            allowed: decision.allowed,
            policies: decision.policies,
        })
    }

    async fn request_access(
        &self,
        cx: &RequestContext,
        request: &AccessRequestBody,
    ) -> Result<AccessRequestView> {
        if cx.principal.kind != PrincipalKind::User {
            return Err(ServiceError::BadRequest(
                "access is requested by a user, with the user's own token".into(),
            ));
        }
        let (domain, product) = self.known_product(cx, &request.product).await?;
        let purpose = request.purpose.trim();
        if purpose.is_empty() || purpose.len() > 2000 {
            return Err(ServiceError::BadRequest(
                "say what the access is for: a purpose of 1 to 2000 characters".into(),
            ));
        }
        let days = request.days.unwrap_or(DEFAULT_REQUEST_DAYS);
        expiry_after(days)?;
        let record = AccessRequestRecord {
            request_id: short_id(),
            domain,
            product,
            requester: cx.principal.name.clone(),
            purpose: purpose.to_string(),
            days,
            state: "pending".into(),
            created_at: String::new(),
            decided_by: None,
            decided_at: None,
            reason: None,
            grant_id: None,
        };
        self.catalog.create_access_request(&record).await?;
        self.answered_request(&record.request_id).await
    }

    async fn access_requests(&self, cx: &RequestContext) -> Result<Vec<AccessRequestView>> {
        let access = self.access_for(cx).await?;
        let mut out = Vec::new();
        for r in self.catalog.access_requests().await? {
            let decides = access.allowed(
                &cx.principal,
                Action::Approve,
                &product_resource(&r.domain, &r.product),
            );
            if decides || r.requester == cx.principal.name {
                out.push(self.answered_request(&r.request_id).await?);
            }
        }
        Ok(out)
    }

    async fn approve_access(
        &self,
        cx: &RequestContext,
        id: &str,
        approval: &ApproveBody,
    ) -> Result<AccessRequestView> {
        let filter = approval.row_filter.as_deref().map(str::trim);
        self.decide_request(cx, id, None, Some(filter)).await
    }

    async fn deny_access(
        &self,
        cx: &RequestContext,
        id: &str,
        reason: &str,
    ) -> Result<AccessRequestView> {
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > 2000 {
            return Err(ServiceError::BadRequest(
                "say why the request is denied: a reason of 1 to 2000 characters".into(),
            ));
        }
        self.decide_request(cx, id, Some(reason), None).await
    }

    async fn whoami(&self, cx: &RequestContext) -> Result<PrincipalView> {
        let p = &cx.principal;
        Ok(PrincipalView {
            name: p.name.clone(),
            kind: match p.kind {
                PrincipalKind::User => "user",
                PrincipalKind::Team => "team",
                PrincipalKind::System => "system",
            }
            .into(),
            groups: p.groups.clone(),
            teams: p.teams.clone(),
        })
    }
}
