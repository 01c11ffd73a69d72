//! Forwards: a node that does not own a key sends the client's command to the key's owners in preference order
//! and relays the first answer. A link that fails before the command went out fails over to the next owner; one
//! that fails after it went out answers "may or may not have run" for a command whose effect depends on the
//! value, so a non-idempotent command never runs twice (architecture §5).

use std::net::SocketAddr;
use std::sync::Arc;

use super::levels::Levels;
use super::state::{Origin, Pending};
use super::wire::PeerMsg;
use crate::core::command::Command;
use crate::core::driver::RequestId;
use crate::core::node::{Clustered, Outbox, Output, TimerId};
use crate::core::reply::Reply;
use crate::core::Millis;

impl Clustered<'_> {
    /// Send the command to the first owner that answers, in preference order.
    pub(super) fn forward(
        &mut self,
        now: Millis,
        origin: Origin,
        cmd: Command,
        levels: Levels,
        candidates: Vec<Arc<str>>,
        out: &mut Outbox,
    ) {
        let id = self.repl.id();
        self.repl.stats.forwards += 1;
        let placeholder = SocketAddr::from(([0, 0, 0, 0], 0));
        let pending = Pending::Forward { origin, cmd, levels, candidates, next: 0, to: placeholder };
        self.repl.pending.insert(id, pending);
        self.forward_next(now, id, out);
    }

    /// Try the forward's next candidate (this node coordinates itself when it is the next one).
    pub(super) fn forward_next(&mut self, now: Millis, id: RequestId, out: &mut Outbox) {
        let timeout = self.forward_timeout_ms();
        loop {
            let Some(Pending::Forward { candidates, next, .. }) = self.repl.pending.get(&id) else { return };
            let Some(name) = candidates.get(*next).cloned() else {
                let Some(Pending::Forward { origin, candidates, .. }) = self.repl.pending.remove(&id) else {
                    return;
                };
                self.repl.stats.timeouts += 1;
                let text = format!("TIMEOUT no owner of the key answered ({} tried)", candidates.len());
                return self.respond(origin, Reply::error(text), out);
            };
            if let Some(Pending::Forward { next, .. }) = self.repl.pending.get_mut(&id) {
                *next += 1;
            }
            if *name == *self.local.config.name {
                let Some(Pending::Forward { origin, cmd, levels, candidates, .. }) = self.repl.pending.remove(&id)
                else {
                    return;
                };
                if cmd.is_read() {
                    let key = cmd.single_key().cloned().unwrap_or_default();
                    return self.coordinate_read(now, origin, key, cmd, levels.read, candidates, out);
                }
                return self.coordinate_write(now, origin, cmd, levels.write, candidates, out);
            }
            let Some(addr) = self.repl.addr_of(&name) else { continue };
            let Some(Pending::Forward { cmd, levels, to, .. }) = self.repl.pending.get_mut(&id) else {
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
    pub(crate) fn forward_replied(&mut self, from: SocketAddr, id: RequestId, reply: Reply, out: &mut Outbox) {
        match self.repl.pending.get(&id) {
            Some(Pending::Forward { to, .. }) if *to == from => {}
            _ => return,
        }
        if let Some(Pending::Forward { origin, .. }) = self.repl.pending.remove(&id) {
            self.respond(origin, reply, out);
        }
    }

    /// The link to forward `id`'s owner failed after the command went out on it: the owner may have run it, and
    /// running a command whose effect depends on the value (INCR, APPEND, DEL, ...) on the next owner could run
    /// it twice, so the client hears that the outcome is unknown (as at a timeout) and decides.
    pub(super) fn forward_unknown(&mut self, id: RequestId, out: &mut Outbox) {
        let Some(Pending::Forward { origin, to, .. }) = self.repl.pending.remove(&id) else { return };
        self.repl.stats.forwards_unknown += 1;
        let name = self.name_of(to).unwrap_or_else(|| to.to_string());
        let text = format!(
            "TIMEOUT the connection to the key's owner {name} failed before it answered (the command may or may \
             not have run)"
        );
        self.respond(origin, Reply::error(text), out);
    }

    /// The timeout of a forward: long enough for the owner's own write rounds (two replica timeouts).
    pub(super) fn forward_timeout_ms(&self) -> Millis {
        let t = self.local.config.request_timeout_ms;
        t.saturating_mul(2).saturating_add(t / 2)
    }
}
