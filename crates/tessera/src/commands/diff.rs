//! `tessera diff OLD NEW`: what changed between two versions of a contract, each change marked
//! breaking or not (offline).

use std::path::Path;

use anyhow::{Result, bail};
use comfy_table::{Table, presets};
use serde_json::{Value, json};
use tessera_spec::{DocumentKind, SpecDocument, diff_contracts, major_version, validate};

use crate::cli::DiffFormat;

fn read(path: &Path) -> Result<SpecDocument> {
    let doc = SpecDocument::read(path)?;
    if validate(&doc)? != DocumentKind::Contract {
        bail!(
            "{}: not a data contract (ODCS): `tessera diff` compares two versions of a contract",
            path.display()
        );
    }
    Ok(doc)
}

/// A value for the table, at most 40 characters.
fn short(v: Option<&Value>) -> String {
    let text = match v {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(_)) => "{…}".into(),
        Some(other) => other.to_string(),
    };
    match text.char_indices().nth(39) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

pub fn run(old: &Path, new: &Path, format: DiffFormat, fail_on_breaking: bool) -> Result<()> {
    let (a, b) = (read(old)?, read(new)?);
    let id = |d: &SpecDocument| {
        d.value
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    if id(&a) != id(&b) {
        bail!(
            "{} is contract {:?} and {} is contract {:?}: `tessera diff` compares two versions of one contract",
            old.display(),
            id(&a),
            new.display(),
            id(&b)
        );
    }
    let changes = diff_contracts(&a.value, &b.value);
    let version = |d: &SpecDocument| {
        d.value
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    let (va, vb) = (version(&a), version(&b));
    let breaking = changes.iter().filter(|c| c.breaking.is_some()).count();
    let major_bump =
        matches!((major_version(&va), major_version(&vb)), (Some(x), Some(y)) if y > x);
    match format {
        DiffFormat::Table => {
            if changes.is_empty() {
                println!("No changes from {va} to {vb}.");
            } else {
                let mut t = Table::new();
                t.load_preset(presets::NOTHING)
                    .set_header(vec!["CHANGE", "PATH", "OLD", "NEW", "BREAKING"]);
                for c in &changes {
                    t.add_row(vec![
                        c.kind.as_str().to_string(),
                        c.path.clone(),
                        short(c.old.as_ref()),
                        short(c.new.as_ref()),
                        c.breaking
                            .clone()
                            .map(|r| format!("yes: {r}"))
                            .unwrap_or_else(|| "no".into()),
                    ]);
                }
                println!("{t}");
                let verdict = match (breaking, major_bump) {
                    (0, _) => "no breaking change".to_string(),
                    (n, true) => format!(
                        "{n} breaking, with a major version bump ({va} -> {vb}): can be applied"
                    ),
                    (n, false) => format!(
                        "{n} breaking, without a major version bump ({va} -> {vb}): `tessera apply` refuses it"
                    ),
                };
                println!("{} change(s); {verdict}.", changes.len());
            }
        }
        DiffFormat::Json => {
            let list: Vec<Value> = changes
                .iter()
                .map(|c| {
                    json!({
                        "path": c.path,
                        "change": c.kind.as_str(),
                        "old": c.old,
                        "new": c.new,
                        "breaking": c.breaking.is_some(),
                        "reason": c.breaking,
                    })
                })
                .collect();
            let out = json!({
                "old_version": va,
                "new_version": vb,
                "breaking": breaking,
                "major_version_bump": major_bump,
                "changes": list,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    if fail_on_breaking && breaking > 0 && !major_bump {
        bail!("{breaking} breaking change(s) without a major version bump");
    }
    Ok(())
}
