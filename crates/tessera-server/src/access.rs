//! Who may call: API tokens for users who belong to groups and teams.
//!
//! A token is `tsr_<id>_<secret>`: the id finds it, the secret proves it. Only the SHA-256 of
//! the secret is stored, so the metadata store holds nothing a caller could present; the token
//! itself is shown once, when it is made. The first start of a new mesh makes a token for the
//! user `admin` in the group `admins` (see [`Mesh::bootstrap_admin`]). Until the Cedar policies
//! come, the rule is simple: admins make tokens for anybody and see and revoke all of them;
//! everybody else sees and revokes their own.

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tessera_catalog::TokenRecord;
use tessera_core::{Principal, PrincipalKind, RequestContext};

use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;
use crate::service::AccessService;
use crate::views::{PrincipalView, TokenCreated, TokenRequest, TokenView};

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

fn is_admin(principal: &Principal) -> bool {
    principal.is_system() || principal.groups.iter().any(|g| g == ADMIN_GROUP)
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
    /// On the first start of a new mesh (no user yet), makes a token for `admin` in the group
    /// `admins` and returns it, to be shown once.
    pub async fn bootstrap_admin(&self) -> Result<Option<String>> {
        if self.catalog.has_users().await? {
            return Ok(None);
        }
        let (record, token) = new_token(ADMIN_USER, Some("made at the first start".into()));
        self.catalog
            .create_token(&record, &[ADMIN_GROUP.to_string()], &[])
            .await?;
        Ok(Some(token))
    }
}

#[async_trait]
impl AccessService for Mesh {
    async fn authenticate(&self, token: &str) -> Result<Principal> {
        let (token_id, secret) = token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .ok_or_else(unauthenticated)?;
        let record = self
            .catalog
            .token(token_id)
            .await?
            .filter(|t| t.revoked_at.is_none() && t.secret_sha256 == secret_hash(secret))
            .ok_or_else(unauthenticated)?;
        let user = self
            .catalog
            .user(&record.user_name)
            .await?
            .ok_or_else(unauthenticated)?;
        Ok(Principal::user(user.name, user.groups, user.teams))
    }

    async fn create_token(
        &self,
        cx: &RequestContext,
        request: &TokenRequest,
    ) -> Result<TokenCreated> {
        if !is_admin(&cx.principal) {
            return Err(ServiceError::Forbidden(format!(
                "making tokens needs membership of the group {ADMIN_GROUP:?}"
            )));
        }
        let user = request.user.trim();
        let valid = |name: &str| {
            !name.is_empty()
                && name.len() <= 128
                && !name.chars().any(|c| c.is_control())
                && name.trim() == name
        };
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
            .create_token(&record, &request.groups, &request.teams)
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
        let only = (!is_admin(&cx.principal)).then_some(cx.principal.name.as_str());
        Ok(self
            .catalog
            .tokens(only)
            .await?
            .into_iter()
            .map(token_view)
            .collect())
    }

    async fn revoke_token(&self, cx: &RequestContext, token_id: &str) -> Result<TokenView> {
        self.catalog
            .token(token_id)
            .await?
            .filter(|t| is_admin(&cx.principal) || t.user_name == cx.principal.name)
            // Another user's token is not named to a caller who may not see it.
            .ok_or_else(|| ServiceError::NotFound(format!("no token {token_id:?}")))?;
        // The store says whether this call revoked it: of two at once, one is told it was done
        // before.
        if !self.catalog.revoke_token(token_id).await? {
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
