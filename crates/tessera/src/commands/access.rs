//! `tessera token|login|whoami|access`: API tokens, who the CLI is, grants, policies and
//! explanations of access decisions.

use std::io::BufRead;

use anyhow::Context;
use anyhow::{Result, bail};
use tessera_server::views::{
    AccessRequestBody, AccessRequestView, ApproveBody, DenyBody, ExplainView, GrantRequest,
    GrantView, PolicyRequest, PolicyView, PrincipalView, TokenCreated, TokenRequest, TokenView,
};

use crate::cli::{AccessAction, ClientArgs, PolicyAction, TokenAction};
use crate::client::Client;
use crate::commands::catalog::{or_dash, table};
use crate::credentials::{self, Credentials};

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "-".into()
    } else {
        names.join(", ")
    }
}

pub async fn token(client: &Client, action: TokenAction) -> Result<()> {
    match action {
        TokenAction::Create {
            user,
            groups,
            teams,
            description,
        } => {
            let request = TokenRequest {
                user,
                groups,
                teams,
                description,
            };
            let created: TokenCreated = client.post(&["api", "v1", "tokens"], &request).await?;
            eprintln!(
                "Token {} for {} (groups: {}; teams: {}). It is shown this once; the server keeps only its hash:",
                created.token_id,
                created.user,
                list(&created.groups),
                list(&created.teams)
            );
            println!("{}", created.token);
        }
        TokenAction::List => {
            let tokens: Vec<TokenView> = client.get(&["api", "v1", "tokens"], &[]).await?;
            let mut t = table(&["TOKEN ID", "USER", "DESCRIPTION", "CREATED", "REVOKED"]);
            for token in tokens {
                t.add_row(vec![
                    token.token_id,
                    token.user,
                    or_dash(&token.description),
                    token.created_at,
                    or_dash(&token.revoked_at),
                ]);
            }
            println!("{t}");
        }
        TokenAction::Revoke { token_id } => {
            let revoked: TokenView = client.delete(&["api", "v1", "tokens", &token_id]).await?;
            println!(
                "Revoked token {} of {}: requests with it are refused from now on.",
                revoked.token_id, revoked.user
            );
        }
    }
    Ok(())
}

fn grants_table(grants: &[GrantView]) -> comfy_table::Table {
    let mut t = table(&[
        "GRANT ID",
        "PRODUCT",
        "GRANTEE",
        "EXPIRES",
        "CREATED BY",
        "REQUEST",
    ]);
    for g in grants {
        t.add_row(vec![
            g.grant_id.clone(),
            g.product.clone(),
            g.grantee.clone(),
            g.expires_at.clone().unwrap_or_else(|| "never".into()),
            g.created_by.clone(),
            or_dash(&g.access_request),
        ]);
    }
    t
}

pub async fn access(client: &Client, action: AccessAction) -> Result<()> {
    match action {
        AccessAction::Grant {
            product,
            user,
            group,
            team,
            days,
            row_filter,
        } => {
            let grantee = match (user, group, team) {
                (Some(u), _, _) => format!("user:{u}"),
                (_, Some(g), _) => format!("group:{g}"),
                (_, _, Some(t)) => format!("team:{t}"),
                _ => bail!("say who the grant is for: --user, --group or --team"),
            };
            let grant: GrantView = client
                .post(
                    &["api", "v1", "grants"],
                    &GrantRequest {
                        product,
                        grantee,
                        days,
                        row_filter,
                    },
                )
                .await?;
            println!(
                "Grant {}: {} may read {}{} {}.",
                grant.grant_id,
                grant.grantee,
                grant.product,
                match &grant.row_filter {
                    Some(f) => format!(" (rows where {f})"),
                    None => String::new(),
                },
                match &grant.expires_at {
                    Some(t) => format!("until {t}"),
                    None => "until the grant is revoked".into(),
                }
            );
        }
        AccessAction::Grants { product } => {
            let query: Vec<(&str, &str)> =
                product.iter().map(|p| ("product", p.as_str())).collect();
            let grants: Vec<GrantView> = client.get(&["api", "v1", "grants"], &query).await?;
            println!("{}", grants_table(&grants));
        }
        AccessAction::Revoke { grant_id } => {
            let grant: GrantView = client.delete(&["api", "v1", "grants", &grant_id]).await?;
            println!(
                "Revoked grant {}: {} no longer reads {} through it.",
                grant.grant_id, grant.grantee, grant.product
            );
        }
        AccessAction::Request {
            product,
            purpose,
            days,
        } => {
            let made: AccessRequestView = client
                .post(
                    &["api", "v1", "access-requests"],
                    &AccessRequestBody {
                        product,
                        purpose,
                        days: Some(days),
                    },
                )
                .await?;
            eprintln!(
                "Requested read access to {} for {} days; pending until its owner team decides (`tessera access requests` shows the state). Request id:",
                made.product, made.days
            );
            println!("{}", made.request_id);
        }
        AccessAction::Requests => {
            let requests: Vec<AccessRequestView> =
                client.get(&["api", "v1", "access-requests"], &[]).await?;
            let mut t = table(&[
                "REQUEST ID",
                "PRODUCT",
                "REQUESTER",
                "PURPOSE",
                "DAYS",
                "STATE",
                "DECIDED BY",
                "REASON / GRANT",
            ]);
            for r in requests {
                let outcome = match (&r.reason, &r.grant_id, &r.expires_at) {
                    (Some(reason), _, _) => reason.clone(),
                    (_, Some(g), Some(until)) => format!("grant {g} until {until}"),
                    _ => "-".into(),
                };
                t.add_row(vec![
                    r.request_id,
                    r.product,
                    r.requester,
                    r.purpose,
                    r.days.to_string(),
                    r.state,
                    or_dash(&r.decided_by),
                    outcome,
                ]);
            }
            println!("{t}");
        }
        AccessAction::Approve {
            request_id,
            row_filter,
        } => {
            let r: AccessRequestView = client
                .post(
                    &["api", "v1", "access-requests", &request_id, "approve"],
                    &ApproveBody { row_filter },
                )
                .await?;
            println!(
                "Approved request {}: {} may read {}{} until {} (grant {}).",
                r.request_id,
                r.requester,
                r.product,
                match &r.row_filter {
                    Some(f) => format!(" (rows where {f})"),
                    None => String::new(),
                },
                r.expires_at.as_deref().unwrap_or("-"),
                r.grant_id.as_deref().unwrap_or("-")
            );
        }
        AccessAction::Deny { request_id, reason } => {
            let r: AccessRequestView = client
                .post(
                    &["api", "v1", "access-requests", &request_id, "deny"],
                    &DenyBody { reason },
                )
                .await?;
            println!(
                "Denied request {} of {} for {}.",
                r.request_id, r.requester, r.product
            );
        }
        AccessAction::Policy { action } => policy(client, action).await?,
        AccessAction::Explain {
            user,
            action,
            resource,
        } => {
            let d: ExplainView = client
                .get(
                    &["api", "v1", "access", "explain"],
                    &[
                        ("user", &user),
                        ("action", &action),
                        ("resource", &resource),
                    ],
                )
                .await?;
            let verdict = if d.allowed { "ALLOW" } else { "DENY" };
            let why = match (d.allowed, d.policies.is_empty()) {
                (_, false) => format!("decided by {}", d.policies.join(", ")),
                (false, true) => "no policy permits it".into(),
                (true, true) => "allowed".into(),
            };
            println!(
                "{verdict}: {} may{} {} {} ({why})
groups: {}
teams: {}",
                d.user,
                if d.allowed { "" } else { " not" },
                d.action,
                d.resource,
                list(&d.groups),
                list(&d.teams)
            );
        }
    }
    Ok(())
}

async fn policy(client: &Client, action: PolicyAction) -> Result<()> {
    match action {
        PolicyAction::Apply { file, id } => {
            let source = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let id = match id {
                Some(id) => id,
                None => file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .map(str::to_string)
                    .context("name the policy with --id")?,
            };
            let stored: PolicyView = client
                .put(&["api", "v1", "policies", &id], &PolicyRequest { source })
                .await?;
            println!(
                "Policy {} from {} is in force (it applies on top of Tessera's defaults).",
                stored.id,
                file.display()
            );
        }
        PolicyAction::List => {
            let policies: Vec<PolicyView> = client.get(&["api", "v1", "policies"], &[]).await?;
            if policies.is_empty() {
                println!("No admin policies: Tessera's defaults alone decide.");
            }
            for p in policies {
                println!(
                    "-- {} (by {}, {})\n{}\n",
                    p.id,
                    p.updated_by,
                    p.updated_at,
                    p.source.trim_end()
                );
            }
        }
        PolicyAction::Delete { id } => {
            let gone: PolicyView = client.delete(&["api", "v1", "policies", &id]).await?;
            println!("Policy {} no longer applies.", gone.id);
        }
    }
    Ok(())
}

pub async fn whoami(client: &Client) -> Result<()> {
    let me: PrincipalView = client.get(&["api", "v1", "whoami"], &[]).await?;
    println!(
        "{} ({}) on {}\ngroups: {}\nteams: {}",
        me.name,
        me.kind,
        client.server(),
        list(&me.groups),
        list(&me.teams)
    );
    Ok(())
}

/// Checks the token with the server, then writes it and the server to the credentials file.
pub async fn login(args: &ClientArgs, given: Option<String>) -> Result<()> {
    let token = match given.or_else(|| args.token.clone()) {
        Some(t) => t,
        None => {
            eprintln!("Paste an API token (tsr_…) and press Enter:");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line
        }
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        bail!("no token given: `tessera login TOKEN`, or paste it on standard input");
    }
    let client = Client::connect(args)?.with_token(token.clone());
    let me: PrincipalView = client.get(&["api", "v1", "whoami"], &[]).await?;
    let Some(path) = credentials::path(args.credentials.as_deref()) else {
        bail!("no place for the credentials file: set --credentials, TESSERA_CREDENTIALS or HOME");
    };
    credentials::write(
        &path,
        &Credentials {
            server: client.server().to_string(),
            token,
        },
    )?;
    println!(
        "Logged in to {} as {}; the token is in {} (readable by you only).",
        client.server(),
        me.name,
        path.display()
    );
    Ok(())
}
