//! Codec properties: every header, member and identity round-trips; arbitrary bytes never panic the decoder;
//! and packet sizes compared with foca's postcard codec.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Buf;
use foca::{Codec, Header, Member, Message, PostcardCodec, State};
use proptest::prelude::*;

use crate::core::membership::codec::{CodecError, RmpCodec};
use crate::core::membership::Identity;

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|ip| IpAddr::V4(Ipv4Addr::from(ip))),
        any::<u128>().prop_map(|ip| IpAddr::V6(Ipv6Addr::from(ip))),
    ]
}

fn arb_identity() -> impl Strategy<Value = Identity> {
    (arb_ip(), any::<u16>(), any::<u16>(), proptest::option::of(arb_ip()), "[a-z0-9.-]{0,64}", any::<u64>()).prop_map(
        |(ip, gossip_port, client_port, client_ip, name, incarnation)| {
            let client_addr = SocketAddr::new(client_ip.unwrap_or(ip), client_port);
            Identity::new(SocketAddr::new(ip, gossip_port), client_addr, name, incarnation)
        },
    )
}

fn arb_message() -> impl Strategy<Value = Message<Identity>> {
    prop_oneof![
        any::<u8>().prop_map(Message::Ping),
        any::<u8>().prop_map(Message::Ack),
        (arb_identity(), any::<u8>()).prop_map(|(target, probe_number)| Message::PingReq { target, probe_number }),
        (arb_identity(), any::<u8>()).prop_map(|(origin, probe_number)| Message::IndirectPing { origin, probe_number }),
        (arb_identity(), any::<u8>()).prop_map(|(target, probe_number)| Message::IndirectAck { target, probe_number }),
        (arb_identity(), any::<u8>()).prop_map(|(origin, probe_number)| Message::ForwardedAck { origin, probe_number }),
        Just(Message::Announce),
        Just(Message::Feed),
        Just(Message::Gossip),
        Just(Message::Broadcast),
        Just(Message::TurnUndead),
    ]
}

fn arb_header() -> impl Strategy<Value = Header<Identity>> {
    (arb_identity(), any::<u16>(), arb_identity(), arb_message())
        .prop_map(|(src, src_incarnation, dst, message)| Header { src, src_incarnation, dst, message })
}

fn arb_member() -> impl Strategy<Value = Member<Identity>> {
    let state = prop_oneof![Just(State::Alive), Just(State::Suspect), Just(State::Down)];
    (arb_identity(), any::<u16>(), state).prop_map(|(id, incarnation, state)| Member::new(id, incarnation, state))
}

proptest! {
    #[test]
    fn headers_and_members_round_trip_back_to_back(header in arb_header(), members in proptest::collection::vec(arb_member(), 0..8)) {
        let mut buf = Vec::new();
        RmpCodec.encode_header(&header, &mut buf).expect("encodes");
        for member in &members {
            RmpCodec.encode_member(member, &mut buf).expect("encodes");
        }
        buf.extend_from_slice(b"tail");
        let mut rest = &buf[..];
        prop_assert_eq!(RmpCodec.decode_header(&mut rest).expect("decodes"), header);
        for member in &members {
            prop_assert_eq!(&RmpCodec.decode_member(&mut rest).expect("decodes"), member);
        }
        prop_assert_eq!(rest.chunk(), b"tail");
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut rest = &bytes[..];
        let _ = RmpCodec.decode_header(&mut rest);
        let mut rest = &bytes[..];
        let _ = RmpCodec.decode_member(&mut rest);
    }

    #[test]
    fn every_truncation_of_a_header_fails(header in arb_header()) {
        let mut buf = Vec::new();
        RmpCodec.encode_header(&header, &mut buf).expect("encodes");
        for len in 0..buf.len() {
            let mut rest = &buf[..len];
            prop_assert!(RmpCodec.decode_header(&mut rest).is_err(), "decoded from {} of {} bytes", len, buf.len());
        }
    }
}

#[test]
fn encoding_into_a_full_buffer_leaves_it_untouched() {
    let member = Member::alive(identity(1));
    let mut storage = [0u8; 8];
    let mut buf = &mut storage[..];
    assert!(matches!(RmpCodec.encode_member(&member, &mut buf), Err(CodecError::BufferFull)));
    assert_eq!(storage, [0u8; 8]);
}

#[test]
fn overlong_names_and_bad_tags_are_refused() {
    let long = Identity { name: "x".repeat(65), ..identity(1) };
    let mut buf = Vec::new();
    RmpCodec.encode_member(&Member::alive(long), &mut buf).expect("encodes");
    assert!(matches!(RmpCodec.decode_member(&mut &buf[..]), Err(CodecError::Invalid(_))));

    let mut buf = Vec::new();
    RmpCodec.encode_member(&Member::alive(identity(1)), &mut buf).expect("encodes");
    *buf.last_mut().expect("state byte") = 3;
    assert!(matches!(RmpCodec.decode_member(&mut &buf[..]), Err(CodecError::Invalid(_))));

    let header = Header { src: identity(1), src_incarnation: 0, dst: identity(2), message: Message::Gossip };
    let mut buf = Vec::new();
    RmpCodec.encode_header(&header, &mut buf).expect("encodes");
    buf[0] = 2;
    assert!(matches!(RmpCodec.decode_header(&mut &buf[..]), Err(CodecError::Version(2))));
}

/// A realistic identity: IPv4, client port on the same IP, "shoal-N" name, start time in ms.
fn identity(i: u8) -> Identity {
    let ip = IpAddr::V4(Ipv4Addr::new(10, 1, 2, i));
    Identity::new(SocketAddr::new(ip, 7946), SocketAddr::new(ip, 6379), format!("shoal-{i}"), 1_764_000_000_000)
}

/// Bytes foca writes for a header followed by `members` updates (count prefix included), with `codec`.
fn packet_len<C: Codec<Identity>>(mut codec: C, header: &Header<Identity>, members: usize) -> usize {
    let mut buf = Vec::new();
    codec.encode_header(header, &mut buf).map_err(|_| ()).expect("encodes");
    if members > 0 {
        buf.extend_from_slice(&[0, 0]);
        for i in 0..members {
            let member = Member::new(identity(10 + i as u8), 3, State::Alive);
            codec.encode_member(&member, &mut buf).map_err(|_| ()).expect("encodes");
        }
    }
    buf.len()
}

#[test]
fn packet_sizes_against_postcard() {
    let header = |message| Header { src: identity(1), src_incarnation: 2, dst: identity(2), message };
    let cases = [
        ("ping", header(Message::Ping(7)), 0),
        ("ping + 3 updates", header(Message::Ping(7)), 3),
        ("ping-req", header(Message::PingReq { target: identity(3), probe_number: 7 }), 0),
        ("feed of 10", header(Message::Feed), 10),
        ("feed of 30", header(Message::Feed), 30),
    ];
    let mut line = String::new();
    for (name, header, members) in cases {
        let rmp = packet_len(RmpCodec, &header, members);
        let postcard = packet_len(PostcardCodec, &header, members);
        line += &format!("{name}: rmp {rmp} B, postcard {postcard} B; ");
        // Our codec must stay within 25% of postcard's (it pays for a version byte and self-description).
        assert!(rmp * 4 <= postcard * 5, "{name}: rmp {rmp} vs postcard {postcard}");
    }
    eprintln!("{line}");
}
