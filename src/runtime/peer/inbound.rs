//! Inbound peer connections: the listener, and one task per connection that reads frames for the node.
//!
//! A connection must open with `Hello` within `hello_timeout_ms`; every later frame must be a message, which goes
//! to the node task as `ToNode::Peer` (several decoded from one read go together as `ToNode::Peers`) from the
//! address the `Hello` named. Any bad frame (too large, bad version, bad check, undecodable, a second `Hello`)
//! closes that connection only, and is counted and logged at debug.
//! Handing a message over waits for room in the node task's queue: a busy node slows its peers' links through
//! TCP flow control (their queues fill and drop) instead of buffering without bound here.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use super::{Shared, ToNode};
use crate::core::replication::Frame;

/// Bytes reserved in the read buffer before each read.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Most messages handed to the node task in one queue item (the node's queue is bounded in items).
const HANDOVER_MSGS_MAX: usize = 64;

/// Accept connections until shutdown, each served by its own task (at most `inbound_max` at once).
pub(super) async fn accept(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(shared.config.inbound_max.max(1)));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        tracing::debug!(%remote, "peer connection refused: too many inbound connections");
                        continue;
                    };
                    let (shared, shutdown) = (shared.clone(), shutdown.clone());
                    tokio::spawn(async move {
                        serve(stream, remote, shared, shutdown).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Out of file descriptors must not end the listener: log, back off, go on.
                    tracing::warn!(error = %e, "peer accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

/// Why a connection ended.
enum End {
    /// The peer closed it, or the node or the server is stopping.
    Closed,
    /// A protocol violation.
    Bad(String),
}

/// Serve one connection until it closes or misbehaves.
async fn serve(mut stream: TcpStream, remote: SocketAddr, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let mut buf = BytesMut::new();
    let hello_timeout = Duration::from_millis(shared.config.hello_timeout_ms);
    let end = match tokio::time::timeout(hello_timeout, hello(&mut stream, &mut buf, &shared)).await {
        Err(_) => End::Bad("no hello in time".into()),
        Ok(Err(end)) => end,
        Ok(Ok(from)) => {
            tracing::debug!(%remote, %from, "peer connected");
            tokio::select! {
                end = messages(&mut stream, &mut buf, from, &shared) => end,
                _ = shutdown.wait_for(|stop| *stop) => End::Closed,
            }
        }
    };
    if let End::Bad(why) = end {
        shared.stats.frames_bad.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%remote, reason = %why, "peer connection closed: bad frame");
    }
}

/// Read the opening `Hello`; returns the sender's cluster address.
async fn hello(stream: &mut TcpStream, buf: &mut BytesMut, shared: &Shared) -> Result<SocketAddr, End> {
    loop {
        match shared.codec.decode(buf) {
            Ok(Some(Frame::Hello { from, .. })) => return Ok(from),
            Ok(Some(Frame::Msg(_))) => return Err(End::Bad("message before hello".into())),
            Ok(None) => fill(stream, buf, shared).await?,
            Err(e) => return Err(End::Bad(e.to_string())),
        }
    }
}

/// Hand every message to the node task until the connection ends: all the frames one read completed go over in
/// one queue item (at most `HANDOVER_MSGS_MAX`), so a burst costs the node task one wake-up, not one per message.
async fn messages(stream: &mut TcpStream, buf: &mut BytesMut, from: SocketAddr, shared: &Shared) -> End {
    let mut msgs = Vec::new();
    loop {
        let mut end = None;
        let mut drained = false;
        while msgs.len() < HANDOVER_MSGS_MAX {
            match shared.codec.decode(buf) {
                Ok(Some(Frame::Msg(msg))) => msgs.push(msg),
                Ok(Some(Frame::Hello { .. })) => end = Some(End::Bad("second hello".into())),
                Ok(None) => drained = true,
                Err(e) => end = Some(End::Bad(e.to_string())),
            }
            if end.is_some() || drained {
                break;
            }
        }
        // Messages before a bad frame are delivered, as they would have been one by one.
        if !msgs.is_empty() {
            shared.stats.frames_received.fetch_add(msgs.len() as u64, Ordering::Relaxed);
            let item = match msgs.len() {
                1 => ToNode::Peer { from, msg: msgs.pop().expect("one") },
                _ => ToNode::Peers { from, msgs: std::mem::take(&mut msgs) },
            };
            if shared.to_node.send(item).await.is_err() {
                return End::Closed;
            }
        }
        if let Some(end) = end {
            return end;
        }
        if drained {
            if let Err(end) = fill(stream, buf, shared).await {
                return end;
            }
        }
    }
}

/// Read more bytes into `buf`; `Err(End::Closed)` at EOF or on a socket error.
async fn fill(stream: &mut TcpStream, buf: &mut BytesMut, shared: &Shared) -> Result<(), End> {
    buf.reserve(READ_CHUNK_BYTES);
    match stream.read_buf(buf).await {
        Ok(0) | Err(_) => Err(End::Closed),
        Ok(n) => {
            shared.stats.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
            Ok(())
        }
    }
}
