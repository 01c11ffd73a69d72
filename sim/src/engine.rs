//! The engine: N `core::Node`s, one event queue, one seed; runs the safety phase, heals, and runs the liveness
//! phase until the cluster converges or the bound passes.
//!
//! Every random choice derives from the run's seed through separate streams (nodes, network, workload, faults),
//! so a seed replays byte for byte. A host is a node's process: it holds the node (or nothing when crashed), a
//! generation that invalidates the timers of a dead incarnation, a pause flag with the events that wait for it,
//! and a clock offset. The engine drains each node's outbox after every input, as the tokio runtime does.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use shoal::core::membership::{GossipConfig, Identity, Membership};
use shoal::core::reply::Reply;
use shoal::core::{Input, Millis, Node, NodeConfig, Outbox, Output, TimerId};

use crate::check::{self, Kind, LiveNode, Observed, Violation};
use crate::event::{Event, Ms, Queue};
use crate::faults::{Fault, FaultPlan};
use crate::net::Net;
use crate::scenario::{Scenario, SEED_NODES};
use crate::timeline::Timeline;
use crate::trace::Trace;
use crate::workload::{Op, Outcome, Workload, WorkloadConfig};

mod host;
use host::timer_tag;

/// Virtual Unix time (ms) at which every run starts.
pub const EPOCH_MS: Millis = 1_700_000_000_000;

/// At most this many violations of one kind are kept with their details (all are counted).
const VIOLATION_DETAILS_MAX: usize = 5;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: usize,
    pub scenario: Scenario,
    /// Length of the safety phase (faults on).
    pub safety_ms: Ms,
    /// The liveness bound: the cluster must converge this long after the heal.
    pub liveness_bound_ms: Ms,
    /// Record each node's view for the timeline.
    pub timeline: bool,
}

impl SimConfig {
    pub fn new(seed: u64, nodes: usize, scenario: Scenario, safety_ms: Ms) -> SimConfig {
        SimConfig { seed, nodes, scenario, safety_ms, liveness_bound_ms: 30_000, timeline: false }
    }
}

/// What a run found.
#[derive(Debug)]
pub struct Report {
    pub config: SimConfig,
    pub violations: Vec<Violation>,
    /// Violations by kind, counted (the list above keeps a few of each).
    pub counts: Vec<(Kind, usize)>,
    /// How long after the heal the cluster converged.
    pub converged_after_ms: Option<Ms>,
    pub virtual_ms: Ms,
    pub datagrams: u64,
    pub trace_hash: u64,
    pub events: u64,
    pub ops: usize,
    pub faults: Vec<(Ms, Fault)>,
    pub timeline: Option<Timeline>,
}

struct Host {
    node: Option<Node>,
    generation: u64,
    paused: bool,
    held: Vec<Event>,
    skew_ms: i64,
    clock_max: Millis,
    gone_for_good: bool,
    incarnation_max: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Safety,
    Liveness { healed_at: Ms },
}

/// One run.
pub struct Engine {
    config: SimConfig,
    now: Ms,
    queue: Queue,
    net: Net,
    hosts: Vec<Host>,
    workload: Workload,
    trace: Trace,
    node_rng: StdRng,
    start_rng: StdRng,
    gossip: GossipConfig,
    phase: Phase,
    plan: FaultPlan,
    outbox: Outbox,
    violations: Vec<Violation>,
    counts: std::collections::BTreeMap<Kind, usize>,
    converged_after_ms: Option<Ms>,
    timeline: Option<Timeline>,
    last_reply: Option<Reply>,
}

/// Gossip address of node `i`.
pub fn addr_of(i: usize) -> SocketAddr {
    let i = u32::try_from(i).expect("node count fits an IPv4 range");
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + i)), 7946)
}

fn index_of(addr: SocketAddr, n: usize) -> Option<usize> {
    let IpAddr::V4(ip) = addr.ip() else { return None };
    let i = u32::from(ip).checked_sub(0x0a00_0001)? as usize;
    (i < n && addr.port() == 7946).then_some(i)
}

impl Engine {
    pub fn new(config: SimConfig, trace: Trace) -> Engine {
        let mut root = StdRng::seed_from_u64(config.seed);
        let mut streams = [0u64; 5];
        for s in streams.iter_mut() {
            *s = root.random();
        }
        let n = config.nodes;
        let plan = config.scenario.plan(&mut StdRng::seed_from_u64(streams[0]), n, config.safety_ms);
        let net = Net::new(n, plan.net.clone(), streams[1]);
        let workload = Workload::new(WorkloadConfig::for_nodes(n), streams[2]);
        let hosts = (0..n)
            .map(|i| Host {
                node: None,
                generation: 0,
                paused: false,
                held: Vec::new(),
                skew_ms: plan.skew_ms[i],
                clock_max: 0,
                gone_for_good: false,
                incarnation_max: 0,
            })
            .collect();
        Engine {
            timeline: config.timeline.then(|| Timeline::new(n)),
            config,
            now: 0,
            queue: Queue::default(),
            net,
            hosts,
            workload,
            trace,
            node_rng: StdRng::seed_from_u64(streams[3]),
            start_rng: StdRng::seed_from_u64(streams[4]),
            gossip: GossipConfig::lan(),
            phase: Phase::Safety,
            plan,
            outbox: Outbox::new(),
            violations: Vec::new(),
            counts: Default::default(),
            converged_after_ms: None,
            last_reply: None,
        }
    }

    /// Runs to convergence after the heal, or to the liveness bound.
    pub fn run(mut self) -> Report {
        let n = self.config.nodes;
        for node in 0..n {
            let at = self.start_rng.random_range(0..500);
            self.queue.push(at, Event::Start { node });
        }
        for (at, fault) in self.plan.sorted() {
            self.queue.push(at, Event::Fault(fault));
        }
        self.queue.push(self.config.safety_ms, Event::Heal);
        let gap = self.workload.gap_ms();
        self.queue.push(gap, Event::Workload);
        self.queue.push(self.probe_ms(), Event::Probe);
        let end = self.config.safety_ms + self.config.liveness_bound_ms;
        while let Some(at) = self.queue.next_at() {
            if at > end || self.converged_after_ms.is_some() {
                break;
            }
            let (at, event) = self.queue.pop().expect("peeked");
            self.now = at;
            self.dispatch(event);
        }
        if self.converged_after_ms.is_none() {
            let last = check::membership_converged(self.now, &self.observe());
            self.flag_all(last);
        }
        // `check::history` models each node as its own keyspace, which replication made wrong: a key now lives on
        // its owners and any node forwards to them. The replica checkers (acknowledged writes, convergence,
        // causality, read-your-writes) replace it together with peer-message routing in the engine.
        self.trace.flush();
        Report {
            counts: self.counts.into_iter().collect(),
            violations: self.violations,
            converged_after_ms: self.converged_after_ms,
            virtual_ms: self.now,
            datagrams: self.net.stats.sent,
            trace_hash: self.trace.hash(),
            events: self.trace.events(),
            ops: self.workload.history.len(),
            faults: self.plan.sorted(),
            timeline: self.timeline,
            config: self.config,
        }
    }

    fn probe_ms(&self) -> Ms {
        match (self.timeline.is_some(), self.phase) {
            (true, _) => 100,
            (false, Phase::Liveness { .. }) => 250,
            (false, Phase::Safety) => (self.config.nodes as Ms * 20).max(1_000),
        }
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Start { node } => self.start(node),
            Event::Deliver { to, from, packet } => {
                if self.hold(to, || Event::Deliver { to, from, packet: packet.clone() }) {
                    return;
                }
                self.trace.record(self.now, to, 1, &packet, || format!("recv {} bytes from n{from}", packet.len()));
                self.handle(to, Input::Gossip { from: addr_of(from), packet });
            }
            Event::Timer { node, generation, timer } => self.timers(node, generation, timer),
            Event::Client { node, op } => self.client(node, op),
            Event::Workload => {
                let op = self.workload.issue(self.now, self.config.nodes);
                let node = self.workload.pending[op].as_ref().expect("just issued").node;
                self.queue.push(self.now, Event::Client { node, op });
                let gap = self.workload.gap_ms();
                self.queue.push(self.now + gap, Event::Workload);
            }
            Event::Fault(fault) => self.fault(fault),
            Event::Heal => self.heal(),
            Event::Probe => self.probe(),
        }
    }

    /// If `node` is paused, keeps the event for its resume and says so.
    fn hold(&mut self, node: usize, event: impl FnOnce() -> Event) -> bool {
        let host = &mut self.hosts[node];
        if host.paused && host.node.is_some() {
            host.held.push(event());
            return true;
        }
        false
    }

    fn node_now(&mut self, i: usize) -> Millis {
        let host = &mut self.hosts[i];
        let now = (EPOCH_MS as i64 + self.now as i64 + host.skew_ms).max(0) as Millis;
        host.clock_max = host.clock_max.max(now);
        now
    }

    fn start(&mut self, i: usize) {
        if self.hosts[i].node.is_some() || self.hosts[i].gone_for_good {
            return;
        }
        let now = self.node_now(i);
        let host = &mut self.hosts[i];
        host.generation += 1;
        host.paused = false;
        host.held.clear();
        let name = format!("n{i}");
        let addr = addr_of(i);
        let identity = Identity::new(addr, SocketAddr::new(addr.ip(), 6379), name.clone(), now);
        let membership = Membership::new(identity, self.gossip.clone(), None, self.node_rng.random())
            .expect("the LAN profile is a valid config");
        let seeds: Vec<SocketAddr> = (0..SEED_NODES.min(self.config.nodes)).map(addr_of).collect();
        let config = NodeConfig { name, ..NodeConfig::default() };
        host.node = Some(Node::clustered(config, self.node_rng.random(), membership, seeds));
        let generation = host.generation;
        self.trace.record(self.now, i, 2, &now.to_le_bytes(), || format!("start gen {generation} clock {now}"));
        self.handle(i, Input::Start);
    }

    fn timers(&mut self, node: usize, generation: u64, timer: TimerId) {
        if self.hold(node, || Event::Timer { node, generation, timer: timer.clone() }) {
            return;
        }
        let mut due = vec![(generation, timer)];
        due.extend(self.queue.take_timers_at(self.now, node));
        due.sort_by(|a, b| a.1.cmp(&b.1));
        for (generation, timer) in due {
            if generation != self.hosts[node].generation || self.hosts[node].node.is_none() {
                continue;
            }
            if self.trace.is_writing() {
                self.trace.record(self.now, node, 3, &[], || format!("timer {timer:?}"));
            } else {
                self.trace.record(self.now, node, 3, &[timer_tag(&timer)], String::new);
            }
            self.handle(node, Input::Timer(timer));
        }
    }

    fn client(&mut self, node: usize, op: usize) {
        if self.hold(node, || Event::Client { node, op }) {
            return;
        }
        let Some(call) = self.workload.pending[op].take() else { return };
        let generation = self.hosts[node].generation;
        let node_now = self.node_now(node);
        let mut record = Op {
            client: call.client,
            node,
            generation,
            kind: call.kind,
            invoked_at: call.invoked_at,
            executed_at: self.now,
            node_now,
            node_clock_max: self.hosts[node].clock_max,
            outcome: Outcome::Refused,
        };
        let cmd = record.kind.command();
        self.trace.record(self.now, node, 4, &(op as u64).to_le_bytes(), || format!("client {:?}", record.kind));
        if self.hosts[node].node.is_none() {
            self.workload.history.push(record);
            return;
        }
        self.handle(
            node,
            Input::Client { conn: u64::from(call.client), req: op as u64, cmd, levels: Default::default() },
        );
        if let Some(reply) = self.last_reply.take() {
            record.outcome = Outcome::Replied(reply);
        }
        self.workload.history.push(record);
    }
}
