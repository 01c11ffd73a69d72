//! The engine's view of the data: each node's own copy of every workload key, the convergence probe, and the
//! bookkeeping of copies that die in crashes (for the lost-write exemption).
//!
//! The checkers read each node's own raw copy (`Node::local_entry`, tombstones included) and its owners of a key
//! (`Node::owners`), never the coordinator's answers.

use super::*;
use bytes::Bytes;
use shoal::core::replication::{EntryKind, PeerMsg, WireEntry};
use shoal::core::vversion::Relation;

use crate::check::replicas::{self, Copy, KeyCopies};

/// The node's own raw copy of `key` (`Node::local_entry`).
fn local_entry(node: &Node, key: &[u8], now: Millis) -> Option<WireEntry> {
    node.local_entry(key, now)
}

/// The key's owners as the node's ring sees them (`Node::owners`).
fn owners(node: &Node, key: &[u8]) -> Vec<String> {
    node.owners(key)
}

/// The workload's name of key `k`.
pub(super) fn key_name(k: u8) -> Bytes {
    Bytes::from(format!("k{k}"))
}

/// The workload number of a key name.
pub(super) fn key_number(key: &[u8]) -> Option<u8> {
    std::str::from_utf8(key.strip_prefix(b"k")?).ok()?.parse().ok()
}

impl Engine {
    /// Node `i`'s clock now, without recording it as shown.
    fn clock_of(&self, i: usize) -> Millis {
        (EPOCH_MS as i64 + self.now as i64 + self.hosts[i].skew_ms).max(0) as Millis
    }

    pub(super) fn entry_of(&self, i: usize, key: &[u8]) -> Option<WireEntry> {
        let node = self.hosts[i].node.as_ref()?;
        local_entry(node, key, self.clock_of(i))
    }

    /// Every live node's copy and owners of every workload key.
    fn key_copies(&self) -> Vec<KeyCopies> {
        (0..self.workload.config.keys)
            .map(|k| {
                let key = key_name(k);
                let copies = (0..self.config.nodes)
                    .filter_map(|i| {
                        let node = self.hosts[i].node.as_ref()?;
                        let now = self.clock_of(i);
                        let entry = local_entry(node, &key, now);
                        Some(Copy { node: format!("n{i}"), owners: owners(node, &key), entry, now })
                    })
                    .collect();
                KeyCopies { key: k, copies }
            })
            .collect()
    }

    /// The liveness condition on data: quiescent (no call waiting, no peer message in flight) and every key's
    /// owners agreed and identical; records the final state. Divergence is
    /// reported before a lack of quiescence, which matters only when the copies agree.
    pub(super) fn data_converged(&mut self) -> Result<(), Vec<Violation>> {
        let at = self.now;
        let finals = replicas::converged(at, &self.key_copies())?;
        let waiting = self.workload.clients.iter().filter(|c| c.waiting.is_some()).count() + self.locks.calls_waiting();
        if waiting > 0 || self.peer_in_flight > 0 {
            let detail = format!("not quiescent: {waiting} calls waiting, {} peer messages", self.peer_in_flight);
            return Err(vec![Violation { kind: Kind::ReplicasDiverged, at, detail }]);
        }
        self.finals = Some(finals);
        Ok(())
    }

    /// Node `i` just evicted `count` keys: note each evicted workload key with the version its marker carries; an
    /// eviction whose marker is already gone cannot be named, and then every key counts as maybe evicted.
    pub(super) fn note_evictions(&mut self, i: usize, count: u64) {
        self.evictions += count;
        let mut named = 0;
        for k in 0..self.workload.config.keys {
            let Some(entry) = self.entry_of(i, &key_name(k)) else { continue };
            if entry.kind == EntryKind::Evicted && self.facts.saw_eviction(k, self.now, &entry.vector) {
                named += 1;
            }
        }
        if named < count {
            self.facts.evictions_unnamed.push(self.now);
        }
    }

    /// Before node `i` crashes: the values and tombstones whose last copy it holds die with it.
    pub(super) fn note_crash_losses(&mut self, i: usize) {
        if self.hosts[i].node.is_none() {
            return;
        }
        let in_flight = self.entries_in_flight();
        for k in 0..self.workload.config.keys {
            let key = key_name(k);
            let Some(mine) = self.entry_of(i, &key) else { continue };
            if self.facts.is_rmw(k) {
                // A counter's or append log's version survives in any copy that has seen it.
                let covers =
                    |e: &WireEntry| matches!(e.vector.compare(&mine.vector), Relation::After | Relation::Equal);
                let elsewhere = (0..self.config.nodes)
                    .filter(|&j| j != i)
                    .any(|j| self.entry_of(j, &key).is_some_and(|e| covers(&e)))
                    || in_flight.iter().any(|(kk, e)| *kk == k && covers(e));
                if !elsewhere {
                    self.facts.rmw_crash_lost.entry(k).or_default().push(self.now);
                }
                continue;
            }
            let survives = |e: &WireEntry| match mine.kind {
                EntryKind::Value => e.kind == EntryKind::Value && e.value == mine.value,
                _ => e.kind == EntryKind::Tombstone,
            };
            let elsewhere = (0..self.config.nodes)
                .filter(|&j| j != i)
                .any(|j| self.entry_of(j, &key).is_some_and(|e| survives(&e)))
                || in_flight.iter().any(|(kk, e)| *kk == k && survives(e));
            if elsewhere {
                continue;
            }
            match mine.kind {
                EntryKind::Value => {
                    if let Some(v) = check::writes::value_of(&mine.value) {
                        self.facts.crash_lost_values.insert(v);
                    }
                }
                EntryKind::Tombstone => {
                    self.facts.crash_lost_tombstones.entry(k).or_default().push(self.now);
                    self.facts.crash_lost_tombstone_vectors.entry(k).or_default().push(mine.vector.clone());
                }
                EntryKind::Evicted => {}
            }
        }
    }

    /// Entries carried by peer messages in flight or held by paused nodes.
    fn entries_in_flight(&self) -> Vec<(u8, WireEntry)> {
        let held = self.hosts.iter().flat_map(|h| h.held.iter());
        let mut found = Vec::new();
        for event in self.queue.iter().chain(held) {
            if let Event::PeerDeliver { msg, .. } = event {
                if let PeerMsg::Put { entries, .. } = msg.as_ref() {
                    for (key, entry) in entries {
                        if let Some(k) = key_number(key) {
                            found.push((k, entry.clone()));
                        }
                    }
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_round_trip() {
        assert_eq!(key_number(&key_name(17)), Some(17));
        assert_eq!(key_number(b"x1"), None);
        assert_eq!(key_number(b"k300"), None);
    }
}
