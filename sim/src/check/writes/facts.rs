//! What the simulator tells the write checkers besides the client history (`Facts`): the versions it saw each
//! value, tombstone and eviction written with, the copies crashes took, and when faults were in force; with the
//! queries the checkers ask of them.

use std::collections::{BTreeMap, BTreeSet};

use shoal::core::vversion::{Relation, VersionVector};

use crate::event::Ms;
use crate::workload::Role;

/// What the simulator saw besides the history: write versions, copies lost in crashes, faults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// The version vector each SET value was first seen written with (the least one seen).
    pub vectors: BTreeMap<u64, VersionVector>,
    /// Per key, every tombstone vector seen, with the time it was first seen.
    pub tombstones: BTreeMap<u8, Vec<(Ms, VersionVector)>>,
    /// Per key, every vector seen on a value with an expiry (a SET with TTL, or an EXPIRE's re-stamp): each
    /// leaves a tombstone with that vector when it expires.
    pub expiring: BTreeMap<u8, Vec<VersionVector>>,
    /// SET values whose every copy died in crashes.
    pub crash_lost_values: BTreeSet<u64>,
    /// Per key, times at which the key's last tombstone died in a crash.
    pub crash_lost_tombstones: BTreeMap<u8, Vec<Ms>>,
    /// Per key, the vectors of those tombstones (an expired value's tombstone keeps the value's vector).
    pub crash_lost_tombstone_vectors: BTreeMap<u8, Vec<VersionVector>>,
    /// Times of faults (the cluster's start counts as one).
    pub fault_times: Vec<Ms>,
    /// Spans during which some fault is in force (a node down or paused, a link cut).
    pub disturbed: Vec<(Ms, Ms)>,
    /// The network lost datagrams at some point (read-your-writes is then not checked).
    pub lossy: bool,
    /// Replicas per key (N).
    pub replicas: usize,
    /// How long after a fault read-your-writes is not required.
    pub settle_ms: Ms,
    /// How long replicas keep tombstones, by their own clocks.
    pub tombstone_grace_ms: Ms,
    /// The greatest difference between two node clocks' offsets at any times of the run (skews and jumps).
    pub clock_spread_ms: Ms,
    /// The end of the run (virtual time).
    pub end_ms: Ms,
    /// What the keys that are not plain registers are for (full mix): the register checks skip counters and
    /// append logs, which `check::rmw` judges.
    pub roles: BTreeMap<u8, Role>,
    /// The nodes ran with a memory limit: any key may have been evicted.
    pub memory_pressure: bool,
    /// Per key, the evictions seen: when, and the version evicted (the eviction marker's vector).
    pub evictions: BTreeMap<u8, Vec<(Ms, VersionVector)>>,
    /// Times at which a node evicted keys the simulator could not name (their markers were already gone):
    /// every key counts as maybe evicted then.
    pub evictions_unnamed: Vec<Ms>,
    /// Per read-modify-write key, every version of a value or tombstone seen, with the time it was first seen.
    pub rmw_versions: BTreeMap<u8, Vec<(Ms, VersionVector)>>,
    /// Spans during which a fault other than a pause is in force (a node down, a link cut).
    pub disturbed_but_pauses: Vec<(Ms, Ms)>,
    /// Times of faults other than pauses and resumes (the cluster's start counts as one).
    pub fault_times_but_pauses: Vec<Ms>,
    /// When each paused node resumed (node index, time).
    pub resumes: Vec<(usize, Ms)>,
    /// How long after a stall a node re-reads the other owners before a read-modify-write (two anti-entropy
    /// periods, `replication::stall`).
    pub stall_window_ms: Ms,
    /// Which node (index) each vector writer id belongs to (one id per process life).
    pub node_ids: BTreeMap<u64, usize>,
    /// Per read-modify-write key, the times at which a crash took the last copy of one of its versions (no live
    /// node's copy and no message in flight carried that version or a later one).
    pub rmw_crash_lost: BTreeMap<u8, Vec<Ms>>,
}

impl Facts {
    /// Whether key `k` is a counter or an append log (not judged by the register checks).
    pub fn is_rmw(&self, k: u8) -> bool {
        matches!(self.roles.get(&k), Some(Role::Counter | Role::Append))
    }

    /// Records an eviction of `key` seen at `at`, evicting the version `vector`.
    pub fn saw_eviction(&mut self, key: u8, at: Ms, vector: &VersionVector) -> bool {
        let seen = self.evictions.entry(key).or_default();
        let new = !seen.iter().any(|(_, v)| v == vector);
        if new {
            seen.push((at, vector.clone()));
        }
        new
    }

    /// Whether `key` may have been evicted between `from` and `to`.
    pub fn evicted_within(&self, key: u8, from: Ms, to: Ms) -> bool {
        let named = self.evictions.get(&key).into_iter().flatten().any(|&(t, _)| t >= from && t <= to);
        named || self.evictions_unnamed.iter().any(|&t| t >= from && t <= to)
    }

    /// Whether a version at least as new as `vector` was evicted from `key`: a value with `vector` then came back.
    pub fn evicted_covers(&self, key: u8, vector: &VersionVector) -> bool {
        let seen = self.evictions.get(&key).into_iter().flatten();
        seen.into_iter().any(|(_, v)| matches!(v.compare(vector), Relation::After | Relation::Equal))
    }

    /// Records a version of read-modify-write key `key` seen at `at`.
    pub fn saw_rmw_version(&mut self, key: u8, at: Ms, vector: &VersionVector) {
        let seen = self.rmw_versions.entry(key).or_default();
        if !seen.iter().any(|(_, v)| v == vector) {
            seen.push((at, vector.clone()));
        }
    }

    /// Whether a version written by `writer` (a vector id) at `at` comes from a node that had just resumed from a
    /// pause, within its stall window, with no other fault (a node down, a link cut, a clock jump) in force or
    /// settling then: such a node must re-read the other owners before a read-modify-write, so a version it
    /// makes concurrent with theirs is no allowed anomaly.
    pub fn stall_made(&self, writer: u64, at: Ms) -> bool {
        let Some(&node) = self.node_ids.get(&writer) else { return false };
        let resumed = self.resumes.iter().any(|&(n, r)| n == node && r <= at && at <= r + self.stall_window_ms);
        let near = |start: Ms, end: Ms| start <= at && at <= end + self.settle_ms;
        let other = self.fault_times_but_pauses.iter().any(|&t| near(t, t))
            || self.disturbed_but_pauses.iter().any(|&(s, e)| near(s, e));
        resumed && !other
    }

    /// Whether a fault was in force or settling at `at` (network loss aside).
    pub fn disturbed_at(&self, at: Ms) -> bool {
        let near = |start: Ms, end: Ms| start <= at && at <= end + self.settle_ms;
        self.fault_times.iter().any(|&t| near(t, t)) || self.disturbed.iter().any(|&(s, e)| near(s, e))
    }

    /// Records a vector seen with SET value `value`, keeping the least.
    pub fn saw_value(&mut self, value: u64, vector: &VersionVector) {
        match self.vectors.get(&value) {
            Some(known) if vector.compare(known) != Relation::Before => {}
            _ => {
                self.vectors.insert(value, vector.clone());
            }
        }
    }

    /// Records the vector of a value with an expiry seen on `key`.
    pub fn saw_expiring(&mut self, key: u8, vector: &VersionVector) {
        let seen = self.expiring.entry(key).or_default();
        if !seen.contains(vector) {
            seen.push(vector.clone());
        }
    }

    /// Records a tombstone vector seen on `key` at `at`.
    pub fn saw_tombstone(&mut self, key: u8, at: Ms, vector: &VersionVector) {
        let seen = self.tombstones.entry(key).or_default();
        if !seen.iter().any(|(_, v)| v == vector) {
            seen.push((at, vector.clone()));
        }
    }

    /// Whether no fault was in force or settling between `from` and `to`, and the network never lost datagrams.
    pub(super) fn quiet(&self, from: Ms, to: Ms) -> bool {
        let near = |start: Ms, end: Ms| end + self.settle_ms >= from && start <= to;
        !self.lossy && !self.fault_times.iter().any(|&t| near(t, t)) && !self.disturbed.iter().any(|&(s, e)| near(s, e))
    }
}
