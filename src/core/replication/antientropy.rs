//! Anti-entropy: two replicas compare what they both should hold and exchange only what differs.
//!
//! The store keeps, per bucket (a contiguous slice of the ring), the XOR of a hash of every entry, updated on
//! each change. For a pair of nodes, a bucket is shared fully (every ring arc in it is replicated by both),
//! not at all, or partly; a partly shared bucket's digest is computed over its shared keys only. A round:
//! the initiator sends one hash per group of buckets; the peer answers with the bucket digests of the groups that
//! differ; the initiator sends the 16 sub-bucket digests of each bucket that differs; the peer describes its shared
//! keys in the sub-buckets that differ (key, entry hash, latest write); the initiator sends the entries the peer
//! lacks or holds older and asks for the ones it lacks or holds older itself.
//! Both sides merge (a join), so both end with the same entry. The fixed cost of a round is one hash per group
//! (2 KiB); everything else grows with the difference. A round that found differences is followed quickly by
//! another with the same peer, so a large difference drains in seconds, not in periods. Every step is bounded in
//! bytes (`batch`): `AeKeys` describes whole buckets up to `AE_KEYS_BYTES_MAX`, and the entries one step pushes or
//! answers to a pull are at most `STEP_BYTES_MAX`, in `Put`s of at most `PUT_BYTES_MAX`; the rest goes in the
//! next (quick) round, since those keys still differ.

use super::wire::Unused;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use super::batch::{entry_bytes, split_by_bytes, Budget, PUT_BYTES_MAX, STEP_BYTES_MAX};
pub use super::sharing::Share;
use super::sharing::{member_index, ArcTable, Sharing};
use super::wire::{AeKey, PeerMsg, WireEntry};
use crate::core::node::{Clustered, Outbox, Output, TimerId};
use crate::core::ring::{key_scatter, mix64};
use crate::core::store::{digest_hash, entry_hash, BUCKETS};
use crate::core::version::Version;
use crate::core::Millis;

/// Buckets per group in the first exchange.
pub const BUCKETS_PER_GROUP: usize = 64;
/// Number of groups.
pub const GROUPS: usize = BUCKETS / BUCKETS_PER_GROUP;
/// Most buckets refined in one round; the rest waits for the next (quick) round.
const BUCKETS_PER_ROUND: usize = 2_048;
/// Sub-buckets per bucket in the refinement step.
const SUBS: usize = 16;

/// The sub-bucket of a key: the top bits of its scatter hash (every key of a bucket, one slot, has the same ring
/// position, so its position cannot split the bucket).
fn sub_of(key: &[u8]) -> usize {
    (key_scatter(key) >> (64 - SUBS.trailing_zeros())) as usize
}
/// Delay of the next round with a peer that differed.
const CHASE_MS: Millis = 200;
/// Most quick rounds in a row with one peer before the turn moves on (one pair that keeps differing, for example
/// while their clocks disagree on an expiry, must not starve the others).
const CHASE_ROUNDS_MAX: u32 = 10;
/// Sharings kept (the peers of the last rounds, both ways): a small cluster's rounds come back to the same few.
const SHARE_CACHE_MAX: usize = 4;
/// Most expired keys an anti-entropy step reclaims before it describes the store.
const EXPIRE_KEYS_PER_ROUND: usize = 2_000;
/// Most estimated bytes of key descriptions in one `AeKeys`; the buckets past it wait for the next round.
const AE_KEYS_BYTES_MAX: usize = 4 << 20;
/// Estimated bytes of one key description beside the key: hash and latest write.
const AE_KEY_OVERHEAD_BYTES: usize = 24;

impl Clustered<'_> {
    /// Anti-entropy timer: start a round with the next peer (or with the one that differed last time).
    pub(crate) fn anti_entropy_round(&mut self, now: Millis, out: &mut Outbox) {
        self.refresh_ring(now);
        self.update_readiness(now);
        // The peers are the live members but this node, in name order (counted and picked without copying them).
        let me = self.local.config.name.clone();
        let addrs = &self.repl.addrs;
        let peer_count = addrs.len() - usize::from(addrs.contains_key(&me));
        // Settle a slice of expiries first, so both sides describe expired values the same way (as their
        // tombstones); a larger backlog is active expiry's, and differences it causes meanwhile are repaired.
        self.local.store.expire_due(now, EXPIRE_KEYS_PER_ROUND);
        let chase = self.repl.ae_chase.take();
        let chase = if chase.is_some() && self.repl.ae_chase_rounds < CHASE_ROUNDS_MAX {
            self.repl.ae_chase_rounds += 1;
            chase
        } else {
            self.repl.ae_chase_rounds = 0;
            None
        };
        let after = if chase.is_some() { CHASE_MS } else { self.local.config.anti_entropy_period_ms };
        out.push(Output::Schedule { after_ms: after, timer: TimerId::AntiEntropy });
        if peer_count == 0 {
            return;
        }
        let peer = match chase.filter(|c| *c != me && self.repl.addrs.contains_key(c)) {
            Some(p) => p,
            None => {
                let turn = self.repl.ae_turn % peer_count;
                self.repl.ae_turn = turn + 1;
                let mut peers = self.repl.addrs.keys().filter(|n| **n != me);
                let Some(p) = peers.nth(turn).cloned() else { return };
                p
            }
        };
        let Some(addr) = self.repl.addr_of(&peer) else { return };
        self.send_flush_epoch(addr, out);
        let sharing = self.sharing_with(&peer);
        if sharing.buckets.iter().all(|s| *s == Share::None) {
            return;
        }
        let hashes = self.group_hashes(&sharing);
        let ring = self.repl.ring.digest();
        let stats = &mut self.repl.stats;
        stats.ae_rounds += 1;
        stats.ae_bytes_sent += 8 * hashes.len() as u64;
        let hlc = self.local.hlc.now(now).0;
        out.push(Output::SendPeer { to: addr, msg: PeerMsg::AeGroups { unused: Unused, ring, hashes, hlc } });
    }

    /// Step 2 (at the peer): answer with the bucket digests of the groups that differ.
    pub(crate) fn ae_groups(
        &mut self,
        now: Millis,
        from: SocketAddr,
        ring: u64,
        hashes: Vec<u64>,
        hlc: u64,
        out: &mut Outbox,
    ) {
        self.observe_peer_clock(now, hlc);
        self.local.store.expire_due(now, EXPIRE_KEYS_PER_ROUND);
        self.refresh_ring(now);
        if ring != self.repl.ring.digest() || hashes.len() != GROUPS {
            return;
        }
        let Some(peer) = self.name_of(from) else { return };
        let sharing = self.sharing_with(&peer);
        let mine = self.group_hashes(&sharing);
        if !self.repl.readiness.is_ready() {
            // The groups that match are in sync with the peer (readiness).
            let equal = (0..GROUPS).filter(|&g| mine[g] == hashes[g]);
            let synced = equal.flat_map(|g| g * BUCKETS_PER_GROUP..(g + 1) * BUCKETS_PER_GROUP);
            let synced: Vec<usize> = synced.filter(|&b| sharing.buckets[b] != Share::None).collect();
            if !synced.is_empty() {
                self.repl.readiness.mark(&peer, synced);
                self.update_readiness(now);
            }
        }
        let mut buckets = Vec::new();
        for g in (0..GROUPS).filter(|&g| mine[g] != hashes[g]) {
            for b in g * BUCKETS_PER_GROUP..(g + 1) * BUCKETS_PER_GROUP {
                if sharing.buckets[b] != Share::None {
                    buckets.push((b as u32, self.pair_digest(&sharing, b)));
                }
            }
        }
        if buckets.is_empty() {
            return;
        }
        self.repl.stats.ae_bytes_sent += 12 * buckets.len() as u64;
        out.push(Output::SendPeer { to: from, msg: PeerMsg::AeBuckets { unused: Unused, buckets } });
    }

    /// Step 3 (at the initiator): the sub-bucket digests of the buckets that differ.
    pub(crate) fn ae_buckets(&mut self, now: Millis, from: SocketAddr, theirs: Vec<(u32, u64)>, out: &mut Outbox) {
        self.local.store.expire_due(now, EXPIRE_KEYS_PER_ROUND);
        let Some(peer) = self.name_of(from) else { return };
        let sharing = self.sharing_with(&peer);
        let mut buckets = Vec::new();
        let mut equal = Vec::new();
        for (b, digest) in theirs {
            let b = b as usize;
            if b >= BUCKETS || sharing.buckets[b] == Share::None {
                continue;
            }
            if self.pair_digest(&sharing, b) == digest {
                equal.push(b);
                continue;
            }
            if buckets.len() >= BUCKETS_PER_ROUND {
                break;
            }
            buckets.push((b as u32, self.sub_digests(&sharing, b).to_vec()));
        }
        if !equal.is_empty() && !self.repl.readiness.is_ready() {
            self.repl.readiness.mark(&peer, equal);
            self.update_readiness(now);
        }
        if buckets.is_empty() {
            return;
        }
        self.repl.ae_chase = Some(peer);
        self.repl.stats.ae_bytes_sent += (buckets.len() * (4 + 8 * SUBS)) as u64;
        out.push(Output::SendPeer { to: from, msg: PeerMsg::AeSubs { unused: Unused, buckets } });
    }

    /// Step 4 (at the peer): describe the shared keys of the sub-buckets that differ.
    pub(crate) fn ae_subs(&mut self, now: Millis, from: SocketAddr, theirs: Vec<(u32, Vec<u64>)>, out: &mut Outbox) {
        self.local.store.expire_due(now, EXPIRE_KEYS_PER_ROUND);
        let Some(peer) = self.name_of(from) else { return };
        let sharing = self.sharing_with(&peer);
        let mut buckets = Vec::new();
        let mut keys = Vec::new();
        let mut described_bytes = 0;
        for (b, subs) in theirs {
            let b = b as usize;
            if b >= BUCKETS || subs.len() != SUBS || sharing.buckets[b] == Share::None {
                continue;
            }
            // Whole buckets only: one left out is not described at all, and the initiator's next round asks again.
            if described_bytes >= AE_KEYS_BYTES_MAX {
                break;
            }
            let mine = self.sub_digests(&sharing, b);
            let mask = (0..SUBS).filter(|&i| mine[i] != subs[i]).fold(0u16, |m, i| m | (1 << i));
            if mask == 0 {
                continue;
            }
            buckets.push((b as u32, mask));
            for (key, hash) in self.shared_keys(&sharing, b) {
                if mask & (1 << sub_of(&key)) != 0 {
                    let latest = self.local.store.raw(&key, now).and_then(|e| e.vector.latest());
                    described_bytes += key.len() + AE_KEY_OVERHEAD_BYTES;
                    keys.push(AeKey { key, hash, latest });
                }
            }
        }
        if buckets.is_empty() {
            return;
        }
        let bytes: usize = keys.iter().map(|k| k.key.len() + 24).sum();
        self.repl.stats.ae_bytes_sent += (bytes + 6 * buckets.len()) as u64;
        out.push(Output::SendPeer { to: from, msg: PeerMsg::AeKeys { unused: Unused, buckets, keys } });
    }

    /// Step 5 (at the initiator): send what the peer lacks or holds older, ask for what this node lacks or holds
    /// older; when neither write is newer (same latest write, different vectors) both go.
    pub(crate) fn ae_keys(
        &mut self,
        now: Millis,
        from: SocketAddr,
        buckets: Vec<(u32, u16)>,
        keys: Vec<AeKey>,
        out: &mut Outbox,
    ) {
        self.local.store.expire_due(now, EXPIRE_KEYS_PER_ROUND);
        let Some(peer) = self.name_of(from) else { return };
        let sharing = self.sharing_with(&peer);
        let theirs: BTreeMap<Bytes, (u64, Option<Version>)> =
            keys.into_iter().map(|k| (k.key, (k.hash, k.latest))).collect();
        let mut push = Vec::new();
        let mut pull = Vec::new();
        // What this step pushes is bounded in bytes; the rest goes in the next (quick) round with this peer.
        let mut budget = Budget::new(STEP_BYTES_MAX);
        for (b, mask) in buckets {
            let b = b as usize;
            if b >= BUCKETS {
                continue;
            }
            for (key, _) in self.shared_keys(&sharing, b) {
                if mask & (1 << sub_of(&key)) != 0 && !theirs.contains_key(&key) {
                    if let Some(e) = self.local.store.raw(&key, now) {
                        let wire = e.to_wire();
                        if budget.take(entry_bytes(&key, &wire)) {
                            push.push((key, wire));
                        }
                    }
                }
            }
        }
        for (key, (hash, latest)) in theirs {
            let Some(mine) = self.local.store.raw(&key, now) else {
                pull.push(key);
                continue;
            };
            if entry_hash(&key, mine) == hash {
                continue;
            }
            let my_latest = mine.vector.latest();
            if my_latest >= latest {
                let wire = mine.to_wire();
                if budget.take(entry_bytes(&key, &wire)) {
                    push.push((key.clone(), wire));
                }
            }
            if my_latest <= latest {
                pull.push(key);
            }
        }
        if budget.exhausted() {
            self.repl.ae_chase = Some(peer);
        }
        self.ae_send_entries(from, push, out);
        if !pull.is_empty() {
            let bytes: usize = pull.iter().map(|k| k.len()).sum();
            self.repl.stats.ae_bytes_sent += bytes as u64;
            out.push(Output::SendPeer { to: from, msg: PeerMsg::AePull { keys: pull } });
        }
    }

    /// Digests of the 16 sub-buckets of bucket `b`, over the keys both nodes replicate.
    fn sub_digests(&self, sharing: &Sharing, b: usize) -> [u64; SUBS] {
        let share = sharing.buckets[b];
        let mut subs = [0u64; SUBS];
        for (k, e) in self.local.store.bucket_entries(b) {
            if share == Share::All || (share == Share::Mixed && sharing.key_shared(k)) {
                subs[sub_of(k)] ^= digest_hash(k, e);
            }
        }
        subs
    }

    /// Step 6 (at the peer): send the entries the initiator asked for, up to a step's bytes (the initiator
    /// asks again for the rest in its next round: its keys still differ).
    pub(crate) fn ae_pull(&mut self, now: Millis, from: SocketAddr, keys: Vec<Bytes>, out: &mut Outbox) {
        let mut budget = Budget::new(STEP_BYTES_MAX);
        let entries: Vec<(Bytes, WireEntry)> = keys
            .into_iter()
            .filter_map(|k| self.local.store.raw(&k, now).map(|e| (k.clone(), e.to_wire())))
            .take_while(|(k, e)| budget.take(entry_bytes(k, e)))
            .collect();
        self.ae_send_entries(from, entries, out);
    }

    fn ae_send_entries(&mut self, to: SocketAddr, entries: Vec<(Bytes, WireEntry)>, out: &mut Outbox) {
        if entries.is_empty() {
            return;
        }
        let stats = &mut self.repl.stats;
        stats.ae_entries_sent += entries.len() as u64;
        stats.ae_bytes_sent += entries.iter().map(|(k, e)| entry_bytes(k, e) as u64).sum::<u64>();
        for entries in split_by_bytes(entries, PUT_BYTES_MAX) {
            out.push(Output::SendPeer { to, msg: PeerMsg::Put { id: None, entries, hint_for: None } });
        }
    }

    /// One hash per group over the pair's bucket digests.
    fn group_hashes(&self, sharing: &Sharing) -> Vec<u64> {
        (0..GROUPS)
            .map(|g| {
                (g * BUCKETS_PER_GROUP..(g + 1) * BUCKETS_PER_GROUP).fold(0u64, |h, b| {
                    let d = self.pair_digest(sharing, b);
                    if d == 0 {
                        h
                    } else {
                        h ^ mix64(d ^ b as u64)
                    }
                })
            })
            .collect()
    }

    /// The digest of bucket `b` over the keys both nodes replicate.
    fn pair_digest(&self, sharing: &Sharing, b: usize) -> u64 {
        match sharing.buckets[b] {
            Share::None => 0,
            Share::All => self.local.store.bucket_digest(b),
            Share::Mixed => self
                .local
                .store
                .bucket_entries(b)
                .filter(|(k, _)| sharing.key_shared(k))
                .fold(0, |d, (k, e)| d ^ digest_hash(k, e)),
        }
    }

    /// (key, entry hash) of the keys in bucket `b` both nodes replicate. Expired entries are listed as they
    /// are stored (the digest includes them until they are reclaimed).
    fn shared_keys(&self, sharing: &Sharing, b: usize) -> Vec<(Bytes, u64)> {
        let share = sharing.buckets[b];
        if share == Share::None {
            return Vec::new();
        }
        self.local
            .store
            .bucket_entries(b)
            .filter(|(k, _)| share == Share::All || sharing.key_shared(k))
            .map(|(k, e)| (Bytes::copy_from_slice(k), entry_hash(k, e)))
            .collect()
    }

    /// The sharing of every bucket with `peer` on the current ring (cached per ring and peer).
    pub(crate) fn sharing_with(&mut self, peer: &str) -> Arc<Sharing> {
        let digest = self.repl.ring.digest();
        let cached = self.repl.share_cache.iter().find(|(d, p, _)| *d == digest && p == peer);
        if let Some((_, _, sharing)) = cached {
            return sharing.clone();
        }
        let table = self.arc_table(digest);
        let peer_index = member_index(&self.repl.ring, peer);
        let sharing = Arc::new(Sharing::new(table, peer_index));
        // The oldest entry goes, except this node's own (the hand-off sweep asks for it every second).
        let me = self.local.config.name.clone();
        let cache = &mut self.repl.share_cache;
        if cache.len() >= SHARE_CACHE_MAX {
            if let Some(i) = cache.iter().position(|(_, p, _)| *p != me) {
                cache.remove(i);
            }
        }
        cache.push((digest, peer.to_string(), sharing.clone()));
        sharing
    }

    /// Advance this node's HLC past a peer's, unless the peer's is further ahead of this node's wall clock than
    /// `clock_drift_max_ms` (counted): a forged or broken clock must not drag every timestamp to the end of time.
    fn observe_peer_clock(&mut self, now: Millis, hlc: u64) {
        let seen = crate::core::clock::Timestamp(hlc);
        if self.peer_time_ok(now, seen) {
            self.local.hlc.observe(seen);
        }
    }

    /// Every arc's end and owners (member indices) on the current ring, computed once per ring and shared by the
    /// sharing of every peer.
    pub(crate) fn arc_table(&mut self, digest: u64) -> Arc<ArcTable> {
        if let Some((d, table)) = &self.repl.arc_table {
            if *d == digest {
                return table.clone();
            }
        }
        let table = Arc::new(ArcTable::new(&self.repl.ring, self.local.config.replicas, &self.local.config.name));
        self.repl.arc_table = Some((digest, table.clone()));
        table
    }

    /// The live member with cluster address `addr`.
    pub(crate) fn name_of(&self, addr: SocketAddr) -> Option<String> {
        self.repl.addrs.iter().find(|(_, a)| **a == addr).map(|(n, _)| n.clone())
    }
}
