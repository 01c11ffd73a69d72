//! Merging a replica's entry into the local copy: the version-vector join, and what a merge would cost in bytes.
//!
//! The result of a merge is the pointwise max of the vectors with the payload of the latest write; when both
//! carry the same latest write, markers beat values (`Entry::payload_rank`), so an eviction marker spreads.

use super::{bucket_of, digest_hash, entry_bytes, Entry, Store};
use crate::core::replication::EntryKind;
use crate::core::Millis;

/// What merging a replica's entry did to the local copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MergeOutcome {
    /// The local state changed.
    pub changed: bool,
    /// Two concurrent writes were settled by last-writer-wins (one of them is lost).
    pub lww_conflict: bool,
}

impl Store {
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
}
