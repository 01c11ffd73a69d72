//! Replication with real `shoal` processes on loopback: a write through one node is read through every other and
//! sits on its owners (checked with SHOAL.OWNERS and SHOAL.LOCALGET on each owner); a replica killed with
//! SIGKILL fails no command at ONE or QUORUM; restarted, hints and anti-entropy refill it; a fourth node that
//! joins receives its keys and none is lost. Every wait is bounded by `eventually`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::eventually;
use common::members::{free_addr, Process};
use redis::Value;

/// Joins, detection, anti-entropy (period 1 s here) on a loaded 2-core machine.
const CONVERGE: Duration = Duration::from_secs(60);

struct Spec {
    name: String,
    listen: SocketAddr,
    cluster: SocketAddr,
    seed: Option<SocketAddr>,
}

impl Spec {
    fn new(name: &str, seed: Option<SocketAddr>) -> Spec {
        Spec { name: name.to_string(), listen: free_addr(), cluster: free_addr(), seed }
    }

    fn spawn(&self) -> Process {
        let mut args: Vec<String> = [
            "--name",
            &self.name,
            "--listen",
            &self.listen.to_string(),
            "--cluster",
            &self.cluster.to_string(),
            "--anti-entropy-period-ms",
            "1000",
            "--request-timeout-ms",
            "500",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(seed) = self.seed {
            args.extend(["--seed".to_string(), seed.to_string()]);
        }
        Process::spawn(std::path::Path::new(env!("CARGO_BIN_EXE_shoal")), &args, "warn")
    }
}

/// A connection that reconnects after errors.
struct Conn {
    addr: SocketAddr,
    conn: Option<redis::Connection>,
    levels: Option<(&'static str, &'static str)>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        Conn { addr, conn: None, levels: None }
    }

    fn with_levels(addr: SocketAddr, read: &'static str, write: &'static str) -> Conn {
        Conn { addr, conn: None, levels: Some((read, write)) }
    }

    fn query(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<Value> {
        if self.conn.is_none() {
            let client = redis::Client::open(format!("redis://{}/", self.addr))?;
            let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
            conn.set_read_timeout(Some(Duration::from_secs(5)))?;
            if let Some((r, w)) = self.levels {
                redis::cmd("SHOAL.CONSISTENCY").arg(r).arg(w).query::<()>(&mut conn)?;
            }
            self.conn = Some(conn);
        }
        let result = cmd.query::<Value>(self.conn.as_mut().expect("connected"));
        if result.as_ref().is_err_and(|e| e.is_io_error() || e.is_timeout()) {
            self.conn = None;
        }
        result
    }

    fn set(&mut self, key: &str, value: &str) -> redis::RedisResult<Value> {
        self.query(redis::cmd("SET").arg(key).arg(value))
    }

    fn get(&mut self, key: &str) -> Option<String> {
        match self.query(redis::cmd("GET").arg(key)) {
            Ok(Value::BulkString(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
            _ => None,
        }
    }

    /// The owners of `key` as (name, client address).
    fn owners(&mut self, key: &str) -> Vec<(String, SocketAddr)> {
        let Ok(Value::Array(rows)) = self.query(redis::cmd("SHOAL.OWNERS").arg(key)) else { return Vec::new() };
        rows.into_iter()
            .filter_map(|row| {
                let pairs = pairs(row);
                let name = field(&pairs, "name")?;
                let addr = field(&pairs, "client_addr")?.parse().ok()?;
                Some((name, addr))
            })
            .collect()
    }

    /// This node's own value for `key` (None when it holds no value).
    fn local(&mut self, key: &str) -> Option<String> {
        let Ok(v) = self.query(redis::cmd("SHOAL.LOCALGET").arg(key)) else { return None };
        let pairs = pairs(v);
        (field(&pairs, "kind")? == "value").then(|| field(&pairs, "value")).flatten()
    }

    fn live_members(&mut self) -> usize {
        let Ok(Value::Array(rows)) = self.query(&redis::cmd("SHOAL.MEMBERS")) else { return 0 };
        rows.into_iter().filter(|row| field(&pairs(row.clone()), "state").as_deref() == Some("alive")).count()
    }
}

fn pairs(v: Value) -> Vec<(Value, Value)> {
    match v {
        Value::Map(p) => p,
        Value::Array(flat) => {
            let mut it = flat.into_iter();
            std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect()
        }
        _ => Vec::new(),
    }
}

fn field(pairs: &[(Value, Value)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| text(k).as_deref() == Some(key)).and_then(|(_, v)| text(v))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Three nodes joined through the first; returns them once every node sees three alive members.
fn three() -> (Vec<Spec>, Vec<Process>) {
    let a = Spec::new("a", None);
    let seed = Some(a.cluster);
    let specs = vec![a, Spec::new("b", seed), Spec::new("c", seed)];
    let procs: Vec<Process> = specs.iter().map(Spec::spawn).collect();
    let joined = eventually(CONVERGE, || specs.iter().all(|s| Conn::new(s.listen).live_members() == 3));
    assert!(joined, "three nodes join");
    (specs, procs)
}

/// Whether every owner of every key holds `value(i)` in its own copy.
fn on_all_owners(via: SocketAddr, keys: &[String], value: impl Fn(usize) -> String, owners_expected: usize) -> bool {
    let mut conn = Conn::new(via);
    keys.iter().enumerate().all(|(i, key)| {
        let owners = conn.owners(key);
        owners.len() == owners_expected
            && owners.iter().all(|(_, addr)| Conn::new(*addr).local(key).as_deref() == Some(value(i).as_str()))
    })
}

#[test]
fn a_write_through_one_node_is_read_through_every_other_and_sits_on_its_owners() {
    let (specs, _procs) = three();
    let keys: Vec<String> = (0..50).map(|i| format!("key:{i}")).collect();
    let mut a = Conn::new(specs[0].listen);
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(a.set(key, &format!("v{i}")).unwrap(), Value::Okay);
    }
    for spec in &specs[1..] {
        let mut conn = Conn::new(spec.listen);
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(conn.get(key), Some(format!("v{i}")), "{key} via {}", spec.name);
        }
    }
    // QUORUM writes reached at least two owners at once; the third follows within the anti-entropy bound.
    let placed = eventually(CONVERGE, || on_all_owners(specs[1].listen, &keys, |i| format!("v{i}"), 3));
    assert!(placed, "every key is on its three owners");
}

#[test]
fn a_killed_replica_fails_no_command_and_is_refilled_after_restart() {
    let (specs, mut procs) = three();
    let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
    let mut one = Conn::with_levels(specs[0].listen, "ONE", "ONE");
    let mut quorum = Conn::with_levels(specs[1].listen, "QUORUM", "QUORUM");
    for key in &keys[..100] {
        assert_eq!(quorum.set(key, "before").unwrap(), Value::Okay);
    }
    procs.pop().expect("c runs").kill9();
    // Right after the kill (before and during detection) every command still succeeds.
    for (i, key) in keys.iter().enumerate() {
        let value = format!("after{i}");
        let conn = if i % 2 == 0 { &mut one } else { &mut quorum };
        assert_eq!(conn.set(key, &value), Ok(Value::Okay), "SET {key} with c down");
        assert_eq!(conn.get(key), Some(value), "GET {key} with c down");
    }
    procs.push(specs[2].spawn());
    let refilled = eventually(CONVERGE, || {
        let mut c = Conn::new(specs[2].listen);
        keys.iter().enumerate().all(|(i, key)| c.local(key).as_deref() == Some(format!("after{i}").as_str()))
    });
    assert!(refilled, "hints and anti-entropy put every key back on the restarted replica");
}

#[test]
fn a_fourth_node_receives_its_keys_and_none_is_lost() {
    let (mut specs, mut procs) = three();
    let keys: Vec<String> = (0..300).map(|i| format!("j{i}")).collect();
    let mut a = Conn::new(specs[0].listen);
    for key in &keys {
        assert_eq!(a.set(key, "v").unwrap(), Value::Okay);
    }
    let d = Spec::new("d", Some(specs[0].cluster));
    procs.push(d.spawn());
    specs.push(d);
    let joined = eventually(CONVERGE, || specs.iter().all(|s| Conn::new(s.listen).live_members() == 4));
    assert!(joined, "d joins");
    let moved = eventually(CONVERGE, || on_all_owners(specs[3].listen, &keys, |_| "v".to_string(), 3));
    assert!(moved, "every key sits on its owners after the join");
    let mut d = Conn::new(specs[3].listen);
    let held = keys.iter().filter(|k| d.local(k).is_some()).count();
    assert!(held > 0, "d holds some keys");
    for spec in &specs {
        let mut conn = Conn::new(spec.listen);
        assert!(keys.iter().all(|k| conn.get(k).as_deref() == Some("v")), "no key lost, read via {}", spec.name);
    }
}
