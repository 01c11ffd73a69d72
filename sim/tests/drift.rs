//! The nodes' bound on clock drift in the simulator: by default it lies above every skew and jump the fault plan
//! makes, so nothing is refused; set below the plan's clock spread, nodes refuse the timestamps of the nodes
//! ahead, count them, and the checkers file what follows (writes acknowledged at ONE that stay on the node
//! ahead, replicas that differ) as the allowed `BeyondClockDrift`, while every other check (membership, strict
//! locks, phantom values) still holds.

use shoal::core::locks::LockMode;
use shoal_sim::check::Kind;
use shoal_sim::faults::FaultPlan;
use shoal_sim::trace::Trace;
use shoal_sim::{run, Report, Scenario, SimConfig};

fn config(seed: u64, scenario: Scenario, clock_drift_max_ms: Option<u64>) -> SimConfig {
    let mut config = SimConfig::new(seed, 3, scenario, 10_000).classic();
    config.liveness_bound_ms = 20_000;
    config.clock_drift_max_ms = clock_drift_max_ms;
    // Strict locks: a grant the replicas refuse for its token's lead has no majority, so it is refused too. (In
    // available mode it would be granted degraded, as under a partition, and two clients could hold the lock.)
    config.lock_mode = LockMode::Strict;
    config
}

fn listed(report: &Report) -> String {
    let found: Vec<String> = report.violations.iter().map(|v| v.to_string()).collect();
    format!("{}\n{}", report.replay_command(), found.join("\n"))
}

fn count(report: &Report, kind: Kind) -> usize {
    report.counts.iter().find(|(k, _)| *k == kind).map_or(0, |(_, n)| *n)
}

#[test]
fn the_default_bound_covers_the_fault_models_skews() {
    for seed in 1..=2 {
        let report = run(config(seed, Scenario::Skew, None), Trace::default());
        assert!(report.passed(), "{}", listed(&report));
        assert_eq!(report.clock_drift_rejected, 0, "seed {seed}: nothing refused within the fault model");
    }
}

#[test]
fn a_node_far_beyond_the_bound_is_refused_and_the_checkers_account_for_it() {
    // Node 2 runs 30 s ahead (well inside the tombstone grace, so only the drift bound explains what follows),
    // against a bound of 5 s.
    let mut excused = 0;
    for seed in 1..=4 {
        let mut c = config(seed, Scenario::Calm, Some(5_000));
        let mut plan = FaultPlan::calm(3);
        plan.skew_ms[2] = 30_000;
        c.faults = Some(plan);
        let report = run(c, Trace::default());
        assert!(report.clock_drift_rejected > 0, "seed {seed}: node 2's timestamps are refused and counted");
        assert!(report.passed(), "only allowed anomalies: {}", listed(&report));
        assert_eq!(count(&report, Kind::DivergedBeyondGrace), 0, "the clocks are within the tombstone grace");
        excused += count(&report, Kind::BeyondClockDrift);
    }
    assert!(excused > 0, "node 2's copies, refused by the others, leave findings the bound explains");
}
