//! Getting data to the nodes that should hold it: hinted handoff (copies kept for a replica that did not
//! answer, delivered when it is live again) and range hand-off (keys this node no longer owns after a ring
//! change are pushed to their owners, then dropped here once every owner acknowledged them).
//!
//! Hints are bounded by count (the oldest go first) and by age; every drop is counted. A delivery round and a
//! hand-off sweep send at most `STEP_BYTES_MAX` to one peer, in `Put`s of at most `PUT_BYTES_MAX` (`batch`); hints
//! past the budget wait for the next round, keys past it for the sweep's next pass. The hand-off sweep waits
//! until the ring has been stable for a while, so a flapping member does not make nodes shuffle data back and forth.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::batch::{entry_bytes, split_by_bytes, Budget, PUT_BYTES_MAX, STEP_BYTES_MAX};
use super::sharing::{Share, Sharing};
use super::state::Pending;
use std::net::SocketAddr;

use super::wire::{AeKey, PeerMsg, WireEntry};
use crate::core::driver::RequestId;
use crate::core::node::{Clustered, Outbox, Output, TimerId};
use crate::core::store::{entry_hash, BUCKETS};
use crate::core::Millis;

/// Keys headed for one set of owners: the owners' names, the keys' descriptions and their estimated bytes (a
/// group is one offer, answered with one `Put`, so it holds at most `PUT_BYTES_MAX`, or a single key).
type OwnerGroup = (Vec<String>, Vec<AeKey>, usize);

/// Period of the hint delivery timer.
pub const HINT_PERIOD_MS: Millis = 1_000;
/// Most hinted keys sent to one replica per delivery round.
const HINTS_PER_ROUND: usize = 1_000;
/// Period of the hand-off sweep.
pub const SWEEP_PERIOD_MS: Millis = 1_000;
/// Most keys one sweep round hands off.
const SWEEP_KEYS_MAX: usize = 2_000;

/// What one sweep round collects: the keys to offer, grouped by owner set, and the round's bounds.
struct SweepBatch {
    /// Groups the keys by owner set, so each group is one offer per owner.
    groups: Vec<OwnerGroup>,
    /// Keys collected.
    count: usize,
    /// The values one round hands off are bounded in bytes too.
    budget: Budget,
}

impl SweepBatch {
    fn new() -> SweepBatch {
        SweepBatch { groups: Vec::new(), count: 0, budget: Budget::new(STEP_BYTES_MAX) }
    }

    /// Add a key of `size` bytes headed for `owners`: to the latest group for the same owners with room for it
    /// under `PUT_BYTES_MAX`, else to a new group.
    fn add(&mut self, owners: Vec<String>, item: AeKey, size: usize) {
        match self.groups.iter_mut().rev().find(|(o, _, bytes)| *o == owners && *bytes + size <= PUT_BYTES_MAX) {
            Some((_, items, bytes)) => {
                items.push(item);
                *bytes += size;
            }
            None => self.groups.push((owners, vec![item], size)),
        }
        self.count += 1;
    }
}

impl Clustered<'_> {
    /// Record that `target` should get this node's copy of `key` when it is reachable again.
    pub(crate) fn add_hint(&mut self, now: Millis, target: String, key: Bytes) {
        let max = self.local.config.hints_max;
        let repl = self.repl_mut();
        repl.stats.hints_stored += 1;
        repl.hints.insert(target, key, now);
        // Drop the oldest hints (ties: the first recorded), counted; O(log n) each.
        while repl.hints.len() > max && repl.hints.pop_oldest() {
            repl.stats.hints_dropped += 1;
        }
    }

    /// Hint timer: drop expired hints, then send each live replica up to a round's worth of its hints.
    pub(crate) fn hint_round(&mut self, now: Millis, out: &mut Outbox) {
        out.push(Output::Schedule { after_ms: HINT_PERIOD_MS, timer: TimerId::Hints });
        let age_max = self.local.config.hint_age_max_ms;
        let repl = self.repl_mut();
        let dropped = repl.hints.drop_recorded_before(now.saturating_sub(age_max));
        repl.stats.hints_dropped += dropped as u64;
        let busy: BTreeSet<String> = repl
            .pending
            .values()
            .filter_map(|p| match p {
                Pending::HintDelivery { target, .. } => Some(target.clone()),
                _ => None,
            })
            .collect();
        let mut batches: Vec<(String, Vec<Bytes>)> = Vec::new();
        for (target, key) in repl.hints.keys() {
            if busy.contains(target) || !repl.addrs.contains_key(target) {
                continue;
            }
            match batches.last_mut() {
                Some((t, keys)) if t == target => {
                    if keys.len() < HINTS_PER_ROUND {
                        keys.push(key.clone());
                    }
                }
                _ => batches.push((target.clone(), vec![key.clone()])),
            }
        }
        for (target, keys) in batches {
            let Some(addr) = self.repl.addr_of(&target) else { continue };
            // A round sends at most a step's bytes to one replica, in `Put`s of at most `PUT_BYTES_MAX`, each its
            // own delivery; hints past the budget stay for the next round.
            let mut budget = Budget::new(STEP_BYTES_MAX);
            let mut moot = Vec::new();
            let mut entries = Vec::new();
            for k in keys {
                match self.local.store.raw(&k, now) {
                    None => moot.push(k),
                    Some(e) => {
                        let wire = e.to_wire();
                        if !budget.take(entry_bytes(&k, &wire)) {
                            break;
                        }
                        entries.push((k, wire));
                    }
                }
            }
            // Nothing left to deliver for these (expired, or handed off already): the hints are moot.
            let repl = self.repl_mut();
            for k in moot {
                repl.hints.remove(&(target.clone(), k));
            }
            for entries in split_by_bytes(entries, PUT_BYTES_MAX) {
                let keys = entries.iter().map(|(k, _)| k.clone()).collect();
                let id = self.repl.id();
                out.push(Output::SendPeer { to: addr, msg: PeerMsg::Put { id: Some(id), entries, hint_for: None } });
                out.push(Output::Schedule {
                    after_ms: self.local.config.request_timeout_ms,
                    timer: TimerId::Request(id),
                });
                self.repl.pending.insert(id, Pending::HintDelivery { target: target.clone(), keys });
            }
        }
    }

    /// A hint delivery was acknowledged: those hints are done.
    pub(crate) fn hints_delivered(&mut self, id: RequestId) {
        let Some(Pending::HintDelivery { target, keys }) = self.repl.pending.remove(&id) else { return };
        let repl = self.repl_mut();
        for k in keys {
            if repl.hints.remove(&(target.clone(), k)) {
                repl.stats.hints_delivered += 1;
            }
        }
    }

    /// Hand-off sweep: keys in the next buckets that this node no longer owns go to their owners.
    pub(crate) fn sweep_round(&mut self, now: Millis, out: &mut Outbox) {
        out.push(Output::Schedule { after_ms: SWEEP_PERIOD_MS, timer: TimerId::Sweep });
        self.refresh_ring(now);
        if !self.sweep_may_run(now) {
            return;
        }
        let groups = self.sweep_collect(now);
        self.offer_handoffs(groups, out);
    }

    /// Whether a sweep round runs: the ring has settled, there is something to hand off, and the previous
    /// round's hand-offs are all answered.
    fn sweep_may_run(&self, now: Millis) -> bool {
        if !self.ring_settled(now) || self.local.store.is_empty() {
            return false;
        }
        !self.repl.pending.values().any(|p| matches!(p, Pending::Handoff { .. }))
    }

    /// Collect this round's keys that this node no longer owns, grouped by owner set: one pass over the
    /// occupied buckets at most, in ring order from where the last round stopped, within `SWEEP_KEYS_MAX` keys
    /// and `STEP_BYTES_MAX` bytes. Moves the sweep cursor to where the next round starts.
    fn sweep_collect(&mut self, now: Millis) -> Vec<OwnerGroup> {
        let me = self.local.config.name.clone();
        let mut cursor = self.repl.sweep_cursor;
        // This node's own share of each bucket: wholly owned buckets are skipped without looking at their keys.
        let own = self.sharing_with(&me);
        let mut batch = SweepBatch::new();
        let start = cursor;
        let mut passed = 0;
        loop {
            let found = self.local.store.next_occupied(cursor).or_else(|| self.local.store.next_occupied(0));
            let Some(b) = found else { break };
            let distance = (b + BUCKETS - start) % BUCKETS;
            if distance < passed {
                break;
            }
            passed = distance + 1;
            cursor = b;
            self.sweep_bucket(now, cursor, &own, &me, &mut batch);
            // A bucket cut short by the budget is passed too (its other keys go on the next pass): one that cannot be
            // handed off (its owners refuse it) must not hold the sweep in place.
            cursor = (cursor + 1) % BUCKETS;
            if batch.count >= SWEEP_KEYS_MAX || passed >= BUCKETS || batch.budget.exhausted() {
                break;
            }
        }
        self.repl.sweep_cursor = cursor;
        batch.groups
    }

    /// Add to `batch` the live keys of bucket `b` that `me` does not own, until the byte budget runs out.
    fn sweep_bucket(&self, now: Millis, b: usize, own: &Sharing, me: &str, batch: &mut SweepBatch) {
        let n = self.local.config.replicas;
        let share = own.buckets[b];
        let entries = self.local.store.bucket_entries(b).filter(|_| share != Share::All);
        for (key, entry) in entries {
            if batch.budget.exhausted() {
                break;
            }
            if entry.is_expired(now) || (share == Share::Mixed && own.key_shared(key)) {
                continue;
            }
            let owners = self.repl.ring.preference_list(key, n);
            if owners.contains(&me) {
                continue;
            }
            let size = entry_bytes(key, &entry.to_wire());
            if !batch.budget.take(size) {
                break;
            }
            let owners: Vec<String> = owners.into_iter().map(String::from).collect();
            let item =
                AeKey { key: Bytes::copy_from_slice(key), hash: entry_hash(key, entry), latest: entry.vector.latest() };
            batch.add(owners, item, size);
        }
    }

    /// Offer each group to its owners, as one pending hand-off that every reachable owner must answer.
    fn offer_handoffs(&mut self, groups: Vec<OwnerGroup>, out: &mut Outbox) {
        // Offer (key, hash, latest write) first: owners ask only for what they lack or hold older, so keys they
        // already have cost a description, not their values.
        for (owners, items, _) in groups {
            let waiting: BTreeSet<_> = owners.iter().filter_map(|o| self.repl.addr_of(o)).collect();
            if waiting.is_empty() {
                continue;
            }
            let id = self.repl.id();
            let keys = items.iter().map(|k| (k.key.clone(), k.hash)).collect();
            for to in &waiting {
                out.push(Output::SendPeer { to: *to, msg: PeerMsg::Offer { id, keys: items.clone() } });
            }
            out.push(Output::Schedule { after_ms: self.local.config.request_timeout_ms, timer: TimerId::Request(id) });
            self.repl.pending.insert(id, Pending::Handoff { keys, waiting });
        }
    }

    /// An owner was offered keys (hand-off): answer with those it lacks or holds in another version.
    pub(crate) fn offered(&mut self, now: Millis, from: SocketAddr, id: RequestId, keys: Vec<AeKey>, out: &mut Outbox) {
        let want = keys
            .into_iter()
            // Any other version is wanted, an older one too: the offerer drops its copy afterwards, so a concurrent
            // write must be merged here (its vector entry kept) even when this copy wins last-writer-wins.
            .filter(|k| self.local.store.raw(&k.key, now).is_none_or(|mine| entry_hash(&k.key, mine) != k.hash))
            .map(|k| k.key)
            .collect();
        out.push(Output::SendPeer { to: from, msg: PeerMsg::Want { id, keys: want } });
    }

    /// An owner answered an offer: nothing wanted counts as its acknowledgement; otherwise send what it wants
    /// (its `PutAck` acknowledges).
    pub(crate) fn wanted(&mut self, now: Millis, from: SocketAddr, id: RequestId, keys: Vec<Bytes>, out: &mut Outbox) {
        let Some(Pending::Handoff { waiting, .. }) = self.repl.pending.get_mut(&id) else { return };
        if !waiting.contains(&from) {
            return;
        }
        if keys.is_empty() {
            waiting.remove(&from);
            if waiting.is_empty() {
                self.handoff_done(now, id);
            }
            return;
        }
        let entries: Vec<(Bytes, WireEntry)> =
            keys.into_iter().filter_map(|k| self.local.store.raw(&k, now).map(|e| (k.clone(), e.to_wire()))).collect();
        out.push(Output::SendPeer { to: from, msg: PeerMsg::Put { id: Some(id), entries, hint_for: None } });
    }

    /// Every owner acknowledged a hand-off: drop the keys here, unless they changed meanwhile or this node
    /// owns them again.
    pub(crate) fn handoff_done(&mut self, now: Millis, id: RequestId) {
        let Some(Pending::Handoff { keys, .. }) = self.repl.pending.remove(&id) else { return };
        let me = self.local.config.name.clone();
        let n = self.local.config.replicas;
        for (key, hash) in keys {
            let unchanged = self.local.store.raw(&key, now).is_some_and(|e| entry_hash(&key, e) == hash);
            let owned = self.repl.ring.preference_list(&key, n).contains(&me.as_str());
            if unchanged && !owned {
                self.local.store.remove(&key);
                self.repl.stats.handoff_dropped += 1;
            }
        }
    }
}
