//! Eviction under the memory limit: the policies, Redis's sampled-LRU pool, random sampling, eviction markers.
//!
//! Eviction takes values only: a tombstone stays until its grace ends (an evicted tombstone would let a replica
//! that missed the delete bring the key back), and is counted in `used_bytes` like any entry. In a replicated
//! store every evicted value leaves an eviction marker, whatever its size, so anti-entropy cannot push it back;
//! the markers of evictions hold at most `1 / EVICTED_MARKERS_SHARE` of the limit, the oldest going first
//! (counted). Each marker is handed to the owner (`take_evicted`) as it is made, even one that went again within
//! the same input, so the other replicas drop the value too.

use bytes::Bytes;

use super::{bucket_of, Entry, Store};
use crate::core::replication::EntryKind;
use crate::core::Millis;

/// Eviction markers hold at most this fraction (1/n) of the memory limit; beyond it the oldest are dropped.
pub const EVICTED_MARKERS_SHARE: usize = 8;
/// Most entries sampled to find a value to evict before the store reports that none is left.
const EVICTION_SAMPLES_MAX: usize = 256;

/// Which keys the store may evict when over its memory limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvictionPolicy {
    /// Approximate LRU over all keys (sample, evict the least recently used).
    #[default]
    AllKeysLru,
    /// Random keys.
    AllKeysRandom,
    /// Approximate LRU over keys with an expiry only.
    VolatileLru,
    /// Never evict: writes that need memory fail with OOM.
    NoEviction,
}

impl Store {
    /// Evict values by `policy` until `used_bytes <= limit`; `draw(n)` returns a random index below `n`.
    /// With `marker_until` set (a replicated store), every evicted value leaves an eviction marker with the
    /// same version that lives until then, so replicas drop it too instead of bringing it back; eviction markers
    /// beyond their share of `limit` go, oldest first. Tombstones are never evicted. Returns false when the limit
    /// cannot be met (the policy forbids it or no value is left to evict).
    pub fn evict_to(
        &mut self,
        limit: usize,
        policy: EvictionPolicy,
        now: Millis,
        marker_until: Option<Millis>,
        mut draw: impl FnMut(usize) -> usize,
    ) -> bool {
        let markers_max = limit / EVICTED_MARKERS_SHARE;
        while self.used_bytes > limit {
            let victim = match policy {
                EvictionPolicy::NoEviction => None,
                EvictionPolicy::AllKeysRandom => self.random_value(&mut draw),
                EvictionPolicy::AllKeysLru | EvictionPolicy::VolatileLru => {
                    self.lru_candidate(policy == EvictionPolicy::VolatileLru, &mut draw)
                }
            };
            // Sampling misses when values are rare among markers: then walk to one.
            let volatile = policy == EvictionPolicy::VolatileLru;
            let victim = victim.or_else(|| (policy != EvictionPolicy::NoEviction).then(|| self.any_value(volatile))?);
            let Some(key) = victim else {
                // No value left to evict: what eviction markers hold is all that can still go.
                if policy != EvictionPolicy::NoEviction && self.drop_oldest_evicted_marker() {
                    continue;
                }
                return false;
            };
            let Some(old) = self.remove(&key) else { continue };
            // An expired victim is accounted as expired, not evicted: it was already dead.
            if old.is_expired(now) {
                self.stats.expired_keys += 1;
                if let Some(tombstone) = self.expiry_tombstone(&old, now) {
                    self.insert(&key, tombstone, now);
                }
                continue;
            }
            self.stats.evicted_keys += 1;
            if let Some(until) = marker_until {
                let marker = Entry::marker(EntryKind::Evicted, old.vector, until);
                self.just_evicted.push((Bytes::copy_from_slice(&key), marker.clone()));
                self.insert(&key, marker, now);
            }
            while self.evicted_bytes > markers_max && self.drop_oldest_evicted_marker() {}
        }
        true
    }

    /// The first value (with an expiry, when `volatile`) in ring order: the eviction candidate of last resort.
    fn any_value(&self, volatile: bool) -> Option<Box<[u8]>> {
        if volatile {
            let (_, key) = self.expiring.iter().find(|(_, k)| self.peek_any(k).is_some_and(Entry::is_value))?;
            return Some(key.clone());
        }
        let mut from = 0;
        while let Some(b) = self.next_occupied(from) {
            if let Some((key, _)) = self.buckets[b].iter().find(|(_, e)| e.is_value()) {
                return Some(Box::from(&key[..]));
            }
            from = b + 1;
        }
        None
    }

    /// The stored entry for `key`, whatever its kind and expiry.
    fn peek_any(&self, key: &[u8]) -> Option<&Entry> {
        self.buckets[bucket_of(key)].get(key)
    }

    /// The keys evicted with a marker since the last call, with their markers (which may have gone here since).
    pub fn take_evicted(&mut self) -> Vec<(Bytes, Entry)> {
        std::mem::take(&mut self.just_evicted)
    }

    /// Drop the oldest eviction marker, counted; false when there is none.
    fn drop_oldest_evicted_marker(&mut self) -> bool {
        let Some((_, key)) = self.evicted.first() else { return false };
        let key = key.clone();
        self.remove(&key);
        self.stats.evicted_markers_dropped += 1;
        true
    }

    /// Bytes charged for eviction markers.
    pub fn evicted_markers_bytes(&self) -> usize {
        self.evicted_bytes
    }

    /// A random value's key (markers are no eviction candidates), from a bounded number of samples.
    fn random_value(&self, draw: &mut impl FnMut(usize) -> usize) -> Option<Box<[u8]>> {
        if self.values_len() == 0 {
            return None;
        }
        (0..EVICTION_SAMPLES_MAX).find_map(|_| {
            let (b, i) = self.sample(draw)?;
            let (key, entry) = self.buckets[b].get_index(i)?;
            entry.is_value().then(|| Box::from(&key[..]))
        })
    }

    /// Redis's eviction pool: each call samples a few values into a small pool of the least recently used ones
    /// seen so far (kept across calls), then takes the oldest that still exists unchanged. Markers are skipped.
    fn lru_candidate(&mut self, volatile: bool, draw: &mut impl FnMut(usize) -> usize) -> Option<Box<[u8]>> {
        const SAMPLES: usize = 5;
        const POOL: usize = 16;
        if self.values_len() == 0 {
            return None;
        }
        for _ in 0..EVICTION_SAMPLES_MAX / SAMPLES {
            let mut sampled = 0;
            for _ in 0..EVICTION_SAMPLES_MAX {
                if sampled == SAMPLES {
                    break;
                }
                let picked = if volatile { self.sample_expiring(draw) } else { self.sample(draw) };
                let Some((b, i)) = picked else { break };
                let (key, entry) = self.buckets[b].get_index(i).expect("sampled index");
                if !entry.is_value() {
                    continue;
                }
                sampled += 1;
                if self.pool.iter().any(|(_, k)| **k == key[..]) {
                    continue;
                }
                let at = self.pool.partition_point(|(l, _)| *l <= entry.lru);
                if at < POOL {
                    self.pool.insert(at, (entry.lru, Box::from(&key[..])));
                    self.pool.truncate(POOL);
                }
            }
            while !self.pool.is_empty() {
                let (lru, key) = self.pool.remove(0);
                // A pooled key may have been deleted, used or replaced since it was sampled: then it is no candidate.
                let current = self.buckets[bucket_of(&key)].get(&key[..]);
                if current.is_some_and(|e| e.is_value() && e.lru == lru && (!volatile || e.expire_at_ms != 0)) {
                    return Some(key);
                }
            }
            if sampled == 0 {
                return None;
            }
        }
        None
    }

    /// A random (bucket, index) among keys with an expiry.
    fn sample_expiring(&self, draw: &mut impl FnMut(usize) -> usize) -> Option<(usize, usize)> {
        let n = self.expiring.len();
        if n == 0 {
            return None;
        }
        // The expiry index is ordered, not indexable: skip a random number of entries, bounded for speed.
        let skip = draw(n.min(64));
        let (_, key) = self.expiring.iter().nth(skip)?;
        let b = bucket_of(key);
        self.buckets[b].get_index_of(&key[..]).map(|i| (b, i))
    }
}
