//! Lineage in the server: the mesh's graph built from what it runs — each transform's column
//! lineage from its query's plan, each source feeding its dataset, the event API feeding each
//! dataset that has taken events (`events:domain.product.dataset`) — and walked for a caller,
//! showing only the datasets the caller may discover.

use async_trait::async_trait;
use tessera_core::{
    DatasetRef, Direction, FrontEnd, LineageEdge, LineageGraph, LineageNode, RequestContext,
};
use tessera_governance::{Action, Resource};

use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;
use crate::service::LineageService;
use crate::views::{LineageEdgeView, LineageView};

/// The node a source is in the graph: `source:domain.product.name`.
fn source_node(domain: &str, product: &str, name: &str) -> String {
    format!("source:{domain}.{product}.{name}")
}

impl Mesh {
    /// Every lineage edge of the mesh: the transforms' (a transform whose query no longer plans
    /// against the mesh keeps its dataset edges, from the datasets its file names) and the
    /// sources'.
    pub(crate) async fn lineage_graph(&self) -> Result<LineageGraph> {
        let cx = RequestContext::system(
            "lineage",
            uuid::Uuid::new_v4().to_string(),
            FrontEnd::Scheduler,
        );
        let ctx = self.session(&cx).await?;
        let mut graph = LineageGraph::default();
        let mut transforms = Vec::new();
        for record in self.catalog.transforms(None).await? {
            if let Ok(spec) = tessera_spec::transform_from_file(&record.file_name, &record.source) {
                let target = format!("{}.{}.{}", record.domain, record.product, record.dataset);
                transforms.push((target, spec));
            }
        }
        // Every query planned in one piece of work on the query runtime (a session's work ends
        // with its token).
        let planned = {
            let (ctx, sqls) = (
                ctx.clone(),
                transforms
                    .iter()
                    .map(|(_, s)| s.sql.clone())
                    .collect::<Vec<_>>(),
            );
            self.engine()
                .run(&ctx.clone(), async move {
                    let mut out = Vec::with_capacity(sqls.len());
                    for sql in sqls {
                        out.push(match tessera_query::plan_sql(&ctx, &sql).await {
                            Ok(frame) => tessera_query::query_lineage(frame.logical_plan())
                                .map_err(|e| e.to_string()),
                            Err(e) => Err(e.to_string()),
                        });
                    }
                    Ok(out)
                })
                .await?
        };
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
        let discoverable = |node: &str| {
            product_of(node).is_some_and(|(domain, product)| {
                access.allowed(
                    &cx.principal,
                    Action::Discover,
                    &Resource::Product { domain, product },
                )
            })
        };
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
}
