//! The workload: clients that send SET/GET/DEL/EXPIRE to random nodes at random consistency levels, and the
//! history of every call.
//!
//! Keys come from a small keyspace so operations collide; every SET writes a value unique in the run, so a read
//! or a replica's copy names the write it came from. Each client is sequential: it waits for the answer to its
//! call (or gives up after a timeout) before it thinks and calls again, so the real-time order of one client's
//! calls is known. A call is recorded when issued; its node's incarnation and clock are filled in when the node
//! takes it, its outcome when the answer arrives (possibly during a later input: replies are asynchronous).

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use shoal::core::command::{Command, ExpireAt, ExpireCond, SetCond, SetTtl};
use shoal::core::replication::{Consistency, Levels};
use shoal::core::reply::Reply;
use shoal::core::Millis;

use crate::event::Ms;

/// What a client asked, in the checker's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    Set { key: u8, value: u64, ttl_ms: Option<u64> },
    Get { key: u8 },
    Del { key: u8 },
    Expire { key: u8, ttl_ms: u64 },
}

impl OpKind {
    /// Whether the call may change its key.
    pub fn is_write(&self) -> bool {
        !matches!(self, OpKind::Get { .. })
    }

    pub fn key(&self) -> u8 {
        match self {
            OpKind::Set { key, .. } | OpKind::Get { key } | OpKind::Del { key } | OpKind::Expire { key, .. } => *key,
        }
    }

    /// The core command that carries out this call.
    pub fn command(&self) -> Command {
        let key = Bytes::from(format!("k{}", self.key()));
        match self {
            OpKind::Set { value, ttl_ms, .. } => Command::Set {
                key,
                value: Bytes::from(value.to_string()),
                cond: SetCond::Always,
                ttl: ttl_ms.map_or(SetTtl::Clear, |ms| SetTtl::At(ExpireAt::InMs(ms as i64))),
                get: false,
                reply_int: false,
            },
            OpKind::Get { .. } => Command::Get { key },
            OpKind::Del { .. } => Command::Del { keys: vec![key] },
            OpKind::Expire { ttl_ms, .. } => {
                Command::Expire { key, at: ExpireAt::InMs(*ttl_ms as i64), cond: ExpireCond::Always }
            }
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The node was down: the connection was refused, the call did not happen.
    Refused,
    /// The node answered.
    Replied(Reply),
    /// No answer (timeout, connection reset, end of the run): the call may or may not have taken effect.
    Unknown,
}

/// One call and its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub client: u32,
    /// The client's connection the call went out on (a client reconnects after a timeout or a reset).
    pub conn: u64,
    pub node: usize,
    /// The node's incarnation number in the simulator (bumped at every restart), when it executed the call.
    pub generation: u64,
    pub kind: OpKind,
    /// The consistency levels the call ran at.
    pub levels: Levels,
    /// Virtual time of the call and of its execution (later if the node was paused).
    pub invoked_at: Ms,
    /// Whether the node took the call in (it may still have no effect).
    pub executed: bool,
    pub executed_at: Ms,
    /// The node's clock when it executed the call, and the largest value that clock had shown by then.
    pub node_now: Millis,
    pub node_clock_max: Millis,
    /// When the client heard the outcome (`None`: never, the outcome is unknown).
    pub completed_at: Option<Ms>,
    pub outcome: Outcome,
}

impl Op {
    /// Whether the node acknowledged the call (any reply but an error).
    pub fn acked(&self) -> bool {
        matches!(&self.outcome, Outcome::Replied(r) if !matches!(r, Reply::Error(_)))
    }

    /// When the call is known to have finished: its acknowledgement. Calls that failed, timed out or were never
    /// answered may still take effect at any later time, so they have no end.
    pub fn done_at(&self) -> Option<Ms> {
        if self.acked() {
            self.completed_at
        } else {
            None
        }
    }

    /// Whether the call may have changed the key (acknowledged or unknown; refused calls did nothing).
    pub fn may_have_written(&self) -> bool {
        self.kind.is_write() && self.outcome != Outcome::Refused
    }

    /// Whether this call finished before `other` was invoked (real-time order).
    pub fn precedes(&self, other: &Op) -> bool {
        self.done_at().is_some_and(|t| t < other.invoked_at)
    }
}

/// Workload settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadConfig {
    pub clients: u32,
    pub keys: u8,
    /// Calls per second over all clients (each client waits for its answer, then thinks).
    pub ops_per_s: u64,
    /// A client gives up on a call after this long (outcome unknown) and reconnects.
    pub timeout_ms: Ms,
}

impl WorkloadConfig {
    pub fn for_nodes(n: usize) -> WorkloadConfig {
        WorkloadConfig { clients: 8, keys: 32, ops_per_s: (20 * n as u64).min(400), timeout_ms: 3_000 }
    }
}

/// One client: at most one call in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientState {
    /// The call it waits for.
    pub waiting: Option<usize>,
    /// Its current connection number.
    pub conn: u64,
}

/// The clients: draw calls, and keep every call's record (indexed by call number).
pub struct Workload {
    pub config: WorkloadConfig,
    rng: StdRng,
    next_value: u64,
    pub clients: Vec<ClientState>,
    pub history: Vec<Op>,
}

const LEVELS: [Consistency; 3] = [Consistency::One, Consistency::Quorum, Consistency::All];

impl Workload {
    pub fn new(config: WorkloadConfig, seed: u64) -> Workload {
        Workload {
            config,
            rng: StdRng::seed_from_u64(seed),
            next_value: 0,
            clients: (0..config.clients).map(|c| ClientState { waiting: None, conn: u64::from(c) << 32 }).collect(),
            history: Vec::new(),
        }
    }

    /// A client's think time before its next call.
    pub fn think_ms(&mut self) -> Ms {
        let mean = (1_000 * u64::from(self.config.clients) / self.config.ops_per_s.max(1)).max(1);
        self.rng.random_range(1..=2 * mean)
    }

    /// Draws the next call of `client` to one of `n` nodes; returns its call number.
    pub fn issue(&mut self, client: u32, now: Ms, n: usize) -> usize {
        let key = self.rng.random_range(0..self.config.keys);
        let kind = match self.rng.random_range(0..100) {
            0..40 => {
                self.next_value += 1;
                let ttl_ms = match self.rng.random_range(0..8) {
                    0 => Some(self.rng.random_range(50..1_000)),
                    1 => Some(self.rng.random_range(1_000..10_000)),
                    _ => None,
                };
                OpKind::Set { key, value: self.next_value, ttl_ms }
            }
            40..80 => OpKind::Get { key },
            80..92 => OpKind::Del { key },
            _ => OpKind::Expire { key, ttl_ms: self.rng.random_range(50..5_000) },
        };
        let read = LEVELS[self.rng.random_range(0..3)];
        let write = LEVELS[self.rng.random_range(0..3)];
        let node = self.rng.random_range(0..n);
        let state = &mut self.clients[client as usize];
        let op = self.history.len();
        state.waiting = Some(op);
        self.history.push(Op {
            client,
            conn: state.conn,
            node,
            generation: 0,
            kind,
            levels: Levels { read, write },
            invoked_at: now,
            executed: false,
            executed_at: 0,
            node_now: 0,
            node_clock_max: 0,
            completed_at: None,
            outcome: Outcome::Unknown,
        });
        op
    }

    /// Ends call `op` with `outcome` (ignored if it already ended, or if its client gave up on it); returns the
    /// client, now free for its next call.
    pub fn finish(&mut self, op: usize, now: Ms, outcome: Outcome) -> Option<u32> {
        let client = self.history[op].client;
        let state = &mut self.clients[client as usize];
        if state.waiting != Some(op) {
            return None;
        }
        state.waiting = None;
        if outcome == Outcome::Unknown {
            // The client drops the connection; whatever arrives on it later is not for it.
            state.conn += 1;
        } else {
            self.history[op].completed_at = Some(now);
        }
        self.history[op].outcome = outcome;
        Some(client)
    }

    /// The call a reply on (`conn`, `req`) answers, if a client still waits for it.
    pub fn waiting_for(&self, conn: u64, req: u64) -> Option<usize> {
        let op = usize::try_from(req).ok()?;
        let call = self.history.get(op)?;
        (call.conn == conn && self.clients[call.client as usize].waiting == Some(op)).then_some(op)
    }
}
