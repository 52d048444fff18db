//! The `tessera` binary: the CLI, server startup and the artgo demo.
//!
//! `serve` and `demo` run the platform in this process; `lint` works offline; every other
//! command is a client of a running server's HTTP API (`--server` / `TESSERA_URL`). Errors end
//! the process with exit code 1 and a message on stderr; this is the only crate that uses
//! `anyhow`.

mod cli;
mod client;
mod commands;
mod credentials;
mod demo;

use clap::Parser;

// The server allocates many short-lived buffers per request (JSON decoding, Arrow arrays, IPC
// frames); glibc's allocator spent a quarter of a single-event POST's time in malloc and free.
// Built without transparent huge pages (mimalloc's `no_thp`: it does not ask the kernel for
// them): each fresh 2 MiB page was zeroed whole on first touch, and with mimalloc handing
// memory back and taking it again that was most of a large aggregation's time (the commit
// gate's first measure of a 2M-row table: 2.4 s with them, 0.9 s without; bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cli::{Cli, Command, NewWhat};
use client::Client;

fn main() -> std::process::ExitCode {
    // Deeply nested input (a contract's SQL rule, a query) must never overflow a stack: the CLI
    // runs on a thread with a large one, as do the runtime's workers and the query threads.
    let main = std::thread::Builder::new()
        .name("tessera".into())
        .stack_size(tessera_server::STACK_BYTES)
        .spawn(run_cli);
    match main.map(|thread| thread.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Warnings, but not delta-rs's about its own merge metrics (every merge says it derived the
/// files it skipped, nothing a user can act on); the merge's other warnings stay.
const DEFAULT_LOG: &str = "warn,deltalake_core::operations::merge=error,\
    deltalake_core::operations::merge::source_stats=warn";

fn run_cli() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG)),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal; plain lines for a file, a pipe or a service's journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(tessera_server::STACK_BYTES)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    // Work still running (a query being cancelled, a blocking read) must not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => commands::serve::run(&args).await,
        Command::Demo(args) => demo::run(&args).await,
        Command::Lint { paths } => commands::lint::run(&paths),
        Command::New {
            list,
            templates,
            what,
        } => match what {
            Some(NewWhat::Domain(args)) => commands::new::new_domain(&args),
            Some(NewWhat::Product(args)) => {
                commands::new::new_product(&args, templates.as_deref()).await
            }
            None if list => commands::new::list(templates.as_deref()),
            None => anyhow::bail!(
                "tessera new domain NAME --owner TEAM, tessera new product DOMAIN/NAME --template T, or tessera new --list"
            ),
        },
        Command::Import { file } => commands::lint::import(&file),
        Command::Test {
            contract,
            server,
            format,
        } => commands::check::test(&contract, server.as_deref(), format).await,
        Command::Diff {
            old,
            new,
            format,
            fail_on_breaking,
        } => commands::diff::run(&old, &new, format, fail_on_breaking),
        Command::Apply {
            dir,
            dry_run,
            client,
        } => commands::apply::run(&Client::connect(&client)?, &dir, dry_run).await,
        Command::Ingest {
            dataset,
            file,
            format,
            batch_id,
            client,
        } => {
            let client = Client::connect(&client)?;
            commands::ingest::run(&client, &dataset, &file, format, batch_id.as_deref()).await
        }
        Command::Send {
            dataset,
            file,
            batch_events,
            client,
        } => {
            let client = Client::connect(&client)?;
            commands::send::run(&client, &dataset, &file, batch_events).await
        }
        Command::Query {
            sql,
            sample,
            format,
            client,
        } => {
            let client = Client::connect(&client)?;
            match sample {
                Some(sample) => commands::query::sample(&client, &sql, &sample, format).await,
                None => commands::query::run(&client, &sql, format).await,
            }
        }
        Command::Check {
            target,
            format,
            client,
        } => commands::check::run(&Client::connect(&client)?, &target, format).await,
        Command::Domains { action, client } => {
            commands::catalog::domains(&Client::connect(&client)?, action).await
        }
        Command::Products { action, client } => {
            commands::catalog::products(&Client::connect(&client)?, action).await
        }
        Command::Datasets { action, client } => {
            commands::catalog::datasets(&Client::connect(&client)?, action).await
        }
        Command::Contracts { action, client } => {
            commands::catalog::contracts(&Client::connect(&client)?, action).await
        }
        Command::Token { action, client } => {
            commands::access::token(&Client::connect(&client)?, action).await
        }
        Command::Login { given, client } => commands::access::login(&client, given).await,
        Command::Whoami { client } => commands::access::whoami(&Client::connect(&client)?).await,
        Command::Queries {
            client,
            limit,
            format,
        } => commands::query::log(&Client::connect(&client)?, limit, format).await,
        Command::Access { action, client } => {
            commands::access::access(&Client::connect(&client)?, action).await
        }
        Command::Audit { action, client } => {
            commands::audit::audit(&Client::connect(&client)?, action).await
        }
        Command::Policy { action, client } => {
            commands::governance::policy(&Client::connect(&client)?, action).await
        }
        Command::Glossary { action, client } => {
            commands::governance::glossary(&Client::connect(&client)?, action).await
        }
        Command::Sources { action, client } => {
            commands::sources::sources(&Client::connect(&client)?, action).await
        }
        Command::Secret { action, client } => {
            commands::sources::secret(&Client::connect(&client)?, action).await
        }
        Command::Transforms {
            target,
            format,
            client,
        } => commands::transforms::list(&Client::connect(&client)?, target, format).await,
        Command::Run {
            target,
            full_refresh,
            format,
            client,
        } => {
            commands::transforms::run(
                &Client::connect(&client)?,
                target.as_deref(),
                full_refresh,
                format,
            )
            .await
        }
        Command::Lineage {
            dataset,
            column,
            upstream: _,
            downstream,
            depth,
            format,
            client,
        } => {
            commands::lineage::lineage(
                &Client::connect(&client)?,
                &dataset,
                column.as_deref(),
                downstream,
                depth,
                format,
            )
            .await
        }
        Command::Runs {
            target,
            limit,
            format,
            client,
        } => commands::transforms::runs(&Client::connect(&client)?, target, limit, format).await,
    }
}
