//! `tessera lineage`: a dataset's or a column's lineage, through the API, as text, JSON,
//! Graphviz or Mermaid.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use tessera_server::views::{LineageEdgeView, LineageView};

use crate::cli::LineageFormat;
use crate::client::Client;

pub async fn lineage(
    client: &Client,
    dataset: &str,
    column: Option<&str>,
    downstream: bool,
    depth: i64,
    format: LineageFormat,
) -> Result<()> {
    let depth = depth.to_string();
    // A node another tool reported, named as Marquez names nodes: its neighbourhood, both ways.
    if dataset.starts_with("dataset:") || dataset.starts_with("job:") {
        let view: LineageView = client
            .get(
                &["api", "v1", "lineage"],
                &[("node", dataset), ("depth", depth.as_str())],
            )
            .await?;
        return show(&view, format);
    }
    let parts: Vec<&str> = dataset.split('.').collect();
    let [d, p, x] = parts.as_slice() else {
        bail!(
            "{dataset:?} is not a dataset: give DOMAIN.PRODUCT.DATASET (or dataset:NAMESPACE:NAME, job:NAMESPACE:NAME)"
        );
    };
    let mut query = vec![
        (
            "direction",
            if downstream { "downstream" } else { "upstream" },
        ),
        ("depth", depth.as_str()),
    ];
    if let Some(c) = column {
        query.push(("column", c));
    }
    let view: LineageView = client
        .get(&["api", "v1", "lineage", d, p, x], &query)
        .await?;
    show(&view, format)
}

fn show(view: &LineageView, format: LineageFormat) -> Result<()> {
    match format {
        LineageFormat::Json => println!("{}", serde_json::to_string_pretty(view)?),
        LineageFormat::Text => print!("{}", text(view)),
        LineageFormat::Dot => print!("{}", dot(view)),
        LineageFormat::Mermaid => print!("{}", mermaid(view)),
    }
    Ok(())
}

fn how(edge: &LineageEdgeView) -> String {
    if edge.derivations.is_empty() {
        String::new()
    } else {
        format!(" [{}]", edge.derivations.join(", "))
    }
}

fn text(view: &LineageView) -> String {
    let mut out = if view.direction == "both" {
        format!("Around {}:\n", view.start)
    } else {
        format!("{} of {}:\n", capitalized(&view.direction), view.start)
    };
    if view.edges.is_empty() {
        out.push_str("  nothing\n");
    }
    for e in &view.edges {
        out.push_str(&format!(
            "  {} -> {}{}  ({})\n",
            e.from,
            e.to,
            how(e),
            e.job
        ));
    }
    out
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Each node once, numbered in the order first met (the start first).
fn nodes(view: &LineageView) -> BTreeMap<&str, usize> {
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for name in std::iter::once(view.start.as_str()).chain(
        view.edges
            .iter()
            .flat_map(|e| [e.from.as_str(), e.to.as_str()]),
    ) {
        let next = ids.len();
        ids.entry(name).or_insert(next);
    }
    ids
}

fn dot(view: &LineageView) -> String {
    let quoted = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::from("digraph lineage {\n  rankdir=LR;\n  node [shape=box];\n");
    out.push_str(&format!("  {} [style=bold];\n", quoted(&view.start)));
    for e in &view.edges {
        let label = e.derivations.join(", ");
        out.push_str(&format!(
            "  {} -> {} [label={}, tooltip={}];\n",
            quoted(&e.from),
            quoted(&e.to),
            quoted(&label),
            quoted(&e.job)
        ));
    }
    out.push_str("}\n");
    out
}

fn mermaid(view: &LineageView) -> String {
    let ids = nodes(view);
    let mut out = String::from("flowchart LR\n");
    let mut by_id: Vec<(&usize, &&str)> = ids.iter().map(|(n, i)| (i, n)).collect();
    by_id.sort();
    for (id, name) in by_id {
        out.push_str(&format!("  n{id}[\"{}\"]\n", name.replace('"', "#quot;")));
    }
    for e in &view.edges {
        let label = e.derivations.join(", ");
        let arrow = if label.is_empty() {
            "-->".to_string()
        } else {
            format!("-->|{label}|")
        };
        out.push_str(&format!(
            "  n{} {arrow} n{}\n",
            ids[e.from.as_str()],
            ids[e.to.as_str()]
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> LineageView {
        LineageView {
            start: "a.b.daily".into(),
            direction: "upstream".into(),
            depth: 20,
            edges: vec![LineageEdgeView {
                from: "a.b.raw.x".into(),
                to: "a.b.daily.x".into(),
                job: "transform a.b.daily".into(),
                derivations: vec!["aggregation".into()],
            }],
        }
    }

    #[test]
    fn pictures_name_each_node_once_and_label_edges_with_how() {
        assert_eq!(
            mermaid(&view()),
            "flowchart LR\n  n0[\"a.b.daily\"]\n  n1[\"a.b.raw.x\"]\n  n2[\"a.b.daily.x\"]\n  n1 -->|aggregation| n2\n"
        );
        assert!(dot(&view()).contains(
            "\"a.b.raw.x\" -> \"a.b.daily.x\" [label=\"aggregation\", tooltip=\"transform a.b.daily\"];"
        ));
        assert_eq!(
            text(&view()),
            "Upstream of a.b.daily:\n  a.b.raw.x -> a.b.daily.x [aggregation]  (transform a.b.daily)\n"
        );
        let around = LineageView {
            direction: "both".into(),
            start: "job:kitchen:pie".into(),
            ..view()
        };
        assert!(text(&around).starts_with("Around job:kitchen:pie:\n"));
    }
}
