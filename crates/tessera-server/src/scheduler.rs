//! Periodic checks: each dataset whose contract has a check schedule (a cron expression, see
//! `Contract::check_schedule`) gets its checks run when the schedule says, by a task of the
//! server that wakes up every `tick`. A run is due when the schedule has fired since the last
//! scheduled run (or since the dataset was published). Runs are stored with trigger `schedule`.
//!
//! With several server instances on one metadata store, each runs the schedule; a run is then
//! repeated, never lost.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tessera_catalog::{RunFilter, Triggers};
use tessera_spec::parse_schedule;

use tessera_core::{FrontEnd, RequestContext};

use crate::checks::SCHEDULE;
use crate::mesh::Mesh;
use crate::service::QualityService;

/// Runs scheduled checks until the task is aborted.
pub(crate) async fn run(mesh: Arc<Mesh>, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(e) = run_due(&mesh).await {
            tracing::warn!(error = %e, "scheduled checks");
        }
    }
}

async fn run_due(mesh: &Mesh) -> crate::Result<()> {
    let now = Utc::now();
    for record in mesh.catalog.datasets(None).await? {
        let contract = mesh
            .contract_model(
                &record.domain,
                &record.contract_id,
                &record.contract_version,
            )
            .await?;
        let Some(expression) = &contract.check_schedule else {
            continue;
        };
        let Ok(schedule) = parse_schedule(expression) else {
            continue;
        };
        let last_scheduled = RunFilter::dataset(&record.domain, &record.product, &record.name, 1)
            .triggers(Triggers::Only(&[SCHEDULE]));
        let since = match mesh.catalog.check_runs(last_scheduled).await?.pop() {
            Some(run) => run.started_at,
            None => record.updated_at.clone(),
        };
        let Ok(since) = DateTime::parse_from_rfc3339(&since) else {
            continue;
        };
        let due = schedule
            .after(&since.with_timezone(&Utc))
            .next()
            .is_some_and(|fire| fire <= now);
        if due {
            // As the scheduler; the checks themselves run as the product's owner team.
            let cx = RequestContext::system(
                "scheduler",
                uuid::Uuid::new_v4().to_string(),
                FrontEnd::Scheduler,
            );
            let report = mesh
                .check(
                    &cx,
                    &record.domain,
                    &record.product,
                    Some(&record.name),
                    SCHEDULE,
                )
                .await?;
            tracing::info!(target = %report.target, result = %report.result, "scheduled checks ran");
        }
    }
    Ok(())
}
