//! A Prometheus scrape endpoint: `GET /metrics` over plain HTTP/1.1 on `--metrics ADDR`.
//!
//! Hand-written on purpose: one GET path, text out, no TLS, so no HTTP framework (and its build time) is pulled
//! in. The node task renders its part (`core::metrics`); this adds what only the runtime knows (connections,
//! peer links). Requests are bounded (8 KiB of headers, 5 s to send them); anything but `GET /metrics` is a 404.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

use super::node_task::ToNode;
use super::Shared;
use crate::core::metrics::metric;

/// Largest request head read.
const REQUEST_BYTES_MAX: usize = 8 * 1024;

/// Serve scrapes until shutdown.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((socket, _)) = accepted {
                    tokio::spawn(scrape(socket, shared.clone()));
                }
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

async fn scrape(mut socket: TcpStream, shared: Arc<Shared>) {
    let mut head = Vec::with_capacity(512);
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < REQUEST_BYTES_MAX {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    })
    .await;
    if !matches!(read, Ok(true)) {
        return;
    }
    let response = if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET /metrics?") {
        let (tx, rx) = oneshot::channel();
        if shared.to_node.send(ToNode::Metrics { reply: tx }).await.is_err() {
            return;
        }
        let Ok(mut body) = rx.await else { return };
        runtime_metrics(&shared, &mut body);
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
    };
    let _ = socket.write_all(response.as_bytes()).await;
    let _ = socket.shutdown().await;
}

/// What the runtime adds: connections and peer links.
fn runtime_metrics(shared: &Shared, out: &mut String) {
    let s = &shared.stats;
    let p = &shared.peer_stats;
    let rows: [(&str, &str, &str, &std::sync::atomic::AtomicU64); 20] = [
        ("shoal_connected_clients", "gauge", "Client connections open.", &s.connected),
        ("shoal_connections_total", "counter", "Client connections accepted.", &s.accepted),
        ("shoal_connections_rejected_total", "counter", "Connections refused (maxclients).", &s.rejected),
        (
            "shoal_gossip_datagrams_dropped_total",
            "counter",
            "Gossip datagrams dropped because the node task's gossip queue was full.",
            &shared.gossip_dropped,
        ),
        ("shoal_peer_frames_sent_total", "counter", "Frames written to peers.", &p.frames_sent),
        ("shoal_peer_bytes_sent_total", "counter", "Bytes written to peers.", &p.bytes_sent),
        ("shoal_peer_frames_received_total", "counter", "Frames read from peers.", &p.frames_received),
        ("shoal_peer_bytes_received_total", "counter", "Bytes read from peers.", &p.bytes_received),
        (
            "shoal_peer_frames_dropped_total",
            "counter",
            "Peer messages dropped (queue full, link failed, too large even in parts).",
            &p.frames_dropped,
        ),
        (
            "shoal_peer_messages_split_total",
            "counter",
            "Peer messages larger than one frame, sent in parts.",
            &p.messages_split,
        ),
        (
            "shoal_peer_messages_too_large_total",
            "counter",
            "Peer messages dropped for exceeding the reassembly limit.",
            &p.messages_too_large,
        ),
        (
            "shoal_peer_frames_rejected_total",
            "counter",
            "Peer connections closed for a malformed frame (size, version, body).",
            &p.frames_bad,
        ),
        (
            "shoal_peer_frames_forged_total",
            "counter",
            "Peer frames whose MAC or crc failed (forged, corrupt, or spliced from another link).",
            &p.frames_forged,
        ),
        (
            "shoal_peer_frames_replayed_total",
            "counter",
            "Verified peer frames with an old sequence number (replays).",
            &p.frames_replayed,
        ),
        (
            "shoal_peer_frames_reordered_total",
            "counter",
            "Verified peer frames ahead of their link's next sequence number.",
            &p.frames_reordered,
        ),
        (
            "shoal_peer_handshakes_failed_total",
            "counter",
            "Peer link handshakes that failed (malformed, oversized, wrong secret, bad proof).",
            &p.handshakes_failed,
        ),
        (
            "shoal_peer_handshake_timeouts_total",
            "counter",
            "Inbound peer connections that did not finish the handshake in time.",
            &p.handshake_timeouts,
        ),
        (
            "shoal_peer_handshakes_refused_total",
            "counter",
            "Inbound peer connections refused because too many were in handshake.",
            &p.handshakes_refused,
        ),
        (
            "shoal_peer_tls_handshakes_failed_total",
            "counter",
            "Peer link TLS handshakes (--tls-cluster) that failed or timed out, either side.",
            &p.tls_handshakes_failed,
        ),
        ("shoal_peer_link_failures_total", "counter", "Peer link failures.", &p.links_failed),
    ];
    for (name, kind, help, value) in rows {
        metric(out, name, kind, help, &[("", value.load(Ordering::Relaxed) as f64)]);
    }
}
