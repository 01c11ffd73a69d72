//! The replication state a clustered node keeps next to its store: the ring and the addresses of its members,
//! requests in flight (forwards, reads, writes, fan-outs, hand-offs, hint deliveries), hints, counters and the
//! anti-entropy cursor.
//!
//! Everything is ordered (BTreeMap) so the simulator replays a seed byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use super::levels::Levels;
use super::wire::WireEntry;
use crate::core::command::Command;
use crate::core::driver::RequestId;
use crate::core::reply::Reply;
use crate::core::ring::Ring;
use crate::core::{ConnId, Millis, ReqId};

/// Who waits for a command's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A client of this node.
    Client { conn: ConnId, req: ReqId },
    /// A peer that forwarded the command.
    Peer { peer: SocketAddr, id: RequestId },
    /// One key of a multi-key command this node split up.
    Part { parent: RequestId, index: usize },
}

/// How a multi-key command's parts combine into one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FanKind {
    /// MGET: an array of the parts.
    Array,
    /// MSET: OK when every part is OK.
    AllOk,
    /// DEL, EXISTS, TOUCH: the sum of the parts.
    Sum,
}

/// A replica a write was sent to, and what became of it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub name: Arc<str>,
    pub addr: SocketAddr,
    pub acked: bool,
    /// The node holding a hint for this replica, when it did not answer in time.
    pub fallback: Option<SocketAddr>,
    /// A hint for this replica is kept here (no fallback answered or none existed).
    pub hinted_here: bool,
    /// The replica (or its fallback) refused the write for lack of memory: it will not acknowledge it.
    pub refused: bool,
}

/// One replica asked during a read.
#[derive(Debug, Clone)]
pub(crate) struct Asked {
    pub addr: SocketAddr,
    /// Answered, with the hash of its entry (0: it holds nothing).
    pub answer: Option<u64>,
    pub failed: bool,
}

/// A request in flight.
#[derive(Debug)]
pub(crate) enum Pending {
    /// A command sent to the key's owner, with the owners still to try.
    Forward { origin: Origin, cmd: Command, levels: Levels, candidates: Vec<Arc<str>>, next: usize, to: SocketAddr },
    /// A read waiting for replicas; `origin` is `None` once answered (the rest is read repair). With `then_write`
    /// it is the read phase of a write: once every replica answered (or time ran out) the write runs at that level
    /// on those owners, on top of everything the replicas held.
    Read {
        origin: Option<Origin>,
        cmd: Command,
        key: Bytes,
        needed: usize,
        asked: Vec<Asked>,
        level: &'static str,
        then_write: Option<(super::levels::Consistency, Vec<Arc<str>>)>,
        /// When the read went out: a stall since then voids a read that would write (its answers may predate it).
        started_at: Millis,
    },
    /// A write waiting for acknowledgements; `origin` is `None` once answered (the rest is hinting).
    Write {
        origin: Option<Origin>,
        reply: Reply,
        entries: Vec<(Bytes, WireEntry)>,
        needed: usize,
        acks: usize,
        targets: Vec<Target>,
        level: &'static str,
        round: u8,
    },
    /// A multi-key command waiting for its parts.
    Fanout { origin: Origin, kind: FanKind, parts: Vec<Option<Reply>>, remaining: usize },
    /// Keys this node no longer owns, pushed to their owners; dropped here once all of them acknowledged.
    Handoff { keys: Vec<(Bytes, u64)>, waiting: BTreeSet<SocketAddr> },
    /// Hints being delivered to their replica.
    HintDelivery { target: String, keys: Vec<Bytes> },
    /// A FLUSHALL waiting for the live peers to apply it (or for its timeout) before it answers.
    Flush { origin: Origin, waiting: BTreeSet<SocketAddr> },
    /// A lock command waiting for the lock's replicas.
    Lock(Box<crate::core::locks::LockRequest>),
}

/// Requests in flight by id, in id order. Each request is boxed: `Pending` is a few hundred bytes and a B-tree
/// moves its values on every insert and remove (requests mostly end oldest first, at the front of a node), so
/// pointer-sized values keep those moves and the tree itself small.
#[derive(Debug, Default)]
pub(crate) struct PendingMap(BTreeMap<RequestId, Box<Pending>>);

impl PendingMap {
    /// The request `id`.
    pub fn get(&self, id: &RequestId) -> Option<&Pending> {
        self.0.get(id).map(|p| &**p)
    }

    /// The request `id`, to change.
    pub fn get_mut(&mut self, id: &RequestId) -> Option<&mut Pending> {
        self.0.get_mut(id).map(|p| &mut **p)
    }

    /// Add (or replace) the request `id`.
    pub fn insert(&mut self, id: RequestId, pending: Pending) {
        self.0.insert(id, Box::new(pending));
    }

    /// Take the request `id` out.
    pub fn remove(&mut self, id: &RequestId) -> Option<Pending> {
        self.0.remove(id).map(|p| *p)
    }

    /// The ids in flight, ascending.
    pub fn keys(&self) -> impl Iterator<Item = &RequestId> {
        self.0.keys()
    }

    /// The requests in flight, by ascending id.
    pub fn values(&self) -> impl Iterator<Item = &Pending> {
        self.0.values().map(|p| &**p)
    }

    /// Number of requests in flight.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Replication counters for INFO and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicationStats {
    /// Commands forwarded to another node.
    pub forwards: u64,
    /// Forwards retried on the next owner after a failure.
    pub forward_failovers: u64,
    /// Replicas that did not answer in time (or whose connection failed).
    pub replica_failures: u64,
    /// Requests answered with a timeout error.
    pub timeouts: u64,
    /// Hints recorded (here or sent to a fallback node).
    pub hints_stored: u64,
    /// Hints delivered to their replica.
    pub hints_delivered: u64,
    /// Hints dropped (too many, too old).
    pub hints_dropped: u64,
    /// Stale replicas written back by read repair.
    pub read_repairs: u64,
    /// Concurrent writes settled by last-writer-wins while merging.
    pub lww_conflicts: u64,
    /// Entries received from peers that changed the local copy.
    pub merged_changes: u64,
    /// Anti-entropy rounds started.
    pub ae_rounds: u64,
    /// Entries sent by anti-entropy.
    pub ae_entries_sent: u64,
    /// Approximate bytes of keys, values and digests sent by anti-entropy.
    pub ae_bytes_sent: u64,
    /// Keys handed off to new owners and dropped here.
    pub handoff_dropped: u64,
    /// Peer messages dropped because their sender is not a live member under that name and address.
    pub peer_unknown_sender: u64,
    /// Entries from peers this node did not store: they needed memory its `maxmemory` policy cannot free.
    pub merges_refused: u64,
    /// Replicas (or fallbacks) that refused a write this node coordinated, for lack of memory.
    pub replica_refusals: u64,
    /// Entries from peers dropped because a FLUSHALL this node applied is newer than their latest write.
    pub flushed_drops: u64,
    /// Peer messages dropped or answered with an error because their content was empty or inconsistent.
    pub peer_msgs_invalid: u64,
    /// Timestamps from peers (entries' versions, clocks, lock tokens) rejected for being more than
    /// `clock_drift_max_ms` ahead of this node's clock.
    pub clock_drift_rejected: u64,
    /// Stalls this node noticed (a gap in its clock between inputs, or learning it was declared down): its copies
    /// may be stale, so its writes re-read the other owners for a while (`stall`).
    pub stalls: u64,
    /// Forwarded commands answered "may or may not have run" because their link failed after sending, instead
    /// of failing over and maybe running them twice.
    pub forwards_unknown: u64,
    /// Client or forwarded commands refused with `TRYAGAIN` because `requests_in_flight_max` requests were in
    /// flight.
    pub requests_refused: u64,
    /// Forwards refused because this node had just resumed from a pause longer than a forward's timeout.
    pub forwards_refused: u64,
}

/// The replication state of a clustered node.
pub(crate) struct Replication {
    /// The ring over the live members (rebuilt lazily after membership changes).
    pub ring: Ring,
    /// The ring over every known member, down ones included (the fixed replica sets of locks).
    pub all_ring: Ring,
    /// The membership changed since the ring was built.
    pub ring_stale: bool,
    /// When the ring last changed (hand-off waits for a stable ring), or the node last stalled.
    pub ring_changed_at: Millis,
    /// The latest clock reading of an input (0: none yet), to notice stalls (`stall`).
    pub last_input_ms: Millis,
    /// When this node last stalled or learned it had been declared down.
    pub stalled_at: Option<Millis>,
    /// When this node's inputs last resumed after a gap longer than a forward's timeout (`stall`).
    pub resumed_at: Option<Millis>,
    /// Live members (this node included) by name.
    pub addrs: BTreeMap<String, SocketAddr>,
    /// Request ids.
    pub next_id: u64,
    /// Requests in flight.
    pub pending: PendingMap,
    /// Hints: (replica name, key) and when they were recorded.
    pub hints: super::hints::Hints,
    /// Counters.
    pub stats: ReplicationStats,
    /// The newest FLUSHALL this node applied (HLC time; 0: none): older entries are gone and stay gone.
    pub flushed_before: crate::core::clock::Timestamp,
    /// Round-robin position over peers for anti-entropy.
    pub ae_turn: usize,
    /// A peer that differed in the last round: the next round goes to it again soon.
    pub ae_chase: Option<String>,
    /// Quick rounds in a row with the chased peer.
    pub ae_chase_rounds: u32,
    /// Next bucket the hand-off sweep looks at.
    pub sweep_cursor: usize,
    /// Sharing classification of buckets with the last few peers, for one ring: (ring digest, peer, per-bucket
    /// share), oldest first, at most `SHARE_CACHE_MAX`.
    pub share_cache: Vec<(u64, String, std::sync::Arc<super::sharing::Sharing>)>,
    /// Arc ends and owners of one ring (by ring digest), shared by the sharing computations of every peer.
    pub arc_table: Option<(u64, std::sync::Arc<super::sharing::ArcTable>)>,
    /// Whether this node holds its share of the data again since it started (`readiness`).
    pub readiness: super::readiness::Readiness,
}

impl Replication {
    /// State for a node named `name` at `addr`, alone on its ring until membership says otherwise.
    pub fn new(name: &str, addr: SocketAddr, vnodes: usize) -> Replication {
        let mut addrs = BTreeMap::new();
        addrs.insert(name.to_string(), addr);
        Replication {
            ring: Ring::new(&[name], vnodes),
            all_ring: Ring::new(&[name], vnodes),
            ring_stale: true,
            ring_changed_at: 0,
            last_input_ms: 0,
            stalled_at: None,
            resumed_at: None,
            addrs,
            next_id: 1,
            pending: PendingMap::default(),
            hints: super::hints::Hints::default(),
            stats: ReplicationStats::default(),
            flushed_before: crate::core::clock::Timestamp(0),
            ae_turn: 0,
            ae_chase: None,
            ae_chase_rounds: 0,
            sweep_cursor: 0,
            share_cache: Vec::new(),
            arc_table: None,
            readiness: super::readiness::Readiness::default(),
        }
    }

    /// A fresh request id.
    pub fn id(&mut self) -> RequestId {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Whether the ring has not changed for two anti-entropy periods (views have had time to agree).
    pub fn ring_settled(&self, now: Millis, anti_entropy_period_ms: Millis) -> bool {
        now.saturating_sub(self.ring_changed_at) >= 2 * anti_entropy_period_ms
    }

    /// The address of a live member.
    pub fn addr_of(&self, name: &str) -> Option<SocketAddr> {
        self.addrs.get(name).copied()
    }
}
