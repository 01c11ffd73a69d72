//! A rough, ignored micro-benchmark of the hot peer messages: encoded size and time per encode + decode.
//! Run with `cargo test --release --lib codec::bench -- --ignored --nocapture`; it prints, it asserts nothing
//! about time.
#![allow(clippy::disallowed_methods)] // It measures wall time, in an ignored test.

use crate::core::driver::RequestId;
use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::*;
use crate::core::clock::Timestamp;
use crate::core::command::{Command, SetCond, SetTtl};
use crate::core::replication::{EntryKind, Levels, WireEntry};
use crate::core::reply::Reply;
use crate::core::version::NodeId;
use crate::core::vversion::VersionVector;

const ROUNDS: u32 = 200_000;

fn hot_frames() -> Vec<(&'static str, Frame)> {
    let mut vector = VersionVector::new();
    vector.bump(NodeId(0x1234_5678_9abc_def0), Timestamp(1_764_000_000_000 << 16));
    let key = Bytes::from_static(b"key:000000012345");
    let value = Bytes::from(vec![b'x'; 100]);
    let entry = WireEntry { kind: EntryKind::Value, value: value.clone(), vector, expire_at_ms: 0 };
    let set = Command::Set {
        key: key.clone(),
        value,
        cond: SetCond::Always,
        ttl: SetTtl::Clear,
        get: false,
        reply_int: false,
    };
    vec![
        (
            "Put",
            Frame::Msg(PeerMsg::Put {
                id: Some(RequestId(1_000_001)),
                entries: vec![(key.clone(), entry.clone())],
                hint_for: None,
            }),
        ),
        ("PutAck", Frame::Msg(PeerMsg::PutAck { id: RequestId(1_000_001) })),
        (
            "Forward(SET)",
            Frame::Msg(PeerMsg::Forward { id: RequestId(1_000_001), cmd: set, levels: Levels::default() }),
        ),
        ("ForwardReply(OK)", Frame::Msg(PeerMsg::ForwardReply { id: RequestId(1_000_001), reply: Reply::Ok })),
        ("Get", Frame::Msg(PeerMsg::Get { id: RequestId(1_000_001), keys: vec![key] })),
        ("GetReply", Frame::Msg(PeerMsg::GetReply { id: RequestId(1_000_001), entries: vec![Some(entry)] })),
    ]
}

#[test]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
fn hot_messages() {
    for (label, codec) in [("crc32", FrameCodec::new(None)), ("hmac", FrameCodec::new(Some(secret())))] {
        for (name, frame) in hot_frames() {
            // One sender and one receiver, as the two ends of a link.
            let (mut tx, mut rx) = (codec.clone(), codec.clone());
            let mut buf = BytesMut::with_capacity(4096);
            let bytes = tx.encode(&frame, &mut buf).expect("encodes");
            assert_eq!(rx.decode(&mut buf).expect("decodes").as_ref(), Some(&frame));
            let start = Instant::now();
            for _ in 0..ROUNDS {
                tx.encode(black_box(&frame), &mut buf).expect("encodes");
                black_box(rx.decode(&mut buf).expect("decodes"));
            }
            let ns = start.elapsed().as_nanos() / u128::from(ROUNDS);
            println!("{label:5} {name:18} {bytes:4} bytes/frame {ns:6} ns/encode+decode");
        }
    }
}

fn secret() -> super::SessionKey {
    super::SessionKey::from_bytes(&[7; 32])
}
