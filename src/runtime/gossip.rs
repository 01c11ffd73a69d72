//! The gossip transport: one UDP socket for SWIM datagrams, and the seed resolver.
//!
//! Received datagrams go to the node task as `ToNode::Gossip`; when its queue is full they are dropped (UDP is
//! lossy anyway, and SWIM tolerates loss) and counted. Seeds are host:port strings resolved through DNS when the
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

/// Receive datagrams until shutdown, handing each to the node task.
pub async fn receive(
    socket: Arc<UdpSocket>,
    to_node: mpsc::Sender<ToNode>,
    dropped: Arc<AtomicU64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; DATAGRAM_BYTES_MAX];
    loop {
        tokio::select! {
            got = socket.recv_from(&mut buf) => match got {
                Ok((n, from)) => {
                    let msg = ToNode::Gossip { from, packet: Bytes::copy_from_slice(&buf[..n]) };
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
