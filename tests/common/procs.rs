//! Real `shoal` processes for replication and lock tests: how to start one with test-friendly timings, and a
//! reconnecting client with the cluster commands (SHOAL.OWNERS, SHOAL.LOCALGET, SHOAL.MEMBERS, LOCK.*).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use redis::Value;

use super::eventually;
use super::members::{free_addr, Process};

/// Joins, detection, anti-entropy (period 1 s here) on a loaded 2-core machine.
pub const CONVERGE: Duration = Duration::from_secs(60);

/// How to start one node.
pub struct Spec {
    pub name: String,
    pub listen: SocketAddr,
    pub cluster: SocketAddr,
    pub seed: Option<SocketAddr>,
    /// Extra flags.
    pub extra: Vec<String>,
}

impl Spec {
    pub fn new(name: &str, seed: Option<SocketAddr>) -> Spec {
        Spec { name: name.to_string(), listen: free_addr(), cluster: free_addr(), seed, extra: Vec::new() }
    }

    /// Start the process.
    pub fn spawn(&self) -> Process {
        let mut args: Vec<String> =
            ["--name", &self.name, "--listen", &self.listen.to_string(), "--cluster", &self.cluster.to_string()]
                .iter()
                .map(|s| s.to_string())
                .collect();
        // Test-friendly timings unless the test sets its own.
        for (flag, value) in [("--anti-entropy-period-ms", "1000"), ("--request-timeout-ms", "500")] {
            if !self.extra.iter().any(|e| e == flag) {
                args.extend([flag.to_string(), value.to_string()]);
            }
        }
        args.extend(self.extra.iter().cloned());
        if let Some(seed) = self.seed {
            args.extend(["--seed".to_string(), seed.to_string()]);
        }
        Process::spawn(std::path::Path::new(env!("CARGO_BIN_EXE_shoal")), &args, "warn")
    }
}

/// A connection that reconnects after errors.
pub struct Conn {
    addr: SocketAddr,
    conn: Option<redis::Connection>,
    levels: Option<(&'static str, &'static str)>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        Conn { addr, conn: None, levels: None }
    }

    pub fn with_levels(addr: SocketAddr, read: &'static str, write: &'static str) -> Conn {
        Conn { addr, conn: None, levels: Some((read, write)) }
    }

    pub fn query(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<Value> {
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

    pub fn set(&mut self, key: &str, value: &str) -> redis::RedisResult<Value> {
        self.query(redis::cmd("SET").arg(key).arg(value))
    }

    pub fn get(&mut self, key: &str) -> Option<String> {
        match self.query(redis::cmd("GET").arg(key)) {
            Ok(Value::BulkString(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
            _ => None,
        }
    }

    /// The owners of `key` as (name, client address).
    pub fn owners(&mut self, key: &str) -> Vec<(String, SocketAddr)> {
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
    pub fn local(&mut self, key: &str) -> Option<String> {
        let Ok(v) = self.query(redis::cmd("SHOAL.LOCALGET").arg(key)) else { return None };
        let pairs = pairs(v);
        (field(&pairs, "kind")? == "value").then(|| field(&pairs, "value")).flatten()
    }

    pub fn live_members(&mut self) -> usize {
        let Ok(Value::Array(rows)) = self.query(&redis::cmd("SHOAL.MEMBERS")) else { return 0 };
        rows.into_iter().filter(|row| field(&pairs(row.clone()), "state").as_deref() == Some("alive")).count()
    }
}

pub fn pairs(v: Value) -> Vec<(Value, Value)> {
    match v {
        Value::Map(p) => p,
        Value::Array(flat) => {
            let mut it = flat.into_iter();
            std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect()
        }
        _ => Vec::new(),
    }
}

pub fn field(pairs: &[(Value, Value)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| text(k).as_deref() == Some(key)).and_then(|(_, v)| text(v))
}

pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Three nodes joined through the first, each with `extra` flags; returns them once every node sees three alive.
pub fn three(extra: &[&str]) -> (Vec<Spec>, Vec<Process>) {
    let a = Spec::new("a", None);
    let seed = Some(a.cluster);
    let mut specs = vec![a, Spec::new("b", seed), Spec::new("c", seed)];
    for s in &mut specs {
        s.extra = extra.iter().map(|e| e.to_string()).collect();
    }
    let mut procs: Vec<Process> = specs.iter().map(Spec::spawn).collect();
    let joined = eventually(CONVERGE, || specs.iter().all(|s| Conn::new(s.listen).live_members() == 3));
    let ended: Vec<String> =
        procs.iter_mut().zip(&specs).filter_map(|(p, s)| Some(format!("{} {}", s.name, p.exited()?))).collect();
    assert!(joined, "three nodes join (processes that ended: {ended:?})");
    (specs, procs)
}

/// Whether every owner of every key holds `value(i)` in its own copy.
pub fn on_all_owners(
    via: SocketAddr,
    keys: &[String],
    value: impl Fn(usize) -> String,
    owners_expected: usize,
) -> bool {
    let mut conn = Conn::new(via);
    keys.iter().enumerate().all(|(i, key)| {
        let owners = conn.owners(key);
        owners.len() == owners_expected
            && owners.iter().all(|(_, addr)| Conn::new(*addr).local(key).as_deref() == Some(value(i).as_str()))
    })
}
