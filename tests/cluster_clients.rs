//! Redis Cluster clients against three real `shoal` processes: the slot map every node shows (CLUSTER SLOTS
//! identical and complete, KEYSLOT as redis-server computes it, masters where the coordinator sends keys), MOVED
//! and READONLY on a cluster-aware connection, and `redis-cli -c`, `redis-benchmark --cluster` and the `redis`
//! crate's cluster client, each before and after a `kill -9` of a node.
//!
//! Every wait is bounded by `eventually` with a generous limit; nothing asserts on speed.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::eventually;
use common::members::{free_addr, Process};
use common::procs::{three, Conn, Spec, CONVERGE};
use redis::Value;

/// One CLUSTER SLOTS range: start, end, and its nodes (ip:port, id), master first.
type Range = (i64, i64, Vec<(String, String)>);

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        Value::VerbatimString { text, .. } => text.clone(),
        other => format!("{other:?}"),
    }
}

/// A node's CLUSTER SLOTS, or `None` when it cannot be reached or answers otherwise.
fn slots(addr: SocketAddr) -> Option<Vec<Range>> {
    let Ok(Value::Array(ranges)) = Conn::new(addr).query(redis::cmd("CLUSTER").arg("SLOTS")) else { return None };
    let range = |r: &Value| -> Option<Range> {
        let Value::Array(fields) = r else { return None };
        let (Value::Int(start), Value::Int(end)) = (fields.first()?, fields.get(1)?) else { return None };
        let nodes = fields[2..].iter().map(|n| match n {
            Value::Array(n) if n.len() >= 3 => Some((format!("{}:{}", text(&n[0]), text(&n[1])), text(&n[2]))),
            _ => None,
        });
        Some((*start, *end, nodes.collect::<Option<Vec<_>>>()?))
    };
    ranges.iter().map(range).collect()
}

/// Whether the ranges cover 0..=16383 in order, each with `owners` nodes, all among `members`.
fn complete(ranges: &[Range], owners: usize, members: &[SocketAddr]) -> bool {
    let mut next = 0;
    for (start, end, nodes) in ranges {
        let known = nodes.iter().all(|(addr, _)| members.iter().any(|m| m.to_string() == *addr));
        if *start != next || end < start || nodes.len() != owners || !known {
            return false;
        }
        next = end + 1;
    }
    next == 16384
}

/// Wait until every node in `nodes` shows the same complete map with `owners` owners per slot over `nodes`.
fn settled(nodes: &[SocketAddr], owners: usize) -> Option<Vec<Range>> {
    let mut map = None;
    let agreed = eventually(CONVERGE, || {
        let maps: Vec<Option<Vec<Range>>> = nodes.iter().map(|a| slots(*a)).collect();
        map = maps[0].clone().filter(|m| complete(m, owners, nodes) && maps.iter().all(|o| o.as_ref() == Some(m)));
        map.is_some()
    });
    assert!(agreed, "every node shows the same complete slot map over {nodes:?}");
    map
}

/// The master's client address for `slot` in `map`.
fn master(map: &[Range], slot: i64) -> String {
    let (_, _, nodes) = map.iter().find(|(s, e, _)| (*s..=*e).contains(&slot)).expect("slot covered");
    nodes[0].0.clone()
}

fn keyslot(addr: SocketAddr, key: &str) -> i64 {
    match Conn::new(addr).query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)) {
        Ok(Value::Int(slot)) => slot,
        other => panic!("CLUSTER KEYSLOT {key}: {other:?}"),
    }
}

fn info_u64(addr: SocketAddr, field: &str) -> u64 {
    let Ok(v) = Conn::new(addr).query(&redis::cmd("INFO")) else { panic!("INFO from {addr}") };
    let prefix = format!("{field}:");
    text(&v).lines().find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok()).expect("the INFO field")
}

/// Forwards to another owner, summed over `nodes` (a client routed by the slot map causes none).
fn forwards(nodes: &[SocketAddr]) -> u64 {
    nodes.iter().map(|a| info_u64(*a, "forwards")).sum()
}

/// A redis-server in cluster mode (no slots assigned: it answers CLUSTER KEYSLOT), killed on drop.
fn redis_server(dir: &std::path::Path) -> (Process, SocketAddr) {
    let addr = free_addr();
    let args: Vec<String> = [
        "--port",
        &addr.port().to_string(),
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        &dir.join("nodes.conf").display().to_string(),
        "--dir",
        &dir.display().to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let bin = which("redis-server").expect("redis-server is installed (apt-get install redis-server)");
    let server = Process::spawn(&bin, &args, "warn");
    assert!(eventually(CONVERGE, || Conn::new(addr).query(&redis::cmd("PING")).is_ok()), "redis-server answers");
    (server, addr)
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file())
}

fn addrs(specs: &[Spec]) -> Vec<SocketAddr> {
    specs.iter().map(|s| s.listen).collect()
}

#[test]
fn every_node_shows_one_complete_slot_map_whose_masters_coordinate_their_keys() {
    let (specs, _procs) = three(&[]);
    let nodes = addrs(&specs);
    let map = settled(&nodes, 3).expect("settled");
    let mut conn = Conn::new(nodes[1]);
    for i in 0..200 {
        let key = if i % 4 == 0 { format!("{{user{}}}.profile", i / 4) } else { format!("key:{i}") };
        let owners = conn.owners(&key);
        let slot = keyslot(nodes[0], &key);
        assert_eq!(master(&map, slot), owners[0].1.to_string(), "{key}: the slot's master is its first owner");
    }
    for (i, node) in nodes.iter().enumerate() {
        let info = Conn::new(*node).query(redis::cmd("CLUSTER").arg("INFO")).map(|v| text(&v)).unwrap();
        assert!(info.starts_with("cluster_state:ok\r\ncluster_slots_assigned:16384\r\n"), "node {i}: {info}");
        let myid = Conn::new(*node).query(redis::cmd("CLUSTER").arg("MYID")).map(|v| text(&v)).unwrap();
        assert!(map.iter().any(|(_, _, n)| n.iter().any(|(a, id)| *a == node.to_string() && *id == myid)));
    }
}

#[test]
fn cluster_keyslot_agrees_with_redis_server() {
    let dir = std::env::temp_dir().join(format!("shoal-keyslot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_server, redis) = redis_server(&dir);
    let (specs, _procs) = three(&[]);
    let mut keys: Vec<String> = (0..300).map(|i| format!("key:{i}")).collect();
    keys.extend(
        ["", "{}", "{}x", "a{b}c", "{a}{b}", "{{a}}", "x{}{y}", "}{z}", "{user1000}.following", "foo"]
            .map(String::from),
    );
    for key in &keys {
        assert_eq!(keyslot(specs[0].listen, key), keyslot(redis, key), "CLUSTER KEYSLOT {key:?}");
    }
    drop(_server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cluster_aware_connection_is_moved_to_the_master_and_readonly_reads_any_owner() {
    let (specs, _procs) = three(&[]);
    let nodes = addrs(&specs);
    let map = settled(&nodes, 3).expect("settled");
    let client = redis::Client::open(format!("redis://{}/", nodes[0])).unwrap();
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(5)).unwrap();
    let key = (0..).map(|i| format!("k{i}")).find(|k| master(&map, keyslot(nodes[0], k)) != nodes[0].to_string());
    let key = key.expect("a key mastered elsewhere");
    let slot = keyslot(nodes[0], &key);
    // Not cluster-aware yet: served here.
    assert_eq!(redis::cmd("SET").arg(&key).arg("v1").query::<String>(&mut conn).unwrap(), "OK");
    let _: Value = redis::cmd("CLUSTER").arg("SLOTS").query(&mut conn).unwrap();
    let err = redis::cmd("GET").arg(&key).query::<Value>(&mut conn).unwrap_err();
    assert_eq!(err.code(), Some("MOVED"), "{err:?}");
    assert!(err.to_string().ends_with(&format!("{slot} {}", master(&map, slot))), "{err:?}");
    let cross = redis::cmd("MGET").arg("foo").arg("bar").query::<Value>(&mut conn).unwrap_err();
    assert_eq!(cross.code(), Some("CROSSSLOT"), "{cross:?}");
    // READONLY: every node owns every slot at N=3, so reads are served here, writes still moved.
    assert_eq!(redis::cmd("READONLY").query::<String>(&mut conn).unwrap(), "OK");
    assert_eq!(redis::cmd("GET").arg(&key).query::<String>(&mut conn).unwrap(), "v1");
    assert!(redis::cmd("SET").arg(&key).arg("v2").query::<Value>(&mut conn).is_err());
    assert_eq!(redis::cmd("READWRITE").query::<String>(&mut conn).unwrap(), "OK");
    assert!(redis::cmd("GET").arg(&key).query::<Value>(&mut conn).is_err(), "READWRITE: moved again");
}

/// Run redis-cli with `args`, feeding `stdin`; returns stdout.
fn redis_cli(args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("redis-cli")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli is installed (apt-get install redis-tools)");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cli_args(addr: SocketAddr) -> [String; 5] {
    ["-c".into(), "-h".into(), addr.ip().to_string(), "-p".into(), addr.port().to_string()]
}

/// Through `via`, as a cluster-aware redis-cli session: READONLY, SET, then CLUSTER MYID on the connection the
/// SET ended on. Returns (SET's answer, the id of the node that took it).
fn cli_set(via: SocketAddr, key: &str, value: &str) -> (String, String) {
    let args = cli_args(via);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = redis_cli(&args, &format!("READONLY\nSET {key} {value}\nCLUSTER MYID\n"));
    // redis-cli -c notes a redirect on a line of its own ("-> Redirected to slot [s] located at ip:port").
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty() && !l.starts_with("-> ")).collect();
    (lines.get(1).unwrap_or(&"").to_string(), lines.last().unwrap_or(&"").to_string())
}

fn node_ids(map: &[Range]) -> Vec<(String, String)> {
    let mut ids: Vec<(String, String)> = map.iter().flat_map(|(_, _, n)| n.clone()).collect();
    ids.sort();
    ids.dedup();
    ids
}

#[test]
fn redis_cli_c_follows_moved_to_the_master_before_and_after_a_kill() {
    let (specs, mut procs) = three(&[]);
    let nodes = addrs(&specs);
    let map = settled(&nodes, 3).expect("settled");
    let ids = node_ids(&map);
    let id_of = |addr: &str| ids.iter().find(|(a, _)| a == addr).map(|(_, id)| id.clone()).unwrap();
    for i in 0..30 {
        let key = format!("cli:{i}");
        let (answer, took) = cli_set(nodes[0], &key, &format!("v{i}"));
        assert_eq!(answer, "OK", "{key}");
        assert_eq!(took, id_of(&master(&map, keyslot(nodes[0], &key))), "{key}: redis-cli -c ends on the master");
    }
    procs.remove(2).kill9();
    let survivors = &nodes[..2];
    let map = settled(survivors, 2).expect("the survivors' map");
    for i in 0..30 {
        let key = format!("cli:{i}");
        let args = cli_args(nodes[1]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(redis_cli(&args, &format!("GET {key}\n")).trim(), format!("v{i}"), "{key} after the kill");
        let (answer, took) = cli_set(nodes[1], &key, "after");
        assert_eq!(answer, "OK", "{key} after the kill");
        assert_eq!(took, id_of(&master(&map, keyslot(nodes[0], &key))), "{key}: moved to a survivor");
    }
}

/// `redis-benchmark --cluster` through `via`; returns (success, stdout).
fn benchmark(via: SocketAddr) -> (bool, String) {
    let out = Command::new("redis-benchmark")
        .args(["--cluster", "-h", &via.ip().to_string(), "-p", &via.port().to_string()])
        .args(["-n", "3000", "-c", "6", "-r", "1000", "-t", "set,get", "-q"])
        .output()
        .expect("redis-benchmark is installed (apt-get install redis-tools)");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn redis_benchmark_cluster_sends_every_key_to_its_master_before_and_after_a_kill() {
    let (specs, mut procs) = three(&[]);
    let nodes = addrs(&specs);
    settled(&nodes, 3).expect("settled");
    let before = forwards(&nodes);
    let (ok, out) = benchmark(nodes[0]);
    assert!(ok && out.contains("Cluster has 3 master nodes") && out.contains("GET: "), "{out}");
    assert_eq!(forwards(&nodes), before, "routed by the slot map, no request needed a forward");
    procs.remove(0).kill9();
    let survivors = &nodes[1..];
    settled(survivors, 2).expect("the survivors' map");
    let (ok, out) = benchmark(nodes[2]);
    assert!(ok && out.contains("Cluster has 2 master nodes") && out.contains("SET: "), "{out}");
}

#[test]
fn the_redis_crate_cluster_client_reroutes_after_a_kill() {
    let (specs, mut procs) = three(&[]);
    let nodes = addrs(&specs);
    settled(&nodes, 3).expect("settled");
    let urls: Vec<String> = nodes.iter().map(|a| format!("redis://{a}/")).collect();
    let client = redis::cluster::ClusterClientBuilder::new(urls)
        .connection_timeout(Duration::from_secs(1))
        .response_timeout(Duration::from_secs(2))
        .retries(3)
        .build()
        .unwrap();
    let mut conn = client.get_connection().expect("the cluster client connects");
    let before = forwards(&nodes);
    let keys: Vec<String> = (0..200).map(|i| format!("crate:{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        redis::cmd("SET").arg(key).arg(i).query::<()>(&mut conn).expect("SET");
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(redis::cmd("GET").arg(key).query::<usize>(&mut conn).unwrap(), i, "{key}");
    }
    assert_eq!(forwards(&nodes), before, "the client sent each key to its master");
    procs.remove(1).kill9();
    // Keys the dead node was master of fail until it is declared down and the client refreshes its map. The
    // crate's sync client refreshes on MOVED only (a refused connection makes it retry the same node), so after
    // an error it is reconnected, which reads CLUSTER SLOTS afresh: the one refresh.
    let mut errors = 0;
    for (i, key) in keys.iter().enumerate() {
        let rerouted = eventually(CONVERGE, || {
            let set = redis::cmd("SET").arg(key).arg(i + 1000).query::<()>(&mut conn);
            if set.is_err() {
                errors += 1;
                if let Ok(fresh) = client.get_connection() {
                    conn = fresh;
                }
                return false;
            }
            redis::cmd("GET").arg(key).query::<usize>(&mut conn).ok() == Some(i + 1000)
        });
        assert!(rerouted, "{key} is served again after the kill");
    }
    assert!(errors > 0, "the dead node was the master of some keys the client had mapped to it");
}
