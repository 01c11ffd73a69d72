//! FLUSHALL across a cluster: a flush epoch, so flushed data does not come back from a node that missed it.
//!
//! The coordinator stamps the flush with its HLC time and every node keeps the newest flush time it knows
//! (`flushed_before`). Applying a flush drops every entry whose latest write is at or before it; afterwards an
//! entry from a peer that old is superseded by the flush and dropped on merge (counted), whatever path brings it
//! (a replicated write in flight, a hint, a hand-off, anti-entropy from a node that missed the flush). The epoch
//! FLUSHALL answers once every live peer applied it (or at the request timeout), so a write acknowledged after it
//! is stamped after it on whichever node runs it. The epoch spreads with anti-entropy: every round starts with it once a flush happened, and a node that knows a newer
//! one answers with its own. Writes stamped after the flush survive it, on every node.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use super::state::{Origin, Pending};
use super::wire::PeerMsg;
use crate::core::clock::Timestamp;
use crate::core::driver::RequestId;
use crate::core::node::{Clustered, Outbox, Output, TimerId};
use crate::core::reply::Reply;
use crate::core::store::Entry;
use crate::core::Millis;

impl Clustered<'_> {
    /// FLUSHALL coordinated here: flush at this node's HLC time now and tell every live peer.
    pub(crate) fn flush_all(&mut self, now: Millis, origin: Origin, out: &mut Outbox) {
        let before = self.local.hlc.now(now);
        self.local.hlc.observe(before);
        self.apply_flush(before);
        let me = self.local.config.name.clone();
        let waiting: BTreeSet<SocketAddr> =
            self.repl.addrs.iter().filter(|(n, _)| **n != me).map(|(_, a)| *a).collect();
        if waiting.is_empty() {
            return self.respond(origin, Reply::Ok, out);
        }
        let id = self.repl.id();
        for to in &waiting {
            out.push(Output::SendPeer { to: *to, msg: PeerMsg::Flushed { id: Some(id), before: before.0 } });
        }
        out.push(Output::Schedule { after_ms: self.local.config.request_timeout_ms, timer: TimerId::Request(id) });
        self.repl.pending.insert(id, Pending::Flush { origin, waiting });
    }

    /// A peer applied flush `id` (`Some(peer)`, also when its link failed: it learns by anti-entropy) or time ran
    /// out (`None`): answer once nobody is left to wait for. Peers that missed it learn it by anti-entropy.
    pub(crate) fn flush_done(&mut self, id: RequestId, peer: Option<SocketAddr>, out: &mut Outbox) {
        let Some(Pending::Flush { waiting, .. }) = self.repl.pending.get_mut(&id) else { return };
        match peer {
            Some(p) => {
                waiting.remove(&p);
            }
            None => waiting.clear(),
        }
        if !waiting.is_empty() {
            return;
        }
        if let Some(Pending::Flush { origin, .. }) = self.repl.pending.remove(&id) {
            self.respond(origin, Reply::Ok, out);
        }
    }

    /// A peer's flush epoch: apply it when newer than this node's; answer with this node's when older. The
    /// clock follows it, so writes made here from now on are stamped after the flush. An epoch implausibly far
    /// ahead of this node's wall clock (beyond `clock_drift_max_ms`) is ignored and counted: it would flush every
    /// write to come.
    pub(crate) fn flush_received(
        &mut self,
        now: Millis,
        from: SocketAddr,
        id: Option<RequestId>,
        before: u64,
        out: &mut Outbox,
    ) {
        let mine = self.repl.flushed_before;
        if !self.peer_time_ok(now, Timestamp(before)) {
            return;
        }
        if let Some(id) = id {
            out.push(Output::SendPeer { to: from, msg: PeerMsg::PutAck { id } });
        }
        if before > mine.0 {
            self.local.hlc.observe(Timestamp(before));
            self.apply_flush(Timestamp(before));
        } else if before < mine.0 {
            out.push(Output::SendPeer { to: from, msg: PeerMsg::Flushed { id: None, before: mine.0 } });
        }
    }

    /// Drop every entry written at or before `before`, and remember it.
    fn apply_flush(&mut self, before: Timestamp) {
        if before <= self.repl.flushed_before {
            return;
        }
        self.repl.flushed_before = before;
        self.local.store.remove_written_up_to(before);
    }

    /// Whether a flush this node knows supersedes `entry` (its latest write is at or before the flush).
    pub(crate) fn flushed(&self, entry: &Entry) -> bool {
        let before = self.repl.flushed_before;
        before.0 != 0 && entry.vector.max_time() <= before
    }

    /// An anti-entropy round with `to` starts with this node's flush epoch, once there is one.
    pub(crate) fn send_flush_epoch(&self, to: SocketAddr, out: &mut Outbox) {
        let before = self.repl.flushed_before;
        if before.0 != 0 {
            out.push(Output::SendPeer { to, msg: PeerMsg::Flushed { id: None, before: before.0 } });
        }
    }
}
