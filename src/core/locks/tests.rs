//! Lock scenarios on the test kit's deterministic cluster: contention, renew, release, expiry, degraded and strict
//! grants without a majority, and fencing tokens that grow across a partition's healing.

use crate::core::command::Command;
use crate::core::locks::{LockMode, LockOp};
use crate::core::replication::Levels;
use crate::core::reply::Reply;
use crate::core::testkit::Cluster;
use crate::core::{Node, NodeConfig};

fn config() -> NodeConfig {
    NodeConfig { vnodes: 64, request_timeout_ms: 300, ..NodeConfig::default() }
}

fn acquire(c: &mut Cluster, node: usize, owner: &str, ttl_ms: u64) -> Reply {
    let op = LockOp::Acquire { name: "job".into(), owner: owner.into(), token: 0, ttl_ms };
    c.call(node, Command::Lock(op), Levels::default())
}

fn op(c: &mut Cluster, node: usize, op: LockOp) -> Reply {
    c.call(node, Command::Lock(op), Levels::default())
}

/// (token, mode) of a grant.
fn granted(r: &Reply) -> Option<(u64, String)> {
    match r {
        Reply::Array(v) => match (&v[0], &v[1]) {
            (Reply::Int(t), Reply::Simple(m)) => Some((*t as u64, m.to_string())),
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn contend_renew_release_and_expire_on_three_nodes() {
    let mut c = Cluster::new(3, config());
    let (t1, mode) = granted(&acquire(&mut c, 0, "worker-a", 5_000)).expect("first acquire is granted");
    assert_eq!(mode, "majority");
    assert_eq!(acquire(&mut c, 1, "worker-b", 5_000), Reply::Nil, "held by worker-a");
    let renew = LockOp::Renew { name: "job".into(), owner: "worker-a".into(), token: t1, ttl_ms: 5_000 };
    assert!(granted(&op(&mut c, 2, renew)).is_some());
    let wrong = LockOp::Release { name: "job".into(), owner: "worker-b".into(), token: t1 };
    assert_eq!(op(&mut c, 1, wrong), Reply::Int(0));
    let release = LockOp::Release { name: "job".into(), owner: "worker-a".into(), token: t1 };
    assert_eq!(op(&mut c, 1, release), Reply::Int(1));
    let (t2, _) = granted(&acquire(&mut c, 2, "worker-b", 1_000)).expect("free after release");
    assert!(t2 > t1, "fencing tokens grow: {t2} > {t1}");
    let Reply::Map(info) = op(&mut c, 0, LockOp::Info { name: "job".into() }) else { panic!("held") };
    assert!(info.contains(&(Reply::simple("majority"), Reply::Int(1))));
    assert!(info.contains(&(Reply::simple("replicas_holding"), Reply::Int(3))), "{info:?}");
    assert!(info.contains(&(Reply::simple("token"), Reply::Int(t2 as i64))));
    c.run_for(1_100);
    assert_eq!(op(&mut c, 0, LockOp::Info { name: "job".into() }), Reply::Nil, "the lease ran out");
    let (t3, _) = granted(&acquire(&mut c, 0, "worker-c", 1_000)).expect("free after expiry");
    assert!(t3 > t2);
}

#[test]
fn without_a_majority_available_mode_grants_degraded_and_strict_refuses() {
    for (mode, expect_grant) in [(LockMode::Available, true), (LockMode::Strict, false)] {
        let mut c = Cluster::new(3, NodeConfig { lock_mode: mode, ..config() });
        // Cut node 0 off: it still sees the others on its ring until detection, and they do not answer.
        c.side = vec![1, 0, 0];
        let r = acquire(&mut c, 0, "lonely", 5_000);
        if expect_grant {
            let (_, m) = granted(&r).unwrap_or_else(|| panic!("{r:?}"));
            assert_eq!(m, "degraded");
        } else {
            let Reply::Error(e) = &r else { panic!("{r:?}") };
            assert!(e.starts_with("NOMAJORITY"), "{e}");
        }
    }
}

#[test]
fn a_node_cut_off_after_failure_detection_is_no_majority_of_its_own() {
    for (mode, expect_grant) in [(LockMode::Available, true), (LockMode::Strict, false)] {
        let mut c = Cluster::new(3, NodeConfig { lock_mode: mode, ..config() });
        c.side = vec![1, 0, 0];
        // Long enough for node 0 to declare the others down: its ring is itself alone.
        c.run_for(8_000);
        assert_eq!(c.node(0).ring_members(), 1);
        let r = acquire(&mut c, 0, "lonely", 5_000);
        if expect_grant {
            assert_eq!(granted(&r).map(|(_, m)| m), Some("degraded".to_string()), "{r:?}");
        } else {
            assert!(matches!(&r, Reply::Error(e) if e.starts_with("NOMAJORITY")), "{r:?}");
        }
        // The majority side still grants with a majority.
        let r = acquire(&mut c, 1, "crowd", 5_000);
        assert_eq!(granted(&r).map(|(_, m)| m), Some("majority".to_string()), "{r:?}");
    }
}

#[test]
fn fencing_tokens_grow_across_a_healed_partition() {
    let mut c = Cluster::new(5, config());
    c.side = vec![0, 0, 1, 1, 1];
    c.run_for(6_000);
    // Each side grants the lock to its own worker (one of them degraded or both majority of its own ring).
    let a = granted(&acquire(&mut c, 0, "a", 60_000)).expect("side A grants");
    let b = granted(&acquire(&mut c, 3, "b", 60_000)).expect("side B grants");
    c.side = vec![0; 5];
    c.run_until(|c| (0..5).all(|i| c.node(i).ring_members() == 5), 60_000);
    for owner in ["a", "b"] {
        let token = if owner == "a" { a.0 } else { b.0 };
        op(&mut c, 1, LockOp::Release { name: "job".into(), owner: owner.into(), token });
    }
    let next = granted(&acquire(&mut c, 4, "c", 1_000)).expect("granted after the heal");
    assert!(next.0 > a.0.max(b.0), "token {} after {} and {}", next.0, a.0, b.0);
}

#[test]
fn a_clustered_node_that_knows_only_itself_is_no_majority_of_its_own() {
    // A node restarted empty knows only itself until it rejoins: with 3 replicas configured its own grant is 1 of
    // 3, never a majority (found by the simulator's lock workload).
    for (mode, expect_grant) in [(LockMode::Available, true), (LockMode::Strict, false)] {
        let mut c = Cluster::new(1, NodeConfig { lock_mode: mode, ..config() });
        assert!(c.node(0).membership().is_some(), "the test kit's node is clustered");
        let r = acquire(&mut c, 0, "alone", 5_000);
        if expect_grant {
            let (_, m) = granted(&r).unwrap_or_else(|| panic!("{r:?}"));
            assert_eq!(m, "degraded");
        } else {
            assert_eq!(r, Reply::error("NOMAJORITY the lock needs 2 of 3 replicas, 1 granted".to_string()));
        }
    }
}

#[test]
fn a_lone_node_is_its_locks_only_replica() {
    let mut n = Node::new(config(), 1);
    let mut out = crate::core::Outbox::new();
    let call = |n: &mut Node, out: &mut crate::core::Outbox, now, op: LockOp| {
        n.handle(
            now,
            crate::core::Input::Client { conn: 1, req: 1, cmd: Command::Lock(op), levels: Levels::default() },
            out,
        );
        match out.drain().next() {
            Some(crate::core::Output::Reply { reply, .. }) => reply,
            other => panic!("{other:?}"),
        }
    };
    let r =
        call(&mut n, &mut out, 1_000, LockOp::Acquire { name: "l".into(), owner: "a".into(), token: 0, ttl_ms: 100 });
    let (t, m) = granted(&r).expect("granted");
    assert_eq!(m, "majority");
    let r =
        call(&mut n, &mut out, 1_050, LockOp::Acquire { name: "l".into(), owner: "b".into(), token: 0, ttl_ms: 100 });
    assert_eq!(r, Reply::Nil);
    let r =
        call(&mut n, &mut out, 1_100, LockOp::Acquire { name: "l".into(), owner: "b".into(), token: 0, ttl_ms: 100 });
    assert!(granted(&r).is_some_and(|(t2, _)| t2 > t));
}

#[test]
fn a_coordinator_with_a_slow_clock_retries_above_the_highest_token_on_every_replica() {
    let mut c = Cluster::new(5, config());
    c.skew = vec![5_000, 0, 0, 0, 0];
    let owners = c.node(0).owners(b"job");
    let outsider = (0..5).find(|i| !owners.contains(&format!("n{i}")) && *i != 0).expect("a non-replica");
    // One replica misses the first grant and its release (cut off briefly), so the replicas' highest tokens differ.
    let missed: usize = owners.iter().map(|o| o[1..].parse::<usize>().unwrap()).find(|&o| o != 0).unwrap();
    c.side[missed] = 1;
    let (t1, _) = granted(&acquire(&mut c, 0, "fast", 60_000)).expect("granted");
    assert_eq!(op(&mut c, 0, LockOp::Release { name: "job".into(), owner: "fast".into(), token: t1 }), Reply::Int(1));
    c.side[missed] = 0;
    let (t2, mode) = granted(&acquire(&mut c, outsider, "slow", 60_000)).expect("granted after a retry");
    assert!(t2 > t1, "{t2} > {t1}");
    assert_eq!(mode, "majority");
    let Reply::Map(info) = op(&mut c, outsider, LockOp::Info { name: "job".into() }) else { panic!("held") };
    assert!(info.contains(&(Reply::simple("replicas_holding"), Reply::Int(3))), "{info:?}");
}
