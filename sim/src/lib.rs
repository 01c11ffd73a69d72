//! `shoal-sim`: a deterministic discrete-event simulator that drives Shoal's sans-IO `core::Node`s under faults.
//!
//! One thread, one event queue ordered by (virtual time, sequence), one seed from which every random choice
//! derives; no wall clock, no sockets. A run has a safety phase (faults on, invariants checked as it goes), then a
//! heal and a liveness phase that must converge within a bound; the checkers in `check` judge what the nodes
//! expose and what clients were told. The same seed gives the same trace hash, byte for byte.
#![forbid(unsafe_code)]

pub mod check;
pub mod engine;
pub mod event;
pub mod faults;
pub mod locks;
pub mod net;
pub mod scenario;
pub mod timeline;
pub mod trace;
pub mod workload;

pub use engine::{Engine, Report, SimConfig};
pub use scenario::Scenario;

use std::panic::{catch_unwind, AssertUnwindSafe};

use check::{Kind, Violation};
use trace::Trace;

/// Runs one seed; a panic anywhere in the run is caught and reported as a `Panic` violation.
pub fn run(config: SimConfig, trace: Trace) -> Report {
    let copy = config.clone();
    match catch_unwind(AssertUnwindSafe(|| Engine::new(config, trace).run())) {
        Ok(report) => report,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".to_string());
            Report {
                config: copy,
                violations: vec![Violation { kind: Kind::Panic, at: 0, detail: message }],
                anomalies: Vec::new(),
                counts: vec![(Kind::Panic, 1)],
                converged_after_ms: None,
                virtual_ms: 0,
                datagrams: 0,
                peer_messages: 0,
                peer_bytes: 0,
                peer_lost: 0,
                unknown_ops: 0,
                clock_drift_rejected: 0,
                trace_hash: 0,
                events: 0,
                ops: 0,
                faults: Vec::new(),
                timeline: None,
                locks: locks::LockSummary::default(),
                lock_history: Vec::new(),
                memory: None,
                evictions: 0,
                puts_refused: 0,
                mix: Default::default(),
            }
        }
    }
}

impl Report {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        let c = &self.config;
        let mode = match c.lock_mode {
            shoal::core::locks::LockMode::Available => "",
            shoal::core::locks::LockMode::Strict => " --lock-mode strict",
        };
        let clients =
            if c.locks.clients == c.nodes { String::new() } else { format!(" --lock-clients {}", c.locks.clients) };
        let workload = match c.workload {
            workload::Mix::Full => String::new(),
            workload::Mix::Classic => " --workload classic".to_string(),
        };
        let memory = match c.memory {
            engine::MemoryPlan::Default => String::new(),
            engine::MemoryPlan::Off => " --maxmemory 0".to_string(),
            engine::MemoryPlan::Limit(m) => {
                let policy = match m.eviction {
                    shoal::core::store::EvictionPolicy::AllKeysLru => "allkeys-lru",
                    shoal::core::store::EvictionPolicy::AllKeysRandom => "allkeys-random",
                    shoal::core::store::EvictionPolicy::VolatileLru => "volatile-lru",
                    shoal::core::store::EvictionPolicy::NoEviction => "noeviction",
                };
                format!(" --maxmemory {} --maxmemory-policy {policy}", m.maxmemory_bytes)
            }
        };
        format!(
            "cargo run -p shoal-sim --release -- --seed {} --nodes {} --duration {} --scenario {}{mode}{clients}\
             {workload}{memory}",
            c.seed,
            c.nodes,
            c.safety_ms / 1_000,
            c.scenario
        )
    }
}
