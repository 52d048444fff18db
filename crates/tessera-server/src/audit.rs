//! The audit log as a service: admins page through it and verify it. What goes into it is
//! written by the catalog with each change (see `tessera_catalog`'s `audit` module); denied
//! access decisions and queries arrive in groups through the query log's writer.

use async_trait::async_trait;
use tessera_catalog::AuditEvent;
use tessera_core::RequestContext;
use tessera_governance::{Action, Resource};

use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;
use crate::service::AuditService;
use crate::views::{AuditEntryView, AuditPage, AuditProblemView, AuditVerificationView};

/// The most entries one page holds.
const PAGE_MAX: i64 = 1000;

#[async_trait]
impl AuditService for Mesh {
    async fn audit_entries(
        &self,
        cx: &RequestContext,
        after: Option<i64>,
        limit: i64,
    ) -> Result<AuditPage> {
        self.authorize(cx, Action::Manage, &Resource::Platform)
            .await?;
        if after.is_some_and(|a| a < 0) {
            return Err(ServiceError::BadRequest(
                "`after` is an entry's sequence number, 0 or more".into(),
            ));
        }
        let limit = limit.clamp(1, PAGE_MAX);
        // Queries and denied decisions arrive through the query log's writer.
        self.query_log.written().await;
        let (records, next_after) = match after {
            // One entry more than the page tells whether another page follows.
            Some(after) => {
                let mut records = self.catalog.audit_entries(Some(after), limit + 1).await?;
                let more = records.len() as i64 > limit;
                records.truncate(limit as usize);
                let next_after = more.then(|| records.last().map(|e| e.seq)).flatten();
                (records, next_after)
            }
            // The newest entries: nothing follows them yet.
            None => (self.catalog.audit_entries(None, limit).await?, None),
        };
        let entries = records
            .into_iter()
            .map(|e| AuditEntryView {
                seq: e.seq,
                at: e.at,
                actor: e.actor,
                action: e.action,
                subject: e.subject,
                detail: serde_json::from_str(&e.detail)
                    .unwrap_or(serde_json::Value::String(e.detail)),
                hash: e.hash,
            })
            .collect();
        Ok(AuditPage {
            entries,
            next_after,
        })
    }

    async fn verify_audit(&self, cx: &RequestContext) -> Result<AuditVerificationView> {
        self.authorize(cx, Action::Manage, &Resource::Platform)
            .await?;
        self.query_log.written().await;
        let found = self.catalog.verify_audit().await?;
        Ok(AuditVerificationView {
            ok: found.problem.is_none(),
            entries: found.entries,
            head_seq: found.head_seq,
            problem: found.problem.map(|p| AuditProblemView {
                seq: p.seq,
                kind: p.kind.to_string(),
                message: p.message,
            }),
        })
    }
}

/// The audit entry of an access decision that denied `action` on `resource` to the request's
/// principal.
pub(crate) fn denial(cx: &RequestContext, action: Action, resource: &Resource) -> AuditEvent {
    denial_event(
        cx.principal.to_string(),
        action,
        resource.to_string(),
        &cx.request_id,
        cx.front_end.as_str(),
        None,
    )
}

/// The audit entry of a denied decision: `actor` may not `action` `subject`. Every denial,
/// from a request's check or a query an access policy refused, is written in this one shape.
pub(crate) fn denial_event(
    actor: String,
    action: Action,
    subject: String,
    request_id: &str,
    front_end: &str,
    query_id: Option<&str>,
) -> AuditEvent {
    let mut detail = serde_json::json!({
        "action": action.as_str(),
        "request_id": request_id,
        "front_end": front_end,
    });
    if let Some(query_id) = query_id {
        detail["query_id"] = query_id.into();
    }
    AuditEvent::new(actor, "access.denied", subject, detail)
}
