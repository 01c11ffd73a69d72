//! Coordinated reads: at level ONE straight from the local copy; above ONE the node asks the other owners,
//! merges what they hold into its own copy, answers from the merged copy once the level is met, and writes the
//! merged entry back to stale replicas (read repair).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use super::levels::Consistency;
use super::state::{Asked, Origin, Pending};
use super::wire::{PeerMsg, WireEntry};
use crate::core::command::Command;
use crate::core::driver::RequestId;
use crate::core::node::{Clustered, Outbox, Output, TimerId};
use crate::core::reply::Reply;
use crate::core::store::{entry_hash, Entry};
use crate::core::Millis;

impl Clustered<'_> {
    /// Read at `level`: from the local copy at ONE, else after merging the other owners' copies into it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn coordinate_read(
        &mut self,
        now: Millis,
        origin: Origin,
        key: Bytes,
        cmd: Command,
        level: Consistency,
        owners: Vec<Arc<str>>,
        out: &mut Outbox,
    ) {
        let me = self.local.config.name.as_str();
        let n = owners.len().max(1);
        let needed = level.required(n);
        let local = usize::from(owners.iter().any(|o| **o == *me));
        if needed <= local {
            let reply = self.execute(now, cmd);
            return self.respond(origin, reply, out);
        }
        let asked = self.other_owners(&owners);
        let id = self.repl.id();
        ask_for(&asked, id, &key, out);
        let pending = Pending::Read {
            origin: Some(origin),
            cmd,
            key,
            needed: needed - local,
            asked,
            level: level.as_str(),
            then_write: None,
            started_at: now,
        };
        self.repl.pending.insert(id, pending);
        out.push(Output::Schedule { after_ms: self.local.config.request_timeout_ms, timer: TimerId::Request(id) });
        self.read_progress(now, id, false, out);
    }

    /// A replica answered a read (or a `Get` from anti-entropy-free paths): merge, then see whether to answer.
    pub(crate) fn read_replied(
        &mut self,
        now: Millis,
        from: SocketAddr,
        id: RequestId,
        entries: Vec<Option<WireEntry>>,
        out: &mut Outbox,
    ) {
        let key = match self.repl.pending.get(&id) {
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
        if let Some(Pending::Read { asked, .. }) = self.repl.pending.get_mut(&id) {
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
    pub(super) fn read_progress(&mut self, now: Millis, id: RequestId, timed_out: bool, out: &mut Outbox) {
        let Some(Pending::Read { origin, needed, asked, level, then_write, started_at, .. }) =
            self.repl.pending.get(&id)
        else {
            return;
        };
        // The node stalled while this write waited for its re-read: the answers it holds (or gets now, delivered
        // late) may be as old as the stall is long, and running the command on them with a fresh clock would
        // undo the writes acknowledged meanwhile.
        let stalled_since = self.repl.stalled_at.is_some_and(|at| at > *started_at);
        let answered = asked.iter().filter(|a| a.answer.is_some()).count();
        let settled = asked.iter().all(|a| a.answer.is_some() || a.failed);
        if then_write.is_some() {
            if !(settled || timed_out) {
                return;
            }
            let Some(Pending::Read { origin: Some(origin), cmd, then_write: Some((level, owners)), .. }) =
                self.repl.pending.remove(&id)
            else {
                return;
            };
            if stalled_since {
                self.repl.stats.timeouts += 1;
                let text = format!(
                    "TIMEOUT write at {}: this node stalled while it waited for the key's other owners (the command \
                     did not run)",
                    level.as_str()
                );
                return self.respond(origin, Reply::error(text), out);
            }
            if answered == 0 && cmd.depends_on_value() && self.recently_stalled(now) {
                // A node that just stalled holds copies that may miss acknowledged writes: without a single
                // other owner's copy, running the command here could undo them.
                self.repl.stats.timeouts += 1;
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
            let Some(Pending::Read { origin, cmd, .. }) = self.repl.pending.get_mut(&id) else { return };
            let origin = origin.take().expect("checked above");
            let cmd = cmd.clone();
            let reply = if answer_now {
                self.execute(now, cmd)
            } else {
                self.repl.stats.timeouts += 1;
                Reply::error(format!(
                    "TIMEOUT read at {level}: {} of {} required replicas answered",
                    answered + 1,
                    needed + 1
                ))
            };
            self.respond(origin, reply, out);
        }
        if settled || timed_out {
            let Some(Pending::Read { key, asked, .. }) = self.repl.pending.remove(&id) else { return };
            self.read_repair(now, &key, &asked, out);
        }
    }

    /// Write the merged local copy back to every replica that answered with something else.
    pub(super) fn read_repair(&mut self, now: Millis, key: &Bytes, asked: &[Asked], out: &mut Outbox) {
        let Some(local) = self.local.store.raw(key, now) else { return };
        let hash = entry_hash(key, local);
        let wire = local.to_wire();
        for a in asked {
            if a.answer.is_some_and(|h| h != hash) {
                self.repl.stats.read_repairs += 1;
                let msg = PeerMsg::Put { id: None, entries: vec![(key.clone(), wire.clone())], hint_for: None };
                out.push(Output::SendPeer { to: a.addr, msg });
            }
        }
    }
}

/// Ask every replica in `asked` for its copy of `key` under request `id`.
pub(super) fn ask_for(asked: &[Asked], id: RequestId, key: &Bytes, out: &mut Outbox) {
    for a in asked {
        out.push(Output::SendPeer { to: a.addr, msg: PeerMsg::Get { id, keys: vec![key.clone()] } });
    }
}
