//! The replica side of a write: a `Put` from a peer (a replicated write, a hint, a hand-off, anti-entropy or
//! read repair) merged entry by entry into the local copy, under the clock-drift bound, the FLUSHALL epoch and
//! `--maxmemory`, and acknowledged (or refused per key with `PutRefused`) when the sender asked.

use std::net::SocketAddr;

use bytes::Bytes;

use super::wire::{PeerMsg, WireEntry};
use crate::core::driver::RequestId;
use crate::core::node::{Clustered, Outbox, Output};
use crate::core::store::Entry;
use crate::core::Millis;

/// Why an entry from a peer was not merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Storing it needs memory the `maxmemory` policy cannot free.
    NoRoom,
    /// Its version is further ahead of this node's clock than `clock_drift_max_ms`.
    ClockAhead,
}

impl Clustered<'_> {
    /// Entries from a peer (`Put`): merge each; keep a hint when the copy is meant for another replica. An entry
    /// refused for lack of memory is named in a `PutRefused`; one refused for a clock too far ahead leaves the
    /// whole `Put` unanswered, so the sender counts the replica as failed and keeps its copy to retry.
    pub(crate) fn put_received(
        &mut self,
        now: Millis,
        from: SocketAddr,
        id: Option<RequestId>,
        entries: Vec<(Bytes, WireEntry)>,
        hint_for: Option<String>,
        out: &mut Outbox,
    ) {
        let mut refused = Vec::new();
        let mut clock_ahead = false;
        for (key, wire) in entries {
            match self.merge_entry(now, &key, Entry::from_wire(wire)) {
                Ok(()) => {}
                Err(Refusal::NoRoom) => {
                    refused.push(key);
                    continue;
                }
                // Not stored, so not acknowledged: the sender's count of copies stays honest, and it keeps its
                // hint or hand-off to try again later.
                Err(Refusal::ClockAhead) => {
                    clock_ahead = true;
                    continue;
                }
            }
            if let Some(target) = &hint_for {
                if *target != self.local.config.name {
                    self.add_hint(now, target.clone(), key);
                }
            }
        }
        if let Some(id) = id.filter(|_| !clock_ahead) {
            let msg =
                if refused.is_empty() { PeerMsg::PutAck { id } } else { PeerMsg::PutRefused { id, keys: refused } };
            out.push(Output::SendPeer { to: from, msg });
        }
    }

    /// Merge a replica's entry into the local store, observing its time and counting what happened; an error
    /// (and nothing merged) when the entry's version is further ahead of this node's clock than
    /// `clock_drift_max_ms`, or when it needs memory the `maxmemory` policy cannot free (`admit`).
    pub(crate) fn merge_entry(&mut self, now: Millis, key: &[u8], entry: Entry) -> Result<(), Refusal> {
        let time = entry.vector.max_time();
        if !self.peer_time_ok(now, time) {
            return Err(Refusal::ClockAhead);
        }
        self.local.hlc.observe(time);
        if self.flushed(&entry) {
            // Written before a FLUSHALL this node applied: the flush wins, and nothing is left to store.
            self.repl.stats.flushed_drops += 1;
            return Ok(());
        }
        if !self.admit(now, key, &entry) {
            self.repl.stats.merges_refused += 1;
            return Err(Refusal::NoRoom);
        }
        let outcome = self.local.store.merge(key, entry, now);
        if outcome.changed && self.local.config.maxmemory_bytes.is_some() {
            // Replicated data obeys the memory limit too (what this evicts leaves a marker that spreads).
            self.local.make_room(now);
        }
        let stats = &mut self.repl.stats;
        stats.merged_changes += u64::from(outcome.changed);
        stats.lww_conflicts += u64::from(outcome.lww_conflict);
        Ok(())
    }
}
