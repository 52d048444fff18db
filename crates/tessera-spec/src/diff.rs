//! What changed between two versions of a contract, and which changes break consumers.
//!
//! The documents are compared as data, not text: lists of schema objects and properties are
//! keyed by `name`, SLA properties by `property`, quality rules by `id` (else `name`, else
//! position) — as datacontract-cli's changelog does. Each change is classified with Tessera's
//! rules (datacontract-cli no longer classifies):
//!
//! | breaking | not breaking |
//! |---|---|
//! | a dataset or column removed | a new dataset |
//! | a column's `logicalType` or `physicalType` changed | a new optional column |
//! | a new required column; optional → required; → unique or primary key | required → optional |
//! | a constraint tightened: a higher minimum, a lower maximum, a new or changed pattern or format | a constraint loosened or removed |
//! | a new blocking quality rule, or a threshold that admits less | a rule removed, downgraded or loosened |
//! | an SLO weakened (e.g. latency 5 → 10 minutes, availability 99.9 % → 99.5 %) or removed | an SLO tightened or added |
//!
//! Descriptions, tags, owners, the version itself and everything else are not breaking.

use std::collections::BTreeMap;

use serde_json::Value;
use tessera_core::{Operator, Severity, duration_seconds};

/// How a path changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Removed,
    Updated,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Updated => "updated",
        }
    }
}

/// One change between two contract versions.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Dotted path with list items by key: `schema.orders.properties.amount.logicalType`.
    pub path: String,
    pub kind: ChangeKind,
    pub old: Option<Value>,
    pub new: Option<Value>,
    /// Why the change breaks consumers; `None` when it does not.
    pub breaking: Option<String>,
}

/// Every change from `old` to `new` (validated ODCS documents as JSON), in path order. An
/// added or removed dataset, column, SLA property or quality rule is one change (its fields are
/// not listed one by one).
pub fn diff_contracts(old: &Value, new: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    walk(
        &mut changes,
        &mut Vec::new(),
        Some(&normalise(old, None)),
        Some(&normalise(new, None)),
    );
    for change in &mut changes {
        change.breaking = classify(change);
    }
    classify_sla(&mut changes, old, new);
    changes
}

/// Lists of keyed objects become maps, so that items are compared by key, not position.
fn normalise(v: &Value, parent_key: Option<&str>) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalise(v, Some(k))))
                .collect(),
        ),
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
            let key_of = |(i, item): (usize, &Value)| -> String {
                let field = |f: &str| item.get(f).and_then(Value::as_str).map(str::to_string);
                match parent_key {
                    Some("slaProperties") => field("property"),
                    // A rule without id or name is known by what it measures, so that removing
                    // one rule does not make the next one look changed.
                    Some("quality") => field("id")
                        .or_else(|| field("name"))
                        .or_else(|| field("metric"))
                        .or_else(|| field("type")),
                    _ => field("name"),
                }
                .unwrap_or_else(|| format!("[{i}]"))
            };
            let mut map = serde_json::Map::new();
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for (i, item) in items.iter().enumerate() {
                let base = key_of((i, item));
                let n = seen.entry(base.clone()).or_default();
                *n += 1;
                let key = if *n == 1 { base } else { format!("{base}#{n}") };
                map.insert(key, normalise(item, None));
            }
            Value::Object(map)
        }
        other => other.clone(),
    }
}

/// Paths whose addition or removal is one change, not one per field.
fn is_unit(path: &[String]) -> bool {
    matches!(
        path.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["schema", _] | ["schema", _, "properties", _] | ["slaProperties", _] | [.., "quality", _]
    )
}

fn walk(out: &mut Vec<Change>, path: &mut Vec<String>, old: Option<&Value>, new: Option<&Value>) {
    let here = || path.join(".");
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: BTreeMap<&String, ()> = a.keys().chain(b.keys()).map(|k| (k, ())).collect();
            for key in keys.keys() {
                path.push((*key).clone());
                walk(out, path, a.get(*key), b.get(*key));
                path.pop();
            }
        }
        (None, Some(Value::Object(b))) if !is_unit(path) => {
            for (key, value) in b {
                path.push(key.clone());
                walk(out, path, None, Some(value));
                path.pop();
            }
        }
        (Some(Value::Object(a)), None) if !is_unit(path) => {
            for (key, value) in a {
                path.push(key.clone());
                walk(out, path, Some(value), None);
                path.pop();
            }
        }
        (Some(a), Some(b)) if a == b => {}
        (old, new) => out.push(Change {
            path: here(),
            kind: match (old, new) {
                (None, _) => ChangeKind::Added,
                (_, None) => ChangeKind::Removed,
                _ => ChangeKind::Updated,
            },
            old: old.cloned(),
            new: new.cloned(),
            breaking: None,
        }),
    }
}

fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().trim_end_matches('%').trim().parse().ok(),
        _ => None,
    }
}

fn is_true(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool).unwrap_or(false)
}

/// SLA properties where a larger value is a weaker promise (and the others where it is a
/// stronger one).
const LARGER_IS_WEAKER: &[&str] = &[
    "latency",
    "freshness",
    "frequency",
    "timetodetect",
    "timetonotify",
    "timetorepair",
    "errorrate",
];
const SMALLER_IS_WEAKER: &[&str] = &["availability", "throughput", "completeness"];

fn classify(change: &Change) -> Option<String> {
    let path: Vec<&str> = change.path.split('.').collect();
    let (old, new) = (change.old.as_ref(), change.new.as_ref());
    use ChangeKind::*;
    match (path.as_slice(), change.kind) {
        (["schema", t], Removed) => Some(format!("dataset {t} removed")),
        (["schema", _, "properties", c], Removed) => Some(format!("column {c} removed")),
        (["schema", _, "properties", c], Added) => {
            let required =
                new.is_some_and(|n| is_true(n.get("required")) || is_true(n.get("primaryKey")));
            required.then(|| format!("new required column {c}"))
        }
        (["schema", _, "properties", c, "logicalType" | "physicalType"], _) => Some(format!(
            "column {c} changes type ({} → {})",
            show(old),
            show(new)
        )),
        (["schema", _, "properties", c, "required"], _) if !is_true(old) && is_true(new) => {
            Some(format!("column {c} becomes required"))
        }
        (["schema", _, "properties", c, "primaryKey"], _) if !is_true(old) && is_true(new) => {
            Some(format!("column {c} becomes part of the primary key"))
        }
        (["schema", _, "properties", c, "unique"], _) if !is_true(old) && is_true(new) => {
            Some(format!("column {c} must become unique"))
        }
        (["schema", _, "properties", c, "logicalTypeOptions", option], kind) => {
            tightened_option(option, kind, old, new).then(|| {
                format!(
                    "constraint {option} on column {c} tightened ({} → {})",
                    show(old),
                    show(new)
                )
            })
        }
        ([.., "quality", rule], Added) => {
            let blocking = new.is_some_and(|n| {
                Severity::parse(n.get("severity").and_then(Value::as_str)).blocks()
                    && n.get("type")
                        .and_then(Value::as_str)
                        .is_none_or(|t| t == "library" || t == "sql")
            });
            blocking.then(|| format!("new blocking quality rule {rule}"))
        }
        ([.., "quality", rule, key], Updated | Added) if key.starts_with("must") => {
            let old_op = old.and_then(|v| Operator::from_odcs(key, v));
            let new_op = new.and_then(|v| Operator::from_odcs(key, v));
            match (old_op, new_op) {
                (Some(o), Some(n)) if o.admits_more_than(&n) => Some(format!(
                    "quality rule {rule} threshold tightened ({o} → {n})"
                )),
                (None, Some(_)) => Some(format!("quality rule {rule} threshold tightened")),
                _ => None,
            }
        }
        ([.., "quality", rule, "arguments", "validValues"], kind) => {
            let values = |v: Option<&Value>| v.and_then(Value::as_array).cloned();
            let dropped = match (kind, values(old), values(new)) {
                (Added, _, _) => true,
                (Updated, Some(before), Some(after)) => before.iter().any(|v| !after.contains(v)),
                _ => false,
            };
            dropped.then(|| {
                format!(
                    "quality rule {rule} accepts fewer values ({} → {})",
                    show(old),
                    show(new)
                )
            })
        }
        ([.., "quality", rule, "arguments", "pattern"], Added | Updated) => {
            Some(format!("quality rule {rule} pattern changed"))
        }
        ([.., "quality", rule, "severity"], _) => {
            let before = Severity::parse(old.and_then(Value::as_str));
            let after = Severity::parse(new.and_then(Value::as_str));
            (!before.blocks() && after.blocks())
                .then(|| format!("quality rule {rule} becomes blocking"))
        }
        (["slaProperties", p], Removed) => Some(format!("SLO {p} removed")),
        _ => None,
    }
}

/// Whether a `logicalTypeOptions` change refuses values the old contract accepted.
fn tightened_option(
    option: &str,
    kind: ChangeKind,
    old: Option<&Value>,
    new: Option<&Value>,
) -> bool {
    let (a, b) = (number(old), number(new));
    match (option, kind) {
        (_, ChangeKind::Removed) => false,
        ("minimum" | "exclusiveMinimum" | "minLength" | "minItems", ChangeKind::Added) => true,
        ("maximum" | "exclusiveMaximum" | "maxLength" | "maxItems", ChangeKind::Added) => true,
        ("minimum" | "exclusiveMinimum" | "minLength" | "minItems", _) => {
            matches!((a, b), (Some(a), Some(b)) if b > a)
        }
        ("maximum" | "exclusiveMaximum" | "maxLength" | "maxItems", _) => {
            matches!((a, b), (Some(a), Some(b)) if b < a)
        }
        ("pattern" | "format" | "timezone", _) => true,
        _ => false,
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "none".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Classifies changes of SLA values with both documents at hand: a value and its unit are read
/// together, so `5 m` → `1 h` compares durations, not bare numbers.
fn classify_sla(changes: &mut [Change], old: &Value, new: &Value) {
    let sla = |doc: &Value, name: &str| -> Option<(f64, Option<String>)> {
        let items = doc.get("slaProperties")?.as_array()?;
        let item = items
            .iter()
            .find(|i| i.get("property").and_then(Value::as_str) == Some(name))?;
        Some((
            number(item.get("value"))?,
            item.get("unit").and_then(Value::as_str).map(str::to_string),
        ))
    };
    for change in changes.iter_mut() {
        let path: Vec<&str> = change.path.split('.').collect();
        let ["slaProperties", p, "value" | "unit"] = path.as_slice() else {
            continue;
        };
        let (Some((ov, ou)), Some((nv, nu))) = (sla(old, p), sla(new, p)) else {
            continue;
        };
        let (o, n) = match (
            duration_seconds(ov, ou.as_deref()),
            duration_seconds(nv, nu.as_deref()),
        ) {
            (Some(o), Some(n)) if ou.is_some() || nu.is_some() => (o, n),
            _ => (ov, nv),
        };
        let name = p.to_ascii_lowercase();
        // Retention is checked as the age of the oldest data (a limit, as datacontract-cli
        // checks it): a longer one weakens the limit, a shorter one takes history away from
        // consumers. Both break someone's expectations.
        let how = if name == "retention" && n != o {
            Some(if n > o { "weakened" } else { "shortened" })
        } else if (LARGER_IS_WEAKER.contains(&name.as_str()) && n > o)
            || (SMALLER_IS_WEAKER.contains(&name.as_str()) && n < o)
        {
            Some("weakened")
        } else {
            None
        };
        change.breaking = how.map(|how| {
            format!(
                "SLO {p} {how} ({ov}{} → {nv}{})",
                ou.map(|u| format!(" {u}")).unwrap_or_default(),
                nu.map(|u| format!(" {u}")).unwrap_or_default()
            )
        });
    }
}

/// The major number of a semantic version (`MAJOR.MINOR.PATCH`, a leading `v` allowed).
pub fn major_version(version: &str) -> Option<u64> {
    let v = version.trim().trim_start_matches('v');
    let mut parts = v.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u64>().ok()?;
    Some(major)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(path: &str) -> Value {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/standards/datacontract-cli/tests/fixtures/changelog")
            .join(path);
        crate::SpecDocument::read(&file).unwrap().value
    }

    #[test]
    fn the_changelog_pair_classifies_as_the_standards_readme_says() {
        let changes = diff_contracts(
            &load("integration/changelog_integration_v1.yaml"),
            &load("integration/changelog_integration_v2.yaml"),
        );
        let summary: Vec<(&str, &str, bool)> = changes
            .iter()
            .map(|c| (c.kind.as_str(), c.path.as_str(), c.breaking.is_some()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("added", "schema.customers", false),
                ("removed", "schema.orders.properties.customer_id", true),
                (
                    "updated",
                    "schema.orders.properties.order_date.logicalType",
                    true
                ),
                (
                    "updated",
                    "schema.orders.properties.order_id.description",
                    false
                ),
                ("added", "schema.orders.properties.region", false),
                (
                    "updated",
                    "schema.orders.properties.total_amount.required",
                    true
                ),
                ("updated", "slaProperties.availability.value", true),
                ("updated", "version", false),
            ]
        );
        let reasons: Vec<&str> = changes
            .iter()
            .filter_map(|c| c.breaking.as_deref())
            .collect();
        assert_eq!(
            reasons,
            vec![
                "column customer_id removed",
                "column order_date changes type (string → date)",
                "column total_amount becomes required",
                "SLO availability weakened (99.9 → 99.5)",
            ]
        );
    }

    fn contract(body: &str) -> Value {
        let text = format!(
            "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\n{body}"
        );
        crate::SpecDocument::parse("c.yaml", &text).unwrap().value
    }

    #[test]
    fn constraints_rules_and_slos_tighten_or_loosen() {
        let old = contract(
            "schema:\n  - name: t\n    properties:\n      - name: a\n        logicalType: integer\n        logicalTypeOptions:\n          minimum: 0\n          maximum: 10\n        quality:\n          - id: few_nulls\n            metric: nullValues\n            mustBeLessThan: 5\nslaProperties:\n  - property: latency\n    value: 5\n    unit: m\n",
        );
        let new = contract(
            "schema:\n  - name: t\n    properties:\n      - name: a\n        logicalType: integer\n        logicalTypeOptions:\n          minimum: 1\n          maximum: 20\n        quality:\n          - id: few_nulls\n            metric: nullValues\n            mustBeLessThan: 2\n          - metric: duplicateValues\n            mustBe: 0\n            severity: warning\nslaProperties:\n  - property: latency\n    value: 1\n    unit: h\n",
        );
        let changes = diff_contracts(&old, &new);
        let breaking: Vec<(&str, Option<&str>)> = changes
            .iter()
            .map(|c| (c.path.as_str(), c.breaking.as_deref()))
            .collect();
        assert_eq!(
            breaking,
            vec![
                ("schema.t.properties.a.logicalTypeOptions.maximum", None),
                (
                    "schema.t.properties.a.logicalTypeOptions.minimum",
                    Some("constraint minimum on column a tightened (0 → 1)")
                ),
                ("schema.t.properties.a.quality.duplicateValues", None),
                (
                    "schema.t.properties.a.quality.few_nulls.mustBeLessThan",
                    Some("quality rule few_nulls threshold tightened (< 5 → < 2)")
                ),
                (
                    "slaProperties.latency.unit",
                    Some("SLO latency weakened (5 m → 1 h)")
                ),
                (
                    "slaProperties.latency.value",
                    Some("SLO latency weakened (5 m → 1 h)")
                ),
            ]
        );
        // The other way round, everything loosens (a rule removed, a lower minimum, a lower
        // threshold, a shorter latency) except the maximum, which tightens.
        let back = diff_contracts(&new, &old);
        let breaking: Vec<&str> = back.iter().filter_map(|c| c.breaking.as_deref()).collect();
        assert_eq!(
            breaking,
            vec!["constraint maximum on column a tightened (20 → 10)"]
        );
    }

    #[test]
    fn rules_without_ids_valid_values_and_retention() {
        let doc = |rules: &str, valid: &str, retention: &str| {
            contract(&format!(
                "schema:\n  - name: t\n    quality:\n{rules}    properties:\n      - name: s\n        logicalType: string\n        quality:\n          - metric: invalidValues\n            arguments:\n              validValues: {valid}\n            mustBe: 0\nslaProperties:\n  - property: retention\n    value: {retention}\n    unit: d\n    element: t.s\n"
            ))
        };
        let two_rules = "      - metric: rowCount\n        mustBeGreaterThan: 0\n      - metric: duplicateValues\n        arguments:\n          properties: [s]\n        mustBe: 0\n";
        let one_rule = "      - metric: duplicateValues\n        arguments:\n          properties: [s]\n        mustBe: 0\n";
        let breaking = |old: &Value, new: &Value| -> Vec<String> {
            diff_contracts(old, new)
                .into_iter()
                .filter_map(|c| c.breaking)
                .collect()
        };
        let base = doc(two_rules, "[x, y, z]", "30");
        // Removing a rule without an id loosens the contract; the other rule is unchanged.
        let fewer = doc(one_rule, "[x, y, z]", "30");
        let changes = diff_contracts(&base, &fewer);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(
            (changes[0].path.as_str(), changes[0].breaking.clone()),
            ("schema.t.quality.rowCount", None)
        );
        // Fewer valid values refuse what was accepted; more do not.
        assert_eq!(
            breaking(&base, &doc(two_rules, "[x, y]", "30")),
            vec![
                "quality rule invalidValues accepts fewer values ([\"x\",\"y\",\"z\"] → [\"x\",\"y\"])"
            ]
        );
        assert!(breaking(&base, &doc(two_rules, "[x, y, z, w]", "30")).is_empty());
        // Retention breaks both ways: a longer limit, or less history.
        assert_eq!(
            breaking(&base, &doc(two_rules, "[x, y, z]", "60")),
            vec!["SLO retention weakened (30 d → 60 d)"]
        );
        assert_eq!(
            breaking(&base, &doc(two_rules, "[x, y, z]", "7")),
            vec!["SLO retention shortened (30 d → 7 d)"]
        );
    }

    #[test]
    fn versions_are_read_as_semver() {
        assert_eq!(major_version("1.2.3"), Some(1));
        assert_eq!(major_version("v2.0.0-rc.1"), Some(2));
        assert_eq!(major_version("latest"), None);
        assert_eq!(major_version("3"), None);
    }
}
