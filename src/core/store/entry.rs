//! One stored key's state (`Entry`: a value, a tombstone or an eviction marker) and the hashes replicas compare.
//!
//! `entry_hash` is equal on replicas that hold the same version of a key and stable across builds; `digest_hash`
//! is what an entry adds to its bucket's digest (nothing for an eviction marker).

use bytes::Bytes;

use crate::core::replication::{EntryKind, WireEntry};
use crate::core::ring::mix64;
use crate::core::vversion::VersionVector;
use crate::core::Millis;

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
    pub(super) lru: u32,
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
    pub(super) fn payload_rank(&self) -> (EntryKind, Millis, &[u8]) {
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
