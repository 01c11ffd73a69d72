//! Fan-out: a multi-key command (MGET, MSET, DEL, EXISTS, TOUCH) split into one part per key, each routed on
//! its own, and the parts' replies combined in key order; the first error wins.

use super::levels::Levels;
use super::state::{FanKind, Origin, Pending};
use crate::core::command::Command;
use crate::core::node::{Clustered, Outbox};
use crate::core::reply::Reply;
use crate::core::Millis;

impl Clustered<'_> {
    /// Split a multi-key command into single-key parts and combine their replies.
    pub(super) fn fan_out(
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
            self.repl.stats.peer_msgs_invalid += 1;
            return self.respond(origin, combine(kind, Vec::new()), out);
        }
        let id = self.repl.id();
        let pending = Pending::Fanout { origin, kind, parts: vec![None; count], remaining: count };
        self.repl.pending.insert(id, pending);
        for (index, cmd) in parts.into_iter().enumerate() {
            self.route(now, Origin::Part { parent: id, index }, cmd, levels, out);
        }
    }
}

/// Combine the parts of a multi-key command; the first error wins.
pub(super) fn combine(kind: FanKind, parts: Vec<Reply>) -> Reply {
    if let Some(e) = parts.iter().find(|p| p.is_error()) {
        return e.clone();
    }
    match kind {
        FanKind::Array => Reply::Array(parts),
        FanKind::AllOk => Reply::Ok,
        FanKind::Sum => Reply::Int(parts.iter().map(|p| if let Reply::Int(n) = p { *n } else { 0 }).sum()),
    }
}
