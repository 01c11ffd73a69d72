//! `Node`: the sans-IO state machine at the heart of every Shoal process.
//!
//! A driver (the tokio runtime or the simulator) calls `Node::handle(now, input, &mut outbox)` with the current
//! wall-clock time and one input, then carries out every `Output` the node wrote: replies to clients and timers
//! to schedule. The node owns its store, its hybrid logical clock and a seeded RNG; it reads no clock and does
//! no I/O, so the same inputs always produce the same outputs.

use std::net::SocketAddr;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::command::Command;
use super::locks::{LockOp, LockStats, LockTable};
use super::membership::{GossipEffect, MemberEvent, Membership};
use super::replication::handoff::{HINT_PERIOD_MS, SWEEP_PERIOD_MS};
use super::replication::state::{Origin, Replication};
use super::replication::{Levels, PeerMsg, ReadyState, ReplicationStats, WireEntry};
use super::reply::Reply;
use super::store::Store;
use super::version::NodeId;

mod cluster;
mod describe;
mod local;

use super::Millis;
pub(crate) use cluster::{Cluster, Clustered};
pub(crate) use local::Local;

pub use super::driver::{ConnId, Input, Outbox, Output, ReqId, RequestId, TimerId};
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

/// One Shoal node's logic and state: a local part, and a cluster part when it is a member of a cluster.
pub struct Node {
    local: Local,
    cluster: Option<Cluster>,
    /// This node's share of the lease locks (a lone node is every lock's only replica).
    locks: LockTable,
    /// Counters of the lock grants this node coordinated.
    lock_stats: LockStats,
}

impl Node {
    /// A node with `config`, whose randomness all derives from `seed`.
    pub fn new(config: NodeConfig, seed: u64) -> Node {
        let id = NodeId::from_name(&config.name);
        Node {
            local: Local::new(config, id, StdRng::seed_from_u64(seed)),
            cluster: None,
            locks: LockTable::new(),
            lock_stats: LockStats::default(),
        }
    }

    /// A node that is a member of a cluster: it joins through `seeds` when started.
    pub fn clustered(config: NodeConfig, seed: u64, membership: Membership, seeds: Vec<SocketAddr>) -> Node {
        let mut node = Node::new(config, seed);
        let local = &mut node.local;
        local.id = NodeId::for_life(&local.config.name, local.rng.random());
        let addr = membership.identity().gossip_addr;
        let repl = Replication::new(&local.config.name, addr, local.config.vnodes);
        local.replicate();
        node.cluster = Some(Cluster { membership, repl, seeds, gossip_out: Vec::new() });
        node
    }

    /// The view every replication and lock method works on, when the node is clustered.
    pub(crate) fn view(&mut self) -> Option<Clustered<'_>> {
        let c = self.cluster.as_mut()?;
        Some(Clustered {
            local: &mut self.local,
            membership: &c.membership,
            repl: &mut c.repl,
            seeds: &c.seeds,
            locks: &mut self.locks,
            lock_stats: &mut self.lock_stats,
        })
    }

    /// The node's membership, when it is part of a cluster.
    pub fn membership(&self) -> Option<&Membership> {
        self.cluster.as_ref().map(|c| &c.membership)
    }

    /// The replication state, when the node is clustered.
    pub(crate) fn replication(&self) -> Option<&Replication> {
        self.cluster.as_ref().map(|c| &c.repl)
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.local.id
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.local.config
    }

    /// The node's configuration, to change (tests).
    #[cfg(test)]
    pub(crate) fn config_mut(&mut self) -> &mut NodeConfig {
        &mut self.local.config
    }

    /// The node's hybrid logical clock (tests).
    #[cfg(test)]
    pub(crate) fn hlc(&self) -> &crate::core::clock::Hlc {
        &self.local.hlc
    }

    /// The node's keyspace (read-only).
    pub fn store(&self) -> &Store {
        &self.local.store
    }

    /// The node's counters.
    pub fn stats(&self) -> NodeStats {
        self.local.stats
    }

    /// Counters of the lock grants this node coordinated.
    pub fn lock_stats(&self) -> LockStats {
        self.lock_stats
    }

    /// Replication counters, when the node is clustered.
    pub fn replication_stats(&self) -> Option<ReplicationStats> {
        self.replication().map(|r| r.stats)
    }

    /// This node's own copy of `key` (value, tombstone or eviction marker) with its version, unless expired.
    pub fn local_entry(&self, key: &[u8], now: Millis) -> Option<WireEntry> {
        self.local.store.view(key, now).map(|e| e.to_wire())
    }

    /// The digest of this node's ring (0 for a node without a cluster).
    pub fn ring_digest(&self) -> u64 {
        self.replication().map_or(0, |r| r.ring.digest())
    }

    /// Number of members on this node's ring (1 without a cluster).
    pub fn ring_members(&self) -> usize {
        self.replication().map_or(1, |r| r.ring.members().len())
    }

    /// Whether the ring has not changed for two anti-entropy periods (false without a cluster).
    pub fn ring_settled(&self, now: Millis) -> bool {
        self.replication().is_some_and(|r| r.ring_settled(now, self.local.config.anti_entropy_period_ms))
    }

    /// Hints waiting for their replica.
    pub fn hints_pending(&self) -> usize {
        self.replication().map_or(0, |r| r.hints.len())
    }

    /// Requests in flight (forwards, reads, writes, hand-offs).
    pub fn requests_pending(&self) -> usize {
        self.replication().map_or(0, |r| r.pending.len())
    }

    /// This node's readiness as last evaluated (a node without a cluster is always ready).
    pub fn ready_state(&self) -> ReadyState {
        self.replication().map_or(ReadyState::Ready, |r| r.readiness.state())
    }

    /// How long after its start this node became ready (`None`: not yet, or no cluster).
    pub fn ready_after_ms(&self) -> Option<Millis> {
        self.replication().and_then(|r| r.readiness.ready_after_ms())
    }

    /// The key's preference list (names), as this node's ring sees it.
    pub fn owners(&self, key: &[u8]) -> Vec<String> {
        match self.replication() {
            Some(r) => r.ring.preference_list(key, self.local.config.replicas).into_iter().map(String::from).collect(),
            None => vec![self.local.config.name.clone()],
        }
    }

    /// Process one input at wall-clock time `now`, writing effects into `out`.
    pub fn handle(&mut self, now: Millis, input: Input, out: &mut Outbox) {
        if self.cluster.is_some() {
            self.handle_clustered(now, input, out);
        } else {
            self.handle_alone(now, input, out);
        }
    }

    /// An input of a node without a cluster: clients, locks and active expiry.
    fn handle_alone(&mut self, now: Millis, input: Input, out: &mut Outbox) {
        match input {
            Input::Start => self.local.schedule_active_expire(out, self.local.config.active_expire_period_ms),
            Input::Client { conn, req, cmd: Command::Lock(op), .. } => {
                let reply = self.lock_alone(now, op);
                out.push(Output::Reply { conn, req, reply });
            }
            Input::Client { conn, req, cmd, .. } => {
                let reply = self.execute(now, cmd);
                out.push(Output::Reply { conn, req, reply });
            }
            Input::Timer(TimerId::ActiveExpire) => self.local.active_expire(now, out),
            // Gossip, peers and replication timers exist only on clustered nodes; anything else is stale.
            Input::Timer(_)
            | Input::Gossip { .. }
            | Input::SetSeeds(_)
            | Input::Leave
            | Input::Peer { .. }
            | Input::PeerLost { .. } => {}
        }
    }

    /// A lock command on a node without a cluster: it is the lock's only replica.
    fn lock_alone(&mut self, now: Millis, op: LockOp) -> Reply {
        let op = crate::core::locks::with_fresh_token(&mut self.local.hlc, &self.locks, now, op, 0);
        let answer = self.locks.apply(&op, now);
        let reply = crate::core::locks::lock_reply(&op, &[answer], 1, self.local.config.lock_mode);
        self.lock_stats.count(&op, &reply);
        reply
    }

    /// An input of a clustered node.
    fn handle_clustered(&mut self, now: Millis, input: Input, out: &mut Outbox) {
        let Some(mut c) = self.view() else { return };
        // Before anything runs: a node that was stopped must not act on its stale copies as if it had not been.
        c.observe_input_clock(now);
        if matches!(input, Input::Client { .. } | Input::Peer { .. }) {
            // Reclaim a slice of the keys whose TTL passed; a mass of keys expiring at once is worked off by the
            // active-expiry timer in bounded passes. Until then every read or send of a key reclaims it first
            // (`Store::raw`), so an expired value is seen as its tombstone either way.
            c.local.store.expire_due(now, EXPIRE_KEYS_PER_INPUT);
        }
        match input {
            Input::Start => self.start(now, out),
            Input::Client { conn, req, cmd: Command::Lock(op), .. } => {
                c.lock_command(now, Origin::Client { conn, req }, op, out)
            }
            Input::Client { conn, req, cmd, levels } => self.route(now, Origin::Client { conn, req }, cmd, levels, out),
            Input::Timer(TimerId::ActiveExpire) => c.local.active_expire(now, out),
            Input::Timer(TimerId::Gossip(timer)) => {
                self.with_membership(out, |m, effects| m.handle_timer(now, timer, effects))
            }
            Input::Timer(TimerId::Request(id)) => c.request_timer(now, id, out),
            Input::Timer(TimerId::Hints) => c.hint_round(now, out),
            Input::Timer(TimerId::AntiEntropy) => c.anti_entropy_round(now, out),
            Input::Timer(TimerId::Sweep) => c.sweep_round(now, out),
            Input::Gossip { from, packet } => {
                self.with_membership(out, |m, effects| m.handle_packet(now, from, &packet, effects))
            }
            Input::SetSeeds(seeds) => {
                let cluster = self.cluster.as_mut().expect("a clustered node has its cluster part");
                cluster.membership.set_seeds(&seeds);
                cluster.seeds = seeds;
            }
            Input::Leave => self.with_membership(out, |m, effects| m.leave(now, effects)),
            Input::Peer { from, name, msg } => {
                if !c.known_sender(now, from, &name) {
                    return;
                }
                match msg {
                    PeerMsg::Forward { id, .. } if c.refuses_forwards(now) => {
                        let reply = c.forward_refused();
                        c.respond(Origin::Peer { peer: from, id }, reply, out);
                    }
                    PeerMsg::Forward { id, cmd, levels } => {
                        self.route(now, Origin::Peer { peer: from, id }, cmd, levels, out)
                    }
                    msg => c.peer_message(now, from, msg, out),
                }
            }
            Input::PeerLost { peer } => c.peer_lost(now, peer, out),
        }
        if let Some(mut c) = self.view() {
            c.spread_evictions(out);
        }
    }

    /// Start a clustered node: active expiry, the join through its seeds, and the periodic rounds.
    fn start(&mut self, now: Millis, out: &mut Outbox) {
        self.local.schedule_active_expire(out, self.local.config.active_expire_period_ms);
        let seeds = self.cluster.as_ref().map(|c| c.seeds.clone()).unwrap_or_default();
        self.with_membership(out, |m, effects| m.join(now, &seeds, effects));
        let Some(c) = self.cluster.as_mut() else { return };
        // A node that just started has seen nothing: its writes read the other owners first until its ring has
        // been stable for a while.
        c.repl.ring_changed_at = now;
        // Spread the periodic rounds of nodes started together.
        let period = self.local.config.anti_entropy_period_ms.max(1);
        let first = self.local.rng.random_range(period / 2..=period);
        out.push(Output::Schedule { after_ms: first, timer: TimerId::AntiEntropy });
        out.push(Output::Schedule { after_ms: HINT_PERIOD_MS, timer: TimerId::Hints });
        out.push(Output::Schedule { after_ms: SWEEP_PERIOD_MS, timer: TimerId::Sweep });
    }

    /// A client command (or one forwarded by a peer) on a clustered node. The commands that describe the node
    /// itself are answered here, from the whole node; every other one enters the cluster path.
    fn route(&mut self, now: Millis, origin: Origin, cmd: Command, levels: Levels, out: &mut Outbox) {
        let Some(mut c) = self.view() else { return };
        if !c.admit_request(now, &origin, out) {
            return;
        }
        let reply = match cmd {
            Command::Owners { key } => self.owners_reply(&key),
            Command::LocalGet { key } => self.local_get_reply(&key, now),
            Command::Ready | Command::Info { .. } => {
                // Readiness is brought up to date before it is reported.
                c.update_readiness(now);
                self.execute(now, cmd)
            }
            Command::Members => self.execute(now, cmd),
            cmd => return c.dispatch(now, origin, cmd, levels, out),
        };
        if let Some(mut c) = self.view() {
            c.respond(origin, reply, out);
        }
    }

    /// Run `f` on the membership (if any) and turn its effects into outputs.
    fn with_membership(&mut self, out: &mut Outbox, f: impl FnOnce(&mut Membership, &mut Vec<GossipEffect>)) {
        let Some(c) = self.cluster.as_mut() else { return };
        f(&mut c.membership, &mut c.gossip_out);
        let mut rejoined = false;
        for effect in c.gossip_out.drain(..) {
            out.push(match effect {
                GossipEffect::Send { to, packet } => Output::SendGossip { to, packet },
                GossipEffect::Schedule { after_ms, timer } => {
                    Output::Schedule { after_ms, timer: TimerId::Gossip(timer) }
                }
                GossipEffect::Changed(event) => {
                    c.repl.ring_stale = true;
                    rejoined |= matches!(event, MemberEvent::Rejoined(_));
                    Output::Member(Box::new(event))
                }
            });
        }
        if rejoined {
            // The others declared this node down and wrote its keys meanwhile, though its own ring may not
            // have changed at all.
            let now = c.repl.last_input_ms;
            if let Some(mut c) = self.view() {
                c.stalled(now);
            }
        }
    }

    /// Run one data command and return its reply. The commands that describe the node itself (SHOAL.MEMBERS,
    /// SHOAL.OWNERS, SHOAL.LOCALGET, SHOAL.READY, INFO) are answered from the whole node; the others run on its
    /// local part.
    pub fn execute(&mut self, now: Millis, cmd: Command) -> Reply {
        match cmd {
            Command::Members
            | Command::Owners { .. }
            | Command::LocalGet { .. }
            | Command::Ready
            | Command::Info { .. } => {
                self.local.stats.commands += 1;
                let reply = self.describe(now, cmd);
                self.local.make_room(now);
                reply
            }
            cmd => self.local.execute(now, cmd).reply,
        }
    }

    /// The reply to a command that describes the node.
    fn describe(&self, now: Millis, cmd: Command) -> Reply {
        match cmd {
            Command::Members => self.members_reply(),
            Command::Owners { key } => self.owners_reply(&key),
            Command::LocalGet { key } => self.local_get_reply(&key, now),
            Command::Ready => self.ready_reply(),
            Command::Info { sections, server } => Reply::Verbatim(super::info::render(self, now, &sections, &server)),
            _ => Reply::err("ERR not a command that describes the node"),
        }
    }
}

#[cfg(test)]
mod tests;
