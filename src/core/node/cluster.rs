//! The cluster part of a node: its membership, its replication state (ring view, requests in flight, hints,
//! anti-entropy, hand-off) and its seeds; and `Clustered`, the view through which every replication and lock
//! method works on a clustered node, holding the local part, the cluster part and the lock table at once.
//!
//! `Node` holds the cluster part as one `Option` and builds a `Clustered` view where it needs one, so the code
//! under `replication/` never asks whether the node is clustered (docs/architecture.md §3).

use std::net::SocketAddr;

use super::local::{Executed, Local};
use super::{Outbox, Output};
use crate::core::clock::Timestamp;
use crate::core::command::Command;
use crate::core::locks::{LockOp, LockStats, LockTable};
use crate::core::membership::{GossipEffect, Membership};
use crate::core::replication::roster;
use crate::core::replication::state::{Origin, Replication};
use crate::core::replication::PeerMsg;
use crate::core::reply::Reply;
use crate::core::ring::Ring;
use crate::core::Millis;

/// What a clustered node has beyond its local part.
pub(crate) struct Cluster {
    pub(crate) membership: Membership,
    pub(crate) repl: Replication,
    /// The addresses the node joins through (none for the first node of a new cluster).
    pub(crate) seeds: Vec<SocketAddr>,
    /// Effects the membership wrote, reused between calls.
    pub(crate) gossip_out: Vec<GossipEffect>,
}

/// A clustered node's parts, borrowed together: what every replication and lock method works on.
pub(crate) struct Clustered<'a> {
    pub(crate) local: &'a mut Local,
    pub(crate) membership: &'a Membership,
    pub(crate) repl: &'a mut Replication,
    pub(crate) seeds: &'a [SocketAddr],
    /// This node's share of the lease locks.
    pub(crate) locks: &'a mut LockTable,
    /// Counters of the lock grants this node coordinated.
    pub(crate) lock_stats: &'a mut LockStats,
}

impl Clustered<'_> {
    /// The replication state.
    pub(crate) fn repl(&self) -> &Replication {
        self.repl
    }

    /// The replication state, to change.
    pub(crate) fn repl_mut(&mut self) -> &mut Replication {
        self.repl
    }

    /// The live ring.
    pub(crate) fn ring_ref(&self) -> &Ring {
        &self.repl.ring
    }

    /// Whether the node was given seeds to join through (the first node of a new cluster is not).
    pub(crate) fn has_seeds(&self) -> bool {
        !self.seeds.is_empty()
    }

    /// Run one data command here and return its reply.
    pub(crate) fn execute(&mut self, now: Millis, cmd: Command) -> Reply {
        self.local.execute(now, cmd).reply
    }

    /// Run one data command here: its reply and the keys it changed.
    pub(crate) fn execute_tracked(&mut self, now: Millis, cmd: Command) -> Executed {
        self.local.execute(now, cmd)
    }

    /// Rebuild the ring from the live membership if it changed since the last build.
    pub(crate) fn refresh_ring(&mut self, now: Millis) {
        let (m, r) = (self.membership, &mut *self.repl);
        if !r.ring_stale {
            return;
        }
        r.ring_stale = false;
        // One pass over the membership rows for both rings, borrowed, not copied; a ring is rebuilt only when
        // its set of names changed (a renewal or a state change between alive and suspect leaves it as it is).
        let name = self.local.config.name.as_str();
        let rows: Vec<_> = m.rows().collect();
        let live = roster::live(&rows, name, m.identity().gossip_addr);
        if !live.iter().map(|(name, _)| *name).eq(r.ring.members().iter().map(String::as_str)) {
            let names: Vec<&str> = live.iter().map(|(name, _)| *name).collect();
            r.ring = r.ring.with_members(&names);
            r.ring_changed_at = now;
            r.share_cache.clear();
        }
        if !live.iter().map(|(name, addr)| (*name, addr)).eq(r.addrs.iter().map(|(name, addr)| (name.as_str(), addr))) {
            r.addrs = live.iter().map(|(name, addr)| (name.to_string(), *addr)).collect();
        }
        let known = roster::known(&rows, name);
        if !known.iter().copied().eq(r.all_ring.members().iter().map(String::as_str)) {
            // With nobody down both rings hold the same names: share the live one.
            let same_as_live = known.iter().copied().eq(r.ring.members().iter().map(String::as_str));
            r.all_ring = if same_as_live { r.ring.clone() } else { r.all_ring.with_members(&known) };
        }
    }

    /// Whether a peer message from `from` named `name` may be acted on: the sender is a live member of this
    /// node's view under that name and address. Otherwise it is dropped and counted: a node that is not (or
    /// no longer) a member, a name claimed under another member's address, or a message that raced a join
    /// (its sender's timeouts, hints and anti-entropy retry it once the view has the member).
    pub(crate) fn known_sender(&mut self, now: Millis, from: SocketAddr, name: &str) -> bool {
        self.refresh_ring(now);
        let is_self = name == self.local.config.name;
        let known = !is_self && self.repl.addrs.get(name) == Some(&from);
        if !known {
            self.repl.stats.peer_unknown_sender += 1;
        }
        known
    }

    /// A message from a peer, other than a forwarded command (which the node routes itself).
    pub(crate) fn peer_message(&mut self, now: Millis, from: SocketAddr, msg: PeerMsg, out: &mut Outbox) {
        match msg {
            // The node routes forwarded commands before this; one reaching here is answered, not run.
            PeerMsg::Forward { id, .. } => {
                let reply = Reply::err("ERR forwarded commands are routed by the node");
                self.respond(Origin::Peer { peer: from, id }, reply, out)
            }
            PeerMsg::ForwardReply { id, reply } => self.forward_replied(from, id, reply, out),
            PeerMsg::Put { id, entries, hint_for } => self.put_received(now, from, id, entries, hint_for, out),
            PeerMsg::PutAck { id } => self.put_acked(now, from, id, out),
            PeerMsg::PutRefused { id, keys } => self.put_refused(now, from, id, keys, out),
            PeerMsg::Get { id, keys } => {
                let entries = keys.iter().map(|k| self.local.store.raw(k, now).map(|e| e.to_wire())).collect();
                out.push(Output::SendPeer { to: from, msg: PeerMsg::GetReply { id, entries } });
            }
            PeerMsg::GetReply { id, entries } => self.read_replied(now, from, id, entries, out),
            PeerMsg::AeGroups { ring, hashes, hlc, .. } => self.ae_groups(now, from, ring, hashes, hlc, out),
            PeerMsg::AeBuckets { buckets, .. } => self.ae_buckets(now, from, buckets, out),
            PeerMsg::AeSubs { buckets, .. } => self.ae_subs(now, from, buckets, out),
            PeerMsg::AeKeys { buckets, keys, .. } => self.ae_keys(now, from, buckets, keys, out),
            PeerMsg::AePull { keys } => self.ae_pull(now, from, keys, out),
            PeerMsg::Offer { id, keys } => self.offered(now, from, id, keys, out),
            PeerMsg::Want { id, keys } => self.wanted(now, from, id, keys, out),
            PeerMsg::FlushAll => self.local.store.clear(),
            PeerMsg::Flushed { id, before } => self.flush_received(now, from, id, before, out),
            PeerMsg::Lock { id, op } => {
                // A grant's token is an HLC time of its coordinator: one from too far ahead would become the
                // lock's highest token here for good (no later grant could beat it). Dropped, unanswered.
                if let LockOp::Acquire { token, .. } = &op {
                    if !self.peer_time_ok(now, Timestamp(*token)) {
                        return;
                    }
                }
                let answer = self.locks.apply(&op, now);
                self.local.hlc.observe(Timestamp(answer.max_token));
                if let Some(id) = id {
                    out.push(Output::SendPeer { to: from, msg: PeerMsg::LockReply { id, answer } });
                }
            }
            PeerMsg::LockReply { id, answer } => self.lock_answered(now, Some(from), id, answer, out),
        }
    }

    /// Whether a timestamp from a peer is within `clock_drift_max_ms` of this node's clock; counts it when not.
    pub(crate) fn peer_time_ok(&mut self, now: Millis, seen: Timestamp) -> bool {
        let ok = seen.within_drift(now, self.local.config.clock_drift_max_ms).is_ok();
        if !ok {
            self.repl.stats.clock_drift_rejected += 1;
        }
        ok
    }
}
