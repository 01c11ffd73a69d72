//! The hint table: copies a coordinator or fallback node keeps for a replica that did not answer, by (replica
//! name, key), with when each was recorded.
//!
//! Two ordered indexes over the same hints: by (replica, key), to deliver a replica's hints in key order and find
//! one hint, and by (recorded at, sequence), so the oldest hint is found in O(log n) when the table is full and
//! the hints past their age go from the front. Invariant: both indexes hold exactly the same hints.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::core::Millis;

/// A hint's identity: the replica it is meant for and the key.
pub(crate) type HintKey = (String, Bytes);

/// The hints a node holds, ordered by replica and key and by age.
#[derive(Debug, Default)]
pub(crate) struct Hints {
    by_key: BTreeMap<HintKey, (Millis, u64)>,
    by_age: BTreeMap<(Millis, u64), HintKey>,
    seq: u64,
}

impl Hints {
    /// Record (or refresh) the hint for `target` and `key` at `now`.
    pub fn insert(&mut self, target: String, key: Bytes, now: Millis) {
        self.seq += 1;
        let stamp = (now, self.seq);
        let hint = (target, key);
        if let Some(old) = self.by_key.insert(hint.clone(), stamp) {
            self.by_age.remove(&old);
        }
        self.by_age.insert(stamp, hint);
    }

    /// Remove one hint; true when it was there.
    pub fn remove(&mut self, hint: &HintKey) -> bool {
        match self.by_key.remove(hint) {
            Some(stamp) => {
                self.by_age.remove(&stamp);
                true
            }
            None => false,
        }
    }

    /// Remove the oldest hint (the first recorded among equal times); true when there was one.
    pub fn pop_oldest(&mut self) -> bool {
        let Some((_, hint)) = self.by_age.pop_first() else { return false };
        self.by_key.remove(&hint);
        true
    }

    /// Remove every hint recorded before `cutoff`; returns how many went.
    pub fn drop_recorded_before(&mut self, cutoff: Millis) -> usize {
        let mut dropped = 0;
        while self.by_age.first_key_value().is_some_and(|((at, _), _)| *at < cutoff) {
            self.pop_oldest();
            dropped += 1;
        }
        dropped
    }

    /// Number of hints.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// The hints, by replica then key.
    pub fn keys(&self) -> impl Iterator<Item = &HintKey> {
        self.by_key.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn the_oldest_goes_first_and_a_refresh_makes_a_hint_young() {
        let mut h = Hints::default();
        h.insert("b".into(), k("1"), 10);
        h.insert("a".into(), k("2"), 20);
        h.insert("a".into(), k("3"), 20);
        h.insert("b".into(), k("1"), 30); // refreshed: now the youngest
        assert_eq!(h.len(), 3);
        assert!(h.pop_oldest());
        assert_eq!(h.keys().cloned().collect::<Vec<_>>(), vec![("a".into(), k("3")), ("b".into(), k("1"))]);
        assert_eq!(h.drop_recorded_before(30), 1);
        assert_eq!(h.keys().cloned().collect::<Vec<_>>(), vec![("b".into(), k("1"))]);
        assert!(h.remove(&("b".into(), k("1"))));
        assert!(!h.remove(&("b".into(), k("1"))));
        assert!(!h.pop_oldest());
        assert_eq!((h.len(), h.by_age.len()), (0, 0));
    }

    #[test]
    fn both_indexes_stay_equal_under_random_operations() {
        let mut h = Hints::default();
        let mut seed = 99u64;
        let mut rnd = move |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for now in 0..5_000u64 {
            let hint = (format!("n{}", rnd(3)), k(&format!("k{}", rnd(50))));
            match rnd(4) {
                0 | 1 => h.insert(hint.0, hint.1, now),
                2 => {
                    h.remove(&hint);
                }
                _ => {
                    h.drop_recorded_before(now.saturating_sub(rnd(100)));
                }
            }
            assert_eq!(h.by_key.len(), h.by_age.len());
        }
        for (hint, stamp) in &h.by_key {
            assert_eq!(h.by_age.get(stamp), Some(hint));
        }
    }
}
