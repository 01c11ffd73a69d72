//! Hand-built packets against one node with a seeded RNG: what is accepted, and what is dropped, counted and
//! leaves the node exactly as it was.

use std::net::SocketAddr;

use bytes::Bytes;
use foca::{Codec, Header, Member, Message, State};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::core::membership::auth::{Envelope, MODE_PLAIN};
use crate::core::membership::codec::RmpCodec;
use crate::core::membership::{
    ClusterSecret, GossipConfig, GossipEffect, GossipTimer, Identity, MemberEvent, MemberInfo, MemberState, Membership,
    MembershipCounters,
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

fn rejected(c: MembershipCounters) -> u64 {
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
fn join_announces_to_seeds_but_not_to_itself_and_schedules_its_rounds() {
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
    let rounds: Vec<&GossipTimer> = out
        .iter()
        .filter_map(|e| match e {
            GossipEffect::Schedule { timer, .. } => Some(timer),
            _ => None,
        })
        .collect();
    assert_eq!(rounds, [&GossipTimer::Announce, &GossipTimer::SuspectSweep]);
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

/// Every datagram in `out`, decoded: (destination, header, updates).
fn sent(out: &[GossipEffect]) -> Vec<(SocketAddr, Header<Identity>, Vec<Member<Identity>>)> {
    let envelope = Envelope::new(None);
    out.iter()
        .filter_map(|e| match e {
            GossipEffect::Send { to, packet } => Some((*to, packet)),
            _ => None,
        })
        .map(|(to, packet)| {
            let mut payload = envelope.open(packet).expect("own packets open");
            let header = RmpCodec.decode_header(&mut payload).expect("header");
            let mut updates = Vec::new();
            if payload.len() >= 2 {
                let count = u16::from_be_bytes([payload[0], payload[1]]);
                payload = &payload[2..];
                for _ in 0..count {
                    updates.push(RmpCodec.decode_member(&mut payload).expect("member"));
                }
            }
            (to, header, updates)
        })
        .collect()
}

fn with_incarnation(i: u8, incarnation: u64) -> Identity {
    Identity { incarnation, ..id(i) }
}

#[test]
fn an_outranked_sender_is_told_which_identity_holds_its_address() {
    let mut m = node(None);
    let mut out = Vec::new();
    m.handle_packet(NOW, id(2).gossip_addr, &packet(None, &announce_from(2), &[]), &mut out);
    // n2 restarted with a clock an hour behind: its new identity loses to the one n1 knows.
    let stale = Header { src: with_incarnation(2, NOW - 3_600_000), ..announce_from(2) };
    out.clear();
    m.handle_packet(NOW, id(2).gossip_addr, &packet(None, &stale, &[]), &mut out);
    let hint = sent(&out).into_iter().find(|(_, h, _)| h.message == Message::Gossip).expect("a hint is sent");
    assert_eq!((hint.0, &hint.1.dst), (id(2).gossip_addr, &stale.src));
    assert_eq!(hint.2.iter().map(|u| u.id().clone()).collect::<Vec<_>>(), [id(2)]);
    assert_eq!(m.counters().identity_hints_sent, 1);
}

#[test]
fn a_node_that_hears_of_its_own_higher_identity_renews_above_it() {
    let mut m = node(None);
    let mut out = Vec::new();
    let past = with_incarnation(1, NOW + 5_000);
    m.handle_packet(NOW, id(2).gossip_addr, &packet(None, &gossip_from(2), &[Member::down(past)]), &mut out);
    assert_eq!(m.identity().incarnation, NOW + 5_001);
    assert!(out.contains(&GossipEffect::Changed(MemberEvent::Rejoined(m.identity().clone()))));
    let own_rows: Vec<MemberInfo> = m.members().into_iter().filter(|r| r.name == "n1").collect();
    assert_eq!(own_rows.len(), 1, "own older identities are not rows: {own_rows:?}");
    assert_eq!((own_rows[0].incarnation, own_rows[0].state), (NOW + 5_001, MemberState::Alive));
    assert_eq!(m.counters().members_down, 0);
    assert_eq!(m.live_digest(), crate::core::membership::view::live_digest(&m.members()));
    // A lower identity of ours is history: no renewal.
    let before = m.identity().clone();
    let older = with_incarnation(1, NOW - 1);
    m.handle_packet(NOW, id(2).gossip_addr, &packet(None, &gossip_from(2), &[Member::down(older)]), &mut out);
    assert_eq!(m.identity(), &before);
}

#[test]
fn a_suspicion_learned_from_gossip_is_nudged_then_expires() {
    let mut m = node(None);
    let mut out = Vec::new();
    m.join(NOW, &[], &mut out);
    let alive = Member::new(id(3), 0, State::Alive);
    m.handle_packet(NOW, id(2).gossip_addr, &packet(None, &gossip_from(2), &[alive]), &mut out);
    let suspect = Member::new(id(3), 0, State::Suspect);
    m.handle_packet(NOW, id(2).gossip_addr, &packet(None, &gossip_from(2), std::slice::from_ref(&suspect)), &mut out);
    assert_eq!(m.counters().members_suspect, 1);
    for round in 0..2 {
        out.clear();
        m.handle_timer(NOW, GossipTimer::SuspectSweep, &mut out);
        let nudges: Vec<_> = sent(&out).into_iter().filter(|(to, _, _)| *to == id(3).gossip_addr).collect();
        assert_eq!(nudges.len(), 1, "round {round}");
        assert_eq!((&nudges[0].1.dst, &nudges[0].2[..]), (&id(3), std::slice::from_ref(&suspect)));
    }
    out.clear();
    m.handle_timer(NOW, GossipTimer::SuspectSweep, &mut out);
    assert!(out.contains(&GossipEffect::Changed(MemberEvent::Down(id(3)))));
    assert_eq!((m.counters().members_suspect, m.counters().suspicions_expired), (0, 1));
}

#[test]
fn a_nudged_live_suspect_refutes() {
    let mut suspect = Membership::new(id(3), GossipConfig::lan(), None, 7).expect("valid");
    let mut out = Vec::new();
    let nudge = Header { src: id(1), src_incarnation: 0, dst: id(3), message: Message::Gossip };
    let suspicion = Member::new(id(3), 0, State::Suspect);
    suspect.handle_packet(NOW, id(1).gossip_addr, &packet(None, &nudge, &[suspicion]), &mut out);
    let refutations: Vec<u16> = sent(&out).into_iter().map(|(_, h, _)| h.src_incarnation).collect();
    assert!(!refutations.is_empty() && refutations.iter().all(|i| *i == 1), "{refutations:?}");
}

#[test]
fn a_young_node_pulls_rosters_from_live_members_for_a_minute() {
    let mut m = node(None);
    let mut out = Vec::new();
    m.join(NOW, &[], &mut out);
    m.handle_packet(NOW, id(2).gossip_addr, &packet(None, &announce_from(2), &[]), &mut out);
    let round = |m: &mut Membership| {
        let mut out = Vec::new();
        m.handle_timer(NOW, GossipTimer::Announce, &mut out);
        sent(&out).iter().filter(|(to, h, _)| *to == id(2).gossip_addr && h.message == Message::Announce).count()
    };
    for _ in 0..60_000 / GossipConfig::lan().announce_period_ms {
        assert_eq!(round(&mut m), 1);
    }
    assert_eq!(round(&mut m), 0, "a grown-up node leaves rosters to foca's slower periodic announce");
}
