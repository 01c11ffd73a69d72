//! Arbitrary bytes as a peer TCP stream: the frame decoder must never panic, must refuse everything without
//! a valid check, and every frame it accepts must encode back to bytes that decode and re-encode identically.
//!
//! The first byte picks the path: bit 1 wraps the rest in a frame with a valid crc32 and sequence number 0 (the
//! first frame of a link), so the body decoders
//! (the hand-coded hot messages by their tag byte, tag 0 MessagePack) and the frame validation are fuzzed
//! rather than stopped by the check; otherwise the rest is a raw
//! stream for a plain (bit 0 clear) or keyed (bit 0 set) codec, cut in two at a point the remaining bits pick,
//! so the partial-frame path is exercised too. The limit is small so that the size check is reached.
#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use shoal::core::replication::handshake::SessionKey;
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

/// A codec for one direction of one link, at its first frame.
fn codec(key: Option<SessionKey>) -> FrameCodec {
    FrameCodec::new(key).with_frame_bytes_max(FRAME_BYTES_MAX)
}

/// `body` behind a valid header (sequence number 0) and crc32.
fn body(body: &[u8]) {
    let mut buf = BytesMut::new();
    buf.put_u32((1 + 8 + 4 + body.len()) as u32);
    let signed = [&[FRAME_VERSION][..], &0u64.to_be_bytes()].concat();
    buf.put_slice(&signed);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&signed);
    crc.update(body);
    buf.put_u32(crc.finalize());
    buf.put_slice(body);
    if let Ok(Some(frame)) = codec(None).decode(&mut buf) {
        stable(None, &frame);
    }
}

/// A raw stream in two parts.
fn stream(mode: u8, stream: &[u8]) {
    let keyed = mode & 1 == 1;
    let key = keyed.then(|| SessionKey::from_bytes(&[9; 32]));
    let mut decoder = codec(key.clone());
    let cut = (mode as usize >> 2).min(stream.len());
    let mut buf = BytesMut::from(&stream[..cut]);
    let mut fed_rest = false;
    for _ in 0..FRAMES_MAX {
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                // A keyed codec accepts nothing the fuzzer wrote: it cannot forge a tag.
                assert!(!keyed, "forged frame accepted: {frame:?}");
                stable(key.clone(), &frame);
            }
            Ok(None) if !fed_rest => {
                buf.extend_from_slice(&stream[cut..]);
                fed_rest = true;
            }
            Ok(None) | Err(_) => break,
        }
    }
}

/// An accepted frame encodes, decodes again, and its encoding is then a fixed point (each round on a fresh
/// link, so every frame is its link's first).
fn stable(key: Option<SessionKey>, frame: &Frame) {
    let round = |frame: &Frame| {
        let mut bytes = BytesMut::new();
        codec(key.clone()).encode(frame, &mut bytes).expect("a decoded frame encodes");
        let again = codec(key.clone()).decode(&mut bytes.clone()).expect("re-encoded frame decodes").expect("whole");
        (bytes, again)
    };
    let (_, again) = round(frame);
    let (twice, third) = round(&again);
    let (thrice, _) = round(&third);
    assert_eq!(twice, thrice, "encoding is stable");
}
