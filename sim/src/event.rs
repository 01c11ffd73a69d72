//! The event queue: every pending effect of the simulation, ordered by (virtual time, sequence number).
//!
//! The sequence number is assigned at push time and only grows, so two events due at the same instant leave the
//! queue in the order they were scheduled; together with the single seeded RNG this makes a run deterministic.

use std::collections::BTreeMap;

use bytes::Bytes;
use shoal::core::replication::PeerMsg;
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
    /// A timer of node `node`, scheduled by its incarnation `generation`.
    Timer { node: usize, generation: u64, timer: TimerId },
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

    /// Removes every other timer of `node` due at `at` (the driver contract: same-instant timers go together,
    /// sorted by `TimerId`), returning them in scheduling order.
    pub fn take_timers_at(&mut self, at: Ms, node: usize) -> Vec<(u64, TimerId)> {
        let keys: Vec<(Ms, u64)> = self
            .events
            .range((at, 0)..=(at, u64::MAX))
            .filter(|(_, e)| matches!(e, Event::Timer { node: n, .. } if *n == node))
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| match self.events.remove(&k) {
                Some(Event::Timer { generation, timer, .. }) => Some((generation, timer)),
                _ => None,
            })
            .collect()
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
