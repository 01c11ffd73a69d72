//! The workload: clients that send SET/GET/DEL/EXPIRE (and, in the full mix, INCRBY and APPEND) to random nodes
//! at random consistency levels, and the history of every call (its types, `Op` and the rest, are in `history`).
//!
//! Keys come from a small keyspace so operations collide; every SET writes a value unique in the run, so a read
//! or a replica's copy names the write it came from. Two mixes (`Mix`): `Classic`, the workload the recorded
//! regression seeds were found with (its random draws are kept exactly, so they replay byte for byte), and
//! `Full` (the sweep's default), which adds, on keys of their own: large values (`BIG_VALUE_BYTES_MIN` to
//! `BIG_VALUE_BYTES_MAX`) on the big register keys, counters (INCRBY) and append logs (APPEND of a unique token)
//! for the read-modify-write checkers, and bursts of SETs of many keys with one short TTL (mass expiry). The
//! engine runs the full mix's nodes under a `maxmemory` its big values exceed, so they evict. Each client is sequential: it waits for the answer to its
//! call (or gives up after a timeout) before it thinks and calls again, so the real-time order of one client's
//! calls is known. A call is recorded when issued; its node's incarnation and clock are filled in when the node
//! takes it, its outcome when the answer arrives (possibly during a later input: replies are asynchronous).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use shoal::core::replication::{Consistency, Levels};

use crate::event::Ms;

mod history;
pub use history::{big_value, value_number, Op, OpKind, Outcome};

/// Smallest large value of the full mix's big register keys.
pub const BIG_VALUE_BYTES_MIN: u32 = 32 * 1024;
/// Largest value of the full mix (3 MB: under every `maxmemory` the engine draws, so each fits alone).
pub const BIG_VALUE_BYTES_MAX: u32 = 3_000_000;

/// Which workload the clients run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mix {
    /// SET/GET/DEL/EXPIRE of small values on 32 keys, no memory limit: the workload the recorded seeds found
    /// their bugs with (a seed replays its run byte for byte).
    Classic,
    /// The classic calls plus large values, INCRBY counters, APPEND logs and mass-expiry bursts, on nodes with a
    /// `maxmemory` the working set exceeds.
    #[default]
    Full,
}

impl Mix {
    /// The flag's name of the mix.
    pub fn name(self) -> &'static str {
        match self {
            Mix::Classic => "classic",
            Mix::Full => "full",
        }
    }
}

impl std::str::FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Mix, String> {
        match s {
            "classic" => Ok(Mix::Classic),
            "full" => Ok(Mix::Full),
            other => Err(format!("unknown workload `{other}` (classic or full)")),
        }
    }
}

/// What a key is for in the full mix (every key is a register in the classic one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// SET/GET/DEL/EXPIRE of unique values (large ones on the big keys).
    Register,
    /// INCRBY, GET and a rare DEL.
    Counter,
    /// APPEND of unique tokens, GET and a rare DEL.
    Append,
    /// SETs with one shared short TTL, in bursts.
    Burst,
}

/// The full mix's keyspace: registers `0..REGISTERS` (the last `BIG_KEYS` of them big), then counters, append
/// logs and burst keys.
pub mod keys {
    /// Register keys (the classic mix has these alone).
    pub const REGISTERS: u8 = 40;
    /// The last register keys, whose SETs are mostly large values.
    pub const BIG_KEYS: u8 = 16;
    /// Counter keys.
    pub const COUNTERS: u8 = 8;
    /// Append-log keys.
    pub const APPENDS: u8 = 8;
    /// Keys of a mass-expiry burst (one SET each, all with the same TTL).
    pub const BURST: u8 = 160;
    /// All keys of the full mix.
    pub const ALL: u8 = REGISTERS + COUNTERS + APPENDS + BURST;
}

/// Workload settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadConfig {
    /// Which calls the clients make.
    pub mix: Mix,
    /// Sequential clients (the full mix also has one burst client per burst key, numbered after them).
    pub clients: u32,
    /// Keys `0..keys`.
    pub keys: u8,
    /// Calls per second over all clients (each client waits for its answer, then thinks).
    pub ops_per_s: u64,
    /// A client gives up on a call after this long (outcome unknown) and reconnects.
    pub timeout_ms: Ms,
}

impl WorkloadConfig {
    /// The classic mix for `n` nodes.
    pub fn for_nodes(n: usize) -> WorkloadConfig {
        WorkloadConfig {
            mix: Mix::Classic,
            clients: 8,
            keys: 32,
            ops_per_s: (20 * n as u64).min(400),
            timeout_ms: 3_000,
        }
    }

    /// `mix` for `n` nodes.
    pub fn with_mix(n: usize, mix: Mix) -> WorkloadConfig {
        match mix {
            Mix::Classic => WorkloadConfig::for_nodes(n),
            Mix::Full => WorkloadConfig { mix, keys: keys::ALL, ..WorkloadConfig::for_nodes(n) },
        }
    }

    /// What key `k` is for.
    pub fn role(&self, k: u8) -> Role {
        role(self.mix, k)
    }

    /// The burst clients (one per burst key, none in the classic mix).
    pub fn burst_clients(&self) -> std::ops::Range<u32> {
        match self.mix {
            Mix::Classic => self.clients..self.clients,
            Mix::Full => self.clients..self.clients + u32::from(keys::BURST),
        }
    }
}

/// What key `k` is for under `mix`.
pub fn role(mix: Mix, k: u8) -> Role {
    use keys::*;
    match (mix, k) {
        (Mix::Classic, _) => Role::Register,
        (Mix::Full, k) if k < REGISTERS => Role::Register,
        (Mix::Full, k) if k < REGISTERS + COUNTERS => Role::Counter,
        (Mix::Full, k) if k < REGISTERS + COUNTERS + APPENDS => Role::Append,
        (Mix::Full, _) => Role::Burst,
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
            clients: (0..config.burst_clients().end)
                .map(|c| ClientState { waiting: None, conn: u64::from(c) << 32 })
                .collect(),
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
        let kind = match self.config.mix {
            Mix::Classic => {
                let key = self.rng.random_range(0..self.config.keys);
                self.register_call(key, false)
            }
            Mix::Full => self.full_call(),
        };
        self.record(client, now, n, kind)
    }

    /// A classic call on register `key` (`big`: its SETs are mostly large values).
    fn register_call(&mut self, key: u8, big: bool) -> OpKind {
        match self.rng.random_range(0..100) {
            0..40 => {
                self.next_value += 1;
                let ttl_ms = match self.rng.random_range(0..8) {
                    0 => Some(self.rng.random_range(50..1_000)),
                    1 => Some(self.rng.random_range(1_000..10_000)),
                    _ => None,
                };
                let size = if big && self.rng.random_range(0..5) > 0 { self.big_size() } else { 0 };
                OpKind::Set { key, value: self.next_value, ttl_ms, size }
            }
            40..80 => OpKind::Get { key },
            80..92 => OpKind::Del { key },
            _ => OpKind::Expire { key, ttl_ms: self.rng.random_range(50..5_000) },
        }
    }

    /// A large value's size, log-uniform between the bounds.
    fn big_size(&mut self) -> u32 {
        let (lo, hi) = (f64::from(BIG_VALUE_BYTES_MIN).ln(), f64::from(BIG_VALUE_BYTES_MAX).ln());
        let size = self.rng.random_range(lo..hi).exp() as u32;
        size.clamp(BIG_VALUE_BYTES_MIN, BIG_VALUE_BYTES_MAX)
    }

    /// A call of the full mix: small registers 55%, big registers 6%, counters 24%, append logs 15%.
    fn full_call(&mut self) -> OpKind {
        use keys::*;
        let small = REGISTERS - BIG_KEYS;
        match self.rng.random_range(0..100) {
            0..55 => {
                let key = self.rng.random_range(0..small);
                self.register_call(key, false)
            }
            55..61 => {
                let key = self.rng.random_range(small..REGISTERS);
                self.register_call(key, true)
            }
            61..85 => {
                let key = REGISTERS + self.rng.random_range(0..COUNTERS);
                match self.rng.random_range(0..100) {
                    0..60 => {
                        let delta = if self.rng.random_range(0..2) == 0 { 1 } else { self.rng.random_range(2..=10) };
                        OpKind::Incr { key, delta }
                    }
                    60..97 => OpKind::Get { key },
                    _ => OpKind::Del { key },
                }
            }
            _ => {
                let key = REGISTERS + COUNTERS + self.rng.random_range(0..APPENDS);
                match self.rng.random_range(0..100) {
                    0..60 => {
                        self.next_value += 1;
                        OpKind::Append { key, token: self.next_value }
                    }
                    60..97 => OpKind::Get { key },
                    _ => OpKind::Del { key },
                }
            }
        }
    }

    /// A mass-expiry burst: every burst key not still waiting gets a SET with the same `ttl_ms`, at once, each from
    /// its own burst client; returns the call numbers.
    pub fn burst(&mut self, now: Ms, n: usize, ttl_ms: u64) -> Vec<usize> {
        let first = keys::REGISTERS + keys::COUNTERS + keys::APPENDS;
        let mut ops = Vec::new();
        for (i, client) in self.config.burst_clients().enumerate() {
            if self.clients[client as usize].waiting.is_some() {
                continue;
            }
            self.next_value += 1;
            let kind = OpKind::Set { key: first + i as u8, value: self.next_value, ttl_ms: Some(ttl_ms), size: 0 };
            ops.push(self.record(client, now, n, kind));
        }
        ops
    }

    /// Whether `client` is a burst client (it calls only in bursts, it does not think and call again).
    pub fn is_burst_client(&self, client: u32) -> bool {
        self.config.burst_clients().contains(&client)
    }

    /// Draws the burst times and TTL of the run: two bursts between `from` and `to`.
    pub fn burst_plan(&mut self, from: Ms, to: Ms) -> Vec<(Ms, u64)> {
        if self.config.burst_clients().is_empty() || to <= from {
            return Vec::new();
        }
        (0..2).map(|_| (self.rng.random_range(from..to), self.rng.random_range(200..3_000))).collect()
    }

    /// Draws the levels and node of a call of `kind` by `client`, and records it.
    fn record(&mut self, client: u32, now: Ms, n: usize, kind: OpKind) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_mix_draws_as_it_always_did_and_the_full_mix_uses_every_role() {
        let mut classic = Workload::new(WorkloadConfig::for_nodes(5), 9);
        for _ in 0..500 {
            let op = classic.issue(0, 0, 5);
            let kind = &classic.history[op].kind;
            assert!(kind.key() < 32 && !matches!(kind, OpKind::Incr { .. } | OpKind::Append { .. }));
            assert!(!matches!(kind, OpKind::Set { size, .. } if *size > 0));
        }
        assert!(classic.burst_plan(0, 10_000).is_empty());
        let config = WorkloadConfig::with_mix(5, Mix::Full);
        let mut full = Workload::new(config, 9);
        let mut roles = std::collections::BTreeSet::new();
        for _ in 0..2_000 {
            let op = full.issue(0, 0, 5);
            roles.insert(format!("{:?}", config.role(full.history[op].kind.key())));
        }
        let ops = full.burst(0, 5, 500);
        assert_eq!(ops.len(), usize::from(keys::BURST));
        assert!(ops.iter().all(|&op| config.role(full.history[op].kind.key()) == Role::Burst));
        assert_eq!(roles.len(), 3, "registers, counters and append logs: {roles:?}");
    }
}
