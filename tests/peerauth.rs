//! Authenticated peer links against real in-process nodes on loopback: a peer without the cluster secret
//! cannot change or read data through the peer port, a recorded frame does not replay (neither on its own
//! connection nor on a new one), and the refusals are counted in `INFO cluster`.
//!
//! The test plays the hostile peer over raw TCP with the library's own handshake and frame types, so the
//! bytes are exactly what a node would send; where it needs a frame a real member would send, it drives the
//! handshake with the secret it knows, claiming a member's address and name (what any holder of the secret can
//! do), so the replay checks are shown on frames that are otherwise accepted.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::eventually;
use common::members::{free_addr, Client};
use common::TestServer;
use shoal::core::clock::Timestamp;
use shoal::core::command::Command;
use shoal::core::membership::ClusterSecret;
use shoal::core::replication::codec::FRAME_VERSION;
use shoal::core::replication::handshake::{HANDSHAKE_BYTES_MAX, NONCE_BYTES};
use shoal::core::replication::{
    Connector, EntryKind, Frame, FrameCodec, Greeting, Levels, PeerMsg, SessionKey, WireEntry,
};
use shoal::core::version::NodeId;
use shoal::core::vversion::VersionVector;
use shoal::core::NodeConfig;
use shoal::core::RequestId;
use shoal::runtime::{ClusterConfig, ServerConfig};

const SECRET: &[u8] = b"peer-auth-test-secret-0123456789";
const CONVERGE: Duration = Duration::from_secs(15);

fn node(name: &str, cluster: SocketAddr, seeds: &[SocketAddr]) -> TestServer {
    let mut c = ClusterConfig::new(cluster);
    c.seeds = seeds.iter().map(ToString::to_string).collect();
    c.secret = Some(SECRET.to_vec().into());
    let node = NodeConfig { name: name.into(), ..NodeConfig::default() };
    TestServer::start(ServerConfig { node, cluster: Some(c), ..ServerConfig::default() })
}

fn redis(srv: &TestServer, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut srv.client()).expect("the client port answers")
}

fn local(srv: &TestServer, key: &str) -> bool {
    !matches!(redis(srv, &["SHOAL.LOCALGET", key]), redis::Value::Nil)
}

fn connect(at: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(at).expect("the peer port accepts");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Whether the node closes `s` (EOF or reset) within the read timeout; returns the bytes it sent before.
fn read_until_closed(s: &mut TcpStream) -> Option<usize> {
    let (mut total, mut buf) = (0, [0u8; 4096]);
    for _ in 0..1_000 {
        match s.read(&mut buf) {
            Ok(0) => return Some(total),
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(total),
            Err(_) => return None,
        }
    }
    None
}

fn greeting(from: SocketAddr, name: &str) -> Greeting {
    Greeting { from, name: name.into(), nonce: [0x5a; NONCE_BYTES] }
}

/// The messages an attacker would like a node to act on.
fn attacks() -> Vec<PeerMsg> {
    let mut vector = VersionVector::new();
    vector.bump(NodeId(u64::MAX / 3), Timestamp(u64::MAX / 4));
    let entry = WireEntry { kind: EntryKind::Value, value: Bytes::from_static(b"evil"), vector, expire_at_ms: 0 };
    let set = Command::Set {
        key: Bytes::from_static(b"k"),
        value: Bytes::from_static(b"evil"),
        cond: Default::default(),
        ttl: Default::default(),
        get: false,
        reply_int: false,
    };
    vec![
        PeerMsg::FlushAll,
        PeerMsg::Put { id: Some(RequestId(1)), entries: vec![(Bytes::from_static(b"k"), entry)], hint_for: None },
        PeerMsg::Forward { id: RequestId(2), cmd: set, levels: Levels::default() },
        PeerMsg::Forward { id: RequestId(3), cmd: Command::FlushAll, levels: Levels::default() },
        PeerMsg::Get { id: RequestId(4), keys: vec![Bytes::from_static(b"k")] },
    ]
}

fn frames(codec: &mut FrameCodec, msgs: &[PeerMsg]) -> BytesMut {
    let mut out = BytesMut::new();
    for m in msgs {
        codec.encode(&Frame::Msg(m.clone()), &mut out).unwrap();
    }
    out
}

/// A handshake frame of `kind` (3 = finish) around `fields`, as the handshake module lays it out.
fn raw_handshake_frame(kind: u8, fields: &[u8]) -> Vec<u8> {
    let mut out = ((2 + fields.len()) as u32).to_be_bytes().to_vec();
    out.extend([FRAME_VERSION, kind]);
    out.extend_from_slice(fields);
    out
}

#[test]
fn a_peer_without_the_secret_cannot_change_or_read_data() {
    let a_addr = free_addr();
    let a = node("a", a_addr, &[]);
    let _ = redis(&a, &["SET", "k", "v"]);
    let member = a_addr; // Claims to be the node itself: a name and address in its view.
    let wrong = ClusterSecret::from_bytes(b"not-the-cluster-secret-at-all!!").ok();

    // 1. A hello as a keyed node, then a finish with a made-up proof and frames under a guessed key.
    let mut s = connect(a_addr);
    let (_, hello) = Connector::new(wrong.clone(), &greeting(member, "a"));
    s.write_all(&hello).unwrap();
    let mut bytes = raw_handshake_frame(3, &[0xab; 16]);
    bytes.extend_from_slice(&frames(&mut FrameCodec::new(Some(SessionKey::from_bytes(&[0; 32]))), &attacks()));
    s.write_all(&bytes).unwrap();
    let read = read_until_closed(&mut s).expect("the node closes the connection");
    assert!(read <= 4 + HANDSHAKE_BYTES_MAX, "only its challenge came back ({read} bytes), no GetReply");

    // 2. The same with the wrong secret's own proof (the connector refuses the node's challenge, so the
    //    attacker forges the finish from its own transcript view).
    let mut s = connect(a_addr);
    s.write_all(&hello).unwrap();
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 512];
    let n = s.read(&mut chunk).unwrap();
    buf.put_slice(&chunk[..n]);
    let refused = Connector::new(wrong.clone(), &greeting(member, "a")).0.challenge(&mut buf);
    assert!(refused.is_err(), "the attacker cannot verify the node's proof either");
    s.write_all(&raw_handshake_frame(3, &[0; 16])).unwrap();
    s.write_all(&frames(&mut FrameCodec::new(None), &attacks())).unwrap();
    assert!(read_until_closed(&mut s).is_some());

    // 3. No secret at all: an open-mode hello, then crc frames.
    let mut s = connect(a_addr);
    let (_, plain) = Connector::new(None, &greeting(member, "a"));
    s.write_all(&plain).unwrap();
    let _ = s.write_all(&frames(&mut FrameCodec::new(None), &attacks()));
    assert_eq!(read_until_closed(&mut s), Some(0), "refused before any challenge");

    // 4. Message frames with no handshake at all.
    let mut s = connect(a_addr);
    let _ = s.write_all(&frames(&mut FrameCodec::new(None), &attacks()));
    assert_eq!(read_until_closed(&mut s), Some(0));

    let mut client = Client::new(a.addr);
    assert!(eventually(Duration::from_secs(5), || client.info_u64("peer_handshakes_failed") == Some(4)));
    assert_eq!(redis(&a, &["GET", "k"]), redis::Value::BulkString(b"v".to_vec()), "data intact");
    assert_eq!(redis(&a, &["DBSIZE"]), redis::Value::Int(1));
    assert_eq!(a.handle().peer_stats.snapshot().frames_received, 0, "no frame reached the node");
}

#[test]
fn a_replayed_frame_is_rejected_and_counted() {
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let a = node("a", a_addr, &[]);
    let b = node("b", b_addr, &[a_addr]);
    let mut ca = Client::new(a.addr);
    let mut cb = Client::new(b.addr);
    let both = |c: &mut Client| c.view().is_some_and(|v| v.alive() == 2);
    assert!(eventually(CONVERGE, || both(&mut ca) && both(&mut cb)), "a and b see each other");

    // A link into b as member a, with the secret: its FlushAll is obeyed (the check below can fail).
    let _ = redis(&b, &["SET", "k1", "v"]);
    assert!(eventually(Duration::from_secs(5), || local(&b, "k1")));
    let mut s = connect(b_addr);
    let mut me = greeting(a_addr, "a");
    me.nonce = [0x11; NONCE_BYTES];
    let secret = ClusterSecret::from_bytes(SECRET).ok();
    let (connector, hello) = Connector::new(secret, &me);
    s.write_all(&hello).unwrap();
    let mut buf = BytesMut::new();
    let accepted = loop {
        let mut chunk = [0u8; 512];
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "the node answers the hello");
        buf.put_slice(&chunk[..n]);
        if let Some(accepted) = connector.challenge(&mut buf).expect("the node proves the secret") {
            break accepted;
        }
    };
    let mut codec = FrameCodec::new(accepted.key.clone());
    let flush = frames(&mut codec, &[PeerMsg::FlushAll]);
    let mut recorded = hello.to_vec();
    recorded.extend_from_slice(&accepted.finish);
    recorded.extend_from_slice(&flush);
    s.write_all(&recorded[hello.len()..]).unwrap();
    assert!(eventually(Duration::from_secs(5), || !local(&b, "k1")), "the authenticated FlushAll cleared b");

    // New data, then the same FlushAll frame again on the same connection: a replay, rejected.
    let _ = redis(&b, &["SET", "k2", "v"]);
    assert!(eventually(Duration::from_secs(5), || local(&b, "k2")));
    s.write_all(&flush).unwrap();
    assert!(read_until_closed(&mut s).is_some(), "the replay closes the connection");
    // The whole recorded connection, replayed on a new one: the node's nonce is new, the old finish fails.
    let mut again = connect(b_addr);
    again.write_all(&recorded).unwrap();
    assert!(read_until_closed(&mut again).is_some());
    std::thread::sleep(Duration::from_millis(200));
    assert!(local(&b, "k2"), "no replay flushed b");
    assert_eq!(redis(&b, &["GET", "k2"]), redis::Value::BulkString(b"v".to_vec()));
    assert!(eventually(Duration::from_secs(5), || cb.info_u64("peer_frames_replayed") == Some(1)));
    assert_eq!(cb.info_u64("peer_handshakes_failed"), Some(1));
    let metrics = b.handle().peer_stats.snapshot();
    assert_eq!((metrics.frames_replayed, metrics.handshakes_failed), (1, 1), "{metrics:?}");
    // The real link between a and b is unaffected: replication still works both ways.
    let _ = redis(&a, &["SET", "k3", "w"]);
    assert!(eventually(Duration::from_secs(5), || local(&b, "k3")), "a's writes still reach b");
}
