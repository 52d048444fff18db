//! `tessera sources list|status|run` and `tessera secret set|list|delete`, through the API.

use std::io::Read;

use anyhow::{Context, Result, bail};
use tessera_server::views::{SecretRequest, SecretView, SourceView};

use crate::cli::{ListFormat, SecretAction, SourcesAction};
use crate::client::Client;
use crate::commands::catalog::table;

/// `DOMAIN.PRODUCT.SOURCE` as its three parts.
fn source_parts(text: &str) -> Result<[&str; 3]> {
    let parts: Vec<&str> = text.split('.').collect();
    match parts.as_slice() {
        [d, p, s] => Ok([d, p, s]),
        _ => bail!("{text:?} is not a source: give DOMAIN.PRODUCT.SOURCE"),
    }
}

fn or_dash<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map_or("-".into(), |v| v.to_string())
}

fn lag(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 120.0 => format!("{s:.1}s"),
        Some(s) if s < 7200.0 => format!("{:.1}m", s / 60.0),
        Some(s) => format!("{:.1}h", s / 3600.0),
    }
}

fn print_source(s: &SourceView) {
    println!(
        "{}.{}.{}  ({} into {})",
        s.domain, s.product, s.name, s.connector, s.dataset
    );
    if let Some(d) = &s.description {
        println!("description:  {d}");
    }
    println!("trigger:      {}", s.trigger);
    println!("options:      {}", s.options);
    println!("secret:       {}", or_dash(&s.secret));
    println!("file:         {}", s.file);
    println!(
        "state:        {}{}",
        s.state,
        if s.failures > 0 {
            format!(" ({} failed pull(s) in a row)", s.failures)
        } else {
            String::new()
        }
    );
    println!("position:     {}", or_dash(&s.position));
    println!("lag:          {}", lag(s.lag_seconds));
    println!("last pull:    {}", or_dash(&s.last_pull_at));
    println!("last success: {}", or_dash(&s.last_success_at));
    println!(
        "rows:         {} last pull, {} in all",
        rows_read(s.last_rows, s.last_quarantined),
        rows_read(s.total_rows, s.total_quarantined)
    );
    if let Some(e) = &s.last_error {
        println!("last error:   {e}");
    }
}

pub async fn sources(client: &Client, action: SourcesAction) -> Result<()> {
    match action {
        SourcesAction::List { target, format } => {
            let all: Vec<SourceView> = match target.as_deref() {
                None => client.get(&["api", "v1", "sources"], &[]).await?,
                Some(t) => match t.split('.').collect::<Vec<_>>().as_slice() {
                    [d, p] => client.get(&["api", "v1", "sources", d, p], &[]).await?,
                    _ => bail!("{t:?} is not a product: give DOMAIN.PRODUCT"),
                },
            };
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&all)?);
                return Ok(());
            }
            let mut t = table(&[
                "SOURCE",
                "CONNECTOR",
                "DATASET",
                "TRIGGER",
                "STATE",
                "POSITION",
                "LAG",
                "ROWS",
                "QUARANTINED",
                "LAST ERROR",
            ]);
            for s in &all {
                t.add_row(vec![
                    format!("{}.{}.{}", s.domain, s.product, s.name),
                    s.connector.clone(),
                    s.dataset.clone(),
                    s.trigger.clone(),
                    s.state.clone(),
                    or_dash(&s.position),
                    lag(s.lag_seconds),
                    s.total_rows.to_string(),
                    s.total_quarantined.to_string(),
                    or_dash(&s.last_error),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        SourcesAction::Status { source, format } => {
            let [d, p, n] = source_parts(&source)?;
            let s: SourceView = client.get(&["api", "v1", "sources", d, p, n], &[]).await?;
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print_source(&s);
            }
            Ok(())
        }
        SourcesAction::Run { source } => {
            let [d, p, n] = source_parts(&source)?;
            let s: SourceView = client
                .post(
                    &["api", "v1", "sources", d, p, n, "run"],
                    &serde_json::json!({}),
                )
                .await?;
            if s.state == "failing" {
                bail!("source {source} failed to pull: {}", or_dash(&s.last_error));
            }
            let accepted = s.last_rows - s.last_quarantined;
            let quarantined = match s.last_quarantined {
                0 => String::new(),
                n => format!(", {n} quarantined (see {}_quarantine)", s.dataset),
            };
            println!(
                "source {source} pulled {} row(s): {accepted} committed into {}{quarantined}; position {}, lag {}.",
                s.last_rows,
                s.dataset,
                or_dash(&s.position),
                lag(s.lag_seconds)
            );
            Ok(())
        }
    }
}

pub async fn secret(client: &Client, action: SecretAction) -> Result<()> {
    match action {
        SecretAction::Set {
            name,
            team,
            from_env,
        } => {
            let value = match from_env {
                Some(var) => std::env::var(&var)
                    .with_context(|| format!("the environment variable {var} is not set"))?,
                None => {
                    let mut value = String::new();
                    std::io::stdin()
                        .read_to_string(&mut value)
                        .context("reading the secret's value from standard input")?;
                    // A value typed or echoed ends with a newline that is not part of it.
                    value.trim_end_matches(['\n', '\r']).to_string()
                }
            };
            if value.is_empty() {
                bail!(
                    "no value: pipe it in (`printf %s \"$VALUE\" | tessera secret set {name} --team {team}`) or use --from-env VAR"
                );
            }
            let set: SecretView = client
                .put(
                    &["api", "v1", "secrets", &name],
                    &SecretRequest { team, value },
                )
                .await?;
            println!(
                "secret {} is set for team {} (sealed in the metadata store; it is not shown again)",
                set.name, set.team
            );
            Ok(())
        }
        SecretAction::List => {
            let all: Vec<SecretView> = client.get(&["api", "v1", "secrets"], &[]).await?;
            let mut t = table(&["SECRET", "TEAM", "SET BY", "CREATED", "UPDATED"]);
            for s in &all {
                t.add_row(vec![
                    s.name.clone(),
                    s.team.clone(),
                    s.created_by.clone(),
                    s.created_at.clone(),
                    s.updated_at.clone(),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        SecretAction::Delete { name } => {
            let gone: SecretView = client.delete(&["api", "v1", "secrets", &name]).await?;
            println!("secret {} of team {} is deleted", gone.name, gone.team);
            Ok(())
        }
    }
}

/// Rows read, and how many of them went to the quarantine when any did.
fn rows_read(read: i64, quarantined: i64) -> String {
    match quarantined {
        0 => read.to_string(),
        q => format!("{read} ({q} quarantined)"),
    }
}
