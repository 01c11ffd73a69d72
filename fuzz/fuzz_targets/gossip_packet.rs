//! Arbitrary bytes as gossip datagrams: `Membership::handle_packet` must never panic, and a node with a cluster
//! secret must never change state on a packet it did not authenticate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::core::membership::{ClusterSecret, GossipConfig, GossipEffect, Identity, Membership};

const NOW: u64 = 1_764_000_000_000;

fn node(secret: Option<ClusterSecret>) -> Membership {
    let addr = "10.0.0.1:7946".parse().expect("addr");
    let identity = Identity::new(addr, "10.0.0.1:6379".parse().expect("addr"), "fuzz", NOW);
    Membership::new(identity, GossipConfig::lan(), secret, 1).expect("valid config")
}

fuzz_target!(|data: &[u8]| {
    let from = "10.0.0.2:7946".parse().expect("addr");
    let mut out = Vec::new();

    // A plain node reaches the decoder and foca: split the input into several datagrams so that state built by
    // one (members, suspicions) is exercised by the next, then fire every timer those packets scheduled.
    let mut plain = node(None);
    for packet in data
        .split(|&b| b == 0xA0)
        .filter(|p| !p.is_empty())
        .take(16)
    {
        let mut datagram = vec![0xA0];
        datagram.extend_from_slice(packet);
        plain.handle_packet(NOW, from, &datagram, &mut out);
    }
    let timers: Vec<_> = out
        .drain(..)
        .filter_map(|effect| match effect {
            GossipEffect::Schedule { timer, .. } => Some(timer),
            _ => None,
        })
        .collect();
    for timer in timers {
        plain.handle_timer(NOW, timer, &mut out);
    }
    let _ = (plain.members(), plain.live_digest());

    // A node with a secret rejects everything the fuzzer can make (it cannot forge a tag).
    let mut sealed = node(Some(ClusterSecret::from_bytes(&[7; 32]).expect("secret")));
    let before = sealed.members();
    out.clear();
    sealed.handle_packet(NOW, from, data, &mut out);
    assert!(out.is_empty());
    assert_eq!(sealed.members(), before);
});
