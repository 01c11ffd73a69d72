//! The coordinator: where a clustered node sends each client command, and how it waits for replicas.
//!
//! A single-key read runs on any owner of the key (at level ONE straight from the local copy; above ONE the
//! node asks the other owners, merges what they hold into its own copy, answers from the merged copy, and writes
//! the merged entry back to stale replicas: read repair). A single-key write runs on the key's first live owner,
//! which executes it against its own copy (so read-modify-write commands see the latest write it knows, and its
//! version vector dominates every write it has seen) and sends the resulting entry to the other owners,
//! answering once the write level is met. A replica that does not answer in time (or whose connection fails) gets
//! its copy through a fallback node holding a hint, or through a hint kept here (sloppy quorum: a fallback's
//! acknowledgement counts). A node that does not own a key forwards the command to its owners in preference
//! order, failing over to the next when one fails. Multi-key commands are split per key and their parts combined.
//!
//! This file holds the routing and what every kind of request shares (their timers, a lost peer link, the
//! answer to the origin, the key's owners); each kind lives in its own file: `forward`, `read`, `write`,
//! `fanout`, and the replica side of a write in `apply`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use super::fanout::combine;
use super::levels::{Consistency, Levels};
use super::state::{FanKind, Origin, Pending};
use super::wire::PeerMsg;
use crate::core::command::{Command, SetCond, SetTtl};
use crate::core::driver::RequestId;
use crate::core::node::{Clustered, Outbox, Output, TimerId};
use crate::core::reply::{err_wrong_arity, Reply};
use crate::core::Millis;

/// Redis Cluster's text for a multi-key command whose keys live on different nodes.
pub const ERR_CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

impl Clustered<'_> {
    /// Admit a request: the ring brought up to date, and a new request refused (answered here, false) past the
    /// limit of requests in flight.
    pub(crate) fn admit_request(&mut self, now: Millis, origin: &Origin, out: &mut Outbox) -> bool {
        self.refresh_ring(now);
        let max = self.local.config.requests_in_flight_max;
        if !matches!(origin, Origin::Part { .. }) && self.repl.pending.len() >= max {
            // Every request in flight holds its command (and a write its entries) until it ends: past the limit
            // a new one is refused at once, with the error cluster clients retry, instead of growing without
            // bound. The parts of a multi-key command already admitted are not refused halfway.
            self.repl.stats.requests_refused += 1;
            let text = format!("TRYAGAIN too many requests in flight on this node ({max}); retry later");
            self.respond(origin.clone(), Reply::error(text), out);
            return false;
        }
        true
    }

    /// A part of a multi-key command enters the cluster path.
    pub(crate) fn route(&mut self, now: Millis, origin: Origin, cmd: Command, levels: Levels, out: &mut Outbox) {
        if self.admit_request(now, &origin, out) {
            self.dispatch(now, origin, cmd, levels, out);
        }
    }

    /// An admitted command: a single-key one goes to its key's owners, a multi-key one is split per key, a
    /// keyless one answers for this node.
    pub(crate) fn dispatch(&mut self, now: Millis, origin: Origin, cmd: Command, levels: Levels, out: &mut Outbox) {
        if let Some(key) = cmd.single_key().cloned() {
            return self.route_single(now, origin, key, cmd, levels, out);
        }
        match cmd {
            Command::MGet { keys } => {
                let parts = keys.into_iter().map(|key| Command::Get { key }).collect();
                self.fan_out(now, origin, FanKind::Array, parts, levels, out)
            }
            Command::MSet { pairs, if_none_exist: false } => {
                let parts = pairs
                    .into_iter()
                    .map(|(key, value)| Command::Set {
                        key,
                        value,
                        cond: SetCond::Always,
                        ttl: SetTtl::Clear,
                        get: false,
                        reply_int: false,
                    })
                    .collect();
                self.fan_out(now, origin, FanKind::AllOk, parts, levels, out)
            }
            Command::MSet { pairs, if_none_exist: true } => {
                // MSETNX is all-or-nothing: it runs on one node only when every key has the same first owner.
                let primaries: Vec<Option<String>> = pairs.iter().map(|(k, _)| self.primary_of(k)).collect();
                if primaries.windows(2).any(|w| w[0] != w[1]) {
                    return self.respond(origin, Reply::err(ERR_CROSSSLOT), out);
                }
                // A client cannot send MSETNX without pairs (arity), but a peer's `Forward` can.
                let Some(key) = pairs.first().map(|(k, _)| k.clone()) else {
                    self.repl.stats.peer_msgs_invalid += 1;
                    return self.respond(origin, err_wrong_arity("msetnx"), out);
                };
                self.route_single(now, origin, key, Command::MSet { pairs, if_none_exist: true }, levels, out)
            }
            Command::Del { keys } => {
                let parts = keys.into_iter().map(|k| Command::Del { keys: vec![k] }).collect();
                self.fan_out(now, origin, FanKind::Sum, parts, levels, out)
            }
            Command::Exists { keys } => {
                let parts = keys.into_iter().map(|k| Command::Exists { keys: vec![k] }).collect();
                self.fan_out(now, origin, FanKind::Sum, parts, levels, out)
            }
            Command::Touch { keys } => {
                let parts = keys.into_iter().map(|k| Command::Touch { keys: vec![k] }).collect();
                self.fan_out(now, origin, FanKind::Sum, parts, levels, out)
            }
            Command::FlushAll => self.flush_all(now, origin, out),
            Command::Lock(op) => self.lock_command(now, origin, op, out),
            other => {
                // Keyless commands (DBSIZE, KEYS, SCAN, RANDOMKEY) answer for this node; the node itself answers
                // the ones that describe it (INFO, SHOAL.MEMBERS, SHOAL.READY, ...) before they come here.
                let reply = self.execute(now, other);
                self.respond(origin, reply, out)
            }
        }
    }

    fn route_single(
        &mut self,
        now: Millis,
        origin: Origin,
        key: Bytes,
        cmd: Command,
        levels: Levels,
        out: &mut Outbox,
    ) {
        // Fast path: a read at ONE on one of the key's owners is answered from the local copy.
        if levels.read == Consistency::One && cmd.is_read() {
            let me = self.local.config.name.as_str();
            let owned = self.repl.ring.preference_list(&key, self.local.config.replicas).contains(&me);
            if owned {
                let reply = self.execute(now, cmd);
                return self.respond(origin, reply, out);
            }
        }
        let owners = self.owner_names(&key);
        let me = self.local.config.name.as_str();
        let from_peer = matches!(origin, Origin::Peer { .. });
        if cmd.is_read() {
            if from_peer || owners.iter().any(|o| **o == *me) {
                self.coordinate_read(now, origin, key, cmd, levels.read, owners, out);
            } else {
                self.forward(now, origin, cmd, levels, owners, out);
            }
        } else if from_peer || owners.first().is_some_and(|o| **o == *me) {
            self.coordinate_write(now, origin, cmd, levels.write, owners, out);
        } else {
            self.forward(now, origin, cmd, levels, owners, out);
        }
    }

    /// Request `id`'s timer fired.
    pub(crate) fn request_timer(&mut self, now: Millis, id: RequestId, out: &mut Outbox) {
        match self.repl.pending.get(&id) {
            Some(Pending::Forward { .. }) => {
                // No answer in time: the owner may have run the command. Running it again on the next owner could
                // apply it twice (a second version of the same write), so the client gets an error instead and
                // decides; only a failed connection (`PeerLost`) fails over.
                let Some(Pending::Forward { origin, to, .. }) = self.repl.pending.remove(&id) else { return };
                self.repl.stats.timeouts += 1;
                let name = self.name_of(to).unwrap_or_else(|| to.to_string());
                let text = format!(
                    "TIMEOUT no answer from the key's owner {name} within {} ms (the command may or may not have run)",
                    self.forward_timeout_ms()
                );
                self.respond(origin, Reply::error(text), out);
            }
            Some(Pending::Read { .. }) => self.read_progress(now, id, true, out),
            Some(Pending::Write { round, targets, .. }) => {
                let round = *round;
                let count = targets.len();
                if round == 0 {
                    for which in 0..count {
                        self.write_replica_failed(now, id, which, out);
                    }
                    if let Some(Pending::Write { round, .. }) = self.repl.pending.get_mut(&id) {
                        *round = 1;
                    }
                    out.push(Output::Schedule {
                        after_ms: self.local.config.request_timeout_ms,
                        timer: TimerId::Request(id),
                    });
                } else {
                    self.write_finish(now, id, out);
                }
            }
            Some(Pending::Handoff { .. }) | Some(Pending::HintDelivery { .. }) => {
                self.repl.pending.remove(&id);
            }
            Some(Pending::Flush { .. }) => self.flush_done(id, None, out),
            Some(Pending::Lock(_)) => self.lock_progress(now, id, true, out),
            Some(Pending::Fanout { .. }) | None => {}
        }
    }

    /// The connection to `peer` failed: fail over everything waiting on it now instead of at its timeout.
    pub(crate) fn peer_lost(&mut self, now: Millis, peer: SocketAddr, out: &mut Outbox) {
        let ids: Vec<RequestId> = self.repl.pending.keys().copied().collect();
        let peer_name = self.name_of(peer);
        for id in ids {
            match self.repl.pending.get_mut(&id) {
                Some(Pending::Forward { to, cmd, .. }) if *to == peer => {
                    if cmd.is_read() || !cmd.depends_on_value() {
                        self.repl.stats.forward_failovers += 1;
                        self.forward_next(now, id, out);
                    } else {
                        self.forward_unknown(id, out);
                    }
                }
                Some(Pending::Read { asked, .. }) => {
                    if let Some(a) = asked.iter_mut().find(|a| a.addr == peer && a.answer.is_none()) {
                        a.failed = true;
                        self.read_progress(now, id, false, out);
                    }
                }
                Some(Pending::Write { targets, .. }) => {
                    let hit: Vec<usize> = (0..targets.len())
                        .filter(|&i| {
                            !targets[i].acked
                                && !targets[i].refused
                                && (targets[i].addr == peer || targets[i].fallback == Some(peer))
                        })
                        .collect();
                    for which in hit {
                        let fallback_failed = matches!(
                            self.repl.pending.get(&id),
                            Some(Pending::Write { targets, .. }) if targets[which].fallback == Some(peer)
                        );
                        if fallback_failed {
                            let Some(Pending::Write { targets, entries, .. }) = self.repl.pending.get_mut(&id) else {
                                continue;
                            };
                            targets[which].hinted_here = true;
                            let name = targets[which].name.clone();
                            let keys: Vec<Bytes> = entries.iter().map(|(k, _)| k.clone()).collect();
                            for key in keys {
                                self.add_hint(now, name.to_string(), key);
                            }
                        } else {
                            self.write_replica_failed(now, id, which, out);
                        }
                    }
                }
                Some(Pending::Handoff { waiting, .. }) if waiting.contains(&peer) => {
                    self.repl.pending.remove(&id);
                }
                Some(Pending::Flush { .. }) => self.flush_done(id, Some(peer), out),
                Some(Pending::HintDelivery { target, .. }) if peer_name.as_ref() == Some(target) => {
                    self.repl.pending.remove(&id);
                }
                Some(Pending::Lock(_)) => self.lock_peer_lost(now, id, peer, out),
                _ => {}
            }
        }
    }

    /// Deliver a reply to whoever waits for it.
    pub(crate) fn respond(&mut self, origin: Origin, reply: Reply, out: &mut Outbox) {
        match origin {
            Origin::Client { conn, req } => out.push(Output::Reply { conn, req, reply }),
            Origin::Peer { peer, id } => {
                out.push(Output::SendPeer { to: peer, msg: PeerMsg::ForwardReply { id, reply } })
            }
            Origin::Part { parent, index } => {
                let Some(Pending::Fanout { parts, remaining, .. }) = self.repl.pending.get_mut(&parent) else {
                    return;
                };
                if parts[index].is_none() {
                    parts[index] = Some(reply);
                    *remaining -= 1;
                }
                if *remaining > 0 {
                    return;
                }
                let Some(Pending::Fanout { origin, kind, parts, .. }) = self.repl.pending.remove(&parent) else {
                    return;
                };
                let parts: Vec<Reply> = parts.into_iter().map(|p| p.unwrap_or(Reply::Nil)).collect();
                let combined = combine(kind, parts);
                self.respond(origin, combined, out);
            }
        }
    }

    /// The key's owners (shared names), as this node's ring sees it, for the request path (no string copies).
    pub(crate) fn owner_names(&self, key: &[u8]) -> Vec<Arc<str>> {
        self.repl.ring.preference_names(key, self.local.config.replicas)
    }

    fn primary_of(&self, key: &[u8]) -> Option<String> {
        self.repl.ring.primary(key).map(String::from)
    }
}
