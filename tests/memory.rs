//! `--maxmemory` across real `shoal` processes on loopback: a replica with `noeviction` that is full refuses
//! replicated writes instead of passing its limit, the coordinator does not count it (the client hears OOM at
//! ALL, OK at QUORUM), and a delete still works everywhere. Every wait is bounded by `eventually`.

mod common;

use common::eventually;
use common::members::Client;
use common::procs::{Conn, Spec, CONVERGE};
use redis::Value;

#[test]
fn a_full_noeviction_replica_refuses_writes_and_the_client_hears_oom_at_all() {
    let a = Spec::new("a", None);
    let seed = Some(a.cluster);
    let b = Spec::new("b", seed);
    let mut c = Spec::new("c", seed);
    let limit: u64 = 300_000;
    c.extra = vec!["--maxmemory".into(), limit.to_string(), "--maxmemory-policy".into(), "noeviction".into()];
    let specs = [a, b, c];
    let _procs: Vec<_> = specs.iter().map(Spec::spawn).collect();
    let joined = eventually(CONVERGE, || specs.iter().all(|s| Conn::new(s.listen).live_members() == 3));
    assert!(joined, "three nodes join");
    // Keys c replicates but does not coordinate (a coordinator checks its limit before a write, as Redis does).
    let mut via_a = Conn::with_levels(specs[0].listen, "ONE", "ONE");
    let keys: Vec<String> =
        (0..).map(|i| format!("m{i}")).filter(|k| via_a.owners(k)[0].0 != "c").take(1_000).collect();
    let value = "v".repeat(1_000);
    let mut info_c = Client::new(specs[2].listen);
    let mut filled = 0;
    for key in &keys {
        assert_eq!(via_a.set(key, &value), Ok(Value::Okay), "SET {key} at ONE");
        filled += 1;
        if filled % 50 == 0 && info_c.info_u64("merges_refused").unwrap_or(0) > 0 {
            break;
        }
    }
    assert!(info_c.info_u64("merges_refused").unwrap_or(0) > 0, "c refused a replicated write once full");
    let mut all = Conn::with_levels(specs[0].listen, "ONE", "ALL");
    let reply = all.query(redis::cmd("SET").arg(&keys[filled]).arg(&value));
    let err = reply.expect_err("ALL cannot be met with c full");
    assert!(err.to_string().contains("refused for lack of memory"), "{err}");
    let mut quorum = Conn::with_levels(specs[0].listen, "ONE", "QUORUM");
    assert_eq!(quorum.set(&keys[filled + 1], &value), Ok(Value::Okay));
    // c stays under its limit whatever path writes to it (replication, hints, anti-entropy).
    std::thread::sleep(std::time::Duration::from_secs(3));
    let used: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut redis::Client::open(format!("redis://{}/", specs[2].listen)).unwrap().get_connection().unwrap())
        .unwrap();
    let used: u64 = used.lines().find_map(|l| l.strip_prefix("used_memory:")).unwrap().trim().parse().unwrap();
    assert!(used <= limit, "c uses {used} of {limit}");
    // A delete at ALL works on the full node too.
    let mut del = Conn::with_levels(specs[1].listen, "ALL", "ALL");
    assert_eq!(del.query(redis::cmd("DEL").arg(&keys[0])), Ok(Value::Int(1)));
    assert_eq!(Conn::new(specs[2].listen).local(&keys[0]), None, "c's copy is a tombstone now");
}
