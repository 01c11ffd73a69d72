//! One client connection: read RESP requests, answer connection-level commands here, send data commands to the
//! node task in batches, and write replies back in request order.
//!
//! Replies can come back from the node out of request order relative to those answered here (PING between two
//! GETs), so every request gets a number and replies wait in a reorder window until all earlier ones are written.
//! The number of requests in flight is bounded: past the bound the connection stops reading until replies drain.
//!
//! Reading requests, taking replies from the node and writing them run side by side in one loop, so a client that
//! does not read never blocks the connection: its replies pile up in the write buffer, where they are counted
//! with those waiting in the reorder window against `client_output_buffer_bytes_max`; past it the client is
//! disconnected and counted, as Redis does. (The node's reply channel is drained into the window every turn.)
//! Unparsed input is held to `client_query_buffer_bytes_max`, requests before AUTH to the parser's pre-AUTH
//! bounds, and a client silent in both directions for `client_idle_timeout_ms` is closed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Sleep};

use super::node_task::{ReplyBatch, ToNode};
use super::session::{Session, Step};
use super::Shared;
use crate::core::command::Command;
use crate::core::reply::Reply;
use crate::core::{ConnId, ReqId};
use crate::resp::encode::encode;
use crate::resp::frame::RequestParser;

/// Replies waiting for earlier ones, indexed from the oldest unanswered request.
struct Window {
    first: ReqId,
    slots: VecDeque<Option<Reply>>,
    /// Estimated bytes of the replies held (`held_bytes`).
    bytes: usize,
}

impl Window {
    fn new() -> Window {
        Window { first: 0, slots: VecDeque::new(), bytes: 0 }
    }

    /// Reserve the next request number.
    fn open(&mut self) -> ReqId {
        self.slots.push_back(None);
        self.first + self.slots.len() as u64 - 1
    }

    fn fill(&mut self, req: ReqId, reply: Reply) {
        if let Some(slot) = req.checked_sub(self.first).and_then(|i| self.slots.get_mut(i as usize)) {
            if slot.is_none() {
                self.bytes += held_bytes(&reply);
                *slot = Some(reply);
            }
        }
    }

    /// Pop the replies that are ready in order.
    fn pop_ready(&mut self) -> Option<Reply> {
        if matches!(self.slots.front(), Some(Some(_))) {
            self.first += 1;
            let reply = self.slots.pop_front().flatten();
            self.bytes -= reply.as_ref().map_or(0, held_bytes);
            reply
        } else {
            None
        }
    }

    fn in_flight(&self) -> usize {
        self.slots.len()
    }
}

/// About how many bytes `reply` takes once encoded: exact for bulk data, a small allowance per header.
fn held_bytes(reply: &Reply) -> usize {
    const HEADER_BYTES: usize = 16;
    HEADER_BYTES
        + match reply {
            Reply::Simple(text) | Reply::Error(text) => text.len(),
            Reply::Bulk(data) => data.len(),
            Reply::Verbatim(text) => text.len(),
            Reply::Array(items) | Reply::Set(items) => items.iter().map(held_bytes).sum(),
            Reply::Map(pairs) => pairs.iter().map(|(k, v)| held_bytes(k) + held_bytes(v)).sum(),
            Reply::Ok | Reply::Int(_) | Reply::Nil | Reply::NilArray | Reply::Double(_) => 0,
        }
}

/// Longest the final flush of a closing connection may take.
const SHUTDOWN_FLUSH_MAX: Duration = Duration::from_secs(1);

/// Why a connection ended, when the server ended it for a limit.
enum Cut {
    /// More unparsed input than the query buffer limit.
    QueryBuffer(usize),
    /// More held replies than the output buffer limit.
    OutputBuffer(usize),
    /// Silent for the idle timeout.
    Idle,
}

/// Whether a connection goes on after a step, or ends (with the limit that cut it, if the server ended it for one).
type Flow = ControlFlow<Option<Cut>>;

/// Serve one accepted connection, given the two halves of its (plain or TLS) stream, until the client leaves,
/// QUIT, a protocol error, a limit, or shutdown.
pub async fn serve<R, W>(
    reader: R,
    writer: W,
    peer: SocketAddr,
    conn: ConnId,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, replies) = mpsc::unbounded_channel::<ReplyBatch>();
    if shared.to_node.send(ToNode::Open { conn, tx }).await.is_err() {
        return;
    }
    let mut c = Conn::new(reader, writer, replies, shutdown, peer, conn, shared);
    let idle_timer = tokio::time::sleep(c.idle);
    tokio::pin!(idle_timer);
    let cut = loop {
        if let ControlFlow::Break(cut) = c.turn(idle_timer.as_mut()).await {
            break cut;
        }
    };
    c.finish(cut).await;
}

/// One connection's streams, buffers, reorder window and limits, for the life of `serve`.
struct Conn<R, W> {
    reader: R,
    writer: W,
    /// Replies from the node task.
    replies: mpsc::UnboundedReceiver<ReplyBatch>,
    shutdown: watch::Receiver<bool>,
    peer: SocketAddr,
    conn: ConnId,
    shared: Arc<Shared>,
    session: Session,
    rbuf: BytesMut,
    wbuf: BytesMut,
    window: Window,
    parser: RequestParser,
    /// The request after whose reply the connection closes (QUIT, a protocol error).
    close_at: Option<ReqId>,
    /// The reply of `close_at` is encoded: close once the write buffer is empty.
    closing: bool,
    /// Bytes handed to the writer since its last flush (a TLS writer keeps records until flushed).
    unflushed: bool,
    max_in_flight: usize,
    query_max: usize,
    output_max: usize,
    idle: Duration,
    last_active: Instant,
}

impl<R, W> Conn<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    /// The state of a connection the node task has just been told about.
    fn new(
        reader: R,
        writer: W,
        replies: mpsc::UnboundedReceiver<ReplyBatch>,
        shutdown: watch::Receiver<bool>,
        peer: SocketAddr,
        conn: ConnId,
        shared: Arc<Shared>,
    ) -> Self {
        let session = Session::new(conn, peer.to_string(), shared.clone());
        let config = &shared.config;
        Conn {
            reader,
            writer,
            replies,
            shutdown,
            peer,
            conn,
            session,
            rbuf: BytesMut::with_capacity(16 * 1024),
            wbuf: BytesMut::with_capacity(16 * 1024),
            window: Window::new(),
            parser: RequestParser::new(),
            close_at: None,
            closing: false,
            unflushed: false,
            max_in_flight: config.pending_requests_max,
            query_max: config.client_query_buffer_bytes_max,
            output_max: config.client_output_buffer_bytes_max,
            idle: Duration::from_millis(config.client_idle_timeout_ms),
            last_active: Instant::now(),
            shared,
        }
    }

    /// One turn: wait for the first of shutdown, the writer, the node's replies, the reader and the idle timer
    /// (in that order of priority), handle it, then move the replies that are ready to the write buffer.
    async fn turn(&mut self, mut idle_timer: Pin<&mut Sleep>) -> Flow {
        let can_read = self.close_at.is_none() && self.window.in_flight() < self.max_in_flight;
        // At most one byte past the query buffer limit is read: enough to tell that it was exceeded.
        let room = self.query_max.saturating_add(1).saturating_sub(self.rbuf.len()).max(1);
        let mut reading = (&mut self.rbuf).limit(room);
        tokio::select! {
            biased;
            _ = self.shutdown.changed() => return ControlFlow::Break(None),
            out = drain(&mut self.writer, &self.wbuf), if !self.wbuf.is_empty() || self.unflushed => self.wrote(out)?,
            got = self.replies.recv() => self.take_replies(got)?,
            read = self.reader.read_buf(&mut reading), if can_read => self.received(read).await?,
            _ = idle_timer.as_mut(), if !self.idle.is_zero() => self.idle_fired(idle_timer)?,
        }
        self.encode_ready()
    }

    /// Note activity for the idle timeout (when there is one).
    fn touch(&mut self) {
        if !self.idle.is_zero() {
            self.last_active = Instant::now();
        }
    }

    /// The writer wrote `out` bytes of the write buffer (0: flushed it); an error or a closed writer ends.
    fn wrote(&mut self, out: std::io::Result<usize>) -> Flow {
        match out {
            Err(_) => return ControlFlow::Break(None),
            Ok(0) if !self.wbuf.is_empty() => return ControlFlow::Break(None),
            Ok(0) => self.unflushed = false,
            Ok(n) => {
                self.wbuf.advance(n);
                self.unflushed = true;
                self.touch();
            }
        }
        if self.wbuf.is_empty() && self.wbuf.capacity() > 1 << 20 {
            self.wbuf = BytesMut::with_capacity(16 * 1024);
        }
        ControlFlow::Continue(())
    }

    /// A batch of replies from the node goes into the reorder window; a closed channel ends the connection.
    fn take_replies(&mut self, got: Option<ReplyBatch>) -> Flow {
        let Some(batch) = got else { return ControlFlow::Break(None) };
        for (req, reply) in batch {
            self.window.fill(req, reply);
        }
        ControlFlow::Continue(())
    }

    /// The reader added to the read buffer: parse what is complete, send its data commands to the node, and cut
    /// a client past the query buffer limit. End of stream or an error ends the connection.
    async fn received(&mut self, read: std::io::Result<usize>) -> Flow {
        match read {
            Ok(0) | Err(_) => return ControlFlow::Break(None),
            Ok(_) => {}
        }
        self.touch();
        let batch = self.parse_requests();
        if !batch.is_empty()
            && self
                .shared
                .to_node
                .send(ToNode::Batch { conn: self.conn, levels: self.session.levels(), cmds: batch })
                .await
                .is_err()
        {
            return ControlFlow::Break(None);
        }
        if self.close_at.is_none() && self.rbuf.len() > self.query_max {
            return ControlFlow::Break(Some(Cut::QueryBuffer(self.rbuf.len())));
        }
        ControlFlow::Continue(())
    }

    /// Parse every complete request in the read buffer, each under the next request number: connection-level
    /// ones are answered into the window, data commands are returned for the node. Parsing stops after a
    /// request that closes the connection (QUIT) or a protocol error, whose reply is the last.
    fn parse_requests(&mut self) -> Vec<(ReqId, Command)> {
        let mut batch: Vec<(ReqId, Command)> = Vec::new();
        let mut parsed = 0u64;
        loop {
            match self.parser.parse_as(&mut self.rbuf, &self.shared.config.limits, self.session.access()) {
                Ok(Some(args)) if args.is_empty() => continue,
                Ok(Some(args)) => {
                    parsed += 1;
                    let req = self.window.open();
                    match self.session.handle(args) {
                        Step::Reply(r) => self.window.fill(req, r),
                        Step::Data(cmd) => batch.push((req, cmd)),
                        Step::ReplyThenClose(r) => {
                            self.window.fill(req, r);
                            self.close_at = Some(req);
                            break;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let req = self.window.open();
                    self.window.fill(req, Reply::error(format!("ERR {e}")));
                    self.close_at = Some(req);
                    break;
                }
            }
        }
        self.shared.stats.count_commands(parsed);
        batch
    }

    /// The idle timer fired: end a connection idle for the whole timeout with nothing in flight, else re-arm it.
    fn idle_fired(&self, idle_timer: Pin<&mut Sleep>) -> Flow {
        if self.last_active.elapsed() >= self.idle && self.window.in_flight() == 0 {
            return ControlFlow::Break(Some(Cut::Idle));
        }
        // Not idle yet (or waiting for the node): look again when it could be.
        let now = Instant::now();
        let next = self.last_active + self.idle;
        idle_timer.reset(if next > now { next } else { now + self.idle });
        ControlFlow::Continue(())
    }

    /// After every turn: encode the replies that are ready in order, cut a client past the output buffer limit,
    /// end once the last reply before a close is written, and give back a large idle read buffer.
    fn encode_ready(&mut self) -> Flow {
        while let Some(reply) = self.window.pop_ready() {
            encode(&reply, self.session.protocol(), &mut self.wbuf);
            self.closing |= self.close_at.is_some_and(|at| self.window.first > at);
        }
        let held = self.wbuf.len() + self.window.bytes;
        if self.output_max > 0 && held > self.output_max {
            return ControlFlow::Break(Some(Cut::OutputBuffer(held)));
        }
        if self.closing && self.wbuf.is_empty() {
            return ControlFlow::Break(None);
        }
        if self.rbuf.capacity() > 4 << 20 && self.rbuf.is_empty() {
            self.rbuf = BytesMut::with_capacity(16 * 1024);
        }
        ControlFlow::Continue(())
    }

    /// Close the connection: count a cut, flush and shut the writer down, and tell the node and the session.
    async fn finish(mut self, cut: Option<Cut>) {
        if let Some(cut) = cut {
            count_cut(&self.shared, &cut, self.peer);
        }
        // Flushes what is written (a TLS close_notify too), but never waits long on a client that does not read.
        let _ = tokio::time::timeout(SHUTDOWN_FLUSH_MAX, self.writer.shutdown()).await;
        let _ = self.shared.to_node.send(ToNode::Close { conn: self.conn }).await;
        self.session.close();
    }
}

/// Write some of `wbuf` (how much was written), or flush when it is empty (0).
async fn drain<W: AsyncWrite + Unpin>(writer: &mut W, wbuf: &[u8]) -> std::io::Result<usize> {
    if wbuf.is_empty() {
        writer.flush().await.map(|()| 0)
    } else {
        writer.write(wbuf).await
    }
}

/// Count and log a connection the server cut for a limit.
fn count_cut(shared: &Shared, cut: &Cut, peer: SocketAddr) {
    let stats = &shared.stats;
    let count = |counter: &AtomicU64| counter.fetch_add(1, Ordering::Relaxed);
    match *cut {
        Cut::QueryBuffer(bytes) => {
            count(&stats.query_buffer_disconnections);
            tracing::warn!(%peer, bytes, limit = shared.config.client_query_buffer_bytes_max, "closing client: query buffer limit reached");
        }
        Cut::OutputBuffer(bytes) => {
            count(&stats.output_buffer_disconnections);
            tracing::warn!(%peer, bytes, limit = shared.config.client_output_buffer_bytes_max, "closing client: output buffer limit reached");
        }
        Cut::Idle => {
            count(&stats.idle_timeouts);
            tracing::debug!(%peer, timeout_ms = shared.config.client_idle_timeout_ms, "closing idle client");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_releases_replies_in_request_order() {
        let mut w = Window::new();
        let a = w.open();
        let b = w.open();
        let c = w.open();
        w.fill(c, Reply::Int(3));
        w.fill(a, Reply::Int(1));
        assert_eq!(w.pop_ready(), Some(Reply::Int(1)));
        assert_eq!(w.pop_ready(), None);
        w.fill(b, Reply::Int(2));
        assert_eq!(w.pop_ready(), Some(Reply::Int(2)));
        assert_eq!(w.pop_ready(), Some(Reply::Int(3)));
        assert_eq!(w.in_flight(), 0);
        w.fill(99, Reply::Nil);
        assert_eq!(w.pop_ready(), None);
        assert_eq!(w.bytes, 0);
    }

    #[test]
    fn window_counts_the_bytes_it_holds() {
        let mut w = Window::new();
        let a = w.open();
        let b = w.open();
        w.fill(b, Reply::Bulk(bytes::Bytes::from(vec![0u8; 1000])));
        w.fill(b, Reply::Int(1));
        assert_eq!(w.bytes, 1016, "a second reply for a filled slot is ignored");
        w.fill(a, Reply::Array(vec![Reply::bulk(b"abc"), Reply::Nil]));
        assert_eq!(w.bytes, 1016 + 16 + 19 + 16);
        assert!(w.pop_ready().is_some());
        assert_eq!(w.bytes, 1016);
        assert!(w.pop_ready().is_some());
        assert_eq!(w.bytes, 0);
    }
}
