//! Expiry: the index of (expiry, key) pairs, active expiry (`expire_due`), and the tombstone an expired value
//! leaves in a replicated store for its grace period (`set_expiry_grace`), so an older copy of the key held
//! elsewhere cannot come back in its place. Lookups reclaim an expired entry lazily through `expire_entry`.

use super::{bucket_of, digest_hash, entry_bytes, Entry, Store};
use crate::core::replication::EntryKind;
use crate::core::Millis;

impl Store {
    /// Make expired values leave a tombstone for `grace` ms past their expiry (replicated stores), or not.
    pub fn set_expiry_grace(&mut self, grace: Option<Millis>) {
        self.expiry_grace = grace;
    }

    /// The tombstone an expired value leaves in a replicated store, while it is within its grace at `now`.
    pub(super) fn expiry_tombstone(&self, value: &Entry, now: Millis) -> Option<Entry> {
        let grace = self.expiry_grace?;
        let until = value.expire_at_ms.saturating_add(grace);
        (value.is_value() && value.expire_at_ms != 0 && until > now)
            .then(|| Entry::marker(EntryKind::Tombstone, value.vector.clone(), until))
    }

    /// Reclaim the expired entry of `key`: a value is counted as expired and, in a replicated store, replaced by
    /// its tombstone; a marker goes.
    pub(super) fn expire_entry(&mut self, key: &[u8], now: Millis) {
        let Some(old) = self.remove(key) else { return };
        if old.is_value() {
            self.stats.expired_keys += 1;
        }
        if let Some(tombstone) = self.expiry_tombstone(&old, now) {
            self.insert(key, tombstone, now);
        }
    }

    /// Number of keys with an expiry.
    pub fn expiring_len(&self) -> usize {
        self.expiring.len()
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
}
