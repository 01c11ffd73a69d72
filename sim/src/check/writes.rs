//! Write checkers over the client history and the converged final state: no lost acknowledged write, no
//! deleted key back, session causality, read-your-writes.
//!
//! Real-time order: call `a` precedes call `b` when `a` was acknowledged before `b` was invoked. Calls that
//! failed, timed out or were never answered may take effect at any later time, so they precede nothing.
//!
//! - Lost write / resurrection: if a key's final state is the value of SET `u`, no acknowledged SET or DEL `w`
//!   on that key may have been invoked after `u` was acknowledged. If the final state is absent (or a tombstone),
//!   every acknowledged SET `w` must be explained: it had a TTL, or a DEL, EXPIRE or SET with TTL on the key may
//!   have happened after it (not preceding it). When `w` and `u` are by the same client, the violation is a
//!   causality one: the client saw `u`'s ack, then wrote `w`, and `u` won.
//! - Exemptions, precisely: (0) a DEL whose tombstone, or a SET with TTL or EXPIRE whose expiry tombstone, some
//!   node's clock may have aged past the tombstone grace before the end of the run (clock spread plus elapsed time
//!   reaches the TTL plus the grace; only big skews do that).
//!   (1) `w`'s copies, or those of a write that may have overwritten it (one not preceding it), all died in
//!   crashes: at some crash, the crashing node held `w`'s value
//!   (or, for a DEL, a tombstone of the key after `w` was invoked) and no live node's own copy and no peer message
//!   in flight carried it any more. Hints a node holds apart from its own copy are not visible to the checker, so
//!   a write whose last copy is a hint counts as lost with the crash. (2) Last-writer-wins between concurrent
//!   versions: the version vector the sim saw `w` written with is concurrent with `u`'s, and the final vector
//!   covers `w`, and the final version is `u`'s own (so `w` reached the replicas and the merge settled the
//!   conflict by (HLC, node), as docs/architecture.md §7 describes; a final version newer than `u`'s means `u`'s value
//!   was written again later, which is no excuse). These are counted as the anomaly `LwwConcurrent`, which does not fail a seed; a `w`
//!   whose vector dominates `u`'s (the system knew `w` came later) or that never reached the final vector is a
//!   violation. An EXPIRE that may have happened after `w` began re-writes the older value with a version the sim
//!   does not know; when the final vector covers `w`, that is counted as `LwwConcurrent` too.
//! - Read-your-writes: a client's acknowledged GET after its own acknowledged write on the key, at levels whose
//!   replica counts intersect (R + W > N, e.g. QUORUM/QUORUM), returns that write or one that does not precede it,
//!   provided no fault happened or was in force (a node down or paused, a link cut) from `settle_ms` before the
//!   write to the read's answer, and the network never lost datagrams.
//! - A value no client wrote is a `PhantomValue` wherever it shows (a large value must also be intact: its
//!   length and filler, `workload::value_number`).
//! - Memory pressure (full workload): a key that ends absent while an acknowledged SET is unexplained is excused
//!   when some node evicted the key after that SET was invoked (counted once a key as the allowed
//!   `EvictedAbsent`), and a read of nil after one's own write likewise. An eviction never excuses an older value:
//!   a final value whose version some node evicted (its eviction marker's vector covers the final one) that lost
//!   a newer acknowledged write is `EvictedCameBackOlder`, a violation; with no write lost it is counted as the
//!   allowed `EvictedCameBack` (an eviction undone, but nothing older than the newest acknowledged write). A read
//!   of an older write after an eviction of the key is `EvictedCameBackOlder` too.
//! - Counters and append logs (full workload) are left to `check::rmw`.

use std::collections::BTreeMap;

use shoal::core::replication::{EntryKind, WireEntry};
use shoal::core::reply::Reply;
use shoal::core::vversion::{Relation, VersionVector};

use super::replicas::{describe, Finals};
use super::{Kind, Violation};
use crate::event::Ms;
use crate::workload::{Op, OpKind, Outcome};

mod facts;
pub use facts::Facts;

/// The SET value a copy carries (a decimal number, or a large value naming its write: `workload::big_value`).
pub fn value_of(bytes: &[u8]) -> Option<u64> {
    crate::workload::value_number(bytes)
}

fn set_value(op: &Op) -> Option<u64> {
    match op.kind {
        OpKind::Set { value, .. } => Some(value),
        _ => None,
    }
}

/// The history indexed for the checks.
struct Index<'a> {
    ops: &'a [Op],
    by_value: BTreeMap<u64, usize>,
    by_key: BTreeMap<u8, Vec<usize>>,
}

impl<'a> Index<'a> {
    fn new(ops: &'a [Op]) -> Index<'a> {
        let mut by_value = BTreeMap::new();
        let mut by_key: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
        for (i, op) in ops.iter().enumerate() {
            if let Some(v) = set_value(op) {
                by_value.insert(v, i);
            }
            by_key.entry(op.kind.key()).or_default().push(i);
        }
        Index { ops, by_value, by_key }
    }

    fn on_key(&self, key: u8) -> impl Iterator<Item = &'a Op> + '_ {
        self.by_key.get(&key).into_iter().flatten().map(|&i| &self.ops[i])
    }

    /// Whether something other than `w` may have removed `w`'s value: a DEL, EXPIRE or SET with TTL on the key
    /// that may have happened and does not precede `w`.
    /// Whether an EXPIRE on the key may have re-written an older value with a new version after `w` began: the
    /// final value is then that EXPIRE's write, whose version the sim does not know.
    fn restamped_after(&self, w: &Op) -> bool {
        self.on_key(w.kind.key())
            .any(|x| matches!(x.kind, OpKind::Expire { .. }) && x.may_have_written() && !x.precedes(w))
    }

    fn removal_after(&self, w: &Op) -> bool {
        self.on_key(w.kind.key()).any(|x| {
            !std::ptr::eq(x, w)
                && x.may_have_written()
                && !x.precedes(w)
                && matches!(x.kind, OpKind::Del { .. } | OpKind::Expire { .. } | OpKind::Set { ttl_ms: Some(_), .. })
        })
    }
}

fn violation(kind: Kind, op: &Op, detail: String) -> Violation {
    Violation { kind, at: op.completed_at.unwrap_or(op.invoked_at), detail }
}

fn show(op: &Op) -> String {
    format!(
        "client {} via n{} {:?} at {:?} [{}..{:?}]",
        op.client, op.node, op.kind, op.levels, op.invoked_at, op.completed_at
    )
}

/// The lost-write, resurrection and causality checks against the converged final state.
pub fn lost_writes(ops: &[Op], finals: &Finals, facts: &Facts) -> Vec<Violation> {
    let index = Index::new(ops);
    let mut found = Vec::new();
    for (&key, entry) in finals.iter().filter(|(k, _)| !facts.is_rmw(**k)) {
        match entry {
            Some(e) if e.kind == EntryKind::Value => final_value(&index, key, e, facts, &mut found),
            _ => final_absent(&index, key, entry.as_ref(), facts, &mut found),
        }
    }
    found
}

/// Key `key` ended with the value `e`: no acknowledged write the value's SET preceded may have been lost.
fn final_value(index: &Index, key: u8, e: &WireEntry, facts: &Facts, found: &mut Vec<Violation>) {
    let first = found.len();
    let Some(u) = value_of(&e.value).and_then(|v| index.by_value.get(&v)).map(|&i| &index.ops[i]) else {
        let detail = format!("k{key} final state {} was never written", describe(&Some(e.clone())));
        found.push(Violation { kind: Kind::PhantomValue, at: 0, detail });
        return;
    };
    let expired_later = index.on_key(key).any(|x| {
        u.precedes(x)
            && x.may_have_written()
            && matches!(x.kind, OpKind::Expire { .. } | OpKind::Set { ttl_ms: Some(_), .. })
    });
    for w in index.on_key(key).filter(|w| w.acked() && u.precedes(w)) {
        if matches!(w.kind, OpKind::Set { .. } | OpKind::Del { .. }) && !lost_with_crash(index, w, facts) {
            let mut v = judge(w, Some(u), e, index.restamped_after(w), &[], facts);
            if let Some(v) = v.as_mut().filter(|_| expired_later) {
                v.detail.push_str(" [a later write set a TTL: the older value came back after it expired?]");
            }
            found.extend(v);
        }
    }
    // With clocks further apart than the grace, an eviction marker made on a clock far behind has aged
    // out on arrival at a replica far ahead: the evicted version's marker is gone there and an older
    // copy can come back (the documented clocks-beyond-grace limit, as for tombstones).
    if facts.clock_spread_ms >= facts.tombstone_grace_ms && facts.evictions.contains_key(&key) {
        let note = format!(
            " [clocks {} s apart, beyond the grace of the key's eviction markers]",
            facts.clock_spread_ms / 1_000
        );
        for v in &mut found[first..] {
            v.kind = Kind::DivergedBeyondGrace;
            v.detail.push_str(&note);
        }
    }
    // An evicted version (or a later one) came back: "eviction never undone" failed. Over a newer
    // acknowledged write that is a violation of its own kind; alone it is counted.
    if facts.evicted_covers(key, &e.vector) && facts.clock_spread_ms < facts.tombstone_grace_ms {
        let note = " [an eviction of this version or a later one was undone]";
        for v in &mut found[first..] {
            v.kind = Kind::EvictedCameBackOlder;
            v.detail.push_str(note);
        }
        if found.len() == first {
            let detail = format!("k{key} final {} was evicted and came back", describe(&Some(e.clone())));
            found.push(Violation { kind: Kind::EvictedCameBack, at: 0, detail });
        }
    }
}

/// Key `key` ended absent, or as the tombstone `entry`: every acknowledged SET without a TTL must be explained.
fn final_absent(index: &Index, key: u8, entry: Option<&WireEntry>, facts: &Facts, found: &mut Vec<Violation>) {
    let mut evicted_noted = false;
    for w in index.on_key(key).filter(|w| w.acked()) {
        let OpKind::Set { ttl_ms: None, .. } = w.kind else { continue };
        if index.removal_after(w) || lost_with_crash(index, w, facts) {
            continue;
        }
        // Under memory pressure a key may be evicted: absence is then no loss (counted once a key).
        if facts.evicted_within(key, w.invoked_at, Ms::MAX) {
            if !evicted_noted {
                let detail = format!("k{key} is absent, evicted after {}", show(w));
                found.push(violation(Kind::EvictedAbsent, w, detail));
                evicted_noted = true;
            }
            continue;
        }
        let deleted_before = index
            .on_key(key)
            .find(|x| matches!(x.kind, OpKind::Del { .. }) && x.client == w.client && x.acked() && x.precedes(w));
        let removers = removal_vectors(key, facts);
        match entry {
            Some(tomb) => found.extend(judge(w, deleted_before, tomb, false, &removers, facts)),
            None => found.extend(judge_absent(w, deleted_before, &removers, facts)),
        }
    }
}

/// Whether `w`'s copies may all be gone for a reason the design allows: crashes took every copy, or (for a
/// DEL) some node's clock may have passed the tombstone's grace before the end of the run. A tombstone made at
/// virtual time t by a coordinator with clock offset a is dropped by node X at time t' once
/// (t' - t) + (offset of X at t' - a) >= grace; the left side is at most (end - t) + clock spread.
/// Whether `w`, or a write that may have overwritten it (one that does not precede it), lost every copy in
/// crashes: then `w` is gone with it.
fn lost_with_crash(index: &Index, w: &Op, facts: &Facts) -> bool {
    crash_lost(w, facts)
        || index
            .on_key(w.kind.key())
            .any(|x| !std::ptr::eq(x, w) && x.may_have_written() && !x.precedes(w) && crash_lost(x, facts))
}

fn crash_lost(w: &Op, facts: &Facts) -> bool {
    // A tombstone (a DEL's, or the one an expired value leaves) that some node's clock may have aged past the
    // grace before the end of the run.
    let aged = |ttl_ms: Ms| {
        facts.end_ms.saturating_sub(w.invoked_at) + facts.clock_spread_ms >= facts.tombstone_grace_ms + ttl_ms
    };
    match w.kind {
        OpKind::Del { .. } if aged(0) => return true,
        OpKind::Set { ttl_ms: Some(ttl), .. } | OpKind::Expire { ttl_ms: ttl, .. } if aged(ttl) => return true,
        _ => {}
    }
    match w.kind {
        // A SET with a TTL whose value expired leaves a tombstone with its vector: if the last copy of that
        // tombstone died in a crash, the write's every trace did.
        OpKind::Set { value, key, ttl_ms, .. } => {
            facts.crash_lost_values.contains(&value)
                || (ttl_ms.is_some()
                    && facts.vectors.get(&value).is_some_and(|v| {
                        facts.crash_lost_tombstone_vectors.get(&key).is_some_and(|lost| lost.contains(v))
                    }))
        }
        OpKind::Del { key } => {
            facts.crash_lost_tombstones.get(&key).is_some_and(|times| times.iter().any(|&t| t >= w.invoked_at))
        }
        _ => false,
    }
}

/// The vectors `w` may have been written with.
fn vectors_of<'a>(w: &Op, facts: &'a Facts) -> Vec<&'a VersionVector> {
    match w.kind {
        OpKind::Set { value, .. } => facts.vectors.get(&value).into_iter().collect(),
        OpKind::Del { key } => {
            let end = w.completed_at.unwrap_or(Ms::MAX);
            let seen = facts.tombstones.get(&key).into_iter().flatten();
            seen.filter(|(at, _)| *at >= w.executed_at && *at <= end).map(|(_, v)| v).collect()
        }
        _ => Vec::new(),
    }
}

/// The versions that may have removed a key: every tombstone seen on it, every version of a value with an
/// expiry on it (an expired value leaves a tombstone with its own vector), and every eviction marker's.
fn removal_vectors(key: u8, facts: &Facts) -> Vec<&VersionVector> {
    let tombstones = facts.tombstones.get(&key).into_iter().flatten().map(|(_, v)| v);
    // An eviction marker removes the key too: a write concurrent with the evicted version can lose to the marker
    // by last-writer-wins (it carries the evicted version's vector).
    let evicted = facts.evictions.get(&key).into_iter().flatten().map(|(_, v)| v);
    tombstones.chain(facts.expiring.get(&key).into_iter().flatten()).chain(evicted).collect()
}

/// `w` lost to the final entry `last` (written by `u` when known; `restamped`: maybe re-written by an EXPIRE
/// concurrent with `w`; `removers`: for a final tombstone, the versions that may have made it).
fn judge(
    w: &Op,
    u: Option<&Op>,
    last: &WireEntry,
    restamped: bool,
    removers: &[&VersionVector],
    facts: &Facts,
) -> Option<Violation> {
    let final_covers = |wv: &VersionVector| matches!(last.vector.compare(wv), Relation::After | Relation::Equal);
    // The version `u` was written with; for a final tombstone, the least removal vector seen with the final
    // latest write (later copies of it carry merged vectors that also cover what the tombstone beat).
    let u_vector = match u.and_then(set_value) {
        Some(v) => facts.vectors.get(&v),
        None => {
            let same_write = removers.iter().copied().filter(|v| v.latest() == last.vector.latest());
            same_write
                .fold(None, |least: Option<&VersionVector>, v| match least {
                    Some(l) if v.compare(l) != Relation::Before => Some(l),
                    _ => Some(v),
                })
                .or(Some(&last.vector))
        }
    };
    // Last-writer-wins kept `u` only if the final version is `u`'s own (a final version newer than the write that
    // made the value means the value was written again: re-executed, or re-stamped by an EXPIRE).
    let own_version = u_vector.is_some_and(|uv| uv.latest() == last.vector.latest());
    let lww = vectors_of(w, facts).into_iter().any(|wv| {
        final_covers(wv)
            && (restamped || (own_version && u_vector.is_some_and(|uv| wv.compare(uv) == Relation::Concurrent)))
    });
    let rewritten = if u.is_some() && !own_version && !restamped {
        " [the final version is newer than the write that made the value: written again?]"
    } else {
        ""
    };
    let same_client = u.is_some_and(|u| u.client == w.client);
    let kind = match (lww, same_client, &w.kind) {
        (true, _, _) => Kind::LwwConcurrent,
        (false, true, _) => Kind::CausalityLost,
        (false, false, OpKind::Del { .. }) => Kind::Resurrected,
        (false, false, _) => Kind::LostWrite,
    };
    let by = u.map_or_else(|| "an older delete".to_string(), show);
    let same = if same_client { " (same client: it saw the older one acknowledged)" } else { "" };
    let detail = format!(
        "k{} final {} comes from {by}, which finished before {} was invoked{same}{rewritten}",
        w.kind.key(),
        describe(&Some(last.clone())),
        show(w)
    );
    Some(violation(kind, w, detail))
}

/// `w`'s value is gone and no tombstone is left, and nothing that may have removed it happened after it: a
/// violation, unless a removal version (a tombstone seen, a value with TTL) is concurrent with `w`'s version and later by (HLC, node), so it
/// beat `w` by last-writer-wins and then aged out (the anomaly `LwwConcurrent`).
fn judge_absent(w: &Op, deleted_before: Option<&Op>, removers: &[&VersionVector], facts: &Facts) -> Option<Violation> {
    let key = w.kind.key();
    let lww = removers.iter().any(|t| {
        vectors_of(w, facts).into_iter().any(|wv| t.compare(wv) == Relation::Concurrent && t.latest() > wv.latest())
    });
    let kind = match (lww, deleted_before.is_some()) {
        (true, _) => Kind::LwwConcurrent,
        (false, true) => Kind::CausalityLost,
        (false, false) => Kind::LostWrite,
    };
    Some(violation(kind, w, format!("k{key} is absent, nothing removed {} after it", show(w))))
}

/// The read-your-writes check over the whole history.
pub fn read_your_writes(ops: &[Op], facts: &Facts) -> Vec<Violation> {
    let index = Index::new(ops);
    let mut found = Vec::new();
    let mut last: BTreeMap<(u32, u8), &Op> = BTreeMap::new();
    for op in ops.iter().filter(|op| !facts.is_rmw(op.kind.key())) {
        let key = op.kind.key();
        match (&op.kind, &op.outcome) {
            (OpKind::Set { .. } | OpKind::Del { .. }, _) if op.acked() => {
                last.insert((op.client, key), op);
            }
            (OpKind::Get { .. }, Outcome::Replied(reply)) if op.acked() => {
                let Some(w) = last.get(&(op.client, key)) else { continue };
                let n = facts.replicas;
                let intersect = w.levels.write.required(n) + op.levels.read.required(n) > n;
                let end = op.completed_at.unwrap_or(Ms::MAX);
                if !intersect || !facts.quiet(w.invoked_at, end) {
                    continue;
                }
                if let Some(mut v) = read_violation(&index, w, op, reply, facts) {
                    // A removal's tombstone ends its grace on the writer's clock: a replica whose clock is further
                    // ahead than the grace drops it on arrival, and an older copy can come back (documented).
                    let removal = matches!(w.kind, OpKind::Del { .. } | OpKind::Set { ttl_ms: Some(_), .. });
                    if removal && facts.clock_spread_ms >= facts.tombstone_grace_ms {
                        v.kind = Kind::DivergedBeyondGrace;
                        v.detail.push_str(&format!(
                            " [clocks {} s apart, beyond the tombstone grace]",
                            facts.clock_spread_ms / 1_000
                        ));
                    }
                    found.push(v);
                }
            }
            _ => {}
        }
    }
    found
}

fn read_violation(index: &Index, w: &Op, r: &Op, reply: &Reply, facts: &Facts) -> Option<Violation> {
    let bad = |kind, why: &str| {
        Some(violation(kind, r, format!("{} read {} after {}: {why}", show(r), super::brief(reply), show(w))))
    };
    let evicted = facts.evicted_within(w.kind.key(), w.invoked_at, r.completed_at.unwrap_or(Ms::MAX));
    match reply {
        Reply::Bulk(bytes) => {
            let Some(&i) = value_of(bytes).and_then(|v| index.by_value.get(&v)) else {
                return bad(Kind::PhantomValue, "a value nobody wrote");
            };
            let x = &index.ops[i];
            if std::ptr::eq(x, w) || !x.precedes(w) {
                None
            } else if evicted {
                bad(Kind::EvictedCameBackOlder, "an older write, after an eviction of the key")
            } else {
                bad(Kind::ReadYourWrites, "an older write")
            }
        }
        Reply::Nil => {
            let explained = match w.kind {
                OpKind::Del { .. } | OpKind::Set { ttl_ms: Some(_), .. } => true,
                _ => index.removal_after(w) || evicted,
            };
            if explained {
                None
            } else {
                bad(Kind::ReadYourWrites, "nothing removed the write")
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
