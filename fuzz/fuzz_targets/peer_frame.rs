//! Arbitrary bytes as a peer TCP stream: the frame decoder must never panic, must refuse everything without
//! a valid check, and every frame it accepts must encode back to a frame that decodes to the same bytes.
//!
//! The first byte picks the codec (plain or keyed) and where the stream is cut in two, so the partial-frame
//! path is exercised too. The limit is small so that the size check is reached.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shoal::core::membership::ClusterSecret;
use shoal::core::replication::FrameCodec;

/// Frames the decoder takes from one input at most (every loop is bounded).
const FRAMES_MAX: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else { return };
    let secret = (mode & 1 == 1).then(|| ClusterSecret::from_bytes(&[9; 32]).expect("secret"));
    let codec = FrameCodec::new(secret).with_frame_bytes_max(4096);
    let cut = (mode as usize >> 1).min(stream.len());
    let mut buf = BytesMut::from(&stream[..cut]);
    let mut fed_rest = false;
    for _ in 0..FRAMES_MAX {
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => {
                // A keyed codec accepts nothing the fuzzer wrote: it cannot forge a tag.
                assert!(mode & 1 == 0, "forged frame accepted: {frame:?}");
                let mut once = BytesMut::new();
                codec.encode(&frame, &mut once).expect("a decoded frame encodes");
                let again = codec.decode(&mut once).expect("re-encoded frame decodes").expect("whole");
                let mut twice = BytesMut::new();
                codec.encode(&again, &mut twice).expect("encodes");
                let mut thrice = BytesMut::new();
                codec.encode(&codec.decode(&mut twice.clone()).unwrap().unwrap(), &mut thrice).unwrap();
                assert_eq!(twice, thrice, "encoding is stable");
            }
            Ok(None) if !fed_rest => {
                buf.extend_from_slice(&stream[cut..]);
                fed_rest = true;
            }
            Ok(None) | Err(_) => break,
        }
    }
});
