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
        let records = self.catalog.audit_entries(after, limit).await?;
        let last = records.last().map(|e| e.seq);
        // Another page follows when this one is full and something comes after it.
        let next_after = match last {
            Some(seq) if records.len() as i64 == limit => {
                let more = self.catalog.audit_entries(Some(seq), 1).await?;
                (!more.is_empty()).then_some(seq)
            }
            _ => None,
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
    AuditEvent::new(
        cx.principal.to_string(),
        "access.denied",
        resource.to_string(),
        serde_json::json!({
            "action": action.as_str(),
            "request_id": cx.request_id,
            "front_end": cx.front_end.as_str(),
        }),
    )
}
