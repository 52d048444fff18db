//! Column lineage from a query's logical plan (as planned, before the optimizer moves things):
//! for each output column, the input columns it depends on and how ([`Derivation`]), and the
//! input columns every row depends on (filters, joins, group by, sorts).
//!
//! Each plan node is read bottom-up into a [`Node`]: per output column its sources, and the
//! sources that decide its rows. A column reference takes its input column's sources, each
//! carried through the expression around it ([`Derivation::through`]): a plain reference keeps
//! them, arithmetic or a function makes them transformations, an aggregate aggregations; a
//! filter's, a join's, a grouping's or a sort's columns decide rows; a CASE condition and a
//! window's partitions and order decide one column. Subqueries are read as plans of their own.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::{Exists, InSubquery};
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan, Subquery, WindowFunctionDefinition};
use tessera_core::{ColumnRef, Derivation, QueryLineage, Sources};

/// The lineage of a planned query.
pub fn query_lineage(plan: &LogicalPlan) -> Result<QueryLineage> {
    let node = read(plan)?;
    let columns = plan
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .zip(node.columns)
        .collect();
    let mut scanned = std::collections::BTreeSet::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            scanned.insert(table_name(scan));
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(QueryLineage {
        columns,
        rows: node.rows,
        scanned,
    })
}

/// What a plan node's output depends on.
#[derive(Default, Clone)]
struct Node {
    /// Per output column, in the node's schema order.
    columns: Vec<Sources>,
    /// What decides the node's rows.
    rows: Sources,
}

fn add(into: &mut Sources, from: &Sources, context: Derivation) {
    for (column, how) in from {
        let entry = into.entry(column.clone()).or_default();
        entry.extend(how.iter().map(|d| d.through(context)));
    }
}

fn merge(into: &mut Sources, from: &Sources) {
    for (column, how) in from {
        into.entry(column.clone()).or_default().extend(how);
    }
}

/// Each expression's sources, as output columns over `input` (what subqueries in them decide
/// of the rows goes to `rows`).
fn columns_of(
    exprs: &[Expr],
    input: &Node,
    schema: &DFSchema,
    rows: &mut Sources,
) -> Result<Vec<Sources>> {
    exprs
        .iter()
        .map(|e| {
            let mut sources = Sources::new();
            expr(e, Derivation::Identity, input, schema, &mut sources, rows)?;
            Ok(sources)
        })
        .collect()
}

/// Inputs read side by side (a union's branches, a node of several inputs): column `i` takes
/// every input's column `i`.
fn side_by_side<'a>(
    inputs: impl IntoIterator<Item = &'a LogicalPlan>,
    width: usize,
) -> Result<Node> {
    let mut node = Node {
        columns: vec![Sources::new(); width],
        rows: Sources::new(),
    };
    for input in inputs {
        let read = read(input)?;
        for (into, from) in node.columns.iter_mut().zip(&read.columns) {
            merge(into, from);
        }
        merge(&mut node.rows, &read.rows);
    }
    Ok(node)
}

/// The dataset a scanned table is: `domain.product.dataset` as the session names it.
fn table_name(scan: &datafusion::logical_expr::TableScan) -> String {
    let t = &scan.table_name;
    [t.catalog(), t.schema(), Some(t.table())]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(".")
}

fn read(plan: &LogicalPlan) -> Result<Node> {
    Ok(match plan {
        LogicalPlan::TableScan(scan) => {
            let dataset = table_name(scan);
            let columns = scan
                .projected_schema
                .fields()
                .iter()
                .map(|f| {
                    Sources::from([(
                        ColumnRef::new(dataset.clone(), f.name()),
                        [Derivation::Identity].into(),
                    )])
                })
                .collect();
            let mut rows = Sources::new();
            for filter in &scan.filters {
                for column in filter.column_refs() {
                    rows.entry(ColumnRef::new(dataset.clone(), column.name.clone()))
                        .or_default()
                        .insert(Derivation::Filter);
                }
            }
            Node { columns, rows }
        }
        LogicalPlan::Projection(p) => {
            let input = read(&p.input)?;
            let mut rows = input.rows.clone();
            let columns = columns_of(&p.expr, &input, p.input.schema(), &mut rows)?;
            Node { columns, rows }
        }
        LogicalPlan::Filter(f) => {
            let mut node = read(&f.input)?;
            let mut rows = Sources::new();
            let input = node.clone();
            expr(
                &f.predicate,
                Derivation::Filter,
                &input,
                f.input.schema(),
                &mut rows,
                &mut node.rows,
            )?;
            merge(&mut node.rows, &rows);
            node
        }
        LogicalPlan::Aggregate(a) => {
            let input = read(&a.input)?;
            let mut rows = input.rows.clone();
            let mut node = Node {
                columns: columns_of(&a.group_expr, &input, a.input.schema(), &mut rows)?,
                rows: Sources::new(),
            };
            for g in &a.group_expr {
                let mut grouping = Sources::new();
                expr(
                    g,
                    Derivation::GroupBy,
                    &input,
                    a.input.schema(),
                    &mut grouping,
                    &mut rows,
                )?;
                merge(&mut rows, &grouping);
            }
            node.columns.extend(columns_of(
                &a.aggr_expr,
                &input,
                a.input.schema(),
                &mut rows,
            )?);
            node.rows = rows;
            // Grouping sets add a grouping id column the query never shows by name.
            node.columns.resize(a.schema.fields().len(), Sources::new());
            node
        }
        LogicalPlan::Window(w) => {
            let input = read(&w.input)?;
            let mut rows = input.rows.clone();
            let mut columns = input.columns.clone();
            columns.extend(columns_of(
                &w.window_expr,
                &input,
                w.input.schema(),
                &mut rows,
            )?);
            Node { columns, rows }
        }
        LogicalPlan::Sort(s) => {
            let mut node = read(&s.input)?;
            let input = node.clone();
            let mut rows = Sources::new();
            for sort in &s.expr {
                expr(
                    &sort.expr,
                    Derivation::Sort,
                    &input,
                    s.input.schema(),
                    &mut rows,
                    &mut node.rows,
                )?;
            }
            merge(&mut node.rows, &rows);
            node
        }
        LogicalPlan::Join(j) => {
            let left = read(&j.left)?;
            let right = read(&j.right)?;
            let mut rows = left.rows.clone();
            merge(&mut rows, &right.rows);
            let mut matched = Sources::new();
            for (l, r) in &j.on {
                expr(
                    l,
                    Derivation::Join,
                    &left,
                    j.left.schema(),
                    &mut matched,
                    &mut rows,
                )?;
                expr(
                    r,
                    Derivation::Join,
                    &right,
                    j.right.schema(),
                    &mut matched,
                    &mut rows,
                )?;
            }
            let both = Node {
                columns: left.columns.iter().chain(&right.columns).cloned().collect(),
                rows: Sources::new(),
            };
            if let Some(filter) = &j.filter {
                let schema = j.left.schema().join(j.right.schema())?;
                expr(
                    filter,
                    Derivation::Join,
                    &both,
                    &schema,
                    &mut matched,
                    &mut rows,
                )?;
            }
            merge(&mut rows, &matched);
            let columns = match j.join_type {
                JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => {
                    let mut c = left.columns;
                    c.resize(j.schema.fields().len(), Sources::new());
                    c
                }
                JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => {
                    let mut c = right.columns;
                    c.resize(j.schema.fields().len(), Sources::new());
                    c
                }
                _ => both.columns,
            };
            Node { columns, rows }
        }
        LogicalPlan::Union(u) => {
            side_by_side(u.inputs.iter().map(|i| i.as_ref()), u.schema.fields().len())?
        }
        LogicalPlan::Values(v) => Node {
            columns: vec![Sources::new(); v.schema.fields().len()],
            rows: Sources::new(),
        },
        LogicalPlan::EmptyRelation(e) => Node {
            columns: vec![Sources::new(); e.schema.fields().len()],
            rows: Sources::new(),
        },
        // Nodes that keep their input's columns as they are (aliases, limits, distinct,
        // repartitioning, subqueries as plans).
        other => {
            let inputs = other.inputs();
            match inputs.as_slice() {
                [input] => {
                    let mut node = read(input)?;
                    node.columns
                        .resize(other.schema().fields().len(), Sources::new());
                    node
                }
                _ => side_by_side(inputs, other.schema().fields().len())?,
            }
        }
    })
}

/// A subquery's plan, read: every column it outputs and what decides its rows.
fn subquery(sub: &Subquery) -> Result<Node> {
    read(&sub.subquery)
}

/// Adds to `out` what `e` depends on, used in `context`, over `input` (whose schema is
/// `schema`); what a subquery in it decides of the rows goes to `rows`.
fn expr(
    e: &Expr,
    context: Derivation,
    input: &Node,
    schema: &DFSchema,
    out: &mut Sources,
    rows: &mut Sources,
) -> Result<()> {
    // A value computed in a direct context; a value that decides something.
    let within = |kind: Derivation| {
        if context.is_direct() {
            context.max(kind)
        } else {
            context
        }
    };
    let deciding = |kind: Derivation| {
        if context.is_direct() { kind } else { context }
    };
    match e {
        Expr::Alias(a) => expr(&a.expr, context, input, schema, out, rows),
        Expr::Column(c) => {
            // A column the input does not have (an outer reference) adds nothing here.
            if let Ok(i) = schema.index_of_column(c)
                && let Some(sources) = input.columns.get(i)
            {
                add(out, sources, context);
            }
            Ok(())
        }
        Expr::AggregateFunction(f) => {
            for arg in &f.params.args {
                expr(
                    arg,
                    within(Derivation::Aggregation),
                    input,
                    schema,
                    out,
                    rows,
                )?;
            }
            if let Some(filter) = &f.params.filter {
                expr(filter, within(Derivation::Filter), input, schema, out, rows)?;
            }
            for sort in &f.params.order_by {
                expr(
                    &sort.expr,
                    within(Derivation::Sort),
                    input,
                    schema,
                    out,
                    rows,
                )?;
            }
            Ok(())
        }
        Expr::WindowFunction(w) => {
            let kind = match &w.fun {
                WindowFunctionDefinition::AggregateUDF(_) => Derivation::Aggregation,
                WindowFunctionDefinition::WindowUDF(_) => Derivation::Transformation,
            };
            for arg in &w.params.args {
                expr(arg, within(kind), input, schema, out, rows)?;
            }
            let by_window = deciding(Derivation::Window);
            for p in &w.params.partition_by {
                expr(p, by_window, input, schema, out, rows)?;
            }
            for sort in &w.params.order_by {
                expr(&sort.expr, by_window, input, schema, out, rows)?;
            }
            if let Some(filter) = &w.params.filter {
                expr(filter, by_window, input, schema, out, rows)?;
            }
            Ok(())
        }
        Expr::Case(c) => {
            let deciding = deciding(Derivation::Conditional);
            if let Some(base) = &c.expr {
                expr(base, deciding, input, schema, out, rows)?;
            }
            for (when, then) in &c.when_then_expr {
                expr(when, deciding, input, schema, out, rows)?;
                expr(
                    then,
                    within(Derivation::Transformation),
                    input,
                    schema,
                    out,
                    rows,
                )?;
            }
            if let Some(otherwise) = &c.else_expr {
                expr(
                    otherwise,
                    within(Derivation::Transformation),
                    input,
                    schema,
                    out,
                    rows,
                )?;
            }
            Ok(())
        }
        Expr::ScalarSubquery(sub) => {
            let node = subquery(sub)?;
            for sources in node.columns.iter().take(1) {
                add(out, sources, within(Derivation::Transformation));
            }
            merge(rows, &node.rows);
            Ok(())
        }
        Expr::Exists(Exists { subquery: sub, .. }) => {
            let node = subquery(sub)?;
            let deciding = deciding(Derivation::Conditional);
            add(out, &node.rows, deciding);
            Ok(())
        }
        Expr::InSubquery(InSubquery {
            expr: tested,
            subquery: sub,
            ..
        }) => {
            let deciding = deciding(Derivation::Conditional);
            expr(tested, deciding, input, schema, out, rows)?;
            let node = subquery(sub)?;
            for sources in &node.columns {
                add(out, sources, deciding);
            }
            add(out, &node.rows, deciding);
            Ok(())
        }
        other => {
            let mut failed = None;
            other.apply_children(|child| {
                if let Err(e) = expr(
                    child,
                    within(Derivation::Transformation),
                    input,
                    schema,
                    out,
                    rows,
                ) {
                    failed = Some(e);
                    return Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop);
                }
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            })?;
            failed.map_or(Ok(()), Err)
        }
    }
}
