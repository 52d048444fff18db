//! `tessera serve`: the platform on the configured stores, until Ctrl-C or SIGTERM.

use anyhow::Result;
use tessera_server::{Application, FileLimits, QueryConfig, ServerConfig};

use crate::cli::ServeArgs;

pub fn config(args: &ServeArgs) -> ServerConfig {
    let mut config = ServerConfig::new(&args.data_dir, args.http);
    config.metadata_url = args.metadata.clone();
    config.storage_url = args.storage.clone();
    config.storage_options = args.storage_options.iter().cloned().collect();
    config.max_body_bytes = args.max_body_bytes;
    config.check_tick_seconds = args.check_tick_seconds;
    config.shutdown_timeout_seconds = args.shutdown_timeout_seconds;
    config.contract_limits = FileLimits {
        max_bytes: args.contract_max_bytes,
        max_datasets: args.contract_max_datasets,
        max_columns: args.contract_max_columns,
    };
    let defaults = QueryConfig::default();
    config.query = QueryConfig {
        memory_limit_bytes: args.query_memory_limit_bytes,
        memory_pool_bytes: args.query_memory_pool_bytes,
        timeout_seconds: args.query_timeout_seconds,
        max_result_rows: args.query_max_result_rows,
        max_result_bytes: args.query_max_result_bytes,
        max_sql_bytes: args.query_max_sql_bytes,
        concurrency: args.query_concurrency.unwrap_or(defaults.concurrency),
        queue_length: args.query_queue_length,
        ..defaults
    };
    config
}

pub async fn run(args: &ServeArgs) -> Result<()> {
    let config = config(args);
    let app = Application::build(&config).await?;
    announce(&app);
    serve(app).await
}

/// The line scripts and tests wait for: the address actually bound.
pub fn announce(app: &Application) {
    println!(
        "Tessera listening on http://{} ({})",
        app.address(),
        app.mesh().describe()
    );
}

pub async fn serve(app: Application) -> Result<()> {
    app.run_until_stopped(shutdown_signal()).await?;
    eprintln!("Tessera stopped.");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
