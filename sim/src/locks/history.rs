//! The lock history: every lock call a client sent, the answer it took in, every write it made to a fenced
//! resource and every pause, in the order they happened (virtual time, as the clients see it).
//!
//! `holds` derives from it when each client believed it held a lock, by the rule every client follows: a client
//! holds a lock from the moment it takes in a grant (sent at `s`, lease `ttl`) that came before `s + ttl`, until it
//! sends a release, a renewal of it fails, or its lease ends by its own view (`s + ttl` of the last acquire or
//! renewal it sent that was granted in time). An answer a paused client could not read is taken in when it wakes.

use std::collections::BTreeMap;

use shoal::core::reply::Reply;

use crate::event::Ms;

/// A lock call, in the checker's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `LOCK.ACQUIRE` for `ttl_ms`.
    Acquire { ttl_ms: Ms },
    /// `LOCK.RENEW` of the grant `token` for `ttl_ms`.
    Renew { token: u64, ttl_ms: Ms },
    /// `LOCK.RELEASE` of the grant `token`.
    Release { token: u64 },
}

/// The answer a client took in for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Acquired or renewed with a fencing token; `majority` false for a degraded grant.
    Granted { token: u64, majority: bool },
    /// Held by another owner (or, for a renewal, no longer held by this one).
    Nil,
    /// The answer to a release: whether a replica freed the lock.
    Released(bool),
    /// An error reply (`NOMAJORITY`, `NOREPLICA`, a refused connection).
    Error(String),
    /// No answer within the client's own timeout.
    TimedOut,
}

impl Answer {
    /// The answer a reply carries.
    pub fn from_reply(reply: &Reply) -> Answer {
        match reply {
            Reply::Array(parts) => match parts.as_slice() {
                [Reply::Int(token), Reply::Simple(mode)] if *token >= 0 => {
                    Answer::Granted { token: *token as u64, majority: mode == "majority" }
                }
                _ => Answer::Error(format!("unexpected reply {reply:?}")),
            },
            Reply::Nil => Answer::Nil,
            Reply::Int(n) => Answer::Released(*n == 1),
            Reply::Error(e) => Answer::Error(e.to_string()),
            other => Answer::Error(format!("unexpected reply {other:?}")),
        }
    }
}

/// One entry of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockEvent {
    /// Client `client` sent call `req` about `lock` to node `node`.
    Sent { at: Ms, client: usize, req: u64, node: usize, lock: String, call: Call },
    /// Client `client` took in the answer to call `req`.
    Answered { at: Ms, client: usize, req: u64, answer: Answer },
    /// Client `client` wrote to `lock`'s fenced resource with `token`; the resource accepted it or not.
    Write { at: Ms, client: usize, lock: String, token: u64, accepted: bool },
    /// Client `client` stopped (a GC pause) until `until`.
    Paused { at: Ms, client: usize, until: Ms },
}

impl LockEvent {
    /// When it happened.
    pub fn at(&self) -> Ms {
        match self {
            LockEvent::Sent { at, .. }
            | LockEvent::Answered { at, .. }
            | LockEvent::Write { at, .. }
            | LockEvent::Paused { at, .. } => *at,
        }
    }

    /// The client it is about.
    pub fn client(&self) -> usize {
        match self {
            LockEvent::Sent { client, .. }
            | LockEvent::Answered { client, .. }
            | LockEvent::Write { client, .. }
            | LockEvent::Paused { client, .. } => *client,
        }
    }
}

/// One stretch of time in which a client believed it held a lock (`from` included, `to` excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The client.
    pub client: usize,
    /// The lock.
    pub lock: String,
    /// The fencing token of its grant.
    pub token: u64,
    /// When it took in the grant.
    pub from: Ms,
    /// When it stopped believing (release sent, renewal failed, lease over by its view, or the end of the run).
    pub to: Ms,
    /// Whether the grant reached a majority.
    pub majority: bool,
}

#[derive(Debug, Clone)]
struct Open {
    token: u64,
    from: Ms,
    lease_end: Ms,
    majority: bool,
}

/// Every hold the history shows, by start then client; holds of zero length are left out. `end`: the end of
/// the run (holds still open end there).
pub fn holds(events: &[LockEvent], end: Ms) -> Vec<Hold> {
    let mut sent: BTreeMap<u64, (Ms, String, Call)> = BTreeMap::new();
    let mut open: BTreeMap<(usize, String), Open> = BTreeMap::new();
    let mut found = Vec::new();
    let close = |found: &mut Vec<Hold>, (client, lock): (usize, String), o: Open, at: Ms| {
        let to = at.min(o.lease_end);
        if to > o.from {
            found.push(Hold { client, lock, token: o.token, from: o.from, to, majority: o.majority });
        }
    };
    for event in events {
        let (at, client) = (event.at(), event.client());
        let expired: Vec<(usize, String)> =
            open.iter().filter(|((c, _), o)| *c == client && o.lease_end <= at).map(|(k, _)| k.clone()).collect();
        for key in expired {
            let o = open.remove(&key).expect("listed");
            let lease_end = o.lease_end;
            close(&mut found, key, o, lease_end);
        }
        match event {
            LockEvent::Sent { req, lock, call, .. } => {
                let key = (client, lock.clone());
                if let Call::Release { token } = call {
                    if open.get(&key).is_some_and(|o| o.token == *token) {
                        let o = open.remove(&key).expect("checked");
                        close(&mut found, key, o, at);
                    }
                }
                sent.insert(*req, (at, lock.clone(), call.clone()));
            }
            LockEvent::Answered { req, answer, .. } => {
                let Some((sent_at, lock, call)) = sent.remove(req) else { continue };
                let key = (client, lock);
                match (call, answer) {
                    (Call::Acquire { ttl_ms }, Answer::Granted { token, majority }) if at < sent_at + ttl_ms => {
                        if let Some(o) = open.remove(&key) {
                            close(&mut found, key.clone(), o, at);
                        }
                        let o = Open { token: *token, from: at, lease_end: sent_at + ttl_ms, majority: *majority };
                        open.insert(key, o);
                    }
                    (Call::Renew { token, ttl_ms }, Answer::Granted { .. }) => {
                        if let Some(o) = open.get_mut(&key).filter(|o| o.token == token) {
                            o.lease_end = o.lease_end.max(sent_at + ttl_ms);
                        }
                    }
                    (Call::Renew { token, .. }, _) if open.get(&key).is_some_and(|o| o.token == token) => {
                        let o = open.remove(&key).expect("checked");
                        close(&mut found, key, o, at);
                    }
                    _ => {}
                }
            }
            LockEvent::Write { .. } | LockEvent::Paused { .. } => {}
        }
    }
    for (key, o) in std::mem::take(&mut open) {
        close(&mut found, key, o, end);
    }
    found.sort_by_key(|h| (h.from, h.client));
    found
}
