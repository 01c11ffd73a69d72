//! Peer messages a correct peer never sends (empty or inconsistent content, timestamps from far in the future),
//! fed straight into one node of a small cluster: each is answered with an error or dropped and counted, and the
//! node neither panics nor acknowledges what it did not store.

use crate::core::clock::Timestamp;
use crate::core::command::Command;
use crate::core::driver::RequestId;
use crate::core::locks::{LockAnswer, LockOp};
use crate::core::replication::Unused;
use crate::core::replication::{Consistency, EntryKind, Levels, PeerMsg, WireEntry};
use crate::core::reply::Reply;
use crate::core::testkit::{addr, b, Cluster};
use crate::core::version::NodeId;
use crate::core::vversion::VersionVector;
use crate::core::{Input, NodeConfig, Outbox, Output};

const ONE: Levels = Levels { read: Consistency::One, write: Consistency::One };
const ALL: Levels = Levels { read: Consistency::All, write: Consistency::All };

fn cluster() -> Cluster {
    Cluster::new(3, NodeConfig { vnodes: 64, ..NodeConfig::default() })
}

/// Hand `input` to node `i` at the cluster's time and return what it wrote (its timers are not run).
fn feed(c: &mut Cluster, i: usize, input: Input) -> Vec<Output> {
    let now = c.now;
    let mut out = Outbox::new();
    c.nodes[i].as_mut().expect("node is up").handle(now, input, &mut out);
    out.drain().collect()
}

fn from_peer(c: &mut Cluster, i: usize, from: usize, msg: PeerMsg) -> Vec<Output> {
    feed(c, i, Input::Peer { from: addr(from), name: format!("n{from}").into(), msg })
}

/// The messages among `outputs` sent to node `to`.
fn sent_to(outputs: &[Output], to: usize) -> Vec<PeerMsg> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::SendPeer { to: a, msg } if *a == addr(to) => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

/// A value entry whose version was written at `time`.
fn entry_at(value: &str, time: Timestamp) -> WireEntry {
    let mut vector = VersionVector::new();
    vector.bump(NodeId::from_name("n1"), time);
    WireEntry { kind: EntryKind::Value, value: b(value), vector, expire_at_ms: 0 }
}

fn stats(c: &Cluster, i: usize) -> crate::core::replication::ReplicationStats {
    c.node(i).replication_stats().expect("clustered")
}

#[test]
fn a_forwarded_msetnx_without_pairs_is_refused_not_a_panic() {
    let mut c = cluster();
    let cmd = Command::MSet { pairs: Vec::new(), if_none_exist: true };
    let outputs = from_peer(&mut c, 0, 1, PeerMsg::Forward { id: RequestId(7), cmd, levels: ONE });
    let replies = sent_to(&outputs, 1);
    let [PeerMsg::ForwardReply { id: RequestId(7), reply }] = replies.as_slice() else {
        panic!("one reply: {replies:?}")
    };
    assert!(reply.is_error(), "{reply:?}");
    assert_eq!(stats(&c, 0).peer_msgs_invalid, 1);
    // The node still serves.
    assert_eq!(c.call(0, crate::core::testkit::set("k", "v"), ONE), Reply::Ok);
}

#[test]
fn forwarded_multi_key_commands_without_keys_are_answered_at_once() {
    let mut c = cluster();
    let empty = [
        (Command::MGet { keys: Vec::new() }, Reply::Array(Vec::new())),
        (Command::MSet { pairs: Vec::new(), if_none_exist: false }, Reply::Ok),
        (Command::Del { keys: Vec::new() }, Reply::Int(0)),
        (Command::Exists { keys: Vec::new() }, Reply::Int(0)),
        (Command::Touch { keys: Vec::new() }, Reply::Int(0)),
    ];
    let pending = c.node(0).requests_pending();
    for (n, (cmd, expected)) in empty.into_iter().enumerate() {
        let id = RequestId(100 + n as u64);
        let outputs = from_peer(&mut c, 0, 1, PeerMsg::Forward { id, cmd, levels: ONE });
        assert_eq!(sent_to(&outputs, 1), vec![PeerMsg::ForwardReply { id, reply: expected }]);
    }
    assert_eq!(c.node(0).requests_pending(), pending, "no fan-out is left waiting for parts that do not exist");
    assert_eq!(stats(&c, 0).peer_msgs_invalid, 5);
}

#[test]
fn a_put_from_far_in_the_future_is_not_stored_nor_acknowledged() {
    let mut c = cluster();
    let before = c.node(0).hlc().last();
    for time in [Timestamp(u64::MAX), Timestamp::from_millis(c.now + 60_001)] {
        let entries = vec![(b("k"), entry_at("future", time))];
        let outputs = from_peer(&mut c, 0, 1, PeerMsg::Put { id: Some(RequestId(9)), entries, hint_for: None });
        assert!(sent_to(&outputs, 1).is_empty(), "no PutAck for a refused entry");
    }
    assert_eq!(stats(&c, 0).clock_drift_rejected, 2);
    let sections = vec!["cluster".to_string()];
    let info = crate::core::info::render(c.node(0), c.now, &sections, &Default::default());
    assert!(info.contains("clock_drift_rejected:2\r\n") && info.contains("clock_drift_max_ms:60000\r\n"), "{info}");
    let metrics = crate::core::metrics::render(c.node(0), c.now);
    assert!(metrics.contains("shoal_clock_drift_rejected_total 2"), "{metrics}");
    assert!(c.node(0).local_entry(b"k", c.now).is_none(), "nothing stored");
    assert_eq!(c.node(0).hlc().last(), before, "the clock did not move");
    // Within the bound the same message is stored and acknowledged.
    let entries = vec![(b("k"), entry_at("soon", Timestamp::from_millis(c.now + 60_000)))];
    let outputs = from_peer(&mut c, 0, 1, PeerMsg::Put { id: Some(RequestId(10)), entries, hint_for: None });
    assert_eq!(sent_to(&outputs, 1), vec![PeerMsg::PutAck { id: RequestId(10) }]);
    assert_eq!(c.node(0).local_entry(b"k", c.now).map(|e| e.value), Some(b("soon")));
}

#[test]
fn a_put_with_one_future_entry_among_good_ones_stores_the_good_ones_but_is_not_acknowledged() {
    let mut c = cluster();
    let now = Timestamp::from_millis(c.now);
    let entries = vec![(b("a"), entry_at("ok", now)), (b("b"), entry_at("bad", Timestamp(u64::MAX)))];
    let outputs = from_peer(&mut c, 0, 1, PeerMsg::Put { id: Some(RequestId(3)), entries, hint_for: None });
    assert!(sent_to(&outputs, 1).is_empty());
    assert_eq!(c.node(0).local_entry(b"a", c.now).map(|e| e.value), Some(b("ok")));
    assert!(c.node(0).local_entry(b"b", c.now).is_none());
}

#[test]
fn a_read_reply_from_far_in_the_future_does_not_count_as_an_answer() {
    let mut c = cluster();
    let outputs = feed(&mut c, 0, Input::Client { conn: 1, req: 1, cmd: Command::Get { key: b("r") }, levels: ALL });
    let Some(PeerMsg::Get { id, .. }) = sent_to(&outputs, 1).into_iter().next() else { panic!("asks n1") };
    let future = PeerMsg::GetReply { id, entries: vec![Some(entry_at("future", Timestamp(u64::MAX)))] };
    assert!(from_peer(&mut c, 0, 1, future).is_empty(), "not enough answers yet");
    let outputs = from_peer(&mut c, 0, 2, PeerMsg::GetReply { id, entries: vec![None] });
    let reply = outputs.iter().find_map(|o| match o {
        Output::Reply { reply, .. } => Some(reply.clone()),
        _ => None,
    });
    let Some(Reply::Error(text)) = reply else { panic!("an error reply: {outputs:?}") };
    assert!(text.contains("2 of 3"), "{text}");
    assert_eq!(stats(&c, 0).clock_drift_rejected, 1);
    assert!(c.node(0).local_entry(b"r", c.now).is_none());
}

#[test]
fn an_anti_entropy_clock_from_far_in_the_future_is_not_followed() {
    let mut c = cluster();
    let before = c.node(0).hlc().last();
    let ring = c.node(0).ring_digest();
    from_peer(&mut c, 0, 1, PeerMsg::AeGroups { unused: Unused, ring, hashes: Vec::new(), hlc: u64::MAX });
    assert_eq!(c.node(0).hlc().last(), before);
    assert_eq!(stats(&c, 0).clock_drift_rejected, 1);
    let near = Timestamp::from_millis(c.now + 1_000).0;
    from_peer(&mut c, 0, 1, PeerMsg::AeGroups { unused: Unused, ring, hashes: Vec::new(), hlc: near });
    assert_eq!(c.node(0).hlc().last(), Timestamp(near), "a clock within the bound is followed");
}

#[test]
fn a_lock_grant_with_a_token_from_far_in_the_future_is_dropped() {
    let mut c = cluster();
    let op = LockOp::Acquire { name: "l".into(), owner: "o".into(), token: u64::MAX, ttl_ms: 1_000 };
    assert!(from_peer(&mut c, 0, 1, PeerMsg::Lock { id: Some(RequestId(4)), op }).is_empty(), "dropped, unanswered");
    assert_eq!(stats(&c, 0).clock_drift_rejected, 1);
    // The lock's highest token did not become u64::MAX: an ordinary grant still works.
    let token = Timestamp::from_millis(c.now).0;
    let op = LockOp::Acquire { name: "l".into(), owner: "o".into(), token, ttl_ms: 1_000 };
    let outputs = from_peer(&mut c, 0, 1, PeerMsg::Lock { id: Some(RequestId(5)), op });
    let replies = sent_to(&outputs, 1);
    let [PeerMsg::LockReply { id: RequestId(5), answer }] = replies.as_slice() else { panic!("answered: {replies:?}") };
    assert!(answer.applied);
}

#[test]
fn a_lock_answer_with_a_token_from_far_in_the_future_is_ignored() {
    let mut c = cluster();
    let before = c.node(0).hlc().last();
    let answer = LockAnswer { applied: true, holder: None, max_token: u64::MAX };
    from_peer(&mut c, 0, 1, PeerMsg::LockReply { id: RequestId(1), answer });
    assert_eq!(c.node(0).hlc().last(), before);
    assert_eq!(stats(&c, 0).clock_drift_rejected, 1);
}

#[test]
fn a_replica_that_refuses_a_future_write_leaves_the_coordinator_short_of_acks() {
    // A write at ALL whose replicas refuse it: the coordinator must not count them. Here the coordinator's own
    // clock is far ahead (skew), so its entries are in the replicas' future.
    let mut c = cluster();
    c.skew[0] = 3_600_000;
    let key = (0..200).map(|i| format!("w{i}")).find(|k| c.owners(0, k).first() == Some(&0)).expect("a key of n0");
    let reply = c.call(0, crate::core::testkit::set(&key, "v"), ALL);
    let Reply::Error(text) = reply else { panic!("the write is not acknowledged: {reply:?}") };
    assert!(text.starts_with("TIMEOUT write at ALL: 1 of 3"), "{text}");
    assert!(stats(&c, 1).clock_drift_rejected + stats(&c, 2).clock_drift_rejected >= 2);
}
