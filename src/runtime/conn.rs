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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

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

/// Serve one accepted connection, given the two halves of its (plain or TLS) stream, until the client leaves,
/// QUIT, a protocol error, a limit, or shutdown.
pub async fn serve<R, W>(
    mut reader: R,
    mut writer: W,
    peer: SocketAddr,
    conn: ConnId,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut replies) = mpsc::unbounded_channel::<ReplyBatch>();
    if shared.to_node.send(ToNode::Open { conn, tx }).await.is_err() {
        return;
    }
    let mut session = Session::new(conn, peer.to_string(), shared.clone());
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let mut wbuf = BytesMut::with_capacity(16 * 1024);
    let mut window = Window::new();
    let mut parser = RequestParser::new();
    let mut close_at: Option<ReqId> = None;
    let mut closing = false;
    // Bytes handed to the writer since its last flush (a TLS writer keeps records until flushed).
    let mut unflushed = false;
    let config = &shared.config;
    let max_in_flight = config.pending_requests_max;
    let query_max = config.client_query_buffer_bytes_max;
    let output_max = config.client_output_buffer_bytes_max;
    let idle = Duration::from_millis(config.client_idle_timeout_ms);
    let mut last_active = Instant::now();
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    let cut = 'conn: loop {
        let can_read = close_at.is_none() && window.in_flight() < max_in_flight;
        // At most one byte past the query buffer limit is read: enough to tell that it was exceeded.
        let room = query_max.saturating_add(1).saturating_sub(rbuf.len()).max(1);
        let mut reading = (&mut rbuf).limit(room);
        tokio::select! {
            biased;
            _ = shutdown.changed() => break 'conn None,
            out = drain(&mut writer, &wbuf), if !wbuf.is_empty() || unflushed => {
                match out {
                    Err(_) => break 'conn None,
                    Ok(0) if !wbuf.is_empty() => break 'conn None,
                    Ok(0) => unflushed = false,
                    Ok(n) => {
                        wbuf.advance(n);
                        unflushed = true;
                        if !idle.is_zero() {
                            last_active = Instant::now();
                        }
                    }
                }
                if wbuf.is_empty() && wbuf.capacity() > 1 << 20 {
                    wbuf = BytesMut::with_capacity(16 * 1024);
                }
            }
            got = replies.recv() => {
                let Some(batch) = got else { break 'conn None };
                for (req, reply) in batch {
                    window.fill(req, reply);
                }
            }
            read = reader.read_buf(&mut reading), if can_read => {
                match read {
                    Ok(0) | Err(_) => break 'conn None,
                    Ok(_) => {}
                }
                if !idle.is_zero() {
                    last_active = Instant::now();
                }
                let mut batch: Vec<(ReqId, Command)> = Vec::new();
                let mut parsed = 0u64;
                loop {
                    match parser.parse_as(&mut rbuf, &config.limits, session.access()) {
                        Ok(Some(args)) if args.is_empty() => continue,
                        Ok(Some(args)) => {
                            parsed += 1;
                            let req = window.open();
                            match session.handle(args) {
                                Step::Reply(r) => window.fill(req, r),
                                Step::Data(cmd) => batch.push((req, cmd)),
                                Step::ReplyThenClose(r) => {
                                    window.fill(req, r);
                                    close_at = Some(req);
                                    break;
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let req = window.open();
                            window.fill(req, Reply::error(format!("ERR {e}")));
                            close_at = Some(req);
                            break;
                        }
                    }
                }
                shared.stats.count_commands(parsed);
                if !batch.is_empty() && shared.to_node.send(ToNode::Batch { conn, levels: session.levels(), cmds: batch }).await.is_err() {
                    break 'conn None;
                }
                if close_at.is_none() && rbuf.len() > query_max {
                    break 'conn Some(Cut::QueryBuffer(rbuf.len()));
                }
            }
            _ = &mut idle_timer, if !idle.is_zero() => {
                if last_active.elapsed() >= idle && window.in_flight() == 0 {
                    break 'conn Some(Cut::Idle);
                }
                // Not idle yet (or waiting for the node): look again when it could be.
                let now = Instant::now();
                let next = last_active + idle;
                idle_timer.as_mut().reset(if next > now { next } else { now + idle });
            }
        }
        while let Some(reply) = window.pop_ready() {
            encode(&reply, session.protocol(), &mut wbuf);
            closing |= close_at.is_some_and(|at| window.first > at);
        }
        let held = wbuf.len() + window.bytes;
        if output_max > 0 && held > output_max {
            break 'conn Some(Cut::OutputBuffer(held));
        }
        if closing && wbuf.is_empty() {
            break 'conn None;
        }
        if rbuf.capacity() > 4 << 20 && rbuf.is_empty() {
            rbuf = BytesMut::with_capacity(16 * 1024);
        }
    };
    if let Some(cut) = cut {
        count_cut(&shared, &cut, peer);
    }
    // Flushes what is written (a TLS close_notify too), but never waits long on a client that does not read.
    let _ = tokio::time::timeout(SHUTDOWN_FLUSH_MAX, writer.shutdown()).await;
    let _ = shared.to_node.send(ToNode::Close { conn }).await;
    session.close();
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
