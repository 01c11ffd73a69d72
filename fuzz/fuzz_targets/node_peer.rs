//! Peer frames decoded and fed to a clustered `Node`: whatever a peer sends, the node must not panic, and once
//! time has run on with no input every request it started must be finished (none leaks).
//!
//! Node 0 of a three-node cluster is rebuilt for every input by replaying, into a fresh node with the same seed,
//! the inputs it received while the cluster formed (recorded once), so it starts with peers on its ring. The
//! input is then a list of operations, each picked by one byte:
//! - a frame body from peer 1 or 2 behind a valid crc32 (the decoders, then the node);
//! - a message the node itself sent in this run, re-encoded with a few bytes changed, sent back by a peer (real
//!   structure with wrong values: ids it is waiting for, empty or inconsistent vectors, absurd times);
//! - the plausible answer to a message it sent (`PutAck`, `GetReply`, `ForwardReply`, `LockReply`, `Want`), so
//!   the coordinator's later stages run;
//! - a client command (arguments as length-prefixed bytes), so that state exists;
//! - time advancing (due timers fire), a lost peer link, a gossip datagram.
//!
//! At the end time advances by a minute in steps, firing every due timer.
#![no_main]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use shoal::core::locks::LockTable;
use shoal::core::membership::{GossipConfig, Identity, Membership};
use shoal::core::replication::codec::{FRAME_VERSION, LEN_BYTES};
use shoal::core::replication::{Consistency, Frame, FrameCodec, Levels, PeerMsg};
use shoal::core::reply::Reply;
use shoal::core::{Input, Millis, Node, NodeConfig, Outbox, Output, TimerId};
use shoal::resp::command::{parse, Parsed};

const T0: Millis = 1_764_000_000_000;
const NODES: usize = 3;
/// Most operations taken from one input.
const OPS_MAX: usize = 96;
/// Most timers fired per advance of the clock (periodic timers reschedule themselves).
const TIMERS_PER_ADVANCE_MAX: usize = 20_000;
/// Most messages the node sent that are remembered for echoes and answers.
const SENT_MAX: usize = 256;
/// Largest frame body or gossip datagram taken from the input.
const BODY_BYTES_MAX: usize = 4096;
/// Bytes between a frame's length prefix and its body without a secret: version, sequence number, crc32.
const HEAD_BYTES: usize = 1 + 8 + 4;

/// A fresh codec without a secret: one link, at its first frame.
fn codec() -> FrameCodec {
    FrameCodec::new(None).with_frame_bytes_max(1 << 20)
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1)), 7946)
}

fn index(to: SocketAddr) -> Option<usize> {
    (0..NODES).find(|&i| addr(i) == to)
}

/// The name the node at `from` goes by (the peer transport hands it over with every message).
fn name_of(from: SocketAddr) -> std::sync::Arc<str> {
    index(from).map_or_else(|| "stranger".into(), |i| format!("n{i}").into())
}

fn config(i: usize) -> NodeConfig {
    NodeConfig {
        name: format!("n{i}"),
        vnodes: 16,
        maxmemory_bytes: 1 << 20,
        value_bytes_max: 1 << 16,
        request_timeout_ms: 500,
        anti_entropy_period_ms: 2_000,
        active_expire_period_ms: 1_000,
        ..NodeConfig::default()
    }
}

fn make_node(i: usize) -> Node {
    let identity = Identity::new(addr(i), addr(i), format!("n{i}"), T0);
    let membership = Membership::new(identity, GossipConfig::lan(), None, 77 + i as u64).expect("valid config");
    let seeds = if i == 0 { vec![] } else { vec![addr(0)] };
    Node::clustered(config(i), 1000 + i as u64, membership, seeds)
}

/// The inputs node 0 received while a three-node cluster formed, with their times.
fn form() -> Vec<(Millis, Input)> {
    let started = std::time::Instant::now();
    let mut nodes: Vec<Node> = (0..NODES).map(make_node).collect();
    let mut queue: BTreeMap<(Millis, u64), (usize, Input)> = BTreeMap::new();
    let mut seq = 0u64;
    for i in 0..NODES {
        seq += 1;
        queue.insert((T0, seq), (i, Input::Start));
    }
    let mut transcript = Vec::new();
    let mut out = Outbox::new();
    for _ in 0..200_000 {
        let Some(((at, _), (i, input))) = queue.pop_first() else { break };
        if i == 0 {
            transcript.push((at, input.clone()));
        }
        nodes[i].handle(at, input, &mut out);
        for o in out.drain() {
            let (due, to, input) = match o {
                Output::Schedule { after_ms, timer } => (at + after_ms, i, Input::Timer(timer)),
                Output::SendGossip { to, packet } => {
                    let Some(to) = index(to) else { continue };
                    (at + 1, to, Input::Gossip { from: addr(i), packet })
                }
                Output::SendPeer { to, msg } => {
                    let Some(to) = index(to) else { continue };
                    (at + 1, to, Input::Peer { from: addr(i), name: name_of(addr(i)), msg })
                }
                Output::Reply { .. } | Output::Member(_) => continue,
            };
            seq += 1;
            queue.insert((due, seq), (to, input));
        }
        if at > T0 + 500 && nodes.iter().all(|n| n.ring_members() == NODES) {
            break;
        }
    }
    assert!(nodes.iter().all(|n| n.ring_members() == NODES), "the fuzz cluster formed");
    eprintln!("node_peer: cluster formed, {} inputs to node 0 replayed per run ({:?})", transcript.len(), started.elapsed());
    transcript
}

/// Node 0 and what the fuzz input does to it.
struct Harness {
    node: Node,
    now: Millis,
    timers: BTreeMap<(Millis, u64), TimerId>,
    seq: u64,
    sent: Vec<(SocketAddr, PeerMsg)>,
    next_req: u64,
    out: Outbox,
}

impl Harness {
    fn new(transcript: &[(Millis, Input)]) -> Harness {
        let mut h = Harness {
            node: make_node(0),
            now: T0,
            timers: BTreeMap::new(),
            seq: 0,
            sent: Vec::new(),
            next_req: 1,
            out: Outbox::new(),
        };
        for (at, input) in transcript {
            if let Input::Timer(t) = input {
                let key = h.timers.iter().find(|((due, _), id)| *due == *at && *id == t).map(|(k, _)| *k);
                if let Some(key) = key {
                    h.timers.remove(&key);
                }
            }
            h.now = *at;
            h.handle(input.clone());
        }
        h.sent.clear();
        h
    }

    fn handle(&mut self, input: Input) {
        self.node.handle(self.now, input, &mut self.out);
        let outputs: Vec<Output> = self.out.drain().collect();
        for o in outputs {
            match o {
                Output::Schedule { after_ms, timer } => {
                    self.seq += 1;
                    self.timers.insert((self.now.saturating_add(after_ms), self.seq), timer);
                }
                Output::SendPeer { to, msg } => {
                    if self.sent.len() < SENT_MAX {
                        self.sent.push((to, msg));
                    }
                }
                Output::Reply { .. } | Output::SendGossip { .. } | Output::Member(_) => {}
            }
        }
    }

    /// Move the clock to `to`, firing the timers due by then in order.
    fn advance(&mut self, to: Millis) {
        for _ in 0..TIMERS_PER_ADVANCE_MAX {
            let Some(((due, _), _)) = self.timers.first_key_value() else { break };
            if *due > to {
                break;
            }
            let ((due, _), timer) = self.timers.pop_first().expect("first exists");
            self.now = self.now.max(due);
            self.handle(Input::Timer(timer));
        }
        self.now = self.now.max(to);
    }

    fn peer(&mut self, from: SocketAddr, msg: PeerMsg) {
        self.handle(Input::Peer { from, name: name_of(from), msg });
    }

    /// `body` behind a valid header (sequence number 0) and crc32, decoded as the first frame of a link would be.
    fn frame(&mut self, from: SocketAddr, body: &[u8]) {
        let mut buf = BytesMut::with_capacity(LEN_BYTES + HEAD_BYTES + body.len());
        buf.put_u32((HEAD_BYTES + body.len()) as u32);
        let signed = [&[FRAME_VERSION][..], &0u64.to_be_bytes()].concat();
        buf.put_slice(&signed);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&signed);
        crc.update(body);
        buf.put_u32(crc.finalize());
        buf.put_slice(body);
        if let Ok(Some(Frame::Msg(msg))) = codec().decode(&mut buf) {
            self.peer(from, msg);
        }
    }

    /// A message this node sent, with some bytes of its body changed, back from the peer it went to.
    fn echo(&mut self, pick: u8, edits: &[u8]) {
        if self.sent.is_empty() {
            return;
        }
        let (to, msg) = self.sent[pick as usize % self.sent.len()].clone();
        self.edited(to, msg, edits);
    }

    /// `msg` encoded, with the bytes `edits` names changed, decoded and sent by `from`.
    fn edited(&mut self, from: SocketAddr, msg: PeerMsg, edits: &[u8]) {
        let to = from;
        let mut encoded = BytesMut::new();
        if codec().encode(&Frame::Msg(msg), &mut encoded).is_err() {
            return;
        }
        let mut body = encoded.split_off(LEN_BYTES + HEAD_BYTES).to_vec();
        for edit in edits.chunks_exact(2) {
            if body.is_empty() {
                break;
            }
            let at = edit[0] as usize % body.len();
            body[at] ^= edit[1];
        }
        self.frame(to, &body);
    }

    /// The answer a peer would plausibly give to a message this node sent.
    fn answer(&mut self, pick: u8, twist: u8) {
        if self.sent.is_empty() {
            return;
        }
        let (to, msg) = self.sent[pick as usize % self.sent.len()].clone();
        let answer = match msg {
            PeerMsg::Put { id, .. } => PeerMsg::PutAck { id },
            PeerMsg::Get { id, keys } => {
                // Echo the node's own copies (or nothing), or a shorter or longer vector than asked.
                let mut entries: Vec<_> =
                    keys.iter().map(|k| if twist & 1 == 0 { self.node.local_entry(k, self.now) } else { None }).collect();
                match twist % 4 {
                    2 => entries.clear(),
                    3 => entries.push(None),
                    _ => {}
                }
                PeerMsg::GetReply { id, entries }
            }
            PeerMsg::Forward { id, .. } => {
                let reply = if twist & 1 == 0 { Reply::Ok } else { Reply::Nil };
                PeerMsg::ForwardReply { id, reply }
            }
            PeerMsg::Lock { id, op } => {
                let answer = LockTable::new().apply(&op, self.now);
                PeerMsg::LockReply { id, answer }
            }
            PeerMsg::Offer { id, keys } => {
                let keys = if twist & 1 == 0 { keys.into_iter().map(|k| k.key).collect() } else { Vec::new() };
                PeerMsg::Want { id, keys }
            }
            PeerMsg::AeGroups { id, ring, hashes, hlc } => {
                let hashes = hashes.into_iter().map(|h| h ^ u64::from(twist)).collect();
                PeerMsg::AeGroups { id, ring, hashes, hlc }
            }
            _ => return,
        };
        self.peer(to, answer);
    }

    /// A client command from length-prefixed arguments (`None`: not a data command).
    fn command(bytes: &[u8]) -> Option<shoal::core::command::Command> {
        let mut args = Vec::new();
        let mut rest = bytes;
        while let Some((&len, tail)) = rest.split_first() {
            let len = (len as usize).min(tail.len());
            args.push(Bytes::copy_from_slice(&tail[..len]));
            rest = &tail[len..];
        }
        if args.is_empty() {
            return None;
        }
        match parse(args) {
            Parsed::Data(cmd) => Some(cmd),
            _ => None,
        }
    }

    /// A client command from length-prefixed arguments.
    fn client(&mut self, level: u8, bytes: &[u8]) {
        let Some(cmd) = Harness::command(bytes) else { return };
        let levels = levels(level);
        let req = self.next_req;
        self.next_req += 1;
        self.handle(Input::Client { conn: 1, req, cmd, levels });
    }
}

/// Read and write levels picked by one byte.
fn levels(b: u8) -> Levels {
    let pick = |b: u8| match b % 3 {
        0 => Consistency::One,
        1 => Consistency::Quorum,
        _ => Consistency::All,
    };
    Levels { read: pick(b), write: pick(b / 3) }
}

/// Reads `n` bytes (fewer at the end of the input).
fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let n = n.min(data.len());
    let (head, tail) = data.split_at(n);
    *data = tail;
    head
}

fn byte(data: &mut &[u8]) -> u8 {
    take(data, 1).first().copied().unwrap_or(0)
}

/// A length from two bytes, at most `BODY_BYTES_MAX`.
fn len(data: &mut &[u8]) -> usize {
    let b = take(data, 2);
    let n = b.iter().fold(0usize, |n, b| n << 8 | *b as usize);
    n % (BODY_BYTES_MAX + 1)
}

static TRANSCRIPT: OnceLock<Vec<(Millis, Input)>> = OnceLock::new();

fuzz_target!(|input: &[u8]| {
    let transcript = TRANSCRIPT.get_or_init(form);
    let mut h = Harness::new(transcript);
    let mut data = input;
    for _ in 0..OPS_MAX {
        if data.is_empty() {
            break;
        }
        let op = byte(&mut data);
        let from = addr(1 + (op as usize >> 4) % 2);
        match op % 8 {
            0 | 1 => {
                let n = len(&mut data);
                let body = take(&mut data, n);
                h.frame(from, body);
            }
            2 => {
                let pick = byte(&mut data);
                let n = byte(&mut data) as usize % 8;
                let edits = take(&mut data, 2 * n);
                h.echo(pick, edits);
            }
            3 => {
                let pick = byte(&mut data);
                let twist = byte(&mut data);
                h.answer(pick, twist);
            }
            4 => {
                let level = byte(&mut data);
                let n = len(&mut data);
                let bytes = take(&mut data, n);
                h.client(level, bytes);
            }
            5 => {
                let b = take(&mut data, 2);
                let ms = b.iter().fold(0u64, |n, b| n << 8 | *b as u64);
                h.advance(h.now + ms);
            }
            6 if op & 8 == 0 => h.handle(Input::PeerLost { peer: from }),
            6 => {
                // A client command as a peer forwards it (no connection checks), with a few bytes changed.
                let level = byte(&mut data);
                let n = len(&mut data);
                let bytes = take(&mut data, n);
                let e = byte(&mut data) as usize % 8;
                let edits = take(&mut data, 2 * e);
                if let Some(cmd) = Harness::command(bytes) {
                    let msg = PeerMsg::Forward { id: u64::from(level), cmd, levels: levels(level) };
                    h.edited(from, msg, edits);
                }
            }
            _ => {
                let n = len(&mut data);
                let packet = Bytes::copy_from_slice(take(&mut data, n));
                h.handle(Input::Gossip { from, packet });
            }
        }
    }
    // Ten seconds with no input (four times the longest request timeout): every request finishes (answered,
    // failed or timed out).
    for _ in 0..20 {
        h.advance(h.now + 500);
    }
    assert_eq!(h.node.requests_pending(), 0, "a request never finished");
});
