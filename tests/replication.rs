//! Replication with real `shoal` processes on loopback: a write through one node is read through every other and
//! sits on its owners (checked with SHOAL.OWNERS and SHOAL.LOCALGET on each owner); a replica killed with
//! SIGKILL fails no command at ONE or QUORUM; restarted, hints and anti-entropy refill it; a fourth node that
//! joins receives its keys and none is lost. Every wait is bounded by `eventually`.

mod common;

use common::eventually;
use common::procs::{on_all_owners, three, Conn, Spec, CONVERGE};
use redis::Value;

#[test]
fn a_write_through_one_node_is_read_through_every_other_and_sits_on_its_owners() {
    let (specs, _procs) = three(&[]);
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
    let (specs, mut procs) = three(&[]);
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
    let (mut specs, mut procs) = three(&[]);
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
