//! The lock workload: K clients, each a small state machine over virtual time that takes a lock, works under it
//! (writes to the lock's fenced resource with its token), renews it halfway through its lease, releases it, and
//! starts again; a client answered nil or an error backs off and retries.
//!
//! A client counts its lease from the moment it sent the acquire (or the renewal), since it cannot know when a
//! replica applied it, and writes only before its safe time: the lease end less `drift_margin(ttl)` for clock
//! drift between it and the replicas. A paused client (a GC pause armed at random or by the driver) stops right
//! before a write, wakes after its lease and makes that write with its old token, as a real paused process does;
//! answers that came meanwhile are taken in when it wakes. Every call, answer, write and pause is recorded.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use shoal::core::command::Command;
use shoal::core::locks::LockOp;
use shoal::core::reply::Reply;

use crate::event::Ms;
use crate::locks::history::{Answer, Call, LockEvent};
use crate::locks::resource::FencedResource;

/// Connection ids of lock clients start here (client `i` uses `LOCK_CONN_BASE + i`), apart from data clients.
pub const LOCK_CONN_BASE: u64 = 1 << 62;

/// The lock workload's settings; ranges are inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockConfig {
    /// Number of clients (K).
    pub clients: usize,
    /// Number of locks they contend for (`lock0`, `lock1`, ...).
    pub locks: usize,
    /// Lease asked for by each acquire and renewal.
    pub ttl_ms: (Ms, Ms),
    /// How long a client keeps a lock before it releases it.
    pub hold_ms: (Ms, Ms),
    /// Rest between a release and the next acquire.
    pub think_ms: (Ms, Ms),
    /// Back-off after a nil, an error or a lost lock.
    pub retry_ms: (Ms, Ms),
    /// Gap between two writes of a holder.
    pub write_every_ms: Ms,
    /// How long a client waits for an answer before it gives up on the call.
    pub call_timeout_ms: Ms,
    /// Chance (percent) that a grant comes with a pause before one of its writes.
    pub pause_percent: u32,
    /// How long a pause lasts beyond the lease's end.
    pub pause_past_lease_ms: (Ms, Ms),
    /// When the clients start (virtual ms).
    pub start_ms: Ms,
    /// Pauses planned ahead, each (at, client, past lease): from `at` on, the client's next write while it
    /// holds a lock is preceded by a pause lasting until `past lease` after its lease (`pause_next_write`).
    pub pauses: Vec<(Ms, usize, Ms)>,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            clients: 3,
            locks: 1,
            ttl_ms: (1_000, 3_000),
            hold_ms: (500, 4_000),
            think_ms: (100, 1_000),
            retry_ms: (50, 300),
            write_every_ms: 100,
            call_timeout_ms: 3_000,
            pause_percent: 0,
            pause_past_lease_ms: (200, 2_000),
            start_ms: 0,
            pauses: Vec::new(),
        }
    }
}

impl LockConfig {
    /// How long after a fault ends its effect on who holds a lock may last: an acquire decided under the fault is
    /// answered within the call timeout (a grant counts only if it comes within its lease), and the hold it gives
    /// ends by the hold time plus one lease after that (a last renewal). A double holder that starts later than
    /// this after every fault is not the fault's doing.
    pub fn settle_ms(&self) -> Ms {
        self.call_timeout_ms.max(self.ttl_ms.1) + self.hold_ms.1 + self.ttl_ms.1
    }
}

/// The part of a lease a holder does not use, for clock drift and scheduling: `max(lease / 100, 50 ms)`, the margin
/// `docs/locks.md` tells users to keep (capped at the lease).
pub fn drift_margin(ttl_ms: Ms) -> Ms {
    (ttl_ms / 100).max(50).min(ttl_ms)
}

/// A lock call for the driver to deliver to `node` as `Input::Client { conn: conn(), req, cmd }`.
#[derive(Debug, Clone, PartialEq)]
pub struct LockCall {
    /// The client.
    pub client: usize,
    /// Its request number (unique in the run).
    pub req: u64,
    /// The node it goes to.
    pub node: usize,
    /// The command.
    pub cmd: Command,
}

impl LockCall {
    /// The connection id the driver files the reply under.
    pub fn conn(&self) -> u64 {
        LOCK_CONN_BASE + self.client as u64
    }
}

/// The lock client behind a connection id, if it is one.
pub fn lock_client(conn: u64) -> Option<usize> {
    conn.checked_sub(LOCK_CONN_BASE).map(|c| c as usize)
}

#[derive(Debug, Clone)]
struct Held {
    lock: String,
    token: u64,
    lease_start: Ms,
    ttl_ms: Ms,
    hold_until: Ms,
    next_write: Ms,
    renewing: Option<(u64, Ms)>,
}

impl Held {
    fn lease_end(&self) -> Ms {
        self.lease_start + self.ttl_ms
    }

    fn safe_end(&self) -> Ms {
        self.lease_end() - drift_margin(self.ttl_ms)
    }

    fn renew_at(&self) -> Ms {
        self.lease_start + self.ttl_ms / 2
    }
}

#[derive(Debug, Clone)]
enum State {
    /// Acquires at its wake time.
    Idle {
        wake: Ms,
    },
    /// Waits for the answer to acquire `req`.
    Acquiring {
        req: u64,
        lock: String,
        sent_at: Ms,
        ttl_ms: Ms,
    },
    Holding(Held),
    /// Stopped until `until`; then writes with the token it held.
    Paused {
        until: Ms,
        held: Held,
    },
}

#[derive(Debug)]
struct Client {
    name: String,
    node: usize,
    state: State,
    /// A pause armed for the next write: how long past the lease.
    pause: Option<Ms>,
    /// Answers that came while paused.
    inbox: Vec<(u64, Answer)>,
}

#[derive(Debug)]
struct Outstanding {
    client: usize,
    deadline: Ms,
}

/// The clients, the fenced resources and the history.
#[derive(Debug)]
pub struct LockWorkload {
    config: LockConfig,
    nodes: usize,
    rng: StdRng,
    clients: Vec<Client>,
    outstanding: BTreeMap<u64, Outstanding>,
    next_req: u64,
    ready: std::collections::VecDeque<LockCall>,
    resources: BTreeMap<String, FencedResource>,
    history: Vec<LockEvent>,
    late_answers: u64,
    /// Set by `stop`: no new acquire, holders release at their next step.
    stopped: bool,
    /// How many of `config.pauses` (sorted by time) are armed.
    pauses_armed: usize,
}

fn draw(rng: &mut StdRng, (lo, hi): (Ms, Ms)) -> Ms {
    rng.random_range(lo..=hi.max(lo))
}

impl LockWorkload {
    /// `config.clients` clients spread over `nodes` nodes (client `i` starts on node `i % nodes`).
    pub fn new(config: LockConfig, nodes: usize, seed: u64) -> LockWorkload {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut config = config;
        config.pauses.sort_by_key(|(at, _, _)| *at);
        let clients = (0..config.clients)
            .map(|i| Client {
                name: format!("client{i}"),
                node: i % nodes.max(1),
                state: State::Idle { wake: config.start_ms + draw(&mut rng, config.think_ms) },
                pause: None,
                inbox: Vec::new(),
            })
            .collect();
        LockWorkload {
            config,
            nodes: nodes.max(1),
            rng,
            clients,
            outstanding: BTreeMap::new(),
            next_req: 1,
            ready: Default::default(),
            resources: BTreeMap::new(),
            history: Vec::new(),
            late_answers: 0,
            stopped: false,
            pauses_armed: 0,
        }
    }

    /// The earliest virtual time at which a client wants to act (the driver schedules a wake-up then).
    pub fn next_wake(&self) -> Option<Ms> {
        let stopped = self.stopped;
        let clients = self.clients.iter().filter_map(move |c| match &c.state {
            State::Idle { .. } if stopped => None,
            State::Idle { wake } => Some(*wake),
            State::Acquiring { .. } => None,
            State::Holding(h) => {
                let renew = h.renewing.is_none().then(|| h.renew_at());
                Some(h.next_write.min(h.hold_until).min(h.lease_end()).min(renew.unwrap_or(Ms::MAX)))
            }
            State::Paused { until, .. } => Some(*until),
        });
        let deadlines = self.outstanding.values().map(|o| o.deadline);
        let armed = self.config.pauses.get(self.pauses_armed).map(|(at, _, _)| *at);
        clients.chain(deadlines).chain(armed).min()
    }

    /// Advances every client to `now` (writes, renewals, releases, pauses, timeouts) and returns the next call to
    /// deliver; call it until it returns `None`, at every wake-up and after every `on_reply`.
    pub fn next_call(&mut self, now: Ms) -> Option<LockCall> {
        if self.ready.is_empty() {
            self.advance(now);
        }
        self.ready.pop_front()
    }

    /// The reply to call `req` of `client` reached the client at `now`.
    pub fn on_reply(&mut self, client: usize, req: u64, now: Ms, reply: &Reply) {
        self.answer(client, req, now, Answer::from_reply(reply));
    }

    /// The call `req` of `client` could not be delivered (its node is down: the connection was refused).
    pub fn on_refused(&mut self, client: usize, req: u64, now: Ms) {
        self.answer(client, req, now, Answer::Error("refused: node down".to_string()));
    }

    /// Arms a pause for `client`'s next write while it holds a lock, lasting until `past_lease_ms` after its lease.
    pub fn pause_next_write(&mut self, client: usize, past_lease_ms: Ms) {
        if let Some(c) = self.clients.get_mut(client) {
            c.pause = Some(past_lease_ms);
        }
    }

    /// From `now` on, clients start no new acquire, and holders release their lock at their next step (for a
    /// quiet liveness phase). Call `next_call(now)` after it.
    pub fn stop(&mut self, now: Ms) {
        self.stopped = true;
        for c in &mut self.clients {
            if let State::Holding(held) = &mut c.state {
                held.hold_until = held.hold_until.min(now);
            }
        }
    }

    /// Calls sent and not answered yet (nor timed out).
    pub fn calls_waiting(&self) -> usize {
        self.outstanding.len()
    }

    /// Everything the clients did, in order.
    pub fn history(&self) -> &[LockEvent] {
        &self.history
    }

    /// The fenced resource of each lock.
    pub fn resources(&self) -> &BTreeMap<String, FencedResource> {
        &self.resources
    }

    /// Answers that came after their call had timed out (ignored by the clients).
    pub fn late_answers(&self) -> u64 {
        self.late_answers
    }

    /// Whether `client` is paused now.
    pub fn is_paused(&self, client: usize) -> bool {
        matches!(self.clients.get(client).map(|c| &c.state), Some(State::Paused { .. }))
    }

    /// Whether `client` holds a lock by its own view (its state machine, not the checker's).
    pub fn is_holding(&self, client: usize) -> bool {
        matches!(self.clients.get(client).map(|c| &c.state), Some(State::Holding(_)))
    }

    fn answer(&mut self, client: usize, req: u64, now: Ms, answer: Answer) {
        if self.outstanding.remove(&req).is_none_or(|o| o.client != client) {
            self.late_answers += 1;
            return;
        }
        if matches!(answer, Answer::TimedOut) || matches!(&answer, Answer::Error(e) if e.starts_with("refused")) {
            self.clients[client].node = self.rng.random_range(0..self.nodes);
        }
        if let State::Paused { .. } = self.clients[client].state {
            self.clients[client].inbox.push((req, answer));
            return;
        }
        self.take_in(client, req, now, answer);
    }

    /// The client reads an answer.
    fn take_in(&mut self, client: usize, req: u64, now: Ms, answer: Answer) {
        self.history.push(LockEvent::Answered { at: now, client, req, answer: answer.clone() });
        let state = self.clients[client].state.clone();
        match state {
            State::Acquiring { req: r, lock, sent_at, ttl_ms } if r == req => match answer {
                Answer::Granted { token, .. } if now < sent_at + ttl_ms - drift_margin(ttl_ms) => {
                    let hold_until = if self.stopped { now } else { now + draw(&mut self.rng, self.config.hold_ms) };
                    let held =
                        Held { lock, token, lease_start: sent_at, ttl_ms, hold_until, next_write: now, renewing: None };
                    if self.rng.random_range(0..100) < self.config.pause_percent {
                        self.clients[client].pause = Some(draw(&mut self.rng, self.config.pause_past_lease_ms));
                    }
                    self.clients[client].state = State::Holding(held);
                }
                Answer::Granted { token, .. } => {
                    // Granted too late to use: give it back.
                    self.send(client, now, lock, Call::Release { token });
                    self.back_off(client, now);
                }
                _ => self.back_off(client, now),
            },
            State::Holding(mut held) if held.renewing.is_some_and(|(r, _)| r == req) => {
                let (_, sent_at) = held.renewing.take().expect("checked");
                match answer {
                    Answer::Granted { .. } if now < held.lease_end() => {
                        held.lease_start = sent_at;
                        self.clients[client].state = State::Holding(held);
                    }
                    _ => self.back_off(client, now),
                }
            }
            _ => {}
        }
    }

    fn back_off(&mut self, client: usize, now: Ms) {
        let wake = now + draw(&mut self.rng, self.config.retry_ms);
        self.clients[client].state = State::Idle { wake };
    }

    fn send(&mut self, client: usize, now: Ms, lock: String, call: Call) -> u64 {
        let req = self.next_req;
        self.next_req += 1;
        let c = &self.clients[client];
        let (name, owner) = (lock.clone(), c.name.clone());
        let op = match call {
            Call::Acquire { ttl_ms } => LockOp::Acquire { name, owner, token: 0, ttl_ms },
            Call::Renew { token, ttl_ms } => LockOp::Renew { name, owner, token, ttl_ms },
            Call::Release { token } => LockOp::Release { name, owner, token },
        };
        self.ready.push_back(LockCall { client, req, node: c.node, cmd: Command::Lock(op) });
        self.outstanding.insert(req, Outstanding { client, deadline: now + self.config.call_timeout_ms });
        self.history.push(LockEvent::Sent { at: now, client, req, node: c.node, lock, call });
        req
    }

    fn write(&mut self, client: usize, now: Ms, lock: &str, token: u64) {
        let accepted = self.resources.entry(lock.to_string()).or_default().write(token);
        self.history.push(LockEvent::Write { at: now, client, lock: lock.to_string(), token, accepted });
    }

    fn advance(&mut self, now: Ms) {
        while let Some(&(at, client, past_ms)) = self.config.pauses.get(self.pauses_armed) {
            if at > now {
                break;
            }
            self.pause_next_write(client, past_ms);
            self.pauses_armed += 1;
        }
        let due: Vec<(u64, usize)> =
            self.outstanding.iter().filter(|(_, o)| o.deadline <= now).map(|(r, o)| (*r, o.client)).collect();
        for (req, client) in due {
            self.answer(client, req, now, Answer::TimedOut);
        }
        for client in 0..self.clients.len() {
            // Each step moves the client's wake-up forward or changes its state; the bound is a guard.
            for _ in 0..16 {
                if !self.step(client, now) {
                    break;
                }
            }
        }
    }

    /// One due action of `client`; false when nothing is due.
    fn step(&mut self, client: usize, now: Ms) -> bool {
        let state = self.clients[client].state.clone();
        match state {
            State::Idle { wake } if wake <= now && !self.stopped => {
                let lock = format!("lock{}", self.rng.random_range(0..self.config.locks.max(1)));
                let ttl_ms = draw(&mut self.rng, self.config.ttl_ms);
                let req = self.send(client, now, lock.clone(), Call::Acquire { ttl_ms });
                self.clients[client].state = State::Acquiring { req, lock, sent_at: now, ttl_ms };
                true
            }
            State::Holding(held) => self.step_holding(client, now, held),
            State::Paused { until, held } if until <= now => {
                self.write(client, now, &held.lock, held.token);
                self.clients[client].state = State::Holding(held);
                for (req, answer) in std::mem::take(&mut self.clients[client].inbox) {
                    self.take_in(client, req, now, answer);
                }
                true
            }
            _ => false,
        }
    }

    fn step_holding(&mut self, client: usize, now: Ms, mut held: Held) -> bool {
        if held.lease_end() <= now {
            self.back_off(client, now);
        } else if held.hold_until <= now {
            self.send(client, now, held.lock.clone(), Call::Release { token: held.token });
            let wake = now + draw(&mut self.rng, self.config.think_ms);
            self.clients[client].state = State::Idle { wake };
        } else if held.renewing.is_none() && held.renew_at() <= now {
            let call = Call::Renew { token: held.token, ttl_ms: held.ttl_ms };
            let req = self.send(client, now, held.lock.clone(), call);
            held.renewing = Some((req, now));
            self.clients[client].state = State::Holding(held);
        } else if held.next_write <= now {
            held.next_write = now + self.config.write_every_ms;
            if now < held.safe_end() {
                if let Some(past) = self.clients[client].pause.take() {
                    let until = held.lease_end() + past;
                    self.history.push(LockEvent::Paused { at: now, client, until });
                    self.clients[client].state = State::Paused { until, held };
                    return true;
                }
                self.write(client, now, &held.lock, held.token);
            }
            self.clients[client].state = State::Holding(held);
        } else {
            return false;
        }
        true
    }
}
