//! A transform: SQL kept in a product's folder (`transforms/<dataset>.sql`) that computes one of
//! the product's output datasets from what the product reads, how its result is written to the
//! dataset's table, and when it runs; and [`TransformGraph`], every transform of the mesh as one
//! graph of datasets — which dataset feeds which, the order to run them in, and the cycles that
//! leave no order.
//!
//! Reading the file (its header of `-- key: value` lines) is `tessera-spec`'s job; running a
//! transform the server's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::ControlFlow;
use std::time::Duration;

use sqlparser::ast::{ObjectName, Query, Statement, TableFactor, Visit, Visitor};

use crate::name::{DatasetRef, Name};

/// How a run's result reaches the dataset's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Materialization {
    /// Every run computes the whole dataset and replaces the table's rows with it.
    FullRefresh,
    /// Every run adds the result's rows whose `watermark` is past the newest the table holds
    /// (all rows into an empty table).
    Append { watermark: Name },
    /// Every run merges its result into the table by the contract's primary key: a row whose
    /// key the table holds replaces it, the others are added. With a `watermark` (a column of
    /// the dataset), a run computes only the result's rows whose watermark is at or past the
    /// newest the table holds — the filter is planned into the query, so a daily aggregate
    /// reads only the newest day's input and recomputes it, and the days after. With
    /// `recompute_by` (a column of the primary key, which comes unchanged from the inputs'
    /// columns), a run computes only the result's rows whose `recompute_by` value is one the
    /// inputs' rows added since the last run hold — a per-customer aggregate recomputes the
    /// customers with new orders. At most one of the two is given.
    Merge {
        watermark: Option<Name>,
        recompute_by: Option<Name>,
    },
}

impl fmt::Display for Materialization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Materialization::FullRefresh => f.write_str("full"),
            Materialization::Append { watermark } => write!(f, "append by {watermark}"),
            Materialization::Merge {
                watermark: Some(watermark),
                ..
            } => write!(f, "merge from the newest {watermark}"),
            Materialization::Merge {
                recompute_by: Some(key),
                ..
            } => write!(f, "merge by the {key}s of new input rows"),
            Materialization::Merge { .. } => f.write_str("merge"),
        }
    }
}

/// A transform as declared.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformSpec {
    /// The product's output dataset it computes (the file's name).
    pub dataset: Name,
    pub description: Option<String>,
    pub materialization: Materialization,
    /// Runs this often, counted from the end of the last run.
    pub every: Option<Duration>,
    /// Runs (debounced) after a dataset it reads commits new rows.
    pub on_upstream: bool,
    /// The query, as written (header included: lines numbered as in the file).
    pub sql: String,
    /// The datasets the query reads, sorted, each once.
    pub inputs: Vec<DatasetRef>,
}

/// The datasets a query reads: every table it names that is not one of its own common table
/// expressions. `Err` names a table that is not named `domain.product.dataset`.
pub fn referenced_datasets(statement: &Statement) -> Result<Vec<DatasetRef>, String> {
    let mut tables = Tables::default();
    let _ = statement.visit(&mut tables);
    let mut inputs = BTreeSet::new();
    for name in tables.names {
        let parts: Vec<String> = name.0.iter().map(|p| p.to_string()).collect();
        if parts.len() == 1 && tables.ctes.contains(&unquoted(&parts[0])) {
            continue;
        }
        let text = parts
            .iter()
            .map(|p| unquoted(p))
            .collect::<Vec<_>>()
            .join(".");
        let reference: DatasetRef = text.parse().map_err(|_| {
            format!("table {name} is not named DOMAIN.PRODUCT.DATASET: a transform names every dataset it reads in full")
        })?;
        inputs.insert(reference);
    }
    Ok(inputs.into_iter().collect())
}

fn unquoted(identifier: &str) -> String {
    identifier.trim_matches('"').to_string()
}

#[derive(Default)]
struct Tables {
    names: Vec<ObjectName>,
    ctes: BTreeSet<String>,
}

impl Visitor for Tables {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.clone());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, args, .. } = factor
            // A table function (`range(10)`, `unnest(...)`) reads no dataset.
            && args.is_none()
        {
            self.names.push(name.clone());
        }
        ControlFlow::Continue(())
    }
}

/// Every transform of the mesh as a graph of datasets: an edge from each dataset a transform
/// reads to the dataset it computes.
#[derive(Debug, Clone, Default)]
pub struct TransformGraph {
    /// Computed dataset → the datasets its transform reads.
    inputs: BTreeMap<DatasetRef, Vec<DatasetRef>>,
}

/// Transforms that read each other's results round a loop: no order runs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle(pub Vec<DatasetRef>);

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" → ")?;
            }
            write!(f, "{d}")?;
        }
        if let Some(first) = self.0.first() {
            write!(f, " → {first}")?;
        }
        Ok(())
    }
}

impl TransformGraph {
    /// The graph of `transforms`: each computed dataset with the datasets it reads.
    pub fn new(transforms: impl IntoIterator<Item = (DatasetRef, Vec<DatasetRef>)>) -> Self {
        Self {
            inputs: transforms.into_iter().collect(),
        }
    }

    /// The datasets `dataset`'s transform reads; empty when no transform computes it.
    pub fn inputs_of(&self, dataset: &DatasetRef) -> &[DatasetRef] {
        self.inputs.get(dataset).map_or(&[], Vec::as_slice)
    }

    /// Whether a transform computes `dataset`.
    pub fn computes(&self, dataset: &DatasetRef) -> bool {
        self.inputs.contains_key(dataset)
    }

    /// Every cycle, each as the datasets round it starting from its smallest name; the graph
    /// has an order when there are none.
    pub fn cycles(&self) -> Vec<Cycle> {
        let graph = self.petgraph();
        let mut cycles: Vec<Cycle> = petgraph::algo::tarjan_scc(&graph)
            .into_iter()
            .filter(|component| {
                component.len() > 1 || graph.contains_edge(component[0], component[0])
            })
            .map(|component| {
                let members: BTreeSet<&DatasetRef> = component.iter().map(|n| graph[*n]).collect();
                Cycle(self.round(&members))
            })
            .collect();
        cycles.sort_by(|a, b| a.0.cmp(&b.0));
        cycles
    }

    /// One loop through `members` (a strongly connected set), from its smallest dataset,
    /// following each dataset's smallest input that is a member until the start comes round.
    fn round(&self, members: &BTreeSet<&DatasetRef>) -> Vec<DatasetRef> {
        let start = *members.iter().next().expect("a cycle has members");
        // Walk against the edges (a dataset to what it reads), then turn the walk round so it
        // reads in the direction data flows.
        let mut path = vec![start.clone()];
        let mut seen = BTreeSet::from([start]);
        let mut at = start;
        loop {
            let next = self
                .inputs_of(at)
                .iter()
                .filter(|d| members.contains(d))
                .find(|d| *d == start || !seen.contains(d))
                .or_else(|| self.inputs_of(at).iter().find(|d| members.contains(d)));
            match next {
                Some(d) if d == start => break,
                Some(d) if seen.insert(d) => {
                    path.push(d.clone());
                    at = d;
                }
                // Every way on leads to a member already walked: the loop closes there.
                Some(d) => {
                    let from = path.iter().position(|p| p == d).unwrap_or(0);
                    path.drain(..from);
                    break;
                }
                None => break,
            }
        }
        path.reverse();
        let smallest = path
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.cmp(b.1))
            .map_or(0, |(i, _)| i);
        path.rotate_left(smallest);
        path
    }

    /// The computed datasets in an order that runs every transform after those it reads
    /// from (ties by name), or the cycles that leave no such order.
    pub fn order(&self) -> Result<Vec<DatasetRef>, Vec<Cycle>> {
        let cycles = self.cycles();
        if !cycles.is_empty() {
            return Err(cycles);
        }
        // Kahn's algorithm over the computed datasets, smallest name first among the ready.
        let mut waiting: BTreeMap<&DatasetRef, usize> = self
            .inputs
            .iter()
            .map(|(d, inputs)| (d, inputs.iter().filter(|i| self.computes(i)).count()))
            .collect();
        let mut ready: BTreeSet<&DatasetRef> = waiting
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(d, _)| *d)
            .collect();
        let mut order = Vec::with_capacity(self.inputs.len());
        while let Some(next) = ready.pop_first() {
            waiting.remove(next);
            order.push(next.clone());
            for (d, n) in waiting.iter_mut() {
                let edges = self.inputs[*d].iter().filter(|i| *i == next).count();
                if edges > 0 {
                    *n -= edges;
                    if *n == 0 {
                        ready.insert(d);
                    }
                }
            }
        }
        Ok(order)
    }

    /// The computed datasets that read `dataset`, directly or through others, in run order
    /// (for a graph without cycles).
    pub fn downstream_of(&self, dataset: &DatasetRef) -> Vec<DatasetRef> {
        let mut hit = BTreeSet::from([dataset.clone()]);
        let order = self.order().unwrap_or_default();
        let mut out = Vec::new();
        for d in order {
            if self.inputs_of(&d).iter().any(|i| hit.contains(i)) {
                hit.insert(d.clone());
                out.push(d);
            }
        }
        out
    }

    fn petgraph(&self) -> petgraph::Graph<&DatasetRef, ()> {
        let mut graph = petgraph::Graph::new();
        let mut nodes = BTreeMap::new();
        for (target, inputs) in &self.inputs {
            for d in std::iter::once(target).chain(inputs) {
                nodes.entry(d).or_insert_with(|| graph.add_node(d));
            }
            for input in inputs {
                graph.add_edge(nodes[input], nodes[target], ());
            }
        }
        graph
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    fn d(reference: &str) -> DatasetRef {
        reference.parse().unwrap()
    }

    fn inputs(sql: &str) -> Result<Vec<String>, String> {
        let statement = Parser::parse_sql(&GenericDialect {}, sql)
            .unwrap()
            .remove(0);
        referenced_datasets(&statement).map(|v| v.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn a_query_reads_the_datasets_it_names_but_not_its_own_ctes() {
        let sql = "WITH daily AS (SELECT artwork_id, count(*) AS n FROM web.engagement.events GROUP BY 1)
                   SELECT d.artwork_id, d.n, a.title FROM daily d
                   JOIN assets.catalog.artworks a ON a.id = d.artwork_id
                   WHERE d.artwork_id IN (SELECT artwork_id FROM web.engagement.events WHERE kind = 'like')
                   UNION ALL SELECT x, 1, y FROM \"sales\".\"orders\".\"lines\"";
        assert_eq!(
            inputs(sql).unwrap(),
            [
                "assets.catalog.artworks",
                "sales.orders.lines",
                "web.engagement.events"
            ]
        );
        assert_eq!(
            inputs("SELECT * FROM range(10)").unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_table_not_named_in_full_is_refused_with_its_name() {
        let error = inputs("SELECT * FROM engagement.events").unwrap_err();
        assert!(error.contains("engagement.events"), "{error}");
        assert!(inputs("SELECT * FROM events").is_err());
    }

    #[test]
    fn transforms_run_after_what_they_read() {
        let graph = TransformGraph::new([
            (d("m.p.trending"), vec![d("m.p.daily"), d("a.c.artworks")]),
            (d("m.p.daily"), vec![d("w.e.events_clean")]),
            (d("w.e.events_clean"), vec![d("w.e.events_raw")]),
            (d("m.p.campaigns"), vec![d("m.p.trending"), d("m.p.daily")]),
        ]);
        let order: Vec<String> = graph
            .order()
            .unwrap()
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            order,
            [
                "w.e.events_clean",
                "m.p.daily",
                "m.p.trending",
                "m.p.campaigns"
            ]
        );
        let downstream: Vec<String> = graph
            .downstream_of(&d("w.e.events_raw"))
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(downstream, order);
        assert!(graph.downstream_of(&d("m.p.campaigns")).is_empty());
        assert!(graph.cycles().is_empty());
    }

    #[test]
    fn cycles_are_named_round_the_loop() {
        let graph = TransformGraph::new([
            (d("x.p.b"), vec![d("x.p.a")]),
            (d("x.p.c"), vec![d("x.p.b"), d("y.q.raw")]),
            (d("x.p.a"), vec![d("x.p.c")]),
            (d("z.p.self"), vec![d("z.p.self")]),
            (d("z.p.fine"), vec![d("y.q.raw")]),
        ]);
        let cycles: Vec<String> = graph
            .order()
            .unwrap_err()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            cycles,
            ["x.p.a → x.p.b → x.p.c → x.p.a", "z.p.self → z.p.self"]
        );
    }
}
