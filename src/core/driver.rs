//! The contract between a `Node` and the driver that runs it (the tokio runtime, the simulator, the test kits):
//! what goes in (`Input`), what comes out (`Output`, collected in an `Outbox`), and the timers a node asks for
//! (`TimerId`). docs/architecture.md §2 says what a driver must guarantee.

use std::net::SocketAddr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::command::Command;
use super::membership::{GossipTimer, MemberEvent};
use super::replication::{Levels, PeerMsg};
use super::reply::Reply;
use super::Millis;

/// A client connection, as the driver numbers them.
pub type ConnId = u64;
/// A request on one connection, numbered by the connection in the order it arrived.
pub type ReqId = u64;

/// The id of one request a node keeps in flight (a forward, a read, a write, a fan-out, a lock, a hand-off or a
/// flush), and of the peer messages that belong to it. A node numbers its requests from 1; the id is only
/// meaningful to the node that chose it (a replica echoes it back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub u64);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Serde form of an optional `RequestId` on the wire: `None` is written as 0, which no request ever has, so
/// frames keep the shape they had when 0 meant "no answer wanted".
pub(crate) mod answer_id {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::RequestId;

    /// Writes `None` as 0.
    pub fn serialize<S: Serializer>(id: &Option<RequestId>, s: S) -> Result<S::Ok, S::Error> {
        id.map_or(0, |id| id.0).serialize(s)
    }

    /// Reads 0 as `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RequestId>, D::Error> {
        Ok(from_wire(u64::deserialize(d)?))
    }

    /// The id a wire value stands for (0: none).
    pub fn from_wire(raw: u64) -> Option<RequestId> {
        (raw != 0).then_some(RequestId(raw))
    }

    /// The wire value of an optional id.
    pub fn to_wire(id: Option<RequestId>) -> u64 {
        id.map_or(0, |id| id.0)
    }
}

/// The node's timers. When several are due at once, drivers deliver them in `Ord` order (membership needs it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerId {
    /// Reclaim expired keys (Redis's active expiry).
    ActiveExpire,
    /// A membership (SWIM) timer.
    Gossip(GossipTimer),
    /// The deadline of request `id` (a forward, a read or a write waiting for replicas).
    Request(RequestId),
    /// Deliver hints to replicas that are back.
    Hints,
    /// Start an anti-entropy round.
    AntiEntropy,
    /// Hand off keys this node no longer owns.
    Sweep,
}

/// One input to the node.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The driver started the node: it schedules its first timers.
    Start,
    /// A client command.
    Client {
        /// The connection that sent it.
        conn: ConnId,
        /// The request's number on that connection.
        req: ReqId,
        /// The command.
        cmd: Command,
        /// The consistency levels of the client's connection.
        levels: Levels,
    },
    /// A timer the node scheduled is due.
    Timer(TimerId),
    /// A gossip datagram arrived from `from`.
    Gossip {
        /// The sender's address.
        from: SocketAddr,
        /// The datagram.
        packet: Bytes,
    },
    /// The seed addresses were (re-)resolved.
    SetSeeds(Vec<SocketAddr>),
    /// Leave the cluster gracefully (before a shutdown).
    Leave,
    /// A message from the peer whose cluster address is `from` and whose name is `name`, as the link's
    /// handshake established them. Dropped and counted unless that is a live (alive or suspect) member.
    Peer {
        /// The sender's advertised cluster address.
        from: SocketAddr,
        /// The sender's node name.
        name: std::sync::Arc<str>,
        /// The message.
        msg: PeerMsg,
    },
    /// The connection to a peer failed (refused, reset, closed): requests waiting on it fail over at once.
    PeerLost {
        /// The peer's cluster address.
        peer: SocketAddr,
    },
}

/// One effect the driver must carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send `reply` to request `req` of connection `conn`.
    Reply {
        /// The connection.
        conn: ConnId,
        /// The request the reply answers.
        req: ReqId,
        /// The reply.
        reply: Reply,
    },
    /// Deliver `Input::Timer(timer)` after `after_ms` milliseconds.
    Schedule {
        /// Delay in milliseconds.
        after_ms: Millis,
        /// The timer.
        timer: TimerId,
    },
    /// Send one gossip datagram.
    SendGossip {
        /// Destination gossip address.
        to: SocketAddr,
        /// The datagram.
        packet: Bytes,
    },
    /// The membership view changed (for logs and metrics). Boxed: it is rare and the largest output.
    Member(Box<MemberEvent>),
    /// Send a message to the peer whose cluster address is `to` (over its TCP peer connection).
    SendPeer {
        /// The peer's cluster address.
        to: SocketAddr,
        /// The message.
        msg: PeerMsg,
    },
}

/// Where the node writes its effects; the driver drains it after every call.
#[derive(Debug, Default)]
pub struct Outbox {
    items: Vec<Output>,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// Add an effect.
    pub fn push(&mut self, out: Output) {
        self.items.push(out);
    }

    /// Take every effect written so far, in order.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Output> {
        self.items.drain(..)
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Number of pending effects.
    pub fn len(&self) -> usize {
        self.items.len()
    }
}
