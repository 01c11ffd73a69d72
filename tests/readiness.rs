//! Readiness with real processes on loopback: a replica killed with SIGKILL and restarted empty answers
//! `SHOAL.READY` with 1 only once it holds every key it owns again (nothing is written meanwhile, so "synced once
//! with another owner" means "holds them all"), and INFO shows the same.

mod common;

use common::eventually;
use common::members::Client;
use common::procs::{field, pairs, three, Conn, CONVERGE};
use redis::Value;

/// `SHOAL.READY` of the node at `conn`: (ready, reason).
fn ready(conn: &mut Conn) -> Option<(bool, String)> {
    let v = conn.query(&redis::cmd("SHOAL.READY")).ok()?;
    let p = pairs(v);
    let flag = p.iter().find_map(|(k, v)| (common::procs::text(k)? == "ready").then_some(v.clone()))?;
    Some((flag == Value::Int(1), field(&p, "reason")?))
}

#[test]
fn a_restarted_replica_is_ready_only_once_it_holds_its_keys_again() {
    let (specs, mut procs) = three(&[]);
    let keys: Vec<String> = (0..2_000).map(|i| format!("r{i}")).collect();
    let mut all = Conn::with_levels(specs[0].listen, "ONE", "ALL");
    for key in &keys {
        assert_eq!(all.set(key, key), Ok(Value::Okay), "SET {key} at ALL");
    }
    // Every node of a cluster that formed is ready once its rounds ran.
    for s in &specs {
        let mut c = Conn::new(s.listen);
        assert!(eventually(CONVERGE, || ready(&mut c).is_some_and(|(r, _)| r)), "{} becomes ready", s.name);
    }
    procs.pop().expect("c runs").kill9();
    procs.push(specs[2].spawn());
    let mut c = Conn::new(specs[2].listen);
    let mut reasons = Vec::new();
    let became_ready = eventually(CONVERGE, || match ready(&mut c) {
        Some((true, _)) => true,
        Some((false, reason)) => {
            if reasons.last() != Some(&reason) {
                reasons.push(reason);
            }
            false
        }
        None => false,
    });
    assert!(became_ready, "the restarted node becomes ready (reasons seen: {reasons:?})");
    // With three nodes and N=3 it owns every key: all of them are back at the moment it says ready.
    let missing: Vec<&String> = keys.iter().filter(|k| c.local(k).as_deref() != Some(k.as_str())).collect();
    assert!(
        missing.is_empty(),
        "ready, yet {} keys missing (first: {:?}); reasons {reasons:?}",
        missing.len(),
        missing.first()
    );
    let mut info = Client::new(specs[2].listen);
    assert_eq!(info.info_u64("ready"), Some(1));
    assert_eq!(info.info_field("ready_reason").as_deref(), Some("ready"));
    assert!(info.info_u64("ready_after_ms").is_some(), "ready_after_ms is a number once ready");
    drop(procs);
}
