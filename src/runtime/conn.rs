//! One client connection: read RESP requests, answer connection-level commands here, send data commands to the
//! node task in batches, and write replies back in request order.
//!
//! Replies can come back from the node out of request order relative to those answered here (PING between two
//! GETs), so every request gets a number and replies wait in a reorder window until all earlier ones are written.
//! The number of requests in flight is bounded: past the bound the connection stops reading until replies drain.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

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
}

impl Window {
    fn new() -> Window {
        Window { first: 0, slots: VecDeque::new() }
    }

    /// Reserve the next request number.
    fn open(&mut self) -> ReqId {
        self.slots.push_back(None);
        self.first + self.slots.len() as u64 - 1
    }

    fn fill(&mut self, req: ReqId, reply: Reply) {
        if let Some(slot) = req.checked_sub(self.first).and_then(|i| self.slots.get_mut(i as usize)) {
            *slot = Some(reply);
        }
    }

    /// Pop the replies that are ready in order.
    fn pop_ready(&mut self) -> Option<Reply> {
        if matches!(self.slots.front(), Some(Some(_))) {
            self.first += 1;
            self.slots.pop_front().flatten()
        } else {
            None
        }
    }

    fn in_flight(&self) -> usize {
        self.slots.len()
    }
}

/// Serve one accepted connection until the client leaves, QUIT, a protocol error, or shutdown.
pub async fn serve(mut socket: TcpStream, conn: ConnId, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let _ = socket.set_nodelay(true);
    let peer = socket.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let (tx, mut replies) = mpsc::unbounded_channel::<ReplyBatch>();
    if shared.to_node.send(ToNode::Open { conn, tx }).await.is_err() {
        return;
    }
    let mut session = Session::new(conn, peer, shared.clone());
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let mut wbuf = BytesMut::with_capacity(16 * 1024);
    let mut window = Window::new();
    let mut parser = RequestParser::new();
    let mut close_at: Option<ReqId> = None;
    let max_in_flight = shared.config.pending_requests_max;
    'conn: loop {
        let can_read = close_at.is_none() && window.in_flight() < max_in_flight;
        tokio::select! {
            read = socket.read_buf(&mut rbuf), if can_read => {
                match read {
                    Ok(0) | Err(_) => break 'conn,
                    Ok(_) => {}
                }
                let mut batch: Vec<(ReqId, Command)> = Vec::new();
                let mut parsed = 0u64;
                loop {
                    match parser.parse(&mut rbuf, &shared.config.limits) {
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
                    break 'conn;
                }
            }
            got = replies.recv() => {
                let Some(batch) = got else { break 'conn };
                for (req, reply) in batch {
                    window.fill(req, reply);
                }
            }
            _ = shutdown.changed() => break 'conn,
        }
        let mut last_written: Option<ReqId> = None;
        while let Some(reply) = window.pop_ready() {
            encode(&reply, session.protocol(), &mut wbuf);
            last_written = Some(window.first - 1);
        }
        if !wbuf.is_empty() {
            if socket.write_all(&wbuf).await.is_err() {
                break 'conn;
            }
            wbuf.clear();
            if wbuf.capacity() > 1 << 20 {
                wbuf = BytesMut::with_capacity(16 * 1024);
            }
        }
        if close_at.is_some() && last_written.is_some_and(|w| Some(w) >= close_at) {
            break 'conn;
        }
        if rbuf.capacity() > 4 << 20 && rbuf.is_empty() {
            rbuf = BytesMut::with_capacity(16 * 1024);
        }
    }
    let _ = socket.shutdown().await;
    let _ = shared.to_node.send(ToNode::Close { conn }).await;
    session.close();
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
    }
}
