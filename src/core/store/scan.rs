//! Walks over the keyspace and random picks from it: occupied buckets, SCAN's cursor over whole buckets, KEYS,
//! RANDOMKEY and the uniform (bucket, index) sample that eviction also draws from.

use bytes::Bytes;

use super::{Entry, Store, BUCKETS};
use crate::core::Millis;

impl Store {
    /// The first bucket at or after `from` that holds an entry, if any (no wrap-around).
    pub fn next_occupied(&self, from: usize) -> Option<usize> {
        let mut word = from / 64;
        let mut bits = *self.occupied.get(word)? & (!0u64 << (from % 64));
        loop {
            if bits != 0 {
                return Some(word * 64 + bits.trailing_zeros() as usize);
            }
            word += 1;
            bits = *self.occupied.get(word)?;
        }
    }

    /// The entries of bucket `b`, markers included.
    pub fn bucket_entries(&self, b: usize) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.buckets[b].iter().map(|(k, e)| (&k[..], e))
    }

    /// A random (bucket, index) among all keys.
    pub(super) fn sample(&self, draw: &mut impl FnMut(usize) -> usize) -> Option<(usize, usize)> {
        if self.len == 0 {
            return None;
        }
        let start = draw(BUCKETS);
        (0..BUCKETS).map(|k| (start + k) & (BUCKETS - 1)).find(|&b| !self.buckets[b].is_empty()).map(|b| {
            let n = self.buckets[b].len();
            (b, draw(n))
        })
    }

    /// A random live key, if any (RANDOMKEY); tries a bounded number of samples.
    pub fn random_key(&self, now: Millis, mut draw: impl FnMut(usize) -> usize) -> Option<Bytes> {
        for _ in 0..16 {
            let (b, i) = self.sample(&mut draw)?;
            let (k, e) = self.buckets[b].get_index(i)?;
            if e.is_value() && !e.is_expired(now) {
                return Some(Bytes::copy_from_slice(k));
            }
        }
        None
    }

    /// One SCAN step: visit whole buckets from `cursor` until at least `count` keys were visited; returns the
    /// next cursor (0 when done) and the live keys for which `keep` is true.
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        now: Millis,
        mut keep: impl FnMut(&[u8]) -> bool,
    ) -> (u64, Vec<Bytes>) {
        let mut b = cursor as usize;
        let mut visited = 0;
        let mut out = Vec::new();
        // Bound the empty buckets one call walks so a sparse keyspace cannot make SCAN O(BUCKETS) per key.
        let mut steps = 0;
        while b < BUCKETS && visited < count && steps < count.max(1) * 64 {
            for (k, e) in &self.buckets[b] {
                visited += 1;
                if e.is_value() && !e.is_expired(now) && keep(k) {
                    out.push(Bytes::copy_from_slice(k));
                }
            }
            b += 1;
            steps += 1;
        }
        let next = if b >= BUCKETS { 0 } else { b as u64 };
        (next, out)
    }

    /// Every live key for which `keep` is true (KEYS).
    pub fn keys(&self, now: Millis, mut keep: impl FnMut(&[u8]) -> bool) -> Vec<Bytes> {
        self.buckets
            .iter()
            .flat_map(|b| b.iter())
            .filter(|(k, e)| e.is_value() && !e.is_expired(now) && keep(k))
            .map(|(k, _)| Bytes::copy_from_slice(k))
            .collect()
    }
}
