//! Peer links: the node's `SendPeer` effects become deliveries over a TCP-like link.
//!
//! A message follows the partition state of its link at send time: a cut link drops it. A working link neither
//! loses, duplicates nor reorders (FIFO per directed link, see `Net::route_peer`). A message is for the
//! destination's incarnation at send time: if that process is gone when the message arrives (crashed, or
//! restarted since), the message is lost and the sender learns `PeerLost` a round trip later, as a reset
//! connection reports. A paused destination holds its messages until it resumes.

use super::*;
use crate::workload::OpKind;
use bytes::BytesMut;
use shoal::core::replication::{EntryKind, Frame, PeerMsg};

/// FNV-1a of a peer message's encoding, folded into the trace; of a message over `DIGEST_WHOLE_MAX` bytes (large
/// values), of its length, head and tail only, which is enough to tell runs apart and keeps megabytes of filler
/// out of the hash.
fn fnv(bytes: &[u8]) -> u64 {
    let hash =
        |h: u64, part: &[u8]| part.iter().fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    let basis = 0xcbf2_9ce4_8422_2325;
    if bytes.len() <= DIGEST_WHOLE_MAX {
        return hash(basis, bytes);
    }
    let ends = hash(hash(basis, &bytes[..DIGEST_END]), &bytes[bytes.len() - DIGEST_END..]);
    hash(ends, &(bytes.len() as u64).to_le_bytes())
}

/// Messages up to this size are hashed whole (every message of the classic workload is far smaller).
const DIGEST_WHOLE_MAX: usize = 1 << 20;
/// Bytes hashed at each end of a larger message.
const DIGEST_END: usize = 64 << 10;

impl Engine {
    /// Node `from` sends `msg` to the node at `to`.
    pub(super) fn send_peer(&mut self, from: usize, to: SocketAddr, msg: PeerMsg) {
        let Some(to) = index_of(to, self.config.nodes) else { return };
        self.sniff(&msg);
        // The frame as the runtime sends it (no cluster secret). Only a frame over the size limit fails to encode;
        // it would count as empty.
        let frame = Frame::Msg(msg);
        let mut encoded = BytesMut::new();
        let _ = self.frames.encode(&frame, &mut encoded);
        let Frame::Msg(msg) = frame;
        let Some(at) = self.net.route_peer(from, to, self.now, encoded.len()) else { return };
        let from_generation = self.hosts[from].generation;
        if self.hosts[to].node.is_none() {
            let rtt = self.net.round_trip_ms(from, to);
            self.queue.push(self.now + rtt, Event::PeerLost { node: from, generation: from_generation, peer: to });
            return;
        }
        let generation = self.hosts[to].generation;
        let digest = fnv(&encoded);
        self.peer_in_flight += 1;
        self.queue.push(at, Event::PeerDeliver { to, generation, from, msg: Box::new(msg), digest });
    }

    pub(super) fn deliver_peer(&mut self, to: usize, generation: u64, from: usize, msg: Box<PeerMsg>, digest: u64) {
        if self.hold(to, || Event::PeerDeliver { to, generation, from, msg: msg.clone(), digest }) {
            return;
        }
        self.peer_in_flight -= 1;
        if self.hosts[to].node.is_none() || self.hosts[to].generation != generation {
            let rtt = self.net.round_trip_ms(to, from);
            let node_generation = self.hosts[from].generation;
            self.queue.push(self.now + rtt, Event::PeerLost { node: from, generation: node_generation, peer: to });
            return;
        }
        self.trace.record(self.now, to, 8, &digest.to_le_bytes(), || format!("peer from n{from}: {msg:?}"));
        self.handle(to, Input::Peer { from: addr_of(from), name: self.names[from].clone(), msg: *msg });
    }

    pub(super) fn peer_lost(&mut self, node: usize, generation: u64, peer: usize) {
        if self.hosts[node].generation != generation || self.hosts[node].node.is_none() {
            return;
        }
        if self.hold(node, || Event::PeerLost { node, generation, peer }) {
            return;
        }
        self.net.peer_stats.lost += 1;
        self.trace.record(self.now, node, 9, &(peer as u64).to_le_bytes(), || format!("peer n{peer} lost"));
        self.handle(node, Input::PeerLost { peer: addr_of(peer) });
    }

    /// Notes the version of a write that node `i` answers and holds itself (a write that never travels, as on
    /// a node that sees itself alone, is known to the write checkers only this way).
    pub(super) fn sniff_local(&mut self, i: usize, op: usize) {
        let kind = self.workload.history[op].kind.clone();
        if !kind.is_write() {
            return;
        }
        let key = kind.key();
        let Some(entry) = self.entry_of(i, &data::key_name(key)) else { return };
        if self.facts.is_rmw(key) {
            if entry.kind != EntryKind::Evicted {
                self.facts.saw_rmw_version(key, self.now, &entry.vector);
            }
            return;
        }
        match (kind, entry.kind) {
            (OpKind::Set { value, .. }, EntryKind::Value) if check::writes::value_of(&entry.value) == Some(value) => {
                self.facts.saw_value(value, &entry.vector);
                if entry.expire_at_ms != 0 {
                    self.facts.saw_expiring(key, &entry.vector);
                }
            }
            (OpKind::Expire { .. }, EntryKind::Value) if entry.expire_at_ms != 0 => {
                self.facts.saw_expiring(key, &entry.vector)
            }
            (OpKind::Del { .. }, EntryKind::Tombstone) => self.facts.saw_tombstone(key, self.now, &entry.vector),
            _ => {}
        }
    }

    /// Notes the versions writes travel with, for the write checkers.
    fn sniff(&mut self, msg: &PeerMsg) {
        let PeerMsg::Put { entries, .. } = msg else { return };
        for (key, entry) in entries {
            let Some(key) = data::key_number(key) else { continue };
            if entry.kind == EntryKind::Evicted {
                self.facts.saw_eviction(key, self.now, &entry.vector);
                continue;
            }
            if self.facts.is_rmw(key) {
                // Values and tombstones: a DEL concurrent with an INCR is a fork too.
                self.facts.saw_rmw_version(key, self.now, &entry.vector);
                continue;
            }
            match entry.kind {
                EntryKind::Value => {
                    if let Some(value) = check::writes::value_of(&entry.value) {
                        self.facts.saw_value(value, &entry.vector);
                    }
                    if entry.expire_at_ms != 0 {
                        self.facts.saw_expiring(key, &entry.vector);
                    }
                }
                EntryKind::Tombstone => self.facts.saw_tombstone(key, self.now, &entry.vector),
                EntryKind::Evicted => {}
            }
        }
    }
}
