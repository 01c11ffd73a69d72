//! Chaos scenarios with real `shoal` processes, each node in its own network namespace (`common::netns`), a
//! recorded workload through a real Redis client, and faults: `kill -9` and restart, SIGTERM rolling restarts
//! (waiting on `SHOAL.READY`, or not), SIGSTOP/SIGCONT pauses, symmetric, one-way and bridge partitions as
//! `nftables` rules inside the namespaces, and a skewed clock (`--debug-clock-offset-ms`).
//!
//! Every writer owns its keys and writes each one with a growing sequence number, so after the faults heal and
//! the replicas converge the history says exactly which acknowledged writes were lost: a key whose converged
//! value carries a lower sequence number than its last acknowledged write (or none at all). Each scenario prints
//! one row: acknowledged writes lost, convergence time after the heal, client errors during the fault, lock
//! double-holding, memory of each node.
//!
//! `cargo test --test chaos` runs the short version (a 2/3 split and a rolling restart that waits on readiness);
//! the full run is `cargo test --test chaos -- --ignored --nocapture` (docs/chaos.md). Both skip with
//! a message where network namespaces or nftables are not available (not root, no `nft`).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::netns::{self, Lab};
use common::procs::{field, pairs};
use redis::Value;

/// Nodes per cluster.
const NODES: usize = 5;
/// Node names, in node order.
const NAMES: [&str; NODES] = ["a", "b", "c", "d", "e"];
/// Longest wait for a cluster to form, a node to be ready, replicas to converge (a loaded 2-core machine).
const SETTLE: Duration = Duration::from_secs(90);

/// A cluster of real processes in a lab; the processes are killed (by PID) when it is dropped.
struct Cluster<'a> {
    lab: &'a Lab,
    secret: PathBuf,
    children: Vec<Option<Child>>,
    /// Extra flags per node.
    extra: Vec<Vec<String>>,
}

impl<'a> Cluster<'a> {
    /// Start every node (with `extra` flags per node) and wait until each sees all of them alive and is ready.
    fn start(lab: &'a Lab, extra: Vec<Vec<String>>) -> Cluster<'a> {
        let secret = lab.dir.join("cluster-secret");
        std::fs::write(&secret, "chaos-cluster-secret-0123456789").expect("secret written");
        let mut c = Cluster { lab, secret, children: (0..NODES).map(|_| None).collect(), extra };
        for i in 0..NODES {
            c.spawn(i);
        }
        for (i, name) in NAMES.iter().enumerate() {
            c.wait_ready(i).unwrap_or_else(|e| panic!("{name}: {e}\n{}", lab.log_tail(i, 20)));
        }
        c
    }

    fn bin() -> &'static Path {
        Path::new(env!("CARGO_BIN_EXE_shoal"))
    }

    /// Start node `i` (empty memory, a new incarnation).
    fn spawn(&mut self, i: usize) {
        let seeds: Vec<String> = (0..NODES).filter(|&j| j != i).map(|j| self.lab.cluster_addr(j).to_string()).collect();
        let mut args: Vec<String> = vec![
            "--name".into(),
            NAMES[i].into(),
            "--listen".into(),
            self.lab.client_addr(i).to_string(),
            "--cluster".into(),
            self.lab.cluster_addr(i).to_string(),
            "--seed".into(),
            seeds.join(","),
            "--cluster-secret-file".into(),
            self.secret.display().to_string(),
            "--anti-entropy-period-ms".into(),
            "1000".into(),
            "--request-timeout-ms".into(),
            "500".into(),
        ];
        args.extend(self.extra.get(i).cloned().unwrap_or_default());
        assert!(self.children[i].is_none(), "{} is already running", NAMES[i]);
        self.children[i] = Some(self.lab.spawn(i, Self::bin(), &args));
    }

    fn pid(&self, i: usize) -> u32 {
        self.children[i].as_ref().expect("running").id()
    }

    /// SIGKILL node `i`.
    fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM node `i` (it leaves gracefully) and wait for it to exit (SIGKILL after 10 s).
    fn term(&mut self, i: usize) {
        let Some(mut child) = self.children[i].take() else { return };
        netns::signal(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// A connection to node `i` with short timeouts.
    fn conn(&self, i: usize) -> Option<redis::Connection> {
        connect(self.lab.client_addr(i))
    }

    /// `SHOAL.READY` of node `i`: (ready, reason).
    fn ready(&self, i: usize) -> Option<(bool, String)> {
        let v: Value = redis::cmd("SHOAL.READY").query(&mut self.conn(i)?).ok()?;
        let p = pairs(v);
        let flag = p.iter().find(|(k, _)| common::procs::text(k).as_deref() == Some("ready")).map(|(_, v)| v.clone());
        Some((flag == Some(Value::Int(1)), field(&p, "reason")?))
    }

    /// Wait until node `i` sees every node alive and says it is ready; the time it took.
    fn wait_ready(&self, i: usize) -> Result<Duration, String> {
        let start = Instant::now();
        let mut last = String::from("unreachable");
        while start.elapsed() < SETTLE {
            let alive = self.conn(i).and_then(|mut c| members_alive(&mut c)).unwrap_or(0);
            match self.ready(i) {
                Some((true, _)) if alive == NODES => return Ok(start.elapsed()),
                Some((_, reason)) => last = format!("{reason}, {alive} alive"),
                None => {}
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("not ready after {SETTLE:?} ({last})"))
    }

    /// Wait until node `i` answers PING (the process is up, nothing more).
    fn wait_listening(&self, i: usize) {
        let start = Instant::now();
        while start.elapsed() < SETTLE {
            if self.conn(i).is_some_and(|mut c| redis::cmd("PING").query::<String>(&mut c).is_ok()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} does not answer PING", NAMES[i]);
    }

    /// Wait until every running node sees `alive` members alive.
    fn wait_alive(&self, running: &[usize], alive: usize) -> bool {
        common::eventually(SETTLE, || {
            running.iter().all(|&i| self.conn(i).and_then(|mut c| members_alive(&mut c)) == Some(alive))
        })
    }

    /// `used_memory` of each node (MB, one decimal), `-` for a node that does not answer.
    fn memory(&self) -> String {
        (0..NODES)
            .map(|i| {
                let info: Option<String> =
                    self.conn(i).and_then(|mut c| redis::cmd("INFO").arg("memory").query(&mut c).ok());
                let used = info.and_then(|t| {
                    t.lines().find_map(|l| l.strip_prefix("used_memory:")).and_then(|v| v.trim().parse::<u64>().ok())
                });
                used.map_or("-".to_string(), |b| format!("{:.1}", b as f64 / 1e6))
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl Drop for Cluster<'_> {
    fn drop(&mut self) {
        for child in self.children.iter_mut().filter_map(Option::take) {
            let mut child = child;
            // A paused node must not stay stopped: SIGKILL ends a stopped process too.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A connection with short timeouts (a partition drops packets: nothing answers).
fn connect(addr: SocketAddr) -> Option<redis::Connection> {
    let client = redis::Client::open(format!("redis://{addr}/")).ok()?;
    let conn = client.get_connection_with_timeout(Duration::from_secs(1)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    conn.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    Some(conn)
}

/// Members the node sees alive.
fn members_alive(conn: &mut redis::Connection) -> Option<usize> {
    let Value::Array(rows) = redis::cmd("SHOAL.MEMBERS").query::<Value>(conn).ok()? else { return None };
    Some(rows.into_iter().filter(|r| field(&pairs(r.clone()), "state").as_deref() == Some("alive")).count())
}

/// The sequence number a written value starts with.
fn seq_of(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value.get(..10)?).ok()?.parse().ok()
}

/// A value carrying `seq`, padded to `bytes`.
fn value_of(seq: u64, bytes: usize) -> Vec<u8> {
    let mut v = format!("{seq:010}|").into_bytes();
    v.resize(bytes.max(v.len()), b'v');
    v
}

/// What a writer knows about one of its keys.
#[derive(Debug, Clone, Copy, Default)]
struct KeyState {
    /// The last sequence number a SET of the key was acknowledged with (0: none).
    acked: u64,
    /// The last sequence number sent.
    sent: u64,
    /// Wall-clock time (Unix ms) of the last acknowledgement.
    acked_at_ms: u64,
}

/// The wall clock in Unix ms.
fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// One writer: its keys, the nodes it may use (it moves to the next after an error), its level and value size.
#[derive(Clone)]
struct Writer {
    keys: Vec<String>,
    addrs: Vec<SocketAddr>,
    level: &'static str,
    value_bytes: usize,
    /// Pause between two writes.
    pause: Duration,
}

/// What a writer did.
#[derive(Default)]
struct Record {
    keys: BTreeMap<String, KeyState>,
    acked: u64,
    errors: Vec<Instant>,
}

impl Writer {
    fn new(prefix: &str, keys: usize, addrs: Vec<SocketAddr>, level: &'static str) -> Writer {
        let keys = (0..keys).map(|k| format!("{prefix}-{k}")).collect();
        Writer { keys, addrs, level, value_bytes: 64, pause: Duration::from_millis(4) }
    }

    /// Write the keys in turn until `stop`, the deadline or `max_ops` writes.
    fn run(self, stop: Arc<AtomicBool>, deadline: Instant, max_ops: u64) -> Record {
        let mut rec = Record::default();
        let mut conn: Option<redis::Connection> = None;
        let mut node = 0;
        for op in 0..max_ops {
            if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                break;
            }
            let key = &self.keys[op as usize % self.keys.len()];
            if conn.is_none() {
                conn = connect(self.addrs[node % self.addrs.len()]).and_then(|mut c| {
                    redis::cmd("SHOAL.CONSISTENCY").arg("ONE").arg(self.level).query::<()>(&mut c).ok().map(|()| c)
                });
            }
            let state = rec.keys.entry(key.clone()).or_default();
            let result = match conn.as_mut() {
                Some(c) => {
                    state.sent += 1;
                    redis::cmd("SET").arg(key).arg(value_of(state.sent, self.value_bytes)).query::<Value>(c)
                }
                None => Err(redis::RedisError::from((redis::ErrorKind::Io, "cannot connect"))),
            };
            match result {
                Ok(Value::Okay) => {
                    state.acked = state.sent;
                    state.acked_at_ms = wall_ms();
                    rec.acked += 1;
                    std::thread::sleep(self.pause);
                }
                other => {
                    rec.errors.push(Instant::now());
                    if other.as_ref().is_err_and(|e| e.is_io_error() || e.is_timeout()) || conn.is_none() {
                        conn = None;
                        node += 1;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        rec
    }
}

/// Writers running on their threads.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Record>>,
}

impl Load {
    /// Start `writers`, each bounded by `limit` in time and 200,000 writes.
    fn start(writers: Vec<Writer>, limit: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + limit;
        let threads = writers
            .into_iter()
            .map(|w| {
                let stop = stop.clone();
                std::thread::spawn(move || w.run(stop, deadline, 200_000))
            })
            .collect();
        Load { stop, threads }
    }

    /// Stop the writers and merge their records.
    fn stop(mut self) -> Record {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Record::default();
        for t in std::mem::take(&mut self.threads) {
            let rec = t.join().expect("writer thread");
            all.keys.extend(rec.keys);
            all.acked += rec.acked;
            all.errors.extend(rec.errors);
        }
        all
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Each owner's own copy (sequence number) of each key, through the node at `via`; `None` if a node did not answer.
fn copies(lab: &Lab, via: usize, keys: &[String]) -> Option<BTreeMap<String, Vec<Option<u64>>>> {
    let mut conn = connect(lab.client_addr(via))?;
    let mut pipe = redis::pipe();
    for k in keys {
        pipe.cmd("SHOAL.OWNERS").arg(k);
    }
    let owners: Vec<Value> = pipe.query(&mut conn).ok()?;
    let mut by_node: BTreeMap<SocketAddr, Vec<&String>> = BTreeMap::new();
    let mut owner_lists = Vec::new();
    for (k, rows) in keys.iter().zip(owners) {
        let Value::Array(rows) = rows else { return None };
        let addrs: Vec<SocketAddr> =
            rows.into_iter().filter_map(|r| field(&pairs(r), "client_addr")?.parse().ok()).collect();
        for a in &addrs {
            by_node.entry(*a).or_default().push(k);
        }
        owner_lists.push(addrs);
    }
    let mut held: BTreeMap<(SocketAddr, &String), Option<u64>> = BTreeMap::new();
    for (addr, node_keys) in &by_node {
        let mut c = connect(*addr)?;
        let mut pipe = redis::pipe();
        for k in node_keys {
            pipe.cmd("SHOAL.LOCALGET").arg(*k);
        }
        let replies: Vec<Value> = pipe.query(&mut c).ok()?;
        for (k, v) in node_keys.iter().zip(replies) {
            let p = pairs(v);
            let value = p.iter().find(|(f, _)| common::procs::text(f).as_deref() == Some("value")).map(|(_, v)| v);
            let seq = match (field(&p, "kind").as_deref(), value) {
                (Some("value"), Some(Value::BulkString(b))) => seq_of(b),
                _ => None,
            };
            held.insert((*addr, *k), seq);
        }
    }
    Some(
        keys.iter()
            .zip(owner_lists)
            .map(|(k, addrs)| (k.clone(), addrs.iter().map(|a| held.get(&(*a, k)).copied().flatten()).collect()))
            .collect(),
    )
}

/// Wait until every node sees all of them alive (the cluster re-formed: one ring) and every key's owners (3 of
/// them) hold the same copy; how long it took and the converged sequence number of each key (`None` in the map:
/// no replica holds it). `None` when they did not converge in time.
fn converge(lab: &Lab, via: usize, keys: &[String]) -> (Option<Duration>, BTreeMap<String, Option<u64>>) {
    let start = Instant::now();
    let mut last = BTreeMap::new();
    let one_view =
        || (0..NODES).all(|i| connect(lab.client_addr(i)).and_then(|mut c| members_alive(&mut c)) == Some(NODES));
    while start.elapsed() < SETTLE {
        if !one_view() {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        if let Some(c) = copies(lab, via, keys) {
            let agreed = c.values().all(|v| v.len() == 3 && v.windows(2).all(|w| w[0] == w[1]));
            last = c.into_iter().map(|(k, v)| (k, v.iter().copied().max().flatten())).collect();
            if agreed {
                return (Some(start.elapsed()), last);
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    (None, last)
}

/// A lost write: key, last acknowledged sequence number, converged one.
type Lost = (String, u64, Option<u64>);

/// Converge, then count the acknowledged writes lost, on a second convergence 5 s later (a write delivered late,
/// say a frame a partition held in a kernel buffer, lands by then); describe every node's copy of the first lost
/// key.
fn judge(lab: &Lab, via: usize, keys: &[String], rec: &Record) -> (Option<Duration>, Vec<Lost>, String) {
    let (converged, _) = converge(lab, via, keys);
    std::thread::sleep(Duration::from_secs(5));
    let (again, finals) = converge(lab, via, keys);
    let lost = lost(rec, &finals);
    let Some((key, acked, fin)) = lost.first().cloned() else {
        return (converged.and(again), lost, String::new());
    };
    let at = rec.keys.get(&key).map_or(0, |s| s.acked_at_ms);
    let why =
        format!("; first lost {key}: acked #{acked} at {at} ms, converged {fin:?}, copies {}", diagnose(lab, &key));
    (converged.and(again), lost, why)
}

/// Every node's own copy of `key`: `name=seq@version` (or its kind), for failure notes.
fn diagnose(lab: &Lab, key: &str) -> String {
    (0..NODES)
        .map(|i| {
            let copy = connect(lab.client_addr(i)).and_then(|mut c| {
                let p = pairs(redis::cmd("SHOAL.LOCALGET").arg(key).query::<Value>(&mut c).ok()?);
                let value = p.iter().find(|(f, _)| common::procs::text(f).as_deref() == Some("value"));
                let seq = match value {
                    Some((_, Value::BulkString(b))) => seq_of(b).map_or("?".to_string(), |s| s.to_string()),
                    _ => field(&p, "kind").unwrap_or_else(|| "none".into()),
                };
                Some(format!("{seq}@{}", field(&p, "version").unwrap_or_default()))
            });
            format!("{}={}", NAMES[i], copy.unwrap_or_else(|| "none".into()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Acknowledged writes lost: keys whose converged copy is older than their last acknowledged write.
fn lost(rec: &Record, finals: &BTreeMap<String, Option<u64>>) -> Vec<Lost> {
    rec.keys
        .iter()
        .filter(|(_, s)| s.acked > 0)
        .filter_map(|(k, s)| {
            let fin = finals.get(k).copied().flatten();
            (fin.unwrap_or(0) < s.acked).then(|| (k.clone(), s.acked, fin))
        })
        .collect()
}

/// One scenario's result: a row of the table.
struct Outcome {
    name: &'static str,
    secs: f64,
    acked: u64,
    errors_total: usize,
    errors_fault: usize,
    lost: usize,
    /// The first lost write: (key, last acknowledged sequence number, converged one).
    first_lost: Option<Lost>,
    /// Lost writes the scenario allows (every replica of the key restarted before it was copied again).
    lost_allowed: bool,
    converge: Option<Duration>,
    locks: String,
    memory: String,
    notes: String,
}

impl Outcome {
    /// The outcome of a write scenario: the writers' record `rec` judged after the fault that lasted from `fault.0`
    /// to `fault.1` (`judged`: convergence time and lost writes); no lost write is allowed.
    fn of_writes(
        name: &'static str,
        started: Instant,
        rec: &Record,
        fault: (Instant, Instant),
        (converge, lost): (Option<Duration>, Vec<Lost>),
        memory: String,
        notes: String,
    ) -> Outcome {
        Outcome {
            name,
            secs: started.elapsed().as_secs_f64(),
            acked: rec.acked,
            errors_total: rec.errors.len(),
            errors_fault: errors_between(rec, fault.0, fault.1),
            lost: lost.len(),
            first_lost: lost.first().cloned(),
            lost_allowed: false,
            converge,
            locks: "-".into(),
            memory,
            notes,
        }
    }

    fn header() -> &'static str {
        "| scenario | s | writes acked | client errors (during fault) | acked writes lost | converged after heal | lock double-holding | memory per node, MB (a/b/c/d/e) | notes |\n|---|---|---|---|---|---|---|---|---|"
    }

    fn row(&self) -> String {
        let conv = self.converge.map_or("NO".to_string(), |d| format!("{:.1} s", d.as_secs_f64()));
        format!(
            "| {} | {:.0} | {} | {} ({}) | {} | {} | {} | {} | {} |",
            self.name,
            self.secs,
            self.acked,
            self.errors_total,
            self.errors_fault,
            self.lost,
            conv,
            self.locks,
            self.memory,
            self.notes
        )
    }

    /// Panic unless the scenario held its promises: no acknowledged write lost (unless allowed), converged.
    fn check(&self) {
        assert!(self.converge.is_some(), "{}: the replicas did not converge within {SETTLE:?}", self.name);
        assert!(
            self.lost == 0 || self.lost_allowed,
            "{}: {} acknowledged writes lost (first: {:?})",
            self.name,
            self.lost,
            self.first_lost
        );
    }
}

/// Errors recorded between `from` and `to`.
fn errors_between(rec: &Record, from: Instant, to: Instant) -> usize {
    rec.errors.iter().filter(|t| **t >= from && **t <= to).count()
}

/// The client addresses of nodes `nodes`.
fn addrs(lab: &Lab, nodes: &[usize]) -> Vec<SocketAddr> {
    nodes.iter().map(|&i| lab.client_addr(i)).collect()
}

/// Writes on both sides of a 2/3 split (`{a,b}` | `{c,d,e}`) for `split`, at `level`, then heal.
fn split_2_3(lab: &Lab, level: &'static str, split: Duration, name: &'static str) -> Outcome {
    let started = Instant::now();
    let cluster = Cluster::start(lab, vec![]);
    let small = [0, 1];
    let large = [2, 3, 4];
    let writers = vec![
        Writer::new("s0", 150, addrs(lab, &small), level),
        Writer::new("s1", 150, addrs(lab, &small), level),
        Writer::new("l0", 150, addrs(lab, &large), level),
        Writer::new("l1", 150, addrs(lab, &large), level),
    ];
    let keys: Vec<String> = writers.iter().flat_map(|w| w.keys.clone()).collect();
    let load = Load::start(writers, split + Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    let fault = Instant::now();
    let fault_ms = wall_ms();
    lab.split(&small, &large).expect("partition");
    // The partition is real: each side sees only itself.
    let seen = cluster.wait_alive(&small, 2) && cluster.wait_alive(&large, 3);
    let detected = fault.elapsed();
    assert!(seen, "each side of the split sees only its own nodes");
    std::thread::sleep(split.saturating_sub(detected));
    let rec = load.stop();
    lab.heal().expect("heal");
    let healed = Instant::now();
    let heal_ms = wall_ms();
    let (converge, lost, why) = judge(lab, 2, &keys, &rec);
    let why = if why.is_empty() { why } else { format!("{why}; split at {fault_ms} ms, healed at {heal_ms} ms") };
    let notes = format!("split {} s, seen by both sides after {:.1} s{why}", split.as_secs(), detected.as_secs_f64());
    Outcome::of_writes(name, started, &rec, (fault, healed), (converge, lost), cluster.memory(), notes)
}

/// What a rolling restart waits for before it restarts the next node.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// `SHOAL.READY` answers 1.
    Ready,
    /// The restarted node sees every node alive (it joined).
    Joined,
    /// The restarted node answers PING (the process is up).
    Ping,
}

/// Restart every node in turn under load (SIGTERM, start empty), the next one once the restarted one reached
/// `wait`. Cold keys written once before show what a restart that does not wait for readiness loses.
fn rolling_restart(lab: &Lab, wait: Wait, name: &'static str) -> Outcome {
    let wait_ready = wait == Wait::Ready;
    let started = Instant::now();
    let mut cluster = Cluster::start(lab, vec![]);
    let all: Vec<usize> = (0..NODES).collect();
    // Cold keys: written once at ALL, never again.
    let cold: Vec<String> = (0..1_000).map(|i| format!("cold-{i}")).collect();
    let mut conn = cluster.conn(0).expect("connects");
    redis::cmd("SHOAL.CONSISTENCY").arg("ONE").arg("ALL").query::<()>(&mut conn).expect("levels");
    let mut cold_rec = Record::default();
    for k in &cold {
        let ok = redis::cmd("SET").arg(k).arg(value_of(1, 64)).query::<Value>(&mut conn) == Ok(Value::Okay);
        assert!(ok, "cold SET {k} at ALL");
        cold_rec.keys.insert(k.clone(), KeyState { acked: 1, sent: 1, acked_at_ms: wall_ms() });
    }
    let writers: Vec<Writer> = (0..3).map(|w| Writer::new(&format!("r{w}"), 150, addrs(lab, &all), "QUORUM")).collect();
    let mut keys: Vec<String> = writers.iter().flat_map(|w| w.keys.clone()).collect();
    keys.extend(cold.iter().cloned());
    let load = Load::start(writers, Duration::from_secs(240));
    std::thread::sleep(Duration::from_secs(1));
    let fault = Instant::now();
    let mut waits = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        cluster.term(i);
        cluster.spawn(i);
        if wait_ready {
            let waited = cluster.wait_ready(i).unwrap_or_else(|e| panic!("{name}: {e}\n{}", lab.log_tail(i, 20)));
            waits.push(format!("{:.1}", waited.as_secs_f64()));
        } else {
            cluster.wait_listening(i);
            if wait == Wait::Joined {
                let joined = cluster.wait_alive(&[i], NODES);
                assert!(joined, "{name} sees every node alive after its restart");
            }
        }
    }
    let restarted = Instant::now();
    if !wait_ready {
        assert!(cluster.wait_alive(&all, NODES), "every node sees the others again");
    }
    std::thread::sleep(Duration::from_secs(2));
    let mut rec = load.stop();
    let (converge, finals) = converge(lab, 0, &keys);
    let cold_lost = lost(&cold_rec, &finals);
    let hot_lost = lost(&rec, &finals);
    rec.keys.extend(cold_rec.keys);
    Outcome {
        name,
        secs: started.elapsed().as_secs_f64(),
        acked: rec.acked + cold.len() as u64,
        errors_total: rec.errors.len(),
        errors_fault: errors_between(&rec, fault, restarted),
        lost: cold_lost.len() + hot_lost.len(),
        first_lost: cold_lost.first().or(hot_lost.first()).cloned(),
        // Without waiting, the three replicas of a key can all restart before any copied it back.
        lost_allowed: !wait_ready,
        converge,
        locks: "-".into(),
        memory: cluster.memory(),
        notes: match wait {
            Wait::Ready => {
                format!("waited for ready: {} s; lost {} of {} cold keys", waits.join("/"), cold_lost.len(), cold.len())
            }
            Wait::Joined | Wait::Ping => format!(
                "waited for {}; lost {} of {} cold keys, {} hot",
                if wait == Wait::Joined { "the join (all 5 alive)" } else { "PING only" },
                cold_lost.len(),
                cold.len(),
                hot_lost.len()
            ),
        },
    }
}

/// A node killed with SIGKILL under load (QUORUM, some values of 200 KB and more), restarted empty after
/// `down`; converged is counted from the restart.
fn kill_restart(lab: &Lab, down: Duration) -> Outcome {
    let started = Instant::now();
    let mut cluster = Cluster::start(lab, vec![]);
    let all: Vec<usize> = (0..NODES).collect();
    let mut writers: Vec<Writer> =
        (0..3).map(|w| Writer::new(&format!("k{w}"), 150, addrs(lab, &all), "QUORUM")).collect();
    let mut big = Writer::new("big", 40, addrs(lab, &all), "QUORUM");
    big.value_bytes = 256 * 1024;
    big.pause = Duration::from_millis(20);
    writers.push(big);
    let keys: Vec<String> = writers.iter().flat_map(|w| w.keys.clone()).collect();
    let load = Load::start(writers, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(3));
    let fault = Instant::now();
    cluster.kill9(2);
    std::thread::sleep(down);
    cluster.spawn(2);
    let restarted = Instant::now();
    let ready = cluster.wait_ready(2).unwrap_or_else(|e| panic!("c: {e}\n{}", lab.log_tail(2, 20)));
    std::thread::sleep(Duration::from_secs(2));
    let rec = load.stop();
    let errors_fault = errors_between(&rec, fault, restarted + ready);
    let (converge, lost, why) = judge(lab, 0, &keys, &rec);
    Outcome {
        name: "kill -9 c under load, restart",
        secs: started.elapsed().as_secs_f64(),
        acked: rec.acked,
        errors_total: rec.errors.len(),
        errors_fault,
        lost: lost.len(),
        first_lost: lost.first().cloned(),
        lost_allowed: false,
        converge: converge.map(|c| c + ready + Duration::from_secs(2)),
        locks: "-".into(),
        memory: cluster.memory(),
        notes: format!(
            "down {} s; ready {:.1} s after restart; 40 keys of 256 KB{why}",
            down.as_secs(),
            ready.as_secs_f64()
        ),
    }
}

/// A node paused with SIGSTOP under load for `pause` (its peers declare it down and write around it), then
/// SIGCONT once the writers stopped: what it had queued (forwards its kernel acknowledged while it was stopped)
/// must not win over what was acknowledged meanwhile. QUORUM.
fn pause(lab: &Lab, pause: Duration) -> Outcome {
    let started = Instant::now();
    let cluster = Cluster::start(lab, vec![]);
    let all: Vec<usize> = (0..NODES).collect();
    let writers: Vec<Writer> = (0..4).map(|w| Writer::new(&format!("p{w}"), 150, addrs(lab, &all), "QUORUM")).collect();
    let keys: Vec<String> = writers.iter().flat_map(|w| w.keys.clone()).collect();
    let load = Load::start(writers, pause + Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    let fault = Instant::now();
    netns::signal(cluster.pid(2), "STOP");
    std::thread::sleep(pause);
    // The writes made meanwhile are the ones at risk: no later write may hide their loss.
    let rec = load.stop();
    netns::signal(cluster.pid(2), "CONT");
    let resumed = Instant::now();
    let (converge, lost, why) = judge(lab, 0, &keys, &rec);
    let notes = format!("paused {} s, writers stopped before SIGCONT{why}", pause.as_secs());
    Outcome::of_writes(
        "SIGSTOP c under load, SIGCONT",
        started,
        &rec,
        (fault, resumed),
        (converge, lost),
        cluster.memory(),
        notes,
    )
}

/// A one-way partition: `a` receives nothing from its peers for `cut` (it still sends), writes at QUORUM.
fn one_way(lab: &Lab, cut: Duration) -> Outcome {
    let started = Instant::now();
    let cluster = Cluster::start(lab, vec![]);
    let all: Vec<usize> = (0..NODES).collect();
    let writers: Vec<Writer> = (0..4).map(|w| Writer::new(&format!("o{w}"), 150, addrs(lab, &all), "QUORUM")).collect();
    let keys: Vec<String> = writers.iter().flat_map(|w| w.keys.clone()).collect();
    let load = Load::start(writers, cut + Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    let fault = Instant::now();
    lab.block(0, &[1, 2, 3, 4], &[]).expect("one-way partition");
    std::thread::sleep(cut);
    let rec = load.stop();
    lab.heal().expect("heal");
    let healed = Instant::now();
    let (converge, lost, why) = judge(lab, 1, &keys, &rec);
    let notes = format!("cut {} s{why}", cut.as_secs());
    Outcome::of_writes(
        "one-way: a hears nobody",
        started,
        &rec,
        (fault, healed),
        (converge, lost),
        cluster.memory(),
        notes,
    )
}

/// A bridge partition (`{a,b}` and `{d,e}` cut from each other, `c` reaches both) with `e`'s clock 1.5 s
/// ahead, writes at ONE on every node.
fn bridge_skew(lab: &Lab, cut: Duration) -> Outcome {
    let started = Instant::now();
    let mut extra = vec![vec![]; NODES];
    extra[4] = ["--enable-debug-command", "local", "--debug-clock-offset-ms", "1500"].map(String::from).to_vec();
    let cluster = Cluster::start(lab, extra);
    let writers: Vec<Writer> =
        (0..NODES).map(|i| Writer::new(&format!("b{i}"), 120, addrs(lab, &[i, 2]), "ONE")).collect();
    let keys: Vec<String> = writers.iter().flat_map(|w| w.keys.clone()).collect();
    let load = Load::start(writers, cut + Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    let fault = Instant::now();
    lab.split(&[0, 1], &[3, 4]).expect("bridge partition");
    std::thread::sleep(cut);
    let rec = load.stop();
    lab.heal().expect("heal");
    let healed = Instant::now();
    let (converge, lost, why) = judge(lab, 2, &keys, &rec);
    let notes = format!("cut {} s{why}", cut.as_secs());
    Outcome::of_writes(
        "bridge {a,b} / {d,e} via c, e's clock +1.5 s",
        started,
        &rec,
        (fault, healed),
        (converge, lost),
        cluster.memory(),
        notes,
    )
}

/// Grants one lock client believed it held: (from, until), by its own clock (`docs/locks.md`: from the send
/// time, for the lease minus the margin).
type Holds = Vec<(Instant, Instant)>;

/// One lock client: acquire (or renew) every `every`, through the node at `addr`, until `until`; `pause` is a
/// window in which it sends nothing (a stalled holder).
fn lock_client(addr: SocketAddr, owner: &str, until: Instant, lease_ms: u64) -> (Holds, Vec<i64>) {
    let margin = Duration::from_millis((lease_ms / 100).max(50));
    let lease = Duration::from_millis(lease_ms);
    let mut holds = Vec::new();
    let mut tokens = Vec::new();
    let mut token: Option<i64> = None;
    let mut conn = None;
    let mut ops = 0;
    while Instant::now() < until && ops < 10_000 {
        ops += 1;
        if conn.is_none() {
            conn = connect(addr);
        }
        let Some(c) = conn.as_mut() else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let sent = Instant::now();
        let reply = match token {
            Some(t) => redis::cmd("LOCK.RENEW").arg("chaos-lock").arg(owner).arg(t).arg(lease_ms).query::<Value>(c),
            None => redis::cmd("LOCK.ACQUIRE").arg("chaos-lock").arg(owner).arg(lease_ms).query::<Value>(c),
        };
        match reply {
            Ok(Value::Array(grant)) => {
                if let Some(Value::Int(t)) = grant.first() {
                    token = Some(*t);
                    tokens.push(*t);
                    holds.push((sent, sent + lease - margin));
                }
            }
            Ok(_) => token = None,
            Err(e) => {
                if e.is_io_error() || e.is_timeout() {
                    conn = None;
                }
                // The grant's end by its own clock is the only thing it still knows.
                if holds.last().is_none_or(|h| Instant::now() >= h.1) {
                    token = None;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(lease_ms / 4));
    }
    (holds, tokens)
}

/// Total time and stretches in which both clients believed they held the lock.
fn overlaps(a: &Holds, b: &Holds) -> (usize, Duration) {
    let mut count = 0;
    let mut total = Duration::ZERO;
    for (a0, a1) in a {
        for (b0, b1) in b {
            let (from, to) = ((*a0).max(*b0), (*a1).min(*b1));
            if from < to {
                count += 1;
                total += to - from;
            }
        }
    }
    (count, total)
}

/// A lock holder whose node is paused (SIGSTOP) past the lease, while a second client keeps trying through
/// another node; then SIGCONT. Counts the stretches both believed they held it, and checks the tokens grow.
fn paused_lock_holder(lab: &Lab) -> Outcome {
    let started = Instant::now();
    let cluster = Cluster::start(lab, vec![]);
    let lease_ms = 2_000;
    let until = Instant::now() + Duration::from_secs(14);
    let (a_addr, e_addr) = (lab.client_addr(0), lab.client_addr(4));
    let holder = std::thread::spawn(move || lock_client(a_addr, "holder", until, lease_ms));
    std::thread::sleep(Duration::from_secs(2));
    let other = std::thread::spawn(move || lock_client(e_addr, "other", until, lease_ms));
    std::thread::sleep(Duration::from_secs(1));
    netns::signal(cluster.pid(0), "STOP");
    std::thread::sleep(Duration::from_millis(3 * lease_ms));
    netns::signal(cluster.pid(0), "CONT");
    let (a, a_tokens) = holder.join().expect("holder");
    let (b, b_tokens) = other.join().expect("other");
    let (count, total) = overlaps(&a, &b);
    assert!(!a.is_empty(), "the holder got the lock before the pause");
    assert!(!b.is_empty(), "the other client got the lock once the holder's lease ran out");
    // Fencing: in the order the grants were asked for, tokens never go down.
    let mut grants: Vec<(Instant, i64)> =
        a.iter().map(|h| h.0).zip(a_tokens).chain(b.iter().map(|h| h.0).zip(b_tokens)).collect();
    grants.sort();
    let increasing = grants.windows(2).all(|w| w[0].1 <= w[1].1);
    assert!(increasing, "fencing tokens grow in grant order: {grants:?}");
    Outcome {
        name: "paused lock holder (SIGSTOP a, 3 leases)",
        secs: started.elapsed().as_secs_f64(),
        acked: 0,
        errors_total: 0,
        errors_fault: 0,
        lost: 0,
        first_lost: None,
        lost_allowed: false,
        converge: Some(Duration::ZERO),
        locks: format!("{count} stretches, {} ms", total.as_millis()),
        memory: cluster.memory(),
        notes: format!("grants and renewals: holder {}, other {}; tokens grow in grant order", a.len(), b.len()),
    }
}

/// A lab, or a message saying why this machine cannot make one.
fn lab_or_skip() -> Option<Lab> {
    if let Some(why) = netns::unavailable() {
        eprintln!("SKIPPED chaos scenarios: {why}");
        return None;
    }
    Some(Lab::create(NODES).unwrap_or_else(|e| panic!("the lab could not be built: {e}")))
}

fn report(outcomes: &[Outcome]) {
    let mut table = format!("{}\n", Outcome::header());
    for o in outcomes {
        table.push_str(&o.row());
        table.push('\n');
    }
    println!("\n{table}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos-results.md");
    let _ = std::fs::write(&path, &table);
    eprintln!("chaos results also in {}", path.display());
}

/// The short version: a 2/3 split at ONE and a rolling restart that waits on readiness.
#[test]
fn chaos_short() {
    let Some(lab) = lab_or_skip() else { return };
    let outcomes = vec![
        split_2_3(&lab, "ONE", Duration::from_secs(8), "2/3 split, writes at ONE"),
        rolling_restart(&lab, Wait::Ready, "rolling restart, waits for SHOAL.READY"),
    ];
    report(&outcomes);
    for o in &outcomes {
        o.check();
    }
}

/// The full run (minutes): every scenario of docs/chaos.md.
#[test]
#[ignore = "the full chaos run takes minutes: cargo test --test chaos -- --ignored --nocapture"]
fn chaos_full() {
    let Some(lab) = lab_or_skip() else { return };
    let mut outcomes = Vec::new();
    // SHOAL_CHAOS_ONLY=split,lock runs the scenarios whose tag contains one of the words.
    let only = std::env::var("SHOAL_CHAOS_ONLY").unwrap_or_default();
    let wanted = |tag: &str| only.is_empty() || only.split(',').any(|w| tag.contains(w.trim()));
    type Scenario<'l> = (&'static str, Box<dyn Fn() -> Outcome + 'l>);
    let scenarios: Vec<Scenario> = vec![
        ("split-one", Box::new(|| split_2_3(&lab, "ONE", Duration::from_secs(30), "2/3 split 30 s, writes at ONE"))),
        (
            "split-quorum",
            Box::new(|| split_2_3(&lab, "QUORUM", Duration::from_secs(30), "2/3 split 30 s, writes at QUORUM")),
        ),
        ("kill", Box::new(|| kill_restart(&lab, Duration::from_secs(8)))),
        ("rolling-ready", Box::new(|| rolling_restart(&lab, Wait::Ready, "rolling restart, waits for SHOAL.READY"))),
        (
            "rolling-joined",
            Box::new(|| rolling_restart(&lab, Wait::Joined, "rolling restart, waits for the join only")),
        ),
        ("rolling-nowait", Box::new(|| rolling_restart(&lab, Wait::Ping, "rolling restart, no wait"))),
        ("pause", Box::new(|| pause(&lab, Duration::from_secs(6)))),
        ("one-way", Box::new(|| one_way(&lab, Duration::from_secs(15)))),
        ("bridge-skew", Box::new(|| bridge_skew(&lab, Duration::from_secs(15)))),
        ("lock", Box::new(|| paused_lock_holder(&lab))),
    ];
    for (tag, scenario) in scenarios.iter().filter(|(tag, _)| wanted(tag)) {
        let o = scenario();
        eprintln!("[{tag}] {}", o.row());
        outcomes.push(o);
    }
    report(&outcomes);
    for o in &outcomes {
        o.check();
    }
}
