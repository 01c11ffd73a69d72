//! The local keyspace: values with versions and expiry, memory accounting, expiry index and eviction sampling.
//!
//! Keys live in a fixed number of buckets chosen by crc32 of the key; each bucket is an insertion-ordered map
//! with a seeded hasher. The fixed bucket layout gives SCAN a cursor that survives inserts and deletes (every
//! key present for the whole scan is returned at least once), and gives eviction and random sampling O(1)
//! access by index. Invariants: `used_bytes` is the sum of `entry_bytes` over all entries; `expiring` holds
//! exactly the (expiry, key) pairs of entries with an expiry; `evicted` holds exactly those of eviction markers.
//!
//! Eviction takes values only: a tombstone stays until its grace ends (an evicted tombstone would let a replica
//! that missed the delete bring the key back), and is counted in `used_bytes` like any entry. In a replicated
//! store every evicted value leaves an eviction marker, whatever its size, so anti-entropy cannot push it back;
//! the markers of evictions hold at most `1 / EVICTED_MARKERS_SHARE` of the limit, the oldest going first
//! (counted). Each marker is handed to the owner (`take_evicted`) as it is made, even one that went again within
//! the same input, so the other replicas drop the value too. Nothing here reads a clock: `now` is a parameter.

use std::collections::BTreeSet;

use bytes::Bytes;
use foldhash::fast::FixedState;
use indexmap::IndexMap;
use smallvec::SmallVec;

use super::replication::{EntryKind, WireEntry};
use super::ring::{key_hash, mix64};
use super::vversion::VersionVector;
use super::Millis;

/// log2 of the number of buckets.
pub const BUCKET_BITS: u32 = 14;
/// Number of buckets; a power of two. SCAN returns whole buckets. A bucket is a contiguous slice of the ring
/// (the top bits of the key's ring position), so anti-entropy can compare replicas bucket by bucket.
pub const BUCKETS: usize = 1 << BUCKET_BITS;
/// Bytes charged per entry on top of key and value: map slot, headers and allocator rounding.
pub const ENTRY_OVERHEAD_BYTES: usize = 96;
/// Extra bytes charged for an entry with an expiry (its slot in the expiry index).
pub const EXPIRY_OVERHEAD_BYTES: usize = 48;
/// Eviction markers hold at most this fraction (1/n) of the memory limit; beyond it the oldest are dropped.
pub const EVICTED_MARKERS_SHARE: usize = 8;
/// Most entries sampled to find a value to evict before the store reports that none is left.
const EVICTION_SAMPLES_MAX: usize = 256;

/// One stored key's state: a value, or a marker (tombstone, eviction) that replicas must also learn.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The value bytes (empty for markers).
    pub value: Bytes,
    /// The version vector of the write that produced this state.
    pub vector: VersionVector,
    /// Absolute expiry in Unix milliseconds; 0 means no expiry. Markers always expire (their grace period).
    pub expire_at_ms: Millis,
    /// Value or marker.
    pub kind: EntryKind,
    /// Last access, in units of 100 ms of the driver's clock (approximate LRU).
    lru: u32,
}

impl Entry {
    /// A value entry.
    pub fn new(value: Bytes, vector: VersionVector, expire_at_ms: Millis) -> Entry {
        Entry { value, vector, expire_at_ms, kind: EntryKind::Value, lru: 0 }
    }

    /// A tombstone or eviction marker, dropped at `expire_at_ms`.
    pub fn marker(kind: EntryKind, vector: VersionVector, expire_at_ms: Millis) -> Entry {
        Entry { value: Bytes::new(), vector, expire_at_ms, kind, lru: 0 }
    }

    /// Whether the entry has expired at `now`.
    pub fn is_expired(&self, now: Millis) -> bool {
        self.expire_at_ms != 0 && self.expire_at_ms <= now
    }

    /// Whether clients can read the entry (a value, not a marker).
    pub fn is_value(&self) -> bool {
        self.kind == EntryKind::Value
    }

    /// The entry as it travels to another replica.
    pub fn to_wire(&self) -> WireEntry {
        WireEntry {
            kind: self.kind,
            value: self.value.clone(),
            vector: self.vector.clone(),
            expire_at_ms: self.expire_at_ms,
        }
    }

    /// An entry received from another replica (markers carry no value).
    pub fn from_wire(w: WireEntry) -> Entry {
        let value = if w.kind == EntryKind::Value { w.value } else { Bytes::new() };
        Entry { value, vector: w.vector, expire_at_ms: w.expire_at_ms, kind: w.kind, lru: 0 }
    }

    /// The order of payloads used when two replicas carry the same latest write: markers beat values, so an
    /// eviction marker (same version as the value it evicted) wins and spreads.
    fn payload_rank(&self) -> (EntryKind, Millis, &[u8]) {
        (self.kind, self.expire_at_ms, &self.value)
    }
}

/// A hash of one key's state, equal on replicas that hold the same version of it (stable across builds).
pub fn entry_hash(key: &[u8], entry: &Entry) -> u64 {
    let mut h = mix64(u64::from(crc32fast::hash(key)) ^ ((key.len() as u64) << 32));
    h = mix64(h ^ entry.kind as u64 ^ entry.expire_at_ms.rotate_left(8));
    for (node, time) in entry.vector.entries() {
        h = mix64(h ^ node.0);
        h = mix64(h ^ time.0);
    }
    h
}

/// What merging a replica's entry did to the local copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MergeOutcome {
    /// The local state changed.
    pub changed: bool,
    /// Two concurrent writes were settled by last-writer-wins (one of them is lost).
    pub lww_conflict: bool,
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
    /// Eviction markers dropped before their grace to keep them within their share of the memory limit.
    pub evicted_markers_dropped: u64,
}

/// What an entry adds to its bucket's digest: its hash, except eviction markers, which add nothing. A replica
/// that evicted a marker (or never had one) and a replica holding the marker then agree, so anti-entropy does not
/// keep sending markers to a node under memory pressure; a replica still holding the evicted value differs, and
/// the exchange gives it the marker.
pub fn digest_hash(key: &[u8], entry: &Entry) -> u64 {
    if entry.kind == EntryKind::Evicted {
        0
    } else {
        entry_hash(key, entry)
    }
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

    /// Make expired values leave a tombstone for `grace` ms past their expiry (replicated stores), or not.
    pub fn set_expiry_grace(&mut self, grace: Option<Millis>) {
        self.expiry_grace = grace;
    }

    /// The tombstone an expired value leaves in a replicated store, while it is within its grace at `now`.
    fn expiry_tombstone(&self, value: &Entry, now: Millis) -> Option<Entry> {
        let grace = self.expiry_grace?;
        let until = value.expire_at_ms.saturating_add(grace);
        (value.is_value() && value.expire_at_ms != 0 && until > now)
            .then(|| Entry::marker(EntryKind::Tombstone, value.vector.clone(), until))
    }

    /// Reclaim the expired entry of `key`: a value is counted as expired and, in a replicated store, replaced by
    /// its tombstone; a marker goes.
    fn expire_entry(&mut self, key: &[u8], now: Millis) {
        let Some(old) = self.remove(key) else { return };
        if old.is_value() {
            self.stats.expired_keys += 1;
        }
        if let Some(tombstone) = self.expiry_tombstone(&old, now) {
            self.insert(key, tombstone, now);
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

    /// Merge a replica's entry for `key` into the local copy: the result is the version-vector join (pointwise
    /// max of vectors, payload of the latest write; markers beat values carrying the same write). An entry
    /// expired at `now` that wins removes the key; one that loses changes nothing.
    pub fn merge(&mut self, key: &[u8], incoming: Entry, now: Millis) -> MergeOutcome {
        // One hash lookup; later steps work on the (bucket, index) it found.
        let b = bucket_of(key);
        let mut found = self.buckets[b].get_index_of(key);
        if found.is_some_and(|i| self.buckets[b][i].is_expired(now)) {
            self.expire_entry(key, now);
            found = self.buckets[b].get_index_of(key);
        }
        // An expired value from a replica counts as the tombstone it leaves; past its grace, as a tombstone that
        // is already gone: it still supersedes an older local copy (which goes) but is not stored.
        let incoming = if incoming.is_expired(now) {
            self.expiry_tombstone(&incoming, now)
                .unwrap_or_else(|| Entry::marker(EntryKind::Tombstone, incoming.vector, now))
        } else {
            incoming
        };
        let Some(i) = found else {
            // An eviction marker for a key this replica does not hold has nothing to take away here (and a
            // replica under memory pressure should not pay for one).
            if incoming.is_expired(now) || incoming.kind == EntryKind::Evicted {
                return MergeOutcome::default();
            }
            self.put(b, None, key, incoming, now);
            return MergeOutcome { changed: true, lww_conflict: false };
        };
        let current = &self.buckets[b][i];
        let merged = current.vector.merge(&incoming.vector);
        let lww_conflict = merged.lww_settled();
        let keep_current = match merged.winner {
            crate::core::vversion::Winner::Left => true,
            crate::core::vversion::Winner::Right => false,
            crate::core::vversion::Winner::Same => current.payload_rank() >= incoming.payload_rank(),
        };
        if keep_current {
            if merged.vector == current.vector {
                return MergeOutcome { changed: false, lww_conflict };
            }
            // Only the vector changes: value, expiry, kind, size and last use stay.
            let entry = &mut self.buckets[b][i];
            self.digests[b] ^= digest_hash(key, entry);
            entry.vector = merged.vector;
            self.digests[b] ^= digest_hash(key, entry);
            return MergeOutcome { changed: true, lww_conflict };
        }
        let mut next = incoming;
        next.vector = merged.vector;
        if next.is_expired(now) {
            self.remove(key);
        } else {
            self.put(b, Some(i), key, next, now);
        }
        MergeOutcome { changed: true, lww_conflict }
    }

    /// Whether merging `incoming` would replace the payload of the local copy of `key` at `now` (not only join
    /// the vectors), and how many bytes the store would grow by then (0 when it would not).
    pub fn merge_growth(&self, key: &[u8], incoming: &Entry, now: Millis) -> usize {
        let current = self.buckets[bucket_of(key)].get(key).filter(|e| !e.is_expired(now));
        let added = entry_bytes(key, incoming);
        let Some(current) = current else { return added };
        let takes = match current.vector.merge(&incoming.vector).winner {
            crate::core::vversion::Winner::Left => false,
            crate::core::vversion::Winner::Right => true,
            crate::core::vversion::Winner::Same => current.payload_rank() < incoming.payload_rank(),
        };
        if takes {
            added.saturating_sub(entry_bytes(key, current))
        } else {
            0
        }
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
    fn put(&mut self, b: usize, found: Option<usize>, key: &[u8], mut entry: Entry, now: Millis) -> Option<Entry> {
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

    /// Change the expiry of an existing key (0 removes it); returns false when the key is absent.
    pub fn set_expiry(&mut self, key: &[u8], expire_at_ms: Millis) -> bool {
        let b = bucket_of(key);
        let Some(entry) = self.buckets[b].get_mut(key).filter(|e| e.is_value()) else { return false };
        let old_bytes = entry_bytes(key, entry);
        self.digests[b] ^= digest_hash(key, entry);
        let old_at = std::mem::replace(&mut entry.expire_at_ms, expire_at_ms);
        self.digests[b] ^= digest_hash(key, entry);
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

    /// Change the version vector of an existing key in place (value and expiry untouched).
    pub fn set_vector(&mut self, key: &[u8], vector: VersionVector) {
        let b = bucket_of(key);
        if let Some(entry) = self.buckets[b].get_mut(key) {
            self.digests[b] ^= digest_hash(key, entry);
            entry.vector = vector;
            self.digests[b] ^= digest_hash(key, entry);
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
            let (at, key) = self.expiring.pop_first().expect("first exists");
            // The index is exact, so the entry exists with this expiry; checking keeps a bad index from looping.
            if self.buckets[bucket_of(&key)].get(&key[..]).is_some_and(|e| e.expire_at_ms == at) {
                self.expire_entry(&key, now);
            }
            removed += 1;
        }
        removed
    }

    /// The earliest expiry in the store, if any.
    pub fn next_expiry(&self) -> Option<Millis> {
        self.expiring.first().map(|(at, _)| *at)
    }

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
        self.buckets[b].get_index_of(&key[..]).map(|i| (b, i))
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

#[cfg(test)]
mod tests {
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
}
