//! Read-modify-write commands after a pause, and forwards that must not run a command twice.

use super::{config, ALL, QUORUM};
use crate::core::command::Command;
use crate::core::reply::Reply;
use crate::core::testkit::{addr, b, Cluster};
use crate::core::Input;

fn incr(key: &str) -> Command {
    Command::IncrBy { key: b(key), delta: 1 }
}

/// A key whose first owner is `node` in node 0's view.
fn key_first_owned_by(c: &Cluster, node: usize) -> String {
    (0..1_000).map(|i| format!("c{i}")).find(|k| c.owners(0, k)[0] == node).expect("some key is first-owned")
}

/// Whether every live node's own copy of `key` is the value `value`.
fn everywhere(c: &Cluster, key: &str, value: &str) -> bool {
    (0..c.nodes.len()).all(|i| c.holders(key, value).contains(&i))
}

#[test]
fn a_paused_first_owner_rereads_the_other_owners_before_a_read_modify_write() {
    let mut c = Cluster::new(3, config());
    c.run_for(3 * config().anti_entropy_period_ms);
    let key = key_first_owned_by(&c, 0);
    for n in 1..=3 {
        assert_eq!(c.call(0, incr(&key), QUORUM), Reply::Int(n));
    }
    // n0 stops (SIGSTOP, a long stall) for longer than failure detection: the others declare it down, and the
    // counter goes on there, acknowledged at QUORUM.
    c.pause(0);
    c.run_for(8_000);
    assert!(c.owners(1, &key).iter().all(|&o| o != 0), "n1 dropped n0 from its ring");
    assert_eq!(c.call(1, incr(&key), QUORUM), Reply::Int(4));
    assert_eq!(c.call(2, incr(&key), QUORUM), Reply::Int(5));
    // n0 resumes; its own ring never changed. The first thing it does is an INCR as the key's first owner: it
    // must not run on its stale copy (3), whose result would win last-writer-wins over the acknowledged 4 and 5.
    c.resume(0);
    let id = c.submit(0, incr(&key), QUORUM);
    c.run_until(|c| c.replies.contains_key(&id), 10_000);
    let reply = c.replies.remove(&id).expect("n0 answers");
    // Either it re-read them and answers 6, or it says it could not and did not run it.
    let ran = match &reply {
        Reply::Int(6) => true,
        Reply::Error(text) if text.contains("did not run") => false,
        other => panic!("INCR after the pause: {other:?}"),
    };
    // Once n0 is back in every view, the counter goes on from the acknowledged value everywhere.
    c.run_until(|c| (0..3).all(|i| c.node(i).ring_members() == 3), 30_000);
    let next = if ran { 7 } else { 6 };
    assert_eq!(c.call(0, incr(&key), QUORUM), Reply::Int(next), "no acknowledged increment is lost");
    let value = next.to_string();
    assert!(c.run_until(|c| everywhere(c, &key, &value), 30_000), "every replica holds {value}");
    assert!(c.node(0).replication_stats().unwrap().stalls > 0, "n0 counted its stall");
}

#[test]
fn a_short_stall_below_the_detection_time_is_not_a_pause() {
    let mut c = Cluster::new(3, config());
    c.run_for(3 * config().anti_entropy_period_ms);
    c.pause(0);
    c.run_for(100);
    c.resume(0);
    c.run_for(1_000);
    assert_eq!(c.node(0).replication_stats().unwrap().stalls, 0);
}

#[test]
fn a_forward_whose_link_fails_after_the_owner_ran_it_does_not_run_an_incr_twice() {
    let mut c = Cluster::new(3, config());
    c.run_for(3 * config().anti_entropy_period_ms);
    let key = key_first_owned_by(&c, 0);
    let q = 1;
    assert_eq!(c.call(q, incr(&key), ALL), Reply::Int(1));
    // The INCR goes from n1 to the first owner n0, which runs it and replicates it; then n1's link to n0 fails
    // before the reply arrives.
    let id = c.submit(q, incr(&key), QUORUM);
    c.run_for(2);
    assert!(c.holders(&key, "2").contains(&0), "n0 ran the forwarded INCR");
    c.deliver(q, Input::PeerLost { peer: addr(0) });
    c.run_until(|c| c.replies.contains_key(&id), 10_000);
    let reply = c.replies.remove(&id).expect("answered");
    let Reply::Error(text) = &reply else { panic!("failing over would run INCR again: {reply:?}") };
    assert!(text.contains("may or may not have run"), "{text}");
    c.run_for(5_000);
    assert_eq!(c.call(2, Command::Get { key: b(&key) }, ALL), Reply::Bulk(b("2")), "the INCR ran once");
    assert!(everywhere(&c, &key, "2"));
}

#[test]
fn a_forward_of_a_plain_set_still_fails_over_when_the_link_fails() {
    let mut c = Cluster::new(3, config());
    c.run_for(3 * config().anti_entropy_period_ms);
    let key = key_first_owned_by(&c, 0);
    let id = c.submit(1, crate::core::testkit::set(&key, "v"), QUORUM);
    c.deliver(1, Input::PeerLost { peer: addr(0) });
    c.run_until(|c| c.replies.contains_key(&id), 10_000);
    assert_eq!(c.replies.remove(&id), Some(Reply::Ok), "a blind write is safe to run on the next owner");
    assert!(c.node(1).replication_stats().unwrap().forward_failovers > 0);
}

#[test]
fn requests_in_flight_are_bounded_and_the_excess_is_refused_with_tryagain() {
    use crate::core::testkit::set;
    let all = ALL;
    let config = crate::core::NodeConfig { requests_in_flight_max: 4, ..config() };
    let mut c = Cluster::new(3, config);
    // The replicas are cut off, so writes at ALL wait for them until their timeout: four fill the table.
    c.side = vec![0, 1, 1];
    c.run_for(100);
    let first: Vec<(u64, u64)> = (0..4).map(|i| c.submit(0, set(&format!("k{i}"), "v"), all)).collect();
    let refused = c.submit(0, set("k4", "v"), all);
    c.run_for(1);
    let reply = c.replies.get(&refused).cloned().expect("answered at once");
    assert!(matches!(&reply, Reply::Error(e) if e.starts_with("TRYAGAIN")), "{reply:?}");
    assert_eq!(c.node(0).replication_stats().unwrap().requests_refused, 1);
    // Once they end (here by their timeout), the table has room again.
    c.run_until(|c| first.iter().all(|id| c.replies.contains_key(id)), 10_000);
    c.side = vec![0, 0, 0];
    c.run_for(100);
    assert_eq!(c.call(0, set("k5", "v"), all), Reply::Ok);
}

#[test]
fn a_forward_held_while_its_owner_was_paused_does_not_run_over_newer_writes() {
    // Found by tests/chaos.rs (SIGSTOP under load): the paused owner's kernel took the forward, its sender timed
    // out and failed over, the client wrote again; on SIGCONT the owner ran the old command as a fresh write.
    let mut c = Cluster::new(3, config());
    c.run_for(3 * config().anti_entropy_period_ms);
    let key = key_first_owned_by(&c, 0);
    assert_eq!(c.call(1, crate::core::testkit::set(&key, "v1"), QUORUM), Reply::Ok);
    c.pause(0);
    let stale = c.submit(1, crate::core::testkit::set(&key, "stale"), QUORUM);
    c.run_until(|c| c.replies.contains_key(&stale), 10_000);
    c.run_for(8_000);
    assert!(c.owners(1, &key).iter().all(|&o| o != 0), "n1 dropped n0 from its ring");
    assert_eq!(c.call(1, crate::core::testkit::set(&key, "v2"), QUORUM), Reply::Ok);
    c.resume(0);
    c.run_until(|c| (0..3).all(|i| c.node(i).ring_members() == 3), 30_000);
    assert!(
        c.run_until(|c| everywhere(c, &key, "v2"), 30_000),
        "the acknowledged v2 stays: {:?}",
        c.holders(&key, "stale")
    );
    assert!(c.node(0).replication_stats().unwrap().forwards_refused > 0, "n0 refused the held forward");
}
