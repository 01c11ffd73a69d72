//! Lock scenarios end to end: real `shoal::core::Node`s in a small deterministic driver of this file's own, with
//! the lock workload of `shoal_sim::locks` and its checkers. No faults, a partition (2|1 of 3 nodes and 2|3 of 5,
//! in available and strict lock mode) and a holder paused past its lease.
//!
//! The driver is deliberately minimal until the simulator engine routes peer messages: gossip and peer messages
//! arrive after 1 ms (gossip 1-3 ms), timers of a node due at one instant go together in sorted order, clients
//! sit next to their node (calls and replies take 1 ms and are never cut), and a partition drops gossip and peer
//! traffic between the two sides. `cargo test -p shoal-sim --test locks -- --nocapture` prints one summary line
//! per scenario; `... -- --ignored --nocapture lock_table` prints the markdown table for `docs/locks.md`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use shoal::core::locks::LockMode;
use shoal::core::membership::{GossipConfig, Identity, Membership};
use shoal::core::replication::{Levels, PeerMsg};
use shoal::core::reply::Reply;
use shoal::core::{Input, Node, NodeConfig, Outbox, Output, TimerId};
use shoal_sim::event::Ms;
use shoal_sim::locks::{
    lock_client, markdown_table, summarize, LockCall, LockConfig, LockEvent, LockKind, LockSummary, LockViolation,
    LockWorkload,
};

const EPOCH_MS: u64 = 1_700_000_000_000;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1)), 7946)
}

fn index(a: SocketAddr) -> usize {
    match a.ip() {
        IpAddr::V4(v4) => v4.octets()[3] as usize - 1,
        IpAddr::V6(_) => unreachable!("the driver uses IPv4 addresses"),
    }
}

enum Ev {
    Gossip { to: usize, from: usize, packet: Bytes },
    Peer { to: usize, from: usize, msg: PeerMsg },
    Timer { node: usize, generation: u64, timer: TimerId },
    Lost { to: usize, peer: usize },
    Call(LockCall),
    Reply { conn: u64, req: u64, reply: Reply },
}

struct Driver {
    now: Ms,
    /// Each node, or `None` while crashed.
    nodes: Vec<Option<Node>>,
    /// Bumped at each crash: timers of a dead incarnation are dropped.
    generation: Vec<u64>,
    mode: LockMode,
    queue: BTreeMap<(Ms, u64), Ev>,
    seq: u64,
    side: Vec<u8>,
    rng: StdRng,
    locks: Option<LockWorkload>,
    /// Each node's clock offset (a clock jump moves it).
    offset_ms: Vec<u64>,
    /// Replies to calls made with `call` (not the workload's).
    replies: BTreeMap<(u64, u64), Reply>,
}

impl Driver {
    /// `n` nodes joined through node 0, run until every node has all of them on its ring.
    fn new(n: usize, mode: LockMode, seed: u64) -> Driver {
        let mut d = Driver {
            now: 0,
            nodes: (0..n).map(|_| None).collect(),
            generation: vec![0; n],
            mode,
            queue: BTreeMap::new(),
            seq: 0,
            side: vec![0; n],
            rng: StdRng::seed_from_u64(seed),
            locks: None,
            offset_ms: vec![0; n],
            replies: BTreeMap::new(),
        };
        for i in 0..n {
            d.start(i);
        }
        while !d.nodes.iter().all(|node| node.as_ref().is_some_and(|node| node.ring_members() == n)) {
            assert!(d.now < 30_000, "the cluster formed within 30 s");
            d.step();
        }
        d
    }

    /// Boots node `i` (again, after a crash: empty, under a new incarnation), joining through node 0 (or 1).
    fn start(&mut self, i: usize) {
        let config = NodeConfig { name: format!("n{i}"), vnodes: 64, lock_mode: self.mode, ..NodeConfig::default() };
        let identity = Identity::new(addr(i), addr(i), config.name.clone(), EPOCH_MS + self.now);
        let membership = Membership::new(identity, GossipConfig::lan(), None, self.rng.random()).expect("valid config");
        let seeds = match (i, self.now) {
            (0, 0) => vec![],
            (0, _) => vec![addr(1)],
            _ => vec![addr(0)],
        };
        self.nodes[i] = Some(Node::clustered(config, self.rng.random(), membership, seeds));
        self.input(i, Input::Start);
    }

    /// Node `i`'s process dies: its memory (lock table included) is gone.
    fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
        self.generation[i] += 1;
    }

    fn push(&mut self, at: Ms, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn input(&mut self, i: usize, input: Input) {
        let mut out = Outbox::new();
        let Some(node) = self.nodes[i].as_mut() else { return };
        node.handle(EPOCH_MS + self.now + self.offset_ms[i], input, &mut out);
        let generation = self.generation[i];
        for o in out.drain() {
            match o {
                Output::Reply { conn, req, reply } => self.push(self.now + 1, Ev::Reply { conn, req, reply }),
                Output::Schedule { after_ms, timer } => {
                    self.push(self.now + after_ms, Ev::Timer { node: i, generation, timer })
                }
                Output::SendGossip { to, packet } => {
                    let delay = self.rng.random_range(1..=3);
                    self.push(self.now + delay, Ev::Gossip { to: index(to), from: i, packet });
                }
                Output::SendPeer { to, msg } => self.push(self.now + 1, Ev::Peer { to: index(to), from: i, msg }),
                Output::Member(_) => {}
            }
        }
    }

    /// Runs the earliest event.
    fn step(&mut self) {
        let Some(((at, _), ev)) = self.queue.pop_first() else { return };
        self.now = at;
        match ev {
            Ev::Gossip { to, from, packet } if self.side[to] == self.side[from] => {
                self.input(to, Input::Gossip { from: addr(from), packet })
            }
            Ev::Peer { to, from, .. } if self.side[to] == self.side[from] && self.nodes[to].is_none() => {
                // The connection is refused: the sender learns it at once.
                self.push(at + 1, Ev::Lost { to: from, peer: to });
            }
            Ev::Peer { to, from, msg } if self.side[to] == self.side[from] => {
                self.input(to, Input::Peer { from: addr(from), msg })
            }
            Ev::Lost { to, peer } => self.input(to, Input::PeerLost { peer: addr(peer) }),
            Ev::Gossip { .. } | Ev::Peer { .. } => {}
            Ev::Timer { node, generation, timer } => {
                let same: Vec<(Ms, u64)> = self
                    .queue
                    .range((at, 0)..=(at, u64::MAX))
                    .filter(|(_, e)| matches!(e, Ev::Timer { node: n, .. } if *n == node))
                    .map(|(k, _)| *k)
                    .collect();
                let mut due = vec![(timer, generation)];
                for k in same {
                    if let Some(Ev::Timer { timer, generation, .. }) = self.queue.remove(&k) {
                        due.push((timer, generation));
                    }
                }
                due.sort();
                for (timer, generation) in due {
                    if generation == self.generation[node] {
                        self.input(node, Input::Timer(timer));
                    }
                }
            }
            Ev::Call(call) if self.nodes[call.node].is_none() => {
                self.locks.as_mut().expect("only lock clients call").on_refused(call.client, call.req, at);
                self.drain_calls();
            }
            Ev::Call(call) => {
                let (conn, req) = (call.conn(), call.req);
                let input = Input::Client { conn, req, cmd: call.cmd, levels: Levels::default() };
                self.input(call.node, input);
            }
            Ev::Reply { conn, req, reply } => match (lock_client(conn), self.locks.as_mut()) {
                (Some(client), Some(locks)) => {
                    locks.on_reply(client, req, at, &reply);
                    self.drain_calls();
                }
                _ => {
                    self.replies.insert((conn, req), reply);
                }
            },
        }
    }

    fn drain_calls(&mut self) {
        let now = self.now;
        while let Some(call) = self.locks.as_mut().and_then(|l| l.next_call(now)) {
            self.push(now + 1, Ev::Call(call));
        }
    }

    /// Sends one command to `node` outside the workload and runs until it is answered (at most 10 s).
    fn call(&mut self, node: usize, cmd: shoal::core::command::Command) -> Reply {
        let req = self.seq;
        self.input(node, Input::Client { conn: 1, req, cmd, levels: Levels::default() });
        let end = self.now + 10_000;
        while !self.replies.contains_key(&(1, req)) && self.now < end && !self.queue.is_empty() {
            self.step();
        }
        self.replies.remove(&(1, req)).expect("answered within 10 s")
    }

    /// Runs events and the workload's wake-ups until `end`.
    fn run_until(&mut self, end: Ms) {
        let mut idle_wakes = 0;
        loop {
            let event = self.queue.first_key_value().map(|((at, _), _)| *at);
            let wake = self.locks.as_ref().and_then(|l| l.next_wake()).map(|w| w.max(self.now));
            match (event, wake) {
                (_, Some(w)) if w <= end && event.is_none_or(|e| w <= e) => {
                    idle_wakes = if w == self.now { idle_wakes + 1 } else { 0 };
                    assert!(idle_wakes < 1_000, "the workload makes progress at {w}");
                    self.now = w;
                    self.drain_calls();
                }
                (Some(e), _) if e <= end => self.step(),
                _ => break,
            }
        }
        self.now = end;
    }
}

/// One scenario: cluster size, lock mode, the workload, and its faults.
struct Scenario {
    name: &'static str,
    nodes: usize,
    mode: LockMode,
    seed: u64,
    duration_ms: Ms,
    /// Each (start, end, side of each node), relative to the workload's start.
    partitions: Vec<(Ms, Ms, Vec<u8>)>,
    /// (time, client, how long past its lease): arm a pause of that client's next write.
    pause: Option<(Ms, usize, Ms)>,
    pause_percent: u32,
    /// (time, forward jump of each node's clock), relative to the workload's start.
    jump: Option<(Ms, Vec<u64>)>,
    /// (time, nodes, down for): these nodes crash together and restart empty, relative to the workload's start.
    crash: Option<(Ms, Vec<usize>, Ms)>,
}

impl Scenario {
    fn new(name: &'static str, nodes: usize, seed: u64) -> Scenario {
        Scenario {
            name,
            nodes,
            mode: LockMode::Available,
            seed,
            duration_ms: 60_000,
            partitions: Vec::new(),
            pause: None,
            pause_percent: 0,
            jump: None,
            crash: None,
        }
    }

    /// Whether the run has faults on nodes or links (client pauses do not count: holds must still not overlap).
    fn faulty(&self) -> bool {
        !self.partitions.is_empty() || self.jump.is_some() || self.crash.is_some()
    }
}

/// A change to the driver at a virtual time.
type Step = (Ms, Box<dyn Fn(&mut Driver)>);

struct Outcome {
    /// When the run ended.
    end: Ms,
    summary: LockSummary,
    violations: Vec<LockViolation>,
    history: Vec<LockEvent>,
}

fn run(s: &Scenario) -> Outcome {
    let mut d = Driver::new(s.nodes, s.mode, s.seed);
    let start = d.now + 1_000;
    let config =
        LockConfig { clients: s.nodes, start_ms: start, pause_percent: s.pause_percent, ..LockConfig::default() };
    d.locks = Some(LockWorkload::new(config, s.nodes, s.seed));
    let mut steps: Vec<Step> = Vec::new();
    for (from, to, sides) in s.partitions.clone() {
        steps.push((start + from, Box::new(move |d: &mut Driver| d.side = sides.clone())));
        let n = s.nodes;
        steps.push((start + to, Box::new(move |d: &mut Driver| d.side = vec![0; n])));
    }
    if let Some((at, client, past_ms)) = s.pause {
        let arm = move |d: &mut Driver| d.locks.as_mut().expect("running").pause_next_write(client, past_ms);
        steps.push((start + at, Box::new(arm)));
    }
    if let Some((at, deltas)) = s.jump.clone() {
        let jump = move |d: &mut Driver| d.offset_ms.iter_mut().zip(&deltas).for_each(|(o, j)| *o += j);
        steps.push((start + at, Box::new(jump)));
    }
    if let Some((at, nodes, down_ms)) = s.crash.clone() {
        let crashed = nodes.clone();
        steps.push((start + at, Box::new(move |d: &mut Driver| crashed.iter().for_each(|&i| d.crash(i)))));
        steps.push((start + at + down_ms, Box::new(move |d: &mut Driver| nodes.iter().for_each(|&i| d.start(i)))));
    }
    steps.sort_by_key(|(at, _)| *at);
    for (at, f) in steps {
        d.run_until(at);
        f(&mut d);
    }
    let end = start + s.duration_ms;
    d.run_until(end);
    let locks = d.locks.take().expect("running");
    let faults = s.faulty();
    let (summary, violations) = summarize(s.name, locks.history(), end, faults);
    println!("{}", summary.line());
    Outcome { end, summary, violations, history: locks.history().to_vec() }
}

fn assert_clean(o: &Outcome) {
    let listed: Vec<String> = o.violations.iter().map(|v| v.to_string()).collect();
    assert!(o.violations.is_empty(), "{}: {}", o.summary.scenario, listed.join("\n"));
    assert!(o.summary.grants > 0 && o.summary.writes_accepted > 0, "{}", o.summary.line());
}

fn calm(seed: u64) -> Scenario {
    Scenario::new("no faults (3 nodes)", 3, seed)
}

fn split(name: &'static str, nodes: usize, mode: LockMode, sides: Vec<u8>) -> Scenario {
    let mut s = Scenario::new(name, nodes, 1);
    s.mode = mode;
    s.partitions = vec![(15_000, 35_000, sides)];
    s
}

/// Partitions of 3 s every 8 s, shorter than failure detection takes.
fn flapping(name: &'static str, mode: LockMode) -> Scenario {
    let mut s = Scenario::new(name, 3, 1);
    s.mode = mode;
    s.partitions = (0..5).map(|k| (15_000 + k * 8_000, 18_000 + k * 8_000, vec![0, 0, 1])).collect();
    s
}

fn scenarios() -> Vec<Scenario> {
    let mut paused = Scenario::new("one holder paused past its lease (3 nodes)", 3, 1);
    paused.pause = Some((10_000, 0, 1_000));
    let mut pauses = Scenario::new("a pause in 1 of 4 holds (3 nodes)", 3, 2);
    pauses.pause_percent = 25;
    let mut jumped = Scenario::new("clocks of 2 of 3 nodes jump 2 s ahead", 3, 1);
    jumped.jump = Some((15_000, vec![0, 2_000, 2_000]));
    let mut one_crash = Scenario::new("1 of 3 nodes crashes, back empty after 5 s", 3, 1);
    one_crash.crash = Some((15_000, vec![2], 5_000));
    let mut two_crash = Scenario::new("2 of 3 nodes crash, back empty after 0.5 s", 3, 1);
    two_crash.crash = Some((15_000, vec![1, 2], 500));
    vec![
        calm(1),
        split("partition 2 vs 1 (3 nodes), available", 3, LockMode::Available, vec![0, 0, 1]),
        split("partition 2 vs 1 (3 nodes), strict", 3, LockMode::Strict, vec![0, 0, 1]),
        split("partition 2 vs 3 (5 nodes), available", 5, LockMode::Available, vec![0, 0, 1, 1, 1]),
        split("partition 2 vs 3 (5 nodes), strict", 5, LockMode::Strict, vec![0, 0, 1, 1, 1]),
        flapping("5 partitions 2 vs 1 of 3 s (3 nodes), available", LockMode::Available),
        flapping("5 partitions 2 vs 1 of 3 s (3 nodes), strict", LockMode::Strict),
        paused,
        pauses,
        jumped,
        one_crash,
        two_crash,
    ]
}

#[test]
fn without_faults_no_two_clients_hold_a_lock_at_once() {
    for seed in [1, 2] {
        let o = run(&calm(seed));
        assert_clean(&o);
        assert_eq!((o.summary.double_holder_intervals, o.summary.stale_writes), (0, 0), "{}", o.summary.line());
    }
}

#[test]
fn a_run_replays_exactly() {
    let mut s = calm(3);
    s.duration_ms = 10_000;
    assert_eq!(run(&s).history, run(&s).history);
}

#[test]
fn under_partitions_clock_jumps_and_crashes_double_holders_are_counted_and_fencing_holds() {
    for s in scenarios().into_iter().filter(Scenario::faulty) {
        let o = run(&s);
        assert_clean(&o);
        // Without pauses every write is made inside a hold: the clients and the checker agree on holding.
        assert_eq!(o.summary.stale_writes, 0, "{}", o.summary.line());
    }
}

/// The exclusivity checker is not blind on real histories: judged as if it had no faults, a partitioned run is
/// flagged.
#[test]
fn the_no_fault_checker_flags_the_double_holders_of_a_real_partitioned_run() {
    let o = run(&split("partition 2 vs 1 (3 nodes), available", 3, LockMode::Available, vec![0, 0, 1]));
    let (summary, violations) = summarize("judged without faults", &o.history, o.end, false);
    assert!(summary.double_holder_intervals > 0);
    assert_eq!(violations.len() as u64, summary.double_holder_intervals, "{violations:?}");
    assert!(violations.iter().all(|v| v.kind == LockKind::DoubleHolder));
}

#[test]
fn a_holder_paused_past_its_lease_is_fenced_off() {
    let s = scenarios().into_iter().find(|s| s.pause.is_some()).expect("listed");
    let o = run(&s);
    assert_clean(&o);
    assert_eq!(o.summary.double_holder_intervals, 0, "{}", o.summary.line());
    assert!(o.summary.stale_writes >= 1 && o.summary.stale_rejected >= 1, "{}", o.summary.line());
}

/// Seeds summed up in each row of the docs table.
const TABLE_SEEDS: u64 = 10;

/// The table for `docs/locks.md`: every scenario, over seeds 1..=TABLE_SEEDS.
#[test]
#[ignore = "prints the docs table; run with --ignored --nocapture"]
fn lock_table() {
    let rows: Vec<LockSummary> = scenarios()
        .iter_mut()
        .map(|s| {
            let mut row: Option<LockSummary> = None;
            for seed in 1..=TABLE_SEEDS {
                s.seed = seed;
                let o = run(s);
                assert_clean(&o);
                match row.as_mut() {
                    Some(row) => row.absorb(&o.summary),
                    None => row = Some(o.summary),
                }
            }
            row.expect("at least one seed")
        })
        .collect();
    println!("{}", markdown_table(&rows));
}

/// Regression (found by these checkers): strict mode granted on the minority side once failure detection had
/// shrunk its ring, because a node cut off alone counted itself "a majority of 1". A majority is now of the lock's
/// configured replicas; expected: NOMAJORITY, as before detection.
#[test]
fn strict_mode_refuses_on_a_cut_off_node_after_failure_detection() {
    let mut d = Driver::new(3, LockMode::Strict, 1);
    d.side = vec![0, 0, 1];
    let end = d.now + 15_000;
    d.run_until(end);
    assert_eq!(d.nodes[2].as_ref().map(Node::ring_members), Some(1), "n2 has declared the others down");
    let op =
        shoal::core::locks::LockOp::Acquire { name: "job".into(), owner: "lonely".into(), token: 0, ttl_ms: 5_000 };
    let reply = d.call(2, shoal::core::command::Command::Lock(op));
    assert!(matches!(&reply, Reply::Error(e) if e.starts_with("NOMAJORITY")), "got {reply:?}");
}

/// Regression (found by these checkers): in strict mode two clients held the lock at once under a partition (the
/// minority side granted "majority" grants of its shrunken ring). With a majority of N required, a 2 vs 1 split
/// without clock faults has no double holder.
#[test]
fn strict_mode_has_no_double_holder_under_a_partition() {
    let o = run(&split("partition 2 vs 1 (3 nodes), strict", 3, LockMode::Strict, vec![0, 0, 1]));
    assert_eq!(o.summary.double_holder_intervals, 0, "{}", o.summary.line());
}

/// Regression (found by these checkers): with 5 nodes a side of a partition whose live ring reshuffled counted a
/// majority among nodes that were not the lock's replicas. Lock replicas now come from the ring of every known
/// member, so strict mode has no double holder under a 2 vs 3 split either.
#[test]
fn strict_mode_has_no_double_holder_under_a_five_node_partition() {
    let o = run(&split("partition 2 vs 3 (5 nodes), strict", 5, LockMode::Strict, vec![0, 0, 1, 1, 1]));
    assert_eq!(o.summary.double_holder_intervals, 0, "{}", o.summary.line());
}
