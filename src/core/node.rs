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
use super::membership::{GossipEffect, GossipTimer, MemberEvent, Membership};
use super::replication::{Levels, PeerMsg};
use super::reply::{Reply, ERR_OOM};
use super::ring::DEFAULT_VNODES;
use super::store::{EvictionPolicy, Store};
use super::version::NodeId;
use super::Millis;

/// A client connection, as the driver numbers them.
pub type ConnId = u64;
/// A request on one connection, numbered by the connection in the order it arrived.
pub type ReqId = u64;

/// The node's timers. When several are due at once, drivers deliver them in `Ord` order (membership needs it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerId {
    /// Reclaim expired keys (Redis's active expiry).
    ActiveExpire,
    /// A membership (SWIM) timer.
    Gossip(GossipTimer),
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
    /// A message from the peer whose cluster address is `from`.
    Peer {
        /// The sender's advertised cluster address.
        from: SocketAddr,
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
    /// The membership view changed (for logs and metrics).
    Member(MemberEvent),
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

/// Settings of one node's data path.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// The node's name, unique in its cluster.
    pub name: String,
    /// Memory limit for stored data in bytes; 0 means no limit.
    pub maxmemory_bytes: usize,
    /// What to evict when over the limit.
    pub eviction: EvictionPolicy,
    /// Largest value a write may produce (Redis's proto-max-bulk-len).
    pub value_bytes_max: usize,
    /// Period of active expiry.
    pub active_expire_period_ms: Millis,
    /// Most keys one active-expiry pass removes before it yields (it reschedules itself at once).
    pub active_expire_keys_max: usize,
    /// Replicas per key (N).
    pub replicas: usize,
    /// Levels of connections that did not choose their own.
    pub levels: Levels,
    /// How long a coordinator waits for a replica before it counts it as failed (hint, failover, error).
    pub request_timeout_ms: Millis,
    /// How long tombstones (and eviction markers) are kept.
    pub tombstone_grace_ms: Millis,
    /// Most hints a node holds for unreachable replicas; beyond it the oldest are dropped and counted.
    pub hints_max: usize,
    /// Hints older than this are dropped and counted (keep it below the tombstone grace).
    pub hint_age_max_ms: Millis,
    /// Period of anti-entropy rounds (one peer per round).
    pub anti_entropy_period_ms: Millis,
    /// Virtual nodes per member on the ring.
    pub vnodes: usize,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: "shoal".to_string(),
            maxmemory_bytes: 0,
            eviction: EvictionPolicy::AllKeysLru,
            value_bytes_max: 512 * 1024 * 1024,
            active_expire_period_ms: 100,
            active_expire_keys_max: 2_000,
            replicas: 3,
            levels: Levels::default(),
            request_timeout_ms: 1_000,
            tombstone_grace_ms: 300_000,
            hints_max: 100_000,
            hint_age_max_ms: 240_000,
            anti_entropy_period_ms: 5_000,
            vnodes: DEFAULT_VNODES,
        }
    }
}

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

/// One Shoal node's logic and state.
pub struct Node {
    pub(crate) config: NodeConfig,
    pub(crate) id: NodeId,
    pub(crate) hlc: Hlc,
    pub(crate) store: Store,
    pub(crate) rng: StdRng,
    pub(crate) stats: NodeStats,
    pub(crate) membership: Option<Membership>,
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
            seeds: Vec::new(),
            gossip_out: Vec::new(),
        }
    }

    /// A node that is a member of a cluster: it joins through `seeds` when started.
    pub fn clustered(config: NodeConfig, seed: u64, membership: Membership, seeds: Vec<SocketAddr>) -> Node {
        let mut node = Node::new(config, seed);
        node.membership = Some(membership);
        node.seeds = seeds;
        node
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

    /// Process one input at wall-clock time `now`, writing effects into `out`.
    pub fn handle(&mut self, now: Millis, input: Input, out: &mut Outbox) {
        match input {
            Input::Start => {
                self.schedule_active_expire(out, self.config.active_expire_period_ms);
                let seeds = self.seeds.clone();
                self.with_membership(out, |m, effects| m.join(now, &seeds, effects));
            }
            Input::Client { conn, req, cmd, levels: _ } => {
                let reply = self.execute(now, cmd);
                out.push(Output::Reply { conn, req, reply });
            }
            Input::Timer(TimerId::ActiveExpire) => self.active_expire(now, out),
            Input::Timer(TimerId::Gossip(timer)) => {
                self.with_membership(out, |m, effects| m.handle_timer(now, timer, effects))
            }
            Input::Gossip { from, packet } => {
                self.with_membership(out, |m, effects| m.handle_packet(now, from, &packet, effects))
            }
            Input::SetSeeds(seeds) => {
                self.seeds = seeds;
                let seeds = self.seeds.clone();
                self.with_membership(out, |m, _| m.set_seeds(&seeds));
            }
            Input::Leave => self.with_membership(out, |m, effects| m.leave(now, effects)),
            Input::Peer { .. } | Input::PeerLost { .. } => {}
        }
    }

    /// Run `f` on the membership (if any) and turn its effects into outputs.
    fn with_membership(&mut self, out: &mut Outbox, f: impl FnOnce(&mut Membership, &mut Vec<GossipEffect>)) {
        let Some(m) = self.membership.as_mut() else { return };
        f(m, &mut self.gossip_out);
        for effect in self.gossip_out.drain(..) {
            out.push(match effect {
                GossipEffect::Send { to, packet } => Output::SendGossip { to, packet },
                GossipEffect::Schedule { after_ms, timer } => {
                    Output::Schedule { after_ms, timer: TimerId::Gossip(timer) }
                }
                GossipEffect::Changed(event) => Output::Member(event),
            });
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

    /// Evict until the store fits under `maxmemory`; false when it cannot.
    fn make_room(&mut self, now: Millis) -> bool {
        let limit = self.config.maxmemory_bytes;
        if self.store.used_bytes() <= limit {
            return true;
        }
        let rng = &mut self.rng;
        self.store.evict_to(limit, self.config.eviction, now, |n| rng.random_range(0..n))
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
