//! Stalls: a node that stopped for a while (SIGSTOP, a long GC-like stall, a frozen VM) or that learns its peers
//! declared it down keeps its ring as it was, so it would count as settled and run read-modify-write commands on
//! copies that miss the writes its peers made meanwhile; with its later clock, such a result would then win
//! last-writer-wins over acknowledged writes.
//!
//! The node notices a stall in two ways: a gap between the clock readings of two inputs longer than any quiet
//! spell of a running node (active expiry and gossip timers fire every few hundred ms, so a gap past half the
//! time peers need to declare a node down means it was stopped, or its clock jumped), and the membership telling
//! it that it was declared down and rejoined. Either makes the ring unsettled, as a ring change does, so writes
//! re-read the other owners first for two anti-entropy periods; within that window a command that depends on the
//! current value and whose re-read no other owner answered fails instead of running on the local copy.
//!
//! A stopped node's kernel still accepts what its peers send, so it resumes with forwards its senders already
//! gave up on: they timed out, failed over to the next owner, and the client may have written newer values since.
//! Run now, such a forward would be a fresh write (a later clock, and on top of the newer copies it re-reads), so
//! it would win over those acknowledged writes. A node whose inputs paused for longer than a forward's timeout
//! therefore refuses the forwards it handles within one forward timeout of resuming (any of them may be such a
//! leftover; a sender still waiting hears "did not run" and its client decides), counted as `forwards_refused`.
//! A wall clock that jumps forward by as much looks the same and costs the same window of refused forwards.

use crate::core::node::Clustered;
use crate::core::Millis;

impl Clustered<'_> {
    /// The longest gap between two inputs that is not a stall.
    fn stall_gap_ms(&self) -> Millis {
        let detection = self.membership.config().suspect_to_down_after_ms;
        (detection / 2).max(2 * self.local.config.active_expire_period_ms)
    }

    /// Note the clock reading of an input; a gap since the previous one longer than `stall_gap_ms` is a stall,
    /// and one longer than a forward's timeout makes the node refuse forwards for a while (module doc).
    pub(crate) fn observe_input_clock(&mut self, now: Millis) {
        let gap_max = self.stall_gap_ms();
        let forward_timeout = self.forward_timeout_ms();
        let r = &mut *self.repl;
        let last = r.last_input_ms;
        r.last_input_ms = last.max(now);
        let gap = if last == 0 { 0 } else { now.saturating_sub(last) };
        if gap > forward_timeout {
            r.resumed_at = Some(now);
        }
        if gap > gap_max {
            self.stalled(now);
        }
    }

    /// Whether a forward handled now may be one its sender gave up on while this node was stopped.
    pub(crate) fn refuses_forwards(&self, now: Millis) -> bool {
        let window = self.forward_timeout_ms();
        self.repl.resumed_at.is_some_and(|at| now.saturating_sub(at) < window)
    }

    /// The reply to a forward refused after a pause (`refuses_forwards`).
    pub(crate) fn forward_refused(&mut self) -> crate::core::reply::Reply {
        self.repl.stats.forwards_refused += 1;
        crate::core::reply::Reply::error(format!(
            "TIMEOUT {} was paused for longer than a forward's timeout and has just resumed: the forward may be one \
             its sender already gave up on (the command did not run)",
            self.local.config.name
        ))
    }

    /// This node stalled or was declared down: its copies may miss writes its peers made meanwhile.
    pub(crate) fn stalled(&mut self, now: Millis) {
        let r = &mut *self.repl;
        r.ring_changed_at = now;
        r.stalled_at = Some(now);
        r.stats.stalls += 1;
    }

    /// Whether the node stalled recently enough that its copies may still miss writes made meanwhile.
    pub(crate) fn recently_stalled(&self, now: Millis) -> bool {
        let window = 2 * self.local.config.anti_entropy_period_ms;
        self.repl.stalled_at.is_some_and(|at| now.saturating_sub(at) < window)
    }
}
