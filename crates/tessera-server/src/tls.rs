//! TLS for the front ends (`--tls-cert`, `--tls-key`): one certificate and key, read once at
//! startup, serve HTTPS, the PostgreSQL front end's `sslmode=require`, and later Flight SQL.
//! Handshakes run on tasks of their own, so a slow or silent client never holds up the accept
//! loop.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::error::{Result, ServiceError};

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The longest a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS acceptor for `config`, offering `alpn` (e.g. `postgresql`, `h2`) to clients that ask.
pub(crate) fn acceptor(config: &TlsConfig, alpn: &[&[u8]]) -> Result<TlsAcceptor> {
    let unreadable = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        ServiceError::BadRequest(format!(
            "the TLS {what} {} is not usable: {e}",
            path.display()
        ))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert)
        .map_err(|e| unreadable("certificate", &config.cert, &e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| unreadable("certificate", &config.cert, &e))?;
    if certs.is_empty() {
        return Err(unreadable(
            "certificate",
            &config.cert,
            &"it holds no PEM certificate",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key)
        .map_err(|e| unreadable("key", &config.key, &e))?;
    // Two crypto providers are linked in (ring and aws-lc-rs, through different
    // dependencies), so the one used is named rather than left to a process default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServiceError::Internal(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| unreadable("key", &config.key, &e))?;
    server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// HTTPS for `axum::serve`: the connections of a TCP listener whose TLS handshake finished.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    address: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub(crate) fn new(listener: TcpListener, acceptor: TlsAcceptor) -> io::Result<Self> {
        let address = listener.local_addr()?;
        let (send, ready) = mpsc::channel(64);
        let accepting = tokio::spawn(async move {
            loop {
                let (socket, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting an HTTPS connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, send) = (acceptor.clone(), send.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                        Ok(Ok(stream)) => {
                            let _ = send.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "a TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "a TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            ready,
            address,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop is gone (shutdown): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.address)
    }
}
