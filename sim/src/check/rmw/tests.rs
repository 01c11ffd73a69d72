//! Planted counter and append-log histories that the read-modify-write checkers must flag, and the allowed
//! histories they must only count.

use super::*;
use bytes::Bytes;
use shoal::core::clock::Timestamp;
use shoal::core::replication::{Consistency, Levels, WireEntry};
use shoal::core::version::NodeId;

use crate::workload::Outcome;

const Q: Levels = Levels { read: Consistency::Quorum, write: Consistency::Quorum };
const COUNTER: u8 = 40;
const LOG: u8 = 48;

fn op(client: u32, kind: OpKind, span: (Ms, Ms), outcome: Outcome) -> Op {
    Op {
        client,
        conn: u64::from(client) << 32,
        node: 0,
        generation: 1,
        kind,
        levels: Q,
        invoked_at: span.0,
        executed: true,
        executed_at: span.0,
        node_now: span.0,
        node_clock_max: span.0,
        completed_at: Some(span.1),
        outcome,
    }
}

fn incr(client: u32, delta: i64, span: (Ms, Ms), result: i64) -> Op {
    op(client, OpKind::Incr { key: COUNTER, delta }, span, Outcome::Replied(Reply::Int(result)))
}

fn append(client: u32, token: u64, span: (Ms, Ms), length: i64) -> Op {
    op(client, OpKind::Append { key: LOG, token }, span, Outcome::Replied(Reply::Int(length)))
}

fn vector(entries: &[(u64, u64)]) -> VersionVector {
    let list = entries.iter().map(|&(n, t)| (NodeId(n), Timestamp(t))).collect::<Vec<_>>();
    VersionVector::try_from(list).expect("valid vector")
}

fn value(key: u8, v: &str, vv: VersionVector) -> Finals {
    let e = WireEntry { kind: EntryKind::Value, value: Bytes::from(v.to_string()), vector: vv, expire_at_ms: 0 };
    Finals::from([(key, Some(e))])
}

fn facts() -> Facts {
    Facts {
        replicas: 3,
        settle_ms: 10,
        fault_times: vec![0],
        end_ms: 10_000,
        tombstone_grace_ms: 300_000,
        roles: BTreeMap::from([(COUNTER, Role::Counter), (LOG, Role::Append)]),
        ..Facts::default()
    }
}

fn kinds(found: &[Violation]) -> Vec<Kind> {
    found.iter().map(|v| v.kind).collect()
}

#[test]
fn a_counter_below_an_acknowledged_result_is_a_lost_increment() {
    let ops = vec![incr(0, 1, (100, 110), 1), incr(1, 2, (200, 210), 3), incr(0, 1, (300, 310), 4)];
    // The final value is 3: the last acknowledged increment (to 4) is gone, with no fault, eviction or delete.
    let found = rmw(&ops, &value(COUNTER, "3", vector(&[(1, 5)])), &facts());
    assert_eq!(kinds(&found), [Kind::LostIncrement]);
    // At 4 (or above, within what may have run) it is fine.
    assert_eq!(rmw(&ops, &value(COUNTER, "4", vector(&[(1, 6)])), &facts()), vec![]);
    // Absent counts as 0.
    assert_eq!(kinds(&rmw(&ops, &Finals::from([(COUNTER, None)]), &facts())), [Kind::LostIncrement; 3]);
}

#[test]
fn an_unknown_outcome_is_no_ack() {
    // The INCR to 4 timed out ("may or may not have run"): the final 3 loses nothing acknowledged.
    let mut ops = vec![incr(0, 1, (100, 110), 1), incr(1, 2, (200, 210), 3), incr(0, 1, (300, 310), 4)];
    ops[2].outcome = Outcome::Replied(Reply::error("TIMEOUT the command may or may not have run".to_string()));
    assert_eq!(rmw(&ops, &value(COUNTER, "3", vector(&[(1, 5)])), &facts()), vec![]);
    // But it may have run: the final 4 is within what may have run, 5 is not.
    assert_eq!(rmw(&ops, &value(COUNTER, "4", vector(&[(1, 6)])), &facts()), vec![]);
    assert_eq!(kinds(&rmw(&ops, &value(COUNTER, "5", vector(&[(1, 6)])), &facts())), [Kind::IncrOvercount]);
}

#[test]
fn a_reply_below_an_earlier_acknowledged_one_went_back() {
    // Client 1's INCR starts after client 0's answered 5 and answers 3: it ran on a copy missing the others.
    let ops = vec![incr(0, 5, (100, 110), 5), incr(1, 1, (200, 210), 3)];
    let found = rmw(&ops, &value(COUNTER, "6", vector(&[(1, 5)])), &facts());
    assert_eq!(kinds(&found), [Kind::IncrWentBack]);
    // Overlapping calls may answer in any order.
    let ops = vec![incr(0, 5, (100, 250), 5), incr(1, 1, (200, 210), 3)];
    assert_eq!(rmw(&ops, &value(COUNTER, "6", vector(&[(1, 5)])), &facts()), vec![]);
}

#[test]
fn a_delete_a_crash_or_an_eviction_after_the_increment_explains_it() {
    let ops = vec![
        incr(0, 1, (100, 110), 7),
        op(1, OpKind::Del { key: COUNTER }, (200, 210), Outcome::Replied(Reply::Int(1))),
    ];
    let last = value(COUNTER, "1", vector(&[(1, 9)]));
    assert_eq!(rmw(&ops, &last, &facts()), vec![]);
    let ops = vec![incr(0, 1, (100, 110), 7)];
    let mut f = facts();
    f.rmw_crash_lost.insert(COUNTER, vec![150]);
    assert_eq!(rmw(&ops, &last, &f), vec![]);
    // An eviction counts only if the final version was written over it (it restarted from empty).
    let mut f = facts();
    f.saw_eviction(COUNTER, 150, &vector(&[(1, 5)]));
    assert_eq!(kinds(&rmw(&ops, &last, &f)), [Kind::EvictedReset]);
    let unrelated = value(COUNTER, "1", vector(&[(2, 9)]));
    assert_eq!(kinds(&rmw(&ops, &unrelated, &f)), [Kind::LostIncrement]);
    // An eviction before the increment explains nothing.
    let mut f = facts();
    f.saw_eviction(COUNTER, 50, &vector(&[(1, 5)]));
    assert_eq!(kinds(&rmw(&ops, &last, &f)), [Kind::LostIncrement]);
}

#[test]
fn an_evicted_version_that_came_back_is_a_violation_over_a_lost_update() {
    let ops = vec![incr(0, 1, (100, 110), 1), incr(0, 1, (200, 210), 2)];
    let mut f = facts();
    // The final version (value 1) is the one a node evicted at 150: eviction undone, and the INCR to 2 is lost.
    f.saw_eviction(COUNTER, 150, &vector(&[(1, 5)]));
    let back = value(COUNTER, "1", vector(&[(1, 5)]));
    assert_eq!(kinds(&rmw(&ops, &back, &f)), [Kind::EvictedCameBackOlder]);
    // Came back with nothing lost: counted apart.
    let ops = vec![incr(0, 1, (100, 110), 1)];
    assert_eq!(kinds(&rmw(&ops, &back, &f)), [Kind::EvictedCameBack]);
}

#[test]
fn concurrent_versions_under_a_fault_are_an_allowed_anomaly_and_without_one_a_violation() {
    let ops = vec![incr(0, 1, (100, 110), 5), incr(1, 1, (120, 130), 2)];
    let last = value(COUNTER, "2", vector(&[(1, 5), (2, 7)]));
    let mut f = facts();
    f.saw_rmw_version(COUNTER, 105, &vector(&[(1, 5)]));
    f.saw_rmw_version(COUNTER, 125, &vector(&[(2, 7)]));
    // No fault around: the fork itself is the bug.
    f.fault_times = vec![0];
    f.settle_ms = 10;
    assert!(kinds(&rmw(&ops, &last, &f)).contains(&Kind::LostIncrement));
    // Under a partition: last-writer-wins lost the other branch, counted.
    f.disturbed = vec![(90, 140)];
    assert_eq!(kinds(&rmw(&ops, &last, &f)), [Kind::RmwLwwConcurrent]);
}

#[test]
fn an_append_log_must_keep_every_acknowledged_token_once_and_in_order() {
    let ops = vec![append(0, 11, (100, 110), 3), append(1, 12, (200, 210), 6), append(0, 13, (300, 310), 9)];
    assert_eq!(rmw(&ops, &value(LOG, "11,12,13,", vector(&[(1, 5)])), &facts()), vec![]);
    assert_eq!(kinds(&rmw(&ops, &value(LOG, "11,13,", vector(&[(1, 5)])), &facts())), [Kind::LostAppend]);
    assert_eq!(kinds(&rmw(&ops, &value(LOG, "11,12,12,13,", vector(&[(1, 5)])), &facts())), [Kind::AppendCorrupt]);
    assert_eq!(kinds(&rmw(&ops, &value(LOG, "12,11,13,", vector(&[(1, 5)])), &facts())), [Kind::AppendCorrupt]);
    assert_eq!(kinds(&rmw(&ops, &value(LOG, "11,12,13,99,", vector(&[(1, 5)])), &facts())), [Kind::PhantomValue]);
    // A reply shorter than an earlier acknowledged one plus the token: it ran on a copy without it.
    let ops = vec![append(0, 11, (100, 110), 6), append(1, 12, (200, 210), 3)];
    assert_eq!(kinds(&rmw(&ops, &value(LOG, "11,12,", vector(&[(1, 5)])), &facts())), [Kind::LostAppend]);
}

#[test]
fn a_fork_made_by_a_node_fresh_out_of_a_pause_is_no_excuse() {
    // Node 0 (writer id 7) was paused and resumed at 100; right after, it ran an INCR on its stale copy (version
    // [7:115]) concurrent with node 1's [8:105], and the merge lost the INCR to 5.
    let ops = vec![incr(1, 5, (100, 110), 5), incr(0, 1, (112, 120), 1)];
    let last = value(COUNTER, "1", vector(&[(7, 115), (8, 105)]));
    let mut f = facts();
    f.saw_rmw_version(COUNTER, 105, &vector(&[(8, 105)]));
    f.saw_rmw_version(COUNTER, 115, &vector(&[(7, 115)]));
    f.disturbed = vec![(50, 100)];
    f.settle_ms = 50;
    f.node_ids = BTreeMap::from([(7, 0), (8, 1)]);
    f.resumes = vec![(0, 100)];
    f.stall_window_ms = 10_000;
    assert!(kinds(&rmw(&ops, &last, &f)).contains(&Kind::LostIncrement));
    // The same with a link cut in force as well: an AP fork, counted.
    f.disturbed_but_pauses = vec![(90, 130)];
    assert_eq!(kinds(&rmw(&ops, &last, &f)), [Kind::RmwLwwConcurrent]);
}

#[test]
fn clocks_beyond_the_grace_excuse_a_lost_update_only_on_a_key_with_markers() {
    let ops = vec![incr(0, 1, (100, 110), 1), incr(0, 1, (200, 210), 2)];
    let last = value(COUNTER, "1", vector(&[(1, 5)]));
    let mut f = facts();
    f.clock_spread_ms = 2 * f.tombstone_grace_ms;
    // No DEL, no eviction: nothing a clock can age out, still a violation.
    assert_eq!(kinds(&rmw(&ops, &last, &f)), [Kind::LostIncrement]);
    // An eviction long before (it explains nothing by itself) whose marker a far clock aged out: allowed.
    f.saw_eviction(COUNTER, 50, &vector(&[(3, 1)]));
    assert_eq!(kinds(&rmw(&ops, &last, &f)), [Kind::DivergedBeyondGrace]);
}
