//! Accepting clients: the accept loop over the plain and TLS listeners (which also notices a runtime task
//! ending on its own), the TLS handshake under its timeout, the `maxclients` limit, and the hand-over of each
//! connection to `conn::serve` in a task of its own.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::{conn, ended, ServeError, Shared, Tasks};

/// Accept client connections (plain and TLS) until `external` asks to stop; an error when one of `tasks` ends
/// on its own first.
pub(super) async fn accept_until(
    listener: Option<TcpListener>,
    tls: Option<(TcpListener, TlsAcceptor)>,
    external: &mut watch::Receiver<bool>,
    tasks: &mut Tasks,
    shared: &Arc<Shared>,
    shutdown: &watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let next_conn = AtomicU64::new(1);
    let (tls_listener, acceptor) = tls.unzip();
    loop {
        let (accepted, acceptor) = tokio::select! {
            accepted = accept_on(listener.as_ref()) => (accepted, None),
            accepted = accept_on(tls_listener.as_ref()) => (accepted, acceptor.clone()),
            _ = external.changed() => {
                if *external.borrow() {
                    return Ok(());
                }
                continue;
            }
            how = ended(&mut tasks.node_task) => return Err(ServeError::TaskEnded { task: "node task", how }),
            how = ended(&mut tasks.receiving) => return Err(ServeError::TaskEnded { task: "gossip receiver", how }),
            how = ended(&mut tasks.peer_listening) => {
                return Err(ServeError::TaskEnded { task: "peer listener", how })
            }
        };
        match accepted {
            Ok((socket, peer)) => {
                let id = next_conn.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(accept(socket, peer, id, acceptor, shared.clone(), shutdown.clone()));
            }
            Err(e) => {
                // Running out of file descriptors must not kill the server: log, back off, go on.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// The next connection on `listener`; never, without one.
async fn accept_on(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Serve one accepted connection, over TLS when `acceptor` is given.
async fn accept(
    socket: TcpStream,
    peer: SocketAddr,
    id: u64,
    acceptor: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = socket.set_nodelay(true);
    shared.stats.connected.fetch_add(1, Ordering::Relaxed);
    shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
    match acceptor {
        None => {
            let (reader, writer) = socket.into_split();
            client(reader, writer, peer, id, &shared, shutdown).await;
        }
        Some(acceptor) => {
            let timeout_ms = shared.config.tls.as_ref().map_or(10_000, |t| t.handshake_timeout_ms);
            match tokio::time::timeout(Duration::from_millis(timeout_ms), acceptor.accept(socket)).await {
                Ok(Ok(stream)) => {
                    let (reader, writer) = tokio::io::split(stream);
                    client(reader, writer, peer, id, &shared, shutdown).await;
                }
                Ok(Err(e)) => {
                    shared.stats.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    shared.stats.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, timeout_ms, "TLS handshake timed out");
                }
            }
        }
    }
    shared.stats.connected.fetch_sub(1, Ordering::Relaxed);
}

/// Serve a client over its (plain or TLS) stream halves, or refuse it past `maxclients`.
async fn client<R, W>(
    reader: R,
    mut writer: W,
    peer: SocketAddr,
    id: u64,
    shared: &Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if shared.stats.connected.load(Ordering::Relaxed) as usize > shared.config.maxclients {
        shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
        let _ = writer.write_all(b"-ERR max number of clients reached\r\n").await;
        let _ = writer.shutdown().await;
    } else {
        tracing::debug!(%peer, conn = id, "client connected");
        conn::serve(reader, writer, peer, id, shared.clone(), shutdown).await;
    }
}
