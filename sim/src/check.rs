//! Checkers, kept apart from product code: they see only what a node exposes and what clients were told.
//!
//! `membership_converged` is the liveness check (after the heal, within a bound): every live node sees every
//! live node `alive` under its current incarnation, sees no crashed node as live, and all live digests agree.
//! `membership_safe` holds at every instant, faults or not: a live node sees itself alive and nobody believes in an
//! incarnation its owner never had. `history` replays each node incarnation's calls against a model of one node
//! (no replication yet): an acknowledged write is readable from the node that took it until it is overwritten,
//! deleted, expired, or that node crashed. A node clock that jumped back makes an expiry ambiguous for a while;
//! the model then accepts both answers and follows the one the node gave.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use shoal::core::membership::{MemberInfo, MemberState};
use shoal::core::reply::Reply;
use shoal::core::Millis;

use crate::event::Ms;
use crate::workload::{Op, OpKind, Outcome};

/// The kinds of violation, for the summary table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Panic,
    SelfNotAlive,
    InventedIncarnation,
    MemberDown,
    MemberSuspect,
    MemberMissing,
    StaleIncarnation,
    GhostMember,
    DigestMismatch,
    LostWrite,
    WrongReply,
    /// Live nodes name different owners for a key, or an owner that is not live (after the heal).
    OwnersDisagree,
    /// A key's live owners hold different copies after the heal.
    ReplicasDiverged,
    /// An acknowledged DEL undone by a value written before it.
    Resurrected,
    /// A client's write lost to that client's own earlier, acknowledged write.
    CausalityLost,
    /// A read at intersecting levels, with no fault around, missed the client's own acknowledged write.
    ReadYourWrites,
    /// A value no client wrote.
    PhantomValue,
    /// An earlier write beat a later acknowledged one because their versions were concurrent and last-writer-wins
    /// picked the greater (HLC, node): allowed by the design, counted, does not fail a seed.
    LwwConcurrent,
    /// Replicas still differ at the bound in a run whose clocks ended further apart than the tombstone grace:
    /// each replica measures a marker's grace on its own clock, so one drops a tombstone (or an expired value's)
    /// the others keep, until their clocks pass it too. A documented limit of the design: counted, not a failure.
    DivergedBeyondGrace,
    /// A data finding (lost write, divergence, a missed read) in a run whose clocks are further apart than the
    /// nodes' drift bound (`SimConfig::clock_drift_max_ms` set below the spread): replicas refuse the copies of a
    /// node too far ahead, by design. Counted, not a failure; no default scenario sets a bound that low.
    BeyondClockDrift,
    /// Two lock clients held the same lock at once, starting while no fault was in force or settling.
    LockDoubleHolder,
    /// Two lock clients held the same lock at once, starting under a fault: allowed by the design (AP locks),
    /// counted, does not fail a seed.
    LockDoubleHolderUnderFault,
    /// A fenced resource accepted a token lower than one it had accepted.
    LockFenceRegressed,
    /// A stale write (a holder past its lease) was accepted after a newer token had been accepted.
    LockStaleWriteAccepted,
    /// A majority grant carried a token not above an earlier majority grant of the same lock.
    LockTokenNotGrowing,
    /// A counter's converged value is below an acknowledged INCRBY's result, and nothing allowed explains it
    /// (`check::rmw`).
    LostIncrement,
    /// An INCRBY acknowledged after another one finished answered a result not above it, unexplained.
    IncrWentBack,
    /// A counter's converged value exceeds the sum of every increment that may have run: one ran twice.
    IncrOvercount,
    /// An acknowledged APPEND's token is missing from the converged value, unexplained.
    LostAppend,
    /// An append log holds a token twice, or two tokens against the order their APPENDs ran in real time.
    AppendCorrupt,
    /// A version that a node evicted (or an older one) came back and replaced a newer acknowledged write.
    EvictedCameBackOlder,
    /// A version that a node evicted came back, and no newer acknowledged write was lost: counted apart, not a
    /// failure.
    EvictedCameBack,
    /// Acknowledged writes of a key that ended absent, explained by an eviction after them (cache semantics):
    /// counted once a key, not a failure.
    EvictedAbsent,
    /// A counter or append log lost acknowledged updates to an eviction after them (it restarted from empty):
    /// counted once a key, not a failure.
    EvictedReset,
    /// A counter or append log lost acknowledged updates to two concurrent versions settled by last-writer-wins,
    /// both made while a fault was in force or settling (an AP store merges, it does not add): counted once a key,
    /// not a failure.
    RmwLwwConcurrent,
}

impl From<crate::locks::LockKind> for Kind {
    fn from(kind: crate::locks::LockKind) -> Kind {
        use crate::locks::LockKind as L;
        match kind {
            L::DoubleHolder => Kind::LockDoubleHolder,
            L::DoubleHolderUnderFault => Kind::LockDoubleHolderUnderFault,
            L::FenceRegressed => Kind::LockFenceRegressed,
            L::StaleWriteAccepted => Kind::LockStaleWriteAccepted,
            L::TokenNotGrowing => Kind::LockTokenNotGrowing,
        }
    }
}

impl Kind {
    /// Whether this kind is a membership invariant (or a panic), as opposed to a data one.
    pub fn is_membership(self) -> bool {
        matches!(
            self,
            Kind::Panic
                | Kind::SelfNotAlive
                | Kind::InventedIncarnation
                | Kind::MemberDown
                | Kind::MemberSuspect
                | Kind::MemberMissing
                | Kind::StaleIncarnation
                | Kind::GhostMember
                | Kind::DigestMismatch
        )
    }

    /// Whether this kind is a lock invariant (or a counted lock anomaly).
    pub fn is_lock(self) -> bool {
        matches!(
            self,
            Kind::LockDoubleHolder
                | Kind::LockDoubleHolderUnderFault
                | Kind::LockFenceRegressed
                | Kind::LockStaleWriteAccepted
                | Kind::LockTokenNotGrowing
        )
    }

    /// Whether this kind is an anomaly the design allows: counted in the summary, not a failure.
    pub fn is_anomaly(self) -> bool {
        matches!(
            self,
            Kind::LwwConcurrent
                | Kind::DivergedBeyondGrace
                | Kind::BeyondClockDrift
                | Kind::LockDoubleHolderUnderFault
                | Kind::EvictedCameBack
                | Kind::EvictedAbsent
                | Kind::EvictedReset
                | Kind::RmwLwwConcurrent
        )
    }

    /// Whether this is a finding about data (what clients read, what replicas hold), not membership or locks.
    pub fn is_data(self) -> bool {
        matches!(
            self,
            Kind::LostWrite
                | Kind::WrongReply
                | Kind::ReplicasDiverged
                | Kind::Resurrected
                | Kind::CausalityLost
                | Kind::ReadYourWrites
                | Kind::LostIncrement
                | Kind::IncrWentBack
                | Kind::IncrOvercount
                | Kind::LostAppend
                | Kind::AppendCorrupt
                | Kind::EvictedCameBackOlder
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A reply for a violation's detail, with a large value cut to its head and length.
pub fn brief(reply: &Reply) -> String {
    match reply {
        Reply::Bulk(b) if b.len() > 48 => {
            format!("Bulk({:?}... ({} bytes))", String::from_utf8_lossy(&b[..32]), b.len())
        }
        other => format!("{other:?}"),
    }
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub kind: Kind,
    pub at: Ms,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{} @ {}ms] {}", self.kind, self.at, self.detail)
    }
}

/// A running node as the checker sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveNode {
    pub incarnation: u64,
    pub view: Vec<MemberInfo>,
    pub digest: u64,
}

/// One node of the cluster: its address, and its state if it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub name: String,
    pub addr: SocketAddr,
    pub live: Option<LiveNode>,
}

/// The liveness check: empty when the cluster has converged on the true live set.
pub fn membership_converged(at: Ms, nodes: &[Observed]) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut flag = |kind, detail: String| found.push(Violation { kind, at, detail });
    for observer in nodes {
        let Some(live) = &observer.live else { continue };
        let beliefs = newest_by_addr(&live.view);
        for node in nodes {
            let entry = beliefs.get(&node.addr).copied();
            let who = format!("{} sees {}", observer.name, node.name);
            match (&node.live, entry) {
                (Some(_), None) => flag(Kind::MemberMissing, format!("{who}: absent")),
                (Some(truth), Some(e)) => {
                    match e.state {
                        MemberState::Alive => {}
                        MemberState::Suspect => flag(Kind::MemberSuspect, format!("{who}: suspect")),
                        MemberState::Down => flag(Kind::MemberDown, format!("{who}: down (inc {})", e.incarnation)),
                    }
                    if e.incarnation != truth.incarnation {
                        let detail = format!("{who} at incarnation {}, not {}", e.incarnation, truth.incarnation);
                        flag(Kind::StaleIncarnation, detail);
                    }
                }
                (None, Some(e)) if e.state.is_live() => flag(Kind::GhostMember, format!("{who} live, but it crashed")),
                (None, _) => {}
            }
        }
    }
    let digests: Vec<(&str, u64)> =
        nodes.iter().filter_map(|n| n.live.as_ref().map(|l| (n.name.as_str(), l.digest))).collect();
    if let Some((first, digest)) = digests.first() {
        if let Some((other, d)) = digests.iter().find(|(_, d)| d != digest) {
            flag(Kind::DigestMismatch, format!("live digest of {first} {digest:#x} != {other} {d:#x}"));
        }
    }
    found
}

/// The observer's belief about each address: its entry with the highest incarnation there (a view may hold
/// older identities of an address as `down` rows; those are history, not beliefs).
fn newest_by_addr(view: &[MemberInfo]) -> BTreeMap<SocketAddr, &MemberInfo> {
    let mut beliefs: BTreeMap<SocketAddr, &MemberInfo> = BTreeMap::new();
    for m in view {
        let entry = beliefs.entry(m.gossip_addr).or_insert(m);
        if m.incarnation > entry.incarnation {
            *entry = m;
        }
    }
    beliefs
}

/// The safety check on membership: holds at every instant. `incarnation_max[i]`: the highest incarnation node
/// `i` ever had.
pub fn membership_safe(at: Ms, nodes: &[Observed], incarnation_max: &[u64]) -> Vec<Violation> {
    let mut found = Vec::new();
    let owners: BTreeMap<SocketAddr, usize> = nodes.iter().enumerate().map(|(i, n)| (n.addr, i)).collect();
    for observer in nodes {
        let Some(live) = &observer.live else { continue };
        for e in &live.view {
            let current = e.incarnation == live.incarnation;
            if e.gossip_addr == observer.addr && current && e.state != MemberState::Alive {
                let detail = format!("{} sees itself {}", observer.name, e.state.as_str());
                found.push(Violation { kind: Kind::SelfNotAlive, at, detail });
            }
            let owner = owners.get(&e.gossip_addr).copied();
            if let Some(i) = owner.filter(|&i| e.incarnation > incarnation_max[i]) {
                let detail = format!(
                    "{} sees {} at incarnation {} > {}",
                    observer.name, e.name, e.incarnation, incarnation_max[i]
                );
                found.push(Violation { kind: Kind::InventedIncarnation, at, detail });
            }
        }
    }
    found
}

/// What the model knows about one key of one node incarnation.
#[derive(Debug, Clone, Copy)]
struct Cell {
    value: u64,
    expire_at: Millis,
}

enum Seen {
    Absent,
    Present(u64),
    /// Expired by some clock reading the node has shown, but not by its clock now (it jumped back).
    Maybe(u64),
}

fn seen(cell: Option<&Cell>, op: &Op) -> Seen {
    match cell {
        None => Seen::Absent,
        Some(c) if c.expire_at != 0 && c.expire_at <= op.node_now => Seen::Absent,
        Some(c) if c.expire_at != 0 && c.expire_at <= op.node_clock_max => Seen::Maybe(c.value),
        Some(c) => Seen::Present(c.value),
    }
}

/// The single-node read-your-writes check over a whole history (calls in execution order).
pub fn history(ops: &[Op]) -> Vec<Violation> {
    history_with(ops, false)
}

/// `history`, for a node that may evict (`evictable`: it runs with a memory limit): a key may then be gone
/// (a read of nil, a DEL or EXPIRE answering 0 are accepted, and the model forgets the key), and a SET may be
/// refused with an error (the model keeps what it had); a wrong value is still a violation. Counters and append
/// logs are left to `rmw`.
pub fn history_with(ops: &[Op], evictable: bool) -> Vec<Violation> {
    let mut models: BTreeMap<(usize, u64), BTreeMap<u8, Cell>> = BTreeMap::new();
    let mut found = Vec::new();
    for op in ops {
        let Outcome::Replied(reply) = &op.outcome else { continue };
        if matches!(op.kind, OpKind::Incr { .. } | OpKind::Append { .. }) {
            continue;
        }
        let model = models.entry((op.node, op.generation)).or_default();
        if evictable && evicted_or_refused(model, op, reply) {
            continue;
        }
        check_op(model, op, reply, &mut found);
    }
    found
}

/// With eviction on: a reply that finds a key gone the model still holds drops it from the model (evicted, or
/// expired as the model says otherwise), and a refused SET changed nothing. True when nothing is left to check.
fn evicted_or_refused(model: &mut BTreeMap<u8, Cell>, op: &Op, reply: &Reply) -> bool {
    if matches!(op.kind, OpKind::Set { .. }) {
        return matches!(reply, Reply::Error(_));
    }
    let absent = matches!(reply, Reply::Nil | Reply::Int(0));
    if absent && !matches!(seen(model.get(&op.kind.key()), op), Seen::Absent) {
        model.remove(&op.kind.key());
        return matches!(op.kind, OpKind::Get { .. });
    }
    false
}

/// Checks one replied SET, GET, DEL or EXPIRE against the connection's model and applies it to the model.
fn check_op(model: &mut BTreeMap<u8, Cell>, op: &Op, reply: &Reply, found: &mut Vec<Violation>) {
    let key = op.kind.key();
    let state = seen(model.get(&key), op);
    let bad = |kind, expected: &str| Violation {
        kind,
        at: op.executed_at,
        detail: format!("n{} gen {} {:?}: got {}, expected {expected}", op.node, op.generation, op.kind, brief(reply)),
    };
    match (&op.kind, state) {
        (OpKind::Set { value, ttl_ms, .. }, _) => {
            if *reply != Reply::Ok {
                found.push(bad(Kind::WrongReply, "OK"));
            }
            let expire_at = ttl_ms.map_or(0, |ms| op.node_now + ms);
            model.insert(key, Cell { value: *value, expire_at });
        }
        (OpKind::Get { .. }, Seen::Absent) if *reply != Reply::Nil => found.push(bad(Kind::WrongReply, "nil")),
        (OpKind::Get { .. }, Seen::Present(v)) if *reply != Reply::Bulk(v.to_string().into()) => {
            let kind = if *reply == Reply::Nil { Kind::LostWrite } else { Kind::WrongReply };
            found.push(bad(kind, &v.to_string()));
        }
        (OpKind::Get { .. }, Seen::Maybe(v)) => {
            if *reply == Reply::Nil {
                model.remove(&key);
            } else if *reply != Reply::Bulk(v.to_string().into()) {
                found.push(bad(Kind::WrongReply, &format!("{v} or nil")));
            }
        }
        (OpKind::Get { .. }, _) | (OpKind::Incr { .. } | OpKind::Append { .. }, _) => {}
        (OpKind::Del { .. }, state) => {
            let expected = existed(state);
            check_int(found, reply, expected, || bad(Kind::WrongReply, &format!("{expected:?}")));
            model.remove(&key);
        }
        (OpKind::Expire { ttl_ms, .. }, state) => {
            let expected = existed(state);
            check_int(found, reply, expected, || bad(Kind::WrongReply, &format!("{expected:?}")));
            match (reply, model.get_mut(&key)) {
                (Reply::Int(1), Some(cell)) => cell.expire_at = op.node_now + ttl_ms,
                _ => {
                    model.remove(&key);
                }
            }
        }
    }
}

/// The integer DEL or EXPIRE must answer for what the model has seen: 0 absent, 1 present, None either.
fn existed(state: Seen) -> Option<i64> {
    match state {
        Seen::Absent => Some(0),
        Seen::Present(_) => Some(1),
        Seen::Maybe(_) => None,
    }
}

fn check_int(found: &mut Vec<Violation>, reply: &Reply, expected: Option<i64>, bad: impl FnOnce() -> Violation) {
    let ok = match (reply, expected) {
        (Reply::Int(n), Some(e)) => *n == e,
        (Reply::Int(n), None) => *n == 0 || *n == 1,
        _ => false,
    };
    if !ok {
        found.push(bad());
    }
}

pub mod replicas;
pub mod rmw;
pub mod writes;

#[cfg(test)]
mod tests;
