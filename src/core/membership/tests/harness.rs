//! A tiny discrete-event network for `Membership`: one queue ordered by (virtual ms, sequence), one seeded RNG.
//!
//! `Send` effects become deliveries after a random delay (or are lost with probability `loss_ppm` per million,
//! or dropped on an isolated node's links); `Schedule` effects go to the node's `TimerQueue`, with an event that
//! fires them: timers of one node due at the same instant are delivered together in `GossipTimer` order, as the
//! driver contract requires. A crash drops the node's state and all its pending timers (by bumping its
//! generation). This is the seed of `sim/`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::core::membership::{
    ClusterSecret, GossipConfig, GossipEffect, GossipTimer, Identity, MemberEvent, MemberInfo, Membership,
};
use crate::core::timers::{TimerKey, TimerQueue};
use crate::core::Millis;

/// Virtual time at which every simulation starts (a plausible Unix time in ms, so incarnations look real).
pub const T0: Millis = 1_700_000_000_000;

/// A `MemberEvent` as node `node` reported it at virtual time `at`.
#[derive(Clone, Debug)]
pub struct Logged {
    pub at: Millis,
    pub node: usize,
    pub event: MemberEvent,
}

pub struct SimNode {
    pub addr: SocketAddr,
    pub name: String,
    pub config: GossipConfig,
    pub secret: Option<ClusterSecret>,
    pub membership: Option<Membership>,
    generation: u64,
    /// Pending timers, as (timer, generation); those of a dead generation are skipped when due.
    timers: TimerQueue<(GossipTimer, u64)>,
}

enum Event {
    /// A datagram from `from` arrives at node `to`.
    Deliver { to: usize, from: SocketAddr, packet: Bytes },
    /// Timer `key` of `node`'s timer queue is due (with every other timer of the node due then, unless taken).
    Timer { node: usize, key: TimerKey },
}

pub struct Sim {
    pub now: Millis,
    pub nodes: Vec<SimNode>,
    pub log: Vec<Logged>,
    /// Probability of losing any one datagram, in parts per million.
    pub loss_ppm: u32,
    /// Inclusive range of one-way delays.
    pub delay_ms: (u64, u64),
    /// Datagrams sent, and how many of them the network lost or cut.
    pub datagrams_sent: u64,
    pub datagrams_lost: u64,
    seq: u64,
    queue: BTreeMap<(Millis, u64), Event>,
    by_addr: BTreeMap<SocketAddr, usize>,
    isolated: BTreeSet<usize>,
    rng: StdRng,
}

/// Gossip address of the `i`-th simulated node.
pub fn addr_of(i: usize) -> SocketAddr {
    let i = u32::try_from(i).expect("small index");
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + i)), 7946)
}

impl Sim {
    pub fn new(seed: u64) -> Self {
        Self {
            now: T0,
            nodes: Vec::new(),
            log: Vec::new(),
            loss_ppm: 0,
            delay_ms: (1, 3),
            datagrams_sent: 0,
            datagrams_lost: 0,
            seq: 0,
            queue: BTreeMap::new(),
            by_addr: BTreeMap::new(),
            isolated: BTreeSet::new(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Adds `count` nodes with `config` and `secret`, started now but not joined; returns their indices.
    pub fn add_nodes(&mut self, count: usize, config: &GossipConfig, secret: Option<&ClusterSecret>) -> Vec<usize> {
        (0..count)
            .map(|_| {
                let i = self.nodes.len();
                let addr = addr_of(i);
                self.by_addr.insert(addr, i);
                self.nodes.push(SimNode {
                    addr,
                    name: format!("n{i}"),
                    config: config.clone(),
                    secret: secret.cloned(),
                    membership: None,
                    generation: 0,
                    timers: TimerQueue::new(),
                });
                self.start(i);
                i
            })
            .collect()
    }

    /// (Re)starts node `i` with a fresh state and incarnation = now.
    pub fn start(&mut self, i: usize) {
        self.start_at_incarnation(i, self.now);
    }

    /// (Re)starts node `i` with a fresh state and the given incarnation (a wall clock that stepped back).
    pub fn start_at_incarnation(&mut self, i: usize, incarnation: u64) {
        let node = &mut self.nodes[i];
        node.generation += 1;
        let client = SocketAddr::new(node.addr.ip(), 6379);
        let identity = Identity::new(node.addr, client, node.name.clone(), incarnation);
        let seed = self.rng.random::<u64>();
        let membership = Membership::new(identity, node.config.clone(), node.secret.clone(), seed);
        node.membership = Some(membership.expect("valid config"));
    }

    /// Node `i` joins through the nodes `seeds`.
    pub fn join(&mut self, i: usize, seeds: &[usize]) {
        let seeds: Vec<SocketAddr> = seeds.iter().map(|&s| addr_of(s)).collect();
        let now = self.now;
        self.with_node(i, |m, out| m.join(now, &seeds, out));
    }

    /// Replaces node `i`'s seeds without announcing now (the next announce round uses them).
    pub fn set_seeds(&mut self, i: usize, seeds: &[usize]) {
        let seeds: Vec<SocketAddr> = seeds.iter().map(|&s| addr_of(s)).collect();
        if let Some(m) = self.nodes[i].membership.as_mut() {
            m.set_seeds(&seeds);
        }
    }

    /// Node `i` leaves gracefully (it keeps running but ignores everything).
    pub fn leave(&mut self, i: usize) {
        let now = self.now;
        self.with_node(i, |m, out| m.leave(now, out));
    }

    /// Node `i` stops without a word: its state and pending timers are gone.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].membership = None;
        self.nodes[i].generation += 1;
    }

    /// Cuts (or restores) every link of node `i`.
    pub fn isolate(&mut self, i: usize, isolated: bool) {
        if isolated {
            self.isolated.insert(i);
        } else {
            self.isolated.remove(&i);
        }
    }

    pub fn membership(&self, i: usize) -> &Membership {
        self.nodes[i].membership.as_ref().expect("node is running")
    }

    /// Names of the members node `i` sees live, sorted.
    pub fn live_names(&self, i: usize) -> Vec<String> {
        self.membership(i).live_members().into_iter().map(|m: MemberInfo| m.name).collect()
    }

    /// Runs every event up to and including `now + ms`.
    pub fn run_for(&mut self, ms: u64) {
        let until = self.now + ms;
        while self.step_until(until) {}
        self.now = until;
    }

    /// Runs until `done` holds (checked after every event) or `ms` pass; returns the time it first held.
    pub fn run_until(&mut self, ms: u64, mut done: impl FnMut(&Sim) -> bool) -> Option<Millis> {
        let until = self.now + ms;
        loop {
            if done(self) {
                return Some(self.now);
            }
            if !self.step_until(until) {
                self.now = until;
                return None;
            }
        }
    }

    /// Delivers the next event (and every timer of the same node due at the same instant) if due by `until`.
    fn step_until(&mut self, until: Millis) -> bool {
        let Some((&(at, seq), _)) = self.queue.first_key_value() else {
            return false;
        };
        if at > until {
            return false;
        }
        self.now = at;
        match self.queue.remove(&(at, seq)).expect("first key exists") {
            Event::Deliver { to, from, packet } => {
                let now = self.now;
                self.with_node(to, |m, out| m.handle_packet(now, from, &packet, out));
            }
            Event::Timer { node, key } => {
                // A key already gone went with an earlier timer of the node due at the same instant.
                if !self.nodes[node].timers.is_pending(key) {
                    return true;
                }
                for (timer, generation) in self.nodes[node].timers.pop_due(self.now) {
                    if generation == self.nodes[node].generation {
                        let now = self.now;
                        self.with_node(node, |m, out| m.handle_timer(now, timer, out));
                    }
                }
            }
        }
        true
    }

    fn with_node(&mut self, i: usize, call: impl FnOnce(&mut Membership, &mut Vec<GossipEffect>)) {
        let mut out = Vec::new();
        let Some(membership) = self.nodes[i].membership.as_mut() else {
            return;
        };
        call(membership, &mut out);
        for effect in out {
            self.apply(i, effect);
        }
    }

    fn apply(&mut self, i: usize, effect: GossipEffect) {
        match effect {
            GossipEffect::Send { to, packet } => {
                let Some(&target) = self.by_addr.get(&to) else {
                    return;
                };
                self.datagrams_sent += 1;
                let lost = self.loss_ppm > 0 && self.rng.random_range(0..1_000_000) < self.loss_ppm;
                if lost || self.isolated.contains(&i) || self.isolated.contains(&target) {
                    self.datagrams_lost += 1;
                    return;
                }
                let delay = self.rng.random_range(self.delay_ms.0..=self.delay_ms.1);
                let from = self.nodes[i].addr;
                self.push(self.now + delay, Event::Deliver { to: target, from, packet });
            }
            GossipEffect::Schedule { after_ms, timer } => {
                let node = &mut self.nodes[i];
                let key = node.timers.schedule(self.now + after_ms, (timer, node.generation));
                self.push(key.deadline(), Event::Timer { node: i, key });
            }
            GossipEffect::Changed(event) => self.log.push(Logged { at: self.now, node: i, event }),
        }
    }

    fn push(&mut self, at: Millis, event: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), event);
    }

    /// When node `observer` first reported a `Down` for the node at `addr` at or after `since`.
    pub fn down_seen_at(&self, observer: usize, addr: SocketAddr, since: Millis) -> Option<Millis> {
        self.log
            .iter()
            .find(|l| {
                l.node == observer
                    && l.at >= since
                    && matches!(&l.event, MemberEvent::Down(id) if id.gossip_addr == addr)
            })
            .map(|l| l.at)
    }

    /// Every `Down` event in the log.
    pub fn downs(&self) -> impl Iterator<Item = &Logged> {
        self.log.iter().filter(|l| matches!(l.event, MemberEvent::Down(_)))
    }
}
