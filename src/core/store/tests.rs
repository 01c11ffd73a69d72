//! Unit tests of the store: accounting, expiry, eviction, SCAN, and every invariant under random operations.

use super::*;
use crate::core::clock::Timestamp;
use crate::core::version::NodeId;

fn v(t: u64) -> VersionVector {
    let mut v = VersionVector::new();
    v.bump(NodeId(1), Timestamp(t));
    v
}

fn entry(val: &str, exp: Millis) -> Entry {
    Entry::new(Bytes::copy_from_slice(val.as_bytes()), v(1), exp)
}

#[test]
fn insert_get_remove_keeps_accounting_exact() {
    let mut s = Store::new(7);
    s.insert(b"a", entry("1", 0), 0);
    s.insert(b"b", entry("22", 500), 0);
    s.insert(b"a", entry("333", 900), 0);
    assert_eq!(s.len(), 2);
    assert_eq!(s.used_bytes(), s.recount_bytes());
    assert_eq!(s.expiring_len(), 2);
    assert_eq!(s.get(b"a", 10).unwrap().value, Bytes::from_static(b"333"));
    s.remove(b"a");
    assert_eq!(s.used_bytes(), s.recount_bytes());
    assert_eq!(s.expiring_len(), 1);
}

#[test]
fn replacing_an_entry_with_the_same_expiry_keeps_it_in_the_expiry_index() {
    // The old entry's index pair used to be removed after the new one's (equal) pair was added, so the key
    // left the index and active expiry never reclaimed it.
    let mut s = Store::new(7);
    s.insert(b"k", entry("a", 100), 0);
    s.insert(b"k", entry("b", 100), 0);
    assert_eq!(s.expiring_len(), 1);
    let mut newer = entry("c", 100);
    newer.vector = v(2);
    assert!(s.merge(b"k", newer, 0).changed);
    assert_eq!(s.expiring_len(), 1);
    assert_eq!(s.expire_due(1_000, 10), 1);
    assert!(s.is_empty());
    assert_eq!(s.used_bytes(), 0);
}

#[test]
fn a_merge_that_keeps_the_local_value_only_joins_the_vectors() {
    let mut s = Store::new(7);
    let mut local = entry("local", 100);
    local.vector = v(5);
    s.insert(b"k", local, 0);
    let before = s.bucket_digest(bucket_of(b"k"));
    let mut other = VersionVector::new();
    other.bump(NodeId(2), Timestamp(3));
    let older = Entry::new(Bytes::from_static(b"older"), other, 0);
    let outcome = s.merge(b"k", older, 10);
    assert!(outcome.changed);
    let e = s.raw(b"k", 10).unwrap();
    assert_eq!(e.value, Bytes::from_static(b"local"));
    assert_eq!(e.vector.entries().len(), 2);
    assert_ne!(s.bucket_digest(bucket_of(b"k")), before);
    assert_eq!(s.recount_digests(), (0..BUCKETS).map(|b| s.bucket_digest(b)).collect::<Vec<_>>());
    assert_eq!(s.used_bytes(), s.recount_bytes());
    assert_eq!(s.expiring_len(), 1);
}

#[test]
fn long_keys_are_stored_and_found_like_short_ones() {
    let mut s = Store::new(7);
    let short = b"k".to_vec();
    let long = vec![b'x'; INLINE_KEY_BYTES * 3];
    s.insert(&short, entry("1", 0), 0);
    s.insert(&long, entry("2", 0), 0);
    assert_eq!(s.get(&long, 0).unwrap().value, Bytes::from_static(b"2"));
    assert_eq!(s.get(&short, 0).unwrap().value, Bytes::from_static(b"1"));
    assert_eq!(s.keys(0, |_| true).len(), 2);
    assert!(s.remove(&long).is_some());
    assert_eq!(s.used_bytes(), s.recount_bytes());
}

#[test]
fn a_newer_value_expired_past_its_grace_still_supersedes_an_older_copy() {
    // A replica whose clock is far ahead sees a newer write as expired long ago: the older copy it holds must
    // go (sim seed 148: a read at ALL answered the older value), and nothing is stored for the newer one.
    let mut s = Store::new(7);
    s.set_expiry_grace(Some(1_000));
    s.insert(b"k", Entry::new(Bytes::from_static(b"old"), v(1), 0), 0);
    let newer = Entry::new(Bytes::from_static(b"new"), v(2), 5_000);
    assert!(s.merge(b"k", newer.clone(), 60_000).changed);
    assert!(s.raw(b"k", 60_000).is_none());
    assert!(s.is_empty());
    // An older one past its grace changes nothing.
    s.insert(b"k", Entry::new(Bytes::from_static(b"cur"), v(3), 0), 0);
    assert!(!s.merge(b"k", newer, 60_000).changed);
    assert_eq!(s.peek(b"k", 60_000).unwrap().value, Bytes::from_static(b"cur"));
}

#[test]
fn occupied_buckets_follow_inserts_and_removes() {
    let mut s = Store::new(7);
    assert_eq!(s.next_occupied(0), None);
    let keys: Vec<Vec<u8>> = (0..50).map(|i| format!("key{i}").into_bytes()).collect();
    for k in &keys {
        s.insert(k, entry("v", 0), 0);
    }
    let mut walked = Vec::new();
    let mut from = 0;
    while let Some(b) = s.next_occupied(from) {
        walked.push(b);
        from = b + 1;
    }
    let mut expected: Vec<usize> = keys.iter().map(|k| bucket_of(k)).collect();
    expected.sort();
    expected.dedup();
    assert_eq!(walked, expected);
    for k in &keys {
        s.remove(k);
    }
    assert_eq!(s.next_occupied(0), None);
    s.insert(b"x", entry("v", 0), 0);
    s.clear();
    assert_eq!(s.next_occupied(0), None);
}

#[test]
fn expired_key_is_never_returned_and_is_reclaimed_lazily() {
    let mut s = Store::new(7);
    s.insert(b"k", entry("v", 100), 0);
    assert!(s.get(b"k", 99).is_some());
    assert!(s.peek(b"k", 100).is_none());
    assert!(s.get(b"k", 100).is_none());
    assert_eq!(s.len(), 0);
    assert_eq!(s.stats().expired_keys, 1);
    assert_eq!(s.expiring_len(), 0);
}

#[test]
fn active_expiry_removes_due_keys_in_order_and_respects_max() {
    let mut s = Store::new(7);
    for i in 0..10u64 {
        s.insert(format!("k{i}").as_bytes(), entry("v", 100 + i), 0);
    }
    s.insert(b"forever", entry("v", 0), 0);
    assert_eq!(s.expire_due(104, 3), 3);
    assert_eq!(s.expire_due(104, 100), 2);
    assert_eq!(s.next_expiry(), Some(105));
    assert_eq!(s.expire_due(10_000, 100), 5);
    assert_eq!(s.len(), 1);
    assert_eq!(s.used_bytes(), s.recount_bytes());
}

#[test]
fn set_expiry_moves_the_index_entry() {
    let mut s = Store::new(7);
    s.insert(b"k", entry("v", 100), 0);
    assert!(s.set_expiry(b"k", 0));
    assert_eq!(s.expiring_len(), 0);
    assert_eq!(s.expire_due(1_000, 10), 0);
    assert!(s.set_expiry(b"k", 50));
    assert_eq!(s.expire_due(1_000, 10), 1);
    assert!(!s.set_expiry(b"k", 50));
    assert_eq!(s.used_bytes(), 0);
}

#[test]
fn lru_eviction_prefers_old_keys() {
    let mut s = Store::new(7);
    let mut seed = 1u64;
    let mut draw = move |n: usize| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n
    };
    for i in 0..1000u64 {
        s.insert(format!("old{i}").as_bytes(), entry("x", 0), 0);
    }
    for i in 0..1000u64 {
        s.insert(format!("new{i}").as_bytes(), entry("x", 0), 100_000);
    }
    let limit = s.used_bytes() / 2;
    assert!(s.evict_to(limit, EvictionPolicy::AllKeysLru, 100_000, None, &mut draw));
    assert!(s.used_bytes() <= limit);
    let new_left = (0..1000).filter(|i| s.peek(format!("new{i}").as_bytes(), 0).is_some()).count();
    let old_left = (0..1000).filter(|i| s.peek(format!("old{i}").as_bytes(), 0).is_some()).count();
    // Sampled LRU (5 samples and a pool, as Redis) is approximate; random eviction would leave about 500 of each.
    assert!(new_left >= 750 && old_left <= 250, "new {new_left} old {old_left}");
    assert_eq!(s.stats().evicted_keys as usize, 2000 - s.len());
}

#[test]
fn noeviction_and_volatile_without_candidates_fail() {
    let mut s = Store::new(7);
    s.insert(b"k", entry("v", 0), 0);
    assert!(!s.evict_to(0, EvictionPolicy::NoEviction, 0, None, |n| n - 1));
    assert!(!s.evict_to(0, EvictionPolicy::VolatileLru, 0, None, |n| n - 1));
    assert_eq!(s.len(), 1);
}

fn lcg(mut seed: u64) -> impl FnMut(usize) -> usize {
    move |n: usize| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n
    }
}

#[test]
fn tombstones_are_never_evicted_whatever_the_policy() {
    for policy in [EvictionPolicy::AllKeysLru, EvictionPolicy::AllKeysRandom, EvictionPolicy::VolatileLru] {
        let mut s = Store::new(7);
        s.set_expiry_grace(Some(1_000));
        for i in 0..100u64 {
            s.insert(format!("dead{i}").as_bytes(), Entry::marker(EntryKind::Tombstone, v(1), 5_000), 0);
        }
        for i in 0..300u64 {
            s.insert(format!("live{i}").as_bytes(), entry("x", 9_000), 10);
        }
        // A limit below what the tombstones alone take: every value goes, every tombstone stays.
        assert!(!s.evict_to(1_000, policy, 20, Some(3_000), lcg(3)), "{policy:?}");
        assert_eq!(s.values_len(), 0, "{policy:?}");
        let kept = (0..100).filter(|i| s.raw(format!("dead{i}").as_bytes(), 20).is_some()).count();
        assert_eq!(kept, 100, "{policy:?}: tombstones evicted");
        assert_eq!(s.used_bytes(), s.recount_bytes());
    }
}

#[test]
fn a_small_evicted_value_leaves_a_marker_and_markers_keep_to_their_share() {
    let mut s = Store::new(7);
    for i in 0..2_000u64 {
        s.insert(format!("k{i}").as_bytes(), entry("v", 0), i);
    }
    let limit = s.used_bytes() / 2;
    assert!(s.evict_to(limit, EvictionPolicy::AllKeysLru, 5_000, Some(100_000), lcg(5)));
    assert!(s.used_bytes() <= limit);
    assert!(s.evicted_markers_bytes() <= limit / EVICTED_MARKERS_SHARE);
    let evicted = s.stats().evicted_keys;
    let markers = s.markers_len() as u64;
    assert!(markers > 0 && markers + s.stats().evicted_markers_dropped == evicted, "{markers} of {evicted}");
    // The one-byte value that goes last leaves its marker too.
    let before = s.stats().evicted_keys;
    assert!(s.evict_to(s.used_bytes() - 1, EvictionPolicy::AllKeysLru, 5_000, Some(100_000), lcg(9)));
    assert_eq!(s.stats().evicted_keys, before + 1);
    assert_eq!(s.used_bytes(), s.recount_bytes());
}

#[test]
fn scan_visits_every_key_once_despite_deletes() {
    let mut s = Store::new(7);
    for i in 0..5000u64 {
        s.insert(format!("k{i}").as_bytes(), entry("v", 0), 0);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = 0;
    let mut rounds = 0;
    loop {
        let (next, keys) = s.scan(cursor, 100, 0, |_| true);
        for k in keys {
            assert!(seen.insert(k.clone()), "duplicate {k:?}");
        }
        // Delete keys that were already returned: must not make SCAN skip others.
        if rounds % 3 == 0 {
            if let Some(k) = seen.iter().next().cloned() {
                s.remove(&k);
            }
        }
        rounds += 1;
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), 5000);
}

/// Every invariant the store keeps incrementally, recomputed from scratch.
fn check_invariants(s: &Store) {
    assert_eq!(s.used_bytes(), s.recount_bytes(), "used bytes");
    assert_eq!(s.recount_digests(), s.digests, "digests");
    let mut expiring = BTreeSet::new();
    let (mut len, mut markers) = (0, 0);
    for (b, bucket) in s.buckets.iter().enumerate() {
        assert_eq!(s.occupied[b / 64] & (1 << (b % 64)) != 0, !bucket.is_empty(), "occupied bit {b}");
        for (k, e) in bucket {
            assert_eq!(bucket_of(k), b);
            len += 1;
            markers += usize::from(!e.is_value());
            if e.expire_at_ms != 0 {
                expiring.insert((e.expire_at_ms, Box::<[u8]>::from(&k[..])));
            }
        }
    }
    assert_eq!(s.expiring, expiring, "expiry index");
    let evicted: BTreeSet<_> = s
        .buckets
        .iter()
        .flat_map(|b| b.iter())
        .filter(|(_, e)| e.kind == EntryKind::Evicted)
        .map(|(k, e)| (e.expire_at_ms, Box::<[u8]>::from(&k[..])))
        .collect();
    assert_eq!(s.evicted, evicted, "eviction marker index");
    let evicted_bytes: usize = s
        .buckets
        .iter()
        .flat_map(|b| b.iter())
        .filter(|(_, e)| e.kind == EntryKind::Evicted)
        .map(|(k, e)| entry_bytes(k, e))
        .sum();
    assert_eq!(s.evicted_bytes, evicted_bytes, "eviction marker bytes");
    assert_eq!((s.len, s.markers), (len, markers), "len, markers");
}

#[test]
fn random_operations_keep_every_invariant() {
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rnd = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for round in 0..8 {
        let mut s = Store::new(round);
        if round % 2 == 0 {
            s.set_expiry_grace(Some(50));
        }
        let mut now = 0;
        for step in 0..2_000 {
            now += rnd(5) as u64;
            let key: Vec<u8> = match rnd(3) {
                0 => format!("k{}", rnd(20)).into_bytes(),
                1 => format!("a-rather-long-key-{}", rnd(20)).into_bytes(),
                _ => vec![b'x'; 14 + rnd(5)],
            };
            let mut vector = VersionVector::new();
            for _ in 0..1 + rnd(3) {
                vector.bump(NodeId(1 + rnd(4) as u64), Timestamp(1 + rnd(30) as u64));
            }
            let exp = match rnd(3) {
                0 => 0,
                _ => now + rnd(60) as u64 - 20.min(now),
            };
            let value = Bytes::from(vec![b'v'; rnd(40)]);
            let e = match rnd(4) {
                0 => Entry::marker(EntryKind::Tombstone, vector, exp.max(1)),
                1 => Entry::marker(EntryKind::Evicted, vector, exp.max(1)),
                _ => Entry::new(value, vector, exp),
            };
            match rnd(10) {
                0 | 1 => {
                    s.insert(&key, e, now);
                }
                2..=4 => {
                    s.merge(&key, e, now);
                }
                5 => {
                    s.remove(&key);
                }
                6 => {
                    s.set_expiry(&key, exp);
                }
                7 => {
                    s.get(&key, now);
                }
                8 => {
                    s.expire_due(now, rnd(5));
                }
                _ => {
                    let limit = s.used_bytes().saturating_sub(rnd(500));
                    let policy =
                        [EvictionPolicy::AllKeysLru, EvictionPolicy::AllKeysRandom, EvictionPolicy::VolatileLru]
                            [rnd(3)];
                    s.evict_to(limit, policy, now, Some(now + 100), &mut rnd);
                }
            }
            if step % 8 == 0 {
                check_invariants(&s);
            }
        }
        check_invariants(&s);
    }
}
