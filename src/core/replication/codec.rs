//! Peer frames: how `PeerMsg`s travel on the TCP data path between nodes.
//!
//! A frame is `[len: u32 BE][version: u8][check][body]`, where `len` counts every byte after itself, `version`
//! is `FRAME_VERSION` (2), and `body` is `[tag: u8][payload]`. The hot messages of the write and read paths
//! (`Put`, `PutAck`, `Get`, `GetReply`, `Forward` of GET or SET, `ForwardReply` of a flat reply) have a
//! hand-written payload under their own tag (see `hot`: varints, length-prefixed bytes, no field or variant
//! names); every other frame is tag 0 followed by the rmp-serde (compact) encoding of the `Frame`. Version 1
//! (the whole body in rmp-serde, which spells out variant names) is refused as `DecodeError::Version`, like
//! any other unknown version, so a mixed-version cluster closes the connection and counts a bad frame rather
//! than misreading it. Without a cluster secret the
//! check is the crc32 of the body (4 bytes, big endian): it catches corruption, not forgery. With a secret it
//! is HMAC-SHA256 over `version || body`, truncated to `auth::TAG_BYTES` (16) bytes, the same key and tag
//! length as the gossip envelope: 128 bits leave no room for online forgery, whereas 32 bits could be guessed
//! by an attacker who opens connections in a loop (each failed guess only costs it a reconnect); the 12 extra
//! bytes are nothing next to a batch of entries. A node with a secret refuses plain frames and the reverse
//! (their checks do not verify). There is no replay protection, as for gossip: a replayed frame carries
//! entries and acknowledgements that merge idempotently.
//!
//! Decoding never trusts the peer: the length is checked against `frame_bytes_max` before anything is read or
//! buffered beyond it, the check before the body is parsed, nesting is capped (`BODY_DEPTH_MAX`), counts are
//! checked against the bytes left before anything is allocated, trailing bytes are refused, and nothing panics. A partial frame is not an error (`Ok(None)`). After any error the stream is
//! out of step: close the connection.

use std::net::SocketAddr;

use bytes::{Buf, BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use super::wire::PeerMsg;
use crate::core::membership::auth::TAG_BYTES;
use crate::core::membership::identity::NAME_BYTES_MAX;
use crate::core::membership::ClusterSecret;

/// The frame format version, the byte after the length.
pub const FRAME_VERSION: u8 = 2;
/// Bytes of the length prefix.
pub const LEN_BYTES: usize = 4;
/// Bytes of the crc32 check (frames without a cluster secret).
pub const CRC_BYTES: usize = 4;
/// Default largest frame, counted as its length field (everything after the prefix).
pub const FRAME_BYTES_MAX_DEFAULT: usize = 64 << 20;
/// Deepest MessagePack nesting accepted in a body: far above any message Shoal writes (a forwarded reply
/// is a handful of levels), low enough that a hostile body cannot exhaust a task's stack.
pub const BODY_DEPTH_MAX: usize = 64;

/// What one frame carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// The first frame on every connection: who is sending.
    Hello {
        /// The sender's advertised cluster address (its identity on the data path).
        from: SocketAddr,
        /// The sender's node name (at most `NAME_BYTES_MAX` bytes).
        name: String,
    },
    /// A peer message.
    Msg(PeerMsg),
}

/// Why bytes from a peer are not a frame. Every error means the connection must be closed.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The length prefix exceeds the limit (nothing past the prefix was consumed).
    #[error("peer frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The claimed length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The length prefix is too small to hold the version and the check (nothing was consumed).
    #[error("peer frame of {0} bytes is too short for its header")]
    TooShort(usize),
    /// An unknown format version (the frame was consumed).
    #[error("unknown peer frame version {0} (this node speaks version {FRAME_VERSION}; is the peer running another Shoal release?)")]
    Version(u8),
    /// The crc32 or the MAC does not match the body (the frame was consumed).
    #[error("peer frame check failed (corrupt frame or a different cluster secret)")]
    Check,
    /// The body is not a valid MessagePack `Frame` (the frame was consumed).
    #[error("undecodable peer frame body: {0}")]
    Body(#[from] rmp_serde::decode::Error),
    /// A hand-coded body is malformed: truncated, an unknown tag or marker, an invalid field (the frame was
    /// consumed).
    #[error("malformed peer frame body: {0}")]
    Malformed(&'static str),
    /// The body decoded but left bytes over (the frame was consumed).
    #[error("peer frame body has {0} trailing bytes")]
    Trailing(usize),
    /// The body decoded to a frame with an invalid field (the frame was consumed).
    #[error("invalid peer frame: {0}")]
    Invalid(&'static str),
}

/// Why a frame could not be encoded; the output buffer is left as it was.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The encoded frame would exceed the limit the receiver enforces.
    #[error("peer frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The frame's length field.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Serialization failed (a bug: every `Frame` is encodable).
    #[error("peer frame encode: {0}")]
    Body(#[from] rmp_serde::encode::Error),
}

/// Encodes and decodes frames for one node: its check (crc32 or MAC) and its size limit.
#[derive(Clone, Debug)]
pub struct FrameCodec {
    secret: Option<ClusterSecret>,
    frame_bytes_max: usize,
}

impl FrameCodec {
    /// A codec that tags frames with `secret`, or checks them with crc32 without one.
    pub fn new(secret: Option<ClusterSecret>) -> FrameCodec {
        FrameCodec { secret, frame_bytes_max: FRAME_BYTES_MAX_DEFAULT }
    }

    /// The same codec with a different frame limit (counted as the length field).
    pub fn with_frame_bytes_max(self, frame_bytes_max: usize) -> FrameCodec {
        FrameCodec { frame_bytes_max: frame_bytes_max.min(u32::MAX as usize), ..self }
    }

    /// The largest frame accepted or written, counted as its length field.
    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    /// Bytes of the check field: 4 (crc32) or `TAG_BYTES` (MAC).
    pub fn check_bytes(&self) -> usize {
        if self.secret.is_some() {
            TAG_BYTES
        } else {
            CRC_BYTES
        }
    }

    /// Append one encoded frame to `dst`; returns its size on the wire.
    pub fn encode(&self, frame: &Frame, dst: &mut BytesMut) -> Result<usize, EncodeError> {
        let start = dst.len();
        let check_bytes = self.check_bytes();
        dst.put_u32(0);
        dst.put_u8(FRAME_VERSION);
        dst.put_bytes(0, check_bytes);
        let body_at = dst.len();
        if !hot::encode(frame, dst) {
            dst.put_u8(hot::TAG_RMP);
            if let Err(e) = rmp_serde::encode::write(&mut (&mut *dst).writer(), frame) {
                dst.truncate(start);
                return Err(e.into());
            }
        }
        let len = dst.len() - start - LEN_BYTES;
        if len > self.frame_bytes_max {
            dst.truncate(start);
            return Err(EncodeError::TooLarge { len, max: self.frame_bytes_max });
        }
        let (head, body) = dst[start..].split_at_mut(body_at - start);
        head[..LEN_BYTES].copy_from_slice(&(len as u32).to_be_bytes());
        let check = &mut head[LEN_BYTES + 1..];
        match &self.secret {
            None => check.copy_from_slice(&crc32fast::hash(body).to_be_bytes()),
            Some(secret) => check.copy_from_slice(&secret.tag_parts(&[&[FRAME_VERSION], body])),
        }
        Ok(LEN_BYTES + len)
    }

    /// Take one frame off the front of `src`: `Ok(None)` when `src` holds only part of one (nothing consumed).
    pub fn decode(&self, src: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        let Some(prefix) = src.get(..LEN_BYTES) else { return Ok(None) };
        let len = u32::from_be_bytes(prefix.try_into().expect("four bytes")) as usize;
        if len > self.frame_bytes_max {
            return Err(DecodeError::TooLarge { len, max: self.frame_bytes_max });
        }
        let check_bytes = self.check_bytes();
        if len < 1 + check_bytes {
            return Err(DecodeError::TooShort(len));
        }
        if src.len() < LEN_BYTES + len {
            return Ok(None);
        }
        src.advance(LEN_BYTES);
        let frame = src.split_to(len);
        let (version, rest) = (frame[0], &frame[1..]);
        if version != FRAME_VERSION {
            return Err(DecodeError::Version(version));
        }
        let (check, body) = rest.split_at(check_bytes);
        let valid = match &self.secret {
            None => check == crc32fast::hash(body).to_be_bytes(),
            Some(secret) => secret.verify_parts(&[&[FRAME_VERSION], body], check),
        };
        if !valid {
            return Err(DecodeError::Check);
        }
        decode_body(body).map(Some)
    }
}

/// Parse and validate a frame body that passed its check: a hand-coded hot message, or tag 0 and rmp-serde.
fn decode_body(body: &[u8]) -> Result<Frame, DecodeError> {
    match body.split_first() {
        None => Err(DecodeError::Malformed("empty body")),
        Some((&hot::TAG_RMP, rest)) => decode_rmp(rest),
        Some((&tag, rest)) => hot::decode(tag, rest),
    }
}

/// Parse and validate an rmp-serde body. It is read in place (strings and byte strings are borrowed from it, not
/// copied into a scratch buffer first); a frame with bytes after its value is refused.
fn decode_rmp(body: &[u8]) -> Result<Frame, DecodeError> {
    let mut de = rmp_serde::Deserializer::from_read_ref(body);
    de.set_max_depth(BODY_DEPTH_MAX);
    let frame = Frame::deserialize(&mut de)?;
    // The borrowing reader does not tell how far it got: a body that ends here has no next marker to read.
    let ended = matches!(
        serde::de::IgnoredAny::deserialize(&mut de),
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof
    );
    if !ended {
        return Err(DecodeError::Trailing(trailing_bytes(body)));
    }
    if let Frame::Hello { name, .. } = &frame {
        if name.len() > NAME_BYTES_MAX {
            return Err(DecodeError::Invalid("hello name longer than NAME_BYTES_MAX"));
        }
    }
    Ok(frame)
}

/// How many bytes follow the first value of `body` (the error path only: it decodes the value again).
fn trailing_bytes(body: &[u8]) -> usize {
    let mut rest = body;
    let mut de = rmp_serde::Deserializer::new(&mut rest);
    de.set_max_depth(BODY_DEPTH_MAX);
    match serde::de::IgnoredAny::deserialize(&mut de) {
        Ok(_) => rest.len(),
        Err(_) => body.len(),
    }
}

mod hot;

#[cfg(test)]
mod bench;
#[cfg(test)]
mod tests;
