//! The local keyspace: values with versions and expiry, memory accounting, expiry index and eviction sampling.
//!
//! Keys live in a fixed number of buckets chosen by crc32 of the key; each bucket is an insertion-ordered map
//! with a seeded hasher. The fixed bucket layout gives SCAN a cursor that survives inserts and deletes (every
//! key present for the whole scan is returned at least once), and gives eviction and random sampling O(1)
//! access by index. Invariants: `used_bytes` is the sum of `entry_bytes` over all entries; `expiring` holds
//! exactly the (expiry, key) pairs of entries with an expiry; `evicted` holds exactly those of eviction markers.
//!
//! This file holds the `Store` type, its lookups, insert and remove with the accounting that keeps those
//! invariants, and FLUSHALL's removals. The other parts: `entry` (one key's state and its hashes), `merge` (the
//! join with a replica's entry), `expiry` (expiry index, active expiry, expiry tombstones), `evict` (eviction
//! policies, sampling, eviction markers) and `scan` (walks and random picks over the keyspace: SCAN, KEYS,
//! RANDOMKEY). Nothing here reads a clock: `now` is a parameter.

use std::collections::BTreeSet;

use bytes::Bytes;
use foldhash::fast::FixedState;
use indexmap::IndexMap;
use smallvec::SmallVec;

use super::replication::EntryKind;
use super::ring::key_hash;
use super::vversion::VersionVector;
use super::Millis;

mod entry;
mod evict;
mod expiry;
mod merge;
mod scan;
#[cfg(test)]
mod tests;

pub use entry::{digest_hash, entry_hash, Entry};
pub use evict::{EvictionPolicy, EVICTED_MARKERS_SHARE};
pub use merge::MergeOutcome;

/// log2 of the number of buckets.
pub const BUCKET_BITS: u32 = 14;
/// Number of buckets; a power of two. SCAN returns whole buckets. A bucket is a contiguous slice of the ring
/// (the top bits of the key's ring position), so anti-entropy can compare replicas bucket by bucket.
pub const BUCKETS: usize = 1 << BUCKET_BITS;
/// Bytes charged per entry on top of key and value: map slot, headers and allocator rounding.
pub const ENTRY_OVERHEAD_BYTES: usize = 96;
/// Extra bytes charged for an entry with an expiry (its slot in the expiry index).
pub const EXPIRY_OVERHEAD_BYTES: usize = 48;

/// Counters the store keeps for INFO.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Keys removed because their TTL passed (lazily or actively).
    pub expired_keys: u64,
    /// Keys removed to respect the memory limit.
    pub evicted_keys: u64,
    /// Eviction markers dropped before their grace to keep them within their share of the memory limit.
    pub evicted_markers_dropped: u64,
}

/// Longest key stored inline in its map slot: a lookup then compares the key without following a pointer (one
/// cache miss less per lookup on a large keyspace), and storing it costs no allocation. 16 keeps the slot as
/// large as a boxed key plus its 16-byte allocation (24 made 1M short keys cost 7% more RSS, slack included).
pub const INLINE_KEY_BYTES: usize = 16;

/// A stored key: inline up to `INLINE_KEY_BYTES`, on the heap beyond. Hashes and compares as a byte slice.
type Key = SmallVec<[u8; INLINE_KEY_BYTES]>;

type Bucket = IndexMap<Key, Entry, FixedState>;

/// The keyspace of one node.
pub struct Store {
    buckets: Vec<Bucket>,
    expiring: BTreeSet<(Millis, Box<[u8]>)>,
    /// The (expiry, key) pairs of eviction markers, oldest first.
    evicted: BTreeSet<(Millis, Box<[u8]>)>,
    /// Bytes charged for eviction markers.
    evicted_bytes: usize,
    /// Keys evicted with a marker since the owner last took them (`take_evicted`), each with its marker, to spread
    /// the markers at once even when the local one has already gone again to keep within its share.
    just_evicted: Vec<(Bytes, Entry)>,
    len: usize,
    used_bytes: usize,
    stats: StoreStats,
    hasher: FixedState,
    /// Eviction candidates, least recently used first.
    pool: Vec<(u32, Box<[u8]>)>,
    /// Per bucket, the XOR of `entry_hash` of its entries.
    digests: Vec<u64>,
    /// Entries that are markers (tombstones, eviction markers).
    markers: usize,
    /// One bit per bucket: set when the bucket holds an entry (walks over the keyspace skip empty buckets).
    occupied: Vec<u64>,
    /// In a replicated store, an expired value becomes a tombstone for this long after its expiry, so an older
    /// copy of the key still held somewhere (a stale replica, a former owner) cannot come back in its place.
    expiry_grace: Option<Millis>,
}

/// The bucket a key lives in: the top bits of its ring position.
pub fn bucket_of(key: &[u8]) -> usize {
    (key_hash(key) >> (64 - BUCKET_BITS)) as usize
}

/// The first ring position of bucket `b`.
pub fn bucket_start(b: usize) -> u64 {
    (b as u64) << (64 - BUCKET_BITS)
}

/// Bytes charged for one entry (an eviction marker also has a slot in the index of eviction markers).
pub fn entry_bytes(key: &[u8], entry: &Entry) -> usize {
    let index = EXPIRY_OVERHEAD_BYTES + key.len();
    let ttl = if entry.expire_at_ms != 0 { index } else { 0 };
    let evicted = if entry.kind == EntryKind::Evicted { index } else { 0 };
    ENTRY_OVERHEAD_BYTES + key.len() + entry.value.len() + ttl + evicted
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
            evicted: BTreeSet::new(),
            evicted_bytes: 0,
            just_evicted: Vec::new(),
            len: 0,
            used_bytes: 0,
            stats: StoreStats::default(),
            hasher,
            pool: Vec::new(),
            digests: vec![0; BUCKETS],
            markers: 0,
            occupied: vec![0; BUCKETS.div_ceil(64)],
            expiry_grace: None,
        }
    }

    /// Number of entries stored (values and markers), including expired ones not reclaimed yet.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Number of value entries (DBSIZE): entries minus markers.
    pub fn values_len(&self) -> usize {
        self.len - self.markers
    }

    /// Number of markers (tombstones and eviction markers).
    pub fn markers_len(&self) -> usize {
        self.markers
    }

    /// The digest of bucket `b`: XOR of `entry_hash` over its entries.
    pub fn bucket_digest(&self, b: usize) -> u64 {
        self.digests[b]
    }

    /// The stored entry for `key` whatever its kind, as replicas must see it at `now`: an entry that expired is
    /// reclaimed first, so an expired value answers as its tombstone even when the expiry sweep has not reached it
    /// (a replica must never report "nothing" for a key whose newest write merely expired).
    pub fn raw(&mut self, key: &[u8], now: Millis) -> Option<&Entry> {
        let b = bucket_of(key);
        if self.buckets[b].get(key).is_some_and(|e| e.is_expired(now)) {
            self.expire_entry(key, now);
        }
        self.buckets[b].get(key)
    }

    /// `raw` without reclaiming: a copy of the entry as replicas must see it at `now` (an expired value as its
    /// tombstone), for callers that only look.
    pub fn view(&self, key: &[u8], now: Millis) -> Option<Entry> {
        let e = self.buckets[bucket_of(key)].get(key)?;
        if !e.is_expired(now) {
            return Some(e.clone());
        }
        self.expiry_tombstone(e, now)
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
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
        let i = self.buckets[b].get_index_of(key)?;
        let found = &self.buckets[b][i];
        if found.is_expired(now) {
            self.expire_entry(key, now);
            return None;
        }
        if !found.is_value() {
            return None;
        }
        let entry = &mut self.buckets[b][i];
        entry.lru = lru_clock(now);
        Some(entry)
    }

    /// The live entry for `key` without marking it used.
    pub fn peek(&self, key: &[u8], now: Millis) -> Option<&Entry> {
        self.buckets[bucket_of(key)].get(key).filter(|e| e.is_value() && !e.is_expired(now))
    }

    /// Store `entry` under `key`, replacing what was there; returns the previous entry (expired or not).
    pub fn insert(&mut self, key: &[u8], entry: Entry, now: Millis) -> Option<Entry> {
        let b = bucket_of(key);
        let found = self.buckets[b].get_index_of(key);
        self.put(b, found, key, entry, now)
    }

    /// `insert` into bucket `b`, where `found` is the key's index in it when present.
    pub(super) fn put(
        &mut self,
        b: usize,
        found: Option<usize>,
        key: &[u8],
        mut entry: Entry,
        now: Millis,
    ) -> Option<Entry> {
        entry.lru = lru_clock(now);
        let added = entry_bytes(key, &entry);
        let (expire_at, digest, marker) = (entry.expire_at_ms, digest_hash(key, &entry), !entry.is_value());
        let evicted = entry.kind == EntryKind::Evicted;
        let old = match found {
            Some(i) => Some(std::mem::replace(&mut self.buckets[b][i], entry)),
            None => {
                self.buckets[b].insert(Key::from_slice(key), entry);
                self.occupied[b / 64] |= 1 << (b % 64);
                self.len += 1;
                None
            }
        };
        // The old entry's accounting goes first: with the same expiry, the index pair it removes is the one the
        // new entry adds back.
        if let Some(old) = &old {
            self.forget(b, key, old);
        }
        if expire_at != 0 {
            self.expiring.insert((expire_at, key.into()));
        }
        if evicted {
            self.evicted.insert((expire_at, key.into()));
            self.evicted_bytes += added;
        }
        self.digests[b] ^= digest;
        self.markers += usize::from(marker);
        self.used_bytes += added;
        old
    }

    /// Accounting for an entry of bucket `b` that left the map (bytes, expiry index, digest, marker count).
    fn forget(&mut self, b: usize, key: &[u8], old: &Entry) {
        let bytes = entry_bytes(key, old);
        self.used_bytes -= bytes;
        if old.expire_at_ms != 0 {
            self.expiring.remove(&(old.expire_at_ms, key.into()));
        }
        if old.kind == EntryKind::Evicted {
            self.evicted.remove(&(old.expire_at_ms, key.into()));
            self.evicted_bytes -= bytes;
        }
        self.digests[b] ^= digest_hash(key, old);
        self.markers -= usize::from(!old.is_value());
    }

    /// Remove `key`; returns its entry (expired or not).
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let b = bucket_of(key);
        let old = self.buckets[b].swap_remove(key)?;
        if self.buckets[b].is_empty() {
            self.occupied[b / 64] &= !(1 << (b % 64));
        }
        self.len -= 1;
        self.forget(b, key, &old);
        Some(old)
    }

    /// Change the version vector of an existing key in place (value and expiry untouched).
    pub fn set_vector(&mut self, key: &[u8], vector: VersionVector) {
        let b = bucket_of(key);
        if let Some(entry) = self.buckets[b].get_mut(key) {
            self.digests[b] ^= digest_hash(key, entry);
            entry.vector = vector;
            self.digests[b] ^= digest_hash(key, entry);
        }
    }

    /// Remove every entry whose latest write is at or before `up_to` (a cluster FLUSHALL); returns how many went.
    pub fn remove_written_up_to(&mut self, up_to: crate::core::clock::Timestamp) -> usize {
        if self.buckets.iter().flat_map(|b| b.values()).all(|e| e.vector.max_time() <= up_to) {
            let n = self.len;
            self.clear();
            return n;
        }
        let doomed: Vec<Box<[u8]>> = self
            .buckets
            .iter()
            .flat_map(|b| b.iter())
            .filter(|(_, e)| e.vector.max_time() <= up_to)
            .map(|(k, _)| Box::from(&k[..]))
            .collect();
        for key in &doomed {
            self.remove(key);
        }
        doomed.len()
    }

    /// Remove every key.
    pub fn clear(&mut self) {
        let hasher = self.hasher.clone();
        self.buckets.iter_mut().for_each(|b| *b = IndexMap::with_hasher(hasher.clone()));
        self.expiring.clear();
        self.evicted.clear();
        self.evicted_bytes = 0;
        self.just_evicted.clear();
        self.pool.clear();
        self.digests.iter_mut().for_each(|d| *d = 0);
        self.occupied.iter_mut().for_each(|w| *w = 0);
        self.len = 0;
        self.markers = 0;
        self.used_bytes = 0;
    }

    /// Recompute every bucket digest from scratch (for tests and debug assertions).
    pub fn recount_digests(&self) -> Vec<u64> {
        self.buckets.iter().map(|b| b.iter().fold(0, |d, (k, e)| d ^ digest_hash(k, e))).collect()
    }

    /// Recompute the byte count from scratch (for tests and debug assertions).
    pub fn recount_bytes(&self) -> usize {
        self.buckets.iter().flat_map(|b| b.iter()).map(|(k, e)| entry_bytes(k, e)).sum()
    }
}
