//! Named scenarios: each turns (seed RNG, node count, safety-phase length) into a fault plan.
//!
//! `Random` is what a sweep uses: it draws its own network (loss, duplication, reordering, delays), a mix of
//! one to four of the membership fault patterns, and, four times in five, one of the replication patterns
//! (split-2-3, crash-empty, replica-down, swizzle) on top. Faults start after a warm-up (so the cluster has formed) and stay
//! inside the safety phase. Permanent crashes never hit a seed node (the first `SEED_NODES` nodes): a cluster
//! whose every seed is gone for good cannot take a restarted node back, by configuration, not by a bug.

use std::fmt;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::RngExt;

use crate::event::Ms;
use crate::faults::{Fault, FaultPlan};
use crate::net::{Cut, NetConfig};

/// How many of the first nodes every node uses as seeds.
pub const SEED_NODES: usize = 3;

/// The named scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Random,
    Calm,
    PartitionHeal,
    CrashRestart,
    OneWay,
    Bridge,
    Flapping,
    Skew,
    Pause,
    SplitTwoThree,
    CrashEmpty,
    ReplicaDown,
    Swizzle,
}

impl Scenario {
    pub const ALL: [Scenario; 13] = [
        Scenario::Random,
        Scenario::Calm,
        Scenario::PartitionHeal,
        Scenario::CrashRestart,
        Scenario::OneWay,
        Scenario::Bridge,
        Scenario::Flapping,
        Scenario::Skew,
        Scenario::Pause,
        Scenario::SplitTwoThree,
        Scenario::CrashEmpty,
        Scenario::ReplicaDown,
        Scenario::Swizzle,
    ];

    /// The patterns `Random` drew before the replication scenarios existed, in their original order: random
    /// keeps drawing these first, the same way, so the plans of older seeds (and their regression tests) keep
    /// their faults; a replication pattern may come on top.
    const MEMBERSHIP_PATTERNS: [Scenario; 8] = [
        Scenario::Calm,
        Scenario::PartitionHeal,
        Scenario::CrashRestart,
        Scenario::OneWay,
        Scenario::Bridge,
        Scenario::Flapping,
        Scenario::Skew,
        Scenario::Pause,
    ];

    /// The patterns added with replication.
    const REPLICATION_PATTERNS: [Scenario; 4] =
        [Scenario::SplitTwoThree, Scenario::CrashEmpty, Scenario::ReplicaDown, Scenario::Swizzle];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Random => "random",
            Scenario::Calm => "calm",
            Scenario::PartitionHeal => "partition-heal",
            Scenario::CrashRestart => "crash-restart",
            Scenario::OneWay => "one-way",
            Scenario::Bridge => "bridge",
            Scenario::Flapping => "flapping",
            Scenario::Skew => "skew",
            Scenario::Pause => "pause",
            Scenario::SplitTwoThree => "split-2-3",
            Scenario::CrashEmpty => "crash-empty",
            Scenario::ReplicaDown => "replica-down",
            Scenario::Swizzle => "swizzle",
        }
    }

    /// How often (percent of grants) a lock client stalls past its lease before a write, as a GC pause does: in
    /// the scenarios that pause processes.
    pub fn lock_pause_percent(self) -> u32 {
        match self {
            Scenario::Pause => 20,
            Scenario::Random => 5,
            _ => 0,
        }
    }

    /// The fault plan of this scenario for `n` nodes and a safety phase of `safety_ms`.
    pub fn plan(self, rng: &mut StdRng, n: usize, safety_ms: Ms) -> FaultPlan {
        let mut plan = FaultPlan::calm(n);
        let w = Window::new(safety_ms);
        match self {
            Scenario::Calm => {}
            Scenario::PartitionHeal => partition_heal(rng, n, w, &mut plan),
            Scenario::CrashRestart => crash_restart(rng, n, w, &mut plan),
            Scenario::OneWay => one_way(rng, n, w, &mut plan),
            Scenario::Bridge => bridge(rng, n, w, &mut plan),
            Scenario::Flapping => flapping(rng, n, w, &mut plan),
            Scenario::Skew => skew(rng, n, w, &mut plan),
            Scenario::Pause => pause(rng, n, w, &mut plan),
            Scenario::SplitTwoThree => split_two_three(rng, n, w, &mut plan),
            Scenario::CrashEmpty => crash_empty(rng, n, w, &mut plan),
            Scenario::ReplicaDown => replica_down(rng, n, w, &mut plan),
            Scenario::Swizzle => swizzle(rng, n, w, &mut plan),
            Scenario::Random => random(rng, n, w, &mut plan),
        }
        plan
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL.into_iter().find(|sc| sc.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Scenario::ALL.iter().map(|sc| sc.name()).collect();
            format!("unknown scenario `{s}` (one of: {})", names.join(", "))
        })
    }
}

/// The part of the safety phase where faults may start: after warm-up, leaving time before the heal.
#[derive(Clone, Copy)]
struct Window {
    start: Ms,
    end: Ms,
}

/// How long the cluster forms before faults (and lock clients) start, for a safety phase of `safety_ms`.
pub fn warm_up_ms(safety_ms: Ms) -> Ms {
    (safety_ms / 4).min(5_000)
}

impl Window {
    fn new(safety_ms: Ms) -> Window {
        let start = warm_up_ms(safety_ms);
        Window { start, end: safety_ms.max(start + 1) }
    }

    fn pick(self, rng: &mut StdRng) -> Ms {
        rng.random_range(self.start..self.end)
    }

    /// A start and an end inside the window, at least `min_ms` apart when the window allows it.
    fn span(self, rng: &mut StdRng, min_ms: Ms, max_ms: Ms) -> (Ms, Ms) {
        let from = self.pick(rng);
        let len = rng.random_range(min_ms..=max_ms.max(min_ms));
        (from, (from + len).min(self.end))
    }
}

fn random_side(rng: &mut StdRng, n: usize) -> Vec<usize> {
    let size = rng.random_range(1..=(n / 2).max(1));
    let mut all: Vec<usize> = (0..n).collect();
    let mut side = Vec::with_capacity(size);
    for _ in 0..size {
        side.push(all.swap_remove(rng.random_range(0..all.len())));
    }
    side.sort_unstable();
    side
}

fn partition_heal(rng: &mut StdRng, n: usize, w: Window, plan: &mut FaultPlan) {
    let (from, to) = w.span(rng, 2_000, 20_000);
    plan.at(from, Fault::Partition(Cut::Split { side: random_side(rng, n) }));
    plan.at(to, Fault::HealNet);
}

fn crash_restart(rng: &mut StdRng, n: usize, w: Window, plan: &mut FaultPlan) {
    let crashes = rng.random_range(1..=(n / 3).max(1));
    for _ in 0..crashes {
        let node = rng.random_range(0..n);
        let permanent = node >= SEED_NODES && n > SEED_NODES + 1 && rng.random_range(0..4) == 0;
        let (from, to) = w.span(rng, 300, 15_000);
        plan.at(from, Fault::Crash { node, permanent });
        if !permanent {
            plan.at(to, Fault::Restart { node });
        }
    }
}

fn one_way(rng: &mut StdRng, n: usize, w: Window, plan: &mut FaultPlan) {
    let (from, to) = w.span(rng, 2_000, 20_000);
    plan.at(from, Fault::Partition(Cut::OneWay { from: random_side(rng, n) }));
    plan.at(to, Fault::HealNet);
}

fn bridge(rng: &mut StdRng, n: usize, w: Window, plan: &mut FaultPlan) {
    if n < 3 {
        return partition_heal(rng, n, w, plan);
    }
    let bridge = rng.random_range(0..n);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in (0..n).filter(|&i| i != bridge) {
        if a.is_empty() || (!b.is_empty() && rng.random_range(0..2) == 0) {
            a.push(i)
        } else {
            b.push(i)
        }
    }
    let (from, to) = w.span(rng, 2_000, 20_000);
    plan.at(from, Fault::Partition(Cut::Bridge { a, b, bridge }));
    plan.at(to, Fault::HealNet);
}

fn flapping(rng: &mut StdRng, n: usize, w: Window, plan: &mut FaultPlan) {
    let node = rng.random_range(0..n);
    let mut at = w.pick(rng);
    while at < w.end {
        let cut =
            if rng.random_range(0..2) == 0 { Cut::Isolate { node } } else { Cut::Split { side: random_side(rng, n) } };
        plan.at(at, Fault::Partition(cut));
        at += rng.random_range(200..3_000);
        plan.at(at.min(w.end), Fault::HealNet);
        at += rng.random_range(200..3_000);
    }
}

fn skew(rng: &mut StdRng, n: usize, w: Window, plan: &mut FaultPlan) {
    for skew in plan.skew_ms.iter_mut() {
        *skew = rng.random_range(-300_000..=300_000);
    }
    for _ in 0..rng.random_range(1..=n.max(1)) {
        let node = rng.random_range(0..n);
        let delta_ms = rng.random_range(-3_600_000..=3_600_000);
        plan.at(w.pick(rng), Fault::ClockJump { node, delta_ms });
    }
}

fn pause(rng: &mut StdRng, n: usize, w: Window, plan: &mut FaultPlan) {
    for _ in 0..rng.random_range(1..=(n / 3).max(1)) {
        let node = rng.random_range(0..n);
        let (from, to) = w.span(rng, 100, 12_000);
        plan.at(from, Fault::Pause { node });
        plan.at(to, Fault::Resume { node });
    }
}

/// Two fifths of the nodes (at least one) against the rest, for 5 to 25 s; clients write on both sides.
fn split_two_three(rng: &mut StdRng, n: usize, w: Window, plan: &mut FaultPlan) {
    let mut all: Vec<usize> = (0..n).collect();
    let mut side = Vec::new();
    for _ in 0..(2 * n / 5).max(1) {
        side.push(all.swap_remove(rng.random_range(0..all.len())));
    }
    side.sort_unstable();
    let (from, to) = w.span(rng, 5_000, 25_000);
    plan.at(from, Fault::Partition(Cut::Split { side }));
    plan.at(to, Fault::HealNet);
}

/// Rolling crashes: one to three nodes in turn crash (losing their memory) and restart empty 1 to 8 s later,
/// 3 to 12 s apart, so anti-entropy and hints must refill each before the next one goes.
fn crash_empty(rng: &mut StdRng, n: usize, w: Window, plan: &mut FaultPlan) {
    let mut at = w.pick(rng);
    for _ in 0..rng.random_range(1..=3) {
        if at >= w.end {
            break;
        }
        let node = rng.random_range(0..n);
        let back = (at + rng.random_range(1_000..=8_000)).min(w.end);
        plan.at(at, Fault::Crash { node, permanent: false });
        plan.at(back, Fault::Restart { node });
        at = back + rng.random_range(3_000..=12_000);
    }
}

/// One replica is down for a minute (or until the heal): crashed (back empty), cut off (back with its data), or
/// paused (messages wait for it). Coordinators hint the writes meant for it.
fn replica_down(rng: &mut StdRng, n: usize, w: Window, plan: &mut FaultPlan) {
    let node = rng.random_range(0..n);
    let from = w.start;
    let to = (from + 60_000).min(w.end);
    match rng.random_range(0..3) {
        0 => {
            plan.at(from, Fault::Crash { node, permanent: false });
            plan.at(to, Fault::Restart { node });
        }
        1 => {
            plan.at(from, Fault::Partition(Cut::Isolate { node }));
            plan.at(to, Fault::HealNet);
        }
        _ => {
            plan.at(from, Fault::Pause { node });
            plan.at(to, Fault::Resume { node });
        }
    }
}

/// Repeated random partitions: every 1 to 6 s the cut changes shape (split, one-way, bridge, isolation).
fn swizzle(rng: &mut StdRng, n: usize, w: Window, plan: &mut FaultPlan) {
    let mut at = w.pick(rng);
    while at < w.end {
        let cut = match rng.random_range(0..4) {
            0 => Cut::Split { side: random_side(rng, n) },
            1 => Cut::OneWay { from: random_side(rng, n) },
            2 if n >= 3 => {
                let bridge = rng.random_range(0..n);
                let others: Vec<usize> = (0..n).filter(|&i| i != bridge).collect();
                let (a, b) = others.split_at(others.len() / 2);
                Cut::Bridge { a: a.to_vec(), b: b.to_vec(), bridge }
            }
            _ => Cut::Isolate { node: rng.random_range(0..n) },
        };
        plan.at(at, Fault::HealNet);
        plan.at(at, Fault::Partition(cut));
        at += rng.random_range(1_000..=6_000);
    }
    plan.at(w.end, Fault::HealNet);
}

fn random_net(rng: &mut StdRng) -> NetConfig {
    let link_delay_ms_min = rng.random_range(0..=5);
    NetConfig {
        link_delay_ms_min,
        link_delay_ms_max: link_delay_ms_min + rng.random_range(0..=20),
        jitter_ms: rng.random_range(0..=10),
        loss_ppm: [0, 1_000, 10_000, 50_000][rng.random_range(0..4)],
        duplicate_ppm: [0, 1_000, 20_000][rng.random_range(0..3)],
        reorder_ppm: [0, 10_000, 100_000][rng.random_range(0..3)],
        reorder_delay_ms_max: rng.random_range(1..=100),
    }
}

fn random(rng: &mut StdRng, n: usize, w: Window, plan: &mut FaultPlan) {
    plan.net = random_net(rng);
    let patterns = &Scenario::MEMBERSHIP_PATTERNS;
    for _ in 0..rng.random_range(1..=4) {
        let pattern = patterns[rng.random_range(0..patterns.len())];
        let mut sub = FaultPlan::calm(n);
        match pattern {
            Scenario::Skew => {
                skew(rng, n, w, &mut sub);
                plan.skew_ms = sub.skew_ms.clone();
            }
            other => sub = other.plan(rng, n, w.end),
        }
        plan.merge_events(sub);
    }
    let extra = rng.random_range(0..=Scenario::REPLICATION_PATTERNS.len());
    if let Some(&pattern) = Scenario::REPLICATION_PATTERNS.get(extra) {
        plan.merge_events(pattern.plan(rng, n, w.end));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn names_round_trip_and_plans_stay_in_the_safety_phase() {
        for scenario in Scenario::ALL {
            assert_eq!(scenario.name().parse::<Scenario>(), Ok(scenario));
            for seed in 0..20 {
                let plan = scenario.plan(&mut StdRng::seed_from_u64(seed), 5, 30_000);
                if matches!(scenario, Scenario::Calm | Scenario::Random) || plan.net.loss_ppm > 0 {
                    assert!(scenario != Scenario::Calm || plan.events.is_empty());
                } else if scenario != Scenario::Skew {
                    assert!(!plan.events.is_empty(), "{scenario} seed {seed} plans faults");
                }
                assert!(plan.events.iter().all(|(at, _)| *at <= 30_000), "{scenario} seed {seed}");
                assert_eq!(plan.skew_ms.len(), 5);
            }
        }
        assert!("nope".parse::<Scenario>().is_err());
    }
}
