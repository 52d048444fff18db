//! `tessera audit verify|show`: the audit log, through the API (the server holds its key).

use anyhow::{Result, bail};
use tessera_server::views::{AuditPage, AuditVerificationView};

use crate::cli::{AuditAction, ListFormat};
use crate::client::Client;

pub async fn audit(client: &Client, action: AuditAction) -> Result<()> {
    match action {
        AuditAction::Verify => {
            let found: AuditVerificationView =
                client.get(&["api", "v1", "audit", "verify"], &[]).await?;
            match found.problem {
                None => {
                    println!(
                        "OK: {} entr{} verified",
                        found.entries,
                        if found.entries == 1 { "y" } else { "ies" }
                    );
                    Ok(())
                }
                Some(p) => bail!(
                    "the audit log was tampered with at entry {} ({}): {} ({} entries before it verified)",
                    p.seq,
                    p.kind,
                    p.message,
                    found.entries
                ),
            }
        }
        AuditAction::Show {
            after,
            limit,
            format,
        } => {
            let limit = limit.to_string();
            let after = after.map(|a| a.to_string());
            let mut query = vec![("limit", limit.as_str())];
            if let Some(after) = &after {
                query.push(("after", after.as_str()));
            }
            let page: AuditPage = client.get(&["api", "v1", "audit"], &query).await?;
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&page)?);
                return Ok(());
            }
            let mut t = crate::commands::catalog::table(&[
                "SEQ", "AT", "ACTOR", "ACTION", "SUBJECT", "DETAIL",
            ]);
            for e in &page.entries {
                let detail = e.detail.to_string();
                let detail = match detail.char_indices().nth(80) {
                    Some((at, _)) => format!("{}…", &detail[..at]),
                    None => detail,
                };
                t.add_row(vec![
                    e.seq.to_string(),
                    e.at.clone(),
                    e.actor.clone(),
                    e.action.clone(),
                    e.subject.clone(),
                    detail,
                ]);
            }
            println!("{t}");
            if let Some(next) = page.next_after {
                println!("more: tessera audit show --after {next}");
            }
            Ok(())
        }
    }
}
