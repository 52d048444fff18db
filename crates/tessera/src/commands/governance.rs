//! `tessera policy apply|list|show|test|check|disable|enable|delete`: governance policies,
//! through the API.

use std::path::Path;

use anyhow::{Context, Result, bail};
use tessera_server::render_violation;
use tessera_server::views::{
    GovernancePolicyView, PolicyCheckRequest, PolicyEvaluationView, PolicyFilesRequest,
    PolicyOutcomeView, PolicyTestRequest, SourceFile,
};

use crate::cli::{GovernanceAction, ListFormat};
use crate::client::Client;

fn read_file(path: &Path) -> Result<SourceFile> {
    Ok(SourceFile {
        name: path.display().to_string(),
        content: std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?,
    })
}

pub async fn policy(client: &Client, action: GovernanceAction) -> Result<()> {
    let policies = ["api", "v1", "governance", "policies"];
    match action {
        GovernanceAction::Apply { files } => {
            let request = PolicyFilesRequest {
                files: files.iter().map(|f| read_file(f)).collect::<Result<_>>()?,
            };
            let applied: Vec<GovernancePolicyView> = client.put(&policies, &request).await?;
            for p in &applied {
                println!(
                    "applied global policy {} ({}, {})",
                    p.id, p.severity, p.file_name
                );
            }
            Ok(())
        }
        GovernanceAction::List { format } => {
            let all: Vec<GovernancePolicyView> = client.get(&policies, &[]).await?;
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&all)?);
                return Ok(());
            }
            let mut t = crate::commands::catalog::table(&[
                "ID",
                "ORIGIN",
                "SEVERITY",
                "ENABLED",
                "DESCRIPTION",
            ]);
            for p in &all {
                let origin = match (&p.domain, &p.product) {
                    (Some(d), Some(pr)) => format!("domain {d} ({d}.{pr})"),
                    _ => p.origin.clone(),
                };
                let severity = match &p.extends {
                    Some(e) => format!("{} (raises {e})", p.severity),
                    None => p.severity.clone(),
                };
                t.add_row(vec![
                    p.id.clone(),
                    origin,
                    severity,
                    if p.enabled { "yes" } else { "no" }.to_string(),
                    p.description.clone(),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        GovernanceAction::Show { id } => {
            let p: GovernancePolicyView = client
                .get(&["api", "v1", "governance", "policies", &id], &[])
                .await?;
            println!("{}: {}", p.id, p.description);
            println!(
                "  origin: {}{}",
                p.origin,
                match (&p.domain, &p.product) {
                    (Some(d), Some(pr)) => format!(" (domain {d}, kept with product {d}.{pr})"),
                    _ => String::new(),
                }
            );
            println!(
                "  severity: {}{}",
                p.severity,
                if p.enabled { "" } else { " (turned off)" }
            );
            if let Some(e) = &p.extends {
                println!("  extends: {e}");
            }
            if let Some(m) = &p.message {
                println!("  message: {m}");
            }
            println!("  file: {}", p.file_name);
            if let Some(r) = &p.rationale {
                println!("  rationale: {r}");
            }
            if let Some(q) = &p.query {
                println!("  query:");
                for line in q.lines() {
                    println!("    {line}");
                }
            }
            Ok(())
        }
        GovernanceAction::Test { file, dir } => {
            let request = PolicyTestRequest {
                policy: read_file(&file)?,
                files: crate::commands::apply::read_folder(&dir)?,
            };
            let found: PolicyEvaluationView = client
                .post(&["api", "v1", "governance", "policies", "test"], &request)
                .await?;
            print_outcome(&found.outcome);
            if found.outcome.blocking > 0 {
                bail!(
                    "{}: {} blocking violation(s) of {}",
                    found.target,
                    found.outcome.blocking,
                    file.display()
                );
            }
            Ok(())
        }
        GovernanceAction::Check { target, format } => {
            let found: PolicyEvaluationView = client
                .post(
                    &["api", "v1", "governance", "check"],
                    &PolicyCheckRequest { target },
                )
                .await?;
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else {
                println!(
                    "{}: {} polic{} on {} product(s)",
                    found.target,
                    found.outcome.evaluated,
                    if found.outcome.evaluated == 1 {
                        "y"
                    } else {
                        "ies"
                    },
                    found.products
                );
                print_outcome(&found.outcome);
            }
            if found.outcome.blocking > 0 {
                bail!(
                    "{}: {} blocking violation(s): the products concerned cannot publish until they are fixed",
                    found.target,
                    found.outcome.blocking
                );
            }
            Ok(())
        }
        GovernanceAction::Disable { id } => switch(client, &id, "disable").await,
        GovernanceAction::Enable { id } => switch(client, &id, "enable").await,
        GovernanceAction::Delete { id } => {
            let p: GovernancePolicyView = client
                .delete(&["api", "v1", "governance", "policies", &id])
                .await?;
            println!("removed global policy {} ({})", p.id, p.file_name);
            Ok(())
        }
    }
}

async fn switch(client: &Client, id: &str, verb: &str) -> Result<()> {
    let p: GovernancePolicyView = client
        .post(
            &["api", "v1", "governance", "policies", id, verb],
            &serde_json::json!({}),
        )
        .await?;
    println!(
        "standard policy {} is {} for the whole mesh",
        p.id,
        if p.enabled { "on" } else { "off" }
    );
    Ok(())
}

/// The violations, blocking first, one per line; or that there are none.
pub fn print_outcome(outcome: &PolicyOutcomeView) {
    if outcome.violations.is_empty() {
        println!("  no violations ({} policies evaluated)", outcome.evaluated);
        return;
    }
    for v in &outcome.violations {
        println!("  {}", render_violation(v));
    }
    println!(
        "  {} blocking, {} warning(s)",
        outcome.blocking, outcome.warnings
    );
}
