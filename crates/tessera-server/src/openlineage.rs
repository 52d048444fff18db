//! OpenLineage 2-0-2 run events for what Tessera runs: a transform run, a source's pull, a
//! batch ingested and a commit of the event API each emit START when they begin and COMPLETE or
//! FAIL when they end, with their inputs and output, the output's schema, column lineage (a
//! transform's, from the query's plan), data source, row count and the commit gate's
//! assertions, and the error of a failed run. A commit the gate refused is a FAIL: its rows went
//! to the quarantine, not the dataset.
//!
//! Every event is kept in the metadata store (`lineage_events`, an outbox) and, with
//! `--openlineage-url`, sent there by a background task (Marquez's `POST /api/v1/lineage`),
//! oldest first, retried with backoff: a commit never waits for it.
//!
//! Datasets are named `domain.product.dataset` in the namespace `tessera://<mesh>` (the
//! configured namespace); jobs `transform.domain.product.dataset`,
//! `ingest.domain.product.dataset`, `events.domain.product.dataset` and
//! `source.domain.product.source` in the same namespace. What a source reads is named as
//! OpenLineage names it (`postgres://host:port` and `db.schema.table`, `kafka://broker` and the
//! topic, `file` and a folder, `s3://bucket` and a prefix).
//!
//! Events older than the retention are deleted once delivered (or at once without an
//! endpoint), by [`prune`] every hour.

use std::time::Duration;

use serde_json::{Map, Value, json};
use tessera_catalog::{DatasetRecord, LineageEventRecord};
use tessera_core::{DatasetSchema, QueryLineage};
use tessera_quality::{CheckResult, Outcome};

use crate::mesh::Mesh;

const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
/// Who made the events: this version of Tessera.
const PRODUCER: &str = concat!(
    "https://github.com/tessera-mesh/tessera/tree/v",
    env!("CARGO_PKG_VERSION")
);

/// A facet's required fields, with the version of its schema the facet follows.
fn facet(name: &str, version: &str, body: Value) -> Value {
    let mut facet = Map::new();
    facet.insert("_producer".into(), PRODUCER.into());
    facet.insert(
        "_schemaURL".into(),
        format!("https://openlineage.io/spec/facets/{version}/{name}.json#/$defs/{name}").into(),
    );
    if let Value::Object(body) = body {
        facet.extend(body);
    }
    Value::Object(facet)
}

/// Where OpenLineage events go and what they call Tessera's datasets.
#[derive(Debug, Clone)]
pub struct OpenLineageConfig {
    /// The endpoint events are POSTed to (e.g. `http://marquez:5000/api/v1/lineage`); none:
    /// they are only kept.
    pub url: Option<String>,
    /// The namespace of Tessera's datasets and jobs.
    pub namespace: String,
    /// How often the delivery task looks for events to send.
    pub tick: Duration,
    /// How long events are kept once delivered (without an endpoint: once emitted).
    pub retention: Duration,
}

impl Default for OpenLineageConfig {
    fn default() -> Self {
        Self {
            url: None,
            namespace: "tessera://local".into(),
            tick: Duration::from_secs(1),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// A dataset as an event names it, with what is known of it.
pub(crate) struct EventDataset<'a> {
    /// Outside the mesh (what a source reads): its namespace; `None`: the mesh's.
    pub namespace: Option<String>,
    pub name: String,
    pub schema: Option<&'a DatasetSchema>,
}

impl<'a> EventDataset<'a> {
    /// One of the mesh's datasets.
    pub fn mesh(name: impl Into<String>, schema: Option<&'a DatasetSchema>) -> Self {
        Self {
            namespace: None,
            name: name.into(),
            schema,
        }
    }
}

/// The job a run belongs to.
#[derive(Debug, Clone)]
pub(crate) struct EventJob {
    /// `transform.d.p.x`, `ingest.d.p.x`, `events.d.p.x`, `source.d.p.name`.
    pub name: String,
    /// The job type facet's `jobType`: TRANSFORM, INGEST, EVENTS or SOURCE.
    pub job_type: &'static str,
    /// Streaming (the event API) rather than batch.
    pub streaming: bool,
    /// The SQL a transform runs.
    pub sql: Option<String>,
}

impl EventJob {
    pub fn transform(dataset: &impl std::fmt::Display, sql: &str) -> Self {
        Self {
            name: format!("transform.{dataset}"),
            job_type: "TRANSFORM",
            streaming: false,
            sql: Some(sql.to_string()),
        }
    }

    /// Batches posted to a dataset.
    pub fn ingest(dataset: &impl std::fmt::Display) -> Self {
        Self {
            name: format!("ingest.{dataset}"),
            job_type: "INGEST",
            streaming: false,
            sql: None,
        }
    }

    /// The event API's commits into a dataset.
    pub fn events(dataset: &impl std::fmt::Display) -> Self {
        Self {
            name: format!("events.{dataset}"),
            job_type: "EVENTS",
            streaming: true,
            sql: None,
        }
    }

    /// A source's pulls.
    pub fn source(domain: &str, product: &str, source: &str) -> Self {
        Self {
            name: format!("source.{domain}.{product}.{source}"),
            job_type: "SOURCE",
            streaming: false,
            sql: None,
        }
    }
}

/// A commit's run, described once it is done: the caller's job, with what it read.
#[derive(Debug, Clone)]
pub(crate) struct CommitRun {
    pub job: EventJob,
    /// Datasets outside the mesh it read: `(namespace, name)`.
    pub inputs: Vec<(String, String)>,
    pub started: chrono::DateTime<chrono::Utc>,
}

/// What a run's end adds to its output dataset.
#[derive(Default)]
pub(crate) struct RunEnd<'a> {
    pub lineage: Option<&'a QueryLineage>,
    /// The table's URL (its data source).
    pub location: Option<String>,
    pub rows: Option<i64>,
    pub assertions: &'a [CheckResult],
    pub error: Option<&'a str>,
}

fn schema_facet(schema: &DatasetSchema) -> Value {
    let fields: Vec<Value> = schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut field = json!({
                "name": c.name,
                "type": c.logical_type.map(|t| t.as_str().to_string())
                    .or_else(|| c.physical_type.clone())
                    .unwrap_or_else(|| "string".into()),
                "ordinal_position": i + 1,
            });
            if let Some(d) = &c.description {
                field["description"] = d.clone().into();
            }
            field
        })
        .collect();
    facet("SchemaDatasetFacet", "1-2-0", json!({ "fields": fields }))
}

impl OpenLineageConfig {
    fn input_field(
        &self,
        column: &tessera_core::ColumnRef,
        how: &[tessera_core::Derivation],
    ) -> Value {
        json!({
            "namespace": self.namespace,
            "name": column.dataset,
            "field": column.column,
            "transformations": how.iter().map(|d| json!({
                "type": d.kind(),
                "subtype": d.subtype(),
            })).collect::<Vec<_>>(),
        })
    }

    fn column_lineage_facet(&self, lineage: &QueryLineage) -> Value {
        let mut fields = Map::new();
        for (column, sources) in &lineage.columns {
            let inputs: Vec<Value> = sources
                .iter()
                .map(|(c, how)| self.input_field(c, &how.iter().copied().collect::<Vec<_>>()))
                .collect();
            fields.insert(column.clone(), json!({ "inputFields": inputs }));
        }
        let dataset: Vec<Value> = lineage
            .rows
            .iter()
            .map(|(c, how)| self.input_field(c, &how.iter().copied().collect::<Vec<_>>()))
            .collect();
        facet(
            "ColumnLineageDatasetFacet",
            "1-2-0",
            json!({ "fields": fields, "dataset": dataset }),
        )
    }

    fn dataset(&self, d: &EventDataset<'_>) -> Value {
        let mut facets = Map::new();
        if let Some(schema) = d.schema {
            facets.insert("schema".into(), schema_facet(schema));
        }
        let namespace = d.namespace.as_deref().unwrap_or(&self.namespace);
        json!({ "namespace": namespace, "name": d.name, "facets": facets })
    }

    /// A run event of `job` writing `output` from `inputs`; `end` for COMPLETE and FAIL.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run_event(
        &self,
        event_type: &str,
        event_time: chrono::DateTime<chrono::Utc>,
        run_id: &str,
        job: &EventJob,
        inputs: &[EventDataset<'_>],
        output: &EventDataset<'_>,
        end: Option<&RunEnd<'_>>,
    ) -> Value {
        let mut out = self.dataset(output);
        let mut run_facets = Map::new();
        if let Some(end) = end {
            let facets = out["facets"].as_object_mut().expect("facets are an object");
            if let Some(lineage) = end.lineage {
                facets.insert("columnLineage".into(), self.column_lineage_facet(lineage));
            }
            if let Some(uri) = &end.location {
                facets.insert(
                    "dataSource".into(),
                    facet(
                        "DatasourceDatasetFacet",
                        "1-0-1",
                        json!({ "name": self.namespace, "uri": uri }),
                    ),
                );
            }
            if let Some(rows) = end.rows {
                facets.insert(
                    "dataQualityMetrics".into(),
                    facet(
                        "DataQualityMetricsDatasetFacet",
                        "1-0-0",
                        json!({ "rowCount": rows, "columnMetrics": {} }),
                    ),
                );
            }
            if !end.assertions.is_empty() {
                let assertions: Vec<Value> = end
                    .assertions
                    .iter()
                    .map(|r| {
                        let mut a = json!({
                            "assertion": r.check.check_type,
                            "name": r.check.name,
                            "success": r.outcome == Outcome::Passed,
                            "severity": if r.check.gates_commits() { "error" } else { "warn" },
                            "expected": r.threshold,
                            "actual": r.measured.map(|m| m.to_string()).unwrap_or_default(),
                            "description": r.reason,
                        });
                        if let Some(column) = &r.check.field {
                            a["column"] = column.clone().into();
                        }
                        a
                    })
                    .collect();
                facets.insert(
                    "dataQualityAssertions".into(),
                    facet(
                        "DataQualityAssertionsDatasetFacet",
                        "1-1-0",
                        json!({ "assertions": assertions }),
                    ),
                );
            }
            if let Some(error) = end.error {
                run_facets.insert(
                    "errorMessage".into(),
                    facet(
                        "ErrorMessageRunFacet",
                        "1-0-1",
                        json!({ "message": error, "programmingLanguage": "SQL" }),
                    ),
                );
            }
        }
        let mut job_facets = Map::new();
        if let Some(sql) = &job.sql {
            job_facets.insert(
                "sql".into(),
                facet(
                    "SQLJobFacet",
                    "1-1-0",
                    json!({ "query": sql, "dialect": "datafusion" }),
                ),
            );
        }
        job_facets.insert(
            "jobType".into(),
            facet(
                "JobTypeJobFacet",
                "2-0-4",
                json!({
                    "processingType": if job.streaming { "STREAMING" } else { "BATCH" },
                    "integration": "TESSERA",
                    "jobType": job.job_type,
                }),
            ),
        );
        json!({
            "eventType": event_type,
            "eventTime": event_time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "producer": PRODUCER,
            "schemaURL": SCHEMA_URL,
            "run": { "runId": run_id, "facets": run_facets },
            "job": { "namespace": self.namespace, "name": job.name, "facets": job_facets },
            "inputs": inputs.iter().map(|i| self.dataset(i)).collect::<Vec<_>>(),
            "outputs": [out],
        })
    }
}

impl Mesh {
    /// Emits a commit's run, START (at when it started) and COMPLETE, or FAIL with `error`:
    /// `rows` committed into `record`'s dataset, the gate's `assertions` on them.
    pub(crate) async fn emit_commit_run(
        &self,
        run: &CommitRun,
        record: &DatasetRecord,
        rows: Option<i64>,
        assertions: &[CheckResult],
        error: Option<&str>,
    ) {
        let schema = self.dataset_schema(record).await.ok();
        let output = EventDataset::mesh(
            format!("{}.{}.{}", record.domain, record.product, record.name),
            schema.as_ref(),
        );
        let location = self
            .storage
            .table_url(&record.location)
            .ok()
            .map(|u| u.to_string());
        let end = RunEnd {
            lineage: None,
            location,
            rows,
            assertions,
            error,
        };
        self.emit_run(run, &output, &end).await;
    }

    /// Emits a run that has ended, START (at `run.started`) and COMPLETE or FAIL, writing
    /// `output`.
    pub(crate) async fn emit_run(
        &self,
        run: &CommitRun,
        output: &EventDataset<'_>,
        end: &RunEnd<'_>,
    ) {
        let run_id = uuid::Uuid::new_v4().to_string();
        let inputs: Vec<EventDataset<'_>> = run
            .inputs
            .iter()
            .map(|(namespace, name)| EventDataset {
                namespace: Some(namespace.clone()),
                name: name.clone(),
                schema: None,
            })
            .collect();
        self.emit_lineage(self.openlineage.run_event(
            "START",
            run.started,
            &run_id,
            &run.job,
            &inputs,
            output,
            None,
        ))
        .await;
        self.emit_lineage(self.openlineage.run_event(
            if end.error.is_none() {
                "COMPLETE"
            } else {
                "FAIL"
            },
            chrono::Utc::now(),
            &run_id,
            &run.job,
            &inputs,
            output,
            Some(end),
        ))
        .await;
    }

    /// Keeps an event in the store's outbox (the delivery task sends it on). An event that
    /// cannot be kept is logged, never an error of the run it describes.
    pub(crate) async fn emit_lineage(&self, event: Value) {
        let record = LineageEventRecord {
            event_id: uuid::Uuid::new_v4().to_string(),
            run_id: event["run"]["runId"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            event_type: event["eventType"].as_str().unwrap_or_default().to_string(),
            job: format!(
                "{}/{}",
                event["job"]["namespace"].as_str().unwrap_or_default(),
                event["job"]["name"].as_str().unwrap_or_default()
            ),
            event_time: event["eventTime"].as_str().unwrap_or_default().to_string(),
            body: event.to_string(),
            created_at: tessera_catalog::store_time(chrono::Utc::now()),
            ..Default::default()
        };
        if let Err(e) = self.catalog.record_lineage_event(&record).await {
            tracing::warn!(error = %e, "an OpenLineage event was not kept");
        }
    }
}

/// How often kept events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Deletes the kept events older than the retention every hour, until the task is aborted:
/// delivered ones, or all of them when no endpoint is configured (events that wait for an
/// endpoint that is down are kept until it takes them).
pub(crate) async fn prune(mesh: std::sync::Arc<Mesh>) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = mesh.prune_lineage_events(chrono::Utc::now()).await {
            tracing::warn!(error = %e, "pruning the kept OpenLineage events");
        }
    }
}

impl Mesh {
    /// Deletes the kept events that are older than the retention at `now` (and delivered, when
    /// an endpoint is configured); how many went.
    pub async fn prune_lineage_events(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::error::Result<u64> {
        let retention =
            chrono::Duration::from_std(self.openlineage.retention).unwrap_or(chrono::Duration::MAX);
        let before = tessera_catalog::store_time(now - retention);
        let pruned = self
            .catalog
            .prune_lineage_events(&before, self.openlineage.url.is_none())
            .await?;
        if pruned > 0 {
            tracing::info!(pruned, "old OpenLineage events deleted");
        }
        Ok(pruned)
    }
}

/// The longest the delivery task waits between tries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Sends the kept events to `url`, oldest first, until the task is aborted: an event the
/// endpoint refuses or that cannot reach it is tried again (waiting longer after each failure),
/// and the ones after it wait, so the endpoint sees a run's events in order.
pub(crate) async fn deliver(mesh: std::sync::Arc<Mesh>, url: String, tick: Duration) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let mut failures = 0u32;
    loop {
        let wait = if failures == 0 {
            tick
        } else {
            (tick * 2u32.saturating_pow(failures.min(10))).min(MAX_BACKOFF)
        };
        tokio::time::sleep(wait).await;
        let events = match mesh.catalog.undelivered_lineage_events(100).await {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(error = %e, "reading the OpenLineage events to send");
                failures += 1;
                continue;
            }
        };
        failures = 0;
        for event in events {
            let sent = http
                .post(&url)
                .header("content-type", "application/json")
                .body(event.body.clone())
                .send()
                .await;
            let delivered = match sent {
                Ok(r) if r.status().is_success() => true,
                Ok(r) => {
                    tracing::warn!(status = %r.status(), url, "the OpenLineage endpoint refused an event; it is tried again");
                    false
                }
                Err(e) => {
                    tracing::warn!(error = %e, url, "the OpenLineage endpoint could not be reached; events wait");
                    false
                }
            };
            let at = delivered.then(|| tessera_catalog::store_time(chrono::Utc::now()));
            if let Err(e) = mesh
                .catalog
                .lineage_event_tried(&event.event_id, at.as_deref())
                .await
            {
                tracing::warn!(error = %e, "an OpenLineage event's delivery was not recorded");
            }
            if !delivered {
                failures += 1;
                break;
            }
        }
    }
}
