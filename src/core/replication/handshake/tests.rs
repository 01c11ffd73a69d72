//! Handshake tests: both sides agree on one session key; a wrong secret, a secret on one side only, a replayed
//! handshake, a reflected proof, oversized or malformed frames all fail; partial frames wait.

use bytes::{BufMut, BytesMut};

use super::*;
use crate::core::replication::{Frame, FrameCodec, PeerMsg};

fn secret(byte: u8) -> Option<ClusterSecret> {
    Some(ClusterSecret::from_bytes(&[byte; 32]).expect("long enough"))
}

fn greeting(port: u16, name: &str, nonce: u8) -> Greeting {
    Greeting { from: SocketAddr::from(([127, 0, 0, 1], port)), name: name.into(), nonce: [nonce; NONCE_BYTES] }
}

/// Run a whole handshake in memory; returns what each side learned, or the first error.
fn run(
    c_secret: Option<ClusterSecret>,
    a_secret: Option<ClusterSecret>,
    c_nonce: u8,
    a_nonce: u8,
) -> Result<(Accepted, Greeting, Option<SessionKey>), HandshakeError> {
    let (connector, mut hello) = Connector::new(c_secret, &greeting(1, "c", c_nonce));
    let mut acceptor = Acceptor::new(a_secret, greeting(2, "a", a_nonce));
    let (seen, mut challenge) = acceptor.hello(&mut hello)?.expect("whole hello");
    let mut accepted = connector.challenge(&mut challenge)?.expect("whole challenge");
    let key = acceptor.finish(&mut accepted.finish)?.expect("whole finish");
    Ok((accepted, seen, key))
}

/// Whether frames sealed with `tx` open with `rx`.
fn same_key(tx: Option<SessionKey>, rx: Option<SessionKey>) -> bool {
    let mut buf = BytesMut::new();
    FrameCodec::new(tx).encode(&Frame::Msg(PeerMsg::FlushAll), &mut buf).unwrap();
    FrameCodec::new(rx).decode(&mut buf).is_ok()
}

#[test]
fn both_sides_learn_each_other_and_one_session_key() {
    let (accepted, seen, key) = run(secret(1), secret(1), 7, 8).unwrap();
    assert_eq!(seen, greeting(1, "c", 7));
    assert_eq!(accepted.peer, greeting(2, "a", 8));
    assert!(key.is_some() && accepted.key.is_some());
    assert!(same_key(accepted.key.clone(), key.clone()));
    // Other nonces give another key: a frame of one link does not open on another.
    let (other, _, _) = run(secret(1), secret(1), 7, 9).unwrap();
    assert!(!same_key(other.key, key));
    // Without a secret the same steps run, and frames carry a crc32.
    let (accepted, _, key) = run(None, None, 1, 2).unwrap();
    assert!(accepted.key.is_none() && key.is_none());
}

#[test]
fn a_different_or_missing_secret_fails() {
    assert!(matches!(run(secret(1), secret(2), 1, 2), Err(HandshakeError::Proof)));
    let e = run(None, secret(1), 1, 2).unwrap_err();
    assert!(matches!(e, HandshakeError::Mode { ours: "has", theirs: "has no" }), "{e:?}");
    assert!(e.to_string().contains("cluster secret"), "{e}");
    assert!(matches!(run(secret(1), None, 1, 2), Err(HandshakeError::Mode { .. })));
}

#[test]
fn a_forged_finish_fails() {
    // An attacker without the secret sends a hello (it carries no proof, so it is answered), then a finish with
    // a proof of its own making.
    let mut acceptor = acceptor_fresh();
    let (_, challenge) = acceptor.hello(&mut Connector::new(secret(9), &greeting(1, "evil", 1)).1).unwrap().unwrap();
    assert!(challenge.len() <= LEN_BYTES + HANDSHAKE_BYTES_MAX);
    let mut finish = BytesMut::new();
    frame(&mut finish, KIND_FINISH, |dst| dst.put_bytes(0xab, PROOF_BYTES));
    assert!(matches!(acceptor.finish(&mut finish), Err(HandshakeError::Proof)));
    // A second hello on the same connection is refused.
    let mut again = Connector::new(secret(1), &greeting(1, "c", 1)).1;
    assert!(matches!(acceptor.hello(&mut again), Err(HandshakeError::Kind(KIND_HELLO))));
}

fn acceptor_fresh() -> Acceptor {
    Acceptor::new(secret(1), greeting(2, "a", 2))
}

#[test]
fn a_recorded_handshake_does_not_replay() {
    // Record a whole, valid connector side: its hello and its finish.
    let (connector, hello) = Connector::new(secret(1), &greeting(1, "c", 1));
    let mut first = acceptor_fresh();
    let (_, mut challenge) = first.hello(&mut hello.clone()).unwrap().unwrap();
    let accepted = connector.challenge(&mut challenge).unwrap().unwrap();
    assert!(first.finish(&mut accepted.finish.clone()).unwrap().is_some());
    // Replayed against an acceptor with a fresh nonce, the old finish does not verify.
    let mut second = Acceptor::new(secret(1), greeting(2, "a", 3));
    second.hello(&mut hello.clone()).unwrap().unwrap();
    assert!(matches!(second.finish(&mut accepted.finish.clone()), Err(HandshakeError::Proof)));
    // The acceptor's own proof reflected back as a finish does not verify either (distinct labels).
    let mut third = Acceptor::new(secret(1), greeting(2, "a", 4));
    let (_, challenge) = third.hello(&mut hello.clone()).unwrap().unwrap();
    let mut reflected = BytesMut::new();
    frame(&mut reflected, KIND_FINISH, |dst| dst.put_slice(&challenge[challenge.len() - PROOF_BYTES..]));
    assert!(matches!(third.finish(&mut reflected), Err(HandshakeError::Proof)));
    // A challenge whose claimed identity was altered in flight does not verify at the connector.
    let (connector, mut hello) = Connector::new(secret(1), &greeting(1, "c", 5));
    let (_, mut challenge) = acceptor_fresh().hello(&mut hello).unwrap().unwrap();
    let at = challenge.len() - PROOF_BYTES - 1;
    challenge[at] ^= 1; // The last byte of the acceptor's name.
    assert!(matches!(connector.challenge(&mut challenge), Err(HandshakeError::Proof)));
}

#[test]
fn oversized_malformed_and_out_of_order_frames_fail() {
    let mut acceptor = acceptor_fresh();
    // A 1 MB "handshake" fails on its length prefix alone.
    let mut huge = BytesMut::new();
    huge.put_u32(1 << 20);
    assert!(matches!(acceptor.hello(&mut huge), Err(HandshakeError::TooLarge(1_048_576))));
    let mut http = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
    assert!(matches!(acceptor.hello(&mut http), Err(HandshakeError::TooLarge(_))));
    // A finish before any hello, a message frame instead of a hello, another version.
    assert!(matches!(acceptor.finish(&mut BytesMut::new()), Err(HandshakeError::Kind(KIND_FINISH))));
    let mut msg = BytesMut::new();
    FrameCodec::new(None).encode(&Frame::Msg(PeerMsg::FlushAll), &mut msg).unwrap();
    assert!(matches!(acceptor.hello(&mut msg), Err(HandshakeError::Kind(0))));
    let (_, mut hello) = Connector::new(secret(1), &greeting(1, "c", 1));
    hello[LEN_BYTES] = 2;
    assert!(matches!(acceptor.hello(&mut hello), Err(HandshakeError::Version(2))));
    // A hello with a bad address, and one with trailing bytes.
    let mut bad = BytesMut::new();
    frame(&mut bad, KIND_HELLO, |dst| {
        dst.put_u8(MODE_SECRET);
        dst.put_bytes(0, NONCE_BYTES);
        put_str8(dst, "not an address");
        put_str8(dst, "c");
    });
    assert!(matches!(acceptor.hello(&mut bad), Err(HandshakeError::Malformed(_))));
    let (_, hello) = Connector::new(secret(1), &greeting(1, "c", 1));
    let mut longer = hello.clone();
    longer.put_u8(0);
    let len = (longer.len() - LEN_BYTES) as u32;
    longer[..LEN_BYTES].copy_from_slice(&len.to_be_bytes());
    assert!(matches!(acceptor.hello(&mut longer), Err(HandshakeError::Malformed("trailing bytes"))));
    // Every strict prefix of a hello waits for more bytes, and every truncation of its body is refused.
    for cut in 0..hello.len() {
        assert!(matches!(acceptor.hello(&mut BytesMut::from(&hello[..cut])), Ok(None)), "cut at {cut}");
    }
    for cut in 2..hello.len() - LEN_BYTES {
        let mut short = BytesMut::from(&hello[..LEN_BYTES + cut]);
        short[..LEN_BYTES].copy_from_slice(&(cut as u32).to_be_bytes());
        assert!(acceptor_fresh().hello(&mut short).is_err(), "body cut at {cut}");
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A deterministic sweep of short inputs through both sides.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 200) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|i| (x >> (i % 8 * 8)) as u8 ^ i as u8).collect();
        if len >= 6 {
            bytes[..4].copy_from_slice(&((len - 4) as u32).to_be_bytes());
            bytes[4] = FRAME_VERSION;
            bytes[5] = (x % 4) as u8;
        }
        let _ = acceptor_fresh().hello(&mut BytesMut::from(&bytes[..]));
        let (connector, _) = Connector::new(secret(1), &greeting(1, "c", 1));
        let _ = connector.challenge(&mut BytesMut::from(&bytes[..]));
    }
}
