//! Unit tests of the slot map: routing of cluster-aware commands, and the shapes of the CLUSTER replies.

use std::net::SocketAddr;

use bytes::Bytes;

use super::*;
use crate::core::command::{SetCond, SetTtl};
use crate::core::reply::Reply;

fn topology(names: &[&str], me: &str) -> Topology {
    let ring = Ring::new(names, 64);
    let members = ring
        .members()
        .iter()
        .enumerate()
        .map(|(i, name)| TopoMember {
            name: name.clone(),
            id: node_id(name),
            client: SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16)),
            gossip: SocketAddr::from(([127, 0, 0, 1], 17000 + i as u16)),
            suspect: false,
        })
        .collect();
    Topology::build(&ring, 3, members, me, 7)
}

fn get(key: &str) -> Command {
    Command::Get { key: Bytes::copy_from_slice(key.as_bytes()) }
}

fn set(key: &str) -> Command {
    let (key, value) = (Bytes::copy_from_slice(key.as_bytes()), Bytes::from_static(b"v"));
    Command::Set { key, value, cond: SetCond::Always, ttl: SetTtl::Clear, get: false, reply_int: false }
}

/// A key whose slot's master is member `master` and whose owners include member `owner` or not.
fn key_where(t: &Topology, pred: impl Fn(&[u32]) -> bool) -> String {
    (0..100_000).map(|i| format!("k{i}")).find(|k| pred(t.owners(key_slot(k.as_bytes())))).expect("a key")
}

#[test]
fn the_master_serves_others_are_moved_and_readonly_reads_stay_on_any_owner() {
    let t = topology(&["a", "b", "c", "d"], "a");
    let mine = key_where(&t, |o| o[0] == 0);
    assert_eq!(t.route(&get(&mine), false), Route::Serve);
    assert_eq!(t.route(&set(&mine), false), Route::Serve);
    let replica = key_where(&t, |o| o[0] != 0 && o.contains(&0));
    let slot = key_slot(replica.as_bytes());
    let master = t.master(slot).unwrap().client;
    assert_eq!(t.route(&get(&replica), false), Route::Moved(slot, master));
    assert_eq!(t.route(&get(&replica), true), Route::Serve, "READONLY: a replica answers reads");
    assert_eq!(t.route(&set(&replica), true), Route::Moved(slot, master), "writes still go to the master");
    let other = key_where(&t, |o| !o.contains(&0));
    let slot = key_slot(other.as_bytes());
    assert_eq!(t.route(&get(&other), true), Route::Moved(slot, t.master(slot).unwrap().client));
    let reply = t.route(&get(&other), false).reply().unwrap();
    assert_eq!(reply, Reply::error(format!("MOVED {slot} {}", t.master(slot).unwrap().client)));
    assert_eq!(t.route(&Command::DbSize, false), Route::Serve);
}

#[test]
fn multi_key_commands_need_one_slot() {
    let t = topology(&["a", "b", "c"], "a");
    let keys = |ks: &[&str]| ks.iter().map(|k| Bytes::copy_from_slice(k.as_bytes())).collect::<Vec<_>>();
    let cross = Command::MGet { keys: keys(&["foo", "bar"]) };
    assert_eq!(t.route(&cross, false), Route::CrossSlot);
    assert_eq!(t.route(&cross, false).reply(), Some(Reply::err(ERR_CROSSSLOT)));
    let tagged = Command::Del { keys: keys(&["{u1}.a", "{u1}.b", "u1"]) };
    assert_eq!(command_slot(&tagged), Ok(Some(key_slot(b"u1"))));
    let pairs = vec![(Bytes::from_static(b"{x}1"), Bytes::new()), (Bytes::from_static(b"y"), Bytes::new())];
    assert_eq!(command_slot(&Command::MSet { pairs, if_none_exist: true }), Err(CrossSlot));
    assert_eq!(command_slot(&Command::Exists { keys: keys(&["{x}1", "{x}2"]) }), Ok(Some(key_slot(b"x"))));
    assert_eq!(command_slot(&Command::DbSize), Ok(None));
}

#[test]
fn slots_reply_covers_every_slot_with_master_first() {
    let t = topology(&["a", "b", "c"], "b");
    let Reply::Array(ranges) = t.slots_reply() else { panic!("array") };
    let mut next = 0i64;
    for range in &ranges {
        let Reply::Array(entry) = range else { panic!("range") };
        assert_eq!(entry[0], Reply::Int(next));
        let Reply::Int(end) = entry[1] else { panic!("end") };
        assert!(end >= next);
        next = end + 1;
        assert_eq!(entry.len(), 2 + 3, "a master and two replicas");
        let Reply::Array(master) = &entry[2] else { panic!("node") };
        let owners = t.owners(end as u16);
        let m = &t.members()[owners[0] as usize];
        assert_eq!(master[0], Reply::Bulk(Bytes::from(m.client.ip().to_string())));
        assert_eq!(master[1], Reply::Int(i64::from(m.client.port())));
        assert_eq!(master[2], Reply::Bulk(Bytes::from(m.id.clone())));
    }
    assert_eq!(next, 16384);
}

#[test]
fn nodes_reply_lists_each_member_once_with_its_master_slots() {
    let t = topology(&["a", "b", "c"], "c");
    let Reply::Verbatim(text) = t.nodes_reply() else { panic!("text") };
    let mut covered = vec![false; SLOTS];
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields[0].len(), 40);
        assert!(fields[1].starts_with("127.0.0.1:700") && fields[1].contains("@1700"));
        assert_eq!(fields[2].contains("myself"), fields[0] == node_id("c"));
        assert!(fields[2].ends_with("master"));
        assert_eq!(&fields[3..8], ["-", "0", "0", "7", "connected"]);
        for spec in &fields[8..] {
            let (start, end) = spec.split_once('-').unwrap_or((spec, spec));
            let (start, end) = (start.parse::<usize>().unwrap(), end.parse::<usize>().unwrap());
            for (s, seen) in covered.iter_mut().enumerate().take(end + 1).skip(start) {
                assert!(!*seen, "slot {s} listed twice");
                *seen = true;
            }
        }
    }
    assert!(covered.iter().all(|&c| c), "every slot has a master");
}

#[test]
fn shards_and_info_describe_the_same_map() {
    let t = topology(&["a", "b", "c"], "a");
    let Reply::Array(shards) = t.shards_reply() else { panic!("array") };
    let mut slots = 0;
    for shard in &shards {
        let Reply::Map(fields) = shard else { panic!("map") };
        let Reply::Array(bounds) = &fields[0].1 else { panic!("slots") };
        for pair in bounds.chunks(2) {
            let (Reply::Int(s), Reply::Int(e)) = (&pair[0], &pair[1]) else { panic!("ints") };
            slots += e - s + 1;
        }
        let Reply::Array(nodes) = &fields[1].1 else { panic!("nodes") };
        assert_eq!(nodes.len(), 3);
    }
    assert_eq!(slots, 16384);
    let Reply::Verbatim(info) = t.info_reply() else { panic!("text") };
    assert!(info.starts_with("cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n"));
    assert!(info.contains("cluster_known_nodes:3\r\ncluster_size:3\r\n"), "{info}");
    assert_eq!(t.myid_reply(), Reply::Bulk(Bytes::from(node_id("a"))));
}
