//! Checkers over a lock history, apart from product code: they see only what clients sent, were told and wrote.
//!
//! - `double_holders`: the stretches of time in which two or more clients believed they held the same lock.
//!   One that starts while no fault is in force (nor settling) is a violation (`exclusive`); one that starts
//!   under a fault is an anomaly the design allows (`DoubleHolderUnderFault`), counted and measured.
//! - `fence_monotonic`: a fenced resource never accepts a token lower than one it accepted before.
//! - `stale_writes`: a write made outside every hold of its client with that token (a holder that woke from a
//!   pause after its lease) must be rejected once a later token was accepted; such rejections are counted.
//! - `tokens_grow`: a majority grant asked for after another majority grant of the same lock was answered carries a
//!   larger fencing token (grants that overlap in time are concurrent and not ordered).

use std::collections::BTreeMap;
use std::fmt;

use crate::event::Ms;
use crate::locks::history::{Answer, Call, Hold, LockEvent};

/// The kinds of lock violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockKind {
    /// Two clients held the same lock at once, starting while no fault was in force.
    DoubleHolder,
    /// Two clients held the same lock at once, starting while a fault was in force or settling: allowed by the
    /// design (AP locks), counted, not a failure.
    DoubleHolderUnderFault,
    /// A fenced resource accepted a token lower than one it had accepted.
    FenceRegressed,
    /// A stale write (outside its client's hold) was accepted after a newer token had been accepted.
    StaleWriteAccepted,
    /// A majority grant carried a token not above an earlier majority grant of the same lock.
    TokenNotGrowing,
}

impl LockKind {
    /// Whether this kind is an anomaly the design allows: counted, not a failure.
    pub fn is_anomaly(self) -> bool {
        self == LockKind::DoubleHolderUnderFault
    }
}

impl fmt::Display for LockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One broken lock invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockViolation {
    /// What broke.
    pub kind: LockKind,
    /// When (virtual ms).
    pub at: Ms,
    /// Who and what.
    pub detail: String,
}

impl fmt::Display for LockViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{} @ {}ms] {}", self.kind, self.at, self.detail)
    }
}

/// A stretch of time in which two or more clients believed they held `lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// The lock.
    pub lock: String,
    /// Start (included).
    pub from: Ms,
    /// End (excluded).
    pub to: Ms,
    /// Every client that held the lock at some point of the stretch, sorted.
    pub clients: Vec<usize>,
}

/// The maximal stretches in which at least two clients held the same lock, by lock then time.
pub fn double_holders(holds: &[Hold]) -> Vec<Overlap> {
    let mut by_lock: BTreeMap<&str, Vec<&Hold>> = BTreeMap::new();
    for h in holds {
        by_lock.entry(h.lock.as_str()).or_default().push(h);
    }
    let mut found = Vec::new();
    for (lock, holds) in by_lock {
        // Ends sort before starts at the same instant: [a, b) and [b, c) do not overlap.
        let mut edges: Vec<(Ms, bool, usize)> = Vec::new();
        for h in &holds {
            edges.push((h.from, true, h.client));
            edges.push((h.to, false, h.client));
        }
        edges.sort();
        let mut active: BTreeMap<usize, usize> = BTreeMap::new();
        let mut current: Option<Overlap> = None;
        for (at, start, client) in edges {
            if start {
                *active.entry(client).or_default() += 1;
            } else if let Some(n) = active.get_mut(&client) {
                *n -= 1;
                if *n == 0 {
                    active.remove(&client);
                }
            }
            match (&mut current, active.len() >= 2) {
                (None, true) => {
                    let clients = active.keys().copied().collect();
                    current = Some(Overlap { lock: lock.to_string(), from: at, to: at, clients });
                }
                (Some(o), true) => {
                    o.clients.extend(active.keys().copied());
                    o.clients.sort_unstable();
                    o.clients.dedup();
                }
                (Some(_), false) => {
                    let mut o = current.take().expect("matched");
                    o.to = at;
                    if o.to > o.from {
                        found.push(o);
                    }
                }
                (None, false) => {}
            }
        }
    }
    found
}

/// Checker (a), for runs without faults: every double-holder stretch is a violation.
pub fn exclusive(holds: &[Hold]) -> Vec<LockViolation> {
    exclusive_outside(holds, &[])
}

/// Checker (a) for runs with faults: a double-holder stretch that starts inside one of `faults` (each a
/// [from, to] span during which a fault was in force or its effects settling) is an anomaly
/// (`DoubleHolderUnderFault`); one that starts anywhere else is a violation (`DoubleHolder`).
pub fn exclusive_outside(holds: &[Hold], faults: &[(Ms, Ms)]) -> Vec<LockViolation> {
    double_holders(holds)
        .into_iter()
        .map(|o| {
            let excused = faults.iter().any(|&(from, to)| from <= o.from && o.from <= to);
            let kind = if excused { LockKind::DoubleHolderUnderFault } else { LockKind::DoubleHolder };
            let detail =
                format!("clients {:?} all held {} for {} ms (until {})", o.clients, o.lock, o.to - o.from, o.to);
            LockViolation { kind, at: o.from, detail }
        })
        .collect()
}

/// Checker (c): each lock's resource accepted tokens in non-decreasing order.
pub fn fence_monotonic(events: &[LockEvent]) -> Vec<LockViolation> {
    let mut highest: BTreeMap<&str, u64> = BTreeMap::new();
    let mut found = Vec::new();
    for event in events {
        let LockEvent::Write { at, client, lock, token, accepted: true } = event else { continue };
        let h = highest.entry(lock.as_str()).or_default();
        if *token < *h {
            let detail = format!("{lock}'s resource accepted token {token} from client {client} after token {h}");
            found.push(LockViolation { kind: LockKind::FenceRegressed, at: *at, detail });
        }
        *h = (*h).max(*token);
    }
    found
}

/// What became of writes made outside a hold (checker (d)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StaleWrites {
    /// Writes made with a token while their client did not hold the lock with it.
    pub total: u64,
    /// Of those, rejected by the resource.
    pub rejected: u64,
    /// Of those, accepted because no newer token had been accepted yet (harmless: nobody newer had written).
    pub accepted_first: u64,
}

/// A hold's [from, to).
type Span = (Ms, Ms);

/// Checker (d): stale writes are counted; one accepted after a newer token was accepted is a violation. A write
/// at the very millisecond its hold ended is in the hold: it came before the release or the failed renewal in
/// the client's own order (a lease's end is never written at: holders stop at their safe time).
pub fn stale_writes(events: &[LockEvent], holds: &[Hold]) -> (StaleWrites, Vec<LockViolation>) {
    let mut spans: BTreeMap<(usize, &str, u64), Vec<Span>> = BTreeMap::new();
    for h in holds {
        spans.entry((h.client, h.lock.as_str(), h.token)).or_default().push((h.from, h.to));
    }
    let mut counts = StaleWrites::default();
    let mut found = Vec::new();
    let mut highest: BTreeMap<&str, u64> = BTreeMap::new();
    for event in events {
        let LockEvent::Write { at, client, lock, token, accepted } = event else { continue };
        let held = spans
            .get(&(*client, lock.as_str(), *token))
            .is_some_and(|spans| spans.iter().any(|(from, to)| from <= at && at <= to));
        let h = highest.entry(lock.as_str()).or_default();
        if !held {
            counts.total += 1;
            match (*accepted, *token < *h) {
                (false, _) => counts.rejected += 1,
                (true, false) => counts.accepted_first += 1,
                (true, true) => found.push(LockViolation {
                    kind: LockKind::StaleWriteAccepted,
                    at: *at,
                    detail: format!("client {client} wrote {lock} with stale token {token} after token {h}"),
                }),
            }
        }
        if *accepted {
            *h = (*h).max(*token);
        }
    }
    (counts, found)
}

/// One acquire answered with a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The client.
    pub client: usize,
    /// The lock.
    pub lock: String,
    /// When the acquire was sent.
    pub sent_at: Ms,
    /// When its grant was taken in.
    pub answered_at: Ms,
    /// The fencing token.
    pub token: u64,
    /// Whether a majority granted it.
    pub majority: bool,
}

/// Every acquire the history shows granted, in the order the grants were taken in.
pub fn grants(events: &[LockEvent]) -> Vec<Grant> {
    let mut sent: BTreeMap<u64, (Ms, &str)> = BTreeMap::new();
    let mut found = Vec::new();
    for event in events {
        match event {
            LockEvent::Sent { at, req, lock, call: Call::Acquire { .. }, .. } => {
                sent.insert(*req, (*at, lock.as_str()));
            }
            LockEvent::Answered { at, client, req, answer } => {
                let Some((sent_at, lock)) = sent.remove(req) else { continue };
                if let Answer::Granted { token, majority } = answer {
                    let lock = lock.to_string();
                    let (client, answered_at, token, majority) = (*client, *at, *token, *majority);
                    found.push(Grant { client, lock, sent_at, answered_at, token, majority });
                }
            }
            _ => {}
        }
    }
    found
}

/// Checker (e): a majority grant asked for after another majority grant of its lock was answered has a larger
/// token.
pub fn tokens_grow(events: &[LockEvent]) -> Vec<LockViolation> {
    let mut by_lock: BTreeMap<String, Vec<Grant>> = BTreeMap::new();
    for g in grants(events).into_iter().filter(|g| g.majority) {
        by_lock.entry(g.lock.clone()).or_default().push(g);
    }
    let mut found = Vec::new();
    for grants in by_lock.values_mut() {
        // Grants by answer time, each with the index of the largest token answered up to it.
        grants.sort_by_key(|g| g.answered_at);
        let mut best = Vec::with_capacity(grants.len());
        for (i, g) in grants.iter().enumerate() {
            let prev = i.checked_sub(1).map(|p| best[p]);
            best.push(prev.filter(|&p: &usize| grants[p].token >= g.token).unwrap_or(i));
        }
        for later in grants.iter() {
            let answered_before = grants.partition_point(|g| g.answered_at < later.sent_at);
            let Some(earlier) = answered_before.checked_sub(1).map(|i| &grants[best[i]]) else { continue };
            if earlier.token >= later.token {
                let detail = format!(
                    "{}: client {} got token {} (asked at {}) after client {} got token {} (at {})",
                    later.lock,
                    later.client,
                    later.token,
                    later.sent_at,
                    earlier.client,
                    earlier.token,
                    earlier.answered_at
                );
                found.push(LockViolation { kind: LockKind::TokenNotGrowing, at: later.answered_at, detail });
            }
        }
    }
    found.sort_by_key(|v| v.at);
    found
}
