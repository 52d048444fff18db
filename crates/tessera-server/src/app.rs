//! Startup: [`Application::build`] opens the mesh and binds the listener (port 0 picks a free
//! one, which tests use), then [`Application::run_until_stopped`] serves until shutdown.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::api::{AppState, router};
use crate::config::ServerConfig;
use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;

/// A server that is ready to serve.
pub struct Application {
    mesh: Arc<Mesh>,
    listener: TcpListener,
    address: SocketAddr,
    /// The PostgreSQL front end's listener, when it is on.
    postgres: Option<(TcpListener, crate::pgwire::PgServer)>,
    /// TLS for the HTTP API (HTTPS) when `--tls-cert` and `--tls-key` are given.
    https: Option<tokio_rustls::TlsAcceptor>,
    /// TLS for PostgreSQL clients that ask for it (`sslmode=require`).
    postgres_tls: Option<tokio_rustls::TlsAcceptor>,
    /// The Flight SQL front end's listener, when it is on.
    flight: Option<(TcpListener, crate::flightsql::TesseraFlightSql)>,
    /// TLS for Flight SQL (`grpc+tls`): with a certificate, its port is TLS only.
    flight_tls: Option<tokio_rustls::TlsAcceptor>,
    max_body_bytes: usize,
    event_max_body_bytes: usize,
    check_tick_seconds: u64,
    source_tick: std::time::Duration,
    transform_tick: std::time::Duration,
    openlineage: crate::openlineage::OpenLineageConfig,
    maintenance: crate::maintenance::MaintenanceConfig,
    shutdown_timeout_seconds: u64,
    first_admin_token: Option<String>,
}

impl Application {
    /// Opens the metadata store and table storage, and binds the HTTP address. A new mesh gets
    /// its first admin token (see [`Application::first_admin_token`]).
    pub async fn build(config: &ServerConfig) -> Result<Self> {
        let mesh = Arc::new(Mesh::open(config).await?);
        Self::with_mesh(mesh, config).await
    }

    /// Serves an already opened mesh (the demo loads it first).
    pub async fn with_mesh(mesh: Arc<Mesh>, config: &ServerConfig) -> Result<Self> {
        let listener = TcpListener::bind(config.http).await.map_err(|e| {
            ServiceError::BadRequest(format!("cannot listen on {}: {e}", config.http))
        })?;
        // Read at start, so a certificate that does not load stops the server at once.
        let (https, postgres_tls, flight_tls) = match &config.tls {
            Some(tls) => (
                Some(crate::tls::acceptor(tls, &[b"h2", b"http/1.1"])?),
                Some(crate::tls::acceptor(tls, &[b"postgresql"])?),
                Some(crate::tls::acceptor(tls, &[b"h2"])?),
            ),
            None => (None, None, None),
        };
        let postgres = match config.postgres.address {
            Some(address) => {
                let listener = bind_front_end(address, "PostgreSQL", "--pg").await?;
                let server = crate::pgwire::PgServer::new(mesh.clone(), &config.postgres)?;
                Some((listener, server))
            }
            None => None,
        };
        let flight = match config.flight.address {
            Some(address) => {
                let listener = bind_front_end(address, "Flight SQL", "--flight").await?;
                let service = crate::flightsql::TesseraFlightSql::new(mesh.clone()).await?;
                Some((listener, service))
            }
            None => None,
        };
        let first_admin_token = mesh.bootstrap_admin().await?;
        let address = listener
            .local_addr()
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(Self {
            mesh,
            listener,
            address,
            postgres,
            https,
            postgres_tls,
            flight,
            flight_tls,
            max_body_bytes: config.max_body_bytes,
            event_max_body_bytes: config.events.max_body_bytes,
            check_tick_seconds: config.check_tick_seconds,
            source_tick: config.source_tick,
            transform_tick: config.transform_tick,
            openlineage: config.openlineage.clone(),
            maintenance: config.maintenance.clone(),
            shutdown_timeout_seconds: config.shutdown_timeout_seconds,
            first_admin_token,
        })
    }

    /// The address actually bound.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `https` when the HTTP API is served over TLS, `http` otherwise.
    pub fn scheme(&self) -> &'static str {
        if self.https.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The address the PostgreSQL front end listens on, when it is on.
    pub fn postgres_address(&self) -> Option<SocketAddr> {
        self.postgres
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The address the Flight SQL front end listens on, when it is on.
    pub fn flight_address(&self) -> Option<SocketAddr> {
        self.flight
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// `grpc+tls` when Flight SQL is served over TLS, `grpc` otherwise.
    pub fn flight_scheme(&self) -> &'static str {
        if self.flight_tls.is_some() {
            "grpc+tls"
        } else {
            "grpc"
        }
    }

    /// On the first start of a new mesh, the token of the user `admin` (group `admins`) made
    /// for it: the only time it is known, to be shown once and kept by whoever started the
    /// server. `None` on every later start.
    pub fn first_admin_token(&self) -> Option<&str> {
        self.first_admin_token.as_deref()
    }

    pub fn mesh(&self) -> &Arc<Mesh> {
        &self.mesh
    }

    /// Serves until `shutdown` completes. Then running queries are cancelled (their streamed
    /// results end with an error marker), requests in flight get up to the shutdown timeout to
    /// finish, and the metadata store is closed.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let state = AppState {
            services: self.mesh.clone(),
            max_body_bytes: self.max_body_bytes,
            event_max_body_bytes: self.event_max_body_bytes,
        };
        let app = router(state).layer(TraceLayer::new_for_http());
        let scheduler = (self.check_tick_seconds > 0).then(|| {
            tokio::spawn(crate::scheduler::run(
                self.mesh.clone(),
                std::time::Duration::from_secs(self.check_tick_seconds),
            ))
        });
        let maintenance = (!self.maintenance.interval.is_zero()).then(|| {
            tokio::spawn(crate::maintenance::run(
                self.mesh.clone(),
                self.maintenance.clone(),
            ))
        });
        let sources = (!self.source_tick.is_zero())
            .then(|| tokio::spawn(crate::sources::run(self.mesh.clone(), self.source_tick)));
        let transforms = (!self.transform_tick.is_zero()).then(|| {
            tokio::spawn(crate::transform_runs::run(
                self.mesh.clone(),
                self.transform_tick,
            ))
        });
        let lineage_delivery = self.openlineage.url.clone().map(|url| {
            tokio::spawn(crate::openlineage::deliver(
                self.mesh.clone(),
                url,
                self.openlineage.tick,
            ))
        });
        let lineage_pruning = Some(tokio::spawn(crate::openlineage::prune(self.mesh.clone())));
        let stop_front_ends = tokio_util::sync::CancellationToken::new();
        let postgres_tls = self.postgres_tls.clone();
        let postgres = self.postgres.map(|(listener, server)| {
            tokio::spawn(crate::pgwire::serve(
                listener,
                server,
                postgres_tls,
                stop_front_ends.clone(),
            ))
        });
        let flight_tls = self.flight_tls.clone();
        let flight = self.flight.map(|(listener, service)| {
            tokio::spawn(crate::flightsql::serve(
                listener,
                service,
                flight_tls,
                stop_front_ends.clone(),
            ))
        });
        let front_ends_stopped = stop_front_ends.clone();
        let committer = tokio::spawn(crate::events::run_committer(self.mesh.clone()));
        let stop_committing = committer.abort_handle();
        let (signalled, stop_waiting) = tokio::sync::oneshot::channel::<()>();
        let mesh = self.mesh.clone();
        let graceful = async move {
            shutdown.await;
            // The events waiting are committed while the query runtime (which the commit
            // gate runs on) still runs; a commit in flight is dropped whole, its events
            // stay in the log. Events acknowledged after this wait in the log for the next
            // start.
            stop_committing.abort();
            if let Err(e) = mesh.flush_events().await {
                tracing::warn!(error = %e, "events not committed at shutdown stay in the event log for the next start");
            }
            tracing::info!("shutting down: cancelling running queries");
            mesh.stop_queries();
            stop_front_ends.cancel();
            let _ = signalled.send(());
        };
        let served: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> =
            match self.https {
                Some(acceptor) => {
                    let listener = crate::tls::TlsListener::new(self.listener, acceptor)
                        .map_err(|e| ServiceError::Internal(e.to_string()))?;
                    Box::pin(
                        axum::serve(listener, app)
                            .with_graceful_shutdown(graceful)
                            .into_future(),
                    )
                }
                None => Box::pin(
                    axum::serve(self.listener, app)
                        .with_graceful_shutdown(graceful)
                        .into_future(),
                ),
            };
        let grace = std::time::Duration::from_secs(self.shutdown_timeout_seconds);
        let served = tokio::select! {
            served = served => served
                .map_err(|e| ServiceError::Unavailable(format!("the HTTP server failed: {e}"))),
            _ = async {
                if stop_waiting.await.is_ok() {
                    tokio::time::sleep(grace).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => {
                tracing::warn!(seconds = grace.as_secs(), "requests were still in flight at the shutdown timeout; stopping anyway");
                Ok(())
            }
        };
        // PostgreSQL and Flight SQL clients get the rest of the grace period to see their
        // statements end (cancelled, with their status) before their connections are cut.
        front_ends_stopped.cancel();
        let mut front_ends: Vec<_> = [postgres, flight].into_iter().flatten().collect();
        let _ = tokio::time::timeout(grace, futures::future::join_all(front_ends.iter_mut())).await;
        for task in [
            scheduler,
            maintenance,
            sources,
            transforms,
            lineage_delivery,
            lineage_pruning,
        ]
        .into_iter()
        .flatten()
        {
            task.abort();
        }
        for task in front_ends {
            task.abort();
        }
        committer.abort();
        let _ = committer.await;
        self.mesh.close().await;
        served
    }
}

/// The listener of a front end that `flag` turns on (`--pg`, `--flight`), or an error that says
/// how to move it or turn it off.
async fn bind_front_end(address: SocketAddr, clients: &str, flag: &str) -> Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|e| {
        ServiceError::BadRequest(format!(
            "cannot listen for {clients} clients on {address}: {e} ({flag} ADDR, or {flag} off)"
        ))
    })
}
