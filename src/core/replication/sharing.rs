//! Which parts of the ring two nodes both replicate: per ring arc (shared or not) and per store bucket (shared
//! fully, partly or not at all). Pure functions of the ring's arc table and the two nodes' member indices.
//!
//! Invariants: a bucket's positions `[start, last]` fall in the arcs from the first one ending at or after
//! `start` to the first one ending at or after `last`; past the last token a position belongs to the first arc
//! (the ring wraps). A bucket is `All` when every arc it touches is shared, `None` when none is. Only arcs this
//! node owns can be shared, so a sharing is computed from those arcs and the buckets they touch alone.

use std::sync::Arc;

use crate::core::ring::{key_hash, Ring};
use crate::core::store::{bucket_start, BUCKETS, BUCKET_BITS};

/// How much of a bucket two nodes both replicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// No key in it is replicated by both.
    None,
    /// Every key in it is replicated by both.
    All,
    /// Some arcs in it are shared: check per key.
    Mixed,
}

/// The arcs of one ring seen from this node: the ring, and the arcs this node owns with their first `stride`
/// owners (member indices, `u32::MAX` pads). Only those arcs can be shared with a peer.
#[derive(Debug)]
pub(crate) struct ArcTable {
    ring: Ring,
    stride: usize,
    /// This node's index among the ring's members.
    me: Option<u32>,
    /// The arcs this node owns, ascending.
    mine: Vec<usize>,
    /// `stride` owners per arc of `mine`.
    rows: Vec<u32>,
}

impl ArcTable {
    /// The arcs of `ring` that member `me` owns, with their first `stride` owners.
    pub(crate) fn new(ring: &Ring, stride: usize, me: &str) -> ArcTable {
        let stride = stride.max(1);
        let me = member_index(ring, me);
        let mine = me.map_or_else(Vec::new, |me| ring.arcs_owned_by(me, stride));
        let mut rows = Vec::with_capacity(mine.len() * stride);
        let mut row = Vec::with_capacity(stride);
        for &arc in &mine {
            ring.arc_owners_into(arc, stride, &mut row);
            rows.extend_from_slice(&row);
            rows.extend(std::iter::repeat_n(u32::MAX, stride - row.len()));
        }
        ArcTable { ring: ring.clone(), stride, me, mine, rows }
    }

    /// The ring the table describes.
    pub(crate) fn ring(&self) -> &Ring {
        &self.ring
    }

    /// This node's member index on the ring (`None`: not on it).
    pub(crate) fn me(&self) -> Option<u32> {
        self.me
    }

    /// The arcs this node owns, each with its first owners (member indices, `u32::MAX` pads).
    pub(crate) fn owned_arcs(&self) -> impl Iterator<Item = (usize, &[u32])> {
        self.mine.iter().enumerate().map(|(k, &arc)| (arc, &self.rows[k * self.stride..(k + 1) * self.stride]))
    }
}

/// Which arcs of a ring two nodes share, and what that means per bucket.
#[derive(Debug)]
pub(crate) struct Sharing {
    /// The ring's arcs.
    table: Arc<ArcTable>,
    /// Per arc: replicated by both.
    shared: Vec<bool>,
    /// Per bucket.
    pub(crate) buckets: Vec<Share>,
}

impl Sharing {
    /// The sharing between the table's node and `peer` (a member index, `None` when not on the ring).
    pub(crate) fn new(table: Arc<ArcTable>, peer: Option<u32>) -> Sharing {
        let ring = &table.ring;
        let mut shared = vec![false; ring.arc_count()];
        let mut buckets = vec![Share::None; BUCKETS];
        if let (Some(_), Some(p)) = (table.me, peer) {
            for (k, &arc) in table.mine.iter().enumerate() {
                shared[arc] = table.rows[k * table.stride..(k + 1) * table.stride].contains(&p);
            }
            let count = table.mine.iter().filter(|&&a| shared[a]).count();
            if count.saturating_mul(SPARSE_RATIO) < ring.arc_count() {
                // A bucket that touches no shared arc is `None`: classify only the buckets the shared arcs touch.
                for &arc in table.mine.iter().filter(|&&a| shared[a]) {
                    for b in touched_buckets(ring, arc) {
                        buckets[b] = bucket_share(ring, &shared, b);
                    }
                }
            } else {
                buckets = walk_all(ring, &shared);
            }
        }
        Sharing { table, shared, buckets }
    }

    fn arc_of(&self, position: u64) -> usize {
        let ring = &self.table.ring;
        let i = ring.arcs_before(position);
        if i == ring.arc_count() {
            0
        } else {
            i
        }
    }

    /// Whether both nodes replicate `key`.
    pub(crate) fn key_shared(&self, key: &[u8]) -> bool {
        self.shared.get(self.arc_of(key_hash(key))).copied().unwrap_or(false)
    }
}

/// Below one shared arc in this many, classifying the buckets the shared arcs touch (two searches each) beats
/// walking every bucket and arc (large clusters share a small part of the ring with any one peer; small ones most).
const SPARSE_RATIO: usize = 8;

/// Every bucket classified by walking buckets and arc ends together, both being in ring order.
fn walk_all(ring: &Ring, shared: &[bool]) -> Vec<Share> {
    let arcs = ring.arc_count();
    let (mut first_raw, mut last_raw) = (0, 0);
    (0..BUCKETS)
        .map(|b| {
            while first_raw < arcs && ring.arc_end(first_raw) < bucket_start(b) {
                first_raw += 1;
            }
            last_raw = last_raw.max(first_raw);
            while last_raw < arcs && ring.arc_end(last_raw) < bucket_last(b) {
                last_raw += 1;
            }
            classify(shared, wrap(first_raw, arcs), wrap(last_raw, arcs))
        })
        .collect()
}

/// The index of `name` among the ring's (sorted) members.
pub(crate) fn member_index(ring: &Ring, name: &str) -> Option<u32> {
    ring.members().binary_search_by(|m| m.as_str().cmp(name)).ok().map(|i| i as u32)
}

/// The bucket holding ring position `position`.
pub(super) fn bucket_at(position: u64) -> usize {
    (position >> (64 - BUCKET_BITS)) as usize
}

/// The last ring position of bucket `b`.
fn bucket_last(b: usize) -> u64 {
    if b + 1 == BUCKETS {
        u64::MAX
    } else {
        bucket_start(b + 1) - 1
    }
}

/// Every bucket that may touch arc `arc` (a superset: from the bucket of the previous arc's end to the bucket
/// of this arc's end; the first arc also takes the wrap, from the last token to the end of the ring).
fn touched_buckets(ring: &Ring, arc: usize) -> impl Iterator<Item = usize> {
    let end = bucket_at(ring.arc_end(arc));
    let (first, wrapped) = match arc {
        0 => (0, Some(bucket_at(ring.arc_end(ring.arc_count() - 1))..=BUCKETS - 1)),
        _ => (bucket_at(ring.arc_end(arc - 1)), None),
    };
    (first..=end).chain(wrapped.into_iter().flatten())
}

/// Exactly the buckets holding a position of arc `arc` (readiness asks whether each was found in sync; unlike
/// `touched_buckets`, no neighbour bucket): arc `i` is `(end(i-1), end(i)]`, and the first arc also
/// takes the wrap past the last token.
pub(super) fn arc_buckets(ring: &Ring, arc: usize) -> impl Iterator<Item = usize> {
    let count = ring.arc_count();
    let end = bucket_at(ring.arc_end(arc));
    let (first, wrapped) = match arc {
        0 => {
            let last_end = ring.arc_end(count - 1);
            let wrap = (count == 1 || last_end < u64::MAX).then(|| bucket_at(last_end.wrapping_add(1))..=BUCKETS - 1);
            (0, wrap)
        }
        _ => (bucket_at(ring.arc_end(arc - 1) + 1), None),
    };
    (first..=end).chain(wrapped.into_iter().flatten())
}

/// How much of bucket `b` is shared, given which arcs are.
fn bucket_share(ring: &Ring, shared: &[bool], b: usize) -> Share {
    let arcs = ring.arc_count();
    let first_raw = ring.arcs_before(bucket_start(b));
    let last_raw = ring.arcs_before(bucket_last(b));
    classify(shared, wrap(first_raw, arcs), wrap(last_raw, arcs))
}

/// Past the last token, positions belong to the first arc (the ring wraps).
fn wrap(arc: usize, arcs: usize) -> usize {
    if arc == arcs {
        0
    } else {
        arc
    }
}

/// The share of the arcs `first..=last` (wrapping).
fn classify(shared: &[bool], first: usize, last: usize) -> Share {
    let len = shared.len().max(1);
    let (mut any, mut all) = (false, true);
    let mut i = first;
    loop {
        let s = shared.get(i).copied().unwrap_or(false);
        any |= s;
        all &= s;
        if i == last {
            break;
        }
        i = (i + 1) % len;
    }
    match (any, all) {
        (false, _) => Share::None,
        (true, true) => Share::All,
        (true, false) => Share::Mixed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bucket classified one by one, by searching its first and last arcs (the sparse path's rule).
    fn search_all(ring: &Ring, shared: &[bool]) -> Vec<Share> {
        (0..BUCKETS).map(|b| bucket_share(ring, shared, b)).collect()
    }

    /// Per arc: both `me` and `peer` among its first `n` owners, from every arc's owners (the reference).
    fn shared_all(ring: &Ring, n: usize, me: u32, peer: u32) -> Vec<bool> {
        let mut row = Vec::new();
        (0..ring.arc_count())
            .map(|arc| {
                ring.arc_owners_into(arc, n, &mut row);
                row.contains(&me) && row.contains(&peer)
            })
            .collect()
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn sparse_sharing_matches_the_full_walk() {
        for (members, vnodes, stride) in [(1, 8, 3), (2, 1, 3), (3, 4, 3), (5, 128, 3), (40, 64, 3), (200, 16, 2)] {
            let ring = Ring::new(&names(members), vnodes);
            for me in [0, members / 2, members - 1] {
                let table = Arc::new(ArcTable::new(&ring, stride, &format!("n{me}")));
                for peer in [0, 1, members / 3, members - 1] {
                    let p = member_index(&ring, &format!("n{peer}"));
                    let sharing = Sharing::new(table.clone(), p);
                    let expected = shared_all(&ring, stride, table.me.unwrap(), p.unwrap_or(u32::MAX));
                    assert_eq!(sharing.shared, expected, "{members} {me} {peer}");
                    let walked = walk_all(&ring, &sharing.shared);
                    assert_eq!(sharing.buckets, walked, "{members} {me} {peer}");
                    assert_eq!(search_all(&ring, &sharing.shared), walked, "{members} {me} {peer}");
                }
            }
        }
    }

    #[test]
    fn a_node_off_the_ring_shares_nothing() {
        let ring = Ring::new(&names(4), 8);
        let table = Arc::new(ArcTable::new(&ring, 3, "stranger"));
        let sharing = Sharing::new(table, Some(1));
        assert!(sharing.buckets.iter().all(|s| *s == Share::None));
        assert!(!sharing.key_shared(b"k"));
        let empty = Arc::new(ArcTable::new(&Ring::new::<&str>(&[], 8), 3, "n0"));
        assert!(Sharing::new(empty, None).buckets.iter().all(|s| *s == Share::None));
    }
}
