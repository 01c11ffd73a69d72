//! Lock scenarios end to end through the simulator engine: real `shoal::core::Node`s under the engine's network
//! and faults, with the lock clients of `shoal_sim::locks` beside the data clients, and every checker (data and
//! lock) judging the run. No faults, a partition (2|1 of 3 nodes and 2|3 of 5, in available and strict lock
//! mode), flapping partitions, a holder paused past its lease, client pauses, clock jumps and crashes: each is a
//! fault plan built here, timed from the moment the lock clients start.
//!
//! `cargo test -p shoal-sim --test locks -- --nocapture` prints one summary line per run;
//! `cargo test -p shoal-sim --release --test locks lock_table -- --ignored --nocapture` prints the markdown table
//! of `docs/locks.md`.

use shoal::core::locks::LockMode;
use shoal_sim::event::Ms;
use shoal_sim::faults::{Fault, FaultPlan};
use shoal_sim::locks::{markdown_table, summarize, Answer, Call, LockEvent, LockKind, LockSummary};
use shoal_sim::net::Cut;
use shoal_sim::trace::Trace;
use shoal_sim::{run, Report, Scenario, SimConfig};

/// One lock scenario: cluster size, lock mode, client pauses, and faults timed from the lock clients' start.
struct Case {
    name: &'static str,
    nodes: usize,
    mode: LockMode,
    /// How long the lock clients run before the heal.
    duration_ms: Ms,
    faults: Vec<(Ms, Fault)>,
    /// (time, client, how long past its lease): a pause of that client's next write from then on.
    pause: Option<(Ms, usize, Ms)>,
    pause_percent: u32,
}

impl Case {
    fn new(name: &'static str, nodes: usize) -> Case {
        Case {
            name,
            nodes,
            mode: LockMode::Available,
            duration_ms: 60_000,
            faults: Vec::new(),
            pause: None,
            pause_percent: 0,
        }
    }

    /// The engine's configuration for `seed`: a calm network, this case's faults.
    fn config(&self, seed: u64) -> SimConfig {
        let safety_ms = shoal_sim::scenario::warm_up_ms(60_000) + self.duration_ms;
        let mut config = SimConfig::new(seed, self.nodes, Scenario::Calm, safety_ms).classic();
        config.liveness_bound_ms = 20_000;
        config.lock_mode = self.mode;
        let start = config.locks.start_ms;
        config.locks.pause_percent = self.pause_percent;
        config.locks.pauses = self.pause.iter().map(|&(at, client, past)| (start + at, client, past)).collect();
        let mut plan = FaultPlan::calm(self.nodes);
        for (at, fault) in &self.faults {
            plan.at(start + at, fault.clone());
        }
        config.faults = Some(plan);
        config
    }

    fn run(&self, seed: u64) -> Report {
        let report = run(self.config(seed), Trace::default());
        println!("{} (seed {seed}): {}", self.name, report.locks.line());
        report
    }
}

fn assert_clean(case: &Case, report: &Report) {
    let listed: Vec<String> = report.violations.iter().map(|v| v.to_string()).collect();
    assert!(report.passed(), "{} (seed {}):\n{}", case.name, report.config.seed, listed.join("\n"));
    let s = &report.locks;
    assert!(s.grants > 0 && s.writes_accepted > 0 && s.violations == 0, "{}", s.line());
}

fn calm() -> Case {
    Case::new("no faults (3 nodes)", 3)
}

/// The nodes on one side of a 2|1 (3 nodes) or 2|3 (5 nodes) split: the first two.
fn split(name: &'static str, nodes: usize, mode: LockMode) -> Case {
    let mut case = Case::new(name, nodes);
    case.mode = mode;
    case.faults = vec![(15_000, Fault::Partition(Cut::Split { side: vec![0, 1] })), (35_000, Fault::HealNet)];
    case
}

/// Partitions of 3 s every 8 s, shorter than failure detection takes: n2 alone against n0 and n1.
fn flapping(name: &'static str, mode: LockMode) -> Case {
    let mut case = Case::new(name, 3);
    case.mode = mode;
    for k in 0..5 {
        case.faults.push((15_000 + k * 8_000, Fault::Partition(Cut::Isolate { node: 2 })));
        case.faults.push((18_000 + k * 8_000, Fault::HealNet));
    }
    case
}

fn paused() -> Case {
    let mut case = Case::new("one holder paused past its lease (3 nodes)", 3);
    case.pause = Some((10_000, 0, 1_000));
    case
}

fn cases() -> Vec<Case> {
    let mut pauses = Case::new("a pause in 1 of 4 holds (3 nodes)", 3);
    pauses.pause_percent = 25;
    let mut jumped = Case::new("clocks of 2 of 3 nodes jump 2 s ahead", 3);
    jumped.faults = (1..3).map(|node| (15_000, Fault::ClockJump { node, delta_ms: 2_000 })).collect();
    let mut one_crash = Case::new("1 of 3 nodes crashes, back empty after 5 s", 3);
    one_crash.faults = vec![(15_000, Fault::Crash { node: 2, permanent: false }), (20_000, Fault::Restart { node: 2 })];
    let mut two_crash = Case::new("2 of 3 nodes crash, back empty after 0.5 s", 3);
    for node in [1, 2] {
        two_crash.faults.push((15_000, Fault::Crash { node, permanent: false }));
        two_crash.faults.push((15_500, Fault::Restart { node }));
    }
    vec![
        calm(),
        split("partition 2 vs 1 (3 nodes), available", 3, LockMode::Available),
        split("partition 2 vs 1 (3 nodes), strict", 3, LockMode::Strict),
        split("partition 2 vs 3 (5 nodes), available", 5, LockMode::Available),
        split("partition 2 vs 3 (5 nodes), strict", 5, LockMode::Strict),
        flapping("5 partitions 2 vs 1 of 3 s (3 nodes), available", LockMode::Available),
        flapping("5 partitions 2 vs 1 of 3 s (3 nodes), strict", LockMode::Strict),
        paused(),
        pauses,
        jumped,
        one_crash,
        two_crash,
    ]
}

#[test]
fn without_faults_no_two_clients_hold_a_lock_at_once() {
    for seed in [1, 2] {
        let case = calm();
        let report = case.run(seed);
        assert_clean(&case, &report);
        let s = &report.locks;
        assert_eq!((s.double_holder_intervals, s.stale_writes, s.degraded), (0, 0, 0), "{}", s.line());
    }
}

#[test]
fn under_partitions_in_available_mode_double_holders_are_counted_and_fencing_holds() {
    let case = split("partition 2 vs 1 (3 nodes), available", 3, LockMode::Available);
    let report = case.run(1);
    assert_clean(&case, &report);
    let s = &report.locks;
    assert!(s.degraded > 0 && s.double_holder_intervals > 0, "{}", s.line());
    assert_eq!(s.double_holder_under_fault, s.double_holder_intervals, "every stretch is the partition's");
    // Without pauses every write is made inside a hold: the clients and the checker agree on holding.
    assert_eq!(s.stale_writes, 0, "{}", s.line());
}

/// The exclusivity checker is not blind on real histories: judged as if it had no faults, a partitioned run is
/// flagged, each stretch a violation.
#[test]
fn the_no_fault_checker_flags_the_double_holders_of_a_real_partitioned_run() {
    let report = split("partition 2 vs 3 (5 nodes), available", 5, LockMode::Available).run(1);
    let (summary, violations) = summarize("judged without faults", &report.lock_history, report.virtual_ms, false);
    assert!(summary.double_holder_intervals > 0);
    assert_eq!(violations.len() as u64, summary.double_holder_intervals, "{violations:?}");
    assert!(violations.iter().all(|v| v.kind == LockKind::DoubleHolder));
}

#[test]
fn a_holder_paused_past_its_lease_is_fenced_off() {
    let case = paused();
    let report = case.run(1);
    assert_clean(&case, &report);
    let s = &report.locks;
    assert_eq!(s.double_holder_intervals, 0, "{}", s.line());
    assert!(s.stale_writes >= 1 && s.stale_rejected >= 1, "{}", s.line());
}

/// Regression (found by these checkers): strict mode granted on the minority side once failure detection had
/// shrunk its ring, because a node cut off alone counted itself "a majority of 1". A majority is now of the lock's
/// replicas on the ring of every known member. Client 2 stays on n2 (an error answer does not move it): every
/// acquire n2 answers while cut off is refused, also long after n2 declared the others down.
#[test]
fn strict_mode_refuses_on_a_cut_off_node_after_failure_detection() {
    let case = split("partition 2 vs 1 (3 nodes), strict", 3, LockMode::Strict);
    let report = case.run(1);
    assert_clean(&case, &report);
    let start = report.config.locks.start_ms;
    let (cut, healed) = (start + 15_000, start + 35_000);
    let mut sent = std::collections::BTreeMap::new();
    let mut refused_late = 0;
    for event in &report.lock_history {
        match event {
            LockEvent::Sent { at, req, node: 2, call: Call::Acquire { .. }, .. } if (cut..healed).contains(at) => {
                sent.insert(*req, *at);
            }
            LockEvent::Answered { at, req, answer, .. } if *at < healed => {
                let Some(asked) = sent.remove(req) else { continue };
                match answer {
                    Answer::Error(e) if e.starts_with("NOMAJORITY") => refused_late += u32::from(asked >= cut + 12_000),
                    Answer::Nil | Answer::Error(_) => {}
                    other => panic!("n2 answered {other:?} to an acquire sent at {asked} while cut off"),
                }
            }
            _ => {}
        }
    }
    assert!(refused_late > 0, "n2 refused acquires 12 s after the cut, when failure detection is long done");
}

/// Regression (found by these checkers): in strict mode two clients held the lock at once under a partition (the
/// minority side granted "majority" grants of its shrunken ring). With a majority of N required, a 2 vs 1 split
/// (and a 2 vs 3 one, where a side's live ring reshuffles) without clock faults has no double holder.
#[test]
fn strict_mode_has_no_double_holder_under_a_partition() {
    for nodes in [3, 5] {
        let case = split("partition (strict)", nodes, LockMode::Strict);
        let report = case.run(1);
        assert_clean(&case, &report);
        assert_eq!((report.locks.double_holder_intervals, report.locks.degraded), (0, 0), "{}", report.locks.line());
        assert!(report.locks.failed > 0, "the minority side refused: {}", report.locks.line());
    }
}

/// Seeds summed up in each row of the docs table.
const TABLE_SEEDS: u64 = 10;

/// The table for `docs/locks.md`: every case, over seeds 1..=TABLE_SEEDS.
#[test]
#[ignore = "prints the docs table; run with --release --ignored --nocapture"]
fn lock_table() {
    let rows: Vec<LockSummary> = cases()
        .iter()
        .map(|case| {
            let mut row = LockSummary { scenario: case.name.to_string(), runs: 0, ..LockSummary::default() };
            for seed in 1..=TABLE_SEEDS {
                let report = case.run(seed);
                assert_clean(case, &report);
                row.absorb(&report.locks);
            }
            row
        })
        .collect();
    println!("{}", markdown_table(&rows));
}
