//! What a run is asked to do (`SimConfig`, the memory plan) and what it reports (`Report`, the workload mix).

use super::*;

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
    /// Replicas per key (N).
    pub replicas: usize,
    /// What an acquire does without a majority of the lock's replicas.
    pub lock_mode: LockMode,
    /// The lock clients: by default one per node on one lock, starting after the warm-up, pausing as the
    /// scenario says (`Scenario::lock_pause_percent`).
    pub locks: LockConfig,
    /// A fault plan to run instead of the scenario's (tests that build their own faults).
    pub faults: Option<FaultPlan>,
    /// The nodes' bound on a peer timestamp's lead (`NodeConfig::clock_drift_max_ms`). `None`: above the plan's
    /// clock spread (the spread plus the default bound), so that the skews and jumps of the fault model stay
    /// within it and nothing is refused; a lower bound makes nodes refuse each other (a test of the bound).
    pub clock_drift_max_ms: Option<Ms>,
    /// The clients' calls: the full mix (default) or the classic one the recorded regression seeds replay.
    pub workload: Mix,
    /// Every node's memory limit and eviction policy.
    pub memory: MemoryPlan,
}

/// Where the nodes' memory limit comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryPlan {
    /// None under the classic mix; under the full mix one drawn from the seed (`draw_memory`), below the working
    /// set of the big keys so the nodes evict.
    #[default]
    Default,
    /// No limit.
    Off,
    /// This limit.
    Limit(Memory),
}

/// A node's `maxmemory` and what it evicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub maxmemory_bytes: usize,
    pub eviction: EvictionPolicy,
}

/// The full mix's memory limit: 3.5 to 5 MiB (every large value fits alone; the big keys' working set, about
/// 8 MB over 5 nodes holding 3 copies each, does not), evicting by `allkeys-lru` or `allkeys-random`.
///
/// `noeviction` and `volatile-lru` (`--maxmemory-policy`) are not drawn: under them a replica refuses a newer copy
/// it has no room for (`PutRefused`, counted) and keeps the older one for good, so the owners never converge and
/// the convergence checker reports `ReplicasDiverged`, by design of those policies rather than by a bug.
pub fn draw_memory(rng: &mut StdRng) -> Memory {
    let maxmemory_bytes = rng.random_range(3_584 * 1024..5_120 * 1024);
    let eviction = if rng.random_range(0..2) == 0 { EvictionPolicy::AllKeysLru } else { EvictionPolicy::AllKeysRandom };
    Memory { maxmemory_bytes, eviction }
}

impl SimConfig {
    /// `nodes` nodes under `scenario` for a safety phase of `safety_ms`, with the default lock clients.
    pub fn new(seed: u64, nodes: usize, scenario: Scenario, safety_ms: Ms) -> SimConfig {
        let locks = LockConfig {
            clients: nodes,
            start_ms: crate::scenario::warm_up_ms(safety_ms),
            pause_percent: scenario.lock_pause_percent(),
            ..LockConfig::default()
        };
        SimConfig {
            seed,
            nodes,
            scenario,
            safety_ms,
            liveness_bound_ms: 60_000,
            timeline: false,
            replicas: 3,
            lock_mode: LockMode::Available,
            locks,
            faults: None,
            clock_drift_max_ms: None,
            workload: Mix::Full,
            memory: MemoryPlan::Default,
        }
    }

    /// The same run with the classic workload, as the recorded regression seeds were found.
    pub fn classic(mut self) -> SimConfig {
        self.workload = Mix::Classic;
        self
    }
}

/// What a run found.
#[derive(Debug)]
pub struct Report {
    pub config: SimConfig,
    pub violations: Vec<Violation>,
    /// A few anomalies the design allows (`Kind::is_anomaly`), with their details.
    pub anomalies: Vec<Violation>,
    /// Violations by kind, counted (the list above keeps a few of each).
    pub counts: Vec<(Kind, usize)>,
    /// How long after the heal the cluster converged.
    pub converged_after_ms: Option<Ms>,
    pub virtual_ms: Ms,
    pub datagrams: u64,
    /// Peer (data) messages sent, and their encoded bytes.
    pub peer_messages: u64,
    pub peer_bytes: u64,
    /// Peer connection failures reported to senders (`Input::PeerLost`).
    pub peer_lost: u64,
    /// Calls whose outcome the client never learned.
    pub unknown_ops: usize,
    /// Peer timestamps the nodes running at the end refused for being too far ahead of their clocks.
    pub clock_drift_rejected: u64,
    pub trace_hash: u64,
    pub events: u64,
    pub ops: usize,
    pub faults: Vec<(Ms, Fault)>,
    pub timeline: Option<Timeline>,
    /// What the lock clients got and what the lock checkers found.
    pub locks: LockSummary,
    /// Everything the lock clients did.
    pub lock_history: Vec<LockEvent>,
    /// The nodes' memory limit, if any.
    pub memory: Option<Memory>,
    /// Keys the nodes evicted, over every incarnation.
    pub evictions: u64,
    /// Copies from peers refused for lack of memory, summed over the nodes running at the end.
    pub puts_refused: u64,
    /// What the full mix's calls were.
    pub mix: MixCounts,
}

/// How many calls of each full-mix kind a run made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MixCounts {
    /// SETs of large values.
    pub big_sets: usize,
    /// INCRBY calls.
    pub incrs: usize,
    /// APPEND calls.
    pub appends: usize,
    /// SETs of mass-expiry bursts.
    pub burst_sets: usize,
}

impl MixCounts {
    /// Counts the calls of `history` (`burst`: whether a client is a burst client).
    pub fn of(history: &[crate::workload::Op], burst: impl Fn(u32) -> bool) -> MixCounts {
        use crate::workload::OpKind;
        let mut c = MixCounts::default();
        for op in history {
            match op.kind {
                OpKind::Set { size, .. } if size > 0 => c.big_sets += 1,
                OpKind::Set { .. } if burst(op.client) => c.burst_sets += 1,
                OpKind::Incr { .. } => c.incrs += 1,
                OpKind::Append { .. } => c.appends += 1,
                _ => {}
            }
        }
        c
    }
}
