//! The local keyspace: values with versions and expiry, memory accounting, expiry index and eviction sampling.
//!
//! Keys live in a fixed number of buckets chosen by crc32 of the key; each bucket is an insertion-ordered map
//! with a seeded hasher. The fixed bucket layout gives SCAN a cursor that survives inserts and deletes (every
//! key present for the whole scan is returned at least once), and gives eviction and random sampling O(1)
//! access by index. Invariants: `used_bytes` is the sum of `entry_bytes` over all entries; `expiring` holds
//! exactly the (expiry, key) pairs of entries with an expiry. Nothing here reads a clock: `now` is a parameter.

use std::collections::BTreeSet;

use bytes::Bytes;
use foldhash::fast::FixedState;
use indexmap::IndexMap;

use super::version::Version;
use super::Millis;

/// Number of buckets; a power of two. SCAN returns whole buckets.
pub const BUCKETS: usize = 1 << 14;
/// Bytes charged per entry on top of key and value: map slot, headers and allocator rounding.
pub const ENTRY_OVERHEAD_BYTES: usize = 96;
/// Extra bytes charged for an entry with an expiry (its slot in the expiry index).
pub const EXPIRY_OVERHEAD_BYTES: usize = 48;

/// One stored value.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The value bytes.
    pub value: Bytes,
    /// The version of the write that produced this value.
    pub version: Version,
    /// Absolute expiry in Unix milliseconds; 0 means no expiry.
    pub expire_at_ms: Millis,
    /// Last access, in units of 100 ms of the driver's clock (approximate LRU).
    lru: u32,
}

impl Entry {
    /// A new entry.
    pub fn new(value: Bytes, version: Version, expire_at_ms: Millis) -> Entry {
        Entry { value, version, expire_at_ms, lru: 0 }
    }

    /// Whether the entry has expired at `now`.
    pub fn is_expired(&self, now: Millis) -> bool {
        self.expire_at_ms != 0 && self.expire_at_ms <= now
    }
}

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

/// Counters the store keeps for INFO.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Keys removed because their TTL passed (lazily or actively).
    pub expired_keys: u64,
    /// Keys removed to respect the memory limit.
    pub evicted_keys: u64,
}

type Bucket = IndexMap<Box<[u8]>, Entry, FixedState>;

/// The keyspace of one node.
pub struct Store {
    buckets: Vec<Bucket>,
    expiring: BTreeSet<(Millis, Box<[u8]>)>,
    len: usize,
    used_bytes: usize,
    stats: StoreStats,
    hasher: FixedState,
    /// Eviction candidates, least recently used first.
    pool: Vec<(u32, Box<[u8]>)>,
}

/// The bucket a key lives in.
pub fn bucket_of(key: &[u8]) -> usize {
    (crc32fast::hash(key) as usize) & (BUCKETS - 1)
}

/// Bytes charged for one entry.
pub fn entry_bytes(key: &[u8], entry: &Entry) -> usize {
    let ttl = if entry.expire_at_ms != 0 { EXPIRY_OVERHEAD_BYTES + key.len() } else { 0 };
    ENTRY_OVERHEAD_BYTES + key.len() + entry.value.len() + ttl
}

fn lru_clock(now: Millis) -> u32 {
    (now / 100) as u32
}

impl Store {
    /// An empty store whose maps hash with `seed` (draw it at random so clients cannot flood one bucket).
    pub fn new(seed: u64) -> Store {
        let hasher = FixedState::with_seed(seed);
        Store {
            buckets: (0..BUCKETS).map(|_| IndexMap::with_hasher(hasher.clone())).collect(),
            expiring: BTreeSet::new(),
            len: 0,
            used_bytes: 0,
            stats: StoreStats::default(),
            hasher,
            pool: Vec::new(),
        }
    }

    /// Number of keys stored, including expired ones not reclaimed yet.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of keys with an expiry.
    pub fn expiring_len(&self) -> usize {
        self.expiring.len()
    }

    /// Bytes charged for all entries.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    /// The store's counters.
    pub fn stats(&self) -> StoreStats {
        self.stats
    }

    /// The live entry for `key`, marking it used; an expired entry is removed and counted instead.
    pub fn get(&mut self, key: &[u8], now: Millis) -> Option<&Entry> {
        let b = bucket_of(key);
        let expired = self.buckets[b].get(key)?.is_expired(now);
        if expired {
            self.remove(key);
            self.stats.expired_keys += 1;
            return None;
        }
        let entry = self.buckets[b].get_mut(key)?;
        entry.lru = lru_clock(now);
        Some(entry)
    }

    /// The live entry for `key` without marking it used.
    pub fn peek(&self, key: &[u8], now: Millis) -> Option<&Entry> {
        self.buckets[bucket_of(key)].get(key).filter(|e| !e.is_expired(now))
    }

    /// Store `entry` under `key`, replacing what was there; returns the previous entry (expired or not).
    pub fn insert(&mut self, key: &[u8], mut entry: Entry, now: Millis) -> Option<Entry> {
        entry.lru = lru_clock(now);
        let b = bucket_of(key);
        let added = entry_bytes(key, &entry);
        if entry.expire_at_ms != 0 {
            self.expiring.insert((entry.expire_at_ms, key.into()));
        }
        let old = match self.buckets[b].get_mut(key) {
            Some(slot) => Some(std::mem::replace(slot, entry)),
            None => {
                self.buckets[b].insert(key.into(), entry);
                self.len += 1;
                None
            }
        };
        if let Some(old) = &old {
            self.used_bytes -= entry_bytes(key, old);
            if old.expire_at_ms != 0 {
                self.expiring.remove(&(old.expire_at_ms, key.into()));
            }
        }
        self.used_bytes += added;
        old
    }

    /// Remove `key`; returns its entry (expired or not).
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let old = self.buckets[bucket_of(key)].swap_remove(key)?;
        self.len -= 1;
        self.used_bytes -= entry_bytes(key, &old);
        if old.expire_at_ms != 0 {
            self.expiring.remove(&(old.expire_at_ms, key.into()));
        }
        Some(old)
    }

    /// Change the expiry of an existing key (0 removes it); returns false when the key is absent.
    pub fn set_expiry(&mut self, key: &[u8], expire_at_ms: Millis) -> bool {
        let b = bucket_of(key);
        let Some(entry) = self.buckets[b].get_mut(key) else { return false };
        let old_bytes = entry_bytes(key, entry);
        let old_at = std::mem::replace(&mut entry.expire_at_ms, expire_at_ms);
        let new_bytes = entry_bytes(key, entry);
        if old_at != 0 {
            self.expiring.remove(&(old_at, key.into()));
        }
        if expire_at_ms != 0 {
            self.expiring.insert((expire_at_ms, key.into()));
        }
        self.used_bytes = self.used_bytes - old_bytes + new_bytes;
        true
    }

    /// Change the version of an existing key in place (value and expiry untouched).
    pub fn set_version(&mut self, key: &[u8], version: Version) {
        if let Some(entry) = self.buckets[bucket_of(key)].get_mut(key) {
            entry.version = version;
        }
    }

    /// Remove up to `max` keys whose expiry is at or before `now`; returns how many were removed.
    pub fn expire_due(&mut self, now: Millis, max: usize) -> usize {
        let mut removed = 0;
        while removed < max {
            let Some((at, _)) = self.expiring.first() else { break };
            if *at > now {
                break;
            }
            // The index entry is gone with pop_first; remove the map entry directly so the index stays exact.
            let (_, key) = self.expiring.pop_first().expect("first exists");
            if let Some(old) = self.buckets[bucket_of(&key)].swap_remove(&key) {
                self.len -= 1;
                self.used_bytes -= entry_bytes(&key, &old);
            }
            self.stats.expired_keys += 1;
            removed += 1;
        }
        removed
    }

    /// The earliest expiry in the store, if any.
    pub fn next_expiry(&self) -> Option<Millis> {
        self.expiring.first().map(|(at, _)| *at)
    }

    /// Evict keys by `policy` until `used_bytes <= limit`; `draw(n)` returns a random index below `n`.
    /// Returns false when the limit cannot be met (policy forbids it or no candidate is left).
    pub fn evict_to(
        &mut self,
        limit: usize,
        policy: EvictionPolicy,
        now: Millis,
        mut draw: impl FnMut(usize) -> usize,
    ) -> bool {
        while self.used_bytes > limit {
            let victim = match policy {
                EvictionPolicy::NoEviction => None,
                EvictionPolicy::AllKeysRandom => {
                    self.sample(&mut draw).map(|(b, i)| self.buckets[b].get_index(i).expect("sampled").0.clone())
                }
                EvictionPolicy::AllKeysLru | EvictionPolicy::VolatileLru => {
                    self.lru_candidate(policy == EvictionPolicy::VolatileLru, &mut draw)
                }
            };
            let Some(key) = victim else { return false };
            let Some(old) = self.remove(&key) else { continue };
            // An expired victim is accounted as expired, not evicted: it was already dead.
            if old.is_expired(now) {
                self.stats.expired_keys += 1;
            } else {
                self.stats.evicted_keys += 1;
            }
        }
        true
    }

    /// Redis's eviction pool: each call samples a few keys into a small pool of the least recently used ones
    /// seen so far (kept across calls), then takes the oldest that still exists unchanged.
    fn lru_candidate(&mut self, volatile: bool, draw: &mut impl FnMut(usize) -> usize) -> Option<Box<[u8]>> {
        const SAMPLES: usize = 5;
        const POOL: usize = 16;
        for _ in 0..SAMPLES {
            let picked = if volatile { self.sample_expiring(draw) } else { self.sample(draw) };
            let Some((b, i)) = picked else { break };
            let (key, entry) = self.buckets[b].get_index(i).expect("sampled index");
            if self.pool.iter().any(|(_, k)| k == key) {
                continue;
            }
            let at = self.pool.partition_point(|(l, _)| *l <= entry.lru);
            if at < POOL {
                self.pool.insert(at, (entry.lru, key.clone()));
                self.pool.truncate(POOL);
            }
        }
        while !self.pool.is_empty() {
            let (lru, key) = self.pool.remove(0);
            // A pooled key may have been deleted or used since it was sampled: then it is no candidate.
            let current = self.buckets[bucket_of(&key)].get(&key);
            if current.is_some_and(|e| e.lru == lru && (!volatile || e.expire_at_ms != 0)) {
                return Some(key);
            }
        }
        None
    }

    /// A random (bucket, index) among all keys.
    fn sample(&self, draw: &mut impl FnMut(usize) -> usize) -> Option<(usize, usize)> {
        if self.len == 0 {
            return None;
        }
        let start = draw(BUCKETS);
        (0..BUCKETS).map(|k| (start + k) & (BUCKETS - 1)).find(|&b| !self.buckets[b].is_empty()).map(|b| {
            let n = self.buckets[b].len();
            (b, draw(n))
        })
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
        self.buckets[b].get_index_of(key).map(|i| (b, i))
    }

    /// A random live key, if any (RANDOMKEY); tries a bounded number of samples.
    pub fn random_key(&self, now: Millis, mut draw: impl FnMut(usize) -> usize) -> Option<Bytes> {
        for _ in 0..16 {
            let (b, i) = self.sample(&mut draw)?;
            let (k, e) = self.buckets[b].get_index(i)?;
            if !e.is_expired(now) {
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
                if !e.is_expired(now) && keep(k) {
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
            .filter(|(k, e)| !e.is_expired(now) && keep(k))
            .map(|(k, _)| Bytes::copy_from_slice(k))
            .collect()
    }

    /// Remove every key.
    pub fn clear(&mut self) {
        let hasher = self.hasher.clone();
        self.buckets.iter_mut().for_each(|b| *b = IndexMap::with_hasher(hasher.clone()));
        self.expiring.clear();
        self.pool.clear();
        self.len = 0;
        self.used_bytes = 0;
    }

    /// Recompute the byte count from scratch (for tests and debug assertions).
    pub fn recount_bytes(&self) -> usize {
        self.buckets.iter().flat_map(|b| b.iter()).map(|(k, e)| entry_bytes(k, e)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::Timestamp;
    use crate::core::version::NodeId;

    fn v(t: u64) -> Version {
        Version::new(Timestamp(t), NodeId(1))
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
        assert!(s.evict_to(limit, EvictionPolicy::AllKeysLru, 100_000, &mut draw));
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
        assert!(!s.evict_to(0, EvictionPolicy::NoEviction, 0, |n| n - 1));
        assert!(!s.evict_to(0, EvictionPolicy::VolatileLru, 0, |n| n - 1));
        assert_eq!(s.len(), 1);
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
}
