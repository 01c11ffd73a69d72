//! Readiness: whether a (re)started node holds its share of the data again, so an orchestrator restarting the
//! nodes of a cluster one at a time can wait for it before taking the next one down.
//!
//! A node is ready once it has joined (it sees another live member, or it was given no seeds: the first node of
//! a new cluster has nothing to fetch) and every ring arc it owns has been found in sync with at least one of the
//! arc's other owners by an anti-entropy comparison since the node started. Anti-entropy compares per bucket (a
//! slice of the ring) with one peer at a time over the keys both replicate, so the node records, per peer, the
//! buckets a comparison found equal: every group of buckets whose hashes matched when a peer started a round
//! with this node, and every bucket whose digest matched when this node refined a round it started. An arc is in
//! sync when, for one of its other owners, every bucket it touches was found equal with that owner; an arc with
//! no other owner (a ring of one) has nothing to sync. A comparison happens only between nodes with the same
//! ring, so a node that sees part of the cluster cannot count itself ready against a peer that sees it all.
//!
//! Readiness is latched: once ready, a node stays ready for the rest of its life (a later partition or ring
//! change makes it neither empty nor restarted). It is evaluated on each anti-entropy timer and after each
//! comparison that found buckets equal, until it holds.

use std::collections::BTreeMap;

use super::sharing::{arc_buckets, ArcTable};
use crate::core::node::Clustered;
use crate::core::store::BUCKETS;
use crate::core::Millis;

/// Bits per word of a bucket set.
const WORD_BITS: usize = 64;

/// A set of buckets, one bit each.
#[derive(Debug, Clone)]
struct BucketSet(Vec<u64>);

impl BucketSet {
    fn new() -> BucketSet {
        BucketSet(vec![0; BUCKETS.div_ceil(WORD_BITS)])
    }

    fn insert(&mut self, b: usize) {
        if b < BUCKETS {
            self.0[b / WORD_BITS] |= 1 << (b % WORD_BITS);
        }
    }

    fn contains(&self, b: usize) -> bool {
        b < BUCKETS && self.0[b / WORD_BITS] & (1 << (b % WORD_BITS)) != 0
    }
}

/// Why a node is not ready yet, or that it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyState {
    /// Joined and every owned arc synced once with another owner.
    Ready,
    /// It sees no other live member yet (and it was given seeds to join through).
    NotJoined,
    /// Joined; `synced` of its `owned` arcs were found in sync with another owner so far.
    Syncing { synced: usize, owned: usize },
}

impl ReadyState {
    /// The reason in a few words, for INFO and the command (`ready`, `not joined`, `syncing 10/3072 arcs`).
    pub fn reason(&self) -> String {
        match self {
            ReadyState::Ready => "ready".to_string(),
            ReadyState::NotJoined => "not joined".to_string(),
            ReadyState::Syncing { synced, owned } => format!("syncing {synced}/{owned} arcs"),
        }
    }
}

/// What a node knows about its own readiness.
#[derive(Debug, Clone)]
pub(crate) struct Readiness {
    /// Per peer name: the buckets a comparison with that peer found equal.
    synced: BTreeMap<String, BucketSet>,
    /// The first clock reading the node saw (its start, for `ready_after_ms`).
    started_at: Option<Millis>,
    /// When the node became ready (latched).
    ready_at: Option<Millis>,
    /// The state at the last evaluation.
    last: ReadyState,
}

impl Default for Readiness {
    fn default() -> Readiness {
        Readiness { synced: BTreeMap::new(), started_at: None, ready_at: None, last: ReadyState::NotJoined }
    }
}

impl Readiness {
    /// Whether the node is ready (latched).
    pub(crate) fn is_ready(&self) -> bool {
        self.ready_at.is_some()
    }

    /// The state at the last evaluation.
    pub(crate) fn state(&self) -> ReadyState {
        self.last
    }

    /// How long after its start the node became ready.
    pub(crate) fn ready_after_ms(&self) -> Option<Millis> {
        Some(self.ready_at?.saturating_sub(self.started_at?))
    }

    /// Note a clock reading (the first one is the node's start).
    pub(crate) fn observe(&mut self, now: Millis) {
        self.started_at.get_or_insert(now);
    }

    /// Record that a comparison with `peer` found `buckets` equal.
    pub(crate) fn mark(&mut self, peer: &str, buckets: impl IntoIterator<Item = usize>) {
        if self.is_ready() {
            return;
        }
        let set = match self.synced.get_mut(peer) {
            Some(set) => set,
            None => self.synced.entry(peer.to_string()).or_insert_with(BucketSet::new),
        };
        for b in buckets {
            set.insert(b);
        }
    }

    /// Evaluate readiness on the arc table of the current ring; `joined` as described in the module doc.
    pub(crate) fn evaluate(&mut self, now: Millis, joined: bool, table: &ArcTable) -> ReadyState {
        self.observe(now);
        if self.is_ready() {
            return ReadyState::Ready;
        }
        self.last = if !joined {
            ReadyState::NotJoined
        } else {
            let (synced, owned) = self.count(table);
            if synced == owned {
                self.ready_at = Some(now);
                ReadyState::Ready
            } else {
                ReadyState::Syncing { synced, owned }
            }
        };
        self.last
    }

    /// (arcs in sync with another owner, arcs owned) on `table`'s ring.
    fn count(&self, table: &ArcTable) -> (usize, usize) {
        let ring = table.ring();
        let members = ring.members();
        let mut synced = 0;
        let mut owned = 0;
        for (arc, owners) in table.owned_arcs() {
            owned += 1;
            let mut others = owners.iter().filter(|&&o| Some(o) != table.me() && o != u32::MAX).peekable();
            if others.peek().is_none() {
                synced += 1;
                continue;
            }
            let in_sync = others.any(|&o| {
                let Some(set) = members.get(o as usize).and_then(|name| self.synced.get(name)) else { return false };
                arc_buckets(ring, arc).all(|b| set.contains(b))
            });
            synced += usize::from(in_sync);
        }
        (synced, owned)
    }
}

impl Clustered<'_> {
    /// Re-evaluate this node's readiness on the current ring (nothing once it is ready, or without a cluster).
    pub(crate) fn update_readiness(&mut self, now: Millis) {
        let r = &mut *self.repl;
        r.readiness.observe(now);
        if r.readiness.is_ready() {
            return;
        }
        self.refresh_ring(now);
        let joined = self.repl.addrs.len() > 1 || !self.has_seeds();
        let digest = self.repl.ring.digest();
        let table = self.arc_table(digest);
        self.repl.readiness.evaluate(now, joined, &table);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::replication::sharing::{bucket_at, member_index, Share, Sharing};
    use crate::core::ring::Ring;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    /// The buckets a comparison with `peer` covers: those the two share at all.
    fn shared_buckets(table: &Arc<ArcTable>, ring: &Ring, peer: &str) -> Vec<usize> {
        let sharing = Sharing::new(table.clone(), member_index(ring, peer));
        (0..BUCKETS).filter(|&b| sharing.buckets[b] != Share::None).collect()
    }

    #[test]
    fn a_node_is_not_ready_before_it_joins() {
        let ring = Ring::new(&names(5), 64);
        let table = ArcTable::new(&ring, 3, "n0");
        let mut r = Readiness::default();
        assert_eq!(r.evaluate(10, false, &table), ReadyState::NotJoined);
        assert!(!r.is_ready());
        assert_eq!(r.ready_after_ms(), None);
    }

    #[test]
    fn a_node_alone_on_its_ring_is_ready_once_joined() {
        let ring = Ring::new(&names(1), 64);
        let table = ArcTable::new(&ring, 3, "n0");
        let mut r = Readiness::default();
        assert_eq!(r.evaluate(5, true, &table), ReadyState::Ready);
        assert_eq!(r.ready_after_ms(), Some(0));
    }

    #[test]
    fn ready_once_every_owned_arc_is_synced_with_one_other_owner() {
        let ring = Ring::new(&names(5), 256);
        let table = Arc::new(ArcTable::new(&ring, 3, "n0"));
        let mut r = Readiness::default();
        r.observe(100);
        let owned = table.owned_arcs().count();
        assert!(matches!(r.evaluate(100, true, &table), ReadyState::Syncing { synced: 0, owned: o } if o == owned));
        // Synced with n1 alone: the arcs n1 does not co-own are still missing.
        r.mark("n1", shared_buckets(&table, &ring, "n1"));
        let ReadyState::Syncing { synced, owned: o } = r.evaluate(200, true, &table) else { panic!("not ready yet") };
        assert!(synced > 0 && synced < o, "{synced}/{o}");
        // Every other peer: every arc has an owner it was compared with.
        for peer in ["n2", "n3", "n4"] {
            r.mark(peer, shared_buckets(&table, &ring, peer));
        }
        assert_eq!(r.evaluate(1_100, true, &table), ReadyState::Ready);
        assert_eq!(r.ready_after_ms(), Some(1_000));
        // Latched: a later evaluation on another ring (a member gone) stays ready.
        let smaller = ArcTable::new(&Ring::new(&names(4), 256), 3, "n0");
        assert_eq!(r.evaluate(2_000, false, &smaller), ReadyState::Ready);
    }

    #[test]
    fn one_missing_bucket_keeps_its_arc_unsynced() {
        let ring = Ring::new(&names(3), 64);
        let table = Arc::new(ArcTable::new(&ring, 3, "n0"));
        let mut all = shared_buckets(&table, &ring, "n1");
        // With 3 members and N=3 every arc is shared with both peers: one bucket short with n1, none with n2.
        let missing = all.remove(all.len() / 2);
        let mut r = Readiness::default();
        r.mark("n1", all);
        let ReadyState::Syncing { synced, owned } = r.evaluate(1, true, &table) else { panic!("not ready yet") };
        assert!(synced < owned, "{synced}/{owned}");
        // A later comparison with n1 finds that bucket equal too: ready.
        r.mark("n1", [missing]);
        assert_eq!(r.evaluate(2, true, &table), ReadyState::Ready);
    }

    #[test]
    fn arc_buckets_cover_the_ring_exactly_once_per_position() {
        for (members, vnodes) in [(1, 1), (1, 8), (3, 4), (5, 128)] {
            let ring = Ring::new(&names(members), vnodes);
            let mut seen = BucketSet::new();
            for arc in 0..ring.arc_count() {
                for b in arc_buckets(&ring, arc) {
                    seen.insert(b);
                }
            }
            assert!((0..BUCKETS).all(|b| seen.contains(b)), "{members} {vnodes}");
            // Each arc's end lies in its last bucket; the next arc starts in the bucket just after its end.
            for arc in 1..ring.arc_count() {
                let first = arc_buckets(&ring, arc).next().expect("an arc touches a bucket");
                assert_eq!(first, bucket_at(ring.arc_end(arc - 1) + 1));
            }
        }
    }
}
