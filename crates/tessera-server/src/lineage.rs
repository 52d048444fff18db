//! Lineage in the server: the mesh's graph built from what it runs — each transform's column
//! lineage from its query's plan, each source feeding its dataset, the event API feeding each
//! dataset that has taken events (`events:domain.product.dataset`) — and walked for a caller,
//! showing only the datasets the caller may discover.

use async_trait::async_trait;
use tessera_core::{DatasetRef, Direction, LineageEdge, LineageGraph, LineageNode, RequestContext};
use tessera_governance::{Action, Resource};

use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;
use crate::service::LineageService;
use crate::views::{LineageEdgeView, LineageView, ReceivedLineageView};

/// The node a source is in the graph: `source:domain.product.name`.
fn source_node(domain: &str, product: &str, name: &str) -> String {
    format!("source:{domain}.{product}.{name}")
}

impl Mesh {
    /// Every lineage edge of the mesh: the transforms' (a transform whose query no longer plans
    /// against the mesh keeps its dataset edges, from the datasets its file names) and the
    /// sources'.
    pub(crate) async fn lineage_graph(&self) -> Result<LineageGraph> {
        let mut graph = LineageGraph::default();
        let mut transforms = Vec::new();
        for record in self.catalog.transforms(None).await? {
            if let Ok(spec) = tessera_spec::transform_from_file(&record.file_name, &record.source) {
                let target = format!("{}.{}.{}", record.domain, record.product, record.dataset);
                transforms.push((target, spec));
            }
        }
        let sqls = transforms.iter().map(|(_, s)| s.sql.clone()).collect();
        let planned = self
            .plan_transform_queries("lineage", sqls, |frame| {
                tessera_query::query_lineage(frame.logical_plan()).map_err(|e| e.to_string())
            })
            .await?;
        for ((target, spec), lineage) in transforms.iter().zip(planned) {
            let job = format!("transform {target}");
            match lineage {
                Ok(lineage) => graph.add_query(target, &job, &lineage),
                Err(e) => {
                    tracing::warn!(transform = %target, error = %e, "a transform's column lineage could not be read; its dataset edges stand");
                    for input in &spec.inputs {
                        graph.add_dataset_edge(&input.to_string(), target, &job);
                    }
                }
            }
        }
        for source in self.catalog.sources(None).await? {
            let dataset = format!("{}.{}.{}", source.domain, source.product, source.dataset);
            graph.add_dataset_edge(
                &source_node(&source.domain, &source.product, &source.name),
                &dataset,
                &format!(
                    "source {}.{}.{} ({})",
                    source.domain, source.product, source.name, source.connector
                ),
            );
        }
        // What other tools reported: each run's (or job's) inputs feed its outputs.
        let tessera_datasets = self.dataset_names().await?;
        for event in self.catalog.received_lineage().await? {
            let (Ok(inputs), Ok(outputs)) = (
                serde_json::from_str::<Vec<(String, String)>>(&event.inputs),
                serde_json::from_str::<Vec<(String, String)>>(&event.outputs),
            ) else {
                continue;
            };
            let job = format!(
                "{}/{}",
                event.job_namespace.as_deref().unwrap_or_default(),
                event.job_name.as_deref().unwrap_or_default()
            );
            for (ins, input) in &inputs {
                for (outs, output) in &outputs {
                    let from = self.external_node(ins, input, &tessera_datasets);
                    let to = self.external_node(outs, output, &tessera_datasets);
                    if !graph.edges().iter().any(|e| {
                        e.job == job && e.from.to_string() == from && e.to.to_string() == to
                    }) {
                        graph.add_dataset_edge(&from, &to, &job);
                    }
                }
            }
        }
        // A dataset that has taken events has the event API upstream.
        for d in self.catalog.datasets(None).await? {
            let [taken] = self
                .storage
                .sequences(&d.location, &[crate::events::EVENTS_APP_ID])
                .await?
                .try_into()
                .expect("one answer per app id");
            if taken.is_some() {
                let dataset = format!("{}.{}.{}", d.domain, d.product, d.name);
                graph.add_dataset_edge(&format!("events:{dataset}"), &dataset, "event API");
            }
        }
        Ok(graph)
    }
}

impl Mesh {
    /// Every dataset of the mesh, `domain.product.dataset`.
    async fn dataset_names(&self) -> Result<std::collections::BTreeSet<String>> {
        Ok(self
            .catalog
            .datasets(None)
            .await?
            .into_iter()
            .map(|d| format!("{}.{}.{}", d.domain, d.product, d.name))
            .collect())
    }

    /// How the graph names a dataset an OpenLineage event names: a Tessera dataset when the
    /// namespace is the mesh's and the name one of its datasets, else `dataset:NAMESPACE:NAME`.
    fn external_node(
        &self,
        namespace: &str,
        name: &str,
        tessera_datasets: &std::collections::BTreeSet<String>,
    ) -> String {
        if namespace == self.openlineage.namespace && tessera_datasets.contains(name) {
            name.to_string()
        } else {
            format!("dataset:{namespace}:{name}")
        }
    }
}

/// Whether a node is a dataset another tool reported (shown to every caller).
fn is_external(node: &str) -> bool {
    node.starts_with("dataset:")
}

/// Whether `cx` is shown a node: another tool's dataset, or one of a product it may discover.
fn shown(access: &crate::governance::AccessState, cx: &RequestContext, node: &str) -> bool {
    is_external(node)
        || product_of(node).is_some_and(|(domain, product)| {
            access.allowed(
                &cx.principal,
                Action::Discover,
                &Resource::Product { domain, product },
            )
        })
}

/// The product a lineage node belongs to: a dataset's, a source's or an event stream's.
fn product_of(node: &str) -> Option<(String, String)> {
    let name = node
        .strip_prefix("source:")
        .or_else(|| node.strip_prefix("events:"))
        .unwrap_or(node);
    let mut parts = name.split('.');
    Some((parts.next()?.to_string(), parts.next()?.to_string()))
}

fn edge_view(edge: LineageEdge) -> LineageEdgeView {
    LineageEdgeView {
        from: edge.from.to_string(),
        to: edge.to.to_string(),
        job: edge.job,
        derivations: edge.derivations.iter().map(|d| d.to_string()).collect(),
    }
}

#[async_trait]
impl LineageService for Mesh {
    async fn lineage(
        &self,
        cx: &RequestContext,
        dataset: &DatasetRef,
        column: Option<&str>,
        direction: Direction,
        depth: usize,
    ) -> Result<LineageView> {
        let access = self.access_for(cx).await?;
        let discoverable = |node: &str| shown(&access, cx, node);
        let record = self.dataset_record(dataset).await?;
        if !discoverable(&dataset.to_string()) {
            return Err(ServiceError::NotFound(format!("no dataset {dataset}")));
        }
        let start = match column {
            None => LineageNode::Dataset(dataset.to_string()),
            Some(column) => {
                let schema = self.dataset_schema(&record).await?;
                if !schema.columns.iter().any(|c| c.name.as_str() == column) {
                    return Err(ServiceError::NotFound(format!(
                        "{dataset} has no column {column:?}"
                    )));
                }
                LineageNode::Column(tessera_core::ColumnRef::new(dataset.to_string(), column))
            }
        };
        let graph = self.lineage_graph().await?;
        let edges = graph
            .walk(&start, direction, depth)
            .into_iter()
            .filter(|e| discoverable(e.from.dataset()) && discoverable(e.to.dataset()))
            .map(edge_view)
            .collect();
        Ok(LineageView {
            start: start.to_string(),
            direction: match direction {
                Direction::Upstream => "upstream".into(),
                Direction::Downstream => "downstream".into(),
            },
            depth: depth as i64,
            edges,
        })
    }

    async fn node_lineage(
        &self,
        cx: &RequestContext,
        node: &str,
        depth: usize,
    ) -> Result<LineageView> {
        let access = self.access_for(cx).await?;
        let discoverable = |node: &str| shown(&access, cx, node);
        let bad = || {
            ServiceError::BadRequest(format!(
                "{node:?} is not a node: give dataset:NAMESPACE:NAME or job:NAMESPACE:NAME"
            ))
        };
        let (kind, rest) = node.split_once(':').ok_or_else(bad)?;
        // The name is what follows the namespace's last colon (a namespace may hold colons:
        // tessera://local).
        let (namespace, name) = rest.rsplit_once(':').ok_or_else(bad)?;
        let graph = self.lineage_graph().await?;
        let tessera_datasets = self.dataset_names().await?;
        let starts: Vec<LineageNode> = match kind {
            "dataset" => {
                let named = self.external_node(namespace, name, &tessera_datasets);
                vec![LineageNode::Dataset(named)]
            }
            "job" => {
                let job = format!("{namespace}/{name}");
                let mut starts: Vec<LineageNode> = Vec::new();
                for e in graph.edges().iter().filter(|e| e.job == job) {
                    for n in [&e.from, &e.to] {
                        if !starts.contains(n) {
                            starts.push(n.clone());
                        }
                    }
                }
                starts
            }
            _ => return Err(bad()),
        };
        let known = starts
            .iter()
            .any(|s| graph.edges().iter().any(|e| &e.from == s || &e.to == s));
        if !known || !starts.iter().all(|s| discoverable(s.dataset())) {
            return Err(ServiceError::NotFound(format!("no lineage of {node}")));
        }
        let edges = graph
            .neighbourhood(&starts, depth)
            .into_iter()
            .filter(|e| discoverable(e.from.dataset()) && discoverable(e.to.dataset()))
            .map(edge_view)
            .collect();
        Ok(LineageView {
            start: node.to_string(),
            direction: "both".into(),
            depth: depth as i64,
            edges,
        })
    }

    async fn receive_lineage(
        &self,
        cx: &RequestContext,
        event: &serde_json::Value,
        lenient: bool,
    ) -> Result<ReceivedLineageView> {
        let read = tessera_spec::read_lineage_event(event, lenient).map_err(|e| match e {
            tessera_spec::LineageEventError::Invalid(problems) => ServiceError::InvalidFiles(
                problems
                    .into_iter()
                    .map(|p| {
                        let (field, message) = p.split_once(": ").unwrap_or(("", p.as_str()));
                        tessera_spec::Diagnostic {
                            file: "OpenLineage event".into(),
                            line: None,
                            field: field.to_string(),
                            message: message.to_string(),
                        }
                    })
                    .collect(),
            ),
            tessera_spec::LineageEventError::BadName(m) => ServiceError::BadRequest(m),
        })?;
        let pairs = |d: &[tessera_spec::NamedDataset]| {
            d.iter()
                .map(|d| (d.namespace.clone(), d.name.clone()))
                .collect::<Vec<_>>()
        };
        let record = tessera_catalog::ReceivedLineageRecord {
            event_id: uuid::Uuid::new_v4().to_string(),
            kind: read.kind.as_str().to_string(),
            event_type: read.event_type.clone(),
            job_namespace: read.job.as_ref().map(|j| j.0.clone()),
            job_name: read.job.as_ref().map(|j| j.1.clone()),
            run_id: read.run_id.clone(),
            event_time: read.event_time.clone(),
            inputs: serde_json::to_string(&pairs(&read.inputs)).expect("pairs serialise"),
            outputs: serde_json::to_string(&pairs(&read.outputs)).expect("pairs serialise"),
            body: event.to_string(),
            received_at: tessera_catalog::store_time(chrono::Utc::now()),
            received_by: cx.principal.to_string(),
        };
        self.catalog.record_received_lineage(&record).await?;
        let tessera_datasets = self.dataset_names().await?;
        let named = |d: &[tessera_spec::NamedDataset]| {
            d.iter()
                .map(|d| self.external_node(&d.namespace, &d.name, &tessera_datasets))
                .collect()
        };
        Ok(ReceivedLineageView {
            event_id: record.event_id,
            kind: record.kind,
            job: read.job.map(|(n, j)| format!("{n}/{j}")),
            run_id: read.run_id,
            inputs: named(&read.inputs),
            outputs: named(&read.outputs),
        })
    }
}
