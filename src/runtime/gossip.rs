//! The gossip transport: one UDP socket for SWIM datagrams, and the seed resolver.
//!
//! Received datagrams go to the node task on a queue of their own (`GOSSIP_QUEUE_MAX`), apart from client batches
//! and peer messages: the node task takes them first on every turn, so heavy client load never delays a probe or
//! its ack into a false suspicion. When that queue is full a datagram is dropped (UDP is lossy anyway, and SWIM
//! tolerates loss) and counted (`gossip_datagrams_dropped` in INFO cluster and the metrics). Seeds are host:port strings resolved through DNS when the
//! node starts and again every `seed_refresh_ms`, so a Kubernetes headless service name follows its pods.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::node_task::ToNode;

/// Largest datagram accepted; larger ones are truncated by the kernel and then rejected by the decoder.
const DATAGRAM_BYTES_MAX: usize = 64 * 1024;

/// Most received datagrams waiting for the node task (SWIM sends a few per member per probe period).
pub const GOSSIP_QUEUE_MAX: usize = 1024;

/// A received gossip datagram and its sender.
#[derive(Debug)]
pub struct Datagram {
    /// The sender's address.
    pub from: SocketAddr,
    /// The datagram.
    pub packet: Bytes,
}

/// Receive datagrams until shutdown, handing each to the node task on its gossip queue.
pub async fn receive(
    socket: Arc<UdpSocket>,
    to_node: mpsc::Sender<Datagram>,
    dropped: Arc<AtomicU64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; DATAGRAM_BYTES_MAX];
    loop {
        tokio::select! {
            got = socket.recv_from(&mut buf) => match got {
                Ok((n, from)) => {
                    let msg = Datagram { from, packet: Bytes::copy_from_slice(&buf[..n]) };
                    if to_node.try_send(msg).is_err() {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // ICMP errors from earlier sends surface here on some systems: not fatal.
                Err(e) => tracing::debug!(error = %e, "gossip receive error"),
            },
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

/// Resolve every seed (`host:port`) to its addresses; names that do not resolve are logged and skipped.
pub async fn resolve(seeds: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for seed in seeds {
        match tokio::net::lookup_host(seed.as_str()).await {
            Ok(addrs) => out.extend(addrs),
            Err(e) => tracing::warn!(%seed, error = %e, "cannot resolve seed"),
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Re-resolve the seeds periodically and tell the node when the set changes.
pub async fn refresh_seeds(
    seeds: Vec<String>,
    mut known: Vec<SocketAddr>,
    period: Duration,
    to_node: mpsc::Sender<ToNode>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
        let now = resolve(&seeds).await;
        if now != known && !now.is_empty() {
            tracing::info!(seeds = ?now, "seed addresses changed");
            known = now.clone();
            if to_node.send(ToNode::SetSeeds(now)).await.is_err() {
                return;
            }
        }
    }
}
