//! Liveness with real `shoal` processes on loopback: a node under heavy pipelined client load (64 connections
//! of 512-deep SET/GET pipelines, as `redis-benchmark -P 512 -c 64` sends) is never suspected by its peers,
//! because gossip has its own path into the node task. Every wait is bounded in count and time; nothing asserts
//! on speed, and error replies under the overload (a forward timing out) are counted, not judged.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::eventually;
use common::members::{Client, View};
use common::procs::three;
use redis::Value;

/// Longest the load may run before it is stopped (the test then judges what it saw meanwhile).
const LOAD_TIME_MAX: Duration = Duration::from_secs(90);

/// Client connections of the load, and the commands each sends per pipeline.
const CONNECTIONS: u32 = 64;
const PIPELINE: u32 = 512;

/// Writes at ONE are answered without waiting for the (loaded) replicas; the writes still replicate. SWIM keeps
/// its LAN timings (80 ms probe timeout, down 1 s after a suspicion).
const FLAGS: [&str; 4] = ["--write-consistency", "ONE", "--request-timeout-ms", "2000"];

/// Every member's incarnation as `view` shows it, by name.
fn incarnations(view: &View) -> Vec<(String, u64)> {
    view.0.iter().map(|m| (m.name.clone(), m.incarnation)).collect()
}

/// What the load saw: replies, error replies and broken connections.
#[derive(Default)]
struct LoadStats {
    replies: AtomicU64,
    errors: AtomicU64,
    broken: AtomicU64,
}

/// One load connection: pipelines of SET and GET on random keys of a 100,000-key space until `requests` are sent,
/// `stop` is set or the time bound passes; a broken connection is counted and opened again.
fn load_connection(addr: SocketAddr, requests: u32, seed: u64, stop: &AtomicBool, stats: &LoadStats) {
    let started = Instant::now();
    let (mut sent, mut rng, mut conn) = (0u32, seed | 1, None);
    while sent < requests && !stop.load(Ordering::Relaxed) && started.elapsed() < LOAD_TIME_MAX {
        if conn.is_none() {
            let opened = redis::Client::open(format!("redis://{addr}/"))
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)));
            match opened {
                Ok(c) => {
                    let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
                    conn = Some(c);
                }
                Err(_) => {
                    stats.broken.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for i in 0..PIPELINE {
            // xorshift: a key space as redis-benchmark's -r 100000 gives.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let key = format!("key:{:06}", rng % 100_000);
            if i % 2 == 0 {
                pipe.cmd("SET").arg(key).arg("xxx");
            } else {
                pipe.cmd("GET").arg(key);
            }
        }
        sent += PIPELINE;
        match pipe.query::<Vec<Value>>(conn.as_mut().expect("connected")) {
            Ok(replies) => {
                let errors = replies.iter().filter(|v| matches!(v, Value::ServerError(_))).count() as u64;
                stats.replies.fetch_add(replies.len() as u64, Ordering::Relaxed);
                stats.errors.fetch_add(errors, Ordering::Relaxed);
            }
            Err(_) => {
                stats.broken.fetch_add(1, Ordering::Relaxed);
                conn = None;
            }
        }
    }
}

/// Start the load against `addr`: `requests` commands in all over `CONNECTIONS` connections.
fn load(addr: SocketAddr, requests: u32, stop: &Arc<AtomicBool>, stats: &Arc<LoadStats>) -> Vec<JoinHandle<()>> {
    (0..CONNECTIONS)
        .map(|i| {
            let (stop, stats) = (stop.clone(), stats.clone());
            std::thread::spawn(move || {
                load_connection(addr, requests / CONNECTIONS, 0x9E37_79B9 + u64::from(i), &stop, &stats)
            })
        })
        .collect()
}

#[test]
fn a_node_under_pipelined_client_load_is_not_suspected_by_its_peers() {
    let (specs, _procs) = three(&FLAGS);
    let mut clients: Vec<Client> = specs.iter().map(|s| Client::new(s.listen)).collect();
    let before: Vec<Vec<(String, u64)>> =
        clients.iter_mut().map(|c| incarnations(&c.view().expect("view before the load"))).collect();
    let (stop, stats) = (Arc::new(AtomicBool::new(false)), Arc::new(LoadStats::default()));
    let mut workers = load(specs[0].listen, 300_000, &stop, &stats);
    let started = Instant::now();
    let (mut samples, mut seen) = (0u32, Vec::new());
    while !workers.iter().all(|w| w.is_finished()) {
        if started.elapsed() > LOAD_TIME_MAX {
            stop.store(true, Ordering::Relaxed);
        }
        for (spec, client) in specs.iter().zip(&mut clients) {
            let Some(view) = client.view() else { continue };
            samples += 1;
            for m in view.0.iter().filter(|m| !m.is_alive()) {
                seen.push(format!("{} saw {} {} after {:?}", spec.name, m.name, m.state, started.elapsed()));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for w in workers.drain(..) {
        w.join().expect("a load connection panicked");
    }
    let ran_for = started.elapsed();
    let (replies, errors, broken) = (
        stats.replies.load(Ordering::Relaxed),
        stats.errors.load(Ordering::Relaxed),
        stats.broken.load(Ordering::Relaxed),
    );
    assert!(replies > 0, "the loaded node answered the load ({errors} errors, {broken} broken connections)");
    assert!(samples >= 3, "the nodes answered SHOAL.MEMBERS during the load ({samples} views)");
    assert!(seen.is_empty(), "members seen not alive under the load: {seen:?}");
    for ((spec, client), before) in specs.iter().zip(&mut clients).zip(&before) {
        // The node may still work off the last pipelines: its view comes once it does.
        let mut view = None;
        assert!(
            eventually(Duration::from_secs(30), || {
                view = client.view();
                view.is_some()
            }),
            "{}",
            spec.name
        );
        let after = incarnations(&view.expect("just read"));
        // A member that had been suspected refutes it with a higher incarnation: equal ones mean nobody was.
        assert_eq!(&after, before, "{}'s view: incarnations changed under the load (someone was suspected)", spec.name);
        assert_eq!(client.info_u64("members_suspect"), Some(0), "{} suspects nobody", spec.name);
        assert_eq!(client.info_u64("gossip_datagrams_dropped"), Some(0), "{} dropped no gossip", spec.name);
    }
    eprintln!(
        "load ran {ran_for:?}: {replies} replies, {errors} error replies, {broken} broken connections; {samples} \
         views taken during it"
    );
}
