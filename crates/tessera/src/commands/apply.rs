//! `tessera apply DIR`: sends a product folder to the server and prints the plan it carried out.

use std::path::Path;

use anyhow::{Context, Result, bail};
use tessera_server::views::{Action, ApplyPlan, ApplyRequest, SourceFile};

use crate::client::Client;
use crate::commands::lint::{sent_name, spec_files};

/// The files of a product folder: `*.odps.yaml` and `*.odcs.yaml` (also `.yml` and `.json`),
/// in any subfolder, the domain policies in `policies/` and the sources in `sources/`
/// (`*.yaml`), and the transforms in `transforms/` (`*.sql`). Other files (data) are not sent.
pub fn read_folder(dir: &Path) -> Result<Vec<SourceFile>> {
    if !dir.is_dir() {
        bail!(
            "{} is not a folder: apply takes a product folder (one *.odps.yaml and its *.odcs.yaml contracts)",
            dir.display()
        );
    }
    let mut files = Vec::new();
    for path in spec_files(dir, &["yaml", "yml", "json", "sql"])? {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let standard = [".odps.", ".odcs."]
            .iter()
            .any(|marker| name.contains(marker));
        let in_folder = |folder: &str| path.parent().is_some_and(|p| p == dir.join(folder));
        let policy = in_folder("policies") || in_folder("sources");
        if name.ends_with(".sql") {
            if !in_folder("transforms") {
                continue;
            }
        } else if !standard && !policy {
            continue;
        }
        let content = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        files.push(SourceFile {
            name: sent_name(&path),
            content,
        });
    }
    if files.is_empty() {
        bail!("no *.odps.yaml or *.odcs.yaml files in {}", dir.display());
    }
    Ok(files)
}

pub async fn run(client: &Client, dir: &Path, dry_run: bool) -> Result<()> {
    let request = ApplyRequest {
        files: read_folder(dir)?,
        dry_run,
    };
    let plan: ApplyPlan = client.post(&["api", "v1", "apply"], &request).await?;
    print_plan(&plan);
    Ok(())
}

pub fn print_plan(plan: &ApplyPlan) {
    // With no policy in force there is nothing to report; the line would be noise.
    if let Some(outcome) = plan.policies.as_ref().filter(|o| o.evaluated > 0) {
        println!(
            "Governance: {} polic{} evaluated on {}, {} blocking, {} warning(s).",
            outcome.evaluated,
            if outcome.evaluated == 1 { "y" } else { "ies" },
            plan.product,
            outcome.blocking,
            outcome.warnings
        );
        for v in &outcome.violations {
            println!("  {}", tessera_server::render_violation(v));
        }
    }
    if plan.is_noop() {
        println!("{}: no changes, everything is up to date.", plan.product);
        return;
    }
    println!("Plan for {}:", plan.product);
    let count = |a: Action| plan.changes.iter().filter(|c| c.action == a).count();
    for c in &plan.changes {
        let sign = match c.action {
            Action::Create => "+ create   ",
            Action::Change => "~ change   ",
            Action::Unchanged => "  unchanged",
            Action::Remove => "- remove   ",
        };
        let kind = format!("{:?}", c.kind).to_ascii_lowercase();
        match &c.detail {
            Some(d) => println!("  {sign} {kind:<9} {} ({d})", c.name),
            None => println!("  {sign} {kind:<9} {}", c.name),
        }
    }
    if !plan.impact.is_empty() {
        println!("Breaking changes reach downstream datasets (tell their owners):");
        for h in &plan.impact {
            println!(
                "  {} (product {}, owner team {}), computed from {}",
                h.dataset,
                h.product,
                h.owner.as_deref().unwrap_or("none"),
                h.changed
            );
        }
    }
    let (create, change, unchanged) = (
        count(Action::Create),
        count(Action::Change) + count(Action::Remove),
        count(Action::Unchanged),
    );
    if plan.applied {
        println!("Applied: {create} created, {change} changed, {unchanged} unchanged.");
    } else {
        println!(
            "Dry run, nothing applied: {create} to create, {change} to change, {unchanged} unchanged."
        );
    }
}
