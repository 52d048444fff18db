//! `tessera lint`: offline validation of standard files, the same verdict the server gives.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use tessera_spec::DocumentKind;

/// Lints every file (folders are searched); prints each verdict; fails when any file has errors.
pub fn run(paths: &[PathBuf]) -> Result<()> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            // SQL files are transforms only in a `transforms` folder.
            files.extend(
                spec_files(path, &["yaml", "yml", "json", "sql"])?
                    .into_iter()
                    .filter(|f| {
                        !is_sql(f)
                            || f.parent().and_then(|p| p.file_name()) == Some("transforms".as_ref())
                    }),
            );
        } else {
            files.push(path.clone());
        }
    }
    if files.is_empty() {
        bail!(
            "no .yaml, .yml or .json files (or transforms/*.sql) in {}",
            display_list(paths)
        );
    }
    let mut failed = 0;
    for file in &files {
        let name = file.display().to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {name}: cannot read: {e}");
                failed += 1;
                continue;
            }
        };
        if is_sql(file) {
            match tessera_spec::transform_from_file(&name, &text) {
                Ok(t) => println!(
                    "ok: {name}: transform of {} from {}",
                    t.dataset,
                    t.inputs
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Err(e) => {
                    failed += 1;
                    for d in e.diagnostics() {
                        eprintln!("error: {d}");
                    }
                }
            }
            continue;
        }
        let outcome = tessera_spec::lint(&name, &text);
        if outcome.errors.is_empty() {
            let what = match outcome.kind {
                Some(DocumentKind::Contract) => "ODCS contract",
                Some(DocumentKind::Product) => "ODPS product",
                Some(DocumentKind::Policy | DocumentKind::GlossaryTerm | DocumentKind::Source) => {
                    "Tessera"
                }
                None => "document",
            };
            println!("ok: {name}: {what} {}", outcome.title.unwrap_or_default());
        } else {
            failed += 1;
            for d in &outcome.errors {
                eprintln!("error: {d}");
            }
        }
        for d in &outcome.warnings {
            eprintln!("warning: {d} (valid by the standard, but Tessera cannot publish it as is)");
        }
    }
    if failed > 0 {
        bail!("{failed} of {} file(s) are not valid", files.len());
    }
    Ok(())
}

fn is_sql(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "sql")
}

fn display_list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a file is named to the server: its path as given, without a leading `./`, so that
/// `tessera apply ./shop/orders` and `tessera apply shop/orders` send the same names (a stored
/// file's name is part of what an apply compares).
pub fn sent_name(path: &Path) -> String {
    path.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect::<PathBuf>()
        .display()
        .to_string()
}

/// Files under `dir` (recursively, hidden entries skipped) whose extension is one of `extensions`,
/// sorted.
pub fn spec_files(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))?;
        for entry in entries {
            let path = entry?.path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e.to_ascii_lowercase().as_str()))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `tessera import FILE`: a Data Contract Specification file as ODCS v3.1.0 YAML, checked
/// against the ODCS schema before it is printed.
pub fn import(file: &Path) -> Result<()> {
    let doc = tessera_spec::SpecDocument::read(file)?;
    if !tessera_spec::is_dcs(&doc) {
        bail!(
            "{}: not a Data Contract Specification file (no `dataContractSpecification`)",
            file.display()
        );
    }
    let odcs = tessera_spec::dcs_to_odcs(&doc)?;
    tessera_spec::load_contract(&format!("{} (converted)", file.display()), &odcs)?;
    print!("{odcs}");
    Ok(())
}
