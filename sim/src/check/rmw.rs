//! Read-modify-write checkers (full mix): counters (INCRBY) and append logs (APPEND of a token unique in the run),
//! judged against the clients' replies and the converged final state.
//!
//! An acknowledged INCRBY with reply `r` means the counter reached `r` in the history; an acknowledged APPEND
//! means its token is in the value. A "TIMEOUT ... may or may not have run" reply (or any error, or no answer) is
//! an unknown outcome, never an ack: it may have run, at any later time, so it counts toward what may be in the
//! value and explains nothing.
//!
//! Violations:
//! - `LostIncrement`: the counter's converged value (absent counts as 0) is below an acknowledged result `r`.
//! - `IncrWentBack`: an INCRBY `b` invoked after INCRBY `a` was acknowledged answered less than `a`'s result plus
//!   `b`'s delta (on one copy of the history it is at least that).
//! - `IncrOvercount`: the converged value exceeds the sum of the deltas of every INCRBY that may have run (one
//!   ran twice, e.g. a forward failed over after the owner ran it).
//! - `LostAppend`: an acknowledged APPEND's token is missing from the converged value; likewise an APPEND `b`
//!   acknowledged after APPEND `a` finished whose reply (the length) is below `a`'s plus `b`'s token.
//! - `AppendCorrupt`: a token twice in the value, or tokens of `a` and `b` (`a` acknowledged before `b` was
//!   invoked) in the wrong order; a token no APPEND of the key sent is a `PhantomValue`.
//! - `EvictedCameBackOlder`: a lost update whose key's final version is one some node evicted (or an older one):
//!   eviction markers exist so that an eviction is never undone.
//!
//! Each lost update (final below `r`, token missing, a reply that went back) is looked up in the window from the
//! update's invocation (for the pairs: the first one's) to the end (for the pairs: the second one's answer), and
//! is explained, in this order, by:
//! 1. a DEL of the key that may have taken effect in the window (it was not acknowledged before the window):
//!    superseded, not counted;
//! 2. a crash that took the last copy of one of the key's versions in the window (no live node's copy nor a
//!    message in flight carried it or a later one; hints are invisible to the simulator): not counted;
//! 3. an eviction of the key in the window (a node evicted it; the counter or log restarts from empty):
//!    counted once a key as the allowed `EvictedReset`;
//! 4. two concurrent versions of the key (neither vector covers the other), both first seen while a fault was in
//!    force or settling (`Facts::disturbed_at`: a node down or paused, a link cut, a clock jump, the cluster
//!    forming), the later one seen in the window: last-writer-wins kept one branch, and the other's updates are
//!    gone. That is what an AP store does with concurrent read-modify-writes; counted once a key as the allowed
//!    `RmwLwwConcurrent`. Concurrent versions made with no fault around are no excuse: a settled first owner
//!    runs every read-modify-write on its copy, and a stalled or new one re-reads the other owners first. Nor is
//!    a version made by a node within its stall window after it resumed from a pause, unless another fault (a
//!    node down, a link cut, a clock jump) was in force or settling then (`Facts::stall_made`): a paused owner
//!    that runs INCR on its stale copy after it resumes is exactly the bug the stall detection prevents.
//!
//! Anything else is a violation, except in a run whose clocks ended further apart than the tombstone grace:
//! there a lost update of a key that had a tombstone or an eviction marker (a DEL that may have run, an eviction)
//! is counted as the allowed `DivergedBeyondGrace`, since a marker made on a clock far behind has aged out on
//! arrival at a replica far ahead, which then keeps or takes back an older version (the documented limit the
//! register checkers apply to tombstones). An eviction undone with no update lost is counted as the allowed
//! `EvictedCameBack`.

use std::collections::BTreeMap;

use shoal::core::replication::EntryKind;
use shoal::core::reply::Reply;
use shoal::core::vversion::{Relation, VersionVector};

use super::replicas::{describe, Finals};
use super::writes::Facts;
use super::{Kind, Violation};
use crate::event::Ms;
use crate::workload::{Op, OpKind, Role};

/// Why an update may be gone without a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Why {
    Superseded,
    Crash,
    Evicted,
    Lww,
}

/// What the checks know of one key.
struct Key<'a> {
    key: u8,
    ops: Vec<&'a Op>,
    facts: &'a Facts,
    /// The later first-seen time of every pair of concurrent versions both seen under a fault.
    forks: Vec<Ms>,
    /// The final version was evicted (it, or a later one): an eviction was undone.
    came_back: bool,
    /// The final value's vector (`None`: the key ends absent).
    last: Option<VersionVector>,
}

impl<'a> Key<'a> {
    fn new(key: u8, ops: &'a [Op], finals: &Finals, facts: &'a Facts) -> Key<'a> {
        let ops: Vec<&Op> = ops.iter().filter(|op| op.kind.key() == key).collect();
        let versions: &[(Ms, VersionVector)] = facts.rmw_versions.get(&key).map_or(&[], |v| v.as_slice());
        let mut forks = Vec::new();
        // A version counts for a fork if it was made under a fault, and not by a node fresh out of a pause
        // (which must have re-read the other owners first: `Facts::stall_made`).
        let allowed = |t: Ms, v: &VersionVector| {
            facts.disturbed_at(t) && !v.latest().is_some_and(|l| facts.stall_made(l.node.0, t))
        };
        for (i, (t1, v1)) in versions.iter().enumerate() {
            if !allowed(*t1, v1) {
                continue;
            }
            for (t2, v2) in &versions[i + 1..] {
                if allowed(*t2, v2) && v1.compare(v2) == Relation::Concurrent {
                    forks.push((*t1).max(*t2));
                }
            }
        }
        forks.sort_unstable();
        forks.dedup();
        let came_back = match finals.get(&key) {
            Some(Some(e)) if e.kind == EntryKind::Value => facts.evicted_covers(key, &e.vector),
            _ => false,
        };
        let last = match finals.get(&key) {
            Some(Some(e)) if e.kind == EntryKind::Value => Some(e.vector.clone()),
            _ => None,
        };
        Key { key, ops, facts, forks, came_back, last }
    }

    /// Why updates made from `from` on may be missing by `to`, if anything allowed explains it.
    /// (`pair`: the update is a reply that went back, which any eviction in the window explains, not a final state.)
    fn explain(&self, from: Ms, to: Ms, pair: bool) -> Option<Why> {
        let deleted = self.ops.iter().any(|x| {
            matches!(x.kind, OpKind::Del { .. })
                && x.may_have_written()
                && x.invoked_at <= to
                && x.done_at().is_none_or(|done| done >= from)
        });
        if deleted {
            return Some(Why::Superseded);
        }
        let within = |t: &Ms| *t >= from && *t <= to;
        if self.facts.rmw_crash_lost.get(&self.key).into_iter().flatten().any(within) {
            return Some(Why::Crash);
        }
        let evicted = if pair { self.facts.evicted_within(self.key, from, to) } else { self.evicted_within(from, to) };
        if evicted {
            return Some(Why::Evicted);
        }
        self.forks.iter().any(within).then_some(Why::Lww)
    }

    /// Whether an eviction between `from` and `to` explains updates missing from the final state: the key ends
    /// absent (or a marker), or its final version was written over the marker of such an eviction (its vector
    /// dominates the evicted version's), so it restarted from empty after it.
    fn evicted_within(&self, from: Ms, to: Ms) -> bool {
        let Some(last) = &self.last else { return self.facts.evicted_within(self.key, from, to) };
        let seen = self.facts.evictions.get(&self.key).into_iter().flatten();
        let restarted = seen.into_iter().any(|(t, v)| *t >= from && *t <= to && last.compare(v) == Relation::After);
        restarted || self.facts.evictions_unnamed.iter().any(|&t| t >= from && t <= to)
    }

    /// Files the lost updates of this key: `lost` holds each one's explanation (or none) and its detail.
    fn file(&self, lost: Vec<(Option<Why>, Violation)>, found: &mut Vec<Violation>) {
        let mut unexplained: Vec<Violation> = Vec::new();
        let mut allowed: BTreeMap<Why, Violation> = BTreeMap::new();
        for (why, mut v) in lost {
            match why {
                Some(Why::Superseded | Why::Crash) => {}
                Some(w @ (Why::Evicted | Why::Lww)) if !self.came_back => {
                    allowed.entry(w).or_insert(v);
                }
                _ => {
                    if self.came_back {
                        v.kind = Kind::EvictedCameBackOlder;
                        v.detail.push_str(" [the final version is one a node evicted, or older: eviction undone]");
                    }
                    unexplained.push(v);
                }
            }
        }
        if !unexplained.is_empty() {
            // Clocks further apart than the tombstone grace: a tombstone or eviction marker of the key (a DEL, an
            // eviction) made on a clock far behind ages out on arrival at a replica far ahead, and an older version
            // comes back there (the documented clocks-beyond-grace limit).
            let marked = self.facts.evictions.contains_key(&self.key)
                || self.ops.iter().any(|x| matches!(x.kind, OpKind::Del { .. }) && x.may_have_written());
            if self.facts.clock_spread_ms >= self.facts.tombstone_grace_ms && marked {
                let note = format!(
                    " [clocks {} s apart, beyond the grace of the key's markers]",
                    self.facts.clock_spread_ms / 1_000
                );
                for v in &mut unexplained {
                    v.kind = Kind::DivergedBeyondGrace;
                    v.detail.push_str(&note);
                }
            }
            found.extend(unexplained);
            return;
        }
        // One allowed anomaly a key, the eviction first (it is the likelier cause).
        if let Some((why, mut v)) = allowed.into_iter().next() {
            v.kind = if why == Why::Evicted { Kind::EvictedReset } else { Kind::RmwLwwConcurrent };
            found.push(v);
        } else if self.came_back {
            let detail = format!("k{}: the final version was evicted and came back", self.key);
            found.push(Violation { kind: Kind::EvictedCameBack, at: 0, detail });
        }
    }
}

fn show(op: &Op) -> String {
    let outcome = match &op.outcome {
        crate::workload::Outcome::Replied(reply) => super::brief(reply),
        other => format!("{other:?}"),
    };
    format!(
        "client {} via n{} {:?} at {:?} [{}..{:?}] -> {outcome}",
        op.client, op.node, op.kind, op.levels, op.invoked_at, op.completed_at
    )
}

fn at(op: &Op) -> Ms {
    op.completed_at.unwrap_or(op.invoked_at)
}

/// The acknowledged reply of `op` as an integer.
fn int_reply(op: &Op) -> Option<i64> {
    match &op.outcome {
        crate::workload::Outcome::Replied(Reply::Int(n)) => Some(*n),
        _ => None,
    }
}

/// Runs the counter and append-log checks over every key of those roles.
pub fn rmw(ops: &[Op], finals: &Finals, facts: &Facts) -> Vec<Violation> {
    let mut found = Vec::new();
    for (&key, &role) in &facts.roles {
        match role {
            Role::Counter => counter(&Key::new(key, ops, finals, facts), finals, &mut found),
            Role::Append => append_log(&Key::new(key, ops, finals, facts), finals, &mut found),
            Role::Register | Role::Burst => {}
        }
    }
    found
}

/// The pairs (`a`, `b`) of acknowledged updates with `a` acknowledged before `b` was invoked, each `b` with the
/// `a` of the greatest `measure` (the others are implied).
fn ordered_pairs<'a>(acked: &[&'a Op], measure: impl Fn(&Op) -> i64) -> Vec<(&'a Op, &'a Op)> {
    let mut by_done: Vec<&Op> = acked.to_vec();
    by_done.sort_by_key(|op| op.completed_at);
    let mut by_invoked: Vec<&Op> = acked.to_vec();
    by_invoked.sort_by_key(|op| op.invoked_at);
    let mut pairs = Vec::new();
    let mut best: Option<&Op> = None;
    let mut next = 0;
    for b in by_invoked {
        while next < by_done.len() && by_done[next].completed_at.is_some_and(|d| d < b.invoked_at) {
            let a = by_done[next];
            if best.is_none_or(|x| measure(a) > measure(x)) {
                best = Some(a);
            }
            next += 1;
        }
        if let Some(a) = best {
            pairs.push((a, b));
        }
    }
    pairs
}

fn counter(k: &Key, finals: &Finals, found: &mut Vec<Violation>) {
    let key = k.key;
    let entry = finals.get(&key).cloned().flatten();
    let value = match &entry {
        Some(e) if e.kind == EntryKind::Value => {
            match std::str::from_utf8(&e.value).ok().and_then(|s| s.parse::<i64>().ok()) {
                Some(v) => v,
                None => {
                    let detail = format!("k{key} counter final {} is not a number", describe(&entry));
                    found.push(Violation { kind: Kind::PhantomValue, at: 0, detail });
                    return;
                }
            }
        }
        _ => 0,
    };
    let delta = |op: &Op| match op.kind {
        OpKind::Incr { delta, .. } => delta,
        _ => 0,
    };
    let incrs: Vec<&Op> = k.ops.iter().copied().filter(|op| matches!(op.kind, OpKind::Incr { .. })).collect();
    let most: i64 = incrs.iter().filter(|op| op.may_have_written()).map(|op| delta(op)).sum();
    if value > most {
        let detail =
            format!("k{key} counter final {} exceeds {most}, the sum of every increment that may have run", value);
        found.push(Violation { kind: Kind::IncrOvercount, at: 0, detail });
    }
    let acked: Vec<&Op> = incrs.iter().copied().filter(|op| op.acked() && int_reply(op).is_some()).collect();
    let result = |op: &Op| int_reply(op).unwrap_or(0);
    let mut lost = Vec::new();
    for w in acked.iter().filter(|w| result(w) > value) {
        let detail = format!("k{key} counter final {value} (from {}) is below {}", describe(&entry), show(w));
        lost.push((
            k.explain(w.invoked_at, Ms::MAX, false),
            Violation { kind: Kind::LostIncrement, at: at(w), detail },
        ));
    }
    for (a, b) in ordered_pairs(&acked, result) {
        if result(b) < result(a) + delta(b) {
            let detail = format!("k{key}: {} answered below {} plus its delta", show(b), show(a));
            let end = b.completed_at.unwrap_or(Ms::MAX);
            lost.push((k.explain(a.invoked_at, end, true), Violation { kind: Kind::IncrWentBack, at: at(b), detail }));
        }
    }
    k.file(lost, found);
}

fn append_log(k: &Key, finals: &Finals, found: &mut Vec<Violation>) {
    let key = k.key;
    let entry = finals.get(&key).cloned().flatten();
    let text = match &entry {
        Some(e) if e.kind == EntryKind::Value => String::from_utf8_lossy(&e.value).into_owned(),
        _ => String::new(),
    };
    let token_of = |op: &Op| match op.kind {
        OpKind::Append { token, .. } => Some(token),
        _ => None,
    };
    let appends: Vec<&Op> = k.ops.iter().copied().filter(|op| token_of(op).is_some()).collect();
    let sent: BTreeMap<u64, &Op> = appends.iter().filter_map(|op| Some((token_of(op)?, *op))).collect();
    // Position of each token in the final value.
    let mut position: BTreeMap<u64, usize> = BTreeMap::new();
    if !text.is_empty() {
        let Some(body) = text.strip_suffix(',') else {
            let detail = format!("k{key} append log final {} does not end with a token", describe(&entry));
            found.push(Violation { kind: Kind::AppendCorrupt, at: 0, detail });
            return;
        };
        for (i, part) in body.split(',').enumerate() {
            let Some(token) = part.parse::<u64>().ok().filter(|t| sent.contains_key(t)) else {
                let detail = format!("k{key} append log final holds {part:?}, which no APPEND of the key sent");
                found.push(Violation { kind: Kind::PhantomValue, at: 0, detail });
                continue;
            };
            if position.insert(token, i).is_some() {
                let detail = format!("k{key} append log final holds token {token} twice: {}", show(sent[&token]));
                found.push(Violation { kind: Kind::AppendCorrupt, at: 0, detail });
            }
        }
    }
    let acked: Vec<&Op> = appends.iter().copied().filter(|op| op.acked() && int_reply(op).is_some()).collect();
    for (a, b) in ordered_pairs(&acked, |op| position.get(&token_of(op).unwrap_or(0)).map_or(-1, |&p| p as i64)) {
        let (Some(pa), Some(pb)) = (position.get(&token_of(a).unwrap_or(0)), position.get(&token_of(b).unwrap_or(0)))
        else {
            continue;
        };
        if pa > pb {
            let detail = format!("k{key} append log holds {} after {}, which ran later", show(a), show(b));
            found.push(Violation { kind: Kind::AppendCorrupt, at: at(b), detail });
        }
    }
    let mut lost = Vec::new();
    for w in acked.iter().filter(|w| !position.contains_key(&token_of(w).unwrap_or(0))) {
        let detail = format!("k{key} append log final {} lacks the token of {}", describe(&entry), show(w));
        lost.push((k.explain(w.invoked_at, Ms::MAX, false), Violation { kind: Kind::LostAppend, at: at(w), detail }));
    }
    let length = |op: &Op| int_reply(op).unwrap_or(0);
    let token_len = |op: &Op| token_of(op).map_or(0, |t| t.to_string().len() as i64 + 1);
    for (a, b) in ordered_pairs(&acked, length) {
        if length(b) < length(a) + token_len(b) {
            let detail = format!("k{key}: {} answered a length below {} plus its token", show(b), show(a));
            let end = b.completed_at.unwrap_or(Ms::MAX);
            lost.push((k.explain(a.invoked_at, end, true), Violation { kind: Kind::LostAppend, at: at(b), detail }));
        }
    }
    k.file(lost, found);
}

#[cfg(test)]
mod tests;
