//! Peer frame tests: hand-built frames for every error, streaming in pieces, the sequence rule, and a round
//! trip of arbitrary messages with and without a session key.

use crate::core::driver::{answer_id, RequestId};
use crate::core::replication::Unused;
use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::core::clock::Timestamp;
use crate::core::command::{Command, ExpireAt, SetCond, SetTtl};
use crate::core::locks::LockOp;
use crate::core::replication::{AeKey, Consistency, EntryKind, Levels, WireEntry};
use crate::core::reply::Reply;
use crate::core::version::{NodeId, Version};
use crate::core::vversion::VersionVector;

fn secret(byte: u8) -> Option<SessionKey> {
    Some(SessionKey::from_bytes(&[byte; 32]))
}

/// A frame without a hand-written encoding (tag 0, rmp-serde).
fn hello() -> Frame {
    Frame::Msg(PeerMsg::AePull { keys: vec![Bytes::from_static(b"a")] })
}

fn put() -> Frame {
    let mut vector = VersionVector::new();
    vector.bump(NodeId(7), Timestamp(1 << 20));
    let entry = WireEntry { kind: EntryKind::Value, value: Bytes::from_static(b"v"), vector, expire_at_ms: 0 };
    Frame::Msg(PeerMsg::Put {
        id: Some(RequestId(9)),
        entries: vec![(Bytes::from_static(b"k"), entry)],
        hint_for: None,
    })
}

/// `frames` as a fresh sender (a copy of `codec`, from sequence number 0) writes them.
fn encoded(codec: &FrameCodec, frames: &[Frame]) -> BytesMut {
    let mut tx = codec.clone();
    let mut buf = BytesMut::new();
    for f in frames {
        tx.encode(f, &mut buf).expect("encodes");
    }
    buf
}

fn decode_all(codec: &mut FrameCodec, buf: &mut BytesMut) -> Result<Vec<Frame>, DecodeError> {
    let mut out = Vec::new();
    while let Some(f) = codec.decode(buf)? {
        out.push(f);
    }
    Ok(out)
}

#[test]
fn frames_round_trip_back_to_back() {
    for codec in [FrameCodec::new(None), FrameCodec::new(secret(1))] {
        let frames =
            vec![hello(), put(), Frame::Msg(PeerMsg::PutAck { id: RequestId(9) }), Frame::Msg(PeerMsg::FlushAll)];
        let mut buf = encoded(&codec, &frames);
        assert_eq!(decode_all(&mut codec.clone(), &mut buf).unwrap(), frames);
        assert!(buf.is_empty());
    }
}

#[test]
fn only_the_next_sequence_number_is_accepted() {
    for codec in [FrameCodec::new(None), FrameCodec::new(secret(1))] {
        let frames: Vec<Frame> = (0..4).map(|id| Frame::Msg(PeerMsg::PutAck { id: RequestId(id) })).collect();
        let whole = encoded(&codec, &frames);
        let size = whole.len() / 4;
        let frame = |i: usize| BytesMut::from(&whole[i * size..(i + 1) * size]);
        let mut rx = codec.clone();
        assert_eq!(rx.decode(&mut frame(0)).unwrap(), Some(frames[0].clone()));
        assert_eq!(rx.decode(&mut frame(1)).unwrap(), Some(frames[1].clone()));
        // The same frame again, or an older one: a replay.
        assert!(matches!(rx.decode(&mut frame(1)), Err(DecodeError::Replayed { seq: 1, expected: 2 })));
        assert!(matches!(rx.decode(&mut frame(0)), Err(DecodeError::Replayed { seq: 0, expected: 2 })));
        // Skipping one: reordered (or dropped) frames.
        assert!(matches!(rx.decode(&mut frame(3)), Err(DecodeError::Reordered { seq: 3, expected: 2 })));
        assert_eq!(rx.decode(&mut frame(2)).unwrap(), Some(frames[2].clone()));
        assert_eq!(rx.next_seq(), 3);
        // A frame whose sequence number was rewritten does not verify.
        let mut rewritten = frame(3);
        rewritten[LEN_BYTES + SEQ_BYTES] ^= 1;
        assert!(matches!(codec.clone().decode(&mut rewritten), Err(DecodeError::Check)));
    }
    // A frame from another link (another session key) does not verify: a splice.
    let spliced = encoded(&FrameCodec::new(secret(2)), &[put()]);
    assert!(matches!(FrameCodec::new(secret(1)).decode(&mut spliced.clone()), Err(DecodeError::Check)));
}

#[test]
fn header_layout() {
    let codec = FrameCodec::new(None);
    let buf = encoded(&codec, &[Frame::Msg(PeerMsg::PutAck { id: RequestId(1) })]);
    let len = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
    assert_eq!(len, buf.len() - LEN_BYTES);
    assert_eq!(buf[4], FRAME_VERSION);
    assert_eq!(&buf[5..13], &0u64.to_be_bytes(), "the first frame of a link is number 0");
    let head = LEN_BYTES + 1 + SEQ_BYTES;
    let body = &buf[head + CRC_BYTES..];
    let mut crc = crc32fast::Hasher::new();
    crc.update(&buf[LEN_BYTES..head]);
    crc.update(body);
    assert_eq!(&buf[head..head + CRC_BYTES], &crc.finalize().to_be_bytes());
    assert_eq!(body, [hot::TAG_PUT_ACK, 1]);
    let two = encoded(
        &codec,
        &[Frame::Msg(PeerMsg::PutAck { id: RequestId(1) }), Frame::Msg(PeerMsg::PutAck { id: RequestId(1) })],
    );
    assert_eq!(&two[buf.len() + 5..buf.len() + 13], &1u64.to_be_bytes(), "then number 1");
    // A frame without a hand-written encoding is tag 0 and rmp-serde.
    let buf = encoded(&codec, &[hello()]);
    assert_eq!(buf[head + CRC_BYTES], hot::TAG_RMP);
    assert_eq!(&buf[head + CRC_BYTES + 1..], rmp_serde::to_vec(&hello()).unwrap());
    assert_eq!(FrameCodec::new(secret(1)).check_bytes(), TAG_BYTES);
}

#[test]
fn partial_frames_wait_for_more_bytes() {
    let codec = FrameCodec::new(None);
    let whole = encoded(&codec, &[hello(), put()]);
    // Feed byte by byte: never an error, each frame appears exactly when its last byte arrives.
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut rx = codec.clone();
    for &b in whole.iter() {
        buf.put_u8(b);
        if let Some(f) = rx.decode(&mut buf).unwrap() {
            got.push(f);
        }
    }
    assert_eq!(got, vec![hello(), put()]);
    assert!(buf.is_empty());
}

#[test]
fn oversized_frames_are_refused_on_both_sides() {
    let mut small = FrameCodec::new(None).with_frame_bytes_max(24);
    let mut buf = BytesMut::new();
    assert!(matches!(small.encode(&put(), &mut buf), Err(EncodeError::TooLarge { .. })));
    assert!(buf.is_empty(), "a refused frame leaves nothing behind");
    assert_eq!(small.next_seq(), 0, "and takes no sequence number");
    // The receiver refuses on the prefix alone, before the body arrives.
    let mut buf = BytesMut::from(&[0, 0, 1, 0][..]);
    assert!(matches!(small.decode(&mut buf), Err(DecodeError::TooLarge { len: 256, max: 24 })));
    let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
    assert!(matches!(FrameCodec::new(None).decode(&mut buf), Err(DecodeError::TooLarge { .. })));
}

#[test]
fn malformed_frames_get_typed_errors() {
    let codec = FrameCodec::new(None);
    let mut short = BytesMut::from(&[0, 0, 0, 12, 1, 0][..]);
    assert!(matches!(codec.clone().decode(&mut short), Err(DecodeError::TooShort(12))));

    let mut bad_version = encoded(&codec, &[put()]);
    bad_version[4] = 2;
    assert!(matches!(codec.clone().decode(&mut bad_version), Err(DecodeError::Version(2))));

    let mut flipped = encoded(&codec, &[put()]);
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    assert!(matches!(codec.clone().decode(&mut flipped), Err(DecodeError::Check)));

    // A valid check over a body that is not a frame.
    let mut garbage = frame_with_body(&[hot::TAG_RMP, 0xc1]);
    assert!(matches!(codec.clone().decode(&mut garbage), Err(DecodeError::Body(_))));
    let mut empty = frame_with_body(&[hot::TAG_RMP]);
    assert!(matches!(codec.clone().decode(&mut empty), Err(DecodeError::Body(_))));
    let mut no_tag = frame_with_body(&[]);
    assert!(matches!(codec.clone().decode(&mut no_tag), Err(DecodeError::Malformed(_))));
    let mut unknown_tag = frame_with_body(&[0xee, 1]);
    assert!(matches!(codec.clone().decode(&mut unknown_tag), Err(DecodeError::Malformed(_))));

    let mut body = rmp_body(&put());
    body.push(0);
    assert!(matches!(codec.clone().decode(&mut frame_with_body(&body)), Err(DecodeError::Trailing(1))));
}

#[test]
fn deep_nesting_is_refused_without_recursing_far() {
    // Frame::Msg(ForwardReply { reply: [[[[...]]]] }) nested far beyond BODY_DEPTH_MAX.
    let mut reply = Reply::Nil;
    for _ in 0..BODY_DEPTH_MAX {
        reply = Reply::Array(vec![reply]);
    }
    let body = rmp_body(&Frame::Msg(PeerMsg::ForwardReply { id: RequestId(1), reply }));
    assert!(matches!(FrameCodec::new(None).decode(&mut frame_with_body(&body)), Err(DecodeError::Body(_))));
    // A hostile body of nothing but array headers.
    let mut body = vec![hot::TAG_RMP, 0x81, 0xa3, b'M', b's', b'g'];
    body.extend(std::iter::repeat_n(0x91, 100_000));
    assert!(FrameCodec::new(None).decode(&mut frame_with_body(&body)).is_err());
}

#[test]
fn old_version_frames_are_refused() {
    // A version 1 frame: the whole body in rmp-serde, behind a valid crc32 of that body.
    let body = rmp_serde::to_vec(&put()).unwrap();
    let mut old = BytesMut::new();
    old.put_u32((1 + CRC_BYTES + body.len()) as u32);
    old.put_u8(1);
    old.put_u32(crc32fast::hash(&body));
    old.put_slice(&body);
    let err = FrameCodec::new(None).decode(&mut old).unwrap_err();
    assert!(matches!(err, DecodeError::Version(1)));
    assert!(err.to_string().contains("speaks version 3"), "{err}");
    assert!(old.is_empty(), "the refused frame is consumed");
}

#[test]
fn version_2_frames_are_refused() {
    // Version 2: no sequence number, a MAC keyed by the cluster secret itself (here a crc32 over the body).
    let body = [hot::TAG_PUT_ACK, 1];
    let mut old = BytesMut::new();
    old.put_u32((1 + CRC_BYTES + 8 + body.len()) as u32);
    old.put_u8(2);
    old.put_u32(crc32fast::hash(&body));
    old.put_bytes(0, 8);
    old.put_slice(&body);
    assert!(matches!(FrameCodec::new(None).decode(&mut old), Err(DecodeError::Version(2))));
}

#[test]
fn hot_messages_are_hand_coded() {
    let codec = FrameCodec::new(None);
    for (frame, tag) in [
        (put(), hot::TAG_PUT),
        (Frame::Msg(PeerMsg::PutAck { id: RequestId(1) }), hot::TAG_PUT_ACK),
        (Frame::Msg(PeerMsg::Get { id: RequestId(1), keys: vec![Bytes::from_static(b"k")] }), hot::TAG_GET),
        (Frame::Msg(PeerMsg::GetReply { id: RequestId(1), entries: vec![None] }), hot::TAG_GET_REPLY),
        (forward(Command::Get { key: Bytes::from_static(b"k") }), hot::TAG_FORWARD_GET),
        (forward(set_cmd()), hot::TAG_FORWARD_SET),
        (Frame::Msg(PeerMsg::ForwardReply { id: RequestId(1), reply: Reply::Ok }), hot::TAG_FORWARD_REPLY),
        (forward(Command::Del { keys: vec![Bytes::from_static(b"k")] }), hot::TAG_RMP),
        (Frame::Msg(PeerMsg::ForwardReply { id: RequestId(1), reply: Reply::Array(vec![]) }), hot::TAG_RMP),
    ] {
        let mut buf = encoded(&codec, std::slice::from_ref(&frame));
        assert_eq!(buf[LEN_BYTES + 1 + SEQ_BYTES + CRC_BYTES], tag, "{frame:?}");
        assert_eq!(codec.clone().decode(&mut buf).unwrap(), Some(frame));
    }
}

#[test]
fn truncated_or_corrupted_hot_bodies_are_refused() {
    let codec = FrameCodec::new(None);
    let mut vector = VersionVector::new();
    vector.bump(NodeId(3), Timestamp(5));
    vector.bump(NodeId(9), Timestamp(6));
    let entry = WireEntry { kind: EntryKind::Tombstone, value: Bytes::new(), vector, expire_at_ms: 1 << 40 };
    let frames = [
        Frame::Msg(PeerMsg::Put {
            id: Some(RequestId(u64::MAX)),
            entries: vec![(Bytes::from_static(b"key"), entry.clone())],
            hint_for: Some("owner".into()),
        }),
        Frame::Msg(PeerMsg::GetReply { id: RequestId(300), entries: vec![None, Some(entry)] }),
        forward(set_cmd()),
        Frame::Msg(PeerMsg::ForwardReply { id: RequestId(2), reply: Reply::Int(i64::MIN) }),
        Frame::Msg(PeerMsg::ForwardReply { id: RequestId(2), reply: Reply::err("ERR x") }),
    ];
    for frame in frames {
        let whole = encoded(&codec, std::slice::from_ref(&frame));
        let body = &whole[LEN_BYTES + 1 + SEQ_BYTES + CRC_BYTES..];
        // Every strict prefix (with a valid crc32) is refused, never read past its end.
        for cut in 0..body.len() {
            assert!(codec.clone().decode(&mut frame_with_body(&body[..cut])).is_err(), "{frame:?} cut at {cut}");
        }
        let mut longer = body.to_vec();
        longer.push(0);
        assert!(matches!(codec.clone().decode(&mut frame_with_body(&longer)), Err(DecodeError::Trailing(1))));
        // Any single corrupted byte either is refused or decodes to a frame that round trips.
        for i in 0..body.len() {
            let mut bad = body.to_vec();
            bad[i] ^= 0xff;
            if let Ok(Some(f)) = codec.clone().decode(&mut frame_with_body(&bad)) {
                let mut again = encoded(&codec, std::slice::from_ref(&f));
                assert_eq!(codec.clone().decode(&mut again).unwrap(), Some(f));
            }
        }
    }
    // Fields a hand-coded body cannot carry: an unsorted vector, a huge count, an overlong varint, bad levels.
    let unsorted = [hot::TAG_GET_REPLY, 1, 1, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1]
        .iter()
        .copied()
        .chain([0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0])
        .collect::<Vec<u8>>();
    assert!(matches!(codec.clone().decode(&mut frame_with_body(&unsorted)), Err(DecodeError::Malformed(_))));
    let huge = [hot::TAG_GET, 1, 0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(matches!(codec.clone().decode(&mut frame_with_body(&huge)), Err(DecodeError::Malformed(_))));
    let overlong = [hot::TAG_PUT_ACK, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
    assert!(matches!(codec.clone().decode(&mut frame_with_body(&overlong)), Err(DecodeError::Malformed(_))));
    let levels = [hot::TAG_FORWARD_GET, 1, 0x33, 0];
    assert!(matches!(codec.clone().decode(&mut frame_with_body(&levels)), Err(DecodeError::Malformed(_))));
}

#[test]
fn secrets_must_match() {
    let plain = FrameCodec::new(None);
    let a = FrameCodec::new(secret(1));
    let b = FrameCodec::new(secret(2));
    let (plain, a, b) = (&mut plain.clone(), &mut a.clone(), &mut b.clone());
    assert!(matches!(b.decode(&mut encoded(a, &[put()])), Err(DecodeError::Check)));
    assert!(matches!(a.decode(&mut encoded(plain, &[put()])), Err(DecodeError::Check)));
    assert!(matches!(plain.decode(&mut encoded(a, &[put()])), Err(DecodeError::Check)));
    // Every flipped bit of a tagged frame is caught (the version byte by its own check first).
    let frame = encoded(a, &[Frame::Msg(PeerMsg::PutAck { id: RequestId(3) })]);
    for i in LEN_BYTES * 8..frame.len() * 8 {
        let mut forged = frame.clone();
        forged[i / 8] ^= 1 << (i % 8);
        assert!(a.decode(&mut forged).is_err(), "bit {i} flipped unnoticed");
    }
}

/// The tag-0 (rmp-serde) body of `frame`.
fn rmp_body(frame: &Frame) -> Vec<u8> {
    let mut body = vec![hot::TAG_RMP];
    body.extend(rmp_serde::to_vec(frame).unwrap());
    body
}

fn forward(cmd: Command) -> Frame {
    Frame::Msg(PeerMsg::Forward { id: RequestId(77), cmd, levels: Levels::default() })
}

fn set_cmd() -> Command {
    Command::Set {
        key: Bytes::from_static(b"k"),
        value: Bytes::from_static(b"v"),
        cond: SetCond::IfAbsent,
        ttl: SetTtl::At(ExpireAt::InMs(-5)),
        get: true,
        reply_int: false,
    }
}

/// Frame number 0 of a link without a key: a valid crc32 around `body`.
fn frame_with_body(body: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_u32((1 + SEQ_BYTES + CRC_BYTES + body.len()) as u32);
    buf.put_u8(FRAME_VERSION);
    buf.put_u64(0);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&buf[LEN_BYTES..]);
    crc.update(body);
    buf.put_u32(crc.finalize());
    buf.put_slice(body);
    buf
}

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn arb_entry() -> impl Strategy<Value = WireEntry> {
    let kind = prop_oneof![Just(EntryKind::Value), Just(EntryKind::Tombstone), Just(EntryKind::Evicted)];
    let writes = proptest::collection::vec((0..6u64, 1..1u64 << 40), 0..4);
    (kind, arb_bytes(), writes, any::<u64>()).prop_map(|(kind, value, writes, expire_at_ms)| {
        let mut vector = VersionVector::new();
        for (node, time) in writes {
            vector.bump(NodeId(node), Timestamp(time));
        }
        WireEntry { kind, value, vector, expire_at_ms }
    })
}

fn arb_level() -> impl Strategy<Value = Consistency> {
    prop_oneof![Just(Consistency::One), Just(Consistency::Quorum), Just(Consistency::All)]
}

fn arb_reply() -> impl Strategy<Value = Reply> {
    let leaf = prop_oneof![
        Just(Reply::Ok),
        Just(Reply::Nil),
        any::<i64>().prop_map(Reply::Int),
        arb_bytes().prop_map(Reply::Bulk),
        "[a-z ]{0,12}".prop_map(|s| Reply::Simple(s.into())),
        any::<f64>().prop_filter("NaN is not equal to itself", |f| !f.is_nan()).prop_map(Reply::Double),
        "[a-z ]{0,12}".prop_map(|s| Reply::error(format!("ERR {s}"))),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| proptest::collection::vec(inner, 0..4).prop_map(Reply::Array))
}

fn arb_msg() -> impl Strategy<Value = PeerMsg> {
    let keys = || proptest::collection::vec(arb_bytes(), 0..4);
    prop_oneof![
        (any::<u64>(), arb_bytes(), arb_level(), arb_level()).prop_map(|(id, key, read, write)| PeerMsg::Forward {
            id: RequestId(id),
            cmd: Command::Get { key },
            levels: Levels { read, write }
        }),
        (any::<u64>(), arb_bytes(), arb_bytes(), 0..3u8, any::<(u8, i64)>(), any::<(bool, bool)>(), arb_level())
            .prop_map(|(id, key, value, cond, (ttl, ms), (get, reply_int), write)| PeerMsg::Forward {
                id: RequestId(id),
                cmd: Command::Set {
                    key,
                    value,
                    cond: [SetCond::Always, SetCond::IfAbsent, SetCond::IfPresent][cond as usize],
                    ttl: match ttl % 4 {
                        0 => SetTtl::Clear,
                        1 => SetTtl::Keep,
                        2 => SetTtl::At(ExpireAt::InMs(ms)),
                        _ => SetTtl::At(ExpireAt::AtMs(ms)),
                    },
                    get,
                    reply_int,
                },
                levels: Levels { read: Consistency::All, write },
            }),
        (any::<u64>(), keys()).prop_map(|(id, keys)| PeerMsg::Forward {
            id: RequestId(id),
            cmd: Command::Del { keys },
            levels: Levels::default()
        }),
        (any::<u64>(), arb_reply()).prop_map(|(id, reply)| PeerMsg::ForwardReply { id: RequestId(id), reply }),
        (any::<u64>(), proptest::collection::vec((arb_bytes(), arb_entry()), 0..4), any::<Option<String>>())
            .prop_map(|(id, entries, hint_for)| PeerMsg::Put { id: answer_id::from_wire(id), entries, hint_for }),
        any::<u64>().prop_map(|id| PeerMsg::PutAck { id: RequestId(id) }),
        (any::<u64>(), keys()).prop_map(|(id, keys)| PeerMsg::Get { id: RequestId(id), keys }),
        (any::<u64>(), proptest::collection::vec(proptest::option::of(arb_entry()), 0..4))
            .prop_map(|(id, entries)| PeerMsg::GetReply { id: RequestId(id), entries }),
        (any::<u64>(), any::<u64>(), proptest::collection::vec(any::<u64>(), 0..8))
            .prop_map(|(id, ring, hashes)| PeerMsg::AeGroups { unused: Unused, ring, hashes, hlc: ring ^ id }),
        (any::<u64>(), proptest::collection::vec(any::<(u32, u64)>(), 0..8))
            .prop_map(|(_, buckets)| PeerMsg::AeBuckets { unused: Unused, buckets }),
        (any::<u64>(), proptest::collection::vec((any::<u32>(), proptest::collection::vec(any::<u64>(), 0..17)), 0..3))
            .prop_map(|(_, buckets)| PeerMsg::AeSubs { unused: Unused, buckets }),
        (
            any::<u64>(),
            proptest::collection::vec(any::<(u32, u16)>(), 0..4),
            proptest::collection::vec((arb_bytes(), any::<u64>(), any::<Option<(u64, u64)>>()), 0..4)
        )
            .prop_map(|(_, buckets, keys)| PeerMsg::AeKeys {
                unused: Unused,
                buckets,
                keys: keys
                    .into_iter()
                    .map(|(key, hash, latest)| AeKey {
                        key,
                        hash,
                        latest: latest.map(|(t, n)| Version::new(Timestamp(t), NodeId(n))),
                    })
                    .collect()
            }),
        (any::<u64>(), "[a-z]{0,8}", "[a-z]{0,8}", any::<u64>(), any::<u64>()).prop_map(
            |(id, name, owner, token, ttl_ms)| {
                PeerMsg::Lock { id: answer_id::from_wire(id), op: LockOp::Acquire { name, owner, token, ttl_ms } }
            }
        ),
        keys().prop_map(|keys| PeerMsg::AePull { keys }),
        Just(PeerMsg::FlushAll),
    ]
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        // serde carries an address's IP and port, not an IPv6 flow label or scope id.
        1 => arb_msg().prop_map(Frame::Msg),
    ]
}

proptest! {
    #[test]
    fn any_frames_round_trip_through_any_split(
        frames in proptest::collection::vec(arb_frame(), 1..6),
        keyed in any::<bool>(),
        split in any::<prop::sample::Index>(),
    ) {
        let codec = FrameCodec::new(if keyed { secret(3) } else { None });
        let whole = encoded(&codec, &frames);
        let at = split.index(whole.len() + 1);
        let mut buf = BytesMut::from(&whole[..at]);
        let mut rx = codec.clone();
        let mut got = decode_all(&mut rx, &mut buf).unwrap();
        buf.extend_from_slice(&whole[at..]);
        got.extend(decode_all(&mut rx, &mut buf).unwrap());
        prop_assert_eq!(got, frames);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), keyed in any::<bool>()) {
        let mut codec = FrameCodec::new(if keyed { secret(3) } else { None }).with_frame_bytes_max(1024);
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = decode_all(&mut codec, &mut buf);
    }
}
