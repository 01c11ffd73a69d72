//! Replication under memory pressure: what a node does when `--maxmemory` is reached on a path that is not a
//! client write.
//!
//! Evictions spread at once: the markers of the keys a node just evicted go to the keys' other live owners
//! (a `Put` without acknowledgement), so those owners drop the same version too and no replica keeps a copy that
//! anti-entropy would push back; once every owner holds the marker (or nothing), the marker itself can go without
//! the value coming back.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;

use super::wire::{PeerMsg, WireEntry};
use crate::core::node::{Node, Outbox, Output};
use crate::core::Millis;

/// Most eviction markers in one `Put`.
const MARKERS_PER_PUT: usize = 1_000;

impl Node {
    /// Send the markers of the keys evicted during this input to the keys' other live owners.
    pub(crate) fn spread_evictions(&mut self, now: Millis, out: &mut Outbox) {
        let keys = self.store.take_evicted();
        if keys.is_empty() {
            return;
        }
        let me = self.config.name.clone();
        let mut by_owner: BTreeMap<SocketAddr, Vec<(Bytes, WireEntry)>> = BTreeMap::new();
        for key in keys {
            // The marker may already be gone again (its share of memory was full); then there is nothing to say.
            let Some(marker) = self.store.raw(&key, now).filter(|e| !e.is_value()).map(|e| e.to_wire()) else {
                continue;
            };
            for owner in self.owner_names(&key) {
                if *owner == *me {
                    continue;
                }
                if let Some(addr) = self.repl().addr_of(&owner) {
                    by_owner.entry(addr).or_default().push((key.clone(), marker.clone()));
                }
            }
        }
        for (to, mut entries) in by_owner {
            while !entries.is_empty() {
                let rest = entries.split_off(entries.len().min(MARKERS_PER_PUT));
                out.push(Output::SendPeer { to, msg: PeerMsg::Put { id: 0, entries, hint_for: None } });
                entries = rest;
            }
        }
    }
}
