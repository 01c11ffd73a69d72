//! Arbitrary bytes as a peer TCP stream: the frame decoder must never panic, must refuse everything without
//! a valid check, and every frame it accepts must encode back to bytes that decode and re-encode identically.
//!
//! The first byte picks the path: bit 1 wraps the rest in a frame with a valid crc32, so the body decoders
//! (the hand-coded hot messages by their tag byte, tag 0 MessagePack) and the frame validation are fuzzed
//! rather than stopped by the check; otherwise the rest is a raw
//! stream for a plain (bit 0 clear) or keyed (bit 0 set) codec, cut in two at a point the remaining bits pick,
//! so the partial-frame path is exercised too. The limit is small so that the size check is reached.
#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use shoal::core::membership::ClusterSecret;
use shoal::core::replication::codec::FRAME_VERSION;
use shoal::core::replication::{Frame, FrameCodec};

/// Frames the decoder takes from one input at most (every loop is bounded).
const FRAMES_MAX: usize = 64;
/// The frame limit of the codecs under test.
const FRAME_BYTES_MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 2 == 2 {
        body(rest);
    } else {
        stream(mode, rest);
    }
});

/// `body` behind a valid header and crc32.
fn body(body: &[u8]) {
    let codec = FrameCodec::new(None).with_frame_bytes_max(FRAME_BYTES_MAX);
    let mut buf = BytesMut::new();
    buf.put_u32((1 + 4 + body.len()) as u32);
    buf.put_u8(FRAME_VERSION);
    buf.put_u32(crc32fast::hash(body));
    buf.put_slice(body);
    if let Ok(Some(frame)) = codec.decode(&mut buf) {
        stable(&codec, &frame);
    }
}

/// A raw stream in two parts.
fn stream(mode: u8, stream: &[u8]) {
    let keyed = mode & 1 == 1;
    let secret = keyed.then(|| ClusterSecret::from_bytes(&[9; 32]).expect("secret"));
    let codec = FrameCodec::new(secret).with_frame_bytes_max(FRAME_BYTES_MAX);
    let cut = (mode as usize >> 2).min(stream.len());
    let mut buf = BytesMut::from(&stream[..cut]);
    let mut fed_rest = false;
    for _ in 0..FRAMES_MAX {
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => {
                // A keyed codec accepts nothing the fuzzer wrote: it cannot forge a tag.
                assert!(!keyed, "forged frame accepted: {frame:?}");
                stable(&codec, &frame);
            }
            Ok(None) if !fed_rest => {
                buf.extend_from_slice(&stream[cut..]);
                fed_rest = true;
            }
            Ok(None) | Err(_) => break,
        }
    }
}

/// An accepted frame encodes, decodes again, and its encoding is then a fixed point.
fn stable(codec: &FrameCodec, frame: &Frame) {
    let mut once = BytesMut::new();
    codec.encode(frame, &mut once).expect("a decoded frame encodes");
    let again = codec.decode(&mut once).expect("re-encoded frame decodes").expect("whole");
    let mut twice = BytesMut::new();
    codec.encode(&again, &mut twice).expect("encodes");
    let third = codec.decode(&mut twice.clone()).expect("decodes").expect("whole");
    let mut thrice = BytesMut::new();
    codec.encode(&third, &mut thrice).expect("encodes");
    assert_eq!(twice, thrice, "encoding is stable");
}
