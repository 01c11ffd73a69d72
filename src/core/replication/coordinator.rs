//! The coordinator: where a clustered node sends each client command, and how it waits for replicas.
//!
//! A single-key read runs on any owner of the key (at level ONE straight from the local copy; above ONE the
//! node asks the other owners, merges what they hold into its own copy, answers from the merged copy, and writes
//! the merged entry back to stale replicas: read repair). A single-key write runs on the key's first live owner,
//! which executes it against its own copy (so read-modify-write commands see the latest write it knows, and its
//! version vector dominates every write it has seen) and sends the resulting entry to the other owners,
//! answering once the write level is met. A replica that does not answer in time (or whose connection fails) gets
//! its copy through a fallback node holding a hint, or through a hint kept here (sloppy quorum: a fallback's
//! acknowledgement counts). A node that does not own a key forwards the command to its owners in preference
//! order, failing over to the next when one fails. Multi-key commands are split per key and their parts combined.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use super::levels::{Consistency, Levels};
use super::state::{Asked, FanKind, Origin, Pending, Target};
use super::wire::{PeerMsg, WireEntry};
use crate::core::command::{Command, SetCond, SetTtl};
use crate::core::node::{Node, Outbox, Output, TimerId};
use crate::core::reply::{err_wrong_arity, Reply};
use crate::core::store::{entry_hash, Entry};
use crate::core::Millis;

/// Redis Cluster's text for a multi-key command whose keys live on different nodes.
pub const ERR_CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// Why an entry from a peer was not merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Storing it needs memory the `maxmemory` policy cannot free.
    NoRoom,
    /// Its version is further ahead of this node's clock than `clock_drift_max_ms`.
    ClockAhead,
}

impl Node {
    /// A client command (or a part of one, or one forwarded by a peer) enters the cluster path.
    pub(crate) fn route(&mut self, now: Millis, origin: Origin, cmd: Command, levels: Levels, out: &mut Outbox) {
        self.refresh_ring(now);
        if let Some(key) = cmd.single_key().cloned() {
            return self.route_single(now, origin, key, cmd, levels, out);
        }
        match cmd {
            Command::MGet { keys } => {
                let parts = keys.into_iter().map(|key| Command::Get { key }).collect();
                self.fan_out(now, origin, FanKind::Array, parts, levels, out)
            }
            Command::MSet { pairs, if_none_exist: false } => {
                let parts = pairs
                    .into_iter()
                    .map(|(key, value)| Command::Set {
                        key,
                        value,
                        cond: SetCond::Always,
                        ttl: SetTtl::Clear,
                        get: false,
                        reply_int: false,
                    })
                    .collect();
                self.fan_out(now, origin, FanKind::AllOk, parts, levels, out)
            }
            Command::MSet { pairs, if_none_exist: true } => {
                // MSETNX is all-or-nothing: it runs on one node only when every key has the same first owner.
                let primaries: Vec<Option<String>> = pairs.iter().map(|(k, _)| self.primary_of(k)).collect();
                if primaries.windows(2).any(|w| w[0] != w[1]) {
                    return self.respond(origin, Reply::err(ERR_CROSSSLOT), out);
                }
                // A client cannot send MSETNX without pairs (arity), but a peer's `Forward` can.
                let Some(key) = pairs.first().map(|(k, _)| k.clone()) else {
                    self.repl_mut().stats.peer_msgs_invalid += 1;
                    return self.respond(origin, err_wrong_arity("msetnx"), out);
                };
                self.route_single(now, origin, key, Command::MSet { pairs, if_none_exist: true }, levels, out)
            }
            Command::Del { keys } => {
                let parts = keys.into_iter().map(|k| Command::Del { keys: vec![k] }).collect();
                self.fan_out(now, origin, FanKind::Sum, parts, levels, out)
            }
            Command::Exists { keys } => {
                let parts = keys.into_iter().map(|k| Command::Exists { keys: vec![k] }).collect();
                self.fan_out(now, origin, FanKind::Sum, parts, levels, out)
            }
            Command::Touch { keys } => {
                let parts = keys.into_iter().map(|k| Command::Touch { keys: vec![k] }).collect();
                self.fan_out(now, origin, FanKind::Sum, parts, levels, out)
            }
            Command::FlushAll => self.flush_all(now, origin, out),
            Command::Owners { key } => {
                let reply = self.owners_reply(&key);
                self.respond(origin, reply, out)
            }
            Command::Lock(op) => self.lock_command(now, origin, op, out),
            Command::LocalGet { key } => {
                let reply = self.local_get_reply(&key, now);
                self.respond(origin, reply, out)
            }
            other => {
                // Keyless commands (DBSIZE, KEYS, SCAN, RANDOMKEY, INFO, SHOAL.MEMBERS, SHOAL.READY) answer for
                // this node; readiness is brought up to date first.
                if matches!(other, Command::Ready | Command::Info { .. }) {
                    self.update_readiness(now);
                }
                let reply = self.execute(now, other);
                self.respond(origin, reply, out)
            }
        }
    }

    fn route_single(
        &mut self,
        now: Millis,
        origin: Origin,
        key: Bytes,
        cmd: Command,
        levels: Levels,
        out: &mut Outbox,
    ) {
        // Fast path: a read at ONE on one of the key's owners is answered from the local copy.
        if levels.read == Consistency::One && cmd.is_read() {
            let me = self.config.name.as_str();
            let owned = self.repl().ring.preference_list(&key, self.config.replicas).contains(&me);
            if owned {
                let reply = self.execute(now, cmd);
                return self.respond(origin, reply, out);
            }
        }
        let owners = self.owner_names(&key);
        let me = self.config.name.as_str();
        let from_peer = matches!(origin, Origin::Peer { .. });
        if cmd.is_read() {
            if from_peer || owners.iter().any(|o| **o == *me) {
                self.coordinate_read(now, origin, key, cmd, levels.read, owners, out);
            } else {
                self.forward(now, origin, cmd, levels, owners, out);
            }
        } else if from_peer || owners.first().is_some_and(|o| **o == *me) {
            self.coordinate_write(now, origin, cmd, levels.write, owners, out);
        } else {
            self.forward(now, origin, cmd, levels, owners, out);
        }
    }

    /// Send the command to the first owner that answers, in preference order.
    fn forward(
        &mut self,
        now: Millis,
        origin: Origin,
        cmd: Command,
        levels: Levels,
        candidates: Vec<Arc<str>>,
        out: &mut Outbox,
    ) {
        let id = self.repl_mut().id();
        self.repl_mut().stats.forwards += 1;
        let placeholder = SocketAddr::from(([0, 0, 0, 0], 0));
        let pending = Pending::Forward { origin, cmd, levels, candidates, next: 0, to: placeholder };
        self.repl_mut().pending.insert(id, pending);
        self.forward_next(now, id, out);
    }

    /// Try the forward's next candidate (this node coordinates itself when it is the next one).
    fn forward_next(&mut self, now: Millis, id: u64, out: &mut Outbox) {
        let timeout = self.forward_timeout_ms();
        loop {
            let Some(Pending::Forward { candidates, next, .. }) = self.repl().pending.get(&id) else { return };
            let Some(name) = candidates.get(*next).cloned() else {
                let Some(Pending::Forward { origin, candidates, .. }) = self.repl_mut().pending.remove(&id) else {
                    return;
                };
                self.repl_mut().stats.timeouts += 1;
                let text = format!("TIMEOUT no owner of the key answered ({} tried)", candidates.len());
                return self.respond(origin, Reply::error(text), out);
            };
            if let Some(Pending::Forward { next, .. }) = self.repl_mut().pending.get_mut(&id) {
                *next += 1;
            }
            if *name == *self.config.name {
                let Some(Pending::Forward { origin, cmd, levels, candidates, .. }) =
                    self.repl_mut().pending.remove(&id)
                else {
                    return;
                };
                if cmd.is_read() {
                    let key = cmd.single_key().cloned().unwrap_or_default();
                    return self.coordinate_read(now, origin, key, cmd, levels.read, candidates, out);
                }
                return self.coordinate_write(now, origin, cmd, levels.write, candidates, out);
            }
            let Some(addr) = self.repl().addr_of(&name) else { continue };
            let Some(Pending::Forward { cmd, levels, to, .. }) = self.repl_mut().pending.get_mut(&id) else {
                return;
            };
            *to = addr;
            let msg = PeerMsg::Forward { id, cmd: cmd.clone(), levels: *levels };
            out.push(Output::SendPeer { to: addr, msg });
            out.push(Output::Schedule { after_ms: timeout, timer: TimerId::Request(id) });
            return;
        }
    }

    /// A forwarded command was answered.
    pub(crate) fn forward_replied(&mut self, from: SocketAddr, id: u64, reply: Reply, out: &mut Outbox) {
        match self.repl().pending.get(&id) {
            Some(Pending::Forward { to, .. }) if *to == from => {}
            _ => return,
        }
        if let Some(Pending::Forward { origin, .. }) = self.repl_mut().pending.remove(&id) {
            self.respond(origin, reply, out);
        }
    }

    /// The link to forward `id`'s owner failed after the command went out on it: the owner may have run it, and
    /// running a command whose effect depends on the value (INCR, APPEND, DEL, ...) on the next owner could run
    /// it twice, so the client hears that the outcome is unknown (as at a timeout) and decides.
    fn forward_unknown(&mut self, id: u64, out: &mut Outbox) {
        let Some(Pending::Forward { origin, to, .. }) = self.repl_mut().pending.remove(&id) else { return };
        self.repl_mut().stats.forwards_unknown += 1;
        let name = self.name_of(to).unwrap_or_else(|| to.to_string());
        let text = format!(
            "TIMEOUT the connection to the key's owner {name} failed before it answered (the command may or may \
             not have run)"
        );
        self.respond(origin, Reply::error(text), out);
    }

    /// Read at `level`: from the local copy at ONE, else after merging the other owners' copies into it.
    #[allow(clippy::too_many_arguments)]
    fn coordinate_read(
        &mut self,
        now: Millis,
        origin: Origin,
        key: Bytes,
        cmd: Command,
        level: Consistency,
        owners: Vec<Arc<str>>,
        out: &mut Outbox,
    ) {
        let me = self.config.name.as_str();
        let n = owners.len().max(1);
        let needed = level.required(n);
        let local = usize::from(owners.iter().any(|o| **o == *me));
        if needed <= local {
            let reply = self.execute(now, cmd);
            return self.respond(origin, reply, out);
        }
        let asked = self.other_owners(&owners);
        let id = self.repl_mut().id();
        ask_for(&asked, id, &key, out);
        let pending = Pending::Read {
            origin: Some(origin),
            cmd,
            key,
            needed: needed - local,
            asked,
            level: level.as_str(),
            then_write: None,
        };
        self.repl_mut().pending.insert(id, pending);
        out.push(Output::Schedule { after_ms: self.config.request_timeout_ms, timer: TimerId::Request(id) });
        self.read_progress(now, id, false, out);
    }

    /// A replica answered a read (or a `Get` from anti-entropy-free paths): merge, then see whether to answer.
    pub(crate) fn read_replied(
        &mut self,
        now: Millis,
        from: SocketAddr,
        id: u64,
        entries: Vec<Option<WireEntry>>,
        out: &mut Outbox,
    ) {
        let key = match self.repl().pending.get(&id) {
            Some(Pending::Read { key, asked, .. }) if asked.iter().any(|a| a.addr == from && a.answer.is_none()) => {
                key.clone()
            }
            _ => return,
        };
        let entry = entries.into_iter().next().flatten();
        let hash = match entry {
            Some(w) => {
                let e = Entry::from_wire(w);
                let h = entry_hash(&key, &e);
                // A copy from too far in the future is not an answer: the replica counts as failed.
                self.merge_entry(now, &key, e).is_ok().then_some(h)
            }
            None => Some(0),
        };
        if let Some(Pending::Read { asked, .. }) = self.repl_mut().pending.get_mut(&id) {
            if let Some(a) = asked.iter_mut().find(|a| a.addr == from) {
                match hash {
                    Some(hash) => a.answer = Some(hash),
                    None => a.failed = true,
                }
            }
        }
        self.read_progress(now, id, false, out);
    }

    /// Answer the read once enough replicas did; finish (read repair) once all did, failed, or time ran out.
    fn read_progress(&mut self, now: Millis, id: u64, timed_out: bool, out: &mut Outbox) {
        let Some(Pending::Read { origin, needed, asked, level, then_write, .. }) = self.repl().pending.get(&id) else {
            return;
        };
        let answered = asked.iter().filter(|a| a.answer.is_some()).count();
        let settled = asked.iter().all(|a| a.answer.is_some() || a.failed);
        if then_write.is_some() {
            if !(settled || timed_out) {
                return;
            }
            let Some(Pending::Read { origin: Some(origin), cmd, then_write: Some((level, owners)), .. }) =
                self.repl_mut().pending.remove(&id)
            else {
                return;
            };
            if answered == 0 && cmd.depends_on_value() && self.recently_stalled(now) {
                // A node that just stalled holds copies that may miss acknowledged writes: without a single
                // other owner's copy, running the command here could undo them.
                self.repl_mut().stats.timeouts += 1;
                let text = format!(
                    "TIMEOUT write at {}: this node was stalled and none of the key's other owners answered its \
                     re-read (the command did not run)",
                    level.as_str()
                );
                return self.respond(origin, Reply::error(text), out);
            }
            return self.write_now(now, origin, cmd, level, owners, out);
        }
        let answer_now = origin.is_some() && answered >= *needed;
        let fail_now = origin.is_some() && !answer_now && (timed_out || settled);
        let (needed, level) = (*needed, *level);
        if answer_now || fail_now {
            let Some(Pending::Read { origin, cmd, .. }) = self.repl_mut().pending.get_mut(&id) else { return };
            let origin = origin.take().expect("checked above");
            let cmd = cmd.clone();
            let reply = if answer_now {
                self.execute(now, cmd)
            } else {
                self.repl_mut().stats.timeouts += 1;
                Reply::error(format!(
                    "TIMEOUT read at {level}: {} of {} required replicas answered",
                    answered + 1,
                    needed + 1
                ))
            };
            self.respond(origin, reply, out);
        }
        if settled || timed_out {
            let Some(Pending::Read { key, asked, .. }) = self.repl_mut().pending.remove(&id) else { return };
            self.read_repair(now, &key, &asked, out);
        }
    }

    /// Write the merged local copy back to every replica that answered with something else.
    fn read_repair(&mut self, now: Millis, key: &Bytes, asked: &[Asked], out: &mut Outbox) {
        let Some(local) = self.store.raw(key, now) else { return };
        let hash = entry_hash(key, local);
        let wire = local.to_wire();
        for a in asked {
            if a.answer.is_some_and(|h| h != hash) {
                self.repl_mut().stats.read_repairs += 1;
                let msg = PeerMsg::Put { id: 0, entries: vec![(key.clone(), wire.clone())], hint_for: None };
                out.push(Output::SendPeer { to: a.addr, msg });
            }
        }
    }

    /// Coordinate a write here. The key's first owner on a settled ring runs it at once: it has seen every write
    /// it coordinated. Any other coordinator (a failover, a forward from a node with another view, the first owner
    /// of a ring that just changed) first merges the other owners' copies into its own, so the write's version
    /// dominates the writes acknowledged before it whatever the clocks say, and read-modify-write commands see
    /// them.
    fn coordinate_write(
        &mut self,
        now: Millis,
        origin: Origin,
        cmd: Command,
        level: Consistency,
        owners: Vec<Arc<str>>,
        out: &mut Outbox,
    ) {
        let first = owners.first().is_some_and(|o| **o == *self.config.name);
        // A command whose effect depends on the current value (DEL, INCR, SET NX, EXPIRE, ...) also reads first
        // when this node holds no value for the key: it may have restarted empty and not be refilled yet, or a
        // newer write may not have reached it (a DEL that saw nothing here would delete nothing anywhere).
        let key = cmd.single_key().cloned();
        // (The store is looked up only when the answer matters: a plain SET does not depend on the value.)
        let absent = |node: &Self| key.as_ref().is_some_and(|k| node.store.peek(k, now).is_none());
        let trusted = first && self.ring_settled(now) && !(cmd.depends_on_value() && absent(self));
        // The steady-state write (first owner, settled ring) goes straight on: nothing to list or ask.
        let (Some(key), false) = (key, trusted) else {
            return self.write_now(now, origin, cmd, level, owners, out);
        };
        let asked = self.other_owners(&owners);
        if asked.is_empty() {
            return self.write_now(now, origin, cmd, level, owners, out);
        }
        let id = self.repl_mut().id();
        ask_for(&asked, id, &key, out);
        let needed = asked.len();
        let then_write = Some((level, owners));
        let pending =
            Pending::Read { origin: Some(origin), cmd, key, needed, asked, level: level.as_str(), then_write };
        self.repl_mut().pending.insert(id, pending);
        out.push(Output::Schedule { after_ms: self.config.request_timeout_ms, timer: TimerId::Request(id) });
    }

    /// The owners other than this node that are live, as replicas to ask.
    fn other_owners(&self, owners: &[Arc<str>]) -> Vec<Asked> {
        let me = self.config.name.as_str();
        owners
            .iter()
            .filter(|o| ***o != *me)
            .filter_map(|o| self.repl().addr_of(o))
            .map(|addr| Asked { addr, answer: None, failed: false })
            .collect()
    }

    /// Whether the ring has not changed for two anti-entropy periods (views have had time to agree).
    pub(crate) fn ring_settled(&self, now: Millis) -> bool {
        now.saturating_sub(self.repl().ring_changed_at) >= 2 * self.config.anti_entropy_period_ms
    }

    /// Execute a write here, then replicate the entries it changed to the other owners.
    fn write_now(
        &mut self,
        now: Millis,
        origin: Origin,
        cmd: Command,
        level: Consistency,
        owners: Vec<Arc<str>>,
        out: &mut Outbox,
    ) {
        self.dirty.clear();
        let reply = self.execute(now, cmd);
        if owners.len() == 1 && *owners[0] == *self.config.name {
            // A cluster of one: nothing to replicate.
            self.dirty.clear();
            return self.respond(origin, reply, out);
        }
        let mut keys = std::mem::take(&mut self.dirty);
        keys.sort();
        keys.dedup();
        let entries: Vec<(Bytes, WireEntry)> =
            keys.drain(..).filter_map(|k| self.store.raw(&k, now).map(|e| (k, e.to_wire()))).collect();
        self.dirty = keys; // Drained: kept for its allocation.
        if entries.is_empty() {
            return self.respond(origin, reply, out);
        }
        let me = self.config.name.as_str();
        let n = owners.len().max(1);
        let needed = level.required(n);
        let acks = usize::from(owners.iter().any(|o| **o == *me));
        let targets: Vec<Target> = owners
            .iter()
            .filter(|o| ***o != *me)
            .filter_map(|o| {
                let addr = self.repl().addr_of(o)?;
                Some(Target { name: o.clone(), addr, acked: false, fallback: None, hinted_here: false, refused: false })
            })
            .collect();
        let id = self.repl_mut().id();
        for t in &targets {
            let msg = PeerMsg::Put { id, entries: entries.clone(), hint_for: None };
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
        self.repl_mut().pending.insert(id, pending);
        out.push(Output::Schedule { after_ms: self.config.request_timeout_ms, timer: TimerId::Request(id) });
    }

    fn write_failed(&mut self, origin: Origin, level: &str, acks: usize, needed: usize, out: &mut Outbox) {
        self.repl_mut().stats.timeouts += 1;
        let text = format!("TIMEOUT write at {level}: {acks} of {needed} required replicas acknowledged");
        self.respond(origin, Reply::error(text), out);
    }

    /// A `PutAck` arrived: count it for the write (from the replica or from the fallback holding its hint).
    pub(crate) fn put_acked(&mut self, now: Millis, from: SocketAddr, id: u64, out: &mut Outbox) {
        if let Some(Pending::HintDelivery { target, .. }) = self.repl().pending.get(&id) {
            if self.name_of(from).as_ref() == Some(target) {
                self.hints_delivered(id);
            }
            return;
        }
        match self.repl_mut().pending.get_mut(&id) {
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

    fn write_acked(&mut self, from: SocketAddr, id: u64, out: &mut Outbox) {
        let Some(Pending::Write { origin, acks, targets, needed, reply, .. }) = self.repl_mut().pending.get_mut(&id)
        else {
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
            self.repl_mut().pending.remove(&id);
        }
        if let Some((origin, reply)) = answer {
            self.respond(origin, reply, out);
        }
    }

    /// A replica of write `id` failed (timeout or lost connection): hand its copy to a fallback node with a
    /// hint, or keep the hint here when there is none (or the fallback failed too).
    fn write_replica_failed(&mut self, now: Millis, id: u64, which: usize, out: &mut Outbox) {
        let Some(Pending::Write { targets, entries, .. }) = self.repl().pending.get(&id) else { return };
        let t = targets[which].clone();
        if t.acked || t.hinted_here || t.refused {
            return;
        }
        let keys: Vec<Bytes> = entries.iter().map(|(k, _)| k.clone()).collect();
        let used: Vec<SocketAddr> = targets.iter().flat_map(|t| [Some(t.addr), t.fallback]).flatten().collect();
        self.repl_mut().stats.replica_failures += 1;
        let fallback = if t.fallback.is_none() { self.fallback_for(&keys[0], &used) } else { None };
        let Some(Pending::Write { targets, entries, .. }) = self.repl_mut().pending.get_mut(&id) else { return };
        match fallback {
            Some(addr) => {
                targets[which].fallback = Some(addr);
                let msg = PeerMsg::Put { id, entries: entries.clone(), hint_for: Some(t.name.to_string()) };
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
    fn fallback_for(&mut self, key: &[u8], used: &[SocketAddr]) -> Option<SocketAddr> {
        let me = self.config.name.clone();
        let n = self.config.replicas;
        let names: Vec<String> =
            self.ring_ref().preference_list(key, usize::MAX).into_iter().map(String::from).collect();
        names
            .into_iter()
            .skip(n)
            .filter(|name| *name != me)
            .filter_map(|name| self.repl().addr_of(&name))
            .find(|addr| !used.contains(addr))
    }

    /// Request `id`'s timer fired.
    pub(crate) fn request_timer(&mut self, now: Millis, id: u64, out: &mut Outbox) {
        match self.repl().pending.get(&id) {
            Some(Pending::Forward { .. }) => {
                // No answer in time: the owner may have run the command. Running it again on the next owner could
                // apply it twice (a second version of the same write), so the client gets an error instead and
                // decides; only a failed connection (`PeerLost`) fails over.
                let Some(Pending::Forward { origin, to, .. }) = self.repl_mut().pending.remove(&id) else { return };
                self.repl_mut().stats.timeouts += 1;
                let name = self.name_of(to).unwrap_or_else(|| to.to_string());
                let text = format!(
                    "TIMEOUT no answer from the key's owner {name} within {} ms (the command may or may not have run)",
                    self.forward_timeout_ms()
                );
                self.respond(origin, Reply::error(text), out);
            }
            Some(Pending::Read { .. }) => self.read_progress(now, id, true, out),
            Some(Pending::Write { round, targets, .. }) => {
                let round = *round;
                let count = targets.len();
                if round == 0 {
                    for which in 0..count {
                        self.write_replica_failed(now, id, which, out);
                    }
                    if let Some(Pending::Write { round, .. }) = self.repl_mut().pending.get_mut(&id) {
                        *round = 1;
                    }
                    out.push(Output::Schedule {
                        after_ms: self.config.request_timeout_ms,
                        timer: TimerId::Request(id),
                    });
                } else {
                    self.write_finish(now, id, out);
                }
            }
            Some(Pending::Handoff { .. }) | Some(Pending::HintDelivery { .. }) => {
                self.repl_mut().pending.remove(&id);
            }
            Some(Pending::Flush { .. }) => self.flush_done(id, None, out),
            Some(Pending::Lock(_)) => self.lock_progress(now, id, true, out),
            Some(Pending::Fanout { .. }) | None => {}
        }
    }

    /// The write's last chance passed: keep hints here for replicas whose copy is not confirmed anywhere, and
    /// answer with an error if the level was not met.
    fn write_finish(&mut self, now: Millis, id: u64, out: &mut Outbox) {
        let Some(Pending::Write { origin, entries, targets, acks, needed, level, .. }) =
            self.repl_mut().pending.remove(&id)
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

    /// The connection to `peer` failed: fail over everything waiting on it now instead of at its timeout.
    pub(crate) fn peer_lost(&mut self, now: Millis, peer: SocketAddr, out: &mut Outbox) {
        let ids: Vec<u64> = self.repl().pending.keys().copied().collect();
        let peer_name = self.name_of(peer);
        for id in ids {
            match self.repl_mut().pending.get_mut(&id) {
                Some(Pending::Forward { to, cmd, .. }) if *to == peer => {
                    if cmd.is_read() || !cmd.depends_on_value() {
                        self.repl_mut().stats.forward_failovers += 1;
                        self.forward_next(now, id, out);
                    } else {
                        self.forward_unknown(id, out);
                    }
                }
                Some(Pending::Read { asked, .. }) => {
                    if let Some(a) = asked.iter_mut().find(|a| a.addr == peer && a.answer.is_none()) {
                        a.failed = true;
                        self.read_progress(now, id, false, out);
                    }
                }
                Some(Pending::Write { targets, .. }) => {
                    let hit: Vec<usize> = (0..targets.len())
                        .filter(|&i| {
                            !targets[i].acked
                                && !targets[i].refused
                                && (targets[i].addr == peer || targets[i].fallback == Some(peer))
                        })
                        .collect();
                    for which in hit {
                        let fallback_failed = matches!(
                            self.repl().pending.get(&id),
                            Some(Pending::Write { targets, .. }) if targets[which].fallback == Some(peer)
                        );
                        if fallback_failed {
                            let Some(Pending::Write { targets, entries, .. }) = self.repl_mut().pending.get_mut(&id)
                            else {
                                continue;
                            };
                            targets[which].hinted_here = true;
                            let name = targets[which].name.clone();
                            let keys: Vec<Bytes> = entries.iter().map(|(k, _)| k.clone()).collect();
                            for key in keys {
                                self.add_hint(now, name.to_string(), key);
                            }
                        } else {
                            self.write_replica_failed(now, id, which, out);
                        }
                    }
                }
                Some(Pending::Handoff { waiting, .. }) if waiting.contains(&peer) => {
                    self.repl_mut().pending.remove(&id);
                }
                Some(Pending::Flush { .. }) => self.flush_done(id, Some(peer), out),
                Some(Pending::HintDelivery { target, .. }) if peer_name.as_ref() == Some(target) => {
                    self.repl_mut().pending.remove(&id);
                }
                Some(Pending::Lock(_)) => self.lock_peer_lost(now, id, peer, out),
                _ => {}
            }
        }
    }

    /// Split a multi-key command into single-key parts and combine their replies.
    fn fan_out(
        &mut self,
        now: Millis,
        origin: Origin,
        kind: FanKind,
        parts: Vec<Command>,
        levels: Levels,
        out: &mut Outbox,
    ) {
        let count = parts.len();
        if count == 0 {
            // No part would ever answer: a client cannot send a multi-key command without keys (arity), but a
            // peer's `Forward` can. Answer at once as the empty command would be (an empty array, OK, 0).
            self.repl_mut().stats.peer_msgs_invalid += 1;
            return self.respond(origin, combine(kind, Vec::new()), out);
        }
        let id = self.repl_mut().id();
        let pending = Pending::Fanout { origin, kind, parts: vec![None; count], remaining: count };
        self.repl_mut().pending.insert(id, pending);
        for (index, cmd) in parts.into_iter().enumerate() {
            self.route(now, Origin::Part { parent: id, index }, cmd, levels, out);
        }
    }

    /// Deliver a reply to whoever waits for it.
    pub(crate) fn respond(&mut self, origin: Origin, reply: Reply, out: &mut Outbox) {
        match origin {
            Origin::Client { conn, req } => out.push(Output::Reply { conn, req, reply }),
            Origin::Peer { peer, id } => {
                out.push(Output::SendPeer { to: peer, msg: PeerMsg::ForwardReply { id, reply } })
            }
            Origin::Part { parent, index } => {
                let Some(Pending::Fanout { parts, remaining, .. }) = self.repl_mut().pending.get_mut(&parent) else {
                    return;
                };
                if parts[index].is_none() {
                    parts[index] = Some(reply);
                    *remaining -= 1;
                }
                if *remaining > 0 {
                    return;
                }
                let Some(Pending::Fanout { origin, kind, parts, .. }) = self.repl_mut().pending.remove(&parent) else {
                    return;
                };
                let parts: Vec<Reply> = parts.into_iter().map(|p| p.unwrap_or(Reply::Nil)).collect();
                let combined = combine(kind, parts);
                self.respond(origin, combined, out);
            }
        }
    }

    /// Entries from a peer (`Put`): merge each; keep a hint when the copy is meant for another replica. An entry
    /// refused for lack of memory is named in a `PutRefused`; one refused for a clock too far ahead leaves the
    /// whole `Put` unanswered, so the sender counts the replica as failed and keeps its copy to retry.
    pub(crate) fn put_received(
        &mut self,
        now: Millis,
        from: SocketAddr,
        id: u64,
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
                if *target != self.config.name {
                    self.add_hint(now, target.clone(), key);
                }
            }
        }
        if id != 0 && !clock_ahead {
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
        self.hlc.observe(time);
        if self.flushed(&entry) {
            // Written before a FLUSHALL this node applied: the flush wins, and nothing is left to store.
            self.repl_mut().stats.flushed_drops += 1;
            return Ok(());
        }
        if !self.admit(now, key, &entry) {
            self.repl_mut().stats.merges_refused += 1;
            return Err(Refusal::NoRoom);
        }
        let outcome = self.store.merge(key, entry, now);
        if outcome.changed && self.config.maxmemory_bytes != 0 {
            // Replicated data obeys the memory limit too (what this evicts leaves a marker that spreads).
            self.make_room(now);
        }
        let stats = &mut self.repl_mut().stats;
        stats.merged_changes += u64::from(outcome.changed);
        stats.lww_conflicts += u64::from(outcome.lww_conflict);
        Ok(())
    }

    /// The key's preference list (names), as this node's ring sees it.
    pub fn owners(&self, key: &[u8]) -> Vec<String> {
        self.owner_names(key).iter().map(|n| n.to_string()).collect()
    }

    /// `owners` as shared names, for the request path (no string copies).
    pub(crate) fn owner_names(&self, key: &[u8]) -> Vec<Arc<str>> {
        match &self.repl {
            Some(r) => r.ring.preference_names(key, self.config.replicas),
            None => vec![Arc::from(self.config.name.as_str())],
        }
    }

    fn primary_of(&self, key: &[u8]) -> Option<String> {
        self.repl.as_ref().and_then(|r| r.ring.primary(key)).map(String::from)
    }

    pub(crate) fn owners_reply(&self, key: &[u8]) -> Reply {
        let members = self.membership.as_ref().map(|m| m.live_members()).unwrap_or_default();
        let text = |s: String| Reply::Bulk(Bytes::from(s));
        Reply::Array(
            self.owners(key)
                .into_iter()
                .map(|name| {
                    let info = members.iter().find(|m| m.name == name);
                    let addr = |f: fn(&crate::core::membership::MemberInfo) -> SocketAddr| {
                        info.map_or(Reply::Nil, |m| text(f(m).to_string()))
                    };
                    Reply::Map(vec![
                        (Reply::simple("name"), text(name.clone())),
                        (Reply::simple("cluster_addr"), addr(|m| m.gossip_addr)),
                        (Reply::simple("client_addr"), addr(|m| m.client_addr)),
                    ])
                })
                .collect(),
        )
    }

    pub(crate) fn local_get_reply(&self, key: &[u8], now: Millis) -> Reply {
        let Some(e) = self.store.view(key, now) else { return Reply::Nil };
        let kind = match e.kind {
            super::EntryKind::Value => "value",
            super::EntryKind::Tombstone => "tombstone",
            super::EntryKind::Evicted => "evicted",
        };
        let version: Vec<String> = e.vector.entries().iter().map(|(n, t)| format!("{:016x}:{}", n.0, t.0)).collect();
        Reply::Map(vec![
            (Reply::simple("kind"), Reply::simple(kind)),
            (Reply::simple("value"), if e.is_value() { Reply::Bulk(e.value.clone()) } else { Reply::Nil }),
            (Reply::simple("version"), Reply::Bulk(Bytes::from(version.join(",")))),
            (Reply::simple("expire_at_ms"), Reply::Int(e.expire_at_ms as i64)),
        ])
    }

    /// The timeout of a forward: long enough for the owner's own write rounds (two replica timeouts).
    pub(crate) fn forward_timeout_ms(&self) -> Millis {
        let t = self.config.request_timeout_ms;
        t.saturating_mul(2).saturating_add(t / 2)
    }
}

/// Ask every replica in `asked` for its copy of `key` under request `id`.
fn ask_for(asked: &[Asked], id: u64, key: &Bytes, out: &mut Outbox) {
    for a in asked {
        out.push(Output::SendPeer { to: a.addr, msg: PeerMsg::Get { id, keys: vec![key.clone()] } });
    }
}

/// Combine the parts of a multi-key command; the first error wins.
fn combine(kind: FanKind, parts: Vec<Reply>) -> Reply {
    if let Some(e) = parts.iter().find(|p| p.is_error()) {
        return e.clone();
    }
    match kind {
        FanKind::Array => Reply::Array(parts),
        FanKind::AllOk => Reply::Ok,
        FanKind::Sum => Reply::Int(parts.iter().map(|p| if let Reply::Int(n) = p { *n } else { 0 }).sum()),
    }
}
