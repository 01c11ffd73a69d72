//! Replication at real value sizes: refills of many large values travel in byte-bounded messages and steps.

use bytes::Bytes;

use crate::core::command::Command;
use crate::core::replication::batch::{PUT_BYTES_MAX, STEP_BYTES_MAX};
use crate::core::replication::{Consistency, EntryKind, Levels};
use crate::core::reply::Reply;
use crate::core::testkit::{b, Cluster};
use crate::core::NodeConfig;

const QUORUM: Levels = Levels { read: Consistency::Quorum, write: Consistency::Quorum };
const VALUE_BYTES: usize = 200_000;

fn config() -> NodeConfig {
    NodeConfig { vnodes: 64, anti_entropy_period_ms: 2_000, ..NodeConfig::default() }
}

fn put(key: &str, value: &Bytes) -> Command {
    Command::Set {
        key: b(key),
        value: value.clone(),
        cond: Default::default(),
        ttl: Default::default(),
        get: false,
        reply_int: false,
    }
}

/// How many of `keys` node `i` holds as a full value.
fn held(c: &Cluster, i: usize, keys: &[String]) -> usize {
    let Some(node) = c.nodes[i].as_ref() else { return 0 };
    keys.iter()
        .filter(|k| {
            node.local_entry(k.as_bytes(), c.now)
                .is_some_and(|e| e.kind == EntryKind::Value && e.value.len() == VALUE_BYTES)
        })
        .count()
}

/// Every message a node sends while refilling a replica stays far below the frame limit, and one step to one
/// peer stays below the peer queue's byte bound: 400 values of 200 KB (80 MB, more than a 64 MiB frame) used to go
/// as one anti-entropy `Put` of 1,000 entries, which the runtime could not frame and dropped.
#[test]
fn a_refill_of_large_values_goes_in_byte_bounded_puts_and_steps() {
    let mut c = Cluster::new(3, config());
    // One allocation shared by every key: the test holds 80 MB of values, not 240.
    let value = Bytes::from(vec![b'v'; VALUE_BYTES]);
    let keys: Vec<String> = (0..400).map(|i| format!("big{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(c.call(i % 2, put(k, &value), QUORUM), Reply::Ok);
    }
    c.run_for(1_000);
    assert_eq!(held(&c, 2, &keys), keys.len(), "every node holds every key (3 nodes, 3 replicas)");

    // Anti-entropy alone: n2 restarts empty, no hints were taken.
    c.crash(2);
    c.run_for(100);
    c.start(2);
    let refilled = c.run_until(|c| held(c, 2, &keys) == keys.len(), 120_000);
    assert!(refilled, "anti-entropy refilled n2: {} of {} keys", held(&c, 2, &keys), keys.len());

    // Hints: n2 is down while a second set is written, then comes back.
    c.crash(2);
    let more: Vec<String> = (0..400).map(|i| format!("hinted{i}")).collect();
    for (i, k) in more.iter().enumerate() {
        assert_eq!(c.call(i % 2, put(k, &value), QUORUM), Reply::Ok);
    }
    assert!(c.node(0).hints_pending() + c.node(1).hints_pending() > 0, "n2's copies were kept as hints");
    c.start(2);
    let refilled = c.run_until(|c| held(c, 2, &more) == more.len() && held(c, 2, &keys) == keys.len(), 120_000);
    assert!(refilled, "hints and anti-entropy refilled n2: {} of {} keys", held(&c, 2, &more), more.len());

    let (put_bytes, put_entries) = c.put_bytes_seen_max;
    assert!(
        put_bytes <= PUT_BYTES_MAX || put_entries == 1,
        "a Put of {put_entries} entries and {put_bytes} bytes (bound {PUT_BYTES_MAX})"
    );
    assert!(
        c.step_bytes_seen_max <= STEP_BYTES_MAX + VALUE_BYTES,
        "one step sent {} bytes to one peer (bound {STEP_BYTES_MAX})",
        c.step_bytes_seen_max
    );
}
