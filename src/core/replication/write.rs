//! Coordinated writes: the key's first live owner executes the command on its own copy (re-reading the other
//! owners first while the ring is unsettled or after a stall), sends the resulting entry to the other owners and
//! answers once the write level is met. A replica that fails or does not answer gets its copy through a fallback
//! node holding a hint, or through a hint kept here (sloppy quorum: a fallback's acknowledgement counts).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use super::levels::Consistency;
use super::read::ask_for;
use super::state::{Asked, Origin, Pending, Target};
use super::wire::{PeerMsg, WireEntry};
use crate::core::command::Command;
use crate::core::driver::RequestId;
use crate::core::node::{Clustered, Outbox, Output, TimerId};
use crate::core::reply::Reply;
use crate::core::Millis;

impl Clustered<'_> {
    /// Coordinate a write here. The key's first owner on a settled ring runs it at once: it has seen every write
    /// it coordinated. Any other coordinator (a failover, a forward from a node with another view, the first owner
    /// of a ring that just changed) first merges the other owners' copies into its own, so the write's version
    /// dominates the writes acknowledged before it whatever the clocks say, and read-modify-write commands see
    /// them.
    pub(super) fn coordinate_write(
        &mut self,
        now: Millis,
        origin: Origin,
        cmd: Command,
        level: Consistency,
        owners: Vec<Arc<str>>,
        out: &mut Outbox,
    ) {
        let first = owners.first().is_some_and(|o| **o == *self.local.config.name);
        // A command whose effect depends on the current value (DEL, INCR, SET NX, EXPIRE, ...) also reads first
        // when this node holds no value for the key: it may have restarted empty and not be refilled yet, or a
        // newer write may not have reached it (a DEL that saw nothing here would delete nothing anywhere).
        let key = cmd.single_key().cloned();
        // (The store is looked up only when the answer matters: a plain SET does not depend on the value.)
        let absent = |node: &Self| key.as_ref().is_some_and(|k| node.local.store.peek(k, now).is_none());
        let trusted = first && self.ring_settled(now) && !(cmd.depends_on_value() && absent(self));
        // The steady-state write (first owner, settled ring) goes straight on: nothing to list or ask.
        let (Some(key), false) = (key, trusted) else {
            return self.write_now(now, origin, cmd, level, owners, out);
        };
        let asked = self.other_owners(&owners);
        if asked.is_empty() {
            return self.write_now(now, origin, cmd, level, owners, out);
        }
        let id = self.repl.id();
        ask_for(&asked, id, &key, out);
        let needed = asked.len();
        let then_write = Some((level, owners));
        let pending = Pending::Read {
            origin: Some(origin),
            cmd,
            key,
            needed,
            asked,
            level: level.as_str(),
            then_write,
            started_at: now,
        };
        self.repl.pending.insert(id, pending);
        out.push(Output::Schedule { after_ms: self.local.config.request_timeout_ms, timer: TimerId::Request(id) });
    }

    /// The owners other than this node that are live, as replicas to ask.
    pub(super) fn other_owners(&self, owners: &[Arc<str>]) -> Vec<Asked> {
        let me = self.local.config.name.as_str();
        owners
            .iter()
            .filter(|o| ***o != *me)
            .filter_map(|o| self.repl.addr_of(o))
            .map(|addr| Asked { addr, answer: None, failed: false })
            .collect()
    }

    /// Whether the ring has not changed for two anti-entropy periods (views have had time to agree).
    pub(crate) fn ring_settled(&self, now: Millis) -> bool {
        self.repl.ring_settled(now, self.local.config.anti_entropy_period_ms)
    }

    /// Execute a write here, then replicate the entries it changed to the other owners.
    pub(super) fn write_now(
        &mut self,
        now: Millis,
        origin: Origin,
        cmd: Command,
        level: Consistency,
        owners: Vec<Arc<str>>,
        out: &mut Outbox,
    ) {
        let executed = self.execute_tracked(now, cmd);
        let reply = executed.reply;
        if owners.len() == 1 && *owners[0] == *self.local.config.name {
            // A cluster of one: nothing to replicate.
            return self.respond(origin, reply, out);
        }
        let entries: Vec<(Bytes, WireEntry)> = executed
            .changed
            .into_iter()
            .filter_map(|k| self.local.store.raw(&k, now).map(|e| (k, e.to_wire())))
            .collect();
        if entries.is_empty() {
            return self.respond(origin, reply, out);
        }
        let me = self.local.config.name.as_str();
        let n = owners.len().max(1);
        let needed = level.required(n);
        let acks = usize::from(owners.iter().any(|o| **o == *me));
        let targets: Vec<Target> = owners
            .iter()
            .filter(|o| ***o != *me)
            .filter_map(|o| {
                let addr = self.repl.addr_of(o)?;
                Some(Target { name: o.clone(), addr, acked: false, fallback: None, hinted_here: false, refused: false })
            })
            .collect();
        let id = self.repl.id();
        for t in &targets {
            let msg = PeerMsg::Put { id: Some(id), entries: entries.clone(), hint_for: None };
            out.push(Output::SendPeer { to: t.addr, msg });
        }
        let origin = if acks >= needed {
            self.respond(origin, reply.clone(), out);
            None
        } else {
            Some(origin)
        };
        if targets.is_empty() {
            if let Some(origin) = origin {
                self.write_failed(origin, level.as_str(), acks, needed, out);
            }
            return;
        }
        let pending = Pending::Write { origin, reply, entries, needed, acks, targets, level: level.as_str(), round: 0 };
        self.repl.pending.insert(id, pending);
        out.push(Output::Schedule { after_ms: self.local.config.request_timeout_ms, timer: TimerId::Request(id) });
    }

    pub(super) fn write_failed(&mut self, origin: Origin, level: &str, acks: usize, needed: usize, out: &mut Outbox) {
        self.repl.stats.timeouts += 1;
        let text = format!("TIMEOUT write at {level}: {acks} of {needed} required replicas acknowledged");
        self.respond(origin, Reply::error(text), out);
    }

    /// A `PutAck` arrived: count it for the write (from the replica or from the fallback holding its hint).
    pub(crate) fn put_acked(&mut self, now: Millis, from: SocketAddr, id: RequestId, out: &mut Outbox) {
        if let Some(Pending::HintDelivery { target, .. }) = self.repl.pending.get(&id) {
            if self.name_of(from).as_ref() == Some(target) {
                self.hints_delivered(id);
            }
            return;
        }
        match self.repl.pending.get_mut(&id) {
            Some(Pending::Write { .. }) => self.write_acked(from, id, out),
            Some(Pending::Handoff { waiting, .. }) => {
                waiting.remove(&from);
                if waiting.is_empty() {
                    self.handoff_done(now, id);
                }
            }
            Some(Pending::Flush { .. }) => self.flush_done(id, Some(from), out),
            _ => {}
        }
    }

    pub(super) fn write_acked(&mut self, from: SocketAddr, id: RequestId, out: &mut Outbox) {
        let Some(Pending::Write { origin, acks, targets, needed, reply, .. }) = self.repl.pending.get_mut(&id) else {
            return;
        };
        let Some(t) = targets.iter_mut().find(|t| !t.acked && (t.addr == from || t.fallback == Some(from))) else {
            return;
        };
        t.acked = true;
        *acks += 1;
        let done = targets.iter().all(|t| t.acked || t.refused);
        let answer = if *acks >= *needed { origin.take().map(|o| (o, reply.clone())) } else { None };
        if done {
            self.repl.pending.remove(&id);
        }
        if let Some((origin, reply)) = answer {
            self.respond(origin, reply, out);
        }
    }

    /// A replica of write `id` failed (timeout or lost connection): hand its copy to a fallback node with a
    /// hint, or keep the hint here when there is none (or the fallback failed too).
    pub(super) fn write_replica_failed(&mut self, now: Millis, id: RequestId, which: usize, out: &mut Outbox) {
        let Some(Pending::Write { targets, entries, .. }) = self.repl.pending.get(&id) else { return };
        let t = targets[which].clone();
        if t.acked || t.hinted_here || t.refused {
            return;
        }
        let keys: Vec<Bytes> = entries.iter().map(|(k, _)| k.clone()).collect();
        let used: Vec<SocketAddr> = targets.iter().flat_map(|t| [Some(t.addr), t.fallback]).flatten().collect();
        self.repl.stats.replica_failures += 1;
        let fallback = if t.fallback.is_none() { self.fallback_for(&keys[0], &used) } else { None };
        let Some(Pending::Write { targets, entries, .. }) = self.repl.pending.get_mut(&id) else { return };
        match fallback {
            Some(addr) => {
                targets[which].fallback = Some(addr);
                let msg = PeerMsg::Put { id: Some(id), entries: entries.clone(), hint_for: Some(t.name.to_string()) };
                out.push(Output::SendPeer { to: addr, msg });
            }
            None => {
                targets[which].hinted_here = true;
                for key in keys {
                    self.add_hint(now, t.name.to_string(), key);
                }
            }
        }
    }

    /// The first live node past the key's preference list that is not in `used` and not this node.
    pub(super) fn fallback_for(&mut self, key: &[u8], used: &[SocketAddr]) -> Option<SocketAddr> {
        let me = self.local.config.name.clone();
        let n = self.local.config.replicas;
        let names: Vec<String> =
            self.ring_ref().preference_list(key, usize::MAX).into_iter().map(String::from).collect();
        names
            .into_iter()
            .skip(n)
            .filter(|name| *name != me)
            .filter_map(|name| self.repl.addr_of(&name))
            .find(|addr| !used.contains(addr))
    }

    /// The write's last chance passed: keep hints here for replicas whose copy is not confirmed anywhere, and
    /// answer with an error if the level was not met.
    pub(super) fn write_finish(&mut self, now: Millis, id: RequestId, out: &mut Outbox) {
        let Some(Pending::Write { origin, entries, targets, acks, needed, level, .. }) = self.repl.pending.remove(&id)
        else {
            return;
        };
        for t in targets.iter().filter(|t| !t.acked && !t.hinted_here && !t.refused) {
            for (key, _) in &entries {
                self.add_hint(now, t.name.to_string(), key.clone());
            }
        }
        if let Some(origin) = origin {
            self.write_failed(origin, level, acks, needed, out);
        }
    }
}
