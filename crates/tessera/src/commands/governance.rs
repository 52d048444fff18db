//! `tessera policy apply|list|show|test|check|report|disable|enable|delete`: governance
//! policies and the compliance scorecard; `tessera glossary apply|list|show`: glossary terms;
//! through the API.

use std::path::Path;

use anyhow::{Context, Result, bail};
use tessera_server::render_violation;
use tessera_server::views::{
    GlossaryApplyView, GlossaryFilesRequest, GlossaryTermView, GovernancePolicyView,
    PolicyCheckRequest, PolicyEvaluationView, PolicyFilesRequest, PolicyOutcomeView,
    PolicyTestRequest, ScorecardView, SourceFile,
};

use crate::cli::{GlossaryAction, GovernanceAction, ListFormat, ReportFormat};
use crate::client::Client;

fn read_file(path: &Path) -> Result<SourceFile> {
    Ok(SourceFile {
        name: crate::commands::lint::sent_name(path),
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
        GovernanceAction::Report {
            target,
            format,
            history,
        } => report(client, target.as_deref(), format, history).await,
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

/// `tessera policy report`: the scorecard as the server computes it.
async fn report(
    client: &Client,
    target: Option<&str>,
    format: ReportFormat,
    history: usize,
) -> Result<()> {
    let history = history.to_string();
    let mut query = vec![("history", history.as_str())];
    if let Some(t) = target {
        query.push(("target", t));
    }
    let path = ["api", "v1", "governance", "scorecard"];
    if format == ReportFormat::Csv {
        query.push(("format", "csv"));
        print!("{}", client.get_text(&path, &query).await?);
        return Ok(());
    }
    let card: ScorecardView = client.get(&path, &query).await?;
    if format == ReportFormat::Json {
        println!("{}", serde_json::to_string_pretty(&card)?);
        return Ok(());
    }
    let share = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{s:.1} %"));
    let t = &card.total;
    println!(
        "{} of {} product(s) compliant; {} of {} policy standings passing ({})",
        t.compliant,
        t.products,
        t.passing,
        t.standings,
        share(t.share_passing)
    );
    let mut domains =
        crate::commands::catalog::table(&["DOMAIN", "PRODUCTS", "COMPLIANT", "PASSING"]);
    for d in &card.domains {
        domains.add_row(vec![
            d.domain.clone(),
            d.share.products.to_string(),
            d.share.compliant.to_string(),
            format!(
                "{}/{} ({})",
                d.share.passing,
                d.share.standings,
                share(d.share.share_passing)
            ),
        ]);
    }
    println!("{domains}");
    for p in &card.products {
        println!(
            "{}.{}: {}, {}/{} passing ({}), evaluated {}",
            p.domain,
            p.product,
            if p.compliant {
                "compliant"
            } else {
                "NOT compliant"
            },
            p.passing,
            p.policies,
            share(p.share_passing),
            p.evaluated_at.as_deref().unwrap_or("never")
        );
        let mut standings = crate::commands::catalog::table(&[
            "POLICY",
            "SEVERITY",
            "STATUS",
            "VIOLATIONS",
            "SINCE",
        ]);
        for s in &p.standings {
            standings.add_row(vec![
                s.policy_id.clone(),
                s.severity.clone(),
                if s.passing { "pass" } else { "fail" }.to_string(),
                s.violations.to_string(),
                s.since.clone(),
            ]);
        }
        if !p.standings.is_empty() {
            println!("{standings}");
        }
        if p.history.len() > 1 {
            let points: Vec<String> = p
                .history
                .iter()
                .map(|h| format!("{}/{}", h.passing, h.policies))
                .collect();
            println!("  history, newest first: {}", points.join(", "));
        }
    }
    Ok(())
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

/// `tessera glossary`.
pub async fn glossary(client: &Client, action: GlossaryAction) -> Result<()> {
    let path = ["api", "v1", "glossary"];
    match action {
        GlossaryAction::Apply { files } => {
            let request = GlossaryFilesRequest {
                files: files.iter().map(|f| read_file(f)).collect::<Result<_>>()?,
            };
            let applied: GlossaryApplyView = client.put(&path, &request).await?;
            for t in &applied.terms {
                println!("glossary term {}@{} ({})", t.name, t.version, t.file_name);
            }
            for i in &applied.impact {
                let verdict = match (i.would_fail, i.failing_rows) {
                    (false, _) => "would pass".to_string(),
                    (true, Some(n)) if i.conflicts.is_empty() => {
                        format!("would fail: {n} row(s) break it")
                    }
                    (true, rows) => format!(
                        "would fail: {}{}",
                        i.conflicts.join("; "),
                        rows.filter(|n| *n > 0)
                            .map(|n| format!("; {n} row(s) break it"))
                            .unwrap_or_default()
                    ),
                };
                println!(
                    "  {} (on {}, product {}): {verdict}",
                    i.column, i.references, i.product
                );
            }
            Ok(())
        }
        GlossaryAction::List { format } => {
            let terms: Vec<GlossaryTermView> = client.get(&path, &[]).await?;
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&terms)?);
                return Ok(());
            }
            let mut t = crate::commands::catalog::table(&[
                "TERM",
                "TYPE",
                "RULES",
                "CLASSIFICATION",
                "COLUMNS",
            ]);
            for term in &terms {
                t.add_row(vec![
                    format!("{}@{}", term.name, term.version),
                    term.logical_type.clone(),
                    rules(term),
                    term.classification.clone().unwrap_or_else(|| "-".into()),
                    term.used_by.len().to_string(),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        GlossaryAction::Show { name } => {
            let terms: Vec<GlossaryTermView> = client.get(&path, &[]).await?;
            let versions: Vec<&GlossaryTermView> =
                terms.iter().filter(|t| t.name == name).collect();
            if versions.is_empty() {
                bail!("no glossary term {name:?} (`tessera glossary list` shows the terms)");
            }
            for t in versions {
                println!(
                    "{}@{}  ({}, published {} by {})",
                    t.name, t.version, t.file_name, t.created_at, t.created_by
                );
                println!("  {}", t.description);
                println!(
                    "  type: {}; rules: {}; classification: {}",
                    t.logical_type,
                    rules(t),
                    t.classification.as_deref().unwrap_or("-")
                );
                for c in &t.used_by {
                    println!("  used by {c}");
                }
            }
            Ok(())
        }
    }
}

fn rules(t: &GlossaryTermView) -> String {
    let mut rules = Vec::new();
    if let Some(p) = &t.pattern {
        rules.push(format!("pattern {p}"));
    }
    if let Some(v) = &t.valid_values {
        let values: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        rules.push(format!("one of [{}]", values.join(", ")));
    }
    if rules.is_empty() {
        "-".into()
    } else {
        rules.join("; ")
    }
}
