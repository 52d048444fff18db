//! Governance policies as stored: global ones (the council's), each domain's own (kept with the
//! product whose folder holds them, written in the apply's transaction — see `store.rs`), the
//! council's switches of standard policies, and every evaluation with where each product
//! stands on each policy now.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::AuditEvent;
use crate::error::Result;
use crate::records::{
    DetectionRecord, GlossaryTermRecord, GovernancePolicyRecord, PolicyEvaluationRecord,
    PolicyHistoryPoint, PolicyOutcomeRecord, PolicyStatusRecord, PolicyViolationRecord,
    StandardPolicySwitch,
};
use crate::store::{Catalog, constant_sql, execute_rows, now};

const POLICY_SELECT: &str = "SELECT policy_id, domain, product, severity, file_name, source, updated_at, updated_by FROM governance_policies";
const STATUS_SELECT: &str = "SELECT domain, product, policy_id, severity, violations, since, evaluated_at, evaluation_id FROM policy_status";

fn policy_record(r: &AnyRow) -> Result<GovernancePolicyRecord> {
    Ok(GovernancePolicyRecord {
        policy_id: r.try_get("policy_id")?,
        domain: r.try_get("domain")?,
        product: r.try_get("product")?,
        severity: r.try_get("severity")?,
        file_name: r.try_get("file_name")?,
        source: r.try_get("source")?,
        updated_at: r.try_get("updated_at")?,
        updated_by: r.try_get("updated_by")?,
    })
}

/// Moves the governance generation on (inside the change's transaction): policies or where
/// products stand on them changed, so `tessera_meta` is rebuilt.
async fn bump_governance_generation(conn: &mut sqlx::AnyConnection) -> Result<()> {
    sqlx::query("UPDATE generations SET value = value + 1 WHERE name = 'governance'")
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn insert_policy(
    conn: &mut sqlx::AnyConnection,
    p: &GovernancePolicyRecord,
    at: &str,
    by: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO governance_policies (policy_id, domain, product, severity, file_name, source, updated_at, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (policy_id) DO UPDATE SET domain = excluded.domain, product = excluded.product,
           severity = excluded.severity, file_name = excluded.file_name, source = excluded.source,
           updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )
    .bind(p.policy_id.clone())
    .bind(p.domain.clone())
    .bind(p.product.clone())
    .bind(p.severity.clone())
    .bind(p.file_name.clone())
    .bind(p.source.clone())
    .bind(at.to_string())
    .bind(by.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Replaces the policies a product's folder holds (inside an apply's transaction).
pub(crate) async fn replace_product_policies(
    conn: &mut sqlx::AnyConnection,
    domain: &str,
    product: &str,
    policies: &[GovernancePolicyRecord],
    at: &str,
    by: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM governance_policies WHERE domain = $1 AND product = $2")
        .bind(domain.to_string())
        .bind(product.to_string())
        .execute(&mut *conn)
        .await?;
    for p in policies {
        insert_policy(&mut *conn, p, at, by).await?;
    }
    bump_governance_generation(conn).await
}

impl Catalog {
    /// A counter that moves whenever a governance policy, a switch or a product's standing on
    /// a policy changes.
    pub async fn governance_generation(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT value FROM generations WHERE name = 'governance'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Every stored policy, global and domain-local, by id.
    pub async fn governance_policies(&self) -> Result<Vec<GovernancePolicyRecord>> {
        let rows = sqlx::query(constant_sql(format!("{POLICY_SELECT} ORDER BY policy_id")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(policy_record).collect()
    }

    /// Stores global policies (replacing those of the same ids), with an audit entry each, in
    /// one transaction.
    pub async fn put_global_policies(
        &self,
        policies: &[GovernancePolicyRecord],
        by: &str,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        let mut events = Vec::new();
        for p in policies {
            insert_policy(&mut tx, p, &at, by).await?;
            events.push(AuditEvent::new(
                by,
                "governance_policy.put",
                &p.policy_id,
                serde_json::json!({"file": p.file_name, "severity": p.severity, "source": p.source}),
            ));
        }
        bump_governance_generation(&mut tx).await?;
        self.commit_audited(tx, &events).await
    }

    /// Every detection of personal data in the values, by dataset and column.
    pub async fn detections(&self) -> Result<Vec<DetectionRecord>> {
        self.detections_of(None).await
    }

    /// The detections of one dataset (domain, product, dataset), or of all.
    async fn detections_of(
        &self,
        dataset: Option<(&str, &str, &str)>,
    ) -> Result<Vec<DetectionRecord>> {
        let select = |filter: &str| {
            format!(
                "SELECT domain, product, dataset, column_name, detector, matched, sampled, detected_at
                 FROM personal_data_detections{filter}
                 ORDER BY domain, product, dataset, column_name, detector"
            )
        };
        let rows = match dataset {
            Some((d, p, ds)) => sqlx::query(constant_sql(select(
                " WHERE domain = $1 AND product = $2 AND dataset = $3",
            )))
            .bind(d.to_string())
            .bind(p.to_string())
            .bind(ds.to_string()),
            None => sqlx::query(constant_sql(select(""))),
        }
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DetectionRecord {
                    domain: r.try_get("domain")?,
                    product: r.try_get("product")?,
                    dataset: r.try_get("dataset")?,
                    column_name: r.try_get("column_name")?,
                    detector: r.try_get("detector")?,
                    matched: r.try_get("matched")?,
                    sampled: r.try_get("sampled")?,
                    detected_at: r.try_get("detected_at")?,
                })
            })
            .collect()
    }

    /// Keeps what a batch's detectors found in one dataset (each (column, detector) replaced
    /// by the newest hit). `true` when a column now [holds](DetectionRecord::holds) what a detector looks for
    /// and did not before: then the product's standing on the policies may have changed.
    pub async fn record_detections(&self, hits: &[DetectionRecord]) -> Result<bool> {
        if hits.is_empty() {
            return Ok(false);
        }
        // The hits of a batch are of one dataset: only its rows are read and compared.
        let first = &hits[0];
        let before = self
            .detections_of(Some((&first.domain, &first.product, &first.dataset)))
            .await?;
        let mut tx = self.pool.begin().await?;
        let at = now();
        let (mut newly_held, mut changed) = (false, false);
        for h in hits {
            let previous = before
                .iter()
                .find(|b| (&b.column_name, &b.detector) == (&h.column_name, &h.detector));
            newly_held |= h.holds() && !previous.is_some_and(DetectionRecord::holds);
            changed |= previous.is_none_or(|b| (b.matched, b.sampled) != (h.matched, h.sampled));
            sqlx::query(
                "INSERT INTO personal_data_detections (domain, product, dataset, column_name, detector, matched, sampled, detected_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (domain, product, dataset, column_name, detector) DO UPDATE SET
                   matched = excluded.matched, sampled = excluded.sampled, detected_at = excluded.detected_at",
            )
            .bind(h.domain.clone())
            .bind(h.product.clone())
            .bind(h.dataset.clone())
            .bind(h.column_name.clone())
            .bind(h.detector.clone())
            .bind(h.matched)
            .bind(h.sampled)
            .bind(at.clone())
            .execute(&mut *tx)
            .await?;
        }
        // tessera_meta shows the counts: it is rebuilt when they changed, not after every batch
        // that finds the same.
        if changed {
            bump_governance_generation(&mut tx).await?;
        }
        tx.commit().await?;
        self.changed();
        Ok(newly_held)
    }

    /// Every published version of every glossary term, by name and then version as written.
    pub async fn glossary_terms(&self) -> Result<Vec<GlossaryTermRecord>> {
        let rows = sqlx::query(
            "SELECT name, version, file_name, source, created_at, created_by FROM glossary_terms ORDER BY name, created_at, version",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(GlossaryTermRecord {
                    name: r.try_get("name")?,
                    version: r.try_get("version")?,
                    file_name: r.try_get("file_name")?,
                    source: r.try_get("source")?,
                    created_at: r.try_get("created_at")?,
                    created_by: r.try_get("created_by")?,
                })
            })
            .collect()
    }

    /// Publishes new versions of glossary terms, with an audit entry each, in one transaction
    /// (a version already published is the caller's to refuse: it never changes).
    pub async fn put_glossary_terms(&self, terms: &[GlossaryTermRecord], by: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        let mut events = Vec::new();
        for t in terms {
            sqlx::query(
                "INSERT INTO glossary_terms (name, version, file_name, source, created_at, created_by)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(t.name.clone())
            .bind(t.version.clone())
            .bind(t.file_name.clone())
            .bind(t.source.clone())
            .bind(at.clone())
            .bind(by.to_string())
            .execute(&mut *tx)
            .await?;
            events.push(AuditEvent::new(
                by,
                "glossary_term.put",
                format!("{}@{}", t.name, t.version),
                serde_json::json!({"file": t.file_name, "source": t.source}),
            ));
        }
        bump_governance_generation(&mut tx).await?;
        self.commit_audited(tx, &events).await
    }

    /// Removes a global policy; `false` when there was none.
    pub async fn delete_global_policy(&self, policy_id: &str, by: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done =
            sqlx::query("DELETE FROM governance_policies WHERE policy_id = $1 AND domain IS NULL")
                .bind(policy_id.to_string())
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM policy_status WHERE policy_id = $1")
            .bind(policy_id.to_string())
            .execute(&mut *tx)
            .await?;
        bump_governance_generation(&mut tx).await?;
        let event = AuditEvent::new(
            by,
            "governance_policy.delete",
            policy_id,
            serde_json::json!({}),
        );
        self.commit_audited(tx, &[event]).await?;
        Ok(true)
    }

    /// The council's switches of standard policies (a standard policy without one is on).
    pub async fn standard_policy_switches(&self) -> Result<Vec<StandardPolicySwitch>> {
        let rows = sqlx::query(
            "SELECT policy_id, enabled, updated_at, updated_by FROM standard_policy_switches ORDER BY policy_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StandardPolicySwitch {
                    policy_id: r.try_get("policy_id")?,
                    enabled: r.try_get::<i64, _>("enabled")? != 0,
                    updated_at: r.try_get("updated_at")?,
                    updated_by: r.try_get("updated_by")?,
                })
            })
            .collect()
    }

    /// Turns a standard policy on or off for the whole mesh, with an audit entry.
    pub async fn switch_standard_policy(
        &self,
        policy_id: &str,
        enabled: bool,
        by: &str,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO standard_policy_switches (policy_id, enabled, updated_at, updated_by) VALUES ($1, $2, $3, $4)
             ON CONFLICT (policy_id) DO UPDATE SET enabled = excluded.enabled,
               updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(policy_id.to_string())
        .bind(i64::from(enabled))
        .bind(now())
        .bind(by.to_string())
        .execute(&mut *tx)
        .await?;
        if !enabled {
            sqlx::query("DELETE FROM policy_status WHERE policy_id = $1")
                .bind(policy_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        bump_governance_generation(&mut tx).await?;
        let action = if enabled {
            "standard_policy.enable"
        } else {
            "standard_policy.disable"
        };
        let event = AuditEvent::new(by, action, policy_id, serde_json::json!({}));
        self.commit_audited(tx, &[event]).await
    }

    /// Stores an evaluation with its outcomes and violations. With `current`, it evaluated the
    /// mesh as it is (not a refused apply's plan, nor a file under test), and moves each
    /// evaluated product's standing on each policy: `since` moves when passing turns to failing
    /// or back, and a product's standing on a policy it no longer has is dropped.
    pub async fn record_policy_evaluation(
        &self,
        e: &PolicyEvaluationRecord,
        current: bool,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO policy_evaluations (evaluation_id, target, trigger_kind, evaluated_at, evaluated_by, policies, blocking, warnings, reflects_mesh)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(e.evaluation_id.clone())
        .bind(e.target.clone())
        .bind(e.trigger.clone())
        .bind(e.evaluated_at.clone())
        .bind(e.evaluated_by.clone())
        .bind(e.policies)
        .bind(e.blocking)
        .bind(e.warnings)
        .bind(i64::from(current))
        .execute(&mut *tx)
        .await?;
        // Thousands of outcomes at mesh scale: written a few hundred rows a statement.
        let id = e.evaluation_id.clone();
        execute_rows(
            &mut tx,
            "INSERT INTO policy_outcomes (evaluation_id, domain, product, policy_id, severity, violations)",
            "",
            6,
            &e.outcomes,
            |q, o| {
                q.bind(id.clone())
                    .bind(o.domain.clone())
                    .bind(o.product.clone())
                    .bind(o.policy_id.clone())
                    .bind(o.severity.clone())
                    .bind(o.violations)
            },
        )
        .await?;
        let violations: Vec<(i64, &PolicyViolationRecord)> = e
            .violations
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64, v))
            .collect();
        execute_rows(
            &mut tx,
            "INSERT INTO policy_violations (evaluation_id, position, policy_id, severity, domain, product, object, message, file_name, line)",
            "",
            10,
            &violations,
            |q, (i, v)| {
                q.bind(id.clone())
                    .bind(*i)
                    .bind(v.policy_id.clone())
                    .bind(v.severity.clone())
                    .bind(v.domain.clone())
                    .bind(v.product.clone())
                    .bind(v.object.clone())
                    .bind(v.message.clone())
                    .bind(v.file_name.clone())
                    .bind(v.line)
            },
        )
        .await?;
        if current {
            // `since` moves only when the product turns from passing to failing or back.
            execute_rows(
                &mut tx,
                "INSERT INTO policy_status (domain, product, policy_id, severity, violations, since, evaluated_at, evaluation_id)",
                "ON CONFLICT (domain, product, policy_id) DO UPDATE SET
                   since = CASE WHEN (policy_status.violations = 0) = (excluded.violations = 0)
                                THEN policy_status.since ELSE excluded.since END,
                   severity = excluded.severity, violations = excluded.violations,
                   evaluated_at = excluded.evaluated_at, evaluation_id = excluded.evaluation_id",
                8,
                &e.outcomes,
                |q, o| {
                    q.bind(o.domain.clone())
                        .bind(o.product.clone())
                        .bind(o.policy_id.clone())
                        .bind(o.severity.clone())
                        .bind(o.violations)
                        .bind(e.evaluated_at.clone())
                        .bind(e.evaluated_at.clone())
                        .bind(id.clone())
                },
            )
            .await?;
            // An evaluated product's standing on a policy it no longer has is dropped.
            for products in PolicyOutcomeRecord::products(&e.outcomes).chunks(200) {
                let pairs: Vec<String> = (0..products.len())
                    .map(|i| format!("(${}, ${})", 2 * i + 2, 2 * i + 3))
                    .collect();
                let mut query = sqlx::query(constant_sql(format!(
                    "DELETE FROM policy_status WHERE evaluation_id <> $1 AND (domain, product) IN (VALUES {})",
                    pairs.join(", ")
                )))
                .bind(id.clone());
                for (domain, product) in products {
                    query = query.bind(domain.to_string()).bind(product.to_string());
                }
                query.execute(&mut *tx).await?;
            }
            bump_governance_generation(&mut tx).await?;
        }
        tx.commit().await?;
        self.changed();
        Ok(())
    }

    /// The newest evaluations, newest first; of one target when given.
    pub async fn policy_evaluations(
        &self,
        target: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PolicyEvaluationRecord>> {
        let rows = match target {
            Some(t) => sqlx::query(
                "SELECT evaluation_id, target, trigger_kind, evaluated_at, evaluated_by, policies, blocking, warnings
                 FROM policy_evaluations WHERE target = $1 ORDER BY evaluated_at DESC LIMIT $2",
            )
            .bind(t.to_string())
            .bind(limit),
            None => sqlx::query(
                "SELECT evaluation_id, target, trigger_kind, evaluated_at, evaluated_by, policies, blocking, warnings
                 FROM policy_evaluations ORDER BY evaluated_at DESC LIMIT $1",
            )
            .bind(limit),
        }
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PolicyEvaluationRecord {
                    evaluation_id: r.try_get("evaluation_id")?,
                    target: r.try_get("target")?,
                    trigger: r.try_get("trigger_kind")?,
                    evaluated_at: r.try_get("evaluated_at")?,
                    evaluated_by: r.try_get("evaluated_by")?,
                    policies: r.try_get("policies")?,
                    blocking: r.try_get("blocking")?,
                    warnings: r.try_get("warnings")?,
                    outcomes: Vec::new(),
                    violations: Vec::new(),
                })
            })
            .collect()
    }

    /// The violations an evaluation found, in the order it found them.
    pub async fn policy_violations(
        &self,
        evaluation_id: &str,
    ) -> Result<Vec<PolicyViolationRecord>> {
        let rows = sqlx::query(
            "SELECT policy_id, severity, domain, product, object, message, file_name, line
             FROM policy_violations WHERE evaluation_id = $1 ORDER BY position",
        )
        .bind(evaluation_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PolicyViolationRecord {
                    policy_id: r.try_get("policy_id")?,
                    severity: r.try_get("severity")?,
                    domain: r.try_get("domain")?,
                    product: r.try_get("product")?,
                    object: r.try_get("object")?,
                    message: r.try_get("message")?,
                    file_name: r.try_get("file_name")?,
                    line: r.try_get("line")?,
                })
            })
            .collect()
    }

    /// How many policies each product passed in each evaluation that reflected the mesh,
    /// newest first: the compliance scorecard's history. `limit` bounds the points per product.
    pub async fn policy_history(
        &self,
        product: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<PolicyHistoryPoint>> {
        let select = |filter: &str| {
            format!(
                "SELECT o.domain, o.product, e.evaluated_at, e.trigger_kind, COUNT(*) AS policies,
                        SUM(CASE WHEN o.violations = 0 THEN 1 ELSE 0 END) AS passing
                 FROM policy_outcomes o JOIN policy_evaluations e ON e.evaluation_id = o.evaluation_id
                 WHERE e.reflects_mesh = 1{filter}
                 GROUP BY o.domain, o.product, e.evaluation_id, e.evaluated_at, e.trigger_kind
                 ORDER BY o.domain, o.product, e.evaluated_at DESC, e.evaluation_id DESC"
            )
        };
        let rows = match product {
            Some((d, p)) => sqlx::query(constant_sql(select(
                " AND o.domain = $1 AND o.product = $2",
            )))
            .bind(d.to_string())
            .bind(p.to_string()),
            None => sqlx::query(constant_sql(select(""))),
        }
        .fetch_all(&self.pool)
        .await?;
        let mut points: Vec<PolicyHistoryPoint> = Vec::new();
        let mut kept = 0;
        for r in &rows {
            let point = PolicyHistoryPoint {
                domain: r.try_get("domain")?,
                product: r.try_get("product")?,
                evaluated_at: r.try_get("evaluated_at")?,
                trigger: r.try_get("trigger_kind")?,
                policies: r.try_get("policies")?,
                passing: r.try_get("passing")?,
            };
            let same_product = points
                .last()
                .is_some_and(|p| (&p.domain, &p.product) == (&point.domain, &point.product));
            kept = if same_product { kept + 1 } else { 1 };
            if kept <= limit {
                points.push(point);
            }
        }
        Ok(points)
    }

    /// Where each product stands on each policy now (of one product when given).
    pub async fn policy_status(
        &self,
        product: Option<(&str, &str)>,
    ) -> Result<Vec<PolicyStatusRecord>> {
        let rows = match product {
            Some((d, p)) => sqlx::query(constant_sql(format!(
                "{STATUS_SELECT} WHERE domain = $1 AND product = $2 ORDER BY domain, product, policy_id"
            )))
            .bind(d.to_string())
            .bind(p.to_string()),
            None => sqlx::query(constant_sql(format!(
                "{STATUS_SELECT} ORDER BY domain, product, policy_id"
            ))),
        }
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PolicyStatusRecord {
                    domain: r.try_get("domain")?,
                    product: r.try_get("product")?,
                    policy_id: r.try_get("policy_id")?,
                    severity: r.try_get("severity")?,
                    violations: r.try_get("violations")?,
                    since: r.try_get("since")?,
                    evaluated_at: r.try_get("evaluated_at")?,
                    evaluation_id: r.try_get("evaluation_id")?,
                })
            })
            .collect()
    }
}
