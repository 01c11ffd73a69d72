//! Version vector tests: hand-built vectors, the merge laws over (vector, payload) values with and without
//! pruning, a replicated-writes model with skewed clocks (causally newer writes win, replicas converge), and the
//! wire format.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::core::clock::Hlc;

fn vv(entries: &[(u64, u64)]) -> VersionVector {
    let mut v = VersionVector::new();
    for &(node, time) in entries {
        v.entries.push((NodeId(node), Timestamp(time)));
    }
    v.entries.sort();
    v
}

type Value = (VersionVector, Vec<u8>);

fn merge_values(a: &Value, b: &Value, limit: usize) -> Value {
    let merged = a.0.merge_within(&b.0, limit);
    let payload = merged.pick(&a.1, &b.1).clone();
    (merged.vector, payload)
}

#[test]
fn relations_by_dominance() {
    let a = vv(&[(1, 5), (2, 3)]);
    assert_eq!(a.compare(&a), Relation::Equal);
    assert_eq!(a.compare(&vv(&[(1, 5)])), Relation::After);
    assert_eq!(vv(&[(1, 5)]).compare(&a), Relation::Before);
    assert_eq!(a.compare(&vv(&[(1, 6)])), Relation::Concurrent);
    assert!(a.is_concurrent(&vv(&[(3, 1)])));
    assert_eq!(VersionVector::new().compare(&a), Relation::Before);
}

#[test]
fn concurrent_writes_settle_by_latest_entry_and_count() {
    let a = vv(&[(1, 9), (2, 3)]);
    let b = vv(&[(3, 9)]);
    let merged = a.merge(&b);
    assert_eq!(merged.relation, Relation::Concurrent);
    assert_eq!(merged.winner, Winner::Right, "equal times: node 3 beats node 1");
    assert!(merged.lww_settled());
    assert_eq!(merged.vector, vv(&[(1, 9), (2, 3), (3, 9)]));
    assert_eq!(merged.pick("a", "b"), "b");
}

#[test]
fn same_latest_write_is_not_a_conflict() {
    let merged = vv(&[(1, 9), (2, 3)]).merge(&vv(&[(1, 9), (3, 4)]));
    assert_eq!((merged.relation, merged.winner), (Relation::Concurrent, Winner::Same));
    assert!(!merged.lww_settled());
    assert_eq!(merged.pick(&1, &2), &2);
}

#[test]
fn bump_beats_everything_present_even_with_a_clock_far_behind() {
    let mut v = vv(&[(1, 1_000_000), (2, 7)]);
    let used = v.bump(NodeId(3), Timestamp(5));
    assert_eq!(used, Timestamp(1_000_001));
    assert_eq!(v.latest(), Some(Version::new(used, NodeId(3))));
    assert_eq!(v.compare(&vv(&[(1, 1_000_000), (2, 7)])), Relation::After);
}

#[test]
fn pruning_drops_the_oldest_and_keeps_the_latest() {
    let mut v = VersionVector::new();
    for node in 0..(ENTRIES_MAX as u64 + 4) {
        v.bump(NodeId(100 - node), Timestamp(10 + node));
    }
    assert_eq!(v.entries().len(), ENTRIES_MAX);
    assert_eq!(v.get(NodeId(100)), Timestamp(0), "the first writer is the oldest and goes first");
    assert_eq!(v.latest().map(|l| l.node), Some(NodeId(100 - ENTRIES_MAX as u64 - 3)));
}

#[test]
fn wire_format_is_compact_and_validated() {
    let mut v = VersionVector::new();
    for node in 0..ENTRIES_MAX as u64 {
        v.bump(NodeId::from_name(&format!("node-{node}")), Timestamp::from_millis(1_700_000_000_000 + node));
    }
    let bytes = rmp_serde::to_vec(&v).expect("encode");
    // An array header, then per entry a 2-array of two u64s: 1 + 9 + 9 bytes.
    assert_eq!(bytes.len(), 3 + ENTRIES_MAX * 19);
    assert_eq!(rmp_serde::from_slice::<VersionVector>(&bytes).expect("decode"), v);
    let bad = |entries: &[(u64, u64)]| {
        let raw: Vec<(NodeId, Timestamp)> = entries.iter().map(|&(n, t)| (NodeId(n), Timestamp(t))).collect();
        rmp_serde::from_slice::<VersionVector>(&rmp_serde::to_vec(&raw).expect("encode")).is_err()
    };
    assert!(bad(&[(2, 1), (1, 1)]));
    assert!(bad(&[(1, 1), (1, 2)]));
    assert!(bad(&[(1, 0)]));
    assert!(bad(&(0..=ENTRIES_MAX as u64).map(|n| (n, 1)).collect::<Vec<_>>()));
}

/// Vectors over `nodes` nodes with small times (so ties and dominance are common), at most `limit` entries.
fn arb_vector(nodes: u64, limit: usize) -> impl Strategy<Value = VersionVector> {
    proptest::collection::btree_map(0..nodes, 1..12u64, 0..=limit)
        .prop_map(|m| VersionVector { entries: m.into_iter().map(|(n, t)| (NodeId(n), Timestamp(t))).collect() })
}

fn arb_value(nodes: u64, limit: usize) -> impl Strategy<Value = Value> {
    (arb_vector(nodes, limit), proptest::collection::vec(0..3u8, 0..2))
}

fn check_laws(a: &Value, b: &Value, c: &Value, limit: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(merge_values(a, b, limit), merge_values(b, a, limit), "commutative");
    prop_assert_eq!(merge_values(a, a, limit), a.clone(), "idempotent");
    let left = merge_values(&merge_values(a, b, limit), c, limit);
    let right = merge_values(a, &merge_values(b, c, limit), limit);
    prop_assert_eq!(left, right, "associative");
    Ok(())
}

/// One replica in the replicated-writes model.
#[derive(Clone, Default)]
struct Replica {
    hlc: Hlc,
    value: Option<(VersionVector, u32)>,
    seen: BTreeSet<u32>,
}

#[derive(Debug, Clone)]
enum Op {
    Write { node: usize, wall_ms: u64 },
    Sync { from: usize, to: usize },
}

fn arb_ops(nodes: usize) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        (0..nodes, 0..1_000_000u64).prop_map(|(node, wall_ms)| Op::Write { node, wall_ms }),
        (0..nodes, 0..nodes).prop_map(|(from, to)| Op::Sync { from, to }),
    ];
    proptest::collection::vec(op, 1..60)
}

fn sync(replicas: &mut [Replica], from: usize, to: usize, limit: usize) {
    let Some(incoming) = replicas[from].value.clone() else { return };
    let seen = replicas[from].seen.clone();
    let target = &mut replicas[to];

    target.value = Some(match target.value.take() {
        None => incoming,
        Some(mine) => {
            let merged = mine.0.merge_within(&incoming.0, limit);
            let id = *merged.pick(&mine.1, &incoming.1);
            (merged.vector, id)
        }
    });
    target.seen.extend(seen);
}

/// Runs the ops; after each, no replica holds a write that another write it has seen causally follows.
fn run_model(nodes: usize, ops: &[Op], limit: usize) -> Result<(), TestCaseError> {
    let mut replicas = vec![Replica::default(); nodes];
    let mut past: Vec<BTreeSet<u32>> = Vec::new();
    for op in ops {
        match *op {
            Op::Write { node, wall_ms } => {
                // Ids count down, so the `Winner::Same` tie-break (greater payload) would favour older writes.
                let id = u32::MAX - past.len() as u32;
                let r = &mut replicas[node];
                let mut vector = r.value.take().map(|v| v.0).unwrap_or_default();
                // no observe
                let used = vector.bump_within(NodeId(node as u64 + 1), r.hlc.now(wall_ms), limit);
                r.hlc.observe(used);
                past.push(r.seen.clone());
                r.seen.insert(id);
                r.value = Some((vector, id));
            }
            Op::Sync { from, to } => sync(&mut replicas, from, to, limit),
        }
        for r in &replicas {
            if let Some((_, held)) = &r.value {
                for s in &r.seen {
                    let successor_past = &past[(u32::MAX - s) as usize];
                    prop_assert!(!successor_past.contains(held), "write {held} held over its successor {s}");
                }
            }
        }
    }
    // Heal: two all-to-all rounds, then replicas that saw the same writes hold the same value.
    for _ in 0..2 {
        for from in 0..nodes {
            for to in 0..nodes {
                sync(&mut replicas, from, to, limit);
            }
        }
    }
    for r in &replicas[1..] {
        prop_assert_eq!(&r.value, &replicas[0].value);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn merge_is_a_semilattice_over_values(a in arb_value(5, 5), b in arb_value(5, 5), c in arb_value(5, 5)) {
        check_laws(&a, &b, &c, ENTRIES_MAX)?;
    }

    #[test]
    fn merge_laws_hold_under_pruning(a in arb_value(8, 3), b in arb_value(8, 3), c in arb_value(8, 3)) {
        check_laws(&a, &b, &c, 3)?;
    }

    #[test]
    fn relation_is_antisymmetric_and_agrees_with_the_winner(a in arb_vector(5, 5), b in arb_vector(5, 5)) {
        let ab = a.merge(&b);
        let flipped = match ab.relation {
            Relation::Before => Relation::After,
            Relation::After => Relation::Before,
            other => other,
        };
        prop_assert_eq!(b.compare(&a), flipped);
        prop_assert!(matches!(ab.vector.compare(&a), Relation::After | Relation::Equal));
        match ab.relation {
            Relation::After => prop_assert_ne!(ab.winner, Winner::Right),
            Relation::Before => prop_assert_ne!(ab.winner, Winner::Left),
            Relation::Equal => prop_assert_eq!(ab.winner, Winner::Same),
            Relation::Concurrent => {}
        }
    }

    #[test]
    fn causally_newer_writes_win_and_replicas_converge(ops in arb_ops(4)) {
        run_model(4, &ops, ENTRIES_MAX)?;
    }

    #[test]
    fn causally_newer_writes_win_under_pruning(ops in arb_ops(6)) {
        run_model(6, &ops, 2)?;
    }

    #[test]
    fn wire_round_trip(v in arb_vector(1 << 20, ENTRIES_MAX)) {
        let bytes = rmp_serde::to_vec(&v).expect("encode");
        prop_assert_eq!(rmp_serde::from_slice::<VersionVector>(&bytes).expect("decode"), v);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = rmp_serde::from_slice::<VersionVector>(&bytes);
    }
}
