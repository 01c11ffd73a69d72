//! The simulator's data plumbing end to end: peer messages flow, replies come back asynchronously, every call
//! of a calm run is answered, crashed peers are reported to senders, and the data checkers run.

use shoal_sim::trace::Trace;
use shoal_sim::{run, Scenario, SimConfig};

fn config(seed: u64, nodes: usize, scenario: Scenario, safety_s: u64) -> SimConfig {
    let mut config = SimConfig::new(seed, nodes, scenario, safety_s * 1_000).classic();
    config.liveness_bound_ms = 20_000;
    config
}

#[test]
fn a_calm_cluster_replicates_answers_every_call_and_converges() {
    let report = run(config(1, 3, Scenario::Calm, 5), Trace::default());
    let listed: Vec<String> = report.violations.iter().map(|v| v.to_string()).collect();
    assert!(report.passed(), "{}\n{}", report.replay_command(), listed.join("\n"));
    assert!(report.peer_messages > 0 && report.peer_bytes > report.peer_messages, "peer traffic flows");
    assert!(report.ops > 50, "the clients ran: {}", report.ops);
    assert_eq!(report.unknown_ops, 0, "every call of a calm run is answered");
    assert!(report.converged_after_ms.is_some());
}

#[test]
fn senders_learn_that_a_crashed_peer_is_gone() {
    let report = run(config(3, 5, Scenario::ReplicaDown, 10), Trace::default());
    let crashed = report.faults.iter().any(|(_, f)| matches!(f, shoal_sim::faults::Fault::Crash { .. }));
    assert!(crashed, "seed 3 of replica-down crashes a replica");
    assert!(report.peer_lost > 0, "a message to the crashed replica is answered by a reset");
}

fn assert_passes(report: &shoal_sim::Report) {
    let listed: Vec<String> = report.violations.iter().map(|v| v.to_string()).collect();
    assert!(report.passed(), "{}\n{}", report.replay_command(), listed.join("\n"));
}

/// A regression seed's full run as it was found, before lock clients joined the engine (they change every
/// interleaving): without them it replays byte for byte (`--lock-clients 0`).
fn full(seed: u64, scenario: Scenario) -> shoal_sim::Report {
    let mut config = SimConfig::new(seed, 5, scenario, 60_000).classic();
    config.locks.clients = 0;
    run(config, Trace::default())
}

/// Expiry leaves no trace: once the last write's TTL passes, replicas drop the value, and an older copy held
/// by a former owner (a node that stored k23=11 in the first milliseconds, before the ring formed) is handed off
/// to the owners and wins; clients read a value older than their own acknowledged DEL or SET. No fault at all.
/// Replay: cargo run -p shoal-sim --release -- --seed 5 --scenario calm --lock-clients 0 --trace /tmp/t.txt
#[test]
fn regression_calm_seed_5_older_copy_back_after_expiry() {
    assert_passes(&full(5, Scenario::Calm));
}

/// Same cause as above, under a 2-node split and a pause: k5 ends at value 450 from t=21.5 s, brought back by n4
/// (an owner during the split) after the last write's TTL ran out at 57.7 s; 28 acknowledged later writes lost.
/// Replay: cargo run -p shoal-sim --release -- --seed 29 --scenario random --lock-clients 0
#[test]
fn regression_seed_29_older_copy_back_after_expiry() {
    assert_passes(&full(29, Scenario::Random));
}

/// Replicas that hold the same latest write with different vectors never converge (k5, k10, k20: one replica
/// lacks or holds an older entry the others have), for the whole 60 s bound. (The run also steps clocks by more
/// than the tombstone grace, but these keys are values, not tombstones.)
/// Replay: cargo run -p shoal-sim --release -- --seed 44 --scenario random --lock-clients 0
#[test]
fn regression_seed_44_vectors_never_join() {
    assert_passes(&full(44, Scenario::Random));
}

/// A DEL whose forward is lost answers `Int(0)` after the request timeout instead of an error: call 1761, DEL
/// k5 at ONE via n0 while n0's outgoing links are cut (one-way from n0), is answered `Int(0)` 1 s later, with
/// no tombstone and no hint anywhere, so k5 keeps the value 682 written just before it.
/// Replay: cargo run -p shoal-sim --release -- --seed 127 --scenario random --lock-clients 0 --trace /tmp/t.txt
#[test]
fn regression_seed_127_delete_answered_without_effect() {
    assert_passes(&full(127, Scenario::Random));
}

/// A forward executed twice: n0 is paused from 5 s to 60 s; the Forward of SET k5=112 (6.3 s) waits in its
/// queue while n1 fails over and the client gets its answer at 8.8 s. At resume n0 executes the stale Forward
/// with a fresh HLC time (60 s), so 112 beats every later acknowledged write of k5 (final vector carries
/// n0's entry at 60 s). Forwards need a deadline (or the coordinator's version), so a late one is dropped.
/// Replay: cargo run -p shoal-sim --release -- --seed 1 --scenario random --lock-clients 0 --trace /tmp/t.txt
#[test]
fn regression_seed_1_stale_forward_executed_after_pause() {
    assert_passes(&full(1, Scenario::Random));
}

/// A replica whose clock is 35 minutes ahead sees a newer write with a 4.8 s TTL as expired past its grace,
/// drops it on arrival and keeps the older value, which it then answers to a read at ALL (k19 = 654 after
/// the client's own SET 685). Fix: an expired incoming version still supersedes the older local copy.
/// Replay: cargo run -p shoal-sim --release -- --seed 148 --scenario random --lock-clients 0
#[test]
fn regression_seed_148_expired_newer_version_kept_the_older_one() {
    assert_passes(&full(148, Scenario::Random));
}

/// A DEL coordinated in a minority partition by a node holding nothing for the key answered 0 and wrote no
/// tombstone, so the value the majority side wrote before it stayed (k2 = 1825). Fix: a clustered DEL always
/// writes a tombstone.
/// Replay: cargo run -p shoal-sim --release -- --seed 34 --scenario random --lock-clients 0
#[test]
fn regression_seed_34_delete_of_an_absent_key_wrote_nothing() {
    assert_passes(&full(34, Scenario::Random));
}

/// n2 restarts empty with its clock half an hour behind and, alone before it joins, acknowledges SET k25=1645
/// at ALL; under its old vector id that write looked older than n2's own earlier writes and was dropped on the
/// first merge. Fix: a clustered node writes under an id of its own process life.
/// Replay: cargo run -p shoal-sim --release -- --seed 95 --scenario random --lock-clients 0
#[test]
fn regression_seed_95_restarted_node_reused_its_vector_entry() {
    assert_passes(&full(95, Scenario::Random));
}

/// Found once lock clients joined the engine, in strict lock mode: n3, cut off alone, acknowledges SET k25=576
/// with a 4.2 s TTL at ONE; the value expires into a tombstone only n3 holds, n3 crashes and restarts empty, and
/// the older 573 is the final state. Every copy of 576 died in the crash (allowed by the design); the write
/// checker exempted crash-lost values and DEL tombstones, not the tombstone an expired SET leaves. Fixed in the
/// checker (`crash_lost_tombstone_vectors`).
/// Replay: cargo run -p shoal-sim --release -- --seed 16 --scenario random --lock-mode strict
#[test]
fn regression_strict_seed_16_expired_write_lost_with_its_only_replica() {
    let mut config = SimConfig::new(16, 5, Scenario::Random, 60_000).classic();
    config.lock_mode = shoal::core::locks::LockMode::Strict;
    assert_passes(&run(config, Trace::default()));
}

/// A checker finding, not a product bug, first seen with seed 27: client 6 DELs k16 at QUORUM via n4 (the first
/// owner n3 writes the tombstone to n2 and n4), then reads k16 at QUORUM and gets the value 14 written at 0.36 s.
/// The skew scenario put n2's clock 162 s ahead and n3's 278 s behind, further apart than the 300 s tombstone
/// grace: on n2's clock the tombstone's grace had ended on arrival, so n2 kept nothing and took the old value
/// from a former owner's hand-off. That is the documented clocks-beyond-grace limit, so read-your-writes now
/// counts it as the allowed `DivergedBeyondGrace` when the write was a removal and the clocks were that far
/// apart. Peer frames grew by a sequence number (authenticated links), which moved every delivery time, and seed
/// 27 no longer meets the case; seed 177 does (client 1 DELs k25 at QUORUM via n3, reads it at ALL via n0 and
/// gets an older value, clocks 3552 s apart).
/// Keys moved to Redis Cluster hash slots on the ring (issue 15), which changed every key's owners, and seed
/// 177 no longer meets the read-your-writes case (nor does any of skew seeds 1-300 with this workload); seed 20
/// still meets the same limit, judged by the convergence checker: clocks 3939 s apart, n4 ends holding k5's
/// old value where the owners' tombstone of it was dropped after the grace, counted as `DivergedBeyondGrace`.
/// Replay: cargo run -p shoal-sim --release -- --seed 20 --scenario skew --workload classic --trace /tmp/t.txt
#[test]
fn regression_skew_tombstone_dropped_by_a_clock_beyond_grace() {
    let report = run(SimConfig::new(20, 5, Scenario::Skew, 60_000).classic(), Trace::default());
    assert_passes(&report);
    let beyond = report.counts.iter().find(|(k, _)| *k == shoal_sim::check::Kind::DivergedBeyondGrace);
    assert!(beyond.is_some_and(|(_, n)| *n > 0), "counted as the allowed anomaly: {:?}", report.counts);
}

fn count(report: &shoal_sim::Report, kind: shoal_sim::check::Kind) -> usize {
    report.counts.iter().find(|(k, _)| *k == kind).map_or(0, |(_, n)| *n)
}

/// A checker finding of the first 1,000-seed sweep of the full workload, not a product bug: during a split of
/// {n0, n4}, an INCRBY at ONE via n4 on its stale copy of counter k45 answered 10, while the majority side had
/// deleted the counter; after the heal the DEL's tombstone won last-writer-wins and the counter ends absent. The
/// fork was a value against a tombstone, and the counter checker looked for concurrent values only; it now counts
/// tombstones of counters and logs as versions, and the run is the allowed `RmwLwwConcurrent`.
/// Replay: cargo run -p shoal-sim --release -- --seed 720 --scenario random
#[test]
fn regression_full_seed_720_delete_concurrent_with_an_increment_is_an_allowed_fork() {
    let report = run(SimConfig::new(720, 5, Scenario::Random, 60_000), Trace::default());
    assert_passes(&report);
    assert!(count(&report, shoal_sim::check::Kind::RmwLwwConcurrent) > 0, "{:?}", report.counts);
}

/// A checker finding of the same sweep: clocks jump an hour apart (n3 +59 min, n2 -39 min, beyond the 300 s
/// grace). n2 evicts k36 = 1365 (acknowledged at ONE) and spreads the eviction marker, whose grace its clock far
/// behind has already ended on the owners' clocks; they drop it on arrival, and n3's older copy 1055 comes back.
/// That is the documented clocks-beyond-grace limit (as for tombstones), counted as `DivergedBeyondGrace`. The
/// fix of seed 745 (a stall voids a pending re-read) changed this run, which no longer meets the case; the rule
/// is also held by the planted tests of `check::rmw` and `check::writes`.
/// Replay: cargo run -p shoal-sim --release -- --seed 763 --scenario random
#[test]
fn regression_full_seed_763_eviction_marker_aged_out_beyond_grace() {
    assert_passes(&run(SimConfig::new(763, 5, Scenario::Random, 60_000), Trace::default()));
}

/// Found by the 1,000-seed sweep of the full workload: n0 is paused from 5 s to 60 s while an INCR it
/// coordinates as first owner waits for the other owners' copies (its re-read). The others go on without it
/// and take counter k41 to 46, acknowledged. At the resume the answers n0 had been sent 55 s before arrive
/// first, the INCR runs on that old copy (30 -> 31) with a fresh clock, and its version wins last-writer-wins
/// over the 15 acknowledged increments. Fix: a re-read that a stall interrupted is void, the write does not run
/// (`Pending::Read::started_at` against the stall time).
/// Replay: cargo run -p shoal-sim --release -- --seed 745 --scenario random --trace /tmp/t.txt
#[test]
fn regression_full_seed_745_reread_answers_from_before_a_pause_ran_an_incr() {
    let report = run(SimConfig::new(745, 5, Scenario::Random, 60_000), Trace::default());
    assert_passes(&report);
    assert_eq!(count(&report, shoal_sim::check::Kind::LostIncrement), 0);
}

/// A checker finding of the third 1,000-seed sweep of the full workload, not a product bug: n3, isolated and
/// alone in its ring with its clock 25 minutes ahead, acknowledges SET k31=1540 at QUORUM; another node had
/// evicted a version of k31 concurrent with it whose HLC (a clock 35 minutes ahead) is later, and after the heal
/// that eviction marker wins last-writer-wins: k31 ends absent. The absence checker weighed tombstones and
/// expiring versions as removals, not eviction markers; it now does, and the run is the allowed `LwwConcurrent`.
/// Replay: cargo run -p shoal-sim --release -- --seed 69 --scenario random
///
/// The core changes merged with the chaos harness (the forward-refusal window after a pause) changed this run: the eviction
/// race no longer happens in it, so the seed asserts a clean run, and the checker rule it taught is held by the
/// planted test `a_write_that_lost_to_a_concurrent_eviction_marker_is_last_writer_wins_and_a_lone_loss_is_not`.
#[test]
fn regression_full_seed_69_write_lost_to_a_concurrent_eviction_marker() {
    let report = run(SimConfig::new(69, 5, Scenario::Random, 60_000), Trace::default());
    assert_passes(&report);
}
