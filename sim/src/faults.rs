//! Node and network faults, and the per-seed fault plan that schedules them.
//!
//! A plan is drawn before the run starts, from its own RNG stream, so the faults of a seed do not depend on what
//! the nodes do. Every fault is undone by the heal at the end of the safety phase, except a crash marked
//! `permanent`, which checks that the cluster also converges on a smaller live set.

use crate::event::Ms;
use crate::net::{Cut, NetConfig};

/// One fault, applied at the instant its event fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The process dies: its memory (store, membership) is gone, its pending timers never fire.
    Crash { node: usize, permanent: bool },
    /// A crashed process starts again, under a new incarnation.
    Restart { node: usize },
    /// The process stops (SIGSTOP, a long GC): its timers and incoming datagrams wait.
    Pause { node: usize },
    /// A paused process continues; everything that waited is delivered now.
    Resume { node: usize },
    /// Links are cut.
    Partition(Cut),
    /// Every cut link is restored.
    HealNet,
    /// The node's wall clock jumps by `delta_ms` (NTP step, VM migration).
    ClockJump { node: usize, delta_ms: i64 },
}

impl Fault {
    /// A short label for traces and the timeline.
    pub fn label(&self) -> String {
        match self {
            Fault::Crash { node, permanent: false } => format!("crash n{node}"),
            Fault::Crash { node, permanent: true } => format!("crash n{node} (for good)"),
            Fault::Restart { node } => format!("restart n{node}"),
            Fault::Pause { node } => format!("pause n{node}"),
            Fault::Resume { node } => format!("resume n{node}"),
            Fault::Partition(Cut::Split { side }) => format!("split {}", names(side)),
            Fault::Partition(Cut::OneWay { from }) => format!("one-way from {}", names(from)),
            Fault::Partition(Cut::Bridge { a, b, bridge }) => {
                format!("bridge n{bridge} between {} and {}", names(a), names(b))
            }
            Fault::Partition(Cut::Isolate { node }) => format!("isolate n{node}"),
            Fault::HealNet => "heal net".to_string(),
            Fault::ClockJump { node, delta_ms } => format!("clock n{node} {delta_ms:+}ms"),
        }
    }

    /// The node this fault concerns, if it concerns one.
    pub fn node(&self) -> Option<usize> {
        match self {
            Fault::Crash { node, .. }
            | Fault::Restart { node }
            | Fault::Pause { node }
            | Fault::Resume { node }
            | Fault::ClockJump { node, .. } => Some(*node),
            _ => None,
        }
    }
}

fn names(nodes: &[usize]) -> String {
    let list: Vec<String> = nodes.iter().map(|i| format!("n{i}")).collect();
    format!("{{{}}}", list.join(","))
}

/// Everything a seed does to the cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    /// The network's behaviour during the safety phase.
    pub net: NetConfig,
    /// Each node's constant clock offset from virtual time.
    pub skew_ms: Vec<i64>,
    /// Faults, by virtual time; the engine sorts them stably.
    pub events: Vec<(Ms, Fault)>,
}

impl FaultPlan {
    /// A calm plan for `n` nodes: no faults, no skew.
    pub fn calm(n: usize) -> FaultPlan {
        FaultPlan { net: NetConfig::default(), skew_ms: vec![0; n], events: Vec::new() }
    }

    /// Adds a fault at `at`.
    pub fn at(&mut self, at: Ms, fault: Fault) {
        self.events.push((at, fault));
    }

    /// Merges another plan's events (keeping this plan's network and skew).
    pub fn merge_events(&mut self, other: FaultPlan) {
        self.events.extend(other.events);
    }

    /// The events sorted by time, ties in insertion order.
    pub fn sorted(&self) -> Vec<(Ms, Fault)> {
        let mut events = self.events.clone();
        events.sort_by_key(|(at, _)| *at);
        events
    }
}
