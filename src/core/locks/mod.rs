//! Best-effort lease locks with fencing tokens (docs/architecture.md §13).
//!
//! A lock lives on its name's preference list. The node that receives a lock command asks every replica and waits
//! for all of them (or the request timeout): an acquire succeeds when a majority granted it. Without a majority,
//! `--lock-mode strict` refuses (and frees the partial grants) while `available` (the default: Shoal is AP) grants
//! and says `degraded` in the reply. The fencing token comes from the coordinator's hybrid logical clock and each
//! replica accepts only tokens above every one it accepted before; a replica that refuses a token as stale reports
//! its highest, and the coordinator retries once above it. Leases run out on each replica's own clock.
//!
//! What this does not give: during a partition (or while a holder is paused past its lease) two clients can both
//! believe they hold a lock. The fencing token is what lets the protected resource reject the older holder.

pub mod table;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::core::clock::{Hlc, Timestamp};
use crate::core::driver::RequestId;
use crate::core::node::{Clustered, Outbox, Output, TimerId};
use crate::core::replication::state::{Origin, Pending};
use crate::core::replication::PeerMsg;
use crate::core::reply::Reply;
use crate::core::Millis;
pub use table::{Holder, LockAnswer, LockOp, LockTable};

/// What an acquire does when no majority of the lock's replicas can be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LockMode {
    /// Grant anyway and mark the grant `degraded` (available under partition).
    #[default]
    Available,
    /// Refuse with an error.
    Strict,
}

/// Lock counters of the grants this node coordinated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockStats {
    /// Grants and renewals given by a majority of the lock's replicas.
    pub grants_majority: u64,
    /// Grants and renewals without a majority (available mode): another client may hold the lock too.
    pub grants_degraded: u64,
    /// Acquires answered nil because another owner held the lock.
    pub contended: u64,
    /// Acquires refused without a majority (strict mode) or with no replica answering.
    pub no_majority: u64,
}

impl LockStats {
    /// Count the reply to `op`.
    pub(crate) fn count(&mut self, op: &LockOp, reply: &Reply) {
        if !matches!(op, LockOp::Acquire { .. } | LockOp::Renew { .. }) {
            return;
        }
        match reply {
            Reply::Array(parts) if parts.get(1) == Some(&Reply::simple("majority")) => self.grants_majority += 1,
            Reply::Array(_) => self.grants_degraded += 1,
            Reply::Nil => self.contended += 1,
            _ => self.no_majority += 1,
        }
    }
}

/// A lock request in flight: the operation, and each replica's answer.
#[derive(Debug)]
pub(crate) struct LockRequest {
    pub origin: Origin,
    pub op: LockOp,
    pub replicas: usize,
    /// (replica address, its answer, failed); `None` address = this node.
    pub answers: Vec<(Option<SocketAddr>, Option<LockAnswer>, bool)>,
    pub retried: bool,
}

/// The error an acquire answers in strict mode without a majority.
fn no_majority(needed: usize, replicas: usize, granted: usize) -> Reply {
    Reply::error(format!("NOMAJORITY the lock needs {needed} of {replicas} replicas, {granted} granted"))
}

impl Clustered<'_> {
    /// A lock command from a client (or a forwarded one).
    pub(crate) fn lock_command(&mut self, now: Millis, origin: Origin, op: LockOp, out: &mut Outbox) {
        let op = with_fresh_token(&mut self.local.hlc, self.locks, now, op, 0);
        self.refresh_ring(now);
        // A lock's replicas come from the ring of every known member, down ones included, and a majority is of
        // those: a node cut off from the others, or a side of a partition whose live ring reshuffled, must not
        // count a majority among replicas that are not the lock's. Down replicas count as not answering.
        let me = self.local.config.name.clone();
        let owners: Vec<String> = self
            .repl()
            .all_ring
            .preference_list(op.name().as_bytes(), self.local.config.replicas)
            .into_iter()
            .map(String::from)
            .collect();
        let mut answers = Vec::new();
        for o in &owners {
            if *o == me {
                answers.push((None, None, false));
            } else if let Some(addr) = self.repl.addr_of(o) {
                answers.push((Some(addr), None, false));
            }
        }
        // The majority is of the configured replica count, not of the members this node happens to know: a node
        // restarted empty knows only itself until it rejoins, and must not count its own grant as a majority.
        // Replicas it does not know count as not answering (a cluster smaller than N needs all but N/2 of N).
        let replicas = self.local.config.replicas.max(owners.len()).max(1);
        let id = self.repl.id();
        let request = LockRequest { origin, op, replicas, answers, retried: false };
        self.repl.pending.insert(id, Pending::Lock(Box::new(request)));
        self.lock_send(now, id, out);
        out.push(Output::Schedule { after_ms: self.local.config.request_timeout_ms, timer: TimerId::Request(id) });
    }

    /// Send the request's operation to every replica that has not answered (applying it here if this node is one).
    fn lock_send(&mut self, now: Millis, id: RequestId, out: &mut Outbox) {
        let Some(Pending::Lock(req)) = self.repl.pending.get(&id) else { return };
        let op = req.op.clone();
        let targets: Vec<Option<SocketAddr>> =
            req.answers.iter().filter(|(_, a, failed)| a.is_none() && !failed).map(|(addr, _, _)| *addr).collect();
        for target in targets {
            match target {
                Some(to) => out.push(Output::SendPeer { to, msg: PeerMsg::Lock { id: Some(id), op: op.clone() } }),
                None => {
                    let answer = self.locks.apply(&op, now);
                    self.lock_answered(now, None, id, answer, out);
                }
            }
        }
    }

    /// A replica answered (`from` None: this node).
    pub(crate) fn lock_answered(
        &mut self,
        now: Millis,
        from: Option<SocketAddr>,
        id: RequestId,
        answer: LockAnswer,
        out: &mut Outbox,
    ) {
        // A replica's highest token from too far ahead is not an answer (its lock table is unusable, or the
        // answer is forged): the replica stays unanswered, and the request settles by its deadline.
        if from.is_some() && !self.peer_time_ok(now, Timestamp(answer.max_token)) {
            return;
        }
        self.local.hlc.observe(Timestamp(answer.max_token));
        let Some(Pending::Lock(req)) = self.repl.pending.get_mut(&id) else { return };
        let Some(slot) = req.answers.iter_mut().find(|(addr, a, _)| *addr == from && a.is_none()) else { return };
        slot.1 = Some(answer);
        self.lock_progress(now, id, false, out);
    }

    /// The connection to a replica failed: count it as not answering.
    pub(crate) fn lock_peer_lost(&mut self, now: Millis, id: RequestId, peer: SocketAddr, out: &mut Outbox) {
        let Some(Pending::Lock(req)) = self.repl.pending.get_mut(&id) else { return };
        if let Some(slot) = req.answers.iter_mut().find(|(addr, a, _)| *addr == Some(peer) && a.is_none()) {
            slot.2 = true;
            self.lock_progress(now, id, false, out);
        }
    }

    /// Decide once every replica answered or failed, or the time is up.
    pub(crate) fn lock_progress(&mut self, now: Millis, id: RequestId, timed_out: bool, out: &mut Outbox) {
        let Some(Pending::Lock(req)) = self.repl.pending.get(&id) else { return };
        let settled = req.answers.iter().all(|(_, a, failed)| a.is_some() || *failed);
        if !settled && !timed_out {
            return;
        }
        // A grant or renewal refused only because its token was stale is retried once above the highest seen.
        let stale = matches!(req.op, LockOp::Acquire { .. })
            && !req.retried
            && req.answers.iter().any(|(_, a, _)| {
                a.as_ref().is_some_and(|a| {
                    !a.applied && a.holder.as_ref().is_none_or(|h| Some(h.owner.as_str()) == owner_of(&req.op))
                })
            });
        if stale {
            let floor = req.answers.iter().filter_map(|(_, a, _)| a.as_ref().map(|a| a.max_token)).max().unwrap_or(0);
            let Some(Pending::Lock(req)) = self.repl.pending.remove(&id) else { return };
            let mut req = *req;
            req.op = with_fresh_token(&mut self.local.hlc, self.locks, now, req.op, floor);
            req.retried = true;
            // Ask every replica again, those that granted the stale token too (a re-grant to the same owner), so
            // all of them hold the same token.
            for slot in &mut req.answers {
                if !slot.2 {
                    slot.1 = None;
                }
            }
            self.repl.pending.insert(id, Pending::Lock(Box::new(req)));
            return self.lock_send(now, id, out);
        }
        let Some(Pending::Lock(req)) = self.repl.pending.remove(&id) else { return };
        let answers: Vec<LockAnswer> = req.answers.iter().filter_map(|(_, a, _)| a.clone()).collect();
        let reply = lock_reply(&req.op, &answers, req.replicas, self.local.config.lock_mode);
        self.lock_stats.count(&req.op, &reply);
        // A refused or contended acquire frees what it was granted, so it blocks nobody until its lease ends.
        if let LockOp::Acquire { name, owner, token, .. } = &req.op {
            if reply == Reply::Nil || reply.is_error() {
                let release = LockOp::Release { name: name.clone(), owner: owner.clone(), token: *token };
                for (addr, a, _) in &req.answers {
                    if a.as_ref().is_some_and(|a| a.applied) {
                        match addr {
                            Some(to) => out.push(Output::SendPeer {
                                to: *to,
                                msg: PeerMsg::Lock { id: None, op: release.clone() },
                            }),
                            None => {
                                self.locks.apply(&release, now);
                            }
                        }
                    }
                }
            }
        }
        self.respond(req.origin, reply, out);
    }
}

/// The operation with a token for a new grant: from the HLC, above `floor` and above this node's own table.
pub(crate) fn with_fresh_token(hlc: &mut Hlc, table: &LockTable, now: Millis, op: LockOp, floor: u64) -> LockOp {
    match op {
        LockOp::Acquire { name, owner, ttl_ms, .. } => {
            let floor = floor.max(table.max_token(&name));
            hlc.observe(Timestamp(floor));
            let token = hlc.now(now).0;
            LockOp::Acquire { name, owner, token, ttl_ms }
        }
        other => other,
    }
}

fn owner_of(op: &LockOp) -> Option<&str> {
    match op {
        LockOp::Acquire { owner, .. } | LockOp::Renew { owner, .. } | LockOp::Release { owner, .. } => Some(owner),
        LockOp::Info { .. } => None,
    }
}

pub(crate) fn lock_reply(op: &LockOp, answers: &[LockAnswer], replicas: usize, mode: LockMode) -> Reply {
    let needed = replicas / 2 + 1;
    let applied = answers.iter().filter(|a| a.applied).count();
    let grant = |token: u64, majority: bool| {
        Reply::Array(vec![Reply::Int(token as i64), Reply::simple(if majority { "majority" } else { "degraded" })])
    };
    match op {
        LockOp::Acquire { owner, token, .. } | LockOp::Renew { owner, token, .. } => {
            let contended = answers.iter().any(|a| !a.applied && a.holder.as_ref().is_some_and(|h| h.owner != *owner));
            if applied >= needed {
                grant(*token, true)
            } else if contended || (matches!(op, LockOp::Renew { .. }) && applied == 0 && !answers.is_empty()) {
                Reply::Nil
            } else if applied > 0 && mode == LockMode::Available {
                grant(*token, false)
            } else if answers.is_empty() {
                Reply::error(format!("NOREPLICA none of the lock's {replicas} replicas answered"))
            } else {
                no_majority(needed, replicas, applied)
            }
        }
        LockOp::Release { .. } => Reply::Int(i64::from(applied > 0)),
        LockOp::Info { .. } => {
            let best = answers.iter().filter_map(|a| a.holder.as_ref()).max_by_key(|h| h.token);
            let Some(best) = best else { return Reply::Nil };
            let same: Vec<&Holder> = answers
                .iter()
                .filter_map(|a| a.holder.as_ref())
                .filter(|h| h.owner == best.owner && h.token == best.token)
                .collect();
            let remaining = same.iter().map(|h| h.remaining_ms).max().unwrap_or(0);
            let field = |k: &'static str, v: Reply| (Reply::simple(k), v);
            Reply::Map(vec![
                field("owner", Reply::bulk(best.owner.as_bytes())),
                field("token", Reply::Int(best.token as i64)),
                field("remaining_ms", Reply::Int(remaining as i64)),
                field("replicas_holding", Reply::Int(same.len() as i64)),
                field("replicas", Reply::Int(replicas as i64)),
                field("majority", Reply::Int(i64::from(same.len() >= needed))),
            ])
        }
    }
}

#[cfg(test)]
mod tests;
