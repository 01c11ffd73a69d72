//! The engine's side of the lock clients: their wake-ups and calls into the nodes, their replies, and the lock
//! checkers' verdict at the end of a run.

use super::*;

impl Engine {
    /// Takes every lock call the workload has ready now into the queue (delivered as events, so a paused node
    /// holds them), and keeps a wake-up at its next action.
    pub(super) fn lock_calls(&mut self) {
        while let Some(call) = self.locks.next_call(self.now) {
            self.queue.push(self.now, Event::LockCall(call));
        }
        self.schedule_lock_wake();
    }

    /// Schedules a wake-up at the lock workload's next action, unless one is pending at or before it.
    pub(super) fn schedule_lock_wake(&mut self) {
        let Some(wake) = self.locks.next_wake() else { return };
        // Everything due now was just done; a wake-up at `now` again would only spin.
        let wake = wake.max(self.now + 1);
        if self.lock_wakes.first().is_none_or(|&pending| wake < pending) {
            self.lock_wakes.insert(wake);
            self.queue.push(wake, Event::LockWake);
        }
    }

    /// A lock client's call reaches its node (refused if the node is down).
    pub(super) fn lock_call(&mut self, call: LockCall) {
        let node = call.node;
        if self.hold(node, || Event::LockCall(call.clone())) {
            return;
        }
        self.trace
            .record(self.now, node, 11, &call.req.to_le_bytes(), || format!("lock call {}: {:?}", call.req, call.cmd));
        if self.hosts[node].node.is_none() {
            self.locks.on_refused(call.client, call.req, self.now);
            self.lock_calls();
            return;
        }
        let (conn, req) = (call.conn(), call.req);
        self.handle(node, Input::Client { conn, req, cmd: call.cmd, levels: Levels::default() });
    }

    /// A reply on a lock client's connection reached it.
    pub(super) fn lock_reply(&mut self, client: usize, req: u64, reply: &shoal::core::reply::Reply) {
        self.locks.on_reply(client, req, self.now, reply);
        self.lock_calls();
    }

    /// Runs the lock checkers over the lock clients' history; returns their summary.
    pub(super) fn check_locks(&mut self) -> LockSummary {
        let name = self.config.scenario.name();
        let (summary, found) = judge(name, self.locks.history(), self.now, &self.lock_faults);
        let found = found.into_iter().map(|v| Violation { kind: v.kind.into(), at: v.at, detail: v.detail }).collect();
        self.flag_all(found);
        summary
    }
}
