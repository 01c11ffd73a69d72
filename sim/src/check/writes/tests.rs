//! Planted histories and final states that each write checker must flag, and their innocent twins.

use super::*;
use bytes::Bytes;
use shoal::core::clock::Timestamp;
use shoal::core::replication::{Consistency, Levels};
use shoal::core::version::NodeId;

const Q: Levels = Levels { read: Consistency::Quorum, write: Consistency::Quorum };
const ONE: Levels = Levels { read: Consistency::One, write: Consistency::One };

fn op(client: u32, kind: OpKind, levels: Levels, span: (Ms, Option<Ms>), outcome: Outcome) -> Op {
    Op {
        client,
        conn: u64::from(client) << 32,
        node: 0,
        generation: 1,
        kind,
        levels,
        invoked_at: span.0,
        executed: true,
        executed_at: span.0,
        node_now: span.0,
        node_clock_max: span.0,
        completed_at: span.1,
        outcome,
    }
}

fn set(client: u32, value: u64, from: Ms, to: Ms) -> Op {
    op(client, OpKind::Set { key: 1, value, ttl_ms: None, size: 0 }, Q, (from, Some(to)), Outcome::Replied(Reply::Ok))
}

fn del(client: u32, from: Ms, to: Ms) -> Op {
    op(client, OpKind::Del { key: 1 }, Q, (from, Some(to)), Outcome::Replied(Reply::Int(1)))
}

fn get(client: u32, levels: Levels, from: Ms, to: Ms, reply: Reply) -> Op {
    op(client, OpKind::Get { key: 1 }, levels, (from, Some(to)), Outcome::Replied(reply))
}

fn vector(entries: &[(u64, u64)]) -> VersionVector {
    let list = entries.iter().map(|&(n, t)| (NodeId(n), Timestamp(t))).collect::<Vec<_>>();
    VersionVector::try_from(list).expect("valid vector")
}

fn entry(kind: EntryKind, value: &str, v: VersionVector) -> Option<WireEntry> {
    Some(WireEntry { kind, value: Bytes::from(value.to_string()), vector: v, expire_at_ms: 0 })
}

fn finals(e: Option<WireEntry>) -> Finals {
    Finals::from([(1, e)])
}

fn kinds(found: &[Violation]) -> Vec<Kind> {
    found.iter().map(|v| v.kind).collect()
}

fn facts() -> Facts {
    Facts {
        replicas: 3,
        settle_ms: 10,
        fault_times: vec![0],
        tombstone_grace_ms: 1_000,
        end_ms: 500,
        ..Facts::default()
    }
}

#[test]
fn an_older_write_winning_over_an_acknowledged_later_one_is_a_lost_write() {
    let ops = vec![set(0, 1, 0, 10), set(1, 2, 20, 30)];
    let last = finals(entry(EntryKind::Value, "1", vector(&[(1, 5)])));
    assert_eq!(kinds(&lost_writes(&ops, &last, &facts())), [Kind::LostWrite]);
    // The same by one client: it saw its first write acknowledged, then wrote again.
    let ops = vec![set(0, 1, 0, 10), set(0, 2, 20, 30)];
    assert_eq!(kinds(&lost_writes(&ops, &last, &facts())), [Kind::CausalityLost]);
    // The later write is the final state: fine.
    let last = finals(entry(EntryKind::Value, "2", vector(&[(1, 6)])));
    assert_eq!(lost_writes(&ops, &last, &facts()), vec![]);
}

#[test]
fn concurrent_unknown_and_crash_lost_writes_may_lose() {
    let last = finals(entry(EntryKind::Value, "1", vector(&[(1, 5)])));
    // Overlapping calls: either may win.
    assert_eq!(lost_writes(&[set(0, 1, 0, 25), set(1, 2, 20, 30)], &last, &facts()), vec![]);
    // The later write was never acknowledged.
    let mut w = set(1, 2, 20, 30);
    w.outcome = Outcome::Unknown;
    w.completed_at = None;
    assert_eq!(lost_writes(&[set(0, 1, 0, 10), w], &last, &facts()), vec![]);
    // Every copy of the later write died in crashes.
    let mut f = facts();
    f.crash_lost_values.insert(2);
    assert_eq!(lost_writes(&[set(0, 1, 0, 10), set(1, 2, 20, 30)], &last, &f), vec![]);
    // A write overwritten by a later one whose every copy died: gone with it.
    let ops = vec![set(0, 2, 20, 30), set(1, 3, 40, 50)];
    let mut f = facts();
    f.crash_lost_values.insert(3);
    assert_eq!(lost_writes(&ops, &finals(None), &f), vec![]);
    assert_eq!(kinds(&lost_writes(&ops, &finals(None), &facts())), [Kind::LostWrite, Kind::LostWrite]);
}

#[test]
fn last_writer_wins_between_concurrent_versions_is_an_anomaly_not_a_violation() {
    let ops = vec![set(0, 1, 0, 10), set(1, 2, 20, 30)];
    let mut f = facts();
    f.vectors.insert(1, vector(&[(1, 50)]));
    f.vectors.insert(2, vector(&[(2, 30)]));
    let merged = finals(entry(EntryKind::Value, "1", vector(&[(1, 50), (2, 30)])));
    assert_eq!(kinds(&lost_writes(&ops, &merged, &f)), [Kind::LwwConcurrent]);
    assert!(Kind::LwwConcurrent.is_anomaly() && !Kind::LostWrite.is_anomaly());
    // The older value written again later with a new version (a re-executed request): not last-writer-wins.
    let again = finals(entry(EntryKind::Value, "1", vector(&[(1, 50), (2, 30), (3, 90)])));
    let found = lost_writes(&ops, &again, &f);
    assert_eq!(kinds(&found), [Kind::LostWrite]);
    assert!(found[0].detail.contains("written again"), "{}", found[0].detail);
    // The later write never reached the final vector: lost.
    let without = finals(entry(EntryKind::Value, "1", vector(&[(1, 50)])));
    assert_eq!(kinds(&lost_writes(&ops, &without, &f)), [Kind::LostWrite]);
    // The later write's vector dominates the older one's: the merge should have kept it.
    f.vectors.insert(2, vector(&[(1, 50), (2, 60)]));
    let dominated = finals(entry(EntryKind::Value, "1", vector(&[(1, 50), (2, 60)])));
    assert_eq!(kinds(&lost_writes(&ops, &dominated, &f)), [Kind::LostWrite]);
    // Unless an EXPIRE concurrent with the later write re-wrote the older value with a newer version.
    let mut restamp = op(2, OpKind::Expire { key: 1, ttl_ms: 9_999 }, Q, (25, None), Outcome::Unknown);
    restamp.executed = true;
    let with_expire = vec![set(0, 1, 0, 10), set(1, 2, 20, 30), restamp];
    assert_eq!(kinds(&lost_writes(&with_expire, &dominated, &f)), [Kind::LwwConcurrent]);
}

#[test]
fn an_acknowledged_delete_undone_by_an_older_value_is_a_resurrection() {
    let ops = vec![set(0, 1, 0, 10), del(1, 20, 30)];
    let last = finals(entry(EntryKind::Value, "1", vector(&[(1, 5)])));
    assert_eq!(kinds(&lost_writes(&ops, &last, &facts())), [Kind::Resurrected]);
    let tomb = finals(entry(EntryKind::Tombstone, "", vector(&[(1, 6)])));
    assert_eq!(lost_writes(&ops, &tomb, &facts()), vec![]);
    // The delete's tombstones all died in a crash after it was invoked.
    let mut f = facts();
    f.crash_lost_tombstones.insert(1, vec![40]);
    assert_eq!(lost_writes(&ops, &last, &f), vec![]);
    // Clocks far enough apart that a node may have dropped the tombstone after its grace.
    let f = Facts { clock_spread_ms: 600, ..facts() };
    assert_eq!(lost_writes(&ops, &last, &f), vec![]);
    let f = Facts { clock_spread_ms: 400, ..facts() };
    assert_eq!(kinds(&lost_writes(&ops, &last, &f)), [Kind::Resurrected]);
}

#[test]
fn a_vanished_value_needs_a_later_removal() {
    let ops = vec![set(0, 1, 0, 10)];
    assert_eq!(kinds(&lost_writes(&ops, &finals(None), &facts())), [Kind::LostWrite]);
    // A delete by another client that does not precede the write explains it.
    let ops = vec![set(0, 1, 0, 10), del(1, 5, 30)];
    assert_eq!(lost_writes(&ops, &finals(None), &facts()), vec![]);
    // A TTL explains it.
    let mut with_ttl = set(0, 1, 0, 10);
    with_ttl.kind = OpKind::Set { key: 1, value: 1, ttl_ms: Some(100), size: 0 };
    assert_eq!(lost_writes(&[with_ttl], &finals(None), &facts()), vec![]);
    // The client's own older delete beating its later write is a causality violation.
    let ops = vec![del(0, 0, 5), set(0, 1, 10, 20)];
    let tomb = finals(entry(EntryKind::Tombstone, "", vector(&[(1, 6)])));
    assert_eq!(kinds(&lost_writes(&ops, &tomb, &facts())), [Kind::CausalityLost]);
}

#[test]
fn a_final_value_nobody_wrote_is_a_phantom() {
    let last = finals(entry(EntryKind::Value, "999", vector(&[(1, 5)])));
    assert_eq!(kinds(&lost_writes(&[set(0, 1, 0, 10)], &last, &facts())), [Kind::PhantomValue]);
}

#[test]
fn read_your_writes_at_quorum_is_checked_in_quiet_times() {
    let older = set(1, 1, 0, 10);
    let mine = set(0, 2, 100, 110);
    let stale = get(0, Q, 120, 130, Reply::Bulk(Bytes::from("1")));
    let ops = vec![older.clone(), mine.clone(), stale.clone()];
    assert_eq!(kinds(&read_your_writes(&ops, &facts())), [Kind::ReadYourWrites]);
    let nil = get(0, Q, 120, 130, Reply::Nil);
    assert_eq!(kinds(&read_your_writes(&[mine.clone(), nil], &facts())), [Kind::ReadYourWrites]);
    let phantom = get(0, Q, 120, 130, Reply::Bulk(Bytes::from("77")));
    assert_eq!(kinds(&read_your_writes(&[mine.clone(), phantom], &facts())), [Kind::PhantomValue]);
    // My own write, or a newer one, is fine.
    let fresh = get(0, Q, 120, 130, Reply::Bulk(Bytes::from("2")));
    assert_eq!(read_your_writes(&[older.clone(), mine.clone(), fresh], &facts()), vec![]);
    // Levels that need not intersect, a fault nearby, or a lossy network: not checked.
    let one = get(0, ONE, 120, 130, Reply::Bulk(Bytes::from("1")));
    assert_eq!(read_your_writes(&[older.clone(), mine.clone(), one], &facts()), vec![]);
    let mut f = facts();
    f.fault_times.push(95);
    assert_eq!(read_your_writes(&ops, &f), vec![]);
    let f = Facts { lossy: true, ..facts() };
    assert_eq!(read_your_writes(&ops, &f), vec![]);
    // A replica down (or a link cut) since long before and still: not checked either.
    let f = Facts { disturbed: vec![(5, 1_000)], ..facts() };
    assert_eq!(read_your_writes(&ops, &f), vec![]);
    let f = Facts { disturbed: vec![(5, 50)], ..facts() };
    assert_eq!(kinds(&read_your_writes(&ops, &f)), [Kind::ReadYourWrites]);
}

#[test]
fn an_older_value_read_after_my_del_is_the_beyond_grace_anomaly_only_when_clocks_are_that_far_apart() {
    let older = set(1, 1, 0, 10);
    let del = del(0, 100, 110);
    let stale = get(0, Q, 120, 130, Reply::Bulk(Bytes::from("1")));
    let ops = vec![older, del, stale];
    // Clocks within the grace: a real read-your-writes violation.
    assert_eq!(kinds(&read_your_writes(&ops, &facts())), [Kind::ReadYourWrites]);
    // Clocks further apart than the grace: the tombstone may have been dropped on arrival (documented anomaly).
    let f = Facts { clock_spread_ms: facts().tombstone_grace_ms, ..facts() };
    assert_eq!(kinds(&read_your_writes(&ops, &f)), [Kind::DivergedBeyondGrace]);
    // A plain SET read back older is a violation whatever the clocks.
    let plain = vec![set(1, 1, 0, 10), set(0, 2, 100, 110), get(0, Q, 120, 130, Reply::Bulk(Bytes::from("1")))];
    assert_eq!(kinds(&read_your_writes(&plain, &f)), [Kind::ReadYourWrites]);
}

#[test]
fn facts_keep_the_least_vector_of_a_value_and_each_tombstone_once() {
    let mut f = facts();
    f.saw_value(1, &vector(&[(1, 5), (2, 3)]));
    f.saw_value(1, &vector(&[(1, 5)]));
    f.saw_value(1, &vector(&[(1, 5), (2, 9)]));
    assert_eq!(f.vectors[&1], vector(&[(1, 5)]));
    f.saw_tombstone(1, 10, &vector(&[(1, 5)]));
    f.saw_tombstone(1, 20, &vector(&[(1, 5)]));
    assert_eq!(f.tombstones[&1].len(), 1);
}

#[test]
fn a_concurrent_later_delete_beating_a_write_is_an_anomaly_whether_its_tombstone_remains_or_aged_out() {
    // Client 0's DEL (invoked first, finished) and client 1's SET in a minority partition that never saw it:
    // concurrent versions, the tombstone later by (HLC, node).
    let ops = vec![del(0, 0, 10), set(1, 2, 20, 30)];
    let mut f = facts();
    f.vectors.insert(2, vector(&[(2, 30)]));
    f.saw_tombstone(1, 5, &vector(&[(1, 50)]));
    let merged = finals(entry(EntryKind::Tombstone, "", vector(&[(1, 50), (2, 30)])));
    assert_eq!(kinds(&lost_writes(&ops, &merged, &f)), [Kind::LwwConcurrent]);
    // The tombstone aged out before the end (clocks far apart): the key is absent, still the same story.
    assert_eq!(kinds(&lost_writes(&ops, &finals(None), &f)), [Kind::LwwConcurrent]);
    // The same with a value whose TTL ran out (an EXPIRE's re-stamp or a SET with TTL) in place of the DEL.
    let mut f = facts();
    f.vectors.insert(2, vector(&[(2, 30)]));
    f.saw_expiring(1, &vector(&[(1, 50)]));
    assert_eq!(kinds(&lost_writes(&ops, &merged, &f)), [Kind::LwwConcurrent]);
    assert_eq!(kinds(&lost_writes(&ops, &finals(None), &f)), [Kind::LwwConcurrent]);
    // A tombstone whose vector dominates the write's (it saw the write): a real loss.
    let mut f = facts();
    f.vectors.insert(2, vector(&[(2, 30)]));
    f.saw_tombstone(1, 5, &vector(&[(1, 50), (2, 30)]));
    let after = finals(entry(EntryKind::Tombstone, "", vector(&[(1, 50), (2, 30)])));
    assert_eq!(kinds(&lost_writes(&ops, &after, &f)), [Kind::LostWrite]);
    assert_eq!(kinds(&lost_writes(&ops, &finals(None), &f)), [Kind::LostWrite]);
}

#[test]
fn a_later_ttl_whose_expiry_tombstone_may_have_aged_out_explains_an_older_value_back() {
    let mut ttl = set(2, 3, 40, 50);
    ttl.kind = OpKind::Set { key: 1, value: 3, ttl_ms: Some(100), size: 0 };
    let ops = vec![set(0, 1, 0, 10), set(1, 2, 20, 30), ttl];
    let last = finals(entry(EntryKind::Value, "1", vector(&[(1, 5)])));
    // Grace 1000 + TTL 100: a spread of 700 with 460 ms left in the run reaches it; 500 does not.
    let f = Facts { clock_spread_ms: 700, ..facts() };
    assert_eq!(lost_writes(&ops, &last, &f), vec![]);
    let f = Facts { clock_spread_ms: 500, ..facts() };
    assert_eq!(kinds(&lost_writes(&ops, &last, &f)), [Kind::LostWrite, Kind::LostWrite]);
}

/// Found by the sweep in strict lock mode (seed 16): n3, cut off alone, acknowledged SET k=576 with a TTL at ONE;
/// the value expired into a tombstone held by n3 alone, and n3 crashed; the older value 573 came back. Every copy
/// of that write died in the crash, which the design allows. The exemption needs the lost tombstone to carry the
/// write's own vector: another tombstone of the key lost in a crash does not excuse it.
#[test]
fn an_expiring_write_whose_only_tombstone_died_in_a_crash_may_lose() {
    let mut expiring = set(0, 2, 20, 30);
    expiring.kind = OpKind::Set { key: 1, value: 2, ttl_ms: Some(100), size: 0 };
    let ops = vec![set(0, 1, 0, 10), expiring];
    let last = finals(entry(EntryKind::Value, "1", vector(&[(1, 5)])));
    let mut f = facts();
    f.vectors.insert(1, vector(&[(1, 5)]));
    f.vectors.insert(2, vector(&[(2, 25)]));
    assert_eq!(kinds(&lost_writes(&ops, &last, &f)), [Kind::CausalityLost], "nothing crashed");
    let mut other = f.clone();
    other.crash_lost_tombstones.insert(1, vec![200]);
    other.crash_lost_tombstone_vectors.insert(1, vec![vector(&[(3, 150)])]);
    assert_eq!(kinds(&lost_writes(&ops, &last, &other)), [Kind::CausalityLost], "another write's tombstone died");
    f.crash_lost_tombstones.insert(1, vec![200]);
    f.crash_lost_tombstone_vectors.insert(1, vec![vector(&[(2, 25)])]);
    assert_eq!(lost_writes(&ops, &last, &f), vec![]);
}

#[test]
fn a_write_that_lost_to_a_concurrent_eviction_marker_is_last_writer_wins_and_a_lone_loss_is_not() {
    // Seed 69 of the full workload: an isolated node acknowledges SET 1 while another evicted the key's version
    // [2:9], concurrent with it and later by (HLC, node); the marker won and the key ends absent.
    let ops = vec![set(0, 1, 10, 20)];
    let mut f = facts();
    f.saw_value(1, &vector(&[(1, 5)]));
    assert_eq!(kinds(&lost_writes(&ops, &finals(None), &f)), [Kind::LostWrite]);
    // The eviction came before the write (no eviction after it excuses the absence), but its marker beat it.
    f.saw_eviction(1, 5, &vector(&[(2, 9)]));
    assert_eq!(kinds(&lost_writes(&ops, &finals(None), &f)), [Kind::LwwConcurrent]);
    // A marker the write's version dominates explains nothing.
    let mut f = facts();
    f.saw_value(1, &vector(&[(1, 5), (2, 9)]));
    f.saw_eviction(1, 5, &vector(&[(2, 9)]));
    assert_eq!(kinds(&lost_writes(&ops, &finals(None), &f)), [Kind::LostWrite]);
}
