//! The event queue: every pending effect of the simulation, ordered by (virtual time, sequence number).
//!
//! The sequence number is assigned at push time and only grows, so two events due at the same instant leave the
//! queue in the order they were scheduled; together with the single seeded RNG this makes a run deterministic.

use std::collections::BTreeMap;

use bytes::Bytes;
use shoal::core::replication::PeerMsg;
use shoal::core::timers::TimerKey;
use shoal::core::TimerId;

use crate::faults::Fault;
use crate::locks::LockCall;

/// Virtual milliseconds since the start of the simulation.
pub type Ms = u64;

/// One thing that happens at one virtual instant.
#[derive(Debug, Clone)]
pub enum Event {
    /// Node `i` starts (first boot or restart).
    Start { node: usize },
    /// A gossip datagram from node `from` arrives at node `to`.
    Deliver { to: usize, from: usize, packet: Bytes },
    /// The timer `key` in node `node`'s timer queue is due: unless an earlier timer of the node due at the same
    /// instant took it along, it and every other timer of the node due now go to the node together, sorted.
    Timer { node: usize, key: TimerKey },
    /// A due timer of a paused node, scheduled by its incarnation `generation` and taken out of its timer queue;
    /// held (never queued) until the node resumes, when it is scheduled again for that instant.
    HeldTimer { node: usize, generation: u64, timer: TimerId },
    /// Client operation `op` (an index into the workload's history) reaches its node.
    Client { node: usize, op: usize },
    /// Client `client` issues its next operation.
    Workload { client: u32 },
    /// Client operation `op` has waited too long: the client gives up on it (outcome unknown) and reconnects.
    ClientTimeout { op: usize },
    /// A peer message from `from` arrives at `to`, over the connection to `to`'s incarnation `generation`.
    PeerDeliver { to: usize, generation: u64, from: usize, msg: Box<PeerMsg>, digest: u64 },
    /// Node `node` (incarnation `generation`) learns its connection to `peer` failed.
    PeerLost { node: usize, generation: u64, peer: usize },
    /// The lock workload wants to act (a write, a renewal, a release, a retry, a call timing out).
    LockWake,
    /// A lock client's call reaches its node.
    LockCall(LockCall),
    /// A scheduled fault.
    Fault(Fault),
    /// The end of the safety phase: every fault heals.
    Heal,
    /// The checker looks at the cluster.
    Probe,
    /// A mass-expiry burst: every burst key gets a SET with this TTL at once (full workload only).
    Burst { ttl_ms: u64 },
}

/// The queue, ordered by (time, sequence).
#[derive(Debug, Default)]
pub struct Queue {
    events: BTreeMap<(Ms, u64), Event>,
    seq: u64,
}

impl Queue {
    /// Schedules `event` at `at`.
    pub fn push(&mut self, at: Ms, event: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
    }

    /// Time of the earliest event.
    pub fn next_at(&self) -> Option<Ms> {
        self.events.first_key_value().map(|((at, _), _)| *at)
    }

    /// Removes and returns the earliest event.
    pub fn pop(&mut self) -> Option<(Ms, Event)> {
        self.events.pop_first().map(|((at, _), event)| (at, event))
    }

    /// Every pending event, in queue order.
    pub fn iter(&self) -> impl Iterator<Item = &Event> {
        self.events.values()
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_instant_keeps_push_order() {
        let mut q = Queue::default();
        q.push(5, Event::Workload { client: 0 });
        q.push(3, Event::Probe);
        q.push(5, Event::Heal);
        assert!(matches!(q.pop(), Some((3, Event::Probe))));
        assert!(matches!(q.pop(), Some((5, Event::Workload { client: 0 }))));
        assert!(matches!(q.pop(), Some((5, Event::Heal))));
        assert!(q.is_empty());
    }
}
