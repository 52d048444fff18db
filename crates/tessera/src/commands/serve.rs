//! `tessera serve`: the platform on the configured stores, until Ctrl-C or SIGTERM. The first
//! start of a new mesh prints its admin token and keeps it in the credentials file.

use anyhow::Result;
use tessera_server::{
    ADMIN_GROUP, ADMIN_USER, Application, EventConfig, FileLimits, MaintenanceConfig,
    MaintenancePolicy, QueryConfig, ServerConfig,
};

use crate::cli::ServeArgs;
use crate::credentials::{self, Credentials};

pub fn config(args: &ServeArgs) -> ServerConfig {
    let mut config = ServerConfig::new(&args.data_dir, args.http);
    config.metadata_url = args.metadata.clone();
    config.storage_url = args.storage.clone();
    config.audit_key_file = args.audit_key_file.clone();
    config.storage_options = args.storage_options.iter().cloned().collect();
    config.max_body_bytes = args.max_body_bytes;
    config.check_tick_seconds = args.check_tick_seconds;
    config.transform_tick = std::time::Duration::from_secs(args.transform_tick_seconds);
    config.transform_debounce = tessera_server::Debounce {
        quiet: std::time::Duration::from_secs(args.transform_quiet_seconds),
        max_wait: std::time::Duration::from_secs(args.transform_max_wait_seconds),
        ..Default::default()
    };
    config.transform_concurrency = args.transform_concurrency.max(1);
    config.transform_rewrite_max_bytes = args.transform_rewrite_max_bytes;
    config.openlineage = tessera_server::OpenLineageConfig {
        url: args.openlineage_url.clone(),
        namespace: args.openlineage_namespace.clone(),
        retention: std::time::Duration::from_secs(args.openlineage_retention_days * 24 * 3600),
        ..Default::default()
    };
    config.events = EventConfig {
        max_body_bytes: args.event_max_body_bytes,
        max_events: args.event_max_rows.max(1),
        commit_interval: std::time::Duration::from_millis(args.event_commit_interval_ms.max(1)),
        commit_max_rows: args.event_commit_rows.max(1),
        max_backlog_bytes: args.event_max_backlog_bytes,
        idempotency_window: std::time::Duration::from_secs(args.event_idempotency_seconds),
        ..EventConfig::default()
    };
    config.maintenance = MaintenanceConfig {
        interval: std::time::Duration::from_secs(args.maintenance_interval_seconds),
        policy: MaintenancePolicy {
            min_small_files: args.compact_min_files.max(2),
            target_file_bytes: args.compact_target_bytes.max(1 << 20),
            checkpoint_every: args.checkpoint_every.max(1),
            log_retention: std::time::Duration::from_secs(args.log_retention_hours * 3600),
            file_retention: std::time::Duration::from_secs(args.vacuum_retention_hours * 3600),
        },
    };
    config.shutdown_timeout_seconds = args.shutdown_timeout_seconds;
    config.tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tessera_server::TlsConfig {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    config.postgres = tessera_server::PostgresConfig {
        address: args.pg.0,
        max_connections: args.pg_max_connections.max(1),
    };
    config.flight = tessera_server::FlightConfig {
        address: args.flight.0,
    };
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
    if let Some(token) = app.first_admin_token() {
        let path = keep_admin_token(args, &app, token)?;
        println!(
            "This is a new mesh: its admin token (user {ADMIN_USER}, group {ADMIN_GROUP}) is shown this once and written to {path}:"
        );
        println!("  {token}");
    }
    announce(&app);
    serve(app).await
}

/// The URL a client on this machine reaches the server at.
pub fn local_url(app: &Application) -> String {
    let mut address = app.address();
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("{}://{address}", app.scheme())
}

/// Writes an admin token and the server's address to the credentials file, so the CLI on this
/// machine uses it; returns the file's path as shown.
pub fn keep_admin_token(args: &ServeArgs, app: &Application, token: &str) -> Result<String> {
    let Some(path) = credentials::path(args.credentials.as_deref()) else {
        return Ok("no credentials file (set --credentials or HOME)".into());
    };
    credentials::write(
        &path,
        &Credentials {
            server: local_url(app),
            token: token.to_string(),
        },
    )?;
    Ok(path.display().to_string())
}

/// The line scripts and tests wait for: the address actually bound (after the PostgreSQL and
/// Flight SQL front ends', when they are on).
pub fn announce(app: &Application) {
    if let Some(address) = app.postgres_address() {
        println!(
            "PostgreSQL clients: psql -h {} -p {} -U USER -d DOMAIN (the API token as password{})",
            address.ip(),
            address.port(),
            if app.scheme() == "https" {
                "; TLS with sslmode=require"
            } else {
                ""
            }
        );
    }
    if let Some(address) = app.flight_address() {
        println!(
            "Flight SQL clients: {}://{address} (the API token as a bearer token, or as the password)",
            app.flight_scheme()
        );
    }
    println!(
        "Tessera listening on {}://{} ({})",
        app.scheme(),
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
