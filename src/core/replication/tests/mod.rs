//! Replication scenarios on a small deterministic cluster of full nodes (see `harness`).

mod hostile;

use crate::core::driver::RequestId;
use bytes::Bytes;

mod bigvals;
mod liveness;
mod memory;

use crate::core::testkit::{addr, b, get, set, Cluster};

use crate::core::command::Command;
use crate::core::replication::{Consistency, EntryKind, Levels};
use crate::core::reply::Reply;
use crate::core::NodeConfig;

const ONE: Levels = Levels { read: Consistency::One, write: Consistency::One };
const QUORUM: Levels = Levels { read: Consistency::Quorum, write: Consistency::Quorum };
const ALL: Levels = Levels { read: Consistency::All, write: Consistency::All };

fn config() -> NodeConfig {
    NodeConfig { vnodes: 64, anti_entropy_period_ms: 2_000, ..NodeConfig::default() }
}

#[test]
fn a_write_through_any_node_lands_on_its_owners_and_reads_anywhere() {
    let mut c = Cluster::new(5, config());
    for i in 0..20 {
        let key = format!("k{i}");
        assert_eq!(c.call(i % 5, set(&key, "v"), QUORUM), Reply::Ok);
        c.run_for(50);
        let owners: std::collections::BTreeSet<usize> = c.owners(0, &key).into_iter().collect();
        assert_eq!(owners.len(), 3);
        assert_eq!(c.holders(&key, "v"), owners, "{key}");
        for j in 0..5 {
            assert_eq!(c.call(j, get(&key), ONE), Reply::Bulk(b("v")), "{key} via n{j}");
        }
    }
}

#[test]
fn every_node_computes_the_same_owners() {
    let c = Cluster::new(5, config());
    for i in 0..50 {
        let key = format!("key:{i}");
        let first = c.owners(0, &key);
        assert!((1..5).all(|j| c.owners(j, &key) == first));
    }
    let digest = c.node(0).ring_digest();
    assert!((1..5).all(|j| c.node(j).ring_digest() == digest));
}

#[test]
fn multi_key_commands_fan_out_per_owner() {
    let mut c = Cluster::new(4, config());
    let pairs: Vec<(Bytes, Bytes)> = (0..10).map(|i| (b(&format!("m{i}")), b(&format!("v{i}")))).collect();
    assert_eq!(c.call(1, Command::MSet { pairs, if_none_exist: false }, QUORUM), Reply::Ok);
    let keys: Vec<Bytes> = (0..11).map(|i| b(&format!("m{i}"))).collect();
    let Reply::Array(values) = c.call(2, Command::MGet { keys: keys.clone() }, QUORUM) else { panic!("array") };
    assert_eq!(values.len(), 11);
    assert_eq!(values[3], Reply::Bulk(b("v3")));
    assert_eq!(values[10], Reply::Nil);
    assert_eq!(c.call(3, Command::Exists { keys: keys.clone() }, ONE), Reply::Int(10));
    assert_eq!(c.call(0, Command::Del { keys: keys.clone() }, QUORUM), Reply::Int(10));
    assert_eq!(c.call(3, Command::Exists { keys }, QUORUM), Reply::Int(0));
}

#[test]
fn a_crashed_replica_does_not_fail_writes_and_gets_its_copy_back_after_restart() {
    let mut c = Cluster::new(3, config());
    c.crash(2);
    // Before the failure is detected: writes at ONE and QUORUM still succeed (hints for n2).
    for i in 0..10 {
        let key = format!("h{i}");
        assert_eq!(c.call(i % 2, set(&key, "x"), QUORUM), Reply::Ok, "{key}");
        assert_eq!(c.call(1 - i % 2, get(&key), ONE), Reply::Bulk(b("x")));
    }
    assert!(c.node(0).hints_pending() + c.node(1).hints_pending() > 0);
    c.run_for(5_000);
    c.start(2);
    let refilled = c.run_until(|c| (0..10).all(|i| c.holders(&format!("h{i}"), "x").contains(&2)), 30_000);
    assert!(refilled, "hints and anti-entropy refill the restarted replica");
    let stats = c.node(0).replication_stats().unwrap();
    assert!(stats.hints_stored > 0);
}

#[test]
fn all_level_fails_with_a_clear_error_when_a_replica_is_gone() {
    let mut c = Cluster::new(3, config());
    c.crash(2);
    let reply = c.call(0, set("k", "v"), ALL);
    let Reply::Error(text) = reply else { panic!("expected an error, got {reply:?}") };
    assert!(text.starts_with("TIMEOUT write at ALL: 2 of 3"), "{text}");
}

#[test]
fn replicas_converge_after_a_partition_without_reads() {
    let mut c = Cluster::new(5, config());
    c.side = vec![0, 0, 1, 1, 1];
    c.run_for(6_000);
    for i in 0..30 {
        let key = format!("p{i}");
        let side_a = c.call(0, set(&key, "a"), ONE);
        c.run_for(5);
        let side_b = c.call(3, set(&key, "b"), ONE);
        assert_eq!((side_a, side_b), (Reply::Ok, Reply::Ok));
    }
    c.side = vec![0; 5];
    let converged = c.run_until(
        |c| {
            (0..5).all(|n| c.node(n).ring_members() == 5)
                && (0..30).all(|i| {
                    let key = format!("p{i}");
                    let owners = c.owners(0, &key);
                    let first = c.node(owners[0]).local_entry(key.as_bytes(), c.now);
                    first.is_some() && owners.iter().all(|&o| c.node(o).local_entry(key.as_bytes(), c.now) == first)
                })
        },
        60_000,
    );
    assert!(converged, "anti-entropy makes every key's owners identical");
    // The later write (side b, 5 ms after side a) wins everywhere.
    for i in 0..30 {
        let key = format!("p{i}");
        let got = c.call(i % 5, get(&key), ALL);
        assert_eq!(got, Reply::Bulk(b("b")), "{key} via n{}", i % 5);
    }
}

#[test]
fn a_delete_is_not_undone_by_a_replica_that_missed_it() {
    let mut c = Cluster::new(3, config());
    assert_eq!(c.call(0, set("d", "v"), ALL), Reply::Ok);
    c.side = vec![0, 0, 1];
    c.run_for(6_000);
    assert_eq!(c.call(0, Command::Del { keys: vec![b("d")] }, ONE), Reply::Int(1));
    c.side = vec![0; 3];
    c.run_for(20_000);
    for i in 0..3 {
        assert_eq!(c.call(i, get("d"), ALL), Reply::Nil, "via n{i}");
        let e = c.node(i).local_entry(b"d", c.now).expect("tombstone kept during the grace period");
        assert_eq!(e.kind, EntryKind::Tombstone);
    }
}

#[test]
fn a_quorum_read_repairs_a_stale_replica() {
    let mut c = Cluster::new(3, config());
    assert_eq!(c.call(0, set("r", "old"), ALL), Reply::Ok);
    let owners = c.owners(0, "r");
    let stale = owners[2];
    let others: Vec<usize> = owners.iter().copied().filter(|&o| o != stale).collect();
    c.side[stale] = 1;
    assert_eq!(c.call(others[0], set("r", "new"), QUORUM), Reply::Ok);
    c.side[stale] = 0;
    assert_eq!(c.call(stale, get("r"), ONE), Reply::Bulk(b("old")), "no read repair at ONE");
    assert_eq!(c.call(stale, get("r"), QUORUM), Reply::Bulk(b("new")), "a quorum read sees the newer write");
    c.run_for(100);
    assert_eq!(c.holders("r", "new").len(), 3);
    assert!(c.node(stale).replication_stats().unwrap().merged_changes > 0);
}

#[test]
fn a_joining_node_receives_its_ranges_and_old_owners_let_go() {
    let mut c = Cluster::new(4, config());
    c.crash(3);
    c.run_for(10_000);
    for i in 0..200 {
        assert_eq!(c.call(i % 3, set(&format!("j{i}"), "v"), QUORUM), Reply::Ok);
    }
    c.start(3);
    let moved = c.run_until(
        |c| {
            (0..200).all(|i| {
                let key = format!("j{i}");
                let owners: std::collections::BTreeSet<usize> = c.owners(0, &key).into_iter().collect();
                (0..4).all(|n| c.node(n).ring_members() == 4) && owners.len() == 3 && c.holders(&key, "v") == owners
            })
        },
        90_000,
    );
    assert!(moved, "every key sits exactly on its new owners");
    assert!(c.node(3).store().values_len() > 0);
}

/// Sum of anti-entropy bytes sent by every live node.
fn ae_bytes(c: &Cluster) -> u64 {
    c.nodes.iter().flatten().map(|n| n.replication_stats().map_or(0, |s| s.ae_bytes_sent)).sum()
}

/// Whether every key's owners hold identical entries (and all nodes see the whole cluster).
fn converged(c: &Cluster, keys: &[String], members: usize) -> bool {
    (0..members).all(|n| c.node(n).ring_members() == members)
        && keys.iter().all(|key| {
            let owners = c.owners(0, key);
            let first = c.node(owners[0]).local_entry(key.as_bytes(), c.now);
            first.is_some() && owners.iter().all(|&o| c.node(o).local_entry(key.as_bytes(), c.now) == first)
        })
}

/// One convergence run: `total` keys written everywhere first, then a 30 s 2/3 split of 5 nodes during which
/// `differ` of them are written on both sides at ONE, then the heal. Returns (virtual ms to convergence,
/// anti-entropy bytes sent, bytes of the differing data, idle anti-entropy bytes in the minute after).
fn converge_after_split(total: usize, differ: usize) -> (u64, u64, u64, u64) {
    let mut c = Cluster::new(5, NodeConfig { vnodes: 256, ..NodeConfig::default() });
    let keys: Vec<String> = (0..total).map(|i| format!("key:{i}")).collect();
    let value = "x".repeat(100);
    for (i, key) in keys.iter().enumerate() {
        c.submit(i % 5, set(key, &format!("0{value}")), ALL);
        if i % 500 == 499 {
            c.run_for(100);
        }
    }
    c.run_for(5_000);
    let before_split = ae_bytes(&c);
    c.side = vec![0, 0, 1, 1, 1];
    c.run_for(6_000);
    let start = c.now;
    for (i, key) in keys.iter().take(differ).enumerate() {
        c.submit(i % 2, set(key, &format!("a{value}")), ONE);
        c.submit(2 + i % 3, set(key, &format!("b{value}")), ONE);
        if i % 500 == 499 {
            c.run_for(100);
        }
    }
    c.run_for((30_000 + start).saturating_sub(c.now).max(1_000));
    let _ = before_split;
    let before = ae_bytes(&c);
    let healed = c.now;
    c.measure_bytes = true;
    c.side = vec![0; 5];
    while !converged(&c, &keys, 5) {
        c.run_for(1_000);
        assert!(c.now - healed < 600_000, "no convergence within 10 virtual minutes");
    }
    let after = ae_bytes(&c);
    println!(
        "encoded peer bytes by message kind, heal to convergence ({differ} of {total} differ): {:?}",
        c.peer_bytes
    );
    c.run_for(60_000);
    let idle = ae_bytes(&c) - after;
    let differ_bytes: u64 = keys.iter().take(differ).map(|k| (k.len() + 101) as u64).sum();
    (c.now - 60_000 - healed, after - before, differ_bytes, idle)
}

/// Convergence benchmark (virtual time): after a 30 s 2/3 split with keys written on both sides, the time until
/// every key's owners are identical and the anti-entropy bytes sent, for a large and a small difference over the
/// same 100k keys (bytes follow the difference, not the data). Run:
/// `cargo test --release --lib convergence_bench -- --ignored --nocapture` (`KEYS=` to change the total).
#[test]
#[ignore]
#[allow(clippy::disallowed_methods)] // It reports wall time next to virtual time.
fn convergence_bench() {
    let total: usize = std::env::var("KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    println!("| keys | written on both sides | converged after heal (virtual s) | anti-entropy bytes | differing data bytes | ratio | idle bytes/min (5 nodes) |");
    println!("|---|---|---|---|---|---|---|");
    for differ in [total, total / 100] {
        let wall = std::time::Instant::now();
        let (ms, bytes, data, idle) = converge_after_split(total, differ);
        println!(
            "| {total} | {differ} | {:.1} | {bytes} | {data} | {:.2} | {idle} |  (wall {:.1} s)",
            ms as f64 / 1000.0,
            bytes as f64 / data as f64,
            wall.elapsed().as_secs_f64()
        );
    }
}

#[test]
fn expiry_travels_with_the_version() {
    let mut c = Cluster::new(3, config());
    let ex = Command::Set {
        key: b("t"),
        value: b("v"),
        cond: Default::default(),
        ttl: crate::core::command::SetTtl::At(crate::core::command::ExpireAt::InMs(5_000)),
        get: false,
        reply_int: false,
    };
    assert_eq!(c.call(0, ex, ALL), Reply::Ok);
    let at: Vec<u64> =
        (0..3).map(|i| c.node(i).local_entry(b"t", c.now).expect("on every replica").expire_at_ms).collect();
    assert!(at[0] != 0 && at.iter().all(|&a| a == at[0]), "{at:?}");
    let persist = Command::Persist { key: b("t") };
    assert_eq!(c.call(1, persist, ALL), Reply::Int(1));
    assert!((0..3).all(|i| c.node(i).local_entry(b"t", c.now).unwrap().expire_at_ms == 0));
    c.run_for(6_000);
    assert_eq!(c.call(2, get("t"), ONE), Reply::Bulk(b("v")));
}

#[test]
fn an_eviction_is_not_undone_by_anti_entropy() {
    // Node 0 has a small memory limit; the others have none. What node 0 evicts must not come back to it, and
    // the eviction marker makes the other replicas drop the same version too.
    let mut c = Cluster::new(3, config());
    let limit = 60_000;
    c.nodes[0].as_mut().unwrap().config_mut().maxmemory_bytes = Some(limit);
    let value = "x".repeat(400);
    for i in 0..400 {
        assert_eq!(c.call(1, set(&format!("e{i}"), &value), ONE), Reply::Ok);
    }
    c.run_for(30_000);
    let n0 = c.node(0);
    assert!(n0.store().used_bytes() <= limit, "node 0 stays under its limit");
    let evicted: Vec<usize> =
        (0..400).filter(|i| n0.store().peek(format!("e{i}").as_bytes(), c.now).is_none()).collect();
    assert!(evicted.len() > 200, "node 0 evicted most keys ({})", evicted.len());
    // The evicted keys are gone from every replica (markers spread), and stay gone from node 0.
    for &i in &evicted {
        let key = format!("e{i}");
        assert!(c.holders(&key, &value).is_empty(), "{key} came back somewhere");
    }
    assert!(c.node(1).store().stats().evicted_keys == 0, "others dropped them through markers, not memory");
}

#[test]
fn a_write_after_the_first_owner_fails_over_dominates_the_acknowledged_one_whatever_the_clocks() {
    // Anti-entropy is slow here so that only the write path can carry the earlier write.
    let mut c = Cluster::new(3, NodeConfig { anti_entropy_period_ms: 120_000, ..config() });
    let owners = c.owners(0, "k");
    let (p, second, third) = (owners[0], owners[1], owners[2]);
    // The first owner's clock runs a minute ahead: last-writer-wins alone would keep its write.
    c.skew[p] = 60_000;
    // A clock jump looks like a pause to the node (`stall`): it refuses forwards for one forward timeout.
    c.run_for(3_000);
    // u is acknowledged at QUORUM by the first and third owners (the second is cut off for that write).
    c.side[second] = 1;
    assert_eq!(c.call(third, set("k", "u"), QUORUM), Reply::Ok);
    // Then the first owner is cut off and the second is back: it becomes the first owner, without u.
    c.side = vec![0; 3];
    c.side[p] = 1;
    c.run_for(8_000);
    assert!(c.node(second).local_entry(b"k", c.now).is_none_or(|e| e.value != "u".as_bytes()));
    assert_eq!(c.call(second, set("k", "w"), QUORUM), Reply::Ok);
    c.side = vec![0; 3];
    c.run_until(|c| (0..3).all(|i| c.node(i).ring_members() == 3), 30_000);
    assert_eq!(c.call(p, get("k"), ALL), Reply::Bulk(b("w")), "the causally newer write wins");
}

#[test]
fn an_expired_value_does_not_let_an_older_copy_come_back() {
    let mut c = Cluster::new(3, config());
    assert_eq!(c.call(0, set("x", "old"), ALL), Reply::Ok);
    // n2 is cut off (briefly, before detection) and misses the newer write, which expires a second later.
    c.side[2] = 1;
    let with_ttl = Command::Set {
        key: b("x"),
        value: b("new"),
        cond: Default::default(),
        ttl: crate::core::command::SetTtl::At(crate::core::command::ExpireAt::InMs(1_000)),
        get: false,
        reply_int: false,
    };
    assert_eq!(c.call(0, with_ttl, QUORUM), Reply::Ok);
    c.run_for(1_500);
    c.side[2] = 0;
    c.run_for(10_000);
    for i in 0..3 {
        assert_eq!(c.call(i, get("x"), ALL), Reply::Nil, "via n{i}");
        let e = c.node(i).local_entry(b"x", c.now).expect("the expiry left a tombstone");
        assert_eq!(e.kind, EntryKind::Tombstone, "n{i}");
    }
}

#[test]
fn a_delete_on_an_owner_that_restarted_empty_still_deletes() {
    let mut c = Cluster::new(3, config());
    assert_eq!(c.call(0, set("d", "v"), ALL), Reply::Ok);
    let first = c.owners(0, "d")[0];
    c.run_for(20_000);
    // The first owner restarts empty, quicker than failure detection: its ring never changed.
    c.crash(first);
    c.start(first);
    c.run_until(|c| c.node(first).ring_members() == 3, 10_000);
    assert!(c.node(first).local_entry(b"d", c.now).is_none(), "restarted empty");
    assert_eq!(c.call(first, Command::Del { keys: vec![b("d")] }, QUORUM), Reply::Int(1));
    c.run_for(10_000);
    for i in 0..3 {
        assert_eq!(c.call(i, get("d"), ALL), Reply::Nil, "via n{i}");
    }
}

#[test]
fn info_says_when_the_ring_has_settled() {
    let mut c = Cluster::new(3, config());
    let settled = |c: &mut Cluster| {
        let info = Command::Info { sections: vec!["cluster".into()], server: Default::default() };
        let Reply::Verbatim(text) = c.call(0, info, ONE) else { panic!("verbatim") };
        text.lines().find_map(|l| l.strip_prefix("ring_settled:")).map(str::to_owned)
    };
    assert_eq!(settled(&mut c).as_deref(), Some("0"), "a ring that just formed has not settled");
    c.run_for(2 * config().anti_entropy_period_ms);
    assert_eq!(settled(&mut c).as_deref(), Some("1"));
}

#[test]
fn peer_messages_from_a_sender_outside_the_view_are_dropped_and_counted() {
    use crate::core::node::Input;
    use crate::core::replication::PeerMsg;
    let mut c = Cluster::new(3, config());
    assert_eq!(c.call(1, set("k", "v"), ALL), Reply::Ok);
    assert!(c.holders("k", "v").contains(&0));
    let flush = |from, name: &str| Input::Peer { from, name: name.into(), msg: PeerMsg::FlushAll };
    let dropped = |c: &Cluster| c.node(0).replication_stats().unwrap().peer_unknown_sender;
    let before = dropped(&c);
    // A stranger; a member's name from another address; a member's address under another name; this very node.
    for input in [flush(addr(9), "n9"), flush(addr(9), "n1"), flush(addr(1), "mallory"), flush(addr(0), "n0")] {
        c.deliver(0, input);
    }
    assert_eq!(dropped(&c) - before, 4);
    assert!(c.holders("k", "v").contains(&0), "no forged FlushAll reached the store");
    // Nor a read: a Get from a stranger is not answered (no GetReply is sent anywhere).
    let sent = c.peer_messages;
    c.deliver(
        0,
        Input::Peer { from: addr(9), name: "n9".into(), msg: PeerMsg::Get { id: RequestId(1), keys: vec![b("k")] } },
    );
    assert_eq!((c.peer_messages, dropped(&c) - before), (sent, 5));
    // A member that is down is no longer a sender either.
    c.crash(2);
    assert!(c.run_until(|c| c.node(0).ring_members() == 2, 30_000), "n2 is declared down");
    c.deliver(0, flush(addr(2), "n2"));
    assert_eq!(dropped(&c) - before, 6);
    assert!(c.holders("k", "v").contains(&0));
    // The live member under its own name and address is obeyed.
    c.deliver(0, flush(addr(1), "n1"));
    assert!(!c.holders("k", "v").contains(&0), "a member's FlushAll clears the node");
    assert_eq!(dropped(&c) - before, 6);
}

#[test]
#[ignore = "measurement: cargo test --release --lib hint_insert_cost -- --ignored --nocapture"]
#[allow(clippy::disallowed_methods)] // It measures wall time per insert.
fn hint_insert_cost_at_the_limit() {
    // Inserting into a full hint table: time per insert for growing tables (constant per insert when eviction
    // is O(log n); growing with the table when it scans).
    for max in [10_000usize, 40_000, 160_000] {
        let mut c = Cluster::new(1, NodeConfig { hints_max: max, ..config() });
        let node = c.nodes[0].as_mut().unwrap();
        for i in 0..max {
            node.view().unwrap().add_hint(crate::core::testkit::T0 + i as u64, "n9".into(), b(&format!("k{i}")));
        }
        let extra = 5_000;
        let start = std::time::Instant::now();
        for i in 0..extra {
            node.view().unwrap().add_hint(
                crate::core::testkit::T0 + (max + i) as u64,
                "n9".into(),
                b(&format!("x{i}")),
            );
        }
        let per = start.elapsed().as_nanos() as f64 / extra as f64;
        println!("hints_max {max}: {per:.0} ns per insert into a full table");
        assert_eq!(node.hints_pending(), max);
    }
}
