//! Replication under memory pressure: what a node does when `--maxmemory` is reached on a path that is not a
//! client write.
//!
//! A value from a peer (a replicated write, a hint, a hand-off, anti-entropy, read repair) is admitted like a
//! client write: when the bytes it adds do not fit under the limit, the policy evicts to make room; when it cannot
//! (`noeviction`, or nothing left to evict) the entry is refused, counted, and a `Put` that asked for an
//! acknowledgement is answered with `PutRefused` for those keys, so the coordinator does not count this replica
//! and the client hears OOM when its level cannot be met. Markers are always admitted: a delete must always work,
//! and a tombstone is bounded by its grace.
//!
//! Evictions spread at once: the markers of the keys a node just evicted go to the keys' other live owners
//! (a `Put` without acknowledgement), so those owners drop the same version too and no replica keeps a copy that
//! anti-entropy would push back; once every owner holds the marker (or nothing), the marker itself can go without
//! the value coming back.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use bytes::Bytes;

use super::state::Pending;
use super::wire::{PeerMsg, WireEntry};
use crate::core::driver::RequestId;
use crate::core::node::{Clustered, Outbox, Output};
use crate::core::reply::Reply;
use crate::core::store::Entry;
use crate::core::Millis;

/// Most eviction markers in one `Put`.
const MARKERS_PER_PUT: usize = 1_000;

impl Clustered<'_> {
    /// Send the markers of the keys evicted during this input to the keys' other live owners.
    pub(crate) fn spread_evictions(&mut self, out: &mut Outbox) {
        let keys = self.local.store.take_evicted();
        if keys.is_empty() {
            return;
        }
        let me = self.local.config.name.clone();
        let mut by_owner: BTreeMap<SocketAddr, Vec<(Bytes, WireEntry)>> = BTreeMap::new();
        for (key, marker) in keys {
            // Sent even when the local marker is already gone again (one input that evicts many keys can push the
            // first markers out of their share): the owners still holding the value must drop it, or anti-entropy
            // pushes it back. A newer write to the key since wins over the marker wherever it is.
            let marker = marker.to_wire();
            for owner in self.owner_names(&key) {
                if *owner == *me {
                    continue;
                }
                if let Some(addr) = self.repl.addr_of(&owner) {
                    by_owner.entry(addr).or_default().push((key.clone(), marker.clone()));
                }
            }
        }
        for (to, mut entries) in by_owner {
            while !entries.is_empty() {
                let rest = entries.split_off(entries.len().min(MARKERS_PER_PUT));
                out.push(Output::SendPeer { to, msg: PeerMsg::Put { id: None, entries, hint_for: None } });
                entries = rest;
            }
        }
    }

    /// Whether `entry` from a peer may be merged into the local copy of `key` under `--maxmemory`, evicting by
    /// policy to make room for the bytes it adds.
    pub(crate) fn admit(&mut self, now: Millis, key: &[u8], entry: &Entry) -> bool {
        let Some(limit) = self.local.config.maxmemory_bytes else { return true };
        if !entry.is_value() || entry.is_expired(now) {
            return true;
        }
        let growth = self.local.store.merge_growth(key, entry, now);
        if growth == 0 || self.local.store.used_bytes() + growth <= limit {
            return true;
        }
        // A value larger than the whole limit is refused without emptying the store for it first.
        growth <= limit && self.local.make_room_below(now, limit - growth)
    }

    /// A peer stored a `Put` but for `keys` (lack of memory): those count as not acknowledged.
    pub(crate) fn put_refused(
        &mut self,
        now: Millis,
        from: SocketAddr,
        id: RequestId,
        keys: Vec<Bytes>,
        out: &mut Outbox,
    ) {
        let refused: BTreeSet<Bytes> = keys.into_iter().collect();
        let from_name = self.name_of(from);
        match self.repl.pending.get_mut(&id) {
            Some(Pending::HintDelivery { target, keys }) if from_name.as_ref() == Some(target) => {
                // The refused hints stay for a later round; the rest are delivered.
                keys.retain(|k| !refused.contains(k));
                self.hints_delivered(id);
            }
            Some(Pending::Handoff { keys, waiting }) if waiting.contains(&from) => {
                // What an owner refused stays here; for the rest the answer counts as its acknowledgement.
                keys.retain(|(k, _)| !refused.contains(k));
                waiting.remove(&from);
                if waiting.is_empty() {
                    self.handoff_done(now, id);
                }
            }
            Some(Pending::Write { .. }) => self.write_refused(now, from, id, out),
            _ => {}
        }
    }

    /// A replica of write `id` refused it: fail the write with OOM as soon as its level can no longer be met.
    ///
    /// A fallback that refused to hold the hint is a failed fallback instead: the hint is kept here, as the
    /// replica itself may have room.
    fn write_refused(&mut self, now: Millis, from: SocketAddr, id: RequestId, out: &mut Outbox) {
        let Some(Pending::Write { origin, acks, needed, targets, level, entries, .. }) = self.repl.pending.get_mut(&id)
        else {
            return;
        };
        let Some(t) =
            targets.iter_mut().find(|t| !t.acked && !t.refused && (t.addr == from || t.fallback == Some(from)))
        else {
            return;
        };
        if t.addr != from {
            if !t.hinted_here {
                t.hinted_here = true;
                let name = t.name.to_string();
                let keys: Vec<Bytes> = entries.iter().map(|(k, _)| k.clone()).collect();
                for key in keys {
                    self.add_hint(now, name.clone(), key);
                }
            }
            return;
        }
        t.refused = true;
        let refused = targets.iter().filter(|t| t.refused).count();
        let possible = *acks + targets.iter().filter(|t| !t.acked && !t.refused).count();
        let done = targets.iter().all(|t| t.acked || t.refused);
        let failed = if possible < *needed { origin.take() } else { None };
        let text = format!(
            "OOM write at {level}: {acks} of {needed} required replicas acknowledged, {refused} refused for lack of memory"
        );
        if done {
            self.repl.pending.remove(&id);
        }
        let stats = &mut self.repl.stats;
        stats.replica_refusals += 1;
        if let Some(origin) = failed {
            self.respond(origin, Reply::error(text), out);
        }
    }
}
