//! Lease locks on a real 3-process cluster: acquire, contention, renew, release and expiry across nodes; a
//! holder's node killed (the lock is free once its lease ends); strict mode refusing without a majority.

mod common;

use std::time::{Duration, Instant};

use common::eventually;
use common::procs::{three, Conn};
use redis::Value;

/// A grant's (token, mode), or `None` for nil.
fn acquire(conn: &mut Conn, name: &str, owner: &str, lease_ms: u64) -> Option<(i64, String)> {
    match conn.query(redis::cmd("LOCK.ACQUIRE").arg(name).arg(owner).arg(lease_ms)) {
        Ok(Value::Array(v)) => match v.as_slice() {
            [Value::Int(t), Value::SimpleString(m)] => Some((*t, m.clone())),
            other => panic!("unexpected grant {other:?}"),
        },
        Ok(Value::Nil) => None,
        other => panic!("LOCK.ACQUIRE answered {other:?}"),
    }
}

fn int(conn: &mut Conn, cmd: &redis::Cmd) -> i64 {
    match conn.query(cmd) {
        Ok(Value::Int(n)) => n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

#[test]
fn acquire_contend_renew_release_and_expire_across_nodes() {
    let (specs, _procs) = three(&[]);
    let mut a = Conn::new(specs[0].listen);
    let mut b = Conn::new(specs[1].listen);
    let (t1, mode) = acquire(&mut a, "job1", "worker-a", 5_000).expect("granted");
    assert_eq!(mode, "majority");
    assert_eq!(acquire(&mut b, "job1", "worker-b", 5_000), None, "worker-b is refused while worker-a holds it");
    let renewed = b.query(redis::cmd("LOCK.RENEW").arg("job1").arg("worker-a").arg(t1).arg(5_000));
    assert!(matches!(renewed, Ok(Value::Array(_))), "the holder renews through any node: {renewed:?}");
    assert_eq!(int(&mut b, redis::cmd("LOCK.RELEASE").arg("job1").arg("worker-b").arg(t1)), 0);
    assert_eq!(int(&mut a, redis::cmd("LOCK.RELEASE").arg("job1").arg("worker-a").arg(t1)), 1);
    let (t2, _) = acquire(&mut b, "job1", "worker-b", 800).expect("free after release");
    assert!(t2 > t1, "worker-b gets a larger token: {t2} > {t1}");
    // Expiry: nobody renews; the lock is free once the 800 ms lease ends on the replicas.
    let started = Instant::now();
    let freed = eventually(Duration::from_secs(5), || acquire(&mut a, "job1", "worker-c", 5_000).is_some());
    assert!(freed && started.elapsed() >= Duration::from_millis(500), "free after the lease, not before");
}

#[test]
fn a_killed_holders_lock_is_free_after_its_lease() {
    let (specs, mut procs) = three(&[]);
    let mut c = Conn::new(specs[2].listen);
    acquire(&mut c, "job2", "worker-on-c", 2_000).expect("granted through c");
    procs.pop().expect("c runs").kill9();
    let mut a = Conn::new(specs[0].listen);
    assert_eq!(acquire(&mut a, "job2", "worker-a", 2_000), None, "still held right after the kill");
    let freed = eventually(Duration::from_secs(10), || acquire(&mut a, "job2", "worker-a", 2_000).is_some());
    assert!(freed, "the lease ran out on the surviving replicas");
}

#[test]
fn strict_mode_refuses_without_a_majority_and_available_mode_grants_degraded() {
    let (specs, mut procs) = three(&["--lock-mode", "strict", "--request-timeout-ms", "300"]);
    // Kill two of three: the lock's replicas are all three nodes, one is left.
    procs.truncate(1);
    let mut a = Conn::new(specs[0].listen);
    let refused = a.query(redis::cmd("LOCK.ACQUIRE").arg("job3").arg("w").arg(5_000));
    let text = format!("{refused:?}");
    assert!(text.contains("NOMAJORITY"), "strict mode: {text}");
    drop(procs);
    let (specs, mut procs) = three(&["--request-timeout-ms", "300"]);
    procs.truncate(1);
    let mut a = Conn::new(specs[0].listen);
    let (_, mode) = acquire(&mut a, "job3", "w", 5_000).expect("available mode grants");
    assert_eq!(mode, "degraded");
}
