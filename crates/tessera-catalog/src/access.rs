//! Who may do what, as stored: every user with its memberships, grants, access requests,
//! admins' policies, and the access generation — a counter every change to any of these (and
//! every apply, which may change a product's owner team) moves on in the same transaction, so
//! an instance rebuilds its access model exactly when something changed, whichever instance
//! changed it.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::audit::AuditEvent;
use crate::error::Result;
use crate::records::{AccessRequestRecord, GrantRecord, PolicyRecord, UserRecord};
use crate::store::{Catalog, constant_sql, now};

/// Moves the access generation on; called inside the transaction of the change.
pub(crate) async fn bump_access_generation(conn: &mut AnyConnection) -> Result<()> {
    sqlx::query("UPDATE generations SET value = value + 1 WHERE name = 'access'")
        .execute(conn)
        .await?;
    Ok(())
}

const GRANT_SELECT: &str = "SELECT grant_id, domain, product, grantee_kind, grantee, row_filter, expires_at, created_at, created_by, revoked_at, access_request FROM grants";
const REQUEST_SELECT: &str = "SELECT request_id, domain, product, requester, purpose, days, state, created_at, decided_by, decided_at, reason, grant_id FROM access_requests";

impl Catalog {
    /// The access generation: it changes whenever users, memberships, tokens, grants, requests,
    /// policies or products change.
    pub async fn access_generation(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT value FROM generations WHERE name = 'access'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The mesh's secret `name`: the one stored, or `fresh` stored now if there is none yet
    /// (of two instances asking at once, both get the one stored first).
    pub async fn secret(&self, name: &str, fresh: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO mesh_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name.to_string())
        .bind(fresh.to_string())
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM mesh_secrets WHERE name = $1")
                .bind(name.to_string())
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Every user with its groups and teams, by name.
    pub async fn users(&self) -> Result<Vec<UserRecord>> {
        let users = sqlx::query("SELECT name, created_at FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let memberships = sqlx::query(
            "SELECT user_name, kind, name FROM memberships ORDER BY user_name, kind, name",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<UserRecord> = users
            .iter()
            .map(|r| {
                Ok(UserRecord {
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                    groups: Vec::new(),
                    teams: Vec::new(),
                })
            })
            .collect::<Result<_>>()?;
        for m in memberships {
            let user: String = m.try_get("user_name")?;
            let kind: String = m.try_get("kind")?;
            let name: String = m.try_get("name")?;
            if let Ok(i) = out.binary_search_by(|u| u.name.as_str().cmp(&user)) {
                match kind.as_str() {
                    "group" => out[i].groups.push(name),
                    _ => out[i].teams.push(name),
                }
            }
        }
        Ok(out)
    }

    /// Stores a grant (made now, whatever its `created_at`, by its `created_by`).
    pub async fn create_grant(&self, grant: &GrantRecord) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_grant(&mut tx, grant).await?;
        bump_access_generation(&mut tx).await?;
        self.commit_audited(tx, &[grant_event(grant)]).await
    }

    /// Grants not revoked and not expired at `at` (an RFC 3339 time in the store's format),
    /// of one product or of all.
    pub async fn active_grants(
        &self,
        at: &str,
        product: Option<(&str, &str)>,
    ) -> Result<Vec<GrantRecord>> {
        let only = if product.is_some() {
            " AND domain = $2 AND product = $3"
        } else {
            ""
        };
        let sql = format!(
            "{GRANT_SELECT} WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1){only} ORDER BY domain, product, created_at, grant_id"
        );
        let mut query = sqlx::query(constant_sql(sql)).bind(at.to_string());
        if let Some((d, p)) = product {
            query = query.bind(d.to_string()).bind(p.to_string());
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(grant_row)
            .collect()
    }

    pub async fn grant(&self, grant_id: &str) -> Result<Option<GrantRecord>> {
        let sql = format!("{GRANT_SELECT} WHERE grant_id = $1");
        sqlx::query(constant_sql(sql))
            .bind(grant_id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(grant_row)
            .transpose()
    }

    /// Marks a grant revoked; `false` when there is none or it was revoked before.
    pub async fn revoke_grant(&self, grant_id: &str, actor: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE grants SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(grant_id.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        bump_access_generation(&mut tx).await?;
        let event = AuditEvent::new(actor, "grant.revoke", grant_id, serde_json::json!({}));
        self.commit_audited(tx, &[event]).await?;
        Ok(true)
    }

    /// Admins' policies, by id.
    pub async fn policies(&self) -> Result<Vec<PolicyRecord>> {
        let rows = sqlx::query(
            "SELECT policy_id, source, updated_at, updated_by FROM policies ORDER BY policy_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PolicyRecord {
                    policy_id: r.try_get("policy_id")?,
                    source: r.try_get("source")?,
                    updated_at: r.try_get("updated_at")?,
                    updated_by: r.try_get("updated_by")?,
                })
            })
            .collect()
    }

    /// Stores a policy under its id, replacing one of the same id.
    pub async fn put_policy(&self, policy_id: &str, source: &str, by: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO policies (policy_id, source, updated_at, updated_by) VALUES ($1, $2, $3, $4)
             ON CONFLICT (policy_id) DO UPDATE SET source = excluded.source,
               updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(policy_id.to_string())
        .bind(source.to_string())
        .bind(now())
        .bind(by.to_string())
        .execute(&mut *tx)
        .await?;
        bump_access_generation(&mut tx).await?;
        let event = AuditEvent::new(
            by,
            "policy.put",
            policy_id,
            serde_json::json!({"source": source}),
        );
        self.commit_audited(tx, &[event]).await
    }

    /// Removes a policy; `false` when there was none.
    pub async fn delete_policy(&self, policy_id: &str, actor: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM policies WHERE policy_id = $1")
            .bind(policy_id.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        bump_access_generation(&mut tx).await?;
        let event = AuditEvent::new(actor, "policy.delete", policy_id, serde_json::json!({}));
        self.commit_audited(tx, &[event]).await?;
        Ok(true)
    }

    /// Stores a new, pending access request (made now, whatever its `created_at`).
    pub async fn create_access_request(&self, r: &AccessRequestRecord) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO access_requests (request_id, domain, product, requester, purpose, days, state, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7)",
        )
        .bind(r.request_id.clone())
        .bind(r.domain.clone())
        .bind(r.product.clone())
        .bind(r.requester.clone())
        .bind(r.purpose.clone())
        .bind(r.days)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::new(
            format!("user {}", r.requester),
            "access_request.create",
            r.request_id.clone(),
            serde_json::json!({"product": format!("{}.{}", r.domain, r.product), "purpose": r.purpose, "days": r.days}),
        );
        self.commit_audited(tx, &[event]).await
    }

    pub async fn access_request(&self, request_id: &str) -> Result<Option<AccessRequestRecord>> {
        let sql = format!("{REQUEST_SELECT} WHERE request_id = $1");
        sqlx::query(constant_sql(sql))
            .bind(request_id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(request_row)
            .transpose()
    }

    /// Every access request, oldest first.
    pub async fn access_requests(&self) -> Result<Vec<AccessRequestRecord>> {
        let sql = format!("{REQUEST_SELECT} ORDER BY created_at, request_id");
        sqlx::query(constant_sql(sql))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(request_row)
            .collect()
    }

    /// Decides a pending request: `grant` is the grant an approval makes (stored in the same
    /// transaction), `None` for a denial. `false` when the request was no longer pending.
    pub async fn decide_access_request(
        &self,
        request_id: &str,
        by: &str,
        reason: Option<&str>,
        grant: Option<&GrantRecord>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let state = if grant.is_some() {
            "approved"
        } else {
            "denied"
        };
        let done = sqlx::query(
            "UPDATE access_requests SET state = $1, decided_by = $2, decided_at = $3, reason = $4, grant_id = $5
             WHERE request_id = $6 AND state = 'pending'",
        )
        .bind(state)
        .bind(by.to_string())
        .bind(now())
        .bind(reason.map(str::to_string))
        .bind(grant.map(|g| g.grant_id.clone()))
        .bind(request_id.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let mut events = vec![AuditEvent::new(
            by,
            if grant.is_some() {
                "access_request.approve"
            } else {
                "access_request.deny"
            },
            request_id,
            serde_json::json!({"reason": reason, "grant": grant.map(|g| &g.grant_id)}),
        )];
        if let Some(g) = grant {
            insert_grant(&mut tx, g).await?;
            events.push(grant_event(g));
        }
        bump_access_generation(&mut tx).await?;
        self.commit_audited(tx, &events).await?;
        Ok(true)
    }
}

fn grant_event(g: &GrantRecord) -> AuditEvent {
    AuditEvent::new(
        g.created_by.clone(),
        "grant.create",
        g.grant_id.clone(),
        serde_json::json!({
            "product": format!("{}.{}", g.domain, g.product),
            "grantee": format!("{} {}", g.grantee_kind, g.grantee),
            "row_filter": g.row_filter,
            "expires_at": g.expires_at,
            "access_request": g.access_request,
        }),
    )
}

async fn insert_grant(conn: &mut AnyConnection, g: &GrantRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO grants (grant_id, domain, product, grantee_kind, grantee, row_filter, expires_at, created_at, created_by, revoked_at, access_request)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10)",
    )
    .bind(g.grant_id.clone())
    .bind(g.domain.clone())
    .bind(g.product.clone())
    .bind(g.grantee_kind.clone())
    .bind(g.grantee.clone())
    .bind(g.row_filter.clone())
    .bind(g.expires_at.clone())
    .bind(now())
    .bind(g.created_by.clone())
    .bind(g.access_request.clone())
    .execute(conn)
    .await?;
    Ok(())
}

fn grant_row(r: &AnyRow) -> Result<GrantRecord> {
    Ok(GrantRecord {
        grant_id: r.try_get("grant_id")?,
        domain: r.try_get("domain")?,
        product: r.try_get("product")?,
        grantee_kind: r.try_get("grantee_kind")?,
        grantee: r.try_get("grantee")?,
        row_filter: r.try_get("row_filter")?,
        expires_at: r.try_get("expires_at")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
        revoked_at: r.try_get("revoked_at")?,
        access_request: r.try_get("access_request")?,
    })
}

fn request_row(r: &AnyRow) -> Result<AccessRequestRecord> {
    Ok(AccessRequestRecord {
        request_id: r.try_get("request_id")?,
        domain: r.try_get("domain")?,
        product: r.try_get("product")?,
        requester: r.try_get("requester")?,
        purpose: r.try_get("purpose")?,
        days: r.try_get("days")?,
        state: r.try_get("state")?,
        created_at: r.try_get("created_at")?,
        decided_by: r.try_get("decided_by")?,
        decided_at: r.try_get("decided_at")?,
        reason: r.try_get("reason")?,
        grant_id: r.try_get("grant_id")?,
    })
}
