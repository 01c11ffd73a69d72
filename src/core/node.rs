//! `Node`: the sans-IO state machine at the heart of every Shoal process.
//!
//! A driver (the tokio runtime or the simulator) calls `Node::handle(now, input, &mut outbox)` with the current
//! wall-clock time and one input, then carries out every `Output` the node wrote: replies to clients and timers
//! to schedule. The node owns its store, its hybrid logical clock and a seeded RNG; it reads no clock and does
//! no I/O, so the same inputs always produce the same outputs.

use std::net::SocketAddr;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::clock::Hlc;
use super::command::Command;
use super::locks::{LockOp, LockStats, LockTable};
use super::membership::{GossipEffect, MemberEvent, Membership};
use super::replication::handoff::{HINT_PERIOD_MS, SWEEP_PERIOD_MS};
use super::replication::roster;
use super::replication::state::{Origin, Replication};
use super::replication::{PeerMsg, ReplicationStats, WireEntry};
use super::reply::{Reply, ERR_OOM};
use super::store::Store;
use super::version::NodeId;
use super::Millis;

pub use super::driver::{ConnId, Input, Outbox, Output, ReqId, TimerId};
pub use super::node_config::{NodeConfig, CLOCK_DRIFT_MAX_MS_DEFAULT};

/// Most expired keys reclaimed before one client or peer input (the rest waits for active expiry).
pub const EXPIRE_KEYS_PER_INPUT: usize = 32;

/// Counters the node keeps for INFO.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Reads that found their key.
    pub keyspace_hits: u64,
    /// Reads that did not.
    pub keyspace_misses: u64,
    /// Data commands executed.
    pub commands: u64,
    /// Writes refused with OOM.
    pub oom_rejections: u64,
}

/// What executing one command did.
pub(crate) struct Executed {
    /// The command's reply.
    pub reply: Reply,
    /// The keys it changed, sorted, each once (empty on a standalone node).
    pub changed: Vec<Bytes>,
}

/// One Shoal node's logic and state.
pub struct Node {
    pub(crate) config: NodeConfig,
    pub(crate) id: NodeId,
    pub(crate) hlc: Hlc,
    pub(crate) store: Store,
    pub(crate) rng: StdRng,
    pub(crate) stats: NodeStats,
    pub(crate) membership: Option<Membership>,
    /// Replication state; present exactly when the node is clustered.
    pub(crate) repl: Option<Replication>,
    /// Keys the command being executed changed (filled only on clustered nodes), handed out by
    /// `execute_tracked`.
    pub(crate) dirty: Vec<Bytes>,
    /// This node's share of the lease locks.
    pub(crate) locks: LockTable,
    /// Counters of the lock grants this node coordinated.
    pub(crate) lock_stats: LockStats,
    seeds: Vec<SocketAddr>,
    gossip_out: Vec<GossipEffect>,
}

impl Node {
    /// A node with `config`, whose randomness all derives from `seed`.
    pub fn new(config: NodeConfig, seed: u64) -> Node {
        let mut rng = StdRng::seed_from_u64(seed);
        let store = Store::new(rng.random());
        Node {
            id: NodeId::from_name(&config.name),
            config,
            hlc: Hlc::new(),
            store,
            rng,
            stats: NodeStats::default(),
            membership: None,
            repl: None,
            dirty: Vec::new(),
            locks: LockTable::new(),
            lock_stats: LockStats::default(),
            seeds: Vec::new(),
            gossip_out: Vec::new(),
        }
    }

    /// A node that is a member of a cluster: it joins through `seeds` when started.
    pub fn clustered(config: NodeConfig, seed: u64, membership: Membership, seeds: Vec<SocketAddr>) -> Node {
        let mut node = Node::new(config, seed);
        node.id = NodeId::for_life(&node.config.name, node.rng.random());
        let addr = membership.identity().gossip_addr;
        node.repl = Some(Replication::new(&node.config.name, addr, node.config.vnodes));
        node.store.set_expiry_grace(Some(node.config.tombstone_grace_ms));
        node.membership = Some(membership);
        node.seeds = seeds;
        node
    }

    /// Whether the node was given seeds to join through (the first node of a new cluster is not).
    pub(crate) fn has_seeds(&self) -> bool {
        !self.seeds.is_empty()
    }

    /// The node's membership, when it is part of a cluster.
    pub fn membership(&self) -> Option<&Membership> {
        self.membership.as_ref()
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The node's keyspace (read-only).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The node's counters.
    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    /// Replication counters, when the node is clustered.
    pub fn replication_stats(&self) -> Option<ReplicationStats> {
        self.repl.as_ref().map(|r| r.stats)
    }

    /// This node's own copy of `key` (value, tombstone or eviction marker) with its version, unless expired.
    pub fn local_entry(&self, key: &[u8], now: Millis) -> Option<WireEntry> {
        self.store.view(key, now).map(|e| e.to_wire())
    }

    /// The digest of this node's ring (0 for a node without a cluster).
    pub fn ring_digest(&self) -> u64 {
        self.repl.as_ref().map_or(0, |r| r.ring.digest())
    }

    /// Number of members on this node's ring (1 without a cluster).
    pub fn ring_members(&self) -> usize {
        self.repl.as_ref().map_or(1, |r| r.ring.members().len())
    }

    /// Hints waiting for their replica.
    pub fn hints_pending(&self) -> usize {
        self.repl.as_ref().map_or(0, |r| r.hints.len())
    }

    /// Requests in flight (forwards, reads, writes, hand-offs).
    pub fn requests_pending(&self) -> usize {
        self.repl.as_ref().map_or(0, |r| r.pending.len())
    }

    pub(crate) fn repl(&self) -> &Replication {
        self.repl.as_ref().expect("replication state exists on clustered nodes")
    }

    pub(crate) fn repl_mut(&mut self) -> &mut Replication {
        self.repl.as_mut().expect("replication state exists on clustered nodes")
    }

    pub(crate) fn ring_ref(&self) -> &super::ring::Ring {
        &self.repl().ring
    }

    /// Rebuild the ring from the live membership if it changed since the last build.
    pub(crate) fn refresh_ring(&mut self, now: Millis) {
        let (Some(m), Some(r)) = (self.membership.as_ref(), self.repl.as_mut()) else { return };
        if !r.ring_stale {
            return;
        }
        r.ring_stale = false;
        // One pass over the membership rows for both rings, borrowed, not copied; a ring is rebuilt only when
        // its set of names changed (a renewal or a state change between alive and suspect leaves it as it is).
        let rows: Vec<_> = m.rows().collect();
        let live = roster::live(&rows, &self.config.name, m.identity().gossip_addr);
        if !live.iter().map(|(name, _)| *name).eq(r.ring.members().iter().map(String::as_str)) {
            let names: Vec<&str> = live.iter().map(|(name, _)| *name).collect();
            r.ring = r.ring.with_members(&names);
            r.ring_changed_at = now;
            r.share_cache.clear();
        }
        if !live.iter().map(|(name, addr)| (*name, addr)).eq(r.addrs.iter().map(|(name, addr)| (name.as_str(), addr))) {
            r.addrs = live.iter().map(|(name, addr)| (name.to_string(), *addr)).collect();
        }
        let known = roster::known(&rows, &self.config.name);
        if !known.iter().copied().eq(r.all_ring.members().iter().map(String::as_str)) {
            // With nobody down both rings hold the same names: share the live one.
            let same_as_live = known.iter().copied().eq(r.ring.members().iter().map(String::as_str));
            r.all_ring = if same_as_live { r.ring.clone() } else { r.all_ring.with_members(&known) };
        }
    }

    /// Process one input at wall-clock time `now`, writing effects into `out`.
    pub fn handle(&mut self, now: Millis, input: Input, out: &mut Outbox) {
        // Before anything runs: a node that was stopped must not act on its stale copies as if it had not been.
        self.observe_input_clock(now);
        if self.repl.is_some() && matches!(input, Input::Client { .. } | Input::Peer { .. }) {
            // Reclaim a slice of the keys whose TTL passed; a mass of keys expiring at once is worked off by the
            // active-expiry timer in bounded passes. Until then every read or send of a key reclaims it first
            // (`Store::raw`), so an expired value is seen as its tombstone either way.
            self.store.expire_due(now, EXPIRE_KEYS_PER_INPUT);
        }
        match input {
            Input::Start => {
                self.schedule_active_expire(out, self.config.active_expire_period_ms);
                let seeds = self.seeds.clone();
                self.with_membership(out, |m, effects| m.join(now, &seeds, effects));
                if let Some(r) = self.repl.as_mut() {
                    // A node that just started has seen nothing: its writes read the other owners first until
                    // its ring has been stable for a while.
                    r.ring_changed_at = now;
                    // Spread the periodic rounds of nodes started together.
                    let period = self.config.anti_entropy_period_ms.max(1);
                    let first = self.rng.random_range(period / 2..=period);
                    out.push(Output::Schedule { after_ms: first, timer: TimerId::AntiEntropy });
                    out.push(Output::Schedule { after_ms: HINT_PERIOD_MS, timer: TimerId::Hints });
                    out.push(Output::Schedule { after_ms: SWEEP_PERIOD_MS, timer: TimerId::Sweep });
                }
            }
            Input::Client { conn, req, cmd: Command::Lock(op), .. } => {
                self.lock_command(now, Origin::Client { conn, req }, op, out)
            }
            Input::Client { conn, req, cmd, levels } => {
                if self.repl.is_some() {
                    self.route(now, Origin::Client { conn, req }, cmd, levels, out);
                } else {
                    let reply = self.execute(now, cmd);
                    out.push(Output::Reply { conn, req, reply });
                }
            }
            Input::Timer(TimerId::ActiveExpire) => self.active_expire(now, out),
            Input::Timer(TimerId::Gossip(timer)) => {
                self.with_membership(out, |m, effects| m.handle_timer(now, timer, effects))
            }
            // Replication timers exist only on clustered nodes; anything else is stale.
            Input::Timer(_) if self.repl.is_none() => {}
            Input::Timer(TimerId::Request(id)) => self.request_timer(now, id, out),
            Input::Timer(TimerId::Hints) => self.hint_round(now, out),
            Input::Timer(TimerId::AntiEntropy) => self.anti_entropy_round(now, out),
            Input::Timer(TimerId::Sweep) => self.sweep_round(now, out),
            Input::Gossip { from, packet } => {
                self.with_membership(out, |m, effects| m.handle_packet(now, from, &packet, effects))
            }
            Input::SetSeeds(seeds) => {
                self.seeds = seeds;
                let seeds = self.seeds.clone();
                self.with_membership(out, |m, _| m.set_seeds(&seeds));
            }
            Input::Leave => self.with_membership(out, |m, effects| m.leave(now, effects)),
            Input::Peer { from, name, msg } => {
                if self.known_sender(now, from, &name) {
                    self.peer_message(now, from, msg, out);
                }
            }
            Input::PeerLost { peer } => {
                if self.repl.is_some() {
                    self.peer_lost(now, peer, out);
                }
            }
        }
        if self.repl.is_some() {
            self.spread_evictions(out);
        }
    }

    /// Whether a peer message from `from` named `name` may be acted on: the sender is a live member of this
    /// node's view under that name and address. Otherwise it is dropped and counted: a node that is not (or
    /// no longer) a member, a name claimed under another member's address, or a message that raced a join
    /// (its sender's timeouts, hints and anti-entropy retry it once the view has the member).
    fn known_sender(&mut self, now: Millis, from: SocketAddr, name: &str) -> bool {
        if self.repl.is_none() {
            return false;
        }
        self.refresh_ring(now);
        let is_self = name == self.config.name;
        let r = self.repl_mut();
        let known = !is_self && r.addrs.get(name) == Some(&from);
        if !known {
            r.stats.peer_unknown_sender += 1;
        }
        known
    }

    /// A message from a peer (ignored by a node without a cluster).
    fn peer_message(&mut self, now: Millis, from: SocketAddr, msg: PeerMsg, out: &mut Outbox) {
        if self.repl.is_none() {
            return;
        }
        match msg {
            PeerMsg::Forward { id, .. } if self.refuses_forwards(now) => {
                let reply = self.forward_refused();
                self.respond(Origin::Peer { peer: from, id }, reply, out);
            }
            PeerMsg::Forward { id, cmd, levels } => self.route(now, Origin::Peer { peer: from, id }, cmd, levels, out),
            PeerMsg::ForwardReply { id, reply } => self.forward_replied(from, id, reply, out),
            PeerMsg::Put { id, entries, hint_for } => self.put_received(now, from, id, entries, hint_for, out),
            PeerMsg::PutAck { id } => self.put_acked(now, from, id, out),
            PeerMsg::PutRefused { id, keys } => self.put_refused(now, from, id, keys, out),
            PeerMsg::Get { id, keys } => {
                let entries = keys.iter().map(|k| self.store.raw(k, now).map(|e| e.to_wire())).collect();
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
            PeerMsg::FlushAll => self.store.clear(),
            PeerMsg::Flushed { id, before } => self.flush_received(now, from, id, before, out),
            PeerMsg::Lock { id, op } => {
                // A grant's token is an HLC time of its coordinator: one from too far ahead would become the
                // lock's highest token here for good (no later grant could beat it). Dropped, unanswered.
                if let LockOp::Acquire { token, .. } = &op {
                    if !self.peer_time_ok(now, super::clock::Timestamp(*token)) {
                        return;
                    }
                }
                let answer = self.locks.apply(&op, now);
                self.hlc.observe(super::clock::Timestamp(answer.max_token));
                if id != 0 {
                    out.push(Output::SendPeer { to: from, msg: PeerMsg::LockReply { id, answer } });
                }
            }
            PeerMsg::LockReply { id, answer } => self.lock_answered(now, Some(from), id, answer, out),
        }
    }

    /// Whether a timestamp from a peer is within `clock_drift_max_ms` of this node's clock; counts it when not.
    pub(crate) fn peer_time_ok(&mut self, now: Millis, seen: super::clock::Timestamp) -> bool {
        let ok = seen.within_drift(now, self.config.clock_drift_max_ms).is_ok();
        if let (false, Some(r)) = (ok, self.repl.as_mut()) {
            r.stats.clock_drift_rejected += 1;
        }
        ok
    }

    /// Run `f` on the membership (if any) and turn its effects into outputs.
    fn with_membership(&mut self, out: &mut Outbox, f: impl FnOnce(&mut Membership, &mut Vec<GossipEffect>)) {
        let Some(m) = self.membership.as_mut() else { return };
        f(m, &mut self.gossip_out);
        let mut rejoined = false;
        for effect in self.gossip_out.drain(..) {
            out.push(match effect {
                GossipEffect::Send { to, packet } => Output::SendGossip { to, packet },
                GossipEffect::Schedule { after_ms, timer } => {
                    Output::Schedule { after_ms, timer: TimerId::Gossip(timer) }
                }
                GossipEffect::Changed(event) => {
                    if let Some(r) = self.repl.as_mut() {
                        r.ring_stale = true;
                    }
                    rejoined |= matches!(event, MemberEvent::Rejoined(_));
                    Output::Member(Box::new(event))
                }
            });
        }
        if rejoined {
            // The others declared this node down and wrote its keys meanwhile, though its own ring may not
            // have changed at all.
            let now = self.repl.as_ref().map_or(0, |r| r.last_input_ms);
            self.stalled(now);
        }
    }

    /// Run one data command and return its reply.
    pub fn execute(&mut self, now: Millis, cmd: Command) -> Reply {
        self.stats.commands += 1;
        let limited = self.config.maxmemory_bytes != 0;
        if limited && cmd.may_grow() && !self.make_room(now) {
            self.stats.oom_rejections += 1;
            return Reply::err(ERR_OOM);
        }
        let reply = self.apply(now, cmd);
        if limited {
            self.make_room(now);
        }
        reply
    }

    /// Run one data command: its reply, and the keys it changed (sorted, each once), for the coordinator to
    /// replicate. Keys are recorded only on a clustered node (a standalone node has nothing to replicate).
    pub(crate) fn execute_tracked(&mut self, now: Millis, cmd: Command) -> Executed {
        self.dirty.clear();
        let reply = self.execute(now, cmd);
        let mut changed = std::mem::take(&mut self.dirty);
        changed.sort();
        changed.dedup();
        Executed { reply, changed }
    }

    /// Evict until the store fits under `maxmemory`; false when it cannot.
    pub(crate) fn make_room(&mut self, now: Millis) -> bool {
        self.make_room_below(now, self.config.maxmemory_bytes)
    }

    /// Evict until the store fits under `limit`; false when it cannot.
    pub(crate) fn make_room_below(&mut self, now: Millis, limit: usize) -> bool {
        if self.store.used_bytes() <= limit {
            return true;
        }
        let rng = &mut self.rng;
        let marker_until = self.repl.is_some().then(|| now.saturating_add(self.config.tombstone_grace_ms));
        self.store.evict_to(limit, self.config.eviction, now, marker_until, |n| rng.random_range(0..n))
    }

    fn active_expire(&mut self, now: Millis, out: &mut Outbox) {
        let max = self.config.active_expire_keys_max;
        let removed = self.store.expire_due(now, max);
        // A full pass means more keys may be due: come back almost at once instead of waiting a period, but
        // still yield so clients are served in between.
        let after = if removed == max { 1 } else { self.config.active_expire_period_ms };
        self.schedule_active_expire(out, after);
    }

    fn schedule_active_expire(&self, out: &mut Outbox, after_ms: Millis) {
        out.push(Output::Schedule { after_ms, timer: TimerId::ActiveExpire });
    }
}

#[cfg(test)]
mod tests;
