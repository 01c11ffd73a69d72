//! One outbound link: the task that owns this node's connection to one peer and writes its queue to it.
//!
//! The task connects lazily, when a message is waiting; with `--tls-cluster` it first runs the TLS handshake
//! (`super::tls`, within `handshake_timeout_ms`, presenting the node's certificate and verifying the acceptor's
//! chain against the cluster CA). It then runs the connector's side of the peer handshake within
//! `handshake_timeout_ms`: it sends `Hello` with a fresh nonce, reads the acceptor's `Challenge`, checks its
//! proof and that the acceptor claims the very address dialed, and sends `Finish`; the frames that follow are
//! numbered from 0 and MACed under the session key (one `FrameCodec` per connection). It then drains its queue
//! into one buffer per write (at most `batch_bytes_max`, or a single larger frame). While idle it watches the
//! socket so a peer that closes or resets is noticed before the next write. Every failure is reported once as
//! `PeerLost`, with whatever was queued dropped (the node fails those requests over); the next message
//! reconnects (a new handshake, a new key) after the backoff. The task ends when the transport drops the
//! queue's sender.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::tls::is_tls_error;
use super::weight::weight;
use super::{nonce, PeerConfig, PeerStream, Shared, ToNode};
use crate::core::replication::codec::parts::Split;
use crate::core::replication::codec::LEN_BYTES;
use crate::core::replication::handshake::HANDSHAKE_BYTES_MAX;
use crate::core::replication::{Connector, Frame, FrameCodec, Greeting, PeerMsg};

/// Start the link to `peer`; returns the handle that queues messages for it.
pub(super) fn spawn(peer: SocketAddr, shared: Arc<Shared>) -> Handle {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(Queued::default());
    let backlog = Vec::new().into_iter();
    let link = Link {
        peer,
        shared,
        rx,
        backlog,
        queued: queued.clone(),
        conn: None,
        split: None,
        backoff: Backoff::default(),
    };
    tokio::spawn(link.run());
    Handle { tx, queued }
}

/// What a link's queue holds: messages and their estimated bytes. The handle adds before a batch becomes
/// visible to the link task, which subtracts each message as it takes it, so both bounds hold at all times.
#[derive(Debug, Default)]
struct Queued {
    msgs: AtomicUsize,
    bytes: AtomicUsize,
}

/// The transport's side of a link: its queue of message batches, bounded in messages and in estimated bytes.
pub(super) struct Handle {
    tx: mpsc::UnboundedSender<Vec<PeerMsg>>,
    queued: Arc<Queued>,
}

/// Whether one more message of `weight` bytes fits a queue holding `msgs` messages of `bytes` bytes; a message
/// larger than the byte bound still goes into an empty queue.
fn fits(msgs: usize, bytes: usize, weight: usize, config: &PeerConfig) -> bool {
    msgs < config.queue_frames_max.max(1) && (bytes == 0 || bytes + weight <= config.queue_bytes_max)
}

impl Handle {
    /// Queue the messages of `msgs` that fit, in order (each is checked against both bounds as if queued one
    /// by one), as one batch; returns how many did not fit. When the task is gone, gives back the messages not
    /// dropped, with how many were.
    pub(super) fn try_send(&self, mut msgs: Vec<PeerMsg>, config: &PeerConfig) -> Result<usize, (Vec<PeerMsg>, usize)> {
        // A task that is gone (it panicked) never takes its queue's messages off the counts: judged by them, a
        // queue it left full would drop every message and never reach the send below that notices the task gone.
        if self.tx.is_closed() {
            return Err((msgs, 0));
        }
        let (msgs_before, bytes_before) =
            (self.queued.msgs.load(Ordering::Relaxed), self.queued.bytes.load(Ordering::Relaxed));
        let (mut count, mut bytes) = (msgs_before, bytes_before);
        let offered = msgs.len();
        msgs.retain(|msg| {
            let w = weight(msg);
            let fit = fits(count, bytes, w, config);
            if fit {
                count += 1;
                bytes += w;
            }
            fit
        });
        let dropped = offered - msgs.len();
        if msgs.is_empty() {
            return Ok(dropped);
        }
        let (added_msgs, added_bytes) = (count - msgs_before, bytes - bytes_before);
        // Added before the batch is visible to the link task, which subtracts each message when it takes it.
        self.queued.msgs.fetch_add(added_msgs, Ordering::Relaxed);
        self.queued.bytes.fetch_add(added_bytes, Ordering::Relaxed);
        match self.tx.send(msgs) {
            Ok(()) => Ok(dropped),
            Err(mpsc::error::SendError(msgs)) => {
                self.queued.msgs.fetch_sub(added_msgs, Ordering::Relaxed);
                self.queued.bytes.fetch_sub(added_bytes, Ordering::Relaxed);
                Err((msgs, dropped))
            }
        }
    }
}

#[cfg(test)]
impl Handle {
    /// The handle of a link task that is gone, leaving `msgs` messages of `bytes` bytes counted as queued.
    pub(super) fn gone(msgs: usize, bytes: usize) -> Handle {
        let (tx, _) = mpsc::unbounded_channel();
        Handle { tx, queued: Arc::new(Queued { msgs: AtomicUsize::new(msgs), bytes: AtomicUsize::new(bytes) }) }
    }
}

/// An open, authenticated connection: we only write; reads exist to notice the peer closing.
struct Conn {
    rd: ReadHalf<Box<dyn PeerStream>>,
    wr: WriteHalf<Box<dyn PeerStream>>,
    /// Numbers and MACs this connection's frames under its session key.
    codec: FrameCodec,
}

struct Link {
    peer: SocketAddr,
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Vec<PeerMsg>>,
    /// The rest of the batch last taken from `rx`.
    backlog: std::vec::IntoIter<PeerMsg>,
    /// Messages and estimated bytes in `rx` and `backlog`: added by the handle, subtracted as messages are taken.
    queued: Arc<Queued>,
    conn: Option<Conn>,
    /// The message being written in parts on `conn`, if any: its remaining parts go before anything else.
    split: Option<Split>,
    backoff: Backoff,
}

impl Link {
    async fn run(mut self) {
        let mut buf = BytesMut::new();
        loop {
            // A message in parts is finished before the next one is taken (the receiver reassembles one at a time).
            let carried = self.split.is_some();
            let first = match carried {
                true => None,
                false => match self.next().await {
                    Some(msg) => Some(msg),
                    None => return,
                },
            };
            if self.conn.is_none() {
                self.backoff.wait().await;
                match self.connect().await {
                    Ok(conn) => {
                        self.conn = Some(conn);
                        self.backoff.succeeded();
                        self.shared.stats.connects.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        self.fail(1, &e).await;
                        continue;
                    }
                }
            }
            buf.clear();
            let frames = self.fill(first, &mut buf);
            if let Err(e) = self.write(&buf).await {
                // A message in parts started in an earlier batch is lost too (counted once, here).
                self.fail(frames + usize::from(carried && self.split.is_some()), &e).await;
                continue;
            }
            let stats = &self.shared.stats;
            stats.frames_sent.fetch_add(frames as u64, Ordering::Relaxed);
            stats.bytes_sent.fetch_add(buf.len() as u64, Ordering::Relaxed);
            if buf.capacity() > self.shared.config.batch_bytes_max * 2 {
                buf = BytesMut::new(); // Do not keep a huge one-off frame's buffer for the link's lifetime.
            }
        }
    }

    /// The next queued message; `None` when the transport is gone. While connected and idle, a peer that closes
    /// the connection is a failure (reported, then the wait goes on).
    async fn next(&mut self) -> Option<PeerMsg> {
        loop {
            if let Some(msg) = self.backlog.next() {
                return self.take(Some(msg));
            }
            let Some(conn) = &mut self.conn else {
                self.backlog = self.rx.recv().await?.into_iter();
                continue;
            };
            let mut scratch = [0u8; 64];
            let closed = tokio::select! {
                batch = self.rx.recv() => {
                    self.backlog = batch?.into_iter();
                    continue;
                }
                read = conn.rd.read(&mut scratch) => match read {
                    // A peer never writes on our link: data is ignored; EOF or an error means it is gone.
                    Ok(0) => std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                    Ok(_) => continue,
                    Err(e) => e,
                },
            };
            self.fail(0, &closed).await;
        }
    }

    /// Account for a message taken off the queue.
    fn take(&self, msg: Option<PeerMsg>) -> Option<PeerMsg> {
        if let Some(m) = &msg {
            self.queued.msgs.fetch_sub(1, Ordering::Relaxed);
            self.queued.bytes.fetch_sub(weight(m), Ordering::Relaxed);
        }
        msg
    }

    /// The next queued message if one is there now, without waiting.
    fn try_next(&mut self) -> Option<PeerMsg> {
        if self.backlog.len() == 0 {
            self.backlog = self.rx.try_recv().ok()?.into_iter();
        }
        let msg = self.backlog.next();
        self.take(msg)
    }

    /// Connect with a timeout, then run the handshake within its own timeout.
    async fn connect(&self) -> std::io::Result<Conn> {
        let config = &self.shared.config;
        let timeout = Duration::from_millis(config.connect_timeout_ms);
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(self.peer))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
        tcp.set_nodelay(true)?;
        if config.user_timeout_ms > 0 {
            set_user_timeout(&tcp, Duration::from_millis(config.user_timeout_ms))?;
        }
        let stats = &self.shared.stats;
        let mut stream: Box<dyn PeerStream> = match &config.tls {
            None => Box::new(tcp),
            Some(tls) => Box::new(tls.connect(tcp, self.peer, config.handshake_timeout_ms, stats).await?),
        };
        let timeout = Duration::from_millis(config.handshake_timeout_ms);
        let codec = match tokio::time::timeout(timeout, self.handshake(&mut stream)).await {
            Ok(Ok(codec)) => codec,
            // Under TLS 1.3 an acceptor that refuses our certificate says so in an alert read here.
            Ok(Err(e)) if is_tls_error(&e) => {
                stats.tls_handshakes_failed.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
            Ok(Err(e)) => {
                stats.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
            Err(_) => {
                stats.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out"));
            }
        };
        let (rd, wr) = tokio::io::split(stream);
        Ok(Conn { rd, wr, codec })
    }

    /// The connector's side of the handshake; returns the codec of the link's frames.
    async fn handshake(&self, stream: &mut Box<dyn PeerStream>) -> std::io::Result<FrameCodec> {
        let config = &self.shared.config;
        let me = Greeting { from: config.advertise, name: config.name.clone(), nonce: nonce()? };
        let (connector, hello) = Connector::new(config.secret.clone(), &me);
        // A TLS stream may hold written bytes until flushed.
        stream.write_all(&hello).await?;
        stream.flush().await?;
        let mut buf = BytesMut::with_capacity(LEN_BYTES + HANDSHAKE_BYTES_MAX);
        let accepted = loop {
            match connector.challenge(&mut buf) {
                Ok(Some(accepted)) => break accepted,
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            }
            // The challenge is at most a handshake frame: never read more than that.
            let room = (LEN_BYTES + HANDSHAKE_BYTES_MAX).saturating_sub(buf.len()) as u64;
            if (&mut *stream).take(room).read_buf(&mut buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        };
        if accepted.peer.from != self.peer {
            let why = format!("peer at {} says it is {} ({})", self.peer, accepted.peer.from, accepted.peer.name);
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
        }
        stream.write_all(&accepted.finish).await?;
        stream.flush().await?;
        Ok(FrameCodec::new(accepted.key)
            .with_frame_bytes_max(config.frame_bytes_max)
            .with_message_bytes_max(config.message_bytes_max))
    }

    /// Encode the rest of a message in parts, then `first` and whatever else is queued into `buf`, up to the
    /// batch size; returns the messages added (one in parts counts where it starts).
    fn fill(&mut self, first: Option<PeerMsg>, buf: &mut BytesMut) -> usize {
        let batch_bytes_max = self.shared.config.batch_bytes_max;
        let mut frames = first.map_or(0, |msg| usize::from(self.encode(msg, buf)));
        // Bounded: by the batch size, and by the queue's capacity so a fast producer cannot keep us here.
        for _ in 0..self.shared.config.queue_frames_max {
            if let (Some(split), Some(conn)) = (self.split.as_mut(), self.conn.as_mut()) {
                if conn.codec.encode_parts(split, buf, batch_bytes_max) == 0 {
                    break; // The batch is full; the parts go on in the next one.
                }
                self.split = None;
            }
            if buf.len() >= batch_bytes_max {
                break;
            }
            let Some(msg) = self.try_next() else { break };
            frames += usize::from(self.encode(msg, buf));
        }
        frames
    }

    /// Append one message's frame, or start writing it in parts when it is larger than a frame; a message
    /// beyond what the peer reassembles (`message_bytes_max`) is dropped, counted and logged.
    fn encode(&mut self, msg: PeerMsg, buf: &mut BytesMut) -> bool {
        let Some(conn) = self.conn.as_mut() else { return false };
        match conn.codec.encode_or_split(&Frame::Msg(msg), buf) {
            Ok(None) => true,
            Ok(Some(split)) => {
                self.shared.stats.messages_split.fetch_add(1, Ordering::Relaxed);
                self.split = Some(split);
                true
            }
            Err(e) => {
                self.shared.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                self.shared.stats.messages_too_large.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(peer = %self.peer, error = %e, "peer message dropped");
                false
            }
        }
    }

    /// Write one batch, bounded by the write timeout.
    async fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let Some(conn) = &mut self.conn else { return Err(std::io::ErrorKind::NotConnected.into()) };
        let timeout = Duration::from_millis(self.shared.config.write_timeout_ms);
        let write = async {
            conn.wr.write_all(buf).await?;
            conn.wr.flush().await // TLS holds what it could not write yet until flushed; TCP's flush does nothing.
        };
        tokio::time::timeout(timeout, write)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))?
    }

    /// The link failed with `in_hand` messages taken off the queue: close, drop them and everything queued,
    /// report `PeerLost` once, and back off before the next attempt.
    async fn fail(&mut self, in_hand: usize, error: &std::io::Error) {
        self.conn = None;
        self.split = None;
        let mut dropped = in_hand as u64;
        for _ in 0..self.shared.config.queue_frames_max {
            if self.try_next().is_none() {
                break;
            }
            dropped += 1;
        }
        let stats = &self.shared.stats;
        stats.frames_dropped.fetch_add(dropped, Ordering::Relaxed);
        stats.links_failed.fetch_add(1, Ordering::Relaxed);
        self.backoff.failed(&self.shared.config);
        tracing::debug!(peer = %self.peer, error = %error, dropped, "peer link lost");
        // The node task may be gone at shutdown; nothing to tell then.
        let _ = self.shared.to_node.send(ToNode::PeerLost { peer: self.peer }).await;
    }
}

/// When the next connect may start: after a failure, a wait that doubles per consecutive failure.
#[derive(Debug, Default)]
struct Backoff {
    not_before: Option<Instant>,
    delay_ms: u64,
}

impl Backoff {
    fn failed(&mut self, config: &super::PeerConfig) {
        self.delay_ms = match self.delay_ms {
            0 => config.backoff_ms_min,
            d => d.saturating_mul(2).min(config.backoff_ms_max),
        };
        self.not_before = Some(Instant::now() + Duration::from_millis(self.delay_ms));
    }

    fn succeeded(&mut self) {
        *self = Backoff::default();
    }

    async fn wait(&self) {
        if let Some(at) = self.not_before {
            tokio::time::sleep_until(at).await;
        }
    }
}

/// `TCP_USER_TIMEOUT` on `tcp` (`PeerConfig::user_timeout_ms`).
#[cfg(target_os = "linux")]
fn set_user_timeout(tcp: &TcpStream, timeout: Duration) -> std::io::Result<()> {
    socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(timeout))
}

/// Other systems keep their default (the option is Linux's).
#[cfg(not(target_os = "linux"))]
fn set_user_timeout(_tcp: &TcpStream, _timeout: Duration) -> std::io::Result<()> {
    Ok(())
}
