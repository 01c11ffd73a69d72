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

use crate::core::node::Node;
use crate::core::Millis;

impl Node {
    /// The longest gap between two inputs that is not a stall.
    fn stall_gap_ms(&self) -> Millis {
        let detection = self.membership.as_ref().map_or(Millis::MAX, |m| m.config().suspect_to_down_after_ms);
        (detection / 2).max(2 * self.config.active_expire_period_ms)
    }

    /// Note the clock reading of an input; a gap since the previous one longer than `stall_gap_ms` is a stall.
    pub(crate) fn observe_input_clock(&mut self, now: Millis) {
        let gap_max = self.stall_gap_ms();
        let Some(r) = self.repl.as_mut() else { return };
        let last = r.last_input_ms;
        r.last_input_ms = last.max(now);
        if last != 0 && now.saturating_sub(last) > gap_max {
            self.stalled(now);
        }
    }

    /// This node stalled or was declared down: its copies may miss writes its peers made meanwhile.
    pub(crate) fn stalled(&mut self, now: Millis) {
        let Some(r) = self.repl.as_mut() else { return };
        r.ring_changed_at = now;
        r.stalled_at = Some(now);
        r.stats.stalls += 1;
    }

    /// Whether the node stalled recently enough that its copies may still miss writes made meanwhile.
    pub(crate) fn recently_stalled(&self, now: Millis) -> bool {
        let window = 2 * self.config.anti_entropy_period_ms;
        self.repl.as_ref().and_then(|r| r.stalled_at).is_some_and(|at| now.saturating_sub(at) < window)
    }
}
