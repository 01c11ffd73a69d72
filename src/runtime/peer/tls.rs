//! TLS around peer links (`--tls-cluster`): the TCP stream of every peer connection, in both directions, is
//! wrapped in a TLS stream before the peer handshake starts, and the peer handshake and every frame run inside it.
//!
//! Mutual TLS under the cluster CA (`runtime::tls::cluster_configs`): the acceptor requires a client certificate
//! chained to the CA, the connector presents the node's certificate and verifies the acceptor's chain against the
//! CA, not its name (peers dial IP addresses; which node a peer is, the cluster handshake proves). The TLS
//! handshake must finish within `handshake_timeout_ms` (the peer handshake then gets its own, as without TLS);
//! every failed or late TLS handshake, on either side, is counted once in `tls_handshakes_failed`: a plain-TCP
//! peer, a certificate from another CA or none, an expired one, a connector that refuses the acceptor's. With TLS
//! 1.3 a connector whose certificate the acceptor refuses learns it only from the alert that answers its first
//! bytes, inside the peer handshake: `is_tls_error` lets the link count that as a TLS failure too.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

use super::PeerStats;
use crate::runtime::tls::{cluster_configs, ClusterTlsFiles, TlsError};

/// Both ends of TLS peer links, built once at start from the node's certificate, key and the cluster CA.
#[derive(Clone)]
pub struct PeerTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls { mutual, cluster CA }")
    }
}

impl PeerTls {
    /// Read the files and build both configurations; any missing or malformed file is an error here.
    pub fn new(files: &ClusterTlsFiles) -> Result<PeerTls, TlsError> {
        let (server, client) = cluster_configs(files)?;
        Ok(PeerTls { acceptor: TlsAcceptor::from(server), connector: TlsConnector::from(client) })
    }

    /// The acceptor's TLS handshake on an inbound connection from `remote`, within `timeout_ms`; a failure is
    /// counted and logged, and gives `None`.
    pub(super) async fn accept(
        &self,
        tcp: TcpStream,
        remote: SocketAddr,
        timeout_ms: u64,
        stats: &PeerStats,
    ) -> Option<server::TlsStream<TcpStream>> {
        let outcome = tokio::time::timeout(Duration::from_millis(timeout_ms), self.acceptor.accept(tcp)).await;
        match flatten(outcome) {
            Ok(stream) => Some(stream),
            Err(e) => {
                stats.tls_handshakes_failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%remote, error = %e, "peer connection closed: TLS handshake failed");
                None
            }
        }
    }

    /// The connector's TLS handshake with the peer at `peer`, within `timeout_ms`; a failure is counted.
    pub(super) async fn connect(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        timeout_ms: u64,
        stats: &PeerStats,
    ) -> std::io::Result<client::TlsStream<TcpStream>> {
        // An IP address as the name: rustls sends no SNI for it, and the verifier does not check names.
        let name = ServerName::IpAddress(peer.ip().into());
        let outcome = tokio::time::timeout(Duration::from_millis(timeout_ms), self.connector.connect(name, tcp)).await;
        flatten(outcome).inspect_err(|_| {
            stats.tls_handshakes_failed.fetch_add(1, Ordering::Relaxed);
        })
    }
}

/// A handshake's result, a timeout being an error like any other.
fn flatten<T>(outcome: Result<std::io::Result<T>, tokio::time::error::Elapsed>) -> std::io::Result<T> {
    outcome.map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// Whether an I/O error on a TLS stream came from TLS itself (an alert, a bad record), not from the socket.
pub(super) fn is_tls_error(error: &std::io::Error) -> bool {
    error.get_ref().is_some_and(|inner| inner.is::<tokio_rustls::rustls::Error>())
}
