//! The workload: clients that send SET/GET/DEL/EXPIRE to random nodes, and the history of every call.
//!
//! Keys come from a small keyspace so operations collide; every SET writes a value unique in the run (its
//! operation number), so a read names the write it saw. A call is recorded when its node executes it, with the
//! node's incarnation (`generation`) and its clock then, which is what the data checker needs.

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use shoal::core::command::{Command, ExpireAt, ExpireCond, SetCond, SetTtl};
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
    /// The node was down: the connection was refused.
    Refused,
    /// The node answered.
    Replied(Reply),
}

/// One call and its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub client: u32,
    pub node: usize,
    /// The node's incarnation number in the simulator (bumped at every restart).
    pub generation: u64,
    pub kind: OpKind,
    /// Virtual time of the call and of its execution (later if the node was paused).
    pub invoked_at: Ms,
    pub executed_at: Ms,
    /// The node's clock when it executed the call, and the largest value that clock had shown by then.
    pub node_now: Millis,
    pub node_clock_max: Millis,
    pub outcome: Outcome,
}

/// A call on its way to a node.
#[derive(Debug, Clone)]
pub struct Pending {
    pub client: u32,
    pub node: usize,
    pub kind: OpKind,
    pub invoked_at: Ms,
}

/// Workload settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadConfig {
    pub clients: u32,
    pub keys: u8,
    pub ops_per_s: u64,
}

impl WorkloadConfig {
    pub fn for_nodes(n: usize) -> WorkloadConfig {
        WorkloadConfig { clients: 8, keys: 16, ops_per_s: (20 * n as u64).min(400) }
    }
}

/// The clients: draw calls, and keep every call's record.
pub struct Workload {
    pub config: WorkloadConfig,
    rng: StdRng,
    next_value: u64,
    pub pending: Vec<Option<Pending>>,
    pub history: Vec<Op>,
}

impl Workload {
    pub fn new(config: WorkloadConfig, seed: u64) -> Workload {
        Workload { config, rng: StdRng::seed_from_u64(seed), next_value: 0, pending: Vec::new(), history: Vec::new() }
    }

    /// Mean gap between calls.
    pub fn gap_ms(&mut self) -> Ms {
        let mean = (1_000 / self.config.ops_per_s.max(1)).max(1);
        self.rng.random_range(1..=2 * mean)
    }

    /// Draws the next call to one of `n` nodes; returns its pending index.
    pub fn issue(&mut self, now: Ms, n: usize) -> usize {
        let key = self.rng.random_range(0..self.config.keys);
        let kind = match self.rng.random_range(0..100) {
            0..40 => {
                self.next_value += 1;
                let ttl_ms = (self.rng.random_range(0..3) == 0).then(|| self.rng.random_range(50..5_000));
                OpKind::Set { key, value: self.next_value, ttl_ms }
            }
            40..80 => OpKind::Get { key },
            80..90 => OpKind::Del { key },
            _ => OpKind::Expire { key, ttl_ms: self.rng.random_range(50..5_000) },
        };
        let client = self.rng.random_range(0..self.config.clients);
        let node = self.rng.random_range(0..n);
        self.pending.push(Some(Pending { client, node, kind, invoked_at: now }));
        self.pending.len() - 1
    }
}
