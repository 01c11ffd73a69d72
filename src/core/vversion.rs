//! Version vectors: for each coordinator, the HLC time of its last write to a key; how two of them merge.
//!
//! A vector is a list of (node, timestamp) entries sorted by node, with unique nodes, no zero timestamps and
//! at most `ENTRIES_MAX` entries; a missing node reads as timestamp zero. `compare` is plain dominance. `merge`
//! keeps the pointwise max and names a winner by the greatest (timestamp, node) entry of each side, its
//! `latest()` version. Because `bump` gives the writer's entry a time above every entry already present, a write
//! made after observing another has the greater latest entry, so dominance and "greatest latest entry" agree on
//! every vector a cluster produces and a causally newer write always wins; concurrent writes are settled last
//! writer wins by (HLC, node). Choosing by the latest entry (not by dominance first) is what makes merge
//! commutative, associative and idempotent over (vector, payload) values.
//!
//! Pruning: beyond `ENTRIES_MAX` entries the oldest (by time, then node) are dropped. The latest entry is never
//! dropped, so pruning never changes which value wins and the merge laws still hold (keeping the L greatest
//! entries of a pointwise max is itself associative). What pruning can change is the reported relation: a
//! vector that lost an old entry looks concurrent with one it descends from (or, rarely, ordered with one it
//! is concurrent with), so `Merged::lww_settled` may over- or under-count lost overwrites, never lose a write.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize, Serializer};
use smallvec::SmallVec;

use super::clock::Timestamp;
use super::version::{NodeId, Version};

/// Most entries a vector keeps. All nodes must agree on it: it is part of the merge and of the wire format.
pub const ENTRIES_MAX: usize = 16;

/// A bounded version vector of (coordinator, HLC time of its last write) entries, sorted by node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(try_from = "Vec<(NodeId, Timestamp)>")]
pub struct VersionVector {
    entries: Entries,
}

/// The entries, inline when there is one (the common case: one coordinator wrote the key), so a stored key
/// costs no extra allocation for its version.
type Entries = SmallVec<[(NodeId, Timestamp); 1]>;

/// How two vectors are ordered by dominance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    /// Every entry of the left is at most the right's, one is smaller: the left happened before.
    Before,
    /// The left dominates the right.
    After,
    /// Identical vectors.
    Equal,
    /// Each side has an entry the other lacks: concurrent writes.
    Concurrent,
}

/// Which side of a merge carries the winning write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Winner {
    /// The left side (`self`).
    Left,
    /// The right side (`other`).
    Right,
    /// Both carry the same latest write (equal latest entries): payloads should be equal; `pick` takes the greater.
    Same,
}

/// The outcome of merging two vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The pointwise max of both sides, pruned to `ENTRIES_MAX`.
    pub vector: VersionVector,
    /// The side whose payload the merged value keeps.
    pub winner: Winner,
    /// The dominance relation of left to right.
    pub relation: Relation,
}

/// Why bytes from a peer are not a valid vector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VectorError {
    /// Nodes are not strictly increasing (unsorted or repeated).
    #[error("version vector nodes are not strictly increasing")]
    Unsorted,
    /// An entry has timestamp zero (a missing entry is the only way to say zero).
    #[error("version vector entry with a zero timestamp")]
    ZeroTimestamp,
    /// More than `ENTRIES_MAX` entries.
    #[error("version vector with {0} entries, more than the limit")]
    TooLong(usize),
}

impl VersionVector {
    /// The empty vector: before every write.
    pub fn new() -> VersionVector {
        VersionVector::default()
    }

    /// The entries, sorted by node.
    pub fn entries(&self) -> &[(NodeId, Timestamp)] {
        &self.entries
    }

    /// The node's entry, zero when absent.
    pub fn get(&self, node: NodeId) -> Timestamp {
        self.entries.binary_search_by_key(&node, |e| e.0).map_or(Timestamp(0), |i| self.entries[i].1)
    }

    /// The greatest (time, node) entry: the write whose payload the value carries; `None` for the empty vector.
    pub fn latest(&self) -> Option<Version> {
        self.entries.iter().map(|&(node, time)| Version::new(time, node)).max()
    }

    /// The greatest timestamp present (zero when empty), for `Hlc::observe` before a write.
    pub fn max_time(&self) -> Timestamp {
        self.latest().map_or(Timestamp(0), |v| v.time)
    }

    /// Records a write coordinated by `node` at HLC time `now`; returns the time used, `now` raised above every
    /// entry present if needed (then feed it to `Hlc::observe`), so the new write dominates what it overwrote.
    pub fn bump(&mut self, node: NodeId, now: Timestamp) -> Timestamp {
        self.bump_within(node, now, ENTRIES_MAX)
    }

    /// Dominance order of `self` relative to `other`.
    pub fn compare(&self, other: &VersionVector) -> Relation {
        let (mut left_ahead, mut right_ahead) = (false, false);
        for_each_pair(&self.entries, &other.entries, |_, l, r| match l.cmp(&r) {
            Ordering::Greater => left_ahead = true,
            Ordering::Less => right_ahead = true,
            Ordering::Equal => {}
        });
        match (left_ahead, right_ahead) {
            (false, false) => Relation::Equal,
            (true, false) => Relation::After,
            (false, true) => Relation::Before,
            (true, true) => Relation::Concurrent,
        }
    }

    /// Whether neither vector dominates the other.
    pub fn is_concurrent(&self, other: &VersionVector) -> bool {
        self.compare(other) == Relation::Concurrent
    }

    /// Merges with `other`: pointwise max, winner by latest entry, and the dominance relation.
    pub fn merge(&self, other: &VersionVector) -> Merged {
        self.merge_within(other, ENTRIES_MAX)
    }

    fn bump_within(&mut self, node: NodeId, now: Timestamp, limit: usize) -> Timestamp {
        let floor = Timestamp(self.max_time().0.saturating_add(1));
        let time = now.max(floor);
        match self.entries.binary_search_by_key(&node, |e| e.0) {
            Ok(i) => self.entries[i].1 = time,
            Err(i) => self.entries.insert(i, (node, time)),
        }
        prune(&mut self.entries, limit);
        time
    }

    fn merge_within(&self, other: &VersionVector, limit: usize) -> Merged {
        let mut entries = Entries::with_capacity(self.entries.len().max(other.entries.len()));
        for_each_pair(&self.entries, &other.entries, |node, l, r| entries.push((node, l.max(r))));
        prune(&mut entries, limit);
        let winner = match self.latest().cmp(&other.latest()) {
            Ordering::Greater => Winner::Left,
            Ordering::Less => Winner::Right,
            Ordering::Equal => Winner::Same,
        };
        Merged { vector: VersionVector { entries }, winner, relation: self.compare(other) }
    }
}

impl Merged {
    /// The payload the merged value keeps: the winner's, or the greater one when both carry the same write.
    pub fn pick<'a, P: Ord + ?Sized>(&self, left: &'a P, right: &'a P) -> &'a P {
        match self.winner {
            Winner::Left => left,
            Winner::Right => right,
            Winner::Same => left.max(right),
        }
    }

    /// Whether last-writer-wins settled a conflict: the sides were concurrent and the loser's latest write is lost.
    pub fn lww_settled(&self) -> bool {
        self.relation == Relation::Concurrent && self.winner != Winner::Same
    }
}

/// Calls `f(node, left, right)` for every node in either sorted list, in node order, zero for a missing side.
fn for_each_pair(
    left: &[(NodeId, Timestamp)],
    right: &[(NodeId, Timestamp)],
    mut f: impl FnMut(NodeId, Timestamp, Timestamp),
) {
    let (mut i, mut j) = (0, 0);
    while i < left.len() || j < right.len() {
        let l = left.get(i).copied();
        let r = right.get(j).copied();
        match (l, r) {
            (Some((ln, lt)), Some((rn, rt))) if ln == rn => {
                f(ln, lt, rt);
                (i, j) = (i + 1, j + 1);
            }
            (Some((ln, lt)), Some((rn, _))) if ln < rn => {
                f(ln, lt, Timestamp(0));
                i += 1;
            }
            (Some((ln, lt)), None) => {
                f(ln, lt, Timestamp(0));
                i += 1;
            }
            (_, Some((rn, rt))) => {
                f(rn, Timestamp(0), rt);
                j += 1;
            }
            (None, None) => break,
        }
    }
}

/// Drops the oldest entries (by time, then node) beyond `limit`, keeping the rest in node order.
fn prune(entries: &mut Entries, limit: usize) {
    if entries.len() <= limit {
        return;
    }
    let mut ages: Vec<Version> = entries.iter().map(|&(node, time)| Version::new(time, node)).collect();
    ages.sort_unstable();
    let cutoff = ages[entries.len() - limit - 1];
    entries.retain(|e| Version::new(e.1, e.0) > cutoff);
}

impl Serialize for VersionVector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(&self.entries)
    }
}

impl TryFrom<Vec<(NodeId, Timestamp)>> for VersionVector {
    type Error = VectorError;

    fn try_from(entries: Vec<(NodeId, Timestamp)>) -> Result<VersionVector, VectorError> {
        check_entries(&entries)?;
        Ok(VersionVector { entries: entries.into() })
    }
}

impl TryFrom<&[(NodeId, Timestamp)]> for VersionVector {
    type Error = VectorError;

    /// The same checks as from a `Vec`, without allocating for a vector of one entry (decoders use this).
    fn try_from(entries: &[(NodeId, Timestamp)]) -> Result<VersionVector, VectorError> {
        check_entries(entries)?;
        Ok(VersionVector { entries: Entries::from_slice(entries) })
    }
}

/// Whether `entries` form a valid vector: at most `ENTRIES_MAX`, nodes strictly increasing, no zero time.
fn check_entries(entries: &[(NodeId, Timestamp)]) -> Result<(), VectorError> {
    if entries.len() > ENTRIES_MAX {
        return Err(VectorError::TooLong(entries.len()));
    }
    if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(VectorError::Unsorted);
    }
    if entries.iter().any(|e| e.1 == Timestamp(0)) {
        return Err(VectorError::ZeroTimestamp);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
