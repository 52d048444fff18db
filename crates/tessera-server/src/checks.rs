//! Running a contract's checks over stored datasets: on demand (`tessera check`, the API),
//! later on a schedule and on every commit. Each run is kept, with per check the result, the
//! measured value, the threshold and failed-row samples, and the dataset's quality score.

use std::collections::HashMap;
use std::sync::Arc;

use tessera_catalog::{
    CheckResultRecord, CheckRunRecord, DatasetRecord, RunFilter, Triggers, store_time,
};
use tessera_core::{Severity, quality_score};
use tessera_quality::{CheckResult, Outcome, TableFacts, run_checks};

use async_trait::async_trait;
use tessera_core::RequestContext;

use crate::error::{Result, ServiceError};
use crate::governance::product_resource;
use crate::mesh::Mesh;
use crate::service::QualityService;
use crate::views::{
    CheckReport, CheckResultView, CheckRunView, DatasetQuality, ProductQualityPoint, QualitySummary,
};
use tessera_governance::{Action, Resource};

/// The trigger of the run that made a batch be refused (its results describe data that was
/// never committed).
pub const REFUSED_COMMIT: &str = "refused_commit";

/// The trigger of the run a commit records (its gate's checks only).
pub(crate) const COMMIT: &str = "commit";

/// The trigger of a run the server's scheduler started.
pub(crate) const SCHEDULE: &str = "schedule";

/// Runs that measured only part of the checks, or data that was never committed: they do not
/// make a quality score.
const PARTIAL: &[&str] = &[COMMIT, REFUSED_COMMIT];

#[async_trait]
impl QualityService for Mesh {
    /// Runs the checks of every dataset of `domain.product` (or only `dataset`) and stores
    /// each run. `trigger` says why: `on_demand`, `schedule` or `commit`.
    async fn check(
        &self,
        cx: &RequestContext,
        domain: &str,
        product: &str,
        dataset: Option<&str>,
        trigger: &str,
    ) -> Result<CheckReport> {
        let resource = product_resource(domain, product);
        if self.catalog.product(domain, product).await?.is_none() {
            return Err(ServiceError::NotFound(format!(
                "no product {domain}.{product}"
            )));
        }
        self.discoverable(cx, &resource, || format!("no product {domain}.{product}"))
            .await?;
        // Results carry failed-row samples: running and seeing checks is reading.
        self.authorize(cx, Action::Read, &resource).await?;
        let mut records = self.catalog.datasets(Some((domain, product))).await?;
        if let Some(name) = dataset {
            records.retain(|d| d.name == name);
            if records.is_empty() {
                return Err(ServiceError::NotFound(format!(
                    "no dataset {domain}.{product}.{name}"
                )));
            }
        }
        // A product's checks and `sql` rules run with the rights of its owner team.
        let owner = self.as_owner(cx, domain, product).await?;
        let mut runs = Vec::with_capacity(records.len());
        for record in &records {
            runs.push(self.check_dataset(&owner, record, trigger).await?);
        }
        let target = match dataset {
            Some(d) => format!("{domain}.{product}.{d}"),
            None => format!("{domain}.{product}"),
        };
        if !self.reads_every_row(cx, domain, product).await? {
            runs.iter_mut().for_each(without_samples);
        }
        Ok(report_of(target, runs))
    }

    /// The stored runs of a dataset, newest first, with their results.
    async fn check_history(
        &self,
        cx: &RequestContext,
        domain: &str,
        product: &str,
        dataset: &str,
        limit: i64,
    ) -> Result<Vec<CheckRunView>> {
        let resource = Resource::Dataset {
            domain: domain.to_string(),
            product: product.to_string(),
            dataset: dataset.to_string(),
        };
        self.discoverable(cx, &resource, || {
            format!("no dataset {domain}.{product}.{dataset}")
        })
        .await?;
        self.authorize(cx, Action::Read, &resource).await?;
        let mut runs = self
            .runs_with_results(RunFilter::dataset(domain, product, dataset, limit))
            .await?;
        if !self.reads_every_row(cx, domain, product).await? {
            runs.iter_mut().for_each(without_samples);
        }
        Ok(runs)
    }

    /// A product's quality over time, newest first: one point per full run of one of its
    /// datasets, with the product's score and result as of that run (over the latest full run
    /// of each dataset then).
    async fn product_quality_history(
        &self,
        cx: &RequestContext,
        domain: &str,
        product: &str,
        limit: i64,
    ) -> Result<Vec<ProductQualityPoint>> {
        // Scores are what consumers judge a product by: whoever discovers it sees them.
        if self.catalog.product(domain, product).await?.is_none()
            || !self.access_for(cx).await?.allowed(
                &cx.principal,
                Action::Discover,
                &product_resource(domain, product),
            )
        {
            return Err(ServiceError::NotFound(format!(
                "no product {domain}.{product}"
            )));
        }
        let mut runs = self
            .runs_with_results(
                RunFilter::product(domain, product, limit).triggers(Triggers::Except(PARTIAL)),
            )
            .await?;
        let Some(oldest) = runs.last().map(|r| r.started_at.clone()) else {
            return Ok(Vec::new());
        };
        // What each dataset looked like before the oldest point, then the points in order.
        let mut current: HashMap<String, CheckRunView> = self
            .latest_full_runs(domain, product, Some(&oldest))
            .await?
            .into_iter()
            .map(|r| (r.dataset.clone(), r))
            .collect();
        runs.reverse();
        let mut points = Vec::with_capacity(runs.len());
        for run in runs {
            let point = ProductQualityPoint {
                checked_at: run.finished_at.clone(),
                dataset: run.dataset.clone(),
                run_id: run.run_id.clone(),
                trigger: run.trigger.clone(),
                score: None,
                result: String::new(),
            };
            current.insert(run.dataset.clone(), run);
            let report = report_of(String::new(), current.values().cloned().collect());
            points.push(ProductQualityPoint {
                score: report.score,
                result: report.result,
                ..point
            });
        }
        points.reverse();
        Ok(points)
    }
}

impl Mesh {
    /// Runs one dataset's checks in a session of their own (one session per run, so each run
    /// has its own time limit and cancellation).
    async fn check_dataset(
        &self,
        cx: &RequestContext,
        record: &DatasetRecord,
        trigger: &str,
    ) -> Result<CheckRunView> {
        let contract = self
            .contract_model(
                &record.domain,
                &record.contract_id,
                &record.contract_version,
            )
            .await?;
        let schema = contract.dataset(&record.name).ok_or_else(|| {
            ServiceError::Internal(format!("dataset {} is not in its contract", record.name))
        })?;
        let checks = schema.checks(&contract.sla);
        let started = chrono::Utc::now();
        let table_version = self.storage.version(&record.location).await?;
        let facts = self.table_facts(record, started).await?;
        let table = format!("{}.{}.{}", record.domain, record.product, record.name);
        // The checks run on the query runtime under the query time limit. When they cannot run
        // at all (the table is unreadable, the time is up), every check is recorded as an error
        // with the reason: a scheduled or on-demand run always leaves its result.
        let ctx = self.session(cx).await?;
        let measured = {
            let (table, schema, checks) = (table.clone(), schema.clone(), checks.clone());
            let session = ctx.clone();
            self.engine()
                .run(&session, async move {
                    Ok(run_checks(&ctx, &table, &schema, &checks, &facts)
                        .await
                        .map_err(|e| e.to_string()))
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r)
        };
        let results = measured.unwrap_or_else(|reason| {
            tracing::warn!(%table, %reason, "checks could not run");
            checks
                .iter()
                .map(|check| tessera_quality::verdict(check, Err(reason.clone()), 0.0))
                .collect()
        });
        self.store_run(record, trigger, started, &results, table_version)
            .await
    }

    /// "Now" and the time of the dataset's last batch, for freshness.
    pub(crate) async fn table_facts(
        &self,
        record: &DatasetRecord,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<TableFacts> {
        let last_commit = self
            .catalog
            .last_batch_at(&record.domain, &record.product, &record.name)
            .await?
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.timestamp_micros() as f64 / 1e6);
        Ok(TableFacts {
            now_seconds: now.timestamp_micros() as f64 / 1e6,
            last_commit_seconds: last_commit,
            typed: true,
        })
    }

    /// What a reader of `datasets` should know of their quality: one line for each whose
    /// latest check run has failing blocking checks (a query still answers; its front end says
    /// so: a header over HTTP, a NOTICE over PostgreSQL). Read again only after a check run was
    /// stored; a store that cannot say is logged and says nothing.
    pub(crate) async fn failing_check_warnings(
        &self,
        datasets: &[tessera_core::DatasetRef],
    ) -> Vec<String> {
        if datasets.is_empty() {
            return Vec::new();
        }
        let failing = match self.failing_checks().await {
            Ok(failing) => failing,
            Err(e) => {
                tracing::warn!(error = %e, "the failing checks could not be read");
                return Vec::new();
            }
        };
        let mut warnings: Vec<String> = datasets
            .iter()
            .filter_map(|d| failing.get(&d.to_string()).cloned())
            .collect();
        warnings.dedup();
        warnings
    }

    async fn failing_checks(&self) -> Result<Arc<HashMap<String, String>>> {
        let generation = self.catalog.generations().await?.quality;
        let mut cached = self.failing_checks.lock().await;
        if let Some((g, failing)) = cached.as_ref()
            && *g == generation
        {
            return Ok(failing.clone());
        }
        let mut by_dataset: std::collections::BTreeMap<String, (String, Vec<String>)> =
            Default::default();
        for (domain, product, dataset, started_at, check) in
            self.catalog.failing_blocking_checks().await?
        {
            by_dataset
                .entry(format!("{domain}.{product}.{dataset}"))
                .or_insert_with(|| (started_at, Vec::new()))
                .1
                .push(check);
        }
        let failing: HashMap<String, String> = by_dataset
            .into_iter()
            .map(|(dataset, (at, checks))| {
                let line = format!(
                    "{dataset}: blocking checks fail in its latest check run ({at}): {}",
                    checks.join("; ")
                );
                (dataset, line)
            })
            .collect();
        let failing = Arc::new(failing);
        *cached = Some((generation, failing.clone()));
        Ok(failing)
    }

    /// Keeps a run: its results, its worst outcome and its score.
    pub(crate) async fn store_run(
        &self,
        record: &DatasetRecord,
        trigger: &str,
        started: chrono::DateTime<chrono::Utc>,
        results: &[CheckResult],
        table_version: Option<i64>,
    ) -> Result<CheckRunView> {
        let run = CheckRunRecord {
            run_id: uuid::Uuid::new_v4().to_string(),
            domain: record.domain.clone(),
            product: record.product.clone(),
            dataset: record.name.clone(),
            contract_id: record.contract_id.clone(),
            contract_version: record.contract_version.clone(),
            trigger: trigger.to_string(),
            started_at: store_time(started),
            finished_at: store_time(chrono::Utc::now()),
            result: worst(results).as_str().to_string(),
            score: score(results),
            table_version,
        };
        let rows = result_records(results);
        self.catalog.record_check_run(&run, &rows).await?;
        Ok(run_view(run, rows))
    }

    async fn runs_with_results(&self, filter: RunFilter<'_>) -> Result<Vec<CheckRunView>> {
        let mut out = Vec::new();
        for run in self.catalog.check_runs(filter).await? {
            let results = self.catalog.check_results(&run.run_id).await?;
            out.push(run_view(run, results));
        }
        Ok(out)
    }

    /// The latest full run (on demand or scheduled) of each dataset of a product.
    async fn latest_full_runs(
        &self,
        domain: &str,
        product: &str,
        before: Option<&str>,
    ) -> Result<Vec<CheckRunView>> {
        let mut latest = Vec::new();
        for d in self.catalog.datasets(Some((domain, product))).await? {
            let mut filter =
                RunFilter::dataset(domain, product, &d.name, 1).triggers(Triggers::Except(PARTIAL));
            if let Some(before) = before {
                filter = filter.before(before);
            }
            latest.extend(self.runs_with_results(filter).await?);
        }
        Ok(latest)
    }
}

impl Mesh {
    /// The quality of a product as of the latest full check run of each of its datasets.
    pub(crate) async fn quality_summary(
        &self,
        domain: &str,
        product: &str,
    ) -> Result<QualitySummary> {
        let latest = self.latest_full_runs(domain, product, None).await?;
        let summary = report_of(format!("{domain}.{product}"), latest);
        Ok(QualitySummary {
            score: summary.score,
            result: (!summary.runs.is_empty()).then_some(summary.result),
            datasets: summary
                .runs
                .into_iter()
                .map(|run| DatasetQuality {
                    not_passed: run
                        .checks
                        .iter()
                        .filter(|c| c.result != "passed")
                        .map(|c| match &c.field {
                            Some(f) => format!("{} {f}", c.check_type),
                            None => c.check_type.clone(),
                        })
                        .collect(),
                    dataset: run.dataset,
                    score: run.score,
                    result: run.result,
                    checked_at: run.finished_at,
                })
                .collect(),
        })
    }
}

fn worst(results: &[CheckResult]) -> Outcome {
    results
        .iter()
        .map(|r| r.outcome)
        .max()
        .unwrap_or(Outcome::Passed)
}

fn score(results: &[CheckResult]) -> Option<f64> {
    quality_score(
        results
            .iter()
            .map(|r| (r.check.severity, r.outcome == Outcome::Passed)),
    )
}

fn run_view(run: CheckRunRecord, results: Vec<CheckResultRecord>) -> CheckRunView {
    CheckRunView {
        dataset: format!("{}.{}.{}", run.domain, run.product, run.dataset),
        run_id: run.run_id,
        contract_id: run.contract_id,
        contract_version: run.contract_version,
        trigger: run.trigger,
        started_at: run.started_at,
        finished_at: run.finished_at,
        result: run.result,
        score: run.score,
        table_version: run.table_version,
        checks: results.into_iter().map(result_view).collect(),
    }
}

/// A run as shown to a reader whose row filter would not show the failing rows: without them.
fn without_samples(run: &mut CheckRunView) {
    for check in &mut run.checks {
        check.samples.clear();
    }
}

impl Mesh {
    /// Whether the request's principal reads every row of every dataset of the product (no row
    /// filter): only then may it see failed-row samples, which the checks take as the owner
    /// team (they never hold personal-data columns).
    async fn reads_every_row(
        &self,
        cx: &RequestContext,
        domain: &str,
        product: &str,
    ) -> Result<bool> {
        let view = self.snapshot_for(cx).await?;
        Ok(view
            .tables
            .iter()
            .filter(|t| {
                t.reference.domain.as_str() == domain && t.reference.product.as_str() == product
            })
            .filter(|t| {
                !t.reference
                    .dataset
                    .as_str()
                    .ends_with(tessera_core::QUARANTINE_SUFFIX)
            })
            .all(|t| {
                t.access != tessera_query::TableAccess::DiscoverOnly && t.row_filter.is_none()
            }))
    }
}

/// Per check, what is stored of a run's results.
fn result_records(results: &[CheckResult]) -> Vec<CheckResultRecord> {
    results
        .iter()
        .enumerate()
        .map(|(i, r)| CheckResultRecord {
            position: i as i64,
            check_key: r.check.key(),
            check_type: r.check.check_type.to_string(),
            name: r.check.name.clone(),
            model: r.check.model.clone(),
            field: r.check.field.clone(),
            dimension: r.check.dimension.clone(),
            severity: r.check.severity.as_str().to_string(),
            quality_id: r.check.quality_id.clone(),
            result: r.outcome.as_str().to_string(),
            measured: r.measured,
            threshold: r.threshold.clone(),
            reason: r.reason.clone(),
            samples: serde_json::Value::from(r.samples.clone()).to_string(),
        })
        .collect()
}

fn result_view(r: CheckResultRecord) -> CheckResultView {
    CheckResultView {
        check_type: r.check_type,
        name: r.name,
        model: r.model,
        field: r.field,
        dimension: r.dimension,
        severity: r.severity,
        quality_id: r.quality_id,
        result: r.result,
        measured: r.measured,
        threshold: r.threshold,
        reason: r.reason,
        samples: serde_json::from_str(&r.samples).unwrap_or_default(),
    }
}

/// A product's report: the worst result of its runs, and the score over all their checks.
pub(crate) fn report_of(target: String, runs: Vec<CheckRunView>) -> CheckReport {
    let order = |r: &str| match r {
        "passed" => 0,
        "warning" => 1,
        "failed" => 2,
        _ => 3,
    };
    let result = runs
        .iter()
        .map(|r| r.result.as_str())
        .max_by_key(|r| order(r))
        .unwrap_or("passed")
        .to_string();
    let score = quality_score(runs.iter().flat_map(|run| {
        run.checks
            .iter()
            .map(|c| (Severity::parse(Some(&c.severity)), c.result == "passed"))
    }));
    CheckReport {
        target,
        result,
        score,
        runs,
    }
}

/// A run that is not stored (`tessera test` over local files): `dataset` is the schema object.
pub(crate) fn unstored_run(
    dataset: &str,
    contract: &tessera_core::Contract,
    started: chrono::DateTime<chrono::Utc>,
    results: &[CheckResult],
) -> CheckRunView {
    CheckRunView {
        run_id: uuid::Uuid::new_v4().to_string(),
        dataset: dataset.to_string(),
        contract_id: contract.id.clone(),
        contract_version: contract.version.clone(),
        trigger: "test".into(),
        started_at: store_time(started),
        finished_at: store_time(chrono::Utc::now()),
        result: worst(results).as_str().to_string(),
        score: score(results),
        table_version: None,
        checks: result_records(results)
            .into_iter()
            .map(result_view)
            .collect(),
    }
}

/// A warning as a header value (HTTP's `Tessera-Quality-Warning`, Flight SQL's metadata):
/// header values are visible ASCII, so anything else in a check's name is replaced by `?`.
pub(crate) fn header_text(warning: &str) -> String {
    warning
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}
