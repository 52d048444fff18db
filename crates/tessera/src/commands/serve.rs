//! `tessera serve`: the platform on the configured stores, until Ctrl-C or SIGTERM.

use anyhow::Result;
use tessera_server::{Application, QueryConfig, ServerConfig};

use crate::cli::ServeArgs;

pub fn config(args: &ServeArgs) -> ServerConfig {
    let mut config = ServerConfig::new(&args.data_dir, args.http);
    config.metadata_url = args.metadata.clone();
    config.storage_url = args.storage.clone();
    config.storage_options = args.storage_options.iter().cloned().collect();
    config.max_body_bytes = args.max_body_bytes;
    config.check_tick_seconds = args.check_tick_seconds;
    config.query = QueryConfig {
        memory_limit_bytes: args.query_memory_limit_bytes,
        timeout_seconds: args.query_timeout_seconds,
        ..QueryConfig::default()
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
