//! The SQL Tessera accepts, wherever it comes from (a query over HTTP, a contract's `sql` rule):
//! one statement that only reads, and no deeper than the planner can take.
//!
//! A parser bounds nesting by parentheses, but chains such as `1+1+…+1`, `a=1 OR a=2 OR …`,
//! `… UNION … UNION …` or a `FROM` with thousands of joins are parsed in a loop into a tree as
//! deep as the chain is long, and every later walk over that tree (planning, optimising,
//! hashing, printing, dropping) recurses once per level. [`nesting`] measures that depth
//! without recursing deeper than the limit it is given, so a statement can be refused before
//! anything else walks it.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Query, Select, SetExpr, Statement, Visit, Visitor};

/// The deepest nesting of expressions, set operations, joins and subqueries a statement may
/// have. Deeper statements are refused with a message that says so.
pub const MAX_NESTING: usize = 1_000;

/// Whether a statement only reads: a query, `EXPLAIN` of one, `DESCRIBE` and the `SHOW`
/// statements. `Err` names the statement's kind ("DROP TABLE", "INSERT INTO") for a message.
pub fn read_only(statement: &Statement) -> Result<(), String> {
    match statement {
        Statement::Query(_)
        | Statement::ExplainTable { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowViews { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ShowVariable { .. } => Ok(()),
        Statement::Explain { statement, .. } => read_only(statement),
        other => Err(statement_kind(other)),
    }
}

/// The leading keywords of a statement as the parser prints them: "DROP TABLE", "INSERT INTO".
pub fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let kind: Vec<&str> = text
        .split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .take(3)
        .collect();
    if kind.is_empty() {
        "this".to_string()
    } else {
        kind.join(" ")
    }
}

/// How deeply `statement` nests, or `None` when it nests deeper than `limit` (measuring stops
/// there, so this never recurses much deeper than `limit` levels).
pub fn nesting(statement: &Statement, limit: usize) -> Option<usize> {
    let mut depth = Depth {
        current: 0,
        deepest: 0,
        limit,
    };
    match statement.visit(&mut depth) {
        ControlFlow::Continue(()) => Some(depth.deepest),
        ControlFlow::Break(()) => None,
    }
}

/// The refusal for a statement deeper than [`MAX_NESTING`].
pub fn too_deep_message(limit: usize) -> String {
    format!(
        "the statement nests deeper than {limit} levels (expressions such as a+b+…, AND/OR chains, UNIONs, joins and subqueries count): split it up, use IN (…) for long lists of alternatives, or use a join"
    )
}

struct Depth {
    current: usize,
    deepest: usize,
    limit: usize,
}

impl Depth {
    fn enter(&mut self, levels: usize) -> ControlFlow<()> {
        self.current += levels;
        self.deepest = self.deepest.max(self.current);
        if self.current > self.limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn leave(&mut self, levels: usize) -> ControlFlow<()> {
        self.current -= levels;
        ControlFlow::Continue(())
    }
}

impl Visitor for Depth {
    type Break = ();

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.enter(1)
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.leave(1)
    }

    // A chain of set operations is a left-deep tree the visitor would descend without a hook
    // per level: it is measured here, in a loop, before the visitor goes down it.
    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.enter(1 + set_operations(&query.body, self.limit))
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.leave(1 + set_operations(&query.body, self.limit))
    }

    // Every table and join of a FROM is one more level of the plan.
    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        self.enter(relations(select))
    }

    fn post_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        self.leave(relations(select))
    }
}

fn relations(select: &Select) -> usize {
    select.from.iter().map(|t| 1 + t.joins.len()).sum()
}

/// The length of the longest chain of set operations under `body`, counted without recursion
/// along the chain and capped just above `limit`.
fn set_operations(body: &SetExpr, limit: usize) -> usize {
    let mut deepest = 0;
    let mut pending: Vec<(&SetExpr, usize)> = vec![(body, 0)];
    while let Some((node, depth)) = pending.pop() {
        deepest = deepest.max(depth);
        if deepest > limit {
            break;
        }
        if let SetExpr::SetOperation { left, right, .. } = node {
            pending.push((left, depth + 1));
            pending.push((right, depth + 1));
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    fn parse(sql: &str) -> Statement {
        Parser::parse_sql(&GenericDialect {}, sql)
            .unwrap()
            .pop()
            .unwrap()
    }

    #[test]
    fn chains_count_one_level_per_link() {
        let chain = |n: usize| format!("SELECT {}", vec!["1"; n].join(" + "));
        let shallow = nesting(&parse(&chain(10)), 100).unwrap();
        assert!((10..20).contains(&shallow), "{shallow}");
        assert_eq!(nesting(&parse(&chain(500)), 100), None);
        let unions = vec!["SELECT 1"; 300].join(" UNION ALL ");
        assert_eq!(nesting(&parse(&unions), 100), None);
        let joins: String = (0..300).map(|i| format!(" JOIN t{i} ON true")).collect();
        assert_eq!(
            nesting(&parse(&format!("SELECT 1 FROM t{joins}")), 100),
            None
        );
        // A long flat list is wide, not deep.
        let list: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
        let wide = format!("SELECT * FROM t WHERE x IN ({})", list.join(", "));
        assert!(nesting(&parse(&wide), 100).is_some());
    }

    #[test]
    fn reading_statements_pass_and_others_are_named() {
        for sql in [
            "SELECT 1",
            "EXPLAIN SELECT 1",
            "DESCRIBE a.b.c",
            "SHOW TABLES",
            "SHOW COLUMNS FROM a.b.c",
            "SHOW datafusion.execution.batch_size",
            "SHOW ALL",
        ] {
            assert_eq!(read_only(&parse(sql)), Ok(()), "{sql}");
        }
        assert_eq!(
            read_only(&parse("DROP TABLE a.b.c")),
            Err("DROP TABLE".into())
        );
        assert_eq!(
            read_only(&parse("EXPLAIN INSERT INTO t VALUES (1)")),
            Err("INSERT INTO".into())
        );
    }
}
