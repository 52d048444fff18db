//! A transform file (`transforms/<dataset>.sql` in a product's folder) → [`TransformSpec`].
//!
//! The file is one read-only query. Its leading comment lines may say how the result is
//! written and when it runs, one `-- key: value` line each:
//!
//! ```sql
//! -- description: Engagement events without the bots' traffic.
//! -- materialize: append        (full | append | merge; default full)
//! -- watermark: occurred_at     (append: the column new rows are found by)
//! -- recompute_by: customer_id  (merge: recompute only the keys the inputs' new rows hold)
//! -- every: 1h                  (also run on an interval; default: no interval)
//! -- on_upstream: true          (run after a dataset it reads commits; default true)
//! SELECT … FROM artwork_engagement.engagement.events_raw WHERE NOT is_bot
//! ```
//!
//! Other comment lines are prose. A line of the form `-- word: …` whose word is not a key is
//! refused, so that a misspelt key is never silently ignored.

use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use tessera_core::{
    Materialization, Name, TransformSpec, parse_duration, referenced_datasets,
    sql::{MAX_NESTING, nesting, read_only, too_deep_message},
};

use crate::error::{Diagnostic, Result, SpecError};

/// The header keys a transform file may give.
pub const TRANSFORM_KEYS: [&str; 6] = [
    "description",
    "materialize",
    "watermark",
    "recompute_by",
    "every",
    "on_upstream",
];

/// Reads a transform file: `file` as the user named it (its stem is the dataset it computes).
pub fn transform_from_file(file: &str, text: &str) -> Result<TransformSpec> {
    let mut problems = Vec::new();
    let problem = |line: Option<usize>, field: &str, message: String| Diagnostic {
        file: file.to_string(),
        line,
        field: field.to_string(),
        message,
    };
    let stem = std::path::Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let dataset = match Name::parse(stem) {
        Ok(name) => Some(name),
        Err(e) => {
            problems.push(problem(
                None,
                "",
                format!("the file's name says which dataset it computes: {e}"),
            ));
            None
        }
    };

    let mut fields: Vec<(usize, &str, &str)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix("--") else {
            break;
        };
        let Some((key, value)) = comment.trim().split_once(':') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        if !TRANSFORM_KEYS.contains(&key) {
            problems.push(problem(
                Some(i + 1),
                key,
                format!(
                    "unknown header key {key:?}; a transform's header has {}",
                    TRANSFORM_KEYS.join(", ")
                ),
            ));
            continue;
        }
        if let Some((first, _, _)) = fields.iter().find(|(_, k, _)| *k == key) {
            problems.push(problem(
                Some(i + 1),
                key,
                format!("{key} is given twice (first on line {first})"),
            ));
            continue;
        }
        fields.push((i + 1, key, value.trim()));
    }
    let field = |key: &str| fields.iter().find(|(_, k, _)| *k == key).copied();

    // A column named by a header key, with its line.
    let mut column_field = |key: &str| {
        let (line, _, value) = field(key)?;
        Name::parse(value)
            .map(|name| (line, name))
            .map_err(|e| problems.push(problem(Some(line), key, e.to_string())))
            .ok()
    };
    let watermark = column_field("watermark");
    let recompute_by = column_field("recompute_by");
    let materialization = match field("materialize").map(|(line, _, v)| (line, v)) {
        None | Some((_, "full")) => Some(Materialization::FullRefresh),
        Some((_, "merge")) => match (&watermark, &recompute_by) {
            (Some(_), Some((line, _))) => {
                problems.push(problem(
                    Some(*line),
                    "recompute_by",
                    "a merge recomputes from its watermark or by the keys of new input rows, not both: keep one of `watermark` and `recompute_by`".to_string(),
                ));
                None
            }
            _ => Some(Materialization::Merge {
                watermark: watermark.as_ref().map(|(_, name)| name.clone()),
                recompute_by: recompute_by.as_ref().map(|(_, name)| name.clone()),
            }),
        },
        Some((line, "append")) => match &watermark {
            Some((_, name)) => Some(Materialization::Append {
                watermark: name.clone(),
            }),
            None => {
                problems.push(problem(
                    Some(line),
                    "watermark",
                    "an append transform names the column its new rows are found by: add `-- watermark: COLUMN`".to_string(),
                ));
                None
            }
        },
        Some((line, other)) => {
            problems.push(problem(
                Some(line),
                "materialize",
                format!("materialize is full, append or merge, not {other:?}"),
            ));
            None
        }
    };
    if let (Some((line, _)), Some(m)) = (&watermark, &materialization)
        && matches!(m, Materialization::FullRefresh)
    {
        problems.push(problem(
            Some(*line),
            "watermark",
            format!(
                "a watermark is for `materialize: append` or `merge`; this transform is {m}: it recomputes everything"
            ),
        ));
    }
    if let (Some((line, _)), Some(m)) = (&recompute_by, &materialization)
        && !matches!(m, Materialization::Merge { .. })
    {
        problems.push(problem(
            Some(*line),
            "recompute_by",
            format!(
                "recompute_by is for `materialize: merge`, which replaces the rows of the keys it recomputes; this transform is {m}"
            ),
        ));
    }
    let every = match field("every") {
        Some((line, _, value)) => match parse_duration(value).filter(|d| !d.is_zero()) {
            Some(d) => Some(d),
            None => {
                problems.push(problem(
                    Some(line),
                    "every",
                    format!("`every: {value}` is not a duration above zero (e.g. 15m, 1h)"),
                ));
                None
            }
        },
        None => None,
    };
    let on_upstream = match field("on_upstream") {
        None | Some((_, _, "true")) => true,
        Some((_, _, "false")) => false,
        Some((line, _, other)) => {
            problems.push(problem(
                Some(line),
                "on_upstream",
                format!("on_upstream is true or false, not {other:?}"),
            ));
            true
        }
    };

    let inputs = match query_inputs(text) {
        Ok(inputs) => Some(inputs),
        Err(message) => {
            problems.push(problem(None, "", message));
            None
        }
    };

    match (dataset, materialization, inputs) {
        (Some(dataset), Some(materialization), Some(inputs)) if problems.is_empty() => {
            Ok(TransformSpec {
                dataset,
                description: field("description").map(|(_, _, v)| v.to_string()),
                materialization,
                every,
                on_upstream,
                sql: text.to_string(),
                inputs,
            })
        }
        _ => Err(SpecError::Invalid(problems)),
    }
}

/// The datasets the file's one read-only query reads, or why it is not such a query.
fn query_inputs(text: &str) -> std::result::Result<Vec<tessera_core::DatasetRef>, String> {
    let mut statements = Parser::parse_sql(&GenericDialect {}, text)
        .map_err(|e| format!("the query does not parse: {e}"))?;
    let statement = match statements.len() {
        1 => statements.remove(0),
        0 => {
            return Err(
                "the file holds no query: write the SELECT that computes the dataset".into(),
            );
        }
        n => {
            return Err(format!(
                "a transform is one query; the file holds {n} statements"
            ));
        }
    };
    if nesting(&statement, MAX_NESTING).is_none() {
        return Err(too_deep_message(MAX_NESTING));
    }
    match &statement {
        sqlparser::ast::Statement::Query(_) => {}
        other => {
            let kind = read_only(other)
                .err()
                .unwrap_or_else(|| "this statement".into());
            return Err(format!(
                "a transform is a query (SELECT, WITH … SELECT); {kind} is not"
            ));
        }
    }
    let inputs = referenced_datasets(&statement)?;
    if inputs.is_empty() {
        return Err(
            "the query reads no dataset: a transform computes its dataset from others".into(),
        );
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(file: &str, text: &str) -> Vec<String> {
        transform_from_file(file, text)
            .unwrap_err()
            .diagnostics()
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn the_header_says_how_and_when_and_the_query_what_it_reads() {
        let text = "-- Clean events: what the bots did is left out.\n\
                    -- description: Engagement events without bot traffic\n\
                    -- materialize: append\n\
                    -- watermark: occurred_at\n\
                    -- every: 1h\n\
                    -- on_upstream: false\n\
                    SELECT * FROM web.engagement.events_raw -- materialize: nothing here\n\
                    WHERE NOT is_bot\n";
        let t = transform_from_file("transforms/events_clean.sql", text).unwrap();
        assert_eq!(t.dataset.as_str(), "events_clean");
        assert_eq!(
            t.description.as_deref(),
            Some("Engagement events without bot traffic")
        );
        assert_eq!(
            t.materialization,
            Materialization::Append {
                watermark: Name::parse("occurred_at").unwrap()
            }
        );
        assert_eq!(t.every, Some(std::time::Duration::from_secs(3600)));
        assert!(!t.on_upstream);
        assert_eq!(t.inputs, vec!["web.engagement.events_raw".parse().unwrap()]);

        let plain = transform_from_file(
            "daily.sql",
            "SELECT day, count(*) AS n FROM a.b.c GROUP BY day",
        )
        .unwrap();
        assert_eq!(plain.materialization, Materialization::FullRefresh);
        assert!(plain.on_upstream && plain.every.is_none());
    }

    #[test]
    fn a_bad_header_is_refused_line_by_line() {
        let text = "-- materialise: append\n-- materialize: append\n-- every: never\n-- on_upstream: yes\nSELECT 1 AS x FROM a.b.c";
        assert_eq!(
            messages("transforms/t.sql", text),
            [
                "transforms/t.sql:1: materialise: unknown header key \"materialise\"; a transform's header has description, materialize, watermark, recompute_by, every, on_upstream",
                "transforms/t.sql:2: watermark: an append transform names the column its new rows are found by: add `-- watermark: COLUMN`",
                "transforms/t.sql:3: every: `every: never` is not a duration above zero (e.g. 15m, 1h)",
                "transforms/t.sql:4: on_upstream: on_upstream is true or false, not \"yes\"",
            ]
        );
        assert_eq!(
            messages(
                "t.sql",
                "-- materialize: full\n-- watermark: at\nSELECT 1 AS x FROM a.b.c"
            ),
            [
                "t.sql:2: watermark: a watermark is for `materialize: append` or `merge`; this transform is full: it recomputes everything"
            ]
        );
        let merge = transform_from_file(
            "transforms/daily.sql",
            "-- materialize: merge\n-- watermark: day\nSELECT 1 AS day FROM a.b.c",
        )
        .unwrap();
        assert_eq!(
            merge.materialization,
            Materialization::Merge {
                watermark: Some(Name::parse("day").unwrap()),
                recompute_by: None,
            }
        );
        let by_key = transform_from_file(
            "transforms/totals.sql",
            "-- materialize: merge\n-- recompute_by: customer_id\nSELECT customer_id, count(*) AS n FROM a.b.c GROUP BY customer_id",
        )
        .unwrap();
        assert_eq!(
            by_key.materialization,
            Materialization::Merge {
                watermark: None,
                recompute_by: Some(Name::parse("customer_id").unwrap()),
            }
        );
        assert_eq!(
            messages(
                "t.sql",
                "-- materialize: merge\n-- watermark: day\n-- recompute_by: day\nSELECT 1 AS day FROM a.b.c"
            ),
            [
                "t.sql:3: recompute_by: a merge recomputes from its watermark or by the keys of new input rows, not both: keep one of `watermark` and `recompute_by`"
            ]
        );
        assert_eq!(
            messages(
                "t.sql",
                "-- materialize: append\n-- watermark: day\n-- recompute_by: day\nSELECT 1 AS day FROM a.b.c"
            ),
            [
                "t.sql:3: recompute_by: recompute_by is for `materialize: merge`, which replaces the rows of the keys it recomputes; this transform is append by day"
            ]
        );
    }

    #[test]
    fn only_one_query_that_reads_datasets_is_a_transform() {
        for (text, wanted) in [
            ("DELETE FROM a.b.c", "DELETE FROM is not"),
            ("SELECT 1; SELECT 2", "the file holds 2 statements"),
            ("SELEC 1", "does not parse"),
            ("SELECT 1", "reads no dataset"),
            ("SELECT * FROM b.c", "not named DOMAIN.PRODUCT.DATASET"),
            ("-- only a comment", "holds no query"),
        ] {
            let got = messages("transforms/x.sql", text);
            assert!(got.len() == 1 && got[0].contains(wanted), "{text}: {got:?}");
        }
        let got = messages("transforms/Bad-Name.sql", "SELECT * FROM a.b.c");
        assert!(got[0].contains("which dataset it computes"), "{got:?}");
    }
}
