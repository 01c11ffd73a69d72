//! Inbound peer connections: the listener, and one task per connection that authenticates it and then reads
//! frames for the node.
//!
//! With `--tls-cluster` a connection first completes a TLS handshake (`super::tls`: a client certificate chained
//! to the cluster CA is required) within `handshake_timeout_ms`, holding its `handshakes_max` permit; a failure
//! closes it, counted in `tls_handshakes_failed`, before a byte of the peer handshake is read.
//! A connection then runs the acceptor's side of the peer handshake (`core::replication::handshake`): it reads the
//! connector's `Hello`, answers a `Challenge` with a fresh nonce and its proof, and checks the connector's
//! `Finish`, all within `handshake_timeout_ms` (else closed and counted in `handshake_timeouts`). Until then it
//! buffers at most `PREAUTH_BYTES_MAX` bytes, and a length prefix beyond `HANDSHAKE_BYTES_MAX` (a 1 MB
//! "handshake", an HTTP request, anything that is not a peer) closes it at once; at most `handshakes_max`
//! connections are in handshake at once (more are closed at once and counted in `handshakes_refused`). Every
//! failed handshake (malformed, wrong version, a secret on one side only, a bad proof) is counted in
//! `handshakes_failed`. No message is decoded before the handshake completes.
//!
//! After it, every frame must be the next message of the link under its session key: it goes to the node task
//! as `ToNode::Peer` (several decoded from one read go together as `ToNode::Peers`) with the address and name
//! the handshake established. A frame that does not verify (forged, or spliced from another link) is counted
//! in `frames_forged`, a verified one with an old sequence number in `frames_replayed`, one ahead of it in
//! `frames_reordered`, any other bad frame (too large, bad version, undecodable) in `frames_bad`; each closes
//! that connection only and is logged at debug.
//! Handing a message over waits for room in the node task's queue: a busy node slows its peers' links through
//! TCP flow control (their queues fill and drop) instead of buffering without bound here.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::{nonce, PeerStream, Shared, ToNode};
use crate::core::replication::codec::LEN_BYTES;
use crate::core::replication::handshake::HANDSHAKE_BYTES_MAX;
use crate::core::replication::{Acceptor, DecodeError, Frame, FrameCodec, Greeting, HandshakeError};

/// Bytes reserved in the read buffer before each read, once authenticated.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Most bytes an inbound connection may buffer before its handshake completes: a few handshake frames.
pub const PREAUTH_BYTES_MAX: usize = 4 * 1024;
// Room for a whole hello and finish (and the first message bytes a connector sends right after), no more.
const _: () = assert!(PREAUTH_BYTES_MAX >= 2 * (LEN_BYTES + HANDSHAKE_BYTES_MAX) && PREAUTH_BYTES_MAX <= 8 * 1024);
/// Most messages handed to the node task in one queue item (the node's queue is bounded in items).
const HANDOVER_MSGS_MAX: usize = 64;

/// Accept connections until shutdown, each served by its own task (at most `inbound_max` at once, at most
/// `handshakes_max` of them in handshake).
pub(super) async fn accept(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(shared.config.inbound_max.max(1)));
    let handshakes = Arc::new(Semaphore::new(shared.config.handshakes_max.max(1)));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        tracing::debug!(%remote, "peer connection refused: too many inbound connections");
                        continue;
                    };
                    let Ok(handshake) = handshakes.clone().try_acquire_owned() else {
                        shared.stats.handshakes_refused.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%remote, "peer connection refused: too many handshakes at once");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let (shared, shutdown) = (shared.clone(), shutdown.clone());
                    tokio::spawn(async move {
                        match shared.config.tls.clone() {
                            None => serve(stream, remote, shared, handshake, shutdown).await,
                            Some(tls) => {
                                let timeout_ms = shared.config.handshake_timeout_ms;
                                if let Some(stream) = tls.accept(stream, remote, timeout_ms, &shared.stats).await {
                                    serve(stream, remote, shared, handshake, shutdown).await;
                                }
                            }
                        }
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
    /// The handshake failed.
    Handshake(HandshakeError),
    /// The handshake did not finish in time.
    Timeout,
    /// A bad message frame after the handshake.
    Frame(DecodeError),
}

/// Serve one connection until it closes or misbehaves; `handshake` is released once it is authenticated.
async fn serve<S: PeerStream>(
    mut stream: S,
    remote: SocketAddr,
    shared: Arc<Shared>,
    handshake: OwnedSemaphorePermit,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = BytesMut::new();
    let timeout = Duration::from_millis(shared.config.handshake_timeout_ms);
    let end = match tokio::time::timeout(timeout, authenticate(&mut stream, &mut buf, &shared)).await {
        Err(_) => End::Timeout,
        Ok(Err(end)) => end,
        Ok(Ok((peer, codec))) => {
            drop(handshake);
            tracing::debug!(%remote, from = %peer.from, name = %peer.name, "peer connected");
            let name: Arc<str> = Arc::from(peer.name);
            tokio::select! {
                end = messages(&mut stream, &mut buf, peer.from, name, codec, &shared) => end,
                _ = shutdown.wait_for(|stop| *stop) => End::Closed,
            }
        }
    };
    let stats = &shared.stats;
    match end {
        End::Closed => {}
        End::Timeout => {
            stats.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%remote, "peer connection closed: no handshake in time");
        }
        End::Handshake(e) => {
            stats.handshakes_failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%remote, error = %e, "peer connection closed: handshake failed");
        }
        End::Frame(e) => {
            stats.frame_rejected(&e);
            tracing::debug!(%remote, error = %e, "peer connection closed: bad frame");
        }
    }
}

/// The acceptor's side of the handshake; returns the connector's identity and the codec of its frames. Bytes
/// after its `Finish` stay in `buf`.
async fn authenticate<S: PeerStream>(
    stream: &mut S,
    buf: &mut BytesMut,
    shared: &Shared,
) -> Result<(Greeting, FrameCodec), End> {
    let config = &shared.config;
    let me = Greeting { from: config.advertise, name: config.name.clone(), nonce: nonce().map_err(|_| End::Closed)? };
    let mut acceptor = Acceptor::new(config.secret.clone(), me);
    let (peer, challenge) = loop {
        match acceptor.hello(buf).map_err(End::Handshake)? {
            Some(done) => break done,
            None => fill_preauth(stream, buf, shared).await?,
        }
    };
    // A TLS stream may hold written bytes until flushed.
    stream.write_all(&challenge).await.map_err(|_| End::Closed)?;
    stream.flush().await.map_err(|_| End::Closed)?;
    let key = loop {
        match acceptor.finish(buf).map_err(End::Handshake)? {
            Some(key) => break key,
            None => fill_preauth(stream, buf, shared).await?,
        }
    };
    let codec = FrameCodec::new(key)
        .with_frame_bytes_max(config.frame_bytes_max)
        .with_message_bytes_max(config.message_bytes_max);
    Ok((peer, codec))
}

/// Hand every message to the node task until the connection ends: all the frames one read completed go over in
/// one queue item (at most `HANDOVER_MSGS_MAX`), so a burst costs the node task one wake-up, not one per message.
async fn messages<S: PeerStream>(
    stream: &mut S,
    buf: &mut BytesMut,
    from: SocketAddr,
    name: Arc<str>,
    mut codec: FrameCodec,
    shared: &Shared,
) -> End {
    let mut msgs = Vec::new();
    loop {
        let mut end = None;
        let mut drained = false;
        while msgs.len() < HANDOVER_MSGS_MAX {
            match codec.decode(buf) {
                Ok(Some(Frame::Msg(msg))) => msgs.push(msg),
                Ok(None) => drained = true,
                Err(e) => end = Some(End::Frame(e)),
            }
            if end.is_some() || drained {
                break;
            }
        }
        // Messages before a bad frame are delivered, as they would have been one by one.
        if !msgs.is_empty() {
            shared.stats.frames_received.fetch_add(msgs.len() as u64, Ordering::Relaxed);
            let item = match msgs.len() {
                1 => ToNode::Peer { from, name: name.clone(), msg: msgs.pop().expect("one") },
                _ => ToNode::Peers { from, name: name.clone(), msgs: std::mem::take(&mut msgs) },
            };
            if shared.to_node.send(item).await.is_err() {
                return End::Closed;
            }
        }
        if let Some(end) = end {
            return end;
        }
        if drained {
            buf.reserve(READ_CHUNK_BYTES);
            if let Err(end) = fill(stream, buf, shared).await {
                return end;
            }
        }
    }
}

/// Read more bytes into `buf` before authentication, never holding more than `PREAUTH_BYTES_MAX`.
async fn fill_preauth<S: PeerStream>(stream: &mut S, buf: &mut BytesMut, shared: &Shared) -> Result<(), End> {
    let room = PREAUTH_BYTES_MAX.saturating_sub(buf.len());
    if room == 0 {
        return Err(End::Handshake(HandshakeError::Malformed("more than PREAUTH_BYTES_MAX before authentication")));
    }
    buf.reserve(room);
    let mut limited = (&mut *stream).take(room as u64);
    match limited.read_buf(buf).await {
        Ok(0) | Err(_) => Err(End::Closed),
        Ok(n) => {
            shared.stats.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
            Ok(())
        }
    }
}

/// Read more bytes into `buf`; `Err(End::Closed)` at EOF or on a socket error.
async fn fill<S: PeerStream>(stream: &mut S, buf: &mut BytesMut, shared: &Shared) -> Result<(), End> {
    match stream.read_buf(buf).await {
        Ok(0) | Err(_) => Err(End::Closed),
        Ok(n) => {
            shared.stats.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
            Ok(())
        }
    }
}
