//! Transport tests on loopback with ephemeral ports: delivery with the sender's address, exactly one `PeerLost`
//! per failure, drops on a full queue, bad connections closed without harm to the others, and the handshake
//! and sequence rules driven by hand (the test knows the secret) against a real listener.

use std::time::Duration;

use crate::core::RequestId;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::core::replication::codec::LEN_BYTES;
use crate::core::replication::handshake::HANDSHAKE_BYTES_MAX;
use crate::core::replication::{Connector, Frame, FrameCodec, Greeting, WireEntry};

/// One transport with its listener, its node-side queue and its shutdown switch.
struct Node {
    addr: SocketAddr,
    transport: PeerTransport,
    rx: Inbox,
    shutdown: watch::Sender<bool>,
}

/// The node-side queue, with `ToNode::Peers` batches taken apart into one `ToNode::Peer` per message.
struct Inbox {
    rx: mpsc::Receiver<ToNode>,
    ready: std::collections::VecDeque<ToNode>,
}

impl Inbox {
    async fn recv(&mut self) -> Option<ToNode> {
        if let Some(event) = self.ready.pop_front() {
            return Some(event);
        }
        match self.rx.recv().await? {
            ToNode::Peers { from, name, msgs } => {
                self.ready.extend(msgs.into_iter().map(|msg| ToNode::Peer { from, name: name.clone(), msg }));
                self.ready.pop_front()
            }
            event => Some(event),
        }
    }
}

async fn node_with(tune: impl FnOnce(&mut PeerConfig)) -> Node {
    node_at("127.0.0.1:0".parse().unwrap(), tune).await
}

async fn node_at(addr: SocketAddr, tune: impl FnOnce(&mut PeerConfig)) -> Node {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = PeerConfig::new(addr, format!("n{}", addr.port()), None);
    config.backoff_ms_min = 50;
    tune(&mut config);
    let (tx, rx) = mpsc::channel(16_384);
    let transport = PeerTransport::new(config, tx, Arc::default());
    let (shutdown, stop) = watch::channel(false);
    transport.listen(listener, stop);
    Node { addr, transport, rx: Inbox { rx, ready: Default::default() }, shutdown }
}

async fn node() -> Node {
    node_with(|_| {}).await
}

/// The next event within two seconds.
async fn next(rx: &mut Inbox) -> ToNode {
    tokio::time::timeout(Duration::from_secs(2), rx.recv()).await.expect("an event in time").expect("open")
}

/// Whether no event arrives within `ms`.
async fn quiet(rx: &mut Inbox, ms: u64) -> bool {
    tokio::time::timeout(Duration::from_millis(ms), rx.recv()).await.is_err()
}

fn ack(id: u64) -> PeerMsg {
    PeerMsg::PutAck { id: RequestId(id) }
}

/// An address where nobody listens: bound once, then released.
async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn messages_arrive_in_order_from_the_senders_cluster_address() {
    let mut a = node().await;
    let mut b = node().await;
    for id in 0..1_000 {
        a.transport.send(b.addr, ack(id));
    }
    for id in 0..1_000 {
        match next(&mut b.rx).await {
            ToNode::Peer { from, name, msg } => {
                assert_eq!(from, a.addr);
                assert_eq!(&*name, format!("n{}", a.addr.port()), "the name the handshake carried");
                assert_eq!(msg, ack(id));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // And back: b answers over its own link to a.
    b.transport.send(a.addr, ack(7));
    assert!(matches!(next(&mut a.rx).await, ToNode::Peer { from, msg, .. } if from == b.addr && msg == ack(7)));
    let (sa, sb) = (a.transport.stats().snapshot(), b.transport.stats().snapshot());
    assert_eq!((sa.frames_sent, sa.connects, sa.frames_dropped), (1_000, 1, 0));
    assert_eq!(sb.frames_received, 1_000);
    assert!(sa.bytes_sent > 1_000 && sb.bytes_received >= sa.bytes_sent, "{sa:?} {sb:?}");
}

#[tokio::test]
async fn an_unreachable_peer_is_lost_once_per_failure_and_retried_on_the_next_message() {
    let mut a = node().await;
    let dead = dead_addr().await;
    for id in 0..5 {
        a.transport.send(dead, ack(id));
    }
    assert!(matches!(next(&mut a.rx).await, ToNode::PeerLost { peer } if peer == dead));
    assert!(quiet(&mut a.rx, 300).await, "one failure, one PeerLost");
    let s = a.transport.stats().snapshot();
    assert_eq!((s.links_failed, s.frames_dropped, s.frames_sent), (1, 5, 0));
    // The next message tries again (after the backoff) and fails again: one more PeerLost.
    a.transport.send(dead, ack(9));
    assert!(matches!(next(&mut a.rx).await, ToNode::PeerLost { peer } if peer == dead));
    assert!(quiet(&mut a.rx, 200).await);
    assert_eq!(a.transport.stats().snapshot().links_failed, 2);
}

#[tokio::test]
async fn a_peer_that_comes_back_is_reached_on_the_next_message() {
    let mut a = node().await;
    let addr = dead_addr().await;
    a.transport.send(addr, ack(1));
    assert!(matches!(next(&mut a.rx).await, ToNode::PeerLost { peer } if peer == addr));
    let mut b = node_at(addr, |_| {}).await;
    a.transport.send(addr, ack(2));
    assert!(matches!(next(&mut b.rx).await, ToNode::Peer { from, msg, .. } if from == a.addr && msg == ack(2)));
    // Restarted again: the old connection's close is one PeerLost, then the next message reconnects.
    b.shutdown.send(true).unwrap();
    drop(b);
    assert!(matches!(next(&mut a.rx).await, ToNode::PeerLost { peer } if peer == addr));
    let mut b = node_at(addr, |_| {}).await;
    a.transport.send(addr, ack(3));
    assert!(matches!(next(&mut b.rx).await, ToNode::Peer { msg, .. } if msg == ack(3)));
    assert_eq!(a.transport.stats().snapshot().connects, 2);
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_without_waiting() {
    let mut b = node().await;
    let mut a = node_with(|c| c.queue_frames_max = 4).await;
    // The test runs on one thread: the link task cannot drain the queue until we yield.
    for id in 0..10 {
        a.transport.send(b.addr, ack(id));
    }
    assert_eq!(a.transport.stats().snapshot().frames_dropped, 6);
    for id in 0..4 {
        assert!(matches!(next(&mut b.rx).await, ToNode::Peer { msg, .. } if msg == ack(id)));
    }
    assert!(quiet(&mut b.rx, 100).await);
}

#[tokio::test]
async fn a_link_task_gone_with_a_full_queue_is_replaced() {
    let mut b = node().await;
    let mut a = node_with(|c| c.queue_frames_max = 4).await;
    // The task panicked with its queue full: the counts it never took down stay at the bound.
    a.transport.links.insert(b.addr, link::Handle::gone(4, 400));
    a.transport.send(b.addr, ack(1));
    assert!(matches!(next(&mut b.rx).await, ToNode::Peer { msg, .. } if msg == ack(1)));
    assert_eq!(a.transport.stats().snapshot().frames_dropped, 0);
}

#[tokio::test]
async fn the_byte_budget_bounds_a_queue_of_large_messages() {
    let b = node().await;
    let mut a = node_with(|c| c.queue_bytes_max = 10_000).await;
    let big = |id| {
        let entry = WireEntry {
            kind: crate::core::replication::EntryKind::Value,
            value: Bytes::from(vec![0u8; 4_000]),
            vector: Default::default(),
            expire_at_ms: 0,
        };
        PeerMsg::Put { id, entries: vec![(Bytes::from_static(b"k"), entry)], hint_for: None }
    };
    for id in 0..5 {
        a.transport.send(b.addr, big(Some(RequestId(id))));
    }
    assert_eq!(a.transport.stats().snapshot().frames_dropped, 3, "two fit in 10 kB");
    drop(b);
}

/// Run the connector's side of the handshake by hand on `stream` as `from`, with `secret`; returns the codec
/// of the frames that follow, or `None` when the listener closed the connection instead of answering.
async fn handshake(stream: &mut TcpStream, secret: Option<ClusterSecret>, from: SocketAddr) -> Option<FrameCodec> {
    let me = Greeting { from, name: format!("n{}", from.port()), nonce: nonce().unwrap() };
    let (connector, hello) = Connector::new(secret, &me);
    stream.write_all(&hello).await.ok()?;
    let mut buf = BytesMut::new();
    loop {
        if let Some(accepted) = connector.challenge(&mut buf).expect("a valid challenge") {
            stream.write_all(&accepted.finish).await.ok()?;
            return Some(FrameCodec::new(accepted.key));
        }
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read_buf(&mut buf)).await;
        if !matches!(read, Ok(Ok(n)) if n > 0) {
            return None;
        }
    }
}

/// `msgs` as frames of `codec`, appended to `bytes`.
fn frames(codec: &mut FrameCodec, msgs: &[PeerMsg], bytes: &mut BytesMut) {
    for msg in msgs {
        codec.encode(&Frame::Msg(msg.clone()), bytes).unwrap();
    }
}

#[tokio::test]
async fn garbage_and_bad_frames_close_only_their_connection() {
    let mut a = node().await;
    let mut b = node().await;

    // Not a peer at all: an HTTP request reads as an oversized handshake length prefix.
    let mut http = TcpStream::connect(b.addr).await.unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(closed(&mut http).await);

    // A valid handshake, then a frame with a broken check.
    let mut forged = TcpStream::connect(b.addr).await.unwrap();
    let mut codec = handshake(&mut forged, None, a.addr).await.expect("handshake");
    let mut bytes = BytesMut::new();
    frames(&mut codec, &[ack(1)], &mut bytes);
    bytes[LEN_BYTES + 1 + 8] ^= 0xff;
    forged.write_all(&bytes).await.unwrap();
    assert!(closed(&mut forged).await);

    // A message before any handshake.
    let mut rude = TcpStream::connect(b.addr).await.unwrap();
    let mut bytes = BytesMut::new();
    frames(&mut FrameCodec::new(None), &[ack(2)], &mut bytes);
    rude.write_all(&bytes).await.unwrap();
    assert!(closed(&mut rude).await);

    let stats = b.transport.stats().snapshot();
    assert_eq!((stats.handshakes_failed, stats.frames_forged), (2, 1), "{stats:?}");
    assert!(quiet(&mut b.rx, 50).await, "nothing from bad connections reached the node");
    // A well-behaved peer is unaffected.
    a.transport.send(b.addr, ack(3));
    assert!(matches!(next(&mut b.rx).await, ToNode::Peer { from, msg, .. } if from == a.addr && msg == ack(3)));
    assert!(quiet(&mut a.rx, 50).await);
}

#[tokio::test]
async fn a_megabyte_handshake_is_closed_at_once_and_the_preauth_buffer_is_small() {
    let b = node_with(|c| c.handshake_timeout_ms = 60_000).await;
    // The length prefix alone of a 1 MB "hello" closes the connection, long before any timeout.
    let mut big = TcpStream::connect(b.addr).await.unwrap();
    big.write_all(&(1u32 << 20).to_be_bytes()).await.unwrap();
    let _ = big.write_all(&vec![0u8; 64 * 1024]).await;
    assert!(closed(&mut big).await, "closed within two seconds, not after the 60 s handshake timeout");
    // Small frames that never form a handshake are not buffered beyond PREAUTH_BYTES_MAX: a valid-looking
    // length prefix is refused at HANDSHAKE_BYTES_MAX + 1 already.
    let mut just_over = TcpStream::connect(b.addr).await.unwrap();
    just_over.write_all(&((HANDSHAKE_BYTES_MAX + 1) as u32).to_be_bytes()).await.unwrap();
    assert!(closed(&mut just_over).await);
    assert_eq!(b.transport.stats().snapshot().handshakes_failed, 2);
}

#[tokio::test]
async fn replayed_and_reordered_frames_are_rejected_and_counted() {
    let secret = || Some(ClusterSecret::from_bytes(&[5; 32]).unwrap());
    let mut b = node_with(|c| c.secret = secret()).await;
    let sender: SocketAddr = "127.0.0.1:1".parse().unwrap();

    // Frame 0 is delivered; the same bytes again on the same connection are a replay.
    let mut conn = TcpStream::connect(b.addr).await.unwrap();
    let mut codec = handshake(&mut conn, secret(), sender).await.expect("the secret opens the link");
    let mut first = BytesMut::new();
    frames(&mut codec, &[PeerMsg::FlushAll], &mut first);
    conn.write_all(&first).await.unwrap();
    assert!(matches!(next(&mut b.rx).await, ToNode::Peer { from, msg: PeerMsg::FlushAll, .. } if from == sender));
    conn.write_all(&first).await.unwrap();
    assert!(closed(&mut conn).await);
    assert!(quiet(&mut b.rx, 50).await, "the replay reached nothing");
    assert_eq!(b.transport.stats().snapshot().frames_replayed, 1);

    // Frame 1 without frame 0 on a fresh link: reordered.
    let mut conn = TcpStream::connect(b.addr).await.unwrap();
    let mut codec = handshake(&mut conn, secret(), sender).await.unwrap();
    let (mut zero, mut one) = (BytesMut::new(), BytesMut::new());
    frames(&mut codec, &[ack(0)], &mut zero);
    frames(&mut codec, &[ack(1)], &mut one);
    conn.write_all(&one).await.unwrap();
    assert!(closed(&mut conn).await);
    assert_eq!(b.transport.stats().snapshot().frames_reordered, 1);

    // A frame of one link spliced into another (another session key) does not verify.
    let mut conn = TcpStream::connect(b.addr).await.unwrap();
    handshake(&mut conn, secret(), sender).await.unwrap();
    conn.write_all(&zero).await.unwrap();
    assert!(closed(&mut conn).await);
    assert_eq!(b.transport.stats().snapshot().frames_forged, 1);
    assert!(quiet(&mut b.rx, 50).await);
}

#[tokio::test]
async fn a_recorded_link_replayed_on_a_new_connection_is_refused() {
    let secret = || Some(ClusterSecret::from_bytes(&[6; 32]).unwrap());
    let mut b = node_with(|c| c.secret = secret()).await;
    let sender: SocketAddr = "127.0.0.1:2".parse().unwrap();
    // Record everything a real connector writes on one link: hello, finish, one FlushAll.
    let mut conn = TcpStream::connect(b.addr).await.unwrap();
    let me = Greeting { from: sender, name: "n2".into(), nonce: nonce().unwrap() };
    let (connector, hello) = Connector::new(secret(), &me);
    conn.write_all(&hello).await.unwrap();
    let mut buf = BytesMut::new();
    let accepted = loop {
        conn.read_buf(&mut buf).await.unwrap();
        if let Some(accepted) = connector.challenge(&mut buf).unwrap() {
            break accepted;
        }
    };
    let mut recorded = hello.clone();
    recorded.extend_from_slice(&accepted.finish);
    let mut codec = FrameCodec::new(accepted.key);
    frames(&mut codec, &[PeerMsg::FlushAll], &mut recorded);
    conn.write_all(&recorded[hello.len()..]).await.unwrap();
    assert!(matches!(next(&mut b.rx).await, ToNode::Peer { msg: PeerMsg::FlushAll, .. }));
    // The whole recording, replayed on a new connection: the acceptor's nonce is new, the old finish fails.
    let mut replay = TcpStream::connect(b.addr).await.unwrap();
    replay.write_all(&recorded).await.unwrap();
    assert!(closed(&mut replay).await);
    assert!(quiet(&mut b.rx, 100).await, "the replayed FlushAll never reached the node");
    assert_eq!(b.transport.stats().snapshot().handshakes_failed, 1);
}

#[tokio::test]
async fn a_different_cluster_secret_is_refused() {
    let secret = |b| Some(ClusterSecret::from_bytes(&[b; 32]).unwrap());
    let mut keyed = node_with(|c| c.secret = secret(1)).await;
    let mut same = node_with(|c| c.secret = secret(1)).await;
    let mut other = node_with(|c| c.secret = secret(2)).await;
    keyed.transport.send(same.addr, ack(1));
    assert!(matches!(next(&mut same.rx).await, ToNode::Peer { msg, .. } if msg == ack(1)));
    keyed.transport.send(other.addr, ack(2));
    // The connector refuses the challenge (its proof does not verify), and the acceptor sees its connection
    // close before the finish; the sender sees its link fail.
    assert!(matches!(next(&mut keyed.rx).await, ToNode::PeerLost { peer } if peer == other.addr));
    assert!(quiet(&mut other.rx, 50).await);
    assert_eq!(keyed.transport.stats().snapshot().handshakes_failed, 1);
    // And a node without a secret is refused by one with a secret, in both directions.
    let mut plain = node().await;
    plain.transport.send(same.addr, ack(3));
    assert!(matches!(next(&mut plain.rx).await, ToNode::PeerLost { peer } if peer == same.addr));
    assert!(eventually_count(|| same.transport.stats().snapshot().handshakes_failed == 1).await);
    assert!(quiet(&mut same.rx, 50).await);
}

#[tokio::test]
async fn a_peer_closing_an_idle_link_is_reported() {
    let mut a = node().await;
    let mut b = node().await;
    a.transport.send(b.addr, ack(1));
    assert!(matches!(next(&mut b.rx).await, ToNode::Peer { .. }));
    // b stops: its inbound connections close, and a notices without sending anything.
    b.shutdown.send(true).unwrap();
    assert!(matches!(next(&mut a.rx).await, ToNode::PeerLost { peer } if peer == b.addr));
    assert!(quiet(&mut a.rx, 200).await);
}

#[tokio::test]
async fn a_peer_that_stops_reading_does_not_hold_up_the_others() {
    let mut b = node().await;
    let mut a = node_with(|c| c.queue_frames_max = 64).await;
    // A listener that accepts (the kernel does) but never reads.
    let stuck = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stuck_addr = stuck.local_addr().unwrap();
    let value = Bytes::from(vec![7u8; 256 * 1024]);
    let big = |id| PeerMsg::ForwardReply { id, reply: crate::core::reply::Reply::Bulk(value.clone()) };
    for round in 0..20 {
        for id in 0..64 {
            a.transport.send(stuck_addr, big(RequestId(id)));
        }
        a.transport.send(b.addr, ack(round));
        assert!(matches!(next(&mut b.rx).await, ToNode::Peer { msg, .. } if msg == ack(round)));
    }
    assert!(a.transport.stats().snapshot().frames_dropped > 0, "the stuck peer's queue overflowed");
    drop(stuck);
}

/// Whether `check` holds within two seconds (polled).
async fn eventually_count(check: impl Fn() -> bool) -> bool {
    for _ in 0..200 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Whether the other side closes `stream` within two seconds.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Throughput of one link on loopback, for the notes: `cargo test --release --lib peer_link_throughput --
/// --ignored --nocapture`. The sender keeps at most two queue-fulls in flight (so nothing is dropped) and the
/// receiver counts; prints messages and bytes per second, asserts nothing about speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn peer_link_throughput() {
    use std::sync::atomic::AtomicU64;
    const WINDOW: u64 = 4_096;
    for value_bytes in [16usize, 1024] {
        let mut b = node().await;
        let mut a = node().await;
        let total = 500_000u64;
        let value = Bytes::from(vec![1u8; value_bytes]);
        let b_addr = b.addr;
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let receiver = tokio::spawn(async move {
            while let Some(event) = b.rx.recv().await {
                if matches!(event, ToNode::Peer { .. }) && counter.fetch_add(1, Ordering::Relaxed) + 1 == total {
                    break;
                }
            }
        });
        let started = std::time::Instant::now();
        for id in 0..total {
            while id >= received.load(Ordering::Relaxed) + 2 * WINDOW {
                tokio::task::yield_now().await;
            }
            let entry = WireEntry {
                kind: crate::core::replication::EntryKind::Value,
                value: value.clone(),
                vector: Default::default(),
                expire_at_ms: 0,
            };
            let entries = vec![(Bytes::from_static(b"key:000001"), entry)];
            a.transport.send(b_addr, PeerMsg::Put { id: Some(RequestId(id)), entries, hint_for: None });
        }
        tokio::time::timeout(Duration::from_secs(60), receiver).await.unwrap().unwrap();
        let secs = started.elapsed().as_secs_f64();
        let s = a.transport.stats().snapshot();
        println!(
            "value {value_bytes} B: {total} messages in {secs:.2} s = {:.0} msg/s, {:.1} MB/s, dropped {}",
            total as f64 / secs,
            s.bytes_sent as f64 / secs / 1e6,
            s.frames_dropped
        );
        let _ = a.rx.rx.try_recv();
    }
}

/// A message several times the frame limit crosses a real, authenticated link in parts, in order with small ones
/// around it, and nothing is dropped; one beyond the reassembly limit is dropped and counted, never sent.
#[tokio::test]
async fn a_message_larger_than_a_frame_arrives_whole_in_parts() {
    let secret = ClusterSecret::from_bytes(b"a cluster secret of enough bytes").unwrap();
    let tune = |c: &mut PeerConfig| {
        c.secret = Some(secret.clone());
        c.frame_bytes_max = 256 * 1024;
        c.batch_bytes_max = 64 * 1024;
        c.message_bytes_max = 4 << 20;
    };
    let mut a = node_with(tune).await;
    let mut b = node_with(tune).await;
    let big = |id: u64, bytes: usize| {
        let value = Bytes::from((0..bytes).map(|i| (i % 253) as u8).collect::<Vec<u8>>());
        let entry = WireEntry {
            kind: crate::core::replication::EntryKind::Value,
            value,
            vector: Default::default(),
            expire_at_ms: 0,
        };
        PeerMsg::Put { id: Some(RequestId(id)), entries: vec![(Bytes::from_static(b"big"), entry)], hint_for: None }
    };
    let sent = vec![ack(1), big(2, 1_000_000), ack(3), big(4, 3_000_000), ack(5)];
    a.transport.send_many(b.addr, sent.clone());
    for want in &sent {
        match next(&mut b.rx).await {
            ToNode::Peer { msg, .. } => assert!(msg == *want, "messages arrive whole and in order"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let s = a.transport.stats().snapshot();
    assert_eq!((s.frames_sent, s.messages_split, s.frames_dropped), (5, 2, 0), "{s:?}");
    // Beyond what the peer reassembles: dropped at the sender, counted, and the link goes on.
    a.transport.send_many(b.addr, vec![big(6, 5_000_000), ack(7)]);
    assert!(matches!(next(&mut b.rx).await, ToNode::Peer { msg, .. } if msg == ack(7)));
    let s = a.transport.stats().snapshot();
    assert_eq!((s.messages_too_large, s.frames_dropped), (1, 1), "{s:?}");
    assert_eq!(b.transport.stats().snapshot().frames_bad, 0);
}
