//! Lineage: which datasets and columns a dataset's columns come from, and how — the model the
//! query engine derives from a transform's plan (`tessera_query::transform_lineage`), and
//! [`LineageGraph`], every such edge of the mesh, walked upstream or downstream.
//!
//! How a column depends on another follows OpenLineage's column lineage facet: *direct* when the
//! output value is the input value ([`Derivation::Identity`]), computed from it
//! ([`Derivation::Transformation`]) or aggregated over it ([`Derivation::Aggregation`]);
//! *indirect* when the input only decides which rows there are or how they are matched or
//! ordered (filter, join, group by, sort, window, conditional).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

/// How an output column depends on an input column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Derivation {
    /// The value as it is (a column selected, perhaps renamed).
    Identity,
    /// A value computed from it in the same row (arithmetic, a function, a cast).
    Transformation,
    /// A value computed over many rows of it (an aggregate or a window aggregate).
    Aggregation,
    /// It decides which rows are kept.
    Filter,
    /// It decides which rows are matched with which.
    Join,
    /// It decides which rows are aggregated together.
    GroupBy,
    /// It decides the rows' order.
    Sort,
    /// It decides a window function's partitions or order.
    Window,
    /// It decides which branch of a CASE gives the value.
    Conditional,
}

impl Derivation {
    /// Whether the output value comes from the input value (OpenLineage `DIRECT`).
    pub fn is_direct(self) -> bool {
        matches!(
            self,
            Derivation::Identity | Derivation::Transformation | Derivation::Aggregation
        )
    }

    /// OpenLineage's transformation type: `DIRECT` or `INDIRECT`.
    pub fn kind(self) -> &'static str {
        if self.is_direct() {
            "DIRECT"
        } else {
            "INDIRECT"
        }
    }

    /// OpenLineage's transformation subtype (`IDENTITY`, `GROUP_BY`, …).
    pub fn subtype(self) -> &'static str {
        match self {
            Derivation::Identity => "IDENTITY",
            Derivation::Transformation => "TRANSFORMATION",
            Derivation::Aggregation => "AGGREGATION",
            Derivation::Filter => "FILTER",
            Derivation::Join => "JOIN",
            Derivation::GroupBy => "GROUP_BY",
            Derivation::Sort => "SORT",
            Derivation::Window => "WINDOW",
            Derivation::Conditional => "CONDITIONAL",
        }
    }

    /// The name Tessera shows: `identity`, `group_by`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Derivation::Identity => "identity",
            Derivation::Transformation => "transformation",
            Derivation::Aggregation => "aggregation",
            Derivation::Filter => "filter",
            Derivation::Join => "join",
            Derivation::GroupBy => "group_by",
            Derivation::Sort => "sort",
            Derivation::Window => "window",
            Derivation::Conditional => "conditional",
        }
    }

    /// What a dependency becomes when the value it reaches is used again in a `context`: a
    /// direct one takes the stronger of the two kinds (identity, then transformation, then
    /// aggregation), or the context's when that is indirect; an indirect one stays as it is.
    pub fn through(self, context: Derivation) -> Derivation {
        match (self.is_direct(), context.is_direct()) {
            (true, true) => self.max(context),
            (true, false) => context,
            (false, _) => self,
        }
    }
}

impl fmt::Display for Derivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A column of a dataset (`domain.product.dataset`, or an external dataset's name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ColumnRef {
    pub dataset: String,
    pub column: String,
}

impl ColumnRef {
    pub fn new(dataset: impl Into<String>, column: impl Into<String>) -> Self {
        Self {
            dataset: dataset.into(),
            column: column.into(),
        }
    }
}

impl fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.dataset, self.column)
    }
}

/// Input columns with how something depends on each.
pub type Sources = BTreeMap<ColumnRef, BTreeSet<Derivation>>;

/// What one query's output columns come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryLineage {
    /// Per output column, in the query's order: its name and the input columns it depends on
    /// (directly, or indirectly through a CASE condition or a window's partitions).
    pub columns: Vec<(String, Sources)>,
    /// Input columns every output row depends on indirectly: filters, joins, group by, sorts.
    pub rows: Sources,
    /// Every dataset the query scans, whether or not a column of it reaches the output or
    /// decides rows (`SELECT count(*) FROM t` reads no column of `t`, yet depends on it).
    pub scanned: BTreeSet<String>,
}

impl QueryLineage {
    /// The datasets the query reads.
    pub fn datasets(&self) -> BTreeSet<&str> {
        self.columns
            .iter()
            .flat_map(|(_, s)| s.keys())
            .chain(self.rows.keys())
            .map(|c| c.dataset.as_str())
            .chain(self.scanned.iter().map(String::as_str))
            .collect()
    }
}

/// What lineage is followed: whole datasets, or one column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LineageNode {
    Dataset(String),
    Column(ColumnRef),
}

impl LineageNode {
    /// The dataset the node is or is a column of.
    pub fn dataset(&self) -> &str {
        match self {
            LineageNode::Dataset(d) => d,
            LineageNode::Column(c) => &c.dataset,
        }
    }
}

impl fmt::Display for LineageNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineageNode::Dataset(d) => f.write_str(d),
            LineageNode::Column(c) => write!(f, "{c}"),
        }
    }
}

/// One edge: `from` feeds `to` through `job`, in these ways.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineageEdge {
    pub from: LineageNode,
    pub to: LineageNode,
    /// What moves the data: `transform domain.product.dataset`, `source domain.product.name`, …
    pub job: String,
    /// How (for column edges; empty for dataset edges).
    pub derivations: BTreeSet<Derivation>,
}

/// Which way to walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Upstream,
    Downstream,
}

/// Every lineage edge of the mesh, between datasets and between columns.
#[derive(Debug, Clone, Default)]
pub struct LineageGraph {
    edges: Vec<LineageEdge>,
}

impl LineageGraph {
    /// Adds what a query computing `output` reads: an edge from each dataset it reads to
    /// `output`, and from each input column to each output column that depends on it (the
    /// columns every row depends on, to every output column).
    pub fn add_query(&mut self, output: &str, job: &str, lineage: &QueryLineage) {
        for dataset in lineage.datasets() {
            self.edges.push(LineageEdge {
                from: LineageNode::Dataset(dataset.to_string()),
                to: LineageNode::Dataset(output.to_string()),
                job: job.to_string(),
                derivations: BTreeSet::new(),
            });
        }
        for (column, sources) in &lineage.columns {
            let mut all: Sources = sources.clone();
            for (input, how) in &lineage.rows {
                all.entry(input.clone()).or_default().extend(how);
            }
            for (input, how) in all {
                self.edges.push(LineageEdge {
                    from: LineageNode::Column(input),
                    to: LineageNode::Column(ColumnRef::new(output, column)),
                    job: job.to_string(),
                    derivations: how,
                });
            }
        }
    }

    /// Adds an edge between two datasets (a source and the dataset it fills, say).
    pub fn add_dataset_edge(&mut self, from: &str, to: &str, job: &str) {
        self.edges.push(LineageEdge {
            from: LineageNode::Dataset(from.to_string()),
            to: LineageNode::Dataset(to.to_string()),
            job: job.to_string(),
            derivations: BTreeSet::new(),
        });
    }

    pub fn edges(&self) -> &[LineageEdge] {
        &self.edges
    }

    /// The edges reached from `start` walking `direction`, at most `depth` edges away, in the
    /// order reached (each once).
    pub fn walk(
        &self,
        start: &LineageNode,
        direction: Direction,
        depth: usize,
    ) -> Vec<LineageEdge> {
        let mut seen_nodes = BTreeSet::from([start.clone()]);
        let mut seen_edges = BTreeSet::new();
        let mut out = Vec::new();
        let mut queue = VecDeque::from([(start.clone(), 0usize)]);
        while let Some((node, at)) = queue.pop_front() {
            if at >= depth {
                continue;
            }
            for edge in &self.edges {
                let next = match direction {
                    Direction::Upstream if edge.to == node => &edge.from,
                    Direction::Downstream if edge.from == node => &edge.to,
                    _ => continue,
                };
                if seen_edges.insert((edge.from.clone(), edge.to.clone(), edge.job.clone())) {
                    out.push(edge.clone());
                }
                if seen_nodes.insert(next.clone()) {
                    queue.push_back((next.clone(), at + 1));
                }
            }
        }
        out
    }

    /// The edges connected to `starts` (either way), at most `depth` edges away from them: the
    /// neighbourhood of a dataset or a job, as Marquez's lineage answers it.
    pub fn neighbourhood(&self, starts: &[LineageNode], depth: usize) -> Vec<LineageEdge> {
        let mut seen_nodes: BTreeSet<LineageNode> = starts.iter().cloned().collect();
        let mut seen_edges = BTreeSet::new();
        let mut out = Vec::new();
        let mut queue: VecDeque<(LineageNode, usize)> =
            starts.iter().map(|s| (s.clone(), 0)).collect();
        while let Some((node, at)) = queue.pop_front() {
            if at >= depth {
                continue;
            }
            for edge in &self.edges {
                let next = if edge.to == node {
                    &edge.from
                } else if edge.from == node {
                    &edge.to
                } else {
                    continue;
                };
                if seen_edges.insert((edge.from.clone(), edge.to.clone(), edge.job.clone())) {
                    out.push(edge.clone());
                }
                if seen_nodes.insert(next.clone()) {
                    queue.push_back((next.clone(), at + 1));
                }
            }
        }
        out
    }

    /// Every dataset downstream of `dataset`, however far.
    pub fn downstream_datasets(&self, dataset: &str) -> Vec<String> {
        let mut found: Vec<String> = self
            .walk(
                &LineageNode::Dataset(dataset.to_string()),
                Direction::Downstream,
                usize::MAX,
            )
            .into_iter()
            .map(|e| e.to.dataset().to_string())
            .collect();
        found.dedup();
        let mut seen = BTreeSet::new();
        found.retain(|d| seen.insert(d.clone()));
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_dependency_takes_the_stronger_kind_and_an_indirect_one_stays() {
        use Derivation::*;
        assert_eq!(Identity.through(Transformation), Transformation);
        assert_eq!(Aggregation.through(Identity), Aggregation);
        assert_eq!(Transformation.through(Filter), Filter);
        assert_eq!(GroupBy.through(Aggregation), GroupBy);
    }

    #[test]
    fn a_walk_follows_edges_to_the_depth_asked() {
        let mut graph = LineageGraph::default();
        graph.add_dataset_edge("a.b.raw", "a.b.clean", "transform a.b.clean");
        graph.add_dataset_edge("a.b.clean", "a.b.daily", "transform a.b.daily");
        graph.add_dataset_edge("x.y.other", "a.b.daily", "transform a.b.daily");
        let start = LineageNode::Dataset("a.b.daily".into());
        let one: Vec<String> = graph
            .walk(&start, Direction::Upstream, 1)
            .iter()
            .map(|e| e.from.to_string())
            .collect();
        assert_eq!(one, ["a.b.clean", "x.y.other"]);
        assert_eq!(graph.walk(&start, Direction::Upstream, 5).len(), 3);
        assert_eq!(
            graph.downstream_datasets("a.b.raw"),
            ["a.b.clean", "a.b.daily"]
        );
    }
}
