//! Fixed seeds for every named scenario, determinism, and the seeds that found bugs (kept as regressions).
//!
//! Runs are short (5 nodes, 20 virtual seconds of faults) so the suite stays fast in debug builds; the long
//! sweeps are `cargo run -p shoal-sim --release -- --seeds N`. Seeds that found replication bugs are kept in
//! `tests/replication.rs`. Every run has lock clients beside the data clients, except the regression seeds found
//! before they existed, which replay as found (`as_found`). Every seed here and in the other suites runs the
//! classic workload it was recorded with (`SimConfig::classic`); the full workload has its own test below.

use shoal_sim::trace::Trace;
use shoal_sim::{run, Report, Scenario, SimConfig};

fn config(seed: u64, scenario: Scenario, safety_s: u64) -> SimConfig {
    let mut config = SimConfig::new(seed, 5, scenario, safety_s * 1_000).classic();
    // Short runs converge well within 20 s of the heal; a run that does not is failing anyway.
    config.liveness_bound_ms = config.liveness_bound_ms.min(20_000);
    config
}

fn sim(seed: u64, scenario: Scenario, safety_s: u64) -> Report {
    run(config(seed, scenario, safety_s), Trace::default())
}

/// A regression seed as it was found, before lock clients joined the engine: without them (they change every
/// interleaving), the run is byte for byte the one that found the bug (`--lock-clients 0`).
fn as_found(seed: u64, scenario: Scenario, safety_s: u64) -> Report {
    let mut config = config(seed, scenario, safety_s);
    config.locks.clients = 0;
    run(config, Trace::default())
}

/// For the membership regressions: no membership violation (their data checks are covered by the sweep and the
/// replication regressions).
fn assert_membership_passes(report: &Report) {
    let listed: Vec<String> =
        report.violations.iter().filter(|v| v.kind.is_membership()).map(|v| v.to_string()).collect();
    assert!(listed.is_empty(), "{}\n{}", report.replay_command(), listed.join("\n"));
}

fn assert_passes(report: &Report) {
    let listed: Vec<String> = report.violations.iter().map(|v| v.to_string()).collect();
    assert!(report.passed(), "{}\n{}", report.replay_command(), listed.join("\n"));
    assert!(report.ops > 0, "the workload ran");
}

#[test]
fn a_seed_replays_byte_for_byte() {
    for seed in [1, 2, 3] {
        let first = sim(seed, Scenario::Random, 20);
        let second = sim(seed, Scenario::Random, 20);
        assert_eq!(first.trace_hash, second.trace_hash, "seed {seed}");
        assert_eq!((first.events, first.ops), (second.events, second.ops), "seed {seed}");
        assert!(first.locks.calls > 0, "seed {seed}: the lock clients ran");
        assert_eq!(first.lock_history, second.lock_history, "seed {seed}");
    }
    assert_ne!(sim(1, Scenario::Random, 20).trace_hash, sim(2, Scenario::Random, 20).trace_hash);
}

macro_rules! scenario_seeds {
    ($($name:ident: $scenario:expr, [$($seed:expr),*];)*) => {$(
        #[test]
        fn $name() {
            for seed in [$($seed),*] {
                assert_passes(&sim(seed, $scenario, 20));
            }
        }
    )*};
}

scenario_seeds! {
    calm: Scenario::Calm, [1];
    partition_heal: Scenario::PartitionHeal, [1, 7, 9];
    crash_restart: Scenario::CrashRestart, [1, 2, 3];
    one_way: Scenario::OneWay, [1, 7];
    bridge: Scenario::Bridge, [4, 8, 10];
    flapping: Scenario::Flapping, [3, 6, 7];
    skew: Scenario::Skew, [1, 2, 3];
    pause: Scenario::Pause, [1, 3, 6];
    random: Scenario::Random, [2, 4, 11];
    split_2_3: Scenario::SplitTwoThree, [10];
    crash_empty: Scenario::CrashEmpty, [1, 2];
    replica_down: Scenario::ReplicaDown, [3];
    swizzle: Scenario::Swizzle, [1, 2];
}

/// Found by the first sweep: n0's clock steps back 43 minutes, n0 then crashes and restarts with its wall clock
/// as incarnation, lower than the one the cluster holds as `down`; it lost every address conflict and was
/// refused for good. Fixed in membership: a peer tells an outranked sender which identity holds its address,
/// and the node renews just above it.
#[test]
fn regression_seed_39_restart_after_clock_step_back() {
    assert_membership_passes(&as_found(39, Scenario::Random, 60));
}

/// The same bug as seed 39, found by the same sweep (a restart after a backward clock step, refused).
#[test]
fn regression_seeds_56_156_restart_after_clock_step_back() {
    for seed in [56, 156] {
        assert_membership_passes(&as_found(seed, Scenario::Random, 60));
    }
}

/// Found by the first sweep: after one split of n4 heals, n4 kept n0 `suspect` for the whole 30 s bound on a
/// lossless network. n4 had renewed its identity meanwhile, which voids foca's pending suspicion timers; fixed
/// by membership's suspicion sweep (nudge the suspect so it refutes, expire a suspicion no timer will end).
#[test]
fn regression_seed_148_suspect_never_resolves() {
    assert_membership_passes(&as_found(148, Scenario::Random, 60));
}

/// The same bug as seed 148 (a suspicion that no timer ends), found by the same sweep under flapping partitions.
#[test]
fn regression_seeds_stuck_suspects_under_flapping_partitions() {
    for seed in [6, 17, 63, 76, 81, 128, 193] {
        assert_membership_passes(&as_found(seed, Scenario::Random, 60));
    }
}

/// The full workload (large values, INCRBY counters, APPEND logs, mass-expiry bursts, nodes under a `maxmemory`
/// the big keys exceed) over a few seeds of the scenarios that stress it most: it replays byte for byte, it
/// evicts, it makes every kind of call, and every checker (the read-modify-write ones included) passes.
#[test]
fn the_full_workload_evicts_and_passes() {
    let full = |seed, scenario| {
        let mut config = SimConfig::new(seed, 5, scenario, 20_000);
        config.liveness_bound_ms = 20_000;
        run(config, Trace::default())
    };
    let (mut evicted, mut mix) = (0, shoal_sim::engine::MixCounts::default());
    for (seed, scenario) in [(1, Scenario::Random), (2, Scenario::CrashRestart), (3, Scenario::PartitionHeal)] {
        let report = full(seed, scenario);
        assert_passes(&report);
        assert!(report.memory.is_some(), "the full workload runs under maxmemory");
        evicted += report.evictions;
        mix.big_sets += report.mix.big_sets;
        mix.incrs += report.mix.incrs;
        mix.appends += report.mix.appends;
        mix.burst_sets += report.mix.burst_sets;
    }
    assert!(evicted > 0, "the working set exceeds maxmemory");
    assert!(mix.big_sets > 0 && mix.incrs > 0 && mix.appends > 0 && mix.burst_sets > 0, "{mix:?}");
    let (a, b) = (full(4, Scenario::Random), full(4, Scenario::Random));
    assert_eq!((a.trace_hash, a.events, a.ops), (b.trace_hash, b.events, b.ops));
}
