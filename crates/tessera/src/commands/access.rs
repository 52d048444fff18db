//! `tessera token|login|whoami`: API tokens and who the CLI is.

use std::io::BufRead;

use anyhow::{Result, bail};
use tessera_server::views::{PrincipalView, TokenCreated, TokenRequest, TokenView};

use crate::cli::{ClientArgs, TokenAction};
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
