//! Replication under `--maxmemory`: deletes, eviction markers and refusals on every path that writes.

use crate::core::command::Command;
use crate::core::driver::RequestId;
use crate::core::replication::{Consistency, Levels};
use crate::core::reply::Reply;
use crate::core::testkit::{b, get, set, Cluster};
use crate::core::NodeConfig;

const ONE: Levels = Levels { read: Consistency::One, write: Consistency::One };
const QUORUM: Levels = Levels { read: Consistency::Quorum, write: Consistency::Quorum };
const ALL: Levels = Levels { read: Consistency::All, write: Consistency::All };

fn config() -> NodeConfig {
    NodeConfig { vnodes: 64, anti_entropy_period_ms: 2_000, ..NodeConfig::default() }
}

#[test]
fn a_delete_is_not_undone_when_memory_pressure_follows_it() {
    // Every node has a memory limit. n2 holds a value, is cut off, and misses its delete; n0 and n1 then fill
    // their memory. Their tombstones must survive that pressure, or n2 brings the deleted key back on heal.
    let limit = 200_000;
    let mut c = Cluster::new(3, NodeConfig { maxmemory_bytes: Some(limit), ..config() });
    assert_eq!(c.call(0, set("victim", "old"), ALL), Reply::Ok);
    c.side = vec![0, 0, 1];
    c.run_for(6_000);
    assert_eq!(c.call(0, Command::Del { keys: vec![b("victim")] }, QUORUM), Reply::Int(1));
    let filler = "f".repeat(400);
    for i in 0..1_500 {
        assert_eq!(c.call(i % 2, set(&format!("fill{i}"), &filler), ONE), Reply::Ok);
    }
    assert!(c.node(0).store().stats().evicted_keys > 0, "the filler made n0 evict");
    c.side = vec![0, 0, 0];
    c.run_for(40_000);
    for i in 0..3 {
        assert_eq!(c.call(i, get("victim"), ONE), Reply::Nil, "deleted key came back on n{i}");
    }
    assert!((0..3).all(|i| c.node(i).store().used_bytes() <= limit + 10_000));
}

#[test]
fn a_small_evicted_value_is_not_pushed_back_by_anti_entropy() {
    // Values far smaller than an eviction marker used to leave none, so anti-entropy pushed them straight back.
    let mut c = Cluster::new(3, config());
    let limit = 100_000;
    c.nodes[0].as_mut().unwrap().config_mut().maxmemory_bytes = Some(limit);
    for i in 0..3_000 {
        assert_eq!(c.call(1, set(&format!("s{i}"), "v"), ONE), Reply::Ok);
    }
    c.run_for(30_000);
    let n0 = c.node(0);
    assert!(n0.store().used_bytes() <= limit, "node 0 stays under its limit");
    let evicted: Vec<usize> =
        (0..3_000).filter(|i| n0.store().peek(format!("s{i}").as_bytes(), c.now).is_none()).collect();
    assert!(evicted.len() > 1_500, "node 0 evicted many keys ({})", evicted.len());
    for &i in &evicted {
        assert!(c.holders(&format!("s{i}"), "v").is_empty(), "s{i} came back somewhere");
    }
    // Markers spread at once, so replicas drop the same version and anti-entropy has nothing to push back. That
    // holds even for the markers that went again within the same input (markers keep to 1/8 of the limit, the
    // oldest going first): they are spread all the same.
    let stats = n0.store().stats();
    let again = stats.evicted_keys as usize - evicted.len();
    assert_eq!(again, 0, "{again} evictions undone of {}", evicted.len());
    c.run_for(30_000);
    assert_eq!(c.node(0).store().stats().evicted_keys, stats.evicted_keys, "nothing comes back once writes stop");
}

#[test]
fn evictions_on_every_node_are_not_undone_whatever_the_value_size() {
    // All three nodes under a limit, a working set several times it, values from 1 byte to 40 KB written at ONE
    // through every node in turn: no node evicts a key twice, so none came back.
    let limit = 400_000;
    let mut c = Cluster::new(3, NodeConfig { maxmemory_bytes: Some(limit), ..config() });
    let sizes = [1usize, 30, 300, 3_000, 40_000];
    let keys = 1_500;
    for i in 0..keys {
        let value = "v".repeat(sizes[i % sizes.len()]);
        assert_eq!(c.call(i % 3, set(&format!("k{i}"), &value), ONE), Reply::Ok);
        if i % 100 == 0 {
            c.run_for(1_000);
        }
    }
    c.run_for(30_000);
    for n in 0..3 {
        let store = c.node(n).store();
        assert!(store.used_bytes() <= limit, "n{n} stays under its limit");
        let held = (0..keys).filter(|i| store.peek(format!("k{i}").as_bytes(), c.now).is_some()).count();
        let evicted = store.stats().evicted_keys as usize;
        assert!(evicted > keys / 10, "n{n} evicted keys ({evicted})");
        // Every key written is held or was evicted exactly once: an eviction undone would be evicted again.
        assert!(held + evicted <= keys, "n{n}: {held} held + {evicted} evictions > {keys} keys");
    }
}

#[test]
fn a_mass_expiry_is_worked_off_in_slices_and_an_unreached_key_answers_as_its_tombstone() {
    use crate::core::command::{ExpireAt, SetCond, SetTtl};
    use crate::core::replication::{EntryKind, PeerMsg};
    use crate::core::{Input, Outbox, Output, EXPIRE_KEYS_PER_INPUT};
    let mut c = Cluster::new(3, config());
    let keys = 5_000;
    for i in 0..keys {
        let cmd = Command::Set {
            key: b(&format!("x{i}")),
            value: b("v"),
            cond: SetCond::Always,
            ttl: SetTtl::At(ExpireAt::AtMs((c.now + 60_000) as i64)),
            get: false,
            reply_int: false,
        };
        assert_eq!(c.call(i % 3, cmd, ONE), Reply::Ok);
    }
    c.run_for(100);
    // Every key is due at once. One client input reclaims one slice, not the whole mass.
    let before = c.now;
    let now = c.now + 61_000;
    let node = c.nodes[0].as_mut().unwrap();
    let due = node.store().expiring_len();
    assert!(due >= keys, "{due}");
    let mut out = Outbox::new();
    node.handle(now, Input::Client { conn: 9, req: 1, cmd: Command::DbSize, levels: ONE }, &mut out);
    // (A reclaimed value's tombstone enters the index too; the due values fell by at most one slice.)
    let values_due = node.store().values_len();
    assert!(values_due >= keys - EXPIRE_KEYS_PER_INPUT, "{values_due} values left after one input");
    // A peer asking for a key the sweep has not reached gets its tombstone, not "nothing".
    let unreached = (0..keys)
        .map(|i| format!("x{i}"))
        .find(|k| node.store().peek(k.as_bytes(), before).is_some())
        .expect("some key not reclaimed yet");
    let from = crate::core::testkit::addr(1);
    node.handle(
        now,
        Input::Peer { from, name: "n1".into(), msg: PeerMsg::Get { id: RequestId(5), keys: vec![b(&unreached)] } },
        &mut out,
    );
    let answer = out.drain().find_map(|o| match o {
        Output::SendPeer { msg: PeerMsg::GetReply { entries, .. }, .. } => Some(entries),
        _ => None,
    });
    let entry = answer.expect("a GetReply").pop().flatten().expect("the tombstone, not nothing");
    assert_eq!(entry.kind, EntryKind::Tombstone);
    // Active expiry then works the rest off in bounded passes.
    c.run_for(65_000);
    assert_eq!(c.node(0).store().values_len(), 0);
    assert!(c.node(0).store().stats().expired_keys >= keys as u64);
}

/// Fill node `i`'s memory with values written at ONE through node 0, until it refuses them (keys node `i` does
/// not coordinate: as a coordinator it would answer OOM itself instead of refusing a replica's copy).
fn fill_until_refused(c: &mut Cluster, i: usize, prefix: &str) {
    let value = "z".repeat(300);
    let keys: Vec<String> = (0..6_000).map(|k| format!("{prefix}{k}")).filter(|k| c.owners(0, k)[0] != i).collect();
    for key in keys.iter().take(2_000) {
        assert_eq!(c.call(0, set(key, &value), ONE), Reply::Ok);
        c.run_for(5);
        if c.node(i).replication_stats().unwrap().merges_refused > 0 {
            return;
        }
    }
    panic!("n{i} never refused a write");
}

#[test]
fn a_full_noeviction_replica_refuses_and_the_coordinator_does_not_count_it() {
    let mut c = Cluster::new(3, config());
    let limit = 100_000;
    let n2 = c.nodes[2].as_mut().unwrap();
    n2.config_mut().maxmemory_bytes = Some(limit);
    n2.config_mut().eviction = crate::core::store::EvictionPolicy::NoEviction;
    fill_until_refused(&mut c, 2, "fill");
    assert!(c.node(2).store().used_bytes() <= limit, "replication does not push n2 over its limit");
    assert_eq!(c.node(2).store().stats().evicted_keys, 0);
    // Keys n2 replicates but does not coordinate (a coordinator checks its limit before a write, as Redis does,
    // and may pass it by that one write).
    let mut keys = (0..).map(|k| format!("big{k}")).filter(|k| c.owners(0, k)[0] != 2);
    let (big, big2) = (keys.next().unwrap(), keys.next().unwrap());
    // At ALL the write cannot be met without n2: the client hears OOM with the counts, not OK.
    let reply = c.call(0, set(&big, &"y".repeat(5_000)), ALL);
    let Reply::Error(text) = reply else { panic!("expected an error, got {reply:?}") };
    // (It fails as soon as n2's refusal makes ALL impossible, whether or not n1 acknowledged yet.)
    assert!(
        text.starts_with("OOM write at ALL: ")
            && text.ends_with("of 3 required replicas acknowledged, 1 refused for lack of memory"),
        "{text}"
    );
    // QUORUM is met by the two others.
    assert_eq!(c.call(0, set(&big2, &"y".repeat(5_000)), QUORUM), Reply::Ok);
    c.run_for(20_000);
    assert!(c.node(2).store().used_bytes() <= limit, "nor do hints or anti-entropy");
    assert!(c.node(0).replication_stats().unwrap().replica_refusals >= 1);
    // A delete always works, even on the full node, and removes its copy.
    let victim = (0..2_000).map(|k| format!("fill{k}")).find(|k| c.node(2).store().peek(k.as_bytes(), c.now).is_some());
    let victim = victim.expect("n2 holds some filler");
    assert_eq!(c.call(0, Command::Del { keys: vec![b(&victim)] }, ALL), Reply::Int(1));
    assert!(c.holders(&victim, &"z".repeat(300)).is_empty());
}

#[test]
fn deletes_work_on_nodes_that_are_all_full_under_noeviction() {
    let limit = 60_000;
    let config = NodeConfig {
        maxmemory_bytes: Some(limit),
        eviction: crate::core::store::EvictionPolicy::NoEviction,
        ..config()
    };
    let mut c = Cluster::new(3, config);
    let value = "w".repeat(500);
    let mut written = Vec::new();
    for k in 0..500 {
        let key = format!("w{k}");
        match c.call(k % 3, set(&key, &value), ALL) {
            Reply::Ok => written.push(key),
            Reply::Error(e) => {
                assert!(e.starts_with("OOM"), "{e}");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(written.len() > 50, "{}", written.len());
    for key in written.iter().take(20) {
        assert_eq!(c.call(1, Command::Del { keys: vec![b(key)] }, ALL), Reply::Int(1), "{key}");
        assert_eq!(c.call(2, get(key), ALL), Reply::Nil);
    }
    // The space the deletes freed takes a new write again.
    assert_eq!(c.call(0, set("after", "v"), ALL), Reply::Ok);
}

/// Anti-entropy bytes (encoded frames of the describing steps and of `Put`s without acknowledgement: repairs and
/// spread eviction markers) sent so far, and those of the fixed first step alone.
fn ae_frame_bytes(c: &Cluster) -> (u64, u64) {
    let of = |k: &str| c.peer_bytes.get(k).copied().unwrap_or(0);
    let all = ["AeGroups", "AeBuckets", "AeSubs", "AeKeys", "AePull", "Put(repair)"].iter().map(|k| of(k)).sum();
    (all, of("AeGroups"))
}

/// What a working set twice the memory limit costs in anti-entropy traffic.
struct AeTraffic {
    /// Value bytes the clients wrote.
    written: u64,
    /// Anti-entropy and marker bytes while they wrote.
    during: u64,
    /// Anti-entropy bytes in the quiet minute after, and those of the fixed first step alone.
    after: u64,
    after_fixed: u64,
}

/// Write a working set twice the memory limit of every node, then measure what anti-entropy sends: during the
/// writes, and over a minute once they stop.
fn twice_the_limit(value_bytes: usize) -> AeTraffic {
    let limit = 400_000;
    let mut c = Cluster::new(3, NodeConfig { maxmemory_bytes: Some(limit), ..config() });
    c.measure_bytes = true;
    let value = "a".repeat(value_bytes);
    let keys = 2 * limit / (value_bytes + 120);
    for k in 0..keys {
        assert_eq!(c.call(k % 3, set(&format!("ws{k}"), &value), QUORUM), Reply::Ok, "ws{k}");
        if k % 64 == 0 {
            c.run_for(20);
            assert!((0..3).all(|i| c.node(i).store().used_bytes() <= limit), "a node passed its limit");
        }
    }
    let (during, _) = ae_frame_bytes(&c);
    c.run_for(10_000);
    let (settled, settled_fixed) = ae_frame_bytes(&c);
    let evictions: Vec<u64> = (0..3).map(|i| c.node(i).store().stats().evicted_keys).collect();
    c.run_for(60_000);
    let (end, end_fixed) = ae_frame_bytes(&c);
    assert!((0..3).all(|i| c.node(i).store().used_bytes() <= limit));
    let again: Vec<u64> = (0..3).map(|i| c.node(i).store().stats().evicted_keys).collect();
    assert_eq!(evictions, again, "anti-entropy refilled evicted keys once writes stopped");
    AeTraffic {
        written: (keys * value_bytes) as u64,
        during,
        after: end - settled,
        after_fixed: end_fixed - settled_fixed,
    }
}

#[test]
fn anti_entropy_traffic_stays_bounded_with_a_working_set_twice_the_memory_limit() {
    for value_bytes in [100, 1_000, 20_000] {
        let t = twice_the_limit(value_bytes);
        println!(
            "values of {value_bytes} B: {} B written; anti-entropy and eviction markers {} B during the writes; \
             {} B in the next minute, {} B of it the fixed first step",
            t.written, t.during, t.after, t.after_fixed
        );
        // Without markers anti-entropy would refill what was evicted, as much as the data itself and again after
        // every eviction; with them it sends less than the data written (the markers, mostly), then nothing but
        // its fixed cost per round.
        assert!(t.during < t.written, "{} of {}", t.during, t.written);
        assert!(t.after - t.after_fixed < 5_000, "{} B of differences in a quiet minute", t.after - t.after_fixed);
    }
}

#[test]
fn hints_a_full_replica_refuses_stay_for_a_later_round() {
    let mut c = Cluster::new(3, config());
    c.crash(2);
    let value = "h".repeat(1_000);
    // Before the failure is detected: writes to n2 fail and are hinted.
    for k in 0..200 {
        assert_eq!(c.call(k % 2, set(&format!("hint{k}"), &value), QUORUM), Reply::Ok);
    }
    let pending = c.node(0).hints_pending() + c.node(1).hints_pending();
    assert!(pending >= 100, "{pending}");
    c.run_for(5_000);
    // n2 comes back with room for about half of what it missed, and no eviction.
    let limit = 120_000;
    c.config.maxmemory_bytes = Some(limit);
    c.config.eviction = crate::core::store::EvictionPolicy::NoEviction;
    c.start(2);
    c.run_for(20_000);
    assert!(c.node(2).store().used_bytes() <= limit);
    assert!(c.node(2).replication_stats().unwrap().merges_refused > 0);
    let left = c.node(0).hints_pending() + c.node(1).hints_pending();
    let held = (0..200).filter(|k| c.holders(&format!("hint{k}"), &value).contains(&2)).count();
    assert!(left > 0, "refused hints were dropped as delivered");
    assert!(held + left >= pending, "every hinted key is on n2 or still hinted for it ({held} held, {left} hints)");
}

#[test]
fn flushed_data_does_not_come_back_from_a_node_that_missed_the_flushall() {
    let mut c = Cluster::new(3, config());
    for k in 0..50 {
        assert_eq!(c.call(k % 3, set(&format!("old{k}"), "v"), ALL), Reply::Ok);
    }
    c.side = vec![0, 0, 1];
    c.run_for(6_000);
    assert_eq!(c.call(0, Command::FlushAll, ONE), Reply::Ok);
    assert_eq!(c.call(1, set("after", "new"), QUORUM), Reply::Ok);
    assert_eq!(c.node(1).store().values_len(), 1);
    assert_eq!(c.node(2).store().values_len(), 50, "n2 missed the flush");
    c.side = vec![0, 0, 0];
    c.run_for(40_000);
    for i in 0..3 {
        let values = c.node(i).store().values_len();
        assert_eq!(values, 1, "n{i} holds {values} values: flushed data came back or the epoch did not spread");
        assert_eq!(c.call(i, get("after"), ALL), Reply::Bulk(b("new")));
        assert_eq!(c.call(i, get("old7"), ALL), Reply::Nil);
    }
}

#[test]
fn a_full_fallback_that_refuses_a_hint_leaves_the_hint_with_the_coordinator() {
    let mut c = Cluster::new(4, config());
    // A key whose first owner is n0, and the node outside its preference list (the fallback).
    let key = (0..).map(|i| format!("fb{i}")).find(|k| c.owners(0, k)[0] == 0).unwrap();
    let owners = c.owners(0, &key);
    let fallback = (0..4).find(|i| !owners.contains(i)).unwrap();
    let n = c.nodes[fallback].as_mut().unwrap();
    n.config_mut().maxmemory_bytes = Some(1);
    n.config_mut().eviction = crate::core::store::EvictionPolicy::NoEviction;
    c.crash(owners[2]);
    assert_eq!(c.call(0, set(&key, "v"), QUORUM), Reply::Ok);
    c.run_for(100);
    assert!(c.node(fallback).replication_stats().unwrap().merges_refused >= 1, "the fallback refused the hint");
    assert!(c.node(0).hints_pending() >= 1, "the coordinator keeps the hint for the crashed owner");
    assert_eq!(c.node(0).replication_stats().unwrap().replica_refusals, 0, "a fallback's refusal is no replica's");
}
