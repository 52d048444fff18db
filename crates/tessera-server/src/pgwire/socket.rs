//! One PostgreSQL connection's message loop: pgwire's own (`pgwire::tokio::process_socket`),
//! except that what the server answers goes out when it is about to wait for the client, in
//! one write, as PostgreSQL does (it flushes before it reads).
//!
//! pgwire flushes after ParseComplete, BindComplete, the row description, CommandComplete and
//! ReadyForQuery each, and with TCP_NODELAY every flush is a segment of its own that wakes the
//! client for part of an answer: five wakeups of a `SELECT 1` round trip where one does. Here
//! the socket is [`Corked`]: pgwire's flushes are held while the loop handles messages the
//! client has already sent, and released before the loop waits for the next one. A long result
//! does not wait for its end: what is held goes out whenever it reaches [`HELD_BYTES`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{
    MaybeTls, PgWireMessageServerCodec, negotiate_tls, process_error, process_message,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

use super::{PgServer, PgStatement};

/// Answers held back at most this long before they are written anyway: a long result streams
/// in writes of about this size.
const HELD_BYTES: usize = 64 << 10;

/// How long a client has to finish connecting (TLS and the password), as pgwire allows.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

type Socket = Framed<Corked<MaybeTls>, PgWireMessageServerCodec<PgStatement>>;

/// Serves one connection until the client leaves (pgwire's `process_socket` with a corked
/// socket; see the module documentation).
pub(super) async fn process_socket(
    tcp: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    server: PgServer,
) -> io::Result<()> {
    let startup_timeout = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup_timeout);
    let negotiated = tokio::select! {
        _ = &mut startup_timeout => return Ok(()),
        negotiated = negotiate_tls(tcp, tls) => negotiated?,
    };
    // A client that began TLS while TLS is off: nothing to answer.
    let Some(socket) = negotiated else {
        return Ok(());
    };
    let parts = socket.into_parts();
    let mut corked = FramedParts::new(Corked::new(parts.io), parts.codec);
    corked.read_buf = parts.read_buf;
    corked.write_buf = parts.write_buf;
    let mut socket: Socket = Framed::from_parts(corked);
    let served = serve_messages(&mut socket, startup_timeout, &server).await;
    // What the last message answered (a FATAL error) goes out before the socket closes.
    let released = release(&mut socket).await;
    served.and(released)
}

/// pgwire's message loop (its `process_socket_messages!`), releasing what is held before each
/// wait for the client.
async fn serve_messages(
    socket: &mut Socket,
    mut startup_timeout: Pin<&mut tokio::time::Sleep>,
    server: &PgServer,
) -> io::Result<()> {
    // The front end's own handlers (pgwire's trait hides what statements they keep); pgwire's
    // for what Tessera does not take (COPY, error hooks).
    let handlers = server.0.clone();
    let copy = server.copy_handler();
    let errors = server.error_handler();
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        if starting || !holds_a_message(socket.read_buffer()) {
            release(socket).await?;
        }
        let message = if starting {
            tokio::select! {
                _ = &mut startup_timeout => None,
                message = socket.next() => message,
            }
        } else {
            socket.next().await
        };
        let Some(Ok(message)) = message else {
            return Ok(());
        };
        // The client is leaving: close, as PostgreSQL does (asyncpg waits for it).
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            return Ok(());
        }
        let extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended_query) => extended_query,
            _ => message.is_extended_query(),
        };
        if let Err(mut e) = process_message(
            message,
            socket,
            handlers.clone(),
            handlers.clone(),
            handlers.clone(),
            copy.clone(),
            handlers.clone(),
        )
        .await
        {
            errors.on_error(&*socket, &mut e);
            process_error(socket, e, extended_query).await?;
        }
    }
}

/// Whether the bytes read hold a whole message of the client's (a type byte, then a length
/// that counts itself): if so, it is handled before anything is written.
fn holds_a_message(read: &[u8]) -> bool {
    match read.get(1..5) {
        Some(length) => {
            let length = u32::from_be_bytes(length.try_into().expect("four bytes")) as usize;
            read.len() > length
        }
        None => false,
    }
}

/// Writes out all that is held.
async fn release(socket: &mut Socket) -> io::Result<()> {
    socket.get_mut().corked = false;
    let flushed = SinkExt::<PgWireBackendMessage>::flush(socket).await;
    socket.get_mut().corked = true;
    flushed.map_err(|e| io::Error::other(e.to_string()))
}

/// A socket that holds what is written until it is flushed while uncorked, or until it holds
/// [`HELD_BYTES`].
pub(super) struct Corked<S> {
    inner: S,
    held: Vec<u8>,
    /// While set, a flush keeps what is held.
    corked: bool,
}

impl<S> Corked<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            held: Vec::new(),
            corked: true,
        }
    }
}

impl<S: AsyncWrite + Unpin> Corked<S> {
    /// Writes what is held to the socket.
    fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..written);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Corked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Corked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.held.len() >= HELD_BYTES {
            ready!(this.poll_write_held(cx))?;
        }
        this.held.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.corked {
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_write_held(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_held(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What the peer can read now, without waiting.
    async fn readable(peer: &mut tokio::io::DuplexStream) -> Vec<u8> {
        let mut got = vec![0u8; 4 * HELD_BYTES];
        match tokio::time::timeout(Duration::from_millis(50), peer.read(&mut got)).await {
            Ok(read) => {
                got.truncate(read.unwrap());
                got
            }
            Err(_) => Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_corked_socket_holds_flushes_until_released_or_full() {
        let (ours, mut peer) = tokio::io::duplex(8 * HELD_BYTES);
        let mut socket = Corked::new(ours);
        socket.write_all(b"ParseComplete").await.unwrap();
        socket.flush().await.unwrap();
        socket.write_all(b"BindComplete").await.unwrap();
        socket.flush().await.unwrap();
        assert!(readable(&mut peer).await.is_empty());
        // Released: everything, in one piece.
        socket.corked = false;
        socket.flush().await.unwrap();
        assert_eq!(readable(&mut peer).await, b"ParseCompleteBindComplete");
        // Held past the bound, it goes out without a flush.
        socket.corked = true;
        let row = vec![b'r'; HELD_BYTES / 4];
        for _ in 0..5 {
            socket.write_all(&row).await.unwrap();
        }
        assert_eq!(readable(&mut peer).await.len(), 4 * row.len());
        // Shutting down writes the rest.
        socket.shutdown().await.unwrap();
        assert_eq!(readable(&mut peer).await.len(), row.len());
    }

    #[test]
    fn a_message_is_whole_when_its_length_is_read() {
        // 'S' (Sync): a type byte and a length of 4 that counts itself.
        assert!(holds_a_message(b"S\0\0\0\x04"));
        assert!(holds_a_message(b"S\0\0\0\x04Q"));
        assert!(!holds_a_message(b"S\0\0\0"));
        assert!(!holds_a_message(b"Q\0\0\0\x09SELE"));
        assert!(!holds_a_message(b""));
    }
}
