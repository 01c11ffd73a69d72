//! The engine: N `core::Node`s, one event queue, one seed; runs the safety phase, heals, and runs the liveness
//! phase until the cluster converges or the bound passes.
//!
//! Every random choice derives from the run's seed through separate streams (nodes, network, workload, faults),
//! so a seed replays byte for byte. A host is a node's process: it holds the node (or nothing when crashed), a
//! generation that invalidates the timers of a dead incarnation, a pause flag with the events that wait for it,
//! and a clock offset. The engine drains each node's outbox after every input, as the tokio runtime does.
//!
//! Client calls are asynchronous: a reply may come out of any later input (a peer message, a timer), and is
//! matched to its call by (connection, request). Clients stop calling at the heal, so the liveness phase can
//! reach quiescence: no call waiting, no peer message in flight, membership and every key's replicas agreed.
//!
//! Under the full workload (`workload::Mix::Full`) every node runs with a `maxmemory` drawn from the seed (its own
//! stream, drawn after the others, so the classic workload's streams are unchanged), two mass-expiry bursts fire
//! at drawn times, and after every input whose node's eviction count rose the engine notes which workload keys it
//! evicted (their eviction markers' versions) for the checkers; markers, counters' and logs' versions travelling
//! in `Put`s are noted too.
//!
//! Lock clients (`locks::LockWorkload`, from a stream of their own) run beside the data clients under the same
//! faults: one wake-up event is kept at the workload's next action, their calls reach nodes as client input and
//! their replies are told apart by connection id. At the heal they release and stop; at the end the lock
//! checkers judge their history, double holders that start under a fault (or while it settles) counted as
//! anomalies, every other broken lock invariant a violation.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use shoal::core::locks::LockMode;
use shoal::core::membership::{GossipConfig, Identity, Membership};
use shoal::core::node::CLOCK_DRIFT_MAX_MS_DEFAULT;
use shoal::core::replication::Levels;
use shoal::core::timers::TimerQueue;
use shoal::core::{Input, Millis, Node, NodeConfig, Outbox, Output, TimerId};

use crate::check::replicas::Finals;
use crate::check::writes::Facts;
use crate::check::{self, Kind, LiveNode, Observed, Violation};
use crate::event::{Event, Ms, Queue};
use crate::faults::{Fault, FaultPlan};
use crate::locks::{judge, lock_client, LockCall, LockConfig, LockEvent, LockSummary, LockWorkload};
use crate::net::Net;
use crate::scenario::{Scenario, SEED_NODES};
use crate::timeline::Timeline;
use crate::trace::Trace;
use crate::workload::{Mix, Outcome, Role, Workload, WorkloadConfig};
use shoal::core::store::EvictionPolicy;

mod config;
mod data;
mod host;
mod locks;
mod peer;
mod spans;
pub use config::{draw_memory, Memory, MemoryPlan, MixCounts, Report, SimConfig};
use spans::{checker_facts, lock_fault_spans};

/// Virtual Unix time (ms) at which every run starts.
pub const EPOCH_MS: Millis = 1_700_000_000_000;

/// At most this many violations of one kind are kept with their details (all are counted).
const VIOLATION_DETAILS_MAX: usize = 5;

struct Host {
    node: Option<Node>,
    generation: u64,
    /// Timers of every incarnation, each as (timer, generation); those of a dead incarnation are skipped when due.
    timers: TimerQueue<(TimerId, u64)>,
    paused: bool,
    held: Vec<Event>,
    skew_ms: i64,
    clock_max: Millis,
    gone_for_good: bool,
    incarnation_max: u64,
    /// The node's eviction count after its last input (a rise: look for the keys it evicted).
    evicted_seen: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Safety,
    Liveness { healed_at: Ms },
}

/// One run.
pub struct Engine {
    /// Encodes peer messages as the runtime's links do, for their size and the trace hash.
    frames: shoal::core::replication::FrameCodec,
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
    anomalies: Vec<Violation>,
    counts: std::collections::BTreeMap<Kind, usize>,
    converged_after_ms: Option<Ms>,
    timeline: Option<Timeline>,
    /// Peer messages scheduled and not yet delivered or dropped.
    peer_in_flight: usize,
    facts: Facts,
    finals: Option<Finals>,
    locks: LockWorkload,
    /// Times of the lock wake-up events pending.
    lock_wakes: BTreeSet<Ms>,
    /// When faults bear on locks (in force or settling), for the exclusivity checker.
    lock_faults: Vec<(Ms, Ms)>,
    /// Node `i`'s name (`n{i}`), shared by every peer message it sends instead of formatted per message.
    names: Vec<std::sync::Arc<str>>,
    /// Every node's memory limit, if any.
    memory: Option<Memory>,
    /// Keys evicted so far, over every incarnation.
    evictions: u64,
}

/// Gossip address of node `i`.
pub fn addr_of(i: usize) -> SocketAddr {
    let i = u32::try_from(i).expect("node count fits an IPv4 range");
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + i)), 7946)
}

impl Engine {
    /// The nodes' bound on a peer timestamp's lead: the configured one, or one above the plan's clock spread.
    fn clock_drift_max_ms(&self) -> Ms {
        let above_spread = self.facts.clock_spread_ms.saturating_add(CLOCK_DRIFT_MAX_MS_DEFAULT);
        self.config.clock_drift_max_ms.unwrap_or(above_spread)
    }

    /// Timestamps refused for their lead, summed over the nodes running at the end (a crash loses its counts).
    fn clock_drift_rejected(&self) -> u64 {
        let nodes = self.hosts.iter().filter_map(|h| h.node.as_ref());
        nodes.filter_map(|n| n.replication_stats()).map(|r| r.clock_drift_rejected).sum()
    }

    /// With clocks further apart than the nodes' drift bound, replicas refuse the copies of the nodes ahead: their
    /// writes acknowledged at ONE stay on them, and replicas differ. Those data findings are then allowed anomalies
    /// (`BeyondClockDrift`); a run whose bound covers its clock spread (every scenario's default) has none.
    fn excuse_beyond_drift(&self, found: &mut [Violation]) {
        if self.facts.clock_spread_ms <= self.clock_drift_max_ms() {
            return;
        }
        let note = format!(
            " [clocks {} s apart, beyond the nodes' drift bound of {} ms]",
            self.facts.clock_spread_ms / 1_000,
            self.clock_drift_max_ms()
        );
        for v in found.iter_mut().filter(|v| v.kind.is_data() && !v.kind.is_anomaly()) {
            v.detail.push_str(&note);
            v.kind = Kind::BeyondClockDrift;
        }
    }
}

fn index_of(addr: SocketAddr, n: usize) -> Option<usize> {
    let IpAddr::V4(ip) = addr.ip() else { return None };
    let i = u32::from(ip).checked_sub(0x0a00_0001)? as usize;
    (i < n && addr.port() == 7946).then_some(i)
}

impl Host {
    /// A host whose node has not started yet, with its clock `skew_ms` off the virtual time.
    fn new(skew_ms: i64) -> Host {
        Host {
            node: None,
            generation: 0,
            timers: TimerQueue::new(),
            paused: false,
            held: Vec::new(),
            skew_ms,
            clock_max: 0,
            gone_for_good: false,
            incarnation_max: 0,
            evicted_seen: 0,
        }
    }
}

impl Engine {
    pub fn new(config: SimConfig, trace: Trace) -> Engine {
        let mut root = StdRng::seed_from_u64(config.seed);
        // Streams: faults, network, data workload, nodes, start times, lock workload, memory limit (each appended
        // last, so the streams before it are the same as before it existed).
        let mut streams = [0u64; 7];
        for s in streams.iter_mut() {
            *s = root.random();
        }
        let n = config.nodes;
        let plan = match &config.faults {
            Some(plan) => plan.clone(),
            None => config.scenario.plan(&mut StdRng::seed_from_u64(streams[0]), n, config.safety_ms),
        };
        let locks = LockWorkload::new(config.locks.clone(), n, streams[5]);
        let lock_faults = lock_fault_spans(&plan, config.safety_ms, config.locks.settle_ms());
        let net = Net::new(n, plan.net.clone(), streams[1]);
        let workload = Workload::new(WorkloadConfig::with_mix(n, config.workload), streams[2]);
        let memory = match (config.memory, config.workload) {
            (MemoryPlan::Limit(memory), _) => Some(memory),
            (MemoryPlan::Off, _) | (MemoryPlan::Default, Mix::Classic) => None,
            (MemoryPlan::Default, Mix::Full) => Some(draw_memory(&mut StdRng::seed_from_u64(streams[6]))),
        };
        let facts = checker_facts(&config, &plan, &workload, memory.is_some());
        let hosts = (0..n).map(|i| Host::new(plan.skew_ms[i])).collect();
        Engine {
            names: (0..n).map(|i| format!("n{i}").into()).collect(),
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
            anomalies: Vec::new(),
            counts: Default::default(),
            converged_after_ms: None,
            peer_in_flight: 0,
            frames: shoal::core::replication::FrameCodec::new(None),
            facts,
            finals: None,
            locks,
            lock_wakes: BTreeSet::new(),
            lock_faults,
            memory,
            evictions: 0,
        }
    }

    /// Runs to convergence after the heal, or to the liveness bound.
    pub fn run(mut self) -> Report {
        self.schedule_plan();
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
            self.flag_unconverged();
        }
        self.check_history();
        let locks = self.check_locks();
        self.trace.flush();
        self.report(locks)
    }

    /// Queues the run's first events: node starts, the fault plan, the heal, each client's first step, the expiry
    /// bursts, the first probe and the lock clients' first wake.
    fn schedule_plan(&mut self) {
        for node in 0..self.config.nodes {
            let at = self.start_rng.random_range(0..500);
            self.queue.push(at, Event::Start { node });
        }
        for (at, fault) in self.plan.sorted() {
            self.queue.push(at, Event::Fault(fault));
        }
        self.queue.push(self.config.safety_ms, Event::Heal);
        for client in 0..self.workload.config.clients {
            let at = self.workload.think_ms();
            self.queue.push(at, Event::Workload { client });
        }
        let warm_up = crate::scenario::warm_up_ms(self.config.safety_ms);
        for (at, ttl_ms) in self.workload.burst_plan(warm_up, self.config.safety_ms.saturating_sub(5_000)) {
            self.queue.push(at, Event::Burst { ttl_ms });
        }
        self.queue.push(self.probe_ms(), Event::Probe);
        self.schedule_lock_wake();
    }

    /// The run ended without converging: flags what membership and data still disagree on, naming divergence
    /// beyond the tombstone grace as such when the clocks were that far apart.
    fn flag_unconverged(&mut self) {
        let last = check::membership_converged(self.now, &self.observe());
        self.flag_all(last);
        if let Err(mut found) = self.data_converged() {
            if self.facts.clock_spread_ms >= self.facts.tombstone_grace_ms {
                let note =
                    format!(" [clocks {} s apart, beyond the tombstone grace]", self.facts.clock_spread_ms / 1_000);
                for v in found.iter_mut().filter(|v| v.kind == Kind::ReplicasDiverged) {
                    v.detail.push_str(&note);
                    v.kind = Kind::DivergedBeyondGrace;
                }
            }
            self.flag_all(found);
        }
    }

    /// The finished run's report.
    fn report(self, locks: LockSummary) -> Report {
        let clock_drift_rejected = self.clock_drift_rejected();
        let nodes = self.hosts.iter().filter_map(|h| h.node.as_ref());
        let puts_refused = nodes.filter_map(|n| n.replication_stats()).map(|r| r.merges_refused).sum();
        let mix = MixCounts::of(&self.workload.history, |c| self.workload.is_burst_client(c));
        Report {
            memory: self.memory,
            evictions: self.evictions,
            puts_refused,
            mix,
            counts: self.counts.into_iter().collect(),
            violations: self.violations,
            anomalies: self.anomalies,
            converged_after_ms: self.converged_after_ms,
            virtual_ms: self.now,
            datagrams: self.net.stats.sent,
            peer_messages: self.net.peer_stats.sent,
            peer_bytes: self.net.peer_stats.bytes,
            peer_lost: self.net.peer_stats.lost,
            unknown_ops: self.workload.history.iter().filter(|op| op.outcome == Outcome::Unknown).count(),
            clock_drift_rejected,
            trace_hash: self.trace.hash(),
            events: self.trace.events(),
            ops: self.workload.history.len(),
            faults: self.plan.sorted(),
            timeline: self.timeline,
            locks,
            lock_history: self.locks.history().to_vec(),
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
            Event::Timer { node, key } => self.timers(node, key),
            Event::HeldTimer { .. } => unreachable!("held timers are never queued"),
            Event::Client { node, op } => self.client(node, op),
            Event::Workload { client } => {
                if self.phase != Phase::Safety {
                    return;
                }
                let op = self.workload.issue(client, self.now, self.config.nodes);
                let node = self.workload.history[op].node;
                self.queue.push(self.now, Event::Client { node, op });
                self.queue.push(self.now + self.workload.config.timeout_ms, Event::ClientTimeout { op });
            }
            Event::Burst { ttl_ms } => {
                if self.phase != Phase::Safety {
                    return;
                }
                self.trace.record(self.now, usize::MAX, 12, &ttl_ms.to_le_bytes(), || format!("burst ttl {ttl_ms}"));
                for op in self.workload.burst(self.now, self.config.nodes, ttl_ms) {
                    let node = self.workload.history[op].node;
                    self.queue.push(self.now, Event::Client { node, op });
                    self.queue.push(self.now + self.workload.config.timeout_ms, Event::ClientTimeout { op });
                }
            }
            Event::ClientTimeout { op } => self.finish(op, Outcome::Unknown),
            Event::PeerDeliver { to, generation, from, msg, digest } => {
                self.deliver_peer(to, generation, from, msg, digest)
            }
            Event::PeerLost { node, generation, peer } => self.peer_lost(node, generation, peer),
            Event::LockWake => {
                self.lock_wakes.remove(&self.now);
                self.lock_calls();
            }
            Event::LockCall(call) => self.lock_call(call),
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
        let clock_drift_max_ms = self.clock_drift_max_ms();
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
        let vnodes = if self.config.nodes > 20 { 64 } else { 128 };
        let mut config = NodeConfig {
            name,
            replicas: self.config.replicas,
            vnodes,
            lock_mode: self.config.lock_mode,
            clock_drift_max_ms,
            ..NodeConfig::default()
        };
        if let Some(memory) = self.memory {
            config.maxmemory_bytes = Some(memory.maxmemory_bytes);
            config.eviction = memory.eviction;
        }
        host.evicted_seen = 0;
        let node = Node::clustered(config, self.node_rng.random(), membership, seeds);
        self.facts.node_ids.insert(node.id().0, i);
        let host = &mut self.hosts[i];
        host.node = Some(node);
        let generation = host.generation;
        self.trace.record(self.now, i, 2, &now.to_le_bytes(), || format!("start gen {generation} clock {now}"));
        self.handle(i, Input::Start);
    }

    fn client(&mut self, node: usize, op: usize) {
        if self.hold(node, || Event::Client { node, op }) {
            return;
        }
        let call = &self.workload.history[op];
        if self.workload.clients[call.client as usize].waiting != Some(op) {
            // The client gave up on the call (timeout or reset) before the node read it.
            return;
        }
        let kind = call.kind.clone();
        self.trace.record(self.now, node, 4, &(op as u64).to_le_bytes(), || format!("client call {op}: {kind:?}"));
        if self.hosts[node].node.is_none() {
            self.finish(op, Outcome::Refused);
            return;
        }
        let node_now = self.node_now(node);
        let call = &mut self.workload.history[op];
        call.generation = self.hosts[node].generation;
        call.executed = true;
        call.executed_at = self.now;
        call.node_now = node_now;
        call.node_clock_max = self.hosts[node].clock_max;
        let (conn, levels) = (call.conn, call.levels);
        self.handle(node, Input::Client { conn, req: op as u64, cmd: kind.command(), levels });
    }

    /// Ends call `op` (if its client still waits for it) and lets the client think about its next call.
    fn finish(&mut self, op: usize, outcome: Outcome) {
        if let Some(client) = self.workload.finish(op, self.now, outcome).filter(|&c| !self.workload.is_burst_client(c))
        {
            let at = self.now + self.workload.think_ms();
            self.queue.push(at, Event::Workload { client });
        }
    }

    /// Runs the history checkers: the single-node model when there is one node (every key lives there alone),
    /// the write checkers against the final state when the replicas converged, read-your-writes always.
    fn check_history(&mut self) {
        let ops = &self.workload.history;
        let mut found = Vec::new();
        if self.config.nodes == 1 {
            let mut executed: Vec<_> = ops.iter().filter(|op| op.executed).cloned().collect();
            executed.sort_by_key(|op| op.executed_at);
            found.extend(check::history_with(&executed, self.memory.is_some()));
        }
        if let Some(finals) = &self.finals {
            found.extend(check::writes::lost_writes(ops, finals, &self.facts));
            found.extend(check::rmw::rmw(ops, finals, &self.facts));
        }
        found.extend(check::writes::read_your_writes(ops, &self.facts));
        self.flag_all(found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_fault_spans_cover_faults_and_their_settling() {
        let mut plan = FaultPlan::calm(5);
        plan.at(10_000, Fault::Partition(crate::net::Cut::Isolate { node: 1 }));
        plan.at(20_000, Fault::HealNet);
        plan.at(25_000, Fault::ClockJump { node: 2, delta_ms: 3_000 });
        plan.at(40_000, Fault::Crash { node: 4, permanent: true });
        plan.at(50_000, Fault::Pause { node: 0 });
        let spans = lock_fault_spans(&plan, 60_000, 1_000);
        assert_eq!(spans, [(10_000, 21_000), (25_000, 26_000), (40_000, 41_000), (50_000, 61_000)]);
        assert_eq!(lock_fault_spans(&FaultPlan::calm(5), 60_000, 1_000), []);
    }
}
