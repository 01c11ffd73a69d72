//! The peer transport: `PeerMsg`s between nodes over TCP, framed by `core::replication::codec`.
//!
//! A peer is named by its advertised cluster address, and the listener binds the same address and port as the
//! gossip socket (TCP next to UDP). Each direction has its own connection: this node writes to a peer on the
//! connection it opened (its *link* to that peer), and reads what the peer sends on the connection the peer
//! opened; every connection starts with a `Hello` naming the sender, so answers are routed by address, not by
//! socket. Invariants: the node task never waits on the network (`send` is a `try_send` into the link's bounded
//! queue; a full queue drops and counts), one slow or dead peer never delays another (one task per link), and
//! each failure of a link (connect refused or timed out, write error, the peer closing) is reported to the node
//! once as `ToNode::PeerLost`, with what was queued dropped, so waiting requests fail over at once instead of
//! waiting for their timeout. A failed link reconnects on its next message, after a backoff that doubles per
//! consecutive failure (`backoff_ms_min` to `backoff_ms_max`) and resets on success.
//!
//! Delivery is at most once and in order per peer: a message is never duplicated or reordered by the
//! transport, but any message can be lost (dropped on a full queue without notice, or lost with a link, which
//! the `PeerLost` signals); request ids and the node's timeouts do the rest.

mod inbound;
mod link;
mod weight;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::node_task::ToNode;
use crate::core::membership::ClusterSecret;
use crate::core::replication::codec::FRAME_BYTES_MAX_DEFAULT;
use crate::core::replication::{FrameCodec, PeerMsg};

/// Settings of the peer transport.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// This node's advertised cluster address, sent in every `Hello`.
    pub advertise: SocketAddr,
    /// This node's name, sent in every `Hello`.
    pub name: String,
    /// Cluster secret: frames carry a MAC instead of a crc32.
    pub secret: Option<ClusterSecret>,
    /// Messages queued per peer before new ones are dropped.
    pub queue_frames_max: usize,
    /// Estimated bytes queued per peer before new messages are dropped (one message is always let through).
    pub queue_bytes_max: usize,
    /// Largest frame sent or accepted (its length field).
    pub frame_bytes_max: usize,
    /// Most bytes gathered into one write.
    pub batch_bytes_max: usize,
    /// How long a connect may take.
    pub connect_timeout_ms: u64,
    /// How long one batched write may take before the peer counts as lost.
    pub write_timeout_ms: u64,
    /// Wait before the first reconnect after a failure; doubles per consecutive failure.
    pub backoff_ms_min: u64,
    /// Longest wait before a reconnect.
    pub backoff_ms_max: u64,
    /// How long an accepted connection has to send its `Hello`.
    pub hello_timeout_ms: u64,
    /// Most inbound connections open at once; more are closed at once.
    pub inbound_max: usize,
}

impl PeerConfig {
    /// Defaults for a node advertising `advertise` under `name`.
    pub fn new(advertise: SocketAddr, name: String, secret: Option<ClusterSecret>) -> PeerConfig {
        PeerConfig {
            advertise,
            name,
            secret,
            queue_frames_max: 8_192,
            queue_bytes_max: 64 << 20,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            batch_bytes_max: 1 << 20,
            connect_timeout_ms: 1_000,
            write_timeout_ms: 5_000,
            backoff_ms_min: 100,
            backoff_ms_max: 2_000,
            hello_timeout_ms: 5_000,
            inbound_max: 1_024,
        }
    }
}

/// Transport counters, shared with every link and inbound connection.
#[derive(Debug, Default)]
pub struct PeerStats {
    /// Frames written to peers.
    pub frames_sent: AtomicU64,
    /// Bytes written to peers.
    pub bytes_sent: AtomicU64,
    /// Message frames read from peers.
    pub frames_received: AtomicU64,
    /// Bytes read from peers.
    pub bytes_received: AtomicU64,
    /// Messages dropped: queue full, or queued when a link failed, or too large to frame.
    pub frames_dropped: AtomicU64,
    /// Inbound connections closed for a bad frame (size, version, check, body, missing hello).
    pub frames_bad: AtomicU64,
    /// Outbound connections established.
    pub connects: AtomicU64,
    /// Link failures (connect or write), each reported once as `PeerLost`.
    pub links_failed: AtomicU64,
}

/// A plain copy of `PeerStats` at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCounters {
    /// Frames written to peers.
    pub frames_sent: u64,
    /// Bytes written to peers.
    pub bytes_sent: u64,
    /// Message frames read from peers.
    pub frames_received: u64,
    /// Bytes read from peers.
    pub bytes_received: u64,
    /// Messages dropped.
    pub frames_dropped: u64,
    /// Inbound connections closed for a bad frame.
    pub frames_bad: u64,
    /// Outbound connections established.
    pub connects: u64,
    /// Link failures reported as `PeerLost`.
    pub links_failed: u64,
}

impl PeerStats {
    /// The counters now.
    pub fn snapshot(&self) -> PeerCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PeerCounters {
            frames_sent: get(&self.frames_sent),
            bytes_sent: get(&self.bytes_sent),
            frames_received: get(&self.frames_received),
            bytes_received: get(&self.bytes_received),
            frames_dropped: get(&self.frames_dropped),
            frames_bad: get(&self.frames_bad),
            connects: get(&self.connects),
            links_failed: get(&self.links_failed),
        }
    }
}

/// What links and inbound connections share.
struct Shared {
    config: PeerConfig,
    codec: FrameCodec,
    stats: Arc<PeerStats>,
    to_node: mpsc::Sender<ToNode>,
}

/// The node task's handle on the transport: one link per destination, created on first use.
pub struct PeerTransport {
    shared: Arc<Shared>,
    links: HashMap<SocketAddr, link::Handle>,
}

impl PeerTransport {
    /// A transport that reports received messages and lost peers to `to_node` and counts into `stats`.
    pub fn new(config: PeerConfig, to_node: mpsc::Sender<ToNode>, stats: Arc<PeerStats>) -> PeerTransport {
        let codec = FrameCodec::new(config.secret.clone()).with_frame_bytes_max(config.frame_bytes_max);
        let shared = Arc::new(Shared { config, codec, stats, to_node });
        PeerTransport { shared, links: HashMap::new() }
    }

    /// The transport's counters.
    pub fn stats(&self) -> Arc<PeerStats> {
        self.shared.stats.clone()
    }

    /// Accept peers' connections on `listener` until `shutdown` flips to true.
    pub fn listen(&self, listener: TcpListener, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(inbound::accept(listener, self.shared.clone(), shutdown))
    }

    /// Queue `msg` for the peer at `to`; never waits. Dropped and counted when that peer's queue is full.
    pub fn send(&mut self, to: SocketAddr, msg: PeerMsg) {
        self.send_many(to, vec![msg]);
    }

    /// Queue `msgs` for the peer at `to`, in order, as one batch (one queue operation and at most one wake-up
    /// of the link for all of them); never waits. Those that do not fit the peer's queue are dropped and counted.
    pub fn send_many(&mut self, to: SocketAddr, msgs: Vec<PeerMsg>) {
        let shared = &self.shared;
        let link = self.links.entry(to).or_insert_with(|| link::spawn(to, shared.clone()));
        let dropped = match link.try_send(msgs, &shared.config) {
            Ok(dropped) => dropped,
            Err((msgs, dropped)) => {
                // The link task is gone (it only stops when its queue closes, so it panicked): start a new one.
                *link = link::spawn(to, shared.clone());
                let offered = msgs.len();
                dropped + link.try_send(msgs, &shared.config).unwrap_or(offered)
            }
        };
        if dropped > 0 {
            shared.stats.frames_dropped.fetch_add(dropped as u64, Ordering::Relaxed);
        }
    }
}
