//! The peer transport: `PeerMsg`s between nodes over authenticated TCP links, framed by
//! `core::replication::codec` after the handshake of `core::replication::handshake`.
//!
//! A peer is named by its advertised cluster address, and the listener binds the same address and port as the
//! gossip socket (TCP next to UDP). Each direction has its own connection: this node writes to a peer on the
//! connection it opened (its *link* to that peer), and reads what the peer sends on the connection the peer
//! opened. Every connection starts with the three-frame handshake (`Hello`, `Challenge`, `Finish`): fresh
//! nonces from both sides, proofs of the cluster secret over a transcript binding both nonces, both claimed
//! addresses and names and the protocol version, and a per-link session key derived from the secret and the
//! transcript (HKDF-SHA256). No message is read before the handshake completes; every message frame then
//! carries a sequence number under the session MAC, and the receiver accepts only the next one, so replayed,
//! reordered and spliced frames close the connection and are counted (`PeerStats`). The sender address and
//! name that come with each message to the node task are the ones the handshake authenticated; the node drops
//! messages whose sender is not a live member of its view under that name and address.
//!
//! Before the handshake completes an inbound connection may buffer at most `inbound::PREAUTH_BYTES_MAX` bytes
//! (a handshake frame is at most `HANDSHAKE_BYTES_MAX`), must finish within `handshake_timeout_ms`, and at most
//! `handshakes_max` connections may be in handshake at once (more are closed at once and counted).
//!
//! The byte stream under a link is generic (`PeerStream`: any `AsyncRead + AsyncWrite + Unpin + Send + Sync`):
//! plain TCP, or with `--tls-cluster` (`PeerConfig::tls`) a TLS stream around it (`tls`): mutual TLS under the
//! cluster CA, set up before the peer handshake, which then runs inside TLS unchanged. TLS adds confidentiality
//! and a certificate check on both ends; the cluster secret still decides membership. A TLS handshake that fails
//! or does not finish in `handshake_timeout_ms` is counted (`tls_handshakes_failed`) and closes the connection
//! before any peer handshake byte is read. Gossip (UDP) is not under TLS: its packets carry the secret's HMAC.
//!
//! Invariants: the node task never waits on the network (`send` is a `try_send` into the link's bounded
//! queue; a full queue drops and counts), one slow or dead peer never delays another (one task per link), and
//! each failure of a link (connect refused or timed out, handshake failed, write error, the peer closing) is
//! reported to the node once as `ToNode::PeerLost`, with what was queued dropped, so waiting requests fail over
//! at once instead of waiting for their timeout. A failed link reconnects on its next message, after a backoff
//! that doubles per consecutive failure (`backoff_ms_min` to `backoff_ms_max`) and resets on success.
//!
//! A message larger than a frame is written in parts (`codec::parts`) and reassembled by the receiving connection,
//! at most `message_bytes_max` bytes at once (the server sets it to two bulk strings at `--proto-max-bulk-len`
//! plus 1 MiB); only a message beyond that is dropped at the sender, logged and counted (`messages_too_large`,
//! also in `frames_dropped`, both in INFO cluster and the metrics).
//!
//! Delivery is at most once and in order per peer: a message is never duplicated or reordered by the
//! transport, but any message can be lost (dropped on a full queue without notice, or lost with a link, which
//! the `PeerLost` signals); request ids and the node's timeouts do the rest.

mod inbound;
mod link;
mod tls;
mod weight;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::node_task::ToNode;
use crate::core::command::PeerLinkFacts;
use crate::core::membership::ClusterSecret;
use crate::core::replication::codec::{FRAME_BYTES_MAX_DEFAULT, MESSAGE_BYTES_MAX_DEFAULT};
use crate::core::replication::handshake::NONCE_BYTES;
use crate::core::replication::{DecodeError, PeerMsg};
pub use tls::PeerTls;

/// A byte stream a peer link runs over: TCP, or (for `--tls-cluster`) a TLS stream around it.
pub trait PeerStream: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static> PeerStream for T {}

/// A fresh handshake nonce from the OS.
fn nonce() -> std::io::Result<[u8; NONCE_BYTES]> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|e| std::io::Error::other(format!("no randomness for a nonce: {e}")))?;
    Ok(nonce)
}

/// Settings of the peer transport.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// This node's advertised cluster address, sent in every handshake.
    pub advertise: SocketAddr,
    /// This node's name, sent in every handshake.
    pub name: String,
    /// Cluster secret: handshakes prove it and frames carry a MAC under a key derived from it, instead of a crc32.
    pub secret: Option<ClusterSecret>,
    /// Messages queued per peer before new ones are dropped.
    pub queue_frames_max: usize,
    /// Estimated bytes queued per peer before new messages are dropped (one message is always let through).
    pub queue_bytes_max: usize,
    /// Largest frame sent or accepted (its length field).
    pub frame_bytes_max: usize,
    /// Largest message body sent or reassembled in parts, per connection (a larger message does not fit one frame).
    pub message_bytes_max: usize,
    /// Most bytes gathered into one write.
    pub batch_bytes_max: usize,
    /// How long a connect may take.
    pub connect_timeout_ms: u64,
    /// How long one batched write may take before the peer counts as lost.
    pub write_timeout_ms: u64,
    /// Longest time data written on a link may stay unacknowledged by the peer's TCP before the kernel aborts the
    /// connection (`TCP_USER_TIMEOUT`, Linux; 0: the system default, about 15 minutes). Frames written into a
    /// link that a partition cut stay in the kernel's send buffer and would be delivered when it heals: a
    /// `Forward` its sender already failed over would then run again, late, with a fresh timestamp, over newer
    /// acknowledged writes. Below the forward timeout, the connection fails first and what it held is dropped.
    pub user_timeout_ms: u64,
    /// Wait before the first reconnect after a failure; doubles per consecutive failure.
    pub backoff_ms_min: u64,
    /// Longest wait before a reconnect.
    pub backoff_ms_max: u64,
    /// How long a connection has to complete its handshake (either side).
    pub handshake_timeout_ms: u64,
    /// Most inbound connections open at once; more are closed at once.
    pub inbound_max: usize,
    /// Most inbound connections in handshake at once; more are closed at once and counted.
    pub handshakes_max: usize,
    /// TLS around every peer connection (`--tls-cluster`); `None` runs links over plain TCP.
    pub tls: Option<PeerTls>,
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
            message_bytes_max: MESSAGE_BYTES_MAX_DEFAULT,
            batch_bytes_max: 1 << 20,
            connect_timeout_ms: 1_000,
            write_timeout_ms: 5_000,
            user_timeout_ms: 0,
            backoff_ms_min: 100,
            backoff_ms_max: 2_000,
            handshake_timeout_ms: 3_000,
            inbound_max: 1_024,
            handshakes_max: 64,
            tls: None,
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
    /// Messages dropped: queue full, or queued when a link failed, or too large even in parts.
    pub frames_dropped: AtomicU64,
    /// Messages larger than one frame, sent in parts.
    pub messages_split: AtomicU64,
    /// Messages dropped for exceeding `message_bytes_max` (also in `frames_dropped`).
    pub messages_too_large: AtomicU64,
    /// Inbound connections closed for a malformed message frame (size, version, body).
    pub frames_bad: AtomicU64,
    /// Inbound connections closed for a frame whose MAC or crc failed: forged, corrupt, or from another link.
    pub frames_forged: AtomicU64,
    /// Inbound connections closed for a verified frame with an old sequence number: a replay.
    pub frames_replayed: AtomicU64,
    /// Inbound connections closed for a verified frame with a sequence number ahead of the next.
    pub frames_reordered: AtomicU64,
    /// Handshakes that failed on either side: malformed, oversized, wrong secret or mode, bad proof.
    pub handshakes_failed: AtomicU64,
    /// Inbound connections closed for not finishing the handshake in time.
    pub handshake_timeouts: AtomicU64,
    /// Inbound connections closed at once because `handshakes_max` were in handshake.
    pub handshakes_refused: AtomicU64,
    /// TLS handshakes (`--tls-cluster`) that failed or timed out on either side: a plain-TCP peer, a certificate
    /// from another CA or none, a TLS alert in answer to the connector's first bytes.
    pub tls_handshakes_failed: AtomicU64,
    /// Outbound connections established (handshake completed).
    pub connects: AtomicU64,
    /// Link failures (connect, handshake or write), each reported once as `PeerLost`.
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
    /// Messages sent in parts.
    pub messages_split: u64,
    /// Messages dropped for exceeding the reassembly limit.
    pub messages_too_large: u64,
    /// Inbound connections closed for a malformed frame.
    pub frames_bad: u64,
    /// Inbound connections closed for a frame that did not verify.
    pub frames_forged: u64,
    /// Inbound connections closed for a replayed frame.
    pub frames_replayed: u64,
    /// Inbound connections closed for a frame ahead of its sequence.
    pub frames_reordered: u64,
    /// Handshakes that failed.
    pub handshakes_failed: u64,
    /// Handshakes not finished in time.
    pub handshake_timeouts: u64,
    /// Connections refused for too many handshakes at once.
    pub handshakes_refused: u64,
    /// TLS handshakes that failed or timed out.
    pub tls_handshakes_failed: u64,
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
            messages_split: get(&self.messages_split),
            messages_too_large: get(&self.messages_too_large),
            frames_bad: get(&self.frames_bad),
            frames_forged: get(&self.frames_forged),
            frames_replayed: get(&self.frames_replayed),
            frames_reordered: get(&self.frames_reordered),
            handshakes_failed: get(&self.handshakes_failed),
            handshake_timeouts: get(&self.handshake_timeouts),
            handshakes_refused: get(&self.handshakes_refused),
            tls_handshakes_failed: get(&self.tls_handshakes_failed),
            connects: get(&self.connects),
            links_failed: get(&self.links_failed),
        }
    }

    /// Count the message frame error that closed an inbound connection under its kind.
    fn frame_rejected(&self, error: &DecodeError) {
        let counter = match error {
            DecodeError::Check => &self.frames_forged,
            DecodeError::Replayed { .. } => &self.frames_replayed,
            DecodeError::Reordered { .. } => &self.frames_reordered,
            _ => &self.frames_bad,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl PeerCounters {
    /// The rejection and drop counters INFO cluster shows.
    pub fn link_facts(&self) -> PeerLinkFacts {
        PeerLinkFacts {
            frames_bad: self.frames_bad,
            frames_forged: self.frames_forged,
            frames_replayed: self.frames_replayed,
            frames_reordered: self.frames_reordered,
            handshakes_failed: self.handshakes_failed,
            handshake_timeouts: self.handshake_timeouts,
            handshakes_refused: self.handshakes_refused,
            tls_handshakes_failed: self.tls_handshakes_failed,
            frames_dropped: self.frames_dropped,
            messages_split: self.messages_split,
            messages_too_large: self.messages_too_large,
        }
    }
}

/// What links and inbound connections share.
struct Shared {
    config: PeerConfig,
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
        let shared = Arc::new(Shared { config, stats, to_node });
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
