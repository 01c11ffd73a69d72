//! Test kit: a small deterministic cluster of full `Node`s for replication and lock tests: gossip and peer messages are delivered
//! after 1 ms (peer messages in order per link), timers by virtual time, partitions drop both kinds of traffic,
//! a crashed node loses its state and senders to it get `PeerLost`, a paused node keeps its state and everything
//! meant for it (timers included) waits until it resumes, as a SIGSTOP'd process. The full simulator lives in
//! `sim/`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;

use crate::core::command::Command;
use crate::core::membership::{GossipConfig, Identity, Membership};
use crate::core::replication::batch::entry_bytes;
use crate::core::replication::{Frame, FrameCodec, Levels, PeerMsg};
use crate::core::reply::Reply;
use crate::core::{Input, Millis, Node, NodeConfig, Outbox, Output, TimerId};

pub const T0: Millis = 1_700_000_000_000;

pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1)), 7946)
}

enum Event {
    Gossip { to: usize, from: usize, packet: Bytes },
    Peer { to: usize, from: usize, msg: PeerMsg },
    Lost { to: usize, peer: usize },
    Timer { node: usize, generation: u64, timer: TimerId },
}

pub struct Cluster {
    pub now: Millis,
    pub nodes: Vec<Option<Node>>,
    pub config: NodeConfig,
    generation: Vec<u64>,
    queue: BTreeMap<(Millis, u64), Event>,
    seq: u64,
    /// Group of each node; traffic between different groups is dropped.
    pub side: Vec<u8>,
    /// Clock offset of each node in ms (its wall clock reads `now + skew`).
    pub skew: Vec<i64>,
    /// Replies by (conn, req).
    pub replies: BTreeMap<(u64, u64), Reply>,
    next_req: u64,
    pub peer_messages: u64,
    /// Encoded bytes of peer messages sent, by message kind (measured only when `measure_bytes` is set).
    pub peer_bytes: BTreeMap<&'static str, u64>,
    /// Count the encoded size of every peer message (costs an encoding per message).
    pub measure_bytes: bool,
    /// The largest `Put` seen, in estimated entry bytes (`batch::entry_bytes`), with its entry count.
    pub put_bytes_seen_max: (usize, usize),
    /// The most estimated entry bytes one input sent to one peer (a step of a repair stream).
    pub step_bytes_seen_max: usize,
    /// Whether each node is paused.
    paused: Vec<bool>,
    /// Events for paused nodes, in arrival order, delivered when their node resumes.
    held: Vec<Event>,
}

impl Cluster {
    /// `n` nodes that join through node 0, run until every node sees all of them.
    pub fn new(n: usize, config: NodeConfig) -> Cluster {
        let mut c = Cluster {
            now: T0,
            nodes: (0..n).map(|_| None).collect(),
            config,
            generation: vec![0; n],
            queue: BTreeMap::new(),
            seq: 0,
            side: vec![0; n],
            skew: vec![0; n],
            replies: BTreeMap::new(),
            next_req: 1,
            peer_messages: 0,
            peer_bytes: BTreeMap::new(),
            measure_bytes: false,
            put_bytes_seen_max: (0, 0),
            step_bytes_seen_max: 0,
            paused: vec![false; n],
            held: Vec::new(),
        };
        for i in 0..n {
            c.start(i);
        }
        c.run_until(|c| (0..n).all(|i| c.node(i).ring_members() == n || c.node(i).membership().is_none()), 30_000);
        c
    }

    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("node is up")
    }

    pub fn start(&mut self, i: usize) {
        let mut config = self.config.clone();
        config.name = format!("n{i}");
        let identity = Identity::new(addr(i), addr(i), config.name.clone(), self.now + self.generation[i]);
        let membership = Membership::new(identity, GossipConfig::lan(), None, 77 + i as u64).expect("valid config");
        let seeds = if i == 0 { vec![] } else { vec![addr(0)] };
        self.nodes[i] = Some(Node::clustered(config, 1000 + i as u64 + self.generation[i] * 100, membership, seeds));
        self.input(i, Input::Start);
    }

    pub fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
        self.generation[i] += 1;
    }

    /// Stop node `i` as SIGSTOP does: it keeps its state, and what arrives for it (timers too) waits.
    pub fn pause(&mut self, i: usize) {
        self.paused[i] = true;
    }

    /// Let a paused node go on: everything that waited for it is delivered now, in the order it arrived.
    pub fn resume(&mut self, i: usize) {
        self.paused[i] = false;
        let (mine, others): (Vec<Event>, Vec<Event>) = self.held.drain(..).partition(|e| target(e) == i);
        self.held = others;
        for event in mine {
            self.push(self.now, event);
        }
    }

    fn push(&mut self, at: Millis, event: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), event);
    }

    /// Hand `input` to node `i` now, as its driver would, and route what it outputs.
    pub fn deliver(&mut self, i: usize, input: Input) {
        self.input(i, input);
    }

    fn input(&mut self, i: usize, input: Input) {
        let now = self.now.saturating_add_signed(self.skew[i]);
        let Some(node) = self.nodes[i].as_mut() else { return };
        let mut out = Outbox::new();
        node.handle(now, input, &mut out);
        let generation = self.generation[i];
        let now = self.now;
        let mut step_bytes: BTreeMap<SocketAddr, usize> = BTreeMap::new();
        for o in out.drain() {
            match o {
                Output::Reply { conn, req, reply } => {
                    self.replies.insert((conn, req), reply);
                }
                Output::Schedule { after_ms, timer } => {
                    self.push(now + after_ms, Event::Timer { node: i, generation, timer })
                }
                Output::SendGossip { to, packet } => {
                    if let Some(to) = index(to) {
                        self.push(now + 1, Event::Gossip { to, from: i, packet });
                    }
                }
                Output::SendPeer { to, msg } => {
                    self.peer_messages += 1;
                    if let PeerMsg::Put { entries, .. } = &msg {
                        let bytes: usize = entries.iter().map(|(k, e)| entry_bytes(k, e)).sum();
                        self.put_bytes_seen_max = self.put_bytes_seen_max.max((bytes, entries.len()));
                        let step = step_bytes.entry(to).or_default();
                        *step += bytes;
                        self.step_bytes_seen_max = self.step_bytes_seen_max.max(*step);
                    }
                    let msg = if self.measure_bytes {
                        // The frame as the runtime sends it (no cluster secret).
                        let mut encoded = bytes::BytesMut::new();
                        let frame = Frame::Msg(msg);
                        let size = FrameCodec::new(None).encode(&frame, &mut encoded).unwrap_or(0) as u64;
                        let Frame::Msg(msg) = frame;
                        *self.peer_bytes.entry(kind_of(&msg)).or_default() += size;
                        msg
                    } else {
                        msg
                    };
                    if let Some(to) = index(to) {
                        self.push(now + 1, Event::Peer { to, from: i, msg });
                    }
                }
                Output::Member(_) => {}
            }
        }
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.side[a] == self.side[b]
    }

    /// Run one event; false when the queue is empty.
    pub fn step(&mut self) -> bool {
        let Some(((at, _), event)) = self.queue.pop_first() else { return false };
        self.now = at;
        if self.paused[target(&event)] {
            self.held.push(event);
            return true;
        }
        match event {
            Event::Gossip { to, from, packet } => {
                if self.connected(to, from) {
                    self.input(to, Input::Gossip { from: addr(from), packet });
                }
            }
            Event::Peer { to, from, msg } => {
                if !self.connected(to, from) {
                    return true;
                }
                if self.nodes[to].is_none() {
                    self.push(self.now + 1, Event::Lost { to: from, peer: to });
                    return true;
                }
                self.input(to, Input::Peer { from: addr(from), name: format!("n{from}").into(), msg });
            }
            Event::Lost { to, peer } => self.input(to, Input::PeerLost { peer: addr(peer) }),
            Event::Timer { node, generation, timer } => {
                // Timers of one node due at the same instant go together, sorted (the driver contract).
                let same: Vec<(Millis, u64)> = self
                    .queue
                    .range((at, 0)..=(at, u64::MAX))
                    .filter(|(_, e)| matches!(e, Event::Timer { node: n, .. } if *n == node))
                    .map(|(k, _)| *k)
                    .collect();
                let mut due = vec![(generation, timer)];
                for k in same {
                    if let Some(Event::Timer { generation, timer, .. }) = self.queue.remove(&k) {
                        due.push((generation, timer));
                    }
                }
                due.sort_by(|a, b| a.1.cmp(&b.1));
                for (generation, timer) in due {
                    if generation == self.generation[node] {
                        self.input(node, Input::Timer(timer));
                    }
                }
            }
        }
        true
    }

    /// Run until `done` holds (checked after each event) or `max_ms` of virtual time pass; returns `done`.
    pub fn run_until(&mut self, done: impl Fn(&Cluster) -> bool, max_ms: Millis) -> bool {
        let end = self.now + max_ms;
        while !done(self) {
            if self.queue.first_key_value().is_none_or(|((at, _), _)| *at > end) || !self.step() {
                return done(self);
            }
        }
        true
    }

    /// Run for `ms` of virtual time.
    pub fn run_for(&mut self, ms: Millis) {
        let end = self.now + ms;
        while self.queue.first_key_value().is_some_and(|((at, _), _)| *at <= end) {
            self.step();
        }
        self.now = end;
    }

    /// Send a command to node `i`; returns the (conn, req) its reply will be filed under.
    pub fn submit(&mut self, i: usize, cmd: Command, levels: Levels) -> (u64, u64) {
        let req = self.next_req;
        self.next_req += 1;
        self.input(i, Input::Client { conn: 1, req, cmd, levels });
        (1, req)
    }

    /// Send a command to node `i` and run until it is answered (at most 10 virtual seconds).
    pub fn call(&mut self, i: usize, cmd: Command, levels: Levels) -> Reply {
        let id = self.submit(i, cmd, levels);
        self.run_until(|c| c.replies.contains_key(&id), 10_000);
        self.replies.remove(&id).unwrap_or_else(|| panic!("no reply from n{i} within 10 s"))
    }

    /// Nodes whose local copy of `key` is a value equal to `value`.
    pub fn holders(&self, key: &str, value: &str) -> BTreeSet<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i].as_ref().is_some_and(|n| {
                    n.local_entry(key.as_bytes(), self.now).is_some_and(|e| e.value == value.as_bytes())
                })
            })
            .collect()
    }

    /// The indices of a key's owners as node `i` sees them.
    pub fn owners(&self, i: usize, key: &str) -> Vec<usize> {
        self.node(i).owners(key.as_bytes()).iter().map(|n| n[1..].parse().expect("node names are n<i>")).collect()
    }
}

/// The name of a peer message's kind.
fn kind_of(msg: &PeerMsg) -> &'static str {
    match msg {
        PeerMsg::Forward { .. } => "Forward",
        PeerMsg::ForwardReply { .. } => "ForwardReply",
        PeerMsg::Put { id: None, .. } => "Put(repair)",
        PeerMsg::Put { hint_for: Some(_), .. } => "Put(hint)",
        PeerMsg::Put { .. } => "Put",
        PeerMsg::PutAck { .. } => "PutAck",
        PeerMsg::Get { .. } => "Get",
        PeerMsg::GetReply { .. } => "GetReply",
        PeerMsg::AeGroups { .. } => "AeGroups",
        PeerMsg::AeBuckets { .. } => "AeBuckets",
        PeerMsg::AeSubs { .. } => "AeSubs",
        PeerMsg::AeKeys { .. } => "AeKeys",
        PeerMsg::AePull { .. } => "AePull",
        PeerMsg::Offer { .. } => "Offer",
        PeerMsg::Want { .. } => "Want",
        PeerMsg::FlushAll => "FlushAll",
        PeerMsg::Lock { .. } => "Lock",
        PeerMsg::LockReply { .. } => "LockReply",
        PeerMsg::PutRefused { .. } => "PutRefused",
        PeerMsg::Flushed { .. } => "Flushed",
    }
}

/// The node an event is for.
fn target(event: &Event) -> usize {
    match event {
        Event::Gossip { to, .. } | Event::Peer { to, .. } | Event::Lost { to, .. } => *to,
        Event::Timer { node, .. } => *node,
    }
}

fn index(a: SocketAddr) -> Option<usize> {
    match a.ip() {
        IpAddr::V4(v4) => Some(v4.octets()[3] as usize - 1),
        IpAddr::V6(_) => None,
    }
}

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub fn set(k: &str, v: &str) -> Command {
    Command::Set {
        key: b(k),
        value: b(v),
        cond: Default::default(),
        ttl: Default::default(),
        get: false,
        reply_int: false,
    }
}

pub fn get(k: &str) -> Command {
    Command::Get { key: b(k) }
}
