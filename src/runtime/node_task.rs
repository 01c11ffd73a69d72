//! The one task that owns the `core::Node`: it feeds the node batches of commands and due timers, reads the
//! wall clock for it, and routes every output (replies to connections, timers to its own timer queues).
//!
//! Connection tasks parse and encode; this task only executes, so its loop stays short. It takes as many
//! messages as are queued at once (`recv_many`) and groups the replies per connection before sending them back,
//! so one wake-up of a connection carries all the replies of its pipeline. Gossip datagrams come on a queue of
//! their own, taken first on every turn (and first when the loop waits), so a probe or an ack waits at most one
//! turn (`TURN_INPUTS_MAX` inputs) however many client batches are queued: a busy node is not suspected.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::net::UdpSocket;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::cluster::TopologyCell;
use super::gossip::Datagram;
use super::peer::PeerTransport;
use crate::core::command::Command;
use crate::core::membership::{MemberEvent, MemberState};
use crate::core::replication::{Levels, PeerMsg};
use crate::core::reply::Reply;
use crate::core::timers::TimerQueue;
use crate::core::topology::Topology;
use crate::core::{ConnId, Input, Millis, Node, Outbox, Output, ReqId, TimerId};

/// Replies for one connection, in the order the node produced them.
pub type ReplyBatch = Vec<(ReqId, Reply)>;

/// Messages from connection tasks to the node task.
#[derive(Debug)]
// One peer message travels inline rather than boxed: an allocation per message on the hot path costs more than the
// few hundred bytes per slot of the bounded queue (4096 slots).
#[allow(clippy::large_enum_variant)]
pub enum ToNode {
    /// A connection opened; its replies go to `tx`.
    Open { conn: ConnId, tx: mpsc::UnboundedSender<ReplyBatch> },
    /// Commands read from one connection, in order.
    Batch { conn: ConnId, levels: Levels, cmds: Vec<(ReqId, Command)> },
    /// A connection closed.
    Close { conn: ConnId },
    /// The seeds resolved to new addresses.
    SetSeeds(Vec<SocketAddr>),
    /// A message arrived from the peer whose cluster address and name (as its link's handshake established
    /// them) are `from` and `name`.
    Peer { from: SocketAddr, name: Arc<str>, msg: PeerMsg },
    /// Several messages arrived together from the peer `from` named `name`, in order.
    Peers { from: SocketAddr, name: Arc<str>, msgs: Vec<PeerMsg> },
    /// The link to a peer failed; what was queued for it was dropped.
    PeerLost { peer: SocketAddr },
    /// Render the node's metrics (Prometheus text) into `reply`.
    Metrics { reply: tokio::sync::oneshot::Sender<String> },
    /// `DEBUG PANIC` (allowed by `--enable-debug-command`): panic in the node task, to test that the process
    /// then ends instead of living on without its node.
    DebugPanic,
}

/// Most messages taken from the queue per loop turn.
const RECV_BATCH_MAX: usize = 512;

/// Longest a turn takes client and peer messages before it fires timers, routes outputs and yields (checked
/// after each message): on a slow build or a loaded host 4,096 inputs can take hundreds of ms, and gossip that
/// arrives meanwhile waits for the next turn (SWIM's LAN probe timeout is 80 ms).
const TURN_TIME_MAX: Duration = Duration::from_millis(20);

/// Most gossip datagrams taken per loop turn (their queue holds `gossip::GOSSIP_QUEUE_MAX`).
const GOSSIP_BATCH_MAX: usize = 256;

/// Most node inputs (client commands, peer messages) handled per loop turn before due timers fire and outputs
/// are routed: a message can carry up to 64 peer messages or a whole pipeline, so 512 messages alone do not
/// bound a turn. The rest of the batch waits for the next turn.
const TURN_INPUTS_MAX: usize = 4096;

/// Test-only skew of every wall-clock reading of the process, in ms (`--debug-clock-offset-ms`).
static CLOCK_OFFSET_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Set the test-only clock skew (0 leaves an offset set earlier in the process as it is).
pub fn set_clock_offset(offset_ms: i64) {
    if offset_ms != 0 {
        CLOCK_OFFSET_MS.store(offset_ms, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The current wall-clock time in Unix milliseconds (plus the test-only skew, if any).
pub fn wall_ms() -> Millis {
    let real = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis);
    real.saturating_add_signed(CLOCK_OFFSET_MS.load(std::sync::atomic::Ordering::Relaxed))
}

/// Timers the node asked for, on the monotonic clock (`core::timers::TimerQueue`, which hands due timers over
/// sorted as the driver contract requires).
type Timers = TimerQueue<TimerId, Instant>;

/// Longest delay a timer is scheduled with; longer ones wait this long (they would never fire anyway).
const TIMER_DELAY_MS_MAX: Millis = 100 * 365 * 86_400_000;

/// The deadline `after_ms` from `now`, capped so that `Instant` arithmetic cannot overflow (it panics).
fn deadline(now: Instant, after_ms: Millis) -> Instant {
    let capped = Duration::from_millis(after_ms.min(TIMER_DELAY_MS_MAX));
    now.checked_add(capped).unwrap_or(now)
}

/// Schedule `timer` `after_ms` from `now`. Request deadlines are the bulk (one per write, read or forward, most
/// never needed) and share a few fixed delays: they go on the FIFO lane of their delay, whose deadlines are in
/// order because the clock never goes back, so scheduling and firing them is O(1). Other timers (gossip,
/// periodic rounds) go to the queue's ordered map.
fn schedule(timers: &mut Timers, now: Instant, after_ms: Millis, timer: TimerId) {
    let at = deadline(now, after_ms);
    if matches!(timer, TimerId::Request(_)) {
        timers.schedule_fifo(after_ms, at, timer);
    } else {
        timers.schedule(at, timer);
    }
}

/// Mixed into the server seed for the loss-injection RNG, so it differs from the node's own.
const LOSS_RNG_SALT: u64 = 0x1055_1055_1055_1055;

/// The gossip socket as the node task sends on it, with optional test-only loss injection.
pub struct Gossip {
    socket: Arc<UdpSocket>,
    /// Percentage (0-100) of outgoing datagrams dropped on purpose; 0 outside of tests and benchmarks.
    loss_percent: u8,
    rng: StdRng,
    /// Datagrams dropped by loss injection.
    dropped: u64,
}

impl Gossip {
    /// Send on `socket`, dropping `loss_percent`% of datagrams with an RNG seeded from `seed`.
    pub fn new(socket: Arc<UdpSocket>, loss_percent: u8, seed: u64) -> Gossip {
        Gossip {
            socket,
            loss_percent: loss_percent.min(100),
            rng: StdRng::seed_from_u64(seed ^ LOSS_RNG_SALT),
            dropped: 0,
        }
    }

    /// Send one datagram now, or drop it when the socket buffer is full (as the network may: SWIM tolerates
    /// loss) or when loss injection picks it.
    fn send(&mut self, to: SocketAddr, packet: &[u8]) {
        if self.loss_percent > 0 && self.rng.random_range(0..100u8) < self.loss_percent {
            self.dropped += 1;
            return;
        }
        if let Err(e) = self.socket.try_send_to(packet, to) {
            tracing::debug!(%to, error = %e, "gossip send failed");
        }
    }
}

/// The node task's I/O: connections' reply queues, timers, the gossip socket and the peer transport.
struct Io {
    conns: HashMap<ConnId, mpsc::UnboundedSender<ReplyBatch>>,
    timers: Timers,
    gossip: Option<Gossip>,
    peers: Option<PeerTransport>,
    /// Peer messages of the current turn, per destination in first-use order, handed over together at its end.
    to_peers: PeerBatches,
}

/// Messages grouped by destination, each group in the order it was added; destinations in first-use order.
#[derive(Default)]
struct PeerBatches(Vec<(SocketAddr, Vec<PeerMsg>)>);

impl PeerBatches {
    /// Add `msg` to the group of `to`.
    fn push(&mut self, to: SocketAddr, msg: PeerMsg) {
        // A node talks to a handful of peers per turn: a linear search beats hashing.
        match self.0.iter_mut().find(|(peer, _)| *peer == to) {
            Some((_, msgs)) => msgs.push(msg),
            None => self.0.push((to, vec![msg])),
        }
    }

    /// Take every group out, leaving none.
    fn drain(&mut self) -> std::vec::Drain<'_, (SocketAddr, Vec<PeerMsg>)> {
        self.0.drain(..)
    }
}

/// Run the node until `shutdown` flips to true or every sender is gone. On shutdown a clustered node leaves
/// the cluster first, so its peers drop it at once instead of suspecting it.
pub async fn run(
    node: Node,
    rx: mpsc::Receiver<ToNode>,
    gossip_rx: mpsc::Receiver<Datagram>,
    shutdown: watch::Receiver<bool>,
    gossip: Option<Gossip>,
    peers: Option<PeerTransport>,
    topology: Arc<TopologyCell>,
) -> Node {
    let io = Io { conns: HashMap::new(), timers: Timers::default(), gossip, peers, to_peers: PeerBatches::default() };
    let mut task = NodeTask {
        node,
        io,
        out: Outbox::new(),
        msgs: Vec::with_capacity(RECV_BATCH_MAX),
        datagrams: Vec::with_capacity(GOSSIP_BATCH_MAX),
        rx,
        gossip_rx,
        shutdown,
        topology: Published { cell: topology, digest: None, epoch: 0 },
    };
    task.node.handle(wall_ms(), Input::Start, &mut task.out);
    route(&mut task.out, &mut task.io);
    while task.wait().await {
        task.turn().await;
    }
    task.leave();
    task.node
}

/// The node task's state between turns: the node, its I/O, and the inputs taken from the queues but not yet
/// handled.
struct NodeTask {
    node: Node,
    io: Io,
    out: Outbox,
    /// Client and peer messages taken from `rx`; a turn cut short by its budget leaves the rest here.
    msgs: Vec<ToNode>,
    /// Gossip datagrams taken from `gossip_rx`, handled first in the next turn.
    datagrams: Vec<Datagram>,
    rx: mpsc::Receiver<ToNode>,
    gossip_rx: mpsc::Receiver<Datagram>,
    shutdown: watch::Receiver<bool>,
    topology: Published,
}

/// The slot map handed to the connections, and what it was built from.
struct Published {
    cell: Arc<TopologyCell>,
    /// The live-set digest and suspect count of the last map built (`None`: none yet).
    digest: Option<(u64, u64)>,
    /// Maps built so far (CLUSTER INFO's epoch).
    epoch: u64,
}

impl NodeTask {
    /// Rebuild and publish the slot map when the live members (or who is suspected) changed since the last one.
    fn publish_topology(&mut self) {
        let Some(m) = self.node.membership() else { return };
        let suspects = m.rows().filter(|(_, state)| *state == MemberState::Suspect).count() as u64;
        let digest = Some((m.live_digest(), suspects));
        if digest == self.topology.digest {
            return;
        }
        self.topology.digest = digest;
        self.topology.epoch += 1;
        if let Some(topology) = Topology::of(&self.node, self.topology.epoch) {
            self.topology.cell.publish(topology);
        }
    }

    /// Wait for something to do, unless messages are left over; false when the loop must stop (shutdown, or
    /// every sender gone).
    async fn wait(&mut self) -> bool {
        // Messages left over from a turn that reached its input budget are handled before waiting for more.
        if !self.msgs.is_empty() {
            return true;
        }
        let deadline = self.io.timers.next_deadline();
        tokio::select! {
            biased;
            // Gossip first: a closed gossip queue (no cluster, or shutdown) just stops this branch.
            _ = self.gossip_rx.recv_many(&mut self.datagrams, GOSSIP_BATCH_MAX), if !self.gossip_rx.is_closed() => {}
            n = self.rx.recv_many(&mut self.msgs, RECV_BATCH_MAX) => {
                if n == 0 {
                    return false;
                }
            }
            // Due timers are fired below on every turn; this branch only wakes an idle loop.
            _ = sleep_until(deadline), if deadline.is_some() => {}
            _ = self.shutdown.changed() => {
                if *self.shutdown.borrow() {
                    return false;
                }
            }
        }
        true
    }

    /// One turn: gossip first, then client and peer messages within the turn's budget, then due timers, then
    /// the outputs are routed; a turn cut short yields before the next part of the batch.
    async fn turn(&mut self) {
        let turn_start = std::time::Instant::now();
        let now = wall_ms();
        self.gossip_first(now);
        self.handle_messages(now, turn_start);
        self.fire_due_timers();
        self.publish_topology();
        route(&mut self.out, &mut self.io);
        if !self.msgs.is_empty() {
            // Let the connection and link tasks send what this turn routed before the next part of the batch.
            tokio::task::yield_now().await;
        }
    }

    /// Hand the node every gossip datagram taken so far, topped up with those queued meanwhile.
    fn gossip_first(&mut self, now: Millis) {
        // Gossip that arrived meanwhile goes before this turn's client and peer messages.
        while self.datagrams.len() < GOSSIP_BATCH_MAX {
            match self.gossip_rx.try_recv() {
                Ok(d) => self.datagrams.push(d),
                Err(_) => break,
            }
        }
        for Datagram { from, packet } in self.datagrams.drain(..) {
            self.node.handle(now, Input::Gossip { from, packet }, &mut self.out);
        }
    }

    /// Dispatch the queued messages until `TURN_INPUTS_MAX` inputs or `TURN_TIME_MAX` since `turn_start`; the
    /// rest stays queued, in order, for the next turn.
    fn handle_messages(&mut self, now: Millis, turn_start: std::time::Instant) {
        let mut handled = 0;
        let mut spill = Vec::new();
        {
            let mut queued = self.msgs.drain(..);
            for msg in queued.by_ref() {
                handled += dispatch(&mut self.node, &mut self.io, &mut self.out, now, msg);
                if handled >= TURN_INPUTS_MAX || turn_start.elapsed() >= TURN_TIME_MAX {
                    break;
                }
            }
            // Allocates only when the budget cut the turn short.
            spill.extend(queued);
        }
        self.msgs.append(&mut spill);
    }

    /// Hand the node every timer that is due.
    fn fire_due_timers(&mut self) {
        // Fire due timers on every turn, not only when the queue is idle: under sustained client load the
        // queue is never empty, and starving SWIM's probe timers would get this node declared down.
        if self.io.timers.next_deadline().is_some_and(|d| d <= Instant::now()) {
            let now = wall_ms();
            for timer in self.io.timers.pop_due(Instant::now()) {
                self.node.handle(now, Input::Timer(timer), &mut self.out);
            }
        }
    }

    /// A clustered node leaves the cluster (its peers drop it at once) and logs the loss it injected.
    fn leave(&mut self) {
        if self.node.membership().is_some() {
            self.node.handle(wall_ms(), Input::Leave, &mut self.out);
            route(&mut self.out, &mut self.io);
            let dropped = self.io.gossip.as_ref().map_or(0, |g| g.dropped);
            tracing::info!(loss_injected = dropped, "left the cluster");
        }
    }
}

/// Hand one queued message to the node (or to the connection table); returns how many node inputs it made.
fn dispatch(node: &mut Node, io: &mut Io, out: &mut Outbox, now: Millis, msg: ToNode) -> usize {
    match msg {
        ToNode::Open { conn, tx } => {
            io.conns.insert(conn, tx);
            0
        }
        ToNode::Close { conn } => {
            io.conns.remove(&conn);
            0
        }
        ToNode::SetSeeds(seeds) => {
            node.handle(now, Input::SetSeeds(seeds), out);
            1
        }
        ToNode::Peer { from, name, msg } => {
            node.handle(now, Input::Peer { from, name, msg }, out);
            1
        }
        ToNode::Peers { from, name, msgs } => {
            let n = msgs.len();
            for msg in msgs {
                node.handle(now, Input::Peer { from, name: name.clone(), msg }, out);
            }
            n
        }
        ToNode::PeerLost { peer } => {
            node.handle(now, Input::PeerLost { peer }, out);
            1
        }
        ToNode::DebugPanic => panic!("DEBUG PANIC: a client asked the node task to panic"),
        ToNode::Metrics { reply } => {
            let _ = reply.send(crate::core::metrics::render(node, now));
            1
        }
        ToNode::Batch { conn, levels, cmds } => {
            let n = cmds.len();
            for (req, cmd) in cmds {
                node.handle(now, Input::Client { conn, req, cmd, levels }, out);
            }
            n
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Carry out the node's outputs: replies grouped per connection (consecutive runs), timers onto the queue,
/// datagrams onto the gossip socket, peer messages onto their links' queues (never waiting).
fn route(out: &mut Outbox, io: &mut Io) {
    let conns = &io.conns;
    // One clock read for all the timers of one turn (they were asked for at the same instant).
    let mut now: Option<Instant> = None;
    let mut current: Option<(ConnId, ReplyBatch)> = None;
    for item in out.drain() {
        match item {
            Output::Reply { conn, req, reply } => match &mut current {
                Some((c, batch)) if *c == conn => batch.push((req, reply)),
                _ => {
                    if let Some((c, batch)) = current.take() {
                        send(conns, c, batch);
                    }
                    current = Some((conn, vec![(req, reply)]));
                }
            },
            Output::Schedule { after_ms, timer } => {
                schedule(&mut io.timers, *now.get_or_insert_with(Instant::now), after_ms, timer)
            }
            Output::SendGossip { to, packet } => {
                if let Some(gossip) = &mut io.gossip {
                    gossip.send(to, &packet);
                }
            }
            Output::Member(event) => match *event {
                MemberEvent::NameConflict(c) => tracing::warn!(
                    name = %c.name,
                    addrs = ?c.addrs,
                    "several live members carry the same node name: the ring counts them as one owner and \
                     replication to all but one stops; give each node a unique --name"
                ),
                event => tracing::info!(?event, "membership changed"),
            },
            Output::SendPeer { to, msg } => match &io.peers {
                Some(_) => io.to_peers.push(to, msg),
                None => tracing::trace!(%to, "peer message dropped: standalone node"),
            },
        }
    }
    if let Some((c, batch)) = current {
        send(conns, c, batch);
    }
    // One hand-over per peer per turn: a queue operation and a wake-up of the link for all its messages.
    if let Some(peers) = &mut io.peers {
        for (to, msgs) in io.to_peers.drain() {
            peers.send_many(to, msgs);
        }
    }
}

fn send(conns: &HashMap<ConnId, mpsc::UnboundedSender<ReplyBatch>>, conn: ConnId, batch: ReplyBatch) {
    // A connection that closed meanwhile simply loses its replies.
    if let Some(tx) = conns.get(&conn) {
        let _ = tx.send(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::RequestId;

    #[test]
    fn a_timer_delay_too_large_for_the_clock_is_capped_not_a_panic() {
        let now = Instant::now();
        let mut timers = Timers::default();
        schedule(&mut timers, now, u64::MAX, TimerId::Hints);
        schedule(&mut timers, now, u64::MAX, TimerId::Request(RequestId(1)));
        schedule(&mut timers, now, 5, TimerId::Sweep);
        let next = timers.next_deadline().expect("scheduled");
        assert_eq!(next, now + Duration::from_millis(5));
        assert_eq!(timers.pop_due(now + Duration::from_millis(5)), vec![TimerId::Sweep]);
        assert!(timers.next_deadline().is_some_and(|d| d > now + Duration::from_secs(86_400 * 365)));
    }
}
