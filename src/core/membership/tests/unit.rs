//! Hand-built packets against one node with a seeded RNG: what is accepted, and what is dropped, counted and
//! leaves the node exactly as it was.

use std::net::SocketAddr;

use bytes::Bytes;
use foca::{Codec, Header, Member, Message};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::core::membership::auth::{Envelope, MODE_PLAIN};
use crate::core::membership::codec::RmpCodec;
use crate::core::membership::{
    ClusterSecret, GossipConfig, GossipEffect, Identity, MemberEvent, MemberInfo, Membership, MembershipCounters,
};

const NOW: u64 = 1_764_000_000_000;

fn id(i: u8) -> Identity {
    let gossip: SocketAddr = format!("10.0.0.{i}:7946").parse().expect("addr");
    let client: SocketAddr = format!("10.0.0.{i}:6379").parse().expect("addr");
    Identity::new(gossip, client, format!("n{i}"), NOW)
}

fn secret(byte: u8) -> ClusterSecret {
    ClusterSecret::from_bytes(&[byte; 32]).expect("secret")
}

fn node(secret: Option<ClusterSecret>) -> Membership {
    Membership::new(id(1), GossipConfig::lan(), secret, 42).expect("valid")
}

/// foca's bytes for `header` and `updates`, sealed as `secret` would.
fn packet(secret: Option<&ClusterSecret>, header: &Header<Identity>, updates: &[Member<Identity>]) -> Bytes {
    let mut payload = Vec::new();
    RmpCodec.encode_header(header, &mut payload).expect("encodes");
    if !updates.is_empty() {
        payload.extend_from_slice(&u16::try_from(updates.len()).expect("few").to_be_bytes());
        for update in updates {
            RmpCodec.encode_member(update, &mut payload).expect("encodes");
        }
    }
    Envelope::new(secret.cloned()).seal(&payload)
}

fn announce_from(i: u8) -> Header<Identity> {
    Header { src: id(i), src_incarnation: 0, dst: Identity::placeholder(id(1).gossip_addr), message: Message::Announce }
}

fn gossip_from(i: u8) -> Header<Identity> {
    Header { src: id(i), src_incarnation: 0, dst: id(1), message: Message::Gossip }
}

/// The parts of a node that a rejected packet must not change.
fn state(m: &Membership) -> (Vec<MemberInfo>, u64, Identity) {
    (m.members(), m.live_digest(), m.identity().clone())
}

fn rejected(c: &MembershipCounters) -> u64 {
    c.rejected_oversize + c.rejected_truncated + c.rejected_auth + c.rejected_decode + c.rejected_protocol
}

/// Feeds `bytes` and asserts it was dropped: no effect, no state change, one more rejection counted.
fn assert_dropped(m: &mut Membership, bytes: &[u8]) {
    let before = state(m);
    let rejected_before = rejected(m.counters());
    let mut out = Vec::new();
    m.handle_packet(NOW, id(9).gossip_addr, bytes, &mut out);
    assert!(out.is_empty(), "effects from a bad packet {bytes:02x?}: {out:?}");
    assert_eq!(state(m), before, "state changed by {bytes:02x?}");
    assert_eq!(rejected(m.counters()), rejected_before + 1, "not counted: {bytes:02x?}");
}

#[test]
fn valid_announce_is_answered_and_admits_the_sender() {
    for key in [None, Some(secret(1))] {
        let mut m = node(key.clone());
        let mut out = Vec::new();
        m.handle_packet(NOW, id(2).gossip_addr, &packet(key.as_ref(), &announce_from(2), &[]), &mut out);
        assert!(out.contains(&GossipEffect::Changed(MemberEvent::Up(id(2)))), "{out:?}");
        let replied = out.iter().any(|e| matches!(e, GossipEffect::Send { to, .. } if *to == id(2).gossip_addr));
        assert!(replied, "feed sent back: {out:?}");
        assert_eq!(m.live_members().len(), 2);
        assert_eq!(rejected(m.counters()), 0);
    }
}

#[test]
fn garbage_is_dropped_and_counted() {
    let mut rng = StdRng::seed_from_u64(7);
    for key in [None, Some(secret(1))] {
        let mut m = node(key);
        for _ in 0..2_000 {
            let len = rng.random_range(0..200);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if rng.random_bool(0.5) && !bytes.is_empty() {
                bytes[0] = MODE_PLAIN; // get past the envelope to the decoder on the plain node
            }
            assert_dropped(&mut m, &bytes);
        }
        assert_eq!(m.counters().packets_received, 2_000);
    }
}

#[test]
fn truncated_packets_are_dropped() {
    let key = secret(1);
    let full = packet(Some(&key), &gossip_from(2), &[Member::alive(id(3)), Member::alive(id(4))]);
    let mut m = node(Some(key));
    for len in 0..full.len() {
        assert_dropped(&mut m, &full[..len]);
    }
    assert_eq!(m.counters().rejected_truncated, 17, "up to the mode byte and a tag");
    // Without a MAC the codec alone must refuse every cut inside the header or inside an update.
    let full = packet(None, &gossip_from(2), &[Member::alive(id(3))]);
    let mut header = Vec::new();
    RmpCodec.encode_header(&gossip_from(2), &mut header).expect("encodes");
    let mut m = node(None);
    let inside_header = 0..=header.len();
    let inside_update = header.len() + 4..full.len();
    for len in inside_header.chain(inside_update) {
        assert_dropped(&mut m, &full[..len]);
    }
}

#[test]
fn forged_packets_are_dropped() {
    let key = secret(1);
    let genuine = packet(Some(&key), &announce_from(2), &[]);
    let mut m = node(Some(key));
    for bit in 0..genuine.len() * 8 {
        let mut forged = genuine.to_vec();
        forged[bit / 8] ^= 1 << (bit % 8);
        assert_dropped(&mut m, &forged);
    }
    assert!(m.counters().rejected_auth >= genuine.len() as u64 * 8 - 8);
}

#[test]
fn wrong_missing_or_unexpected_secret_is_rejected() {
    let mut m = node(Some(secret(1)));
    assert_dropped(&mut m, &packet(Some(&secret(2)), &announce_from(2), &[]));
    assert_dropped(&mut m, &packet(None, &announce_from(2), &[]));
    assert_eq!(m.counters().rejected_auth, 2);
    let mut plain = node(None);
    assert_dropped(&mut plain, &packet(Some(&secret(1)), &announce_from(2), &[]));
    assert_eq!(plain.counters().rejected_auth, 1);
}

#[test]
fn oversize_packets_are_dropped_before_anything_else() {
    let mut m = node(None);
    let mut big = packet(None, &announce_from(2), &[]).to_vec();
    big.resize(GossipConfig::lan().max_packet_size + 1, 0);
    assert_dropped(&mut m, &big);
    assert_eq!(m.counters().rejected_oversize, 1);
}

#[test]
fn protocol_violations_are_dropped() {
    let mut m = node(None);
    // From our own identity, or from another identity on our address.
    let ours = Header { src: id(1), src_incarnation: 0, dst: id(1), message: Message::Gossip };
    assert_dropped(&mut m, &packet(None, &ours, &[]));
    // An announce with a payload, and a bad member state inside an otherwise valid update list.
    assert_dropped(&mut m, &packet(None, &announce_from(2), &[Member::alive(id(3))]));
    let mut bad_state = packet(None, &gossip_from(2), &[Member::alive(id(3))]).to_vec();
    *bad_state.last_mut().expect("state byte") = 9;
    assert_dropped(&mut m, &bad_state);
    assert_eq!(m.counters().rejected_protocol, 1);
    assert_eq!(m.counters().rejected_decode, 2);
}

#[test]
fn a_node_that_left_ignores_everything() {
    let mut m = node(None);
    let mut out = Vec::new();
    m.handle_packet(NOW, id(2).gossip_addr, &packet(None, &announce_from(2), &[]), &mut out);
    out.clear();
    m.leave(NOW, &mut out);
    assert!(out.iter().any(|e| matches!(e, GossipEffect::Send { .. })), "leave tells a peer");
    let before = state(&m);
    out.clear();
    m.handle_packet(NOW, id(2).gossip_addr, &packet(None, &gossip_from(2), &[Member::down(id(1))]), &mut out);
    m.join(NOW, &[id(2).gossip_addr], &mut out);
    assert!(out.is_empty());
    assert_eq!(state(&m), before);
    assert_eq!(m.counters().dropped_after_leave, 1);
}

#[test]
fn join_announces_to_seeds_but_not_to_itself_and_schedules_the_round() {
    let mut m = node(None);
    let mut out = Vec::new();
    m.join(NOW, &[id(1).gossip_addr, id(2).gossip_addr, id(2).gossip_addr, id(3).gossip_addr], &mut out);
    let sent: Vec<SocketAddr> = out
        .iter()
        .filter_map(|e| match e {
            GossipEffect::Send { to, .. } => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(sent, [id(2).gossip_addr, id(3).gossip_addr]);
    let rounds = out.iter().filter(|e| matches!(e, GossipEffect::Schedule { .. })).count();
    assert_eq!(rounds, 1);
    assert_eq!(m.counters().announces_sent, 2);
}

#[test]
fn same_seed_same_inputs_same_outputs() {
    let run = || {
        let mut m = node(Some(secret(1)));
        let mut out = Vec::new();
        m.join(NOW, &[id(2).gossip_addr], &mut out);
        for i in 2..8 {
            m.handle_packet(NOW, id(i).gossip_addr, &packet(Some(&secret(1)), &announce_from(i), &[]), &mut out);
        }
        out
    };
    assert_eq!(run(), run());
}
