//! The compliance scorecard: where each product a caller may discover stands on each policy
//! (the stored standings of the newest evaluation of the mesh as it is), since when, summed
//! per product, per domain and over everything shown, with each product's history; and its
//! CSV form, one row per standing.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};

use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;
use crate::views::{
    CompliancePoint, ComplianceShare, DomainCompliance, PolicyStanding, ProductCompliance,
    ScorecardView,
};
use tessera_core::{PolicySeverity, RequestContext};

/// Points of history per product when the request does not say.
pub(crate) const DEFAULT_HISTORY: usize = 10;

/// `DOMAIN` or `DOMAIN.PRODUCT` as (domain, product) filters; everything for `None`.
pub(crate) fn target_filter(target: Option<&str>) -> (Option<String>, Option<String>) {
    match target {
        None => (None, None),
        Some(t) => match t.split_once('.') {
            Some((d, p)) => (Some(d.to_string()), Some(p.to_string())),
            None => (Some(t.to_string()), None),
        },
    }
}

fn percent(passing: usize, of: usize) -> Option<f64> {
    (of > 0).then(|| 100.0 * passing as f64 / of as f64)
}

impl ComplianceShare {
    fn add(&mut self, p: &ProductCompliance) {
        self.products += 1;
        self.compliant += usize::from(p.compliant);
        self.standings += p.policies;
        self.passing += p.passing;
        self.share_passing = percent(self.passing, self.standings);
    }
}

impl Mesh {
    /// The (domain, product) pairs of `products` that `target` (`DOMAIN`, `DOMAIN.PRODUCT`, or
    /// everything) names and `cx` may discover; none for a target is a 404.
    pub(crate) async fn discoverable_targets(
        &self,
        cx: &RequestContext,
        target: Option<&str>,
        products: impl Iterator<Item = (String, String)>,
    ) -> Result<Vec<(String, String)>> {
        let (domain, product) = target_filter(target);
        let access = self.access_for(cx).await?;
        let targets: Vec<(String, String)> = products
            .filter(|(d, p)| {
                domain.as_ref().is_none_or(|x| x == d) && product.as_ref().is_none_or(|x| x == p)
            })
            .filter(|(d, p)| {
                access.allowed(
                    &cx.principal,
                    tessera_governance::Action::Discover,
                    &crate::governance::product_resource(d, p),
                )
            })
            .collect();
        if let Some(target) = target
            && targets.is_empty()
        {
            return Err(ServiceError::NotFound(format!(
                "no product {target}: write DOMAIN or DOMAIN.PRODUCT of a published product"
            )));
        }
        Ok(targets)
    }

    /// The scorecard of `target` (or of every product), as `cx` may discover it.
    pub(crate) async fn scorecard_for(
        &self,
        cx: &RequestContext,
        target: Option<&str>,
        history: usize,
    ) -> Result<ScorecardView> {
        let (domain, product) = target_filter(target);
        let published = self
            .catalog
            .products(domain.as_deref())
            .await?
            .into_iter()
            .map(|r| (r.domain, r.name));
        let products = self.discoverable_targets(cx, target, published).await?;
        let one = match (&domain, &product) {
            (Some(d), Some(p)) => Some((d.as_str(), p.as_str())),
            _ => None,
        };
        let mut standings: BTreeMap<(String, String), Vec<PolicyStanding>> = BTreeMap::new();
        let mut evaluated: BTreeMap<(String, String), String> = BTreeMap::new();
        for s in self.catalog.policy_status(one).await? {
            let key = (s.domain.clone(), s.product.clone());
            let newest = evaluated.entry(key.clone()).or_default();
            if s.evaluated_at > *newest {
                *newest = s.evaluated_at.clone();
            }
            standings.entry(key).or_default().push(PolicyStanding {
                passing: s.violations == 0,
                policy_id: s.policy_id,
                severity: s.severity,
                violations: s.violations,
                since: s.since,
            });
        }
        let mut points: BTreeMap<(String, String), Vec<CompliancePoint>> = BTreeMap::new();
        if history > 0 {
            for h in self.catalog.policy_history(one, history).await? {
                points
                    .entry((h.domain, h.product))
                    .or_default()
                    .push(CompliancePoint {
                        share_passing: percent(h.passing as usize, h.policies as usize),
                        evaluated_at: h.evaluated_at,
                        trigger: h.trigger,
                        policies: h.policies,
                        passing: h.passing,
                    });
            }
        }

        let mut view = ScorecardView {
            total: ComplianceShare::default(),
            domains: Vec::new(),
            products: Vec::new(),
        };
        for key in products {
            let standings = standings.remove(&key).unwrap_or_default();
            let passing = standings.iter().filter(|s| s.passing).count();
            let compliant = !standings
                .iter()
                .any(|s| !s.passing && s.severity == PolicySeverity::Block.as_str());
            let p = ProductCompliance {
                compliant,
                policies: standings.len(),
                passing,
                share_passing: percent(passing, standings.len()),
                evaluated_at: evaluated.remove(&key),
                standings,
                history: points.remove(&key).unwrap_or_default(),
                domain: key.0,
                product: key.1,
            };
            view.total.add(&p);
            match view.domains.last_mut() {
                Some(d) if d.domain == p.domain => d.share.add(&p),
                _ => {
                    let mut share = ComplianceShare::default();
                    share.add(&p);
                    view.domains.push(DomainCompliance {
                        domain: p.domain.clone(),
                        share,
                    });
                }
            }
            view.products.push(p);
        }
        Ok(view)
    }
}

/// The scorecard as CSV: one row per (product, policy) standing, with a header.
pub fn scorecard_csv(view: &ScorecardView) -> Result<String> {
    let rows: Vec<(&ProductCompliance, &PolicyStanding)> = view
        .products
        .iter()
        .flat_map(|p| p.standings.iter().map(move |s| (p, s)))
        .collect();
    let text = |f: &dyn Fn(&(&ProductCompliance, &PolicyStanding)) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let batch = RecordBatch::try_from_iter([
        ("domain", text(&|(p, _)| p.domain.clone())),
        ("product", text(&|(p, _)| p.product.clone())),
        ("policy_id", text(&|(_, s)| s.policy_id.clone())),
        ("severity", text(&|(_, s)| s.severity.clone())),
        (
            "passing",
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|(_, s)| Some(s.passing)),
            )) as ArrayRef,
        ),
        (
            "violations",
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|(_, s)| s.violations),
            )),
        ),
        ("since", text(&|(_, s)| s.since.clone())),
        (
            "evaluated_at",
            text(&|(p, _)| p.evaluated_at.clone().unwrap_or_default()),
        ),
    ])
    .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let mut out = Vec::new();
    arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(&mut out)
        .write(&batch)
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    String::from_utf8(out).map_err(|e| ServiceError::Internal(e.to_string()))
}
