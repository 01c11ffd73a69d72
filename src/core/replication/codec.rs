//! Peer frames: how `PeerMsg`s travel on the TCP data path between nodes, after the link's handshake
//! (`handshake`).
//!
//! A message frame is `[len: u32 BE][version: u8][seq: u64 BE][check][body]`, where `len` counts every byte
//! after itself, `version` is `FRAME_VERSION` (3), `seq` is the frame's sequence number on its link (0 for the
//! first message after the handshake, then one more per frame), and `body` is `[tag: u8][payload]`. The hot
//! messages of the write and read paths (`Put`, `PutAck`, `Get`, `GetReply`, `Forward` of GET or SET,
//! `ForwardReply` of a flat reply) have a hand-written payload under their own tag (see `hot`: varints,
//! length-prefixed bytes, no field or variant names); every other frame is tag 0 followed by the rmp-serde
//! (compact) encoding of the `Frame`. Older versions (1: whole body in rmp-serde; 2: no sequence number, a MAC
//! keyed by the cluster secret itself) are refused as `DecodeError::Version`, like any other unknown version, so
//! a mixed-version cluster closes the connection and counts a bad frame rather than misreading it.
//!
//! The check: with a cluster secret it is HMAC-SHA256 keyed by the link's session key (derived by the handshake
//! from the secret and both sides' nonces) over `version || seq || body`, truncated to `auth::TAG_BYTES` (16)
//! bytes; the keyed HMAC state is built once per link and cloned per frame. 128 bits leave no room for online
//! forgery. Without a secret (allowed only on loopback or with the insecure opt-out) it is the crc32 of
//! `version || seq || body` (4 bytes, big endian): it catches corruption, not forgery.
//!
//! The sequence rule: each `FrameCodec` is one direction of one link. The encoder numbers its frames 0, 1, 2...;
//! the decoder accepts only the next number, after the check verified. A frame whose check fails is
//! `DecodeError::Check` (forged, corrupt, or spliced from another link, whose session key differs); a verified
//! frame with a lower number is `DecodeError::Replayed` (a frame sent again on this link) and one with a higher
//! number is `DecodeError::Reordered` (frames dropped or reordered in between). A frame recorded on one link does
//! not verify on any other, since every link has its own key.
//!
//! A message whose frame would exceed `frame_bytes_max` is sent as consecutive part frames and reassembled by the
//! receiving codec, up to `message_bytes_max` (see `parts`): every value the client protocol accepts replicates.
//!
//! Decoding never trusts the peer: the length is checked against `frame_bytes_max` before anything is read or
//! buffered beyond it, the check before the body is parsed, nesting is capped (`BODY_DEPTH_MAX`), counts are
//! checked against the bytes left before anything is allocated, trailing bytes are refused, and nothing panics.
//! A partial frame is not an error (`Ok(None)`). After any error the stream is out of step: close the connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hmac::Mac;
use serde::{Deserialize, Serialize};

use super::handshake::SessionKey;
use super::wire::PeerMsg;
use crate::core::membership::auth::TAG_BYTES;

/// The frame format version, the byte after the length (handshake frames carry it too).
pub const FRAME_VERSION: u8 = 3;
/// Bytes of the sequence number.
pub const SEQ_BYTES: usize = 8;
/// Bytes of the length prefix.
pub const LEN_BYTES: usize = 4;
/// Bytes of the crc32 check (frames without a cluster secret).
pub const CRC_BYTES: usize = 4;
/// Default largest frame, counted as its length field (everything after the prefix).
pub const FRAME_BYTES_MAX_DEFAULT: usize = 64 << 20;
/// Default largest message body sent or reassembled in parts (`parts`): two 512 MB strings (a key and a value at
/// the client protocol's default limit) and room for the rest of the message.
pub const MESSAGE_BYTES_MAX_DEFAULT: usize = (1024 << 20) + (1 << 20);
/// Deepest MessagePack nesting accepted in a body: far above any message Shoal writes (a forwarded reply
/// is a handful of levels), low enough that a hostile body cannot exhaust a task's stack.
pub const BODY_DEPTH_MAX: usize = 64;

/// What one message frame carries (the handshake has its own frames, see `handshake`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Frame {
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
    /// The length prefix is too small to hold the version, the sequence number and the check (nothing was
    /// consumed).
    #[error("peer frame of {0} bytes is too short for its header")]
    TooShort(usize),
    /// An unknown format version (the frame was consumed).
    #[error("unknown peer frame version {0} (this node speaks version {FRAME_VERSION}; is the peer running another Shoal release?)")]
    Version(u8),
    /// The crc32 or the MAC does not match (the frame was consumed): corrupt, forged, or from another link.
    #[error("peer frame check failed (corrupt or forged frame, or one from another link)")]
    Check,
    /// A verified frame with a sequence number already seen on this link: a replay (the frame was consumed).
    #[error("replayed peer frame: sequence number {seq}, expected {expected}")]
    Replayed {
        /// The frame's sequence number.
        seq: u64,
        /// The next number this link expects.
        expected: u64,
    },
    /// A verified frame with a sequence number ahead of the next expected one (the frame was consumed).
    #[error("reordered peer frame: sequence number {seq}, expected {expected}")]
    Reordered {
        /// The frame's sequence number.
        seq: u64,
        /// The next number this link expects.
        expected: u64,
    },
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
}

/// Why a frame could not be encoded; the output buffer is left as it was.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The encoded message would exceed the limit the receiver enforces, even in parts.
    #[error("peer message of {len} bytes exceeds the limit of {max}")]
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

/// Encodes or decodes the message frames of one direction of one link: its check (crc32 or a MAC under the
/// link's session key), its size limit and its next sequence number.
#[derive(Clone, Debug)]
pub struct FrameCodec {
    key: Option<SessionKey>,
    frame_bytes_max: usize,
    message_bytes_max: usize,
    next_seq: u64,
    /// The message being reassembled from parts (decoding side).
    assembly: Assembly,
}

impl FrameCodec {
    /// A codec that MACs frames with the session key `key`, or checks them with crc32 without one; its first
    /// frame is number 0.
    pub fn new(key: Option<SessionKey>) -> FrameCodec {
        FrameCodec {
            key,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            message_bytes_max: MESSAGE_BYTES_MAX_DEFAULT,
            next_seq: 0,
            assembly: Assembly::default(),
        }
    }

    /// The same codec with a different limit on a message sent or reassembled in parts (its body's bytes).
    pub fn with_message_bytes_max(self, message_bytes_max: usize) -> FrameCodec {
        FrameCodec { message_bytes_max, ..self }
    }

    /// The same codec with a different frame limit (counted as the length field).
    pub fn with_frame_bytes_max(self, frame_bytes_max: usize) -> FrameCodec {
        FrameCodec { frame_bytes_max: frame_bytes_max.min(u32::MAX as usize), ..self }
    }

    /// The largest frame accepted or written, counted as its length field.
    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    /// The sequence number of the next frame encoded or accepted.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Bytes of the check field: 4 (crc32) or `TAG_BYTES` (MAC).
    pub fn check_bytes(&self) -> usize {
        if self.key.is_some() {
            TAG_BYTES
        } else {
            CRC_BYTES
        }
    }

    /// Append `frame` to `dst`, in parts when it is larger than one frame (every part numbered in turn); returns
    /// the bytes added. A frame that fails to encode takes no number and leaves `dst` as it was.
    pub fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<usize, EncodeError> {
        let start = dst.len();
        if let Some(mut split) = self.encode_or_split(frame, dst)? {
            while self.encode_parts(&mut split, dst, usize::MAX) == 0 {}
        }
        Ok(dst.len() - start)
    }

    /// Append `frame` to `dst` as one frame and return `None`, or, when it is larger than one frame, append
    /// nothing and return its `Split`, to be written with `encode_parts` before any other frame of this codec.
    pub fn encode_or_split(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<Option<Split>, EncodeError> {
        let start = dst.len();
        let body_at = self.open(dst);
        if !hot::encode(frame, dst) {
            dst.put_u8(hot::TAG_RMP);
            if let Err(e) = rmp_serde::encode::write(&mut (&mut *dst).writer(), frame) {
                dst.truncate(start);
                return Err(e.into());
            }
        }
        if dst.len() - start - LEN_BYTES <= self.frame_bytes_max {
            self.seal(start, body_at, dst);
            return Ok(None);
        }
        let body = Bytes::copy_from_slice(&dst[body_at..]);
        dst.truncate(start);
        let room = self.frame_bytes_max.saturating_sub(1 + SEQ_BYTES + self.check_bytes() + PART_HEADER_BYTES);
        if body.len() > self.message_bytes_max || room == 0 {
            return Err(EncodeError::TooLarge { len: body.len(), max: self.message_bytes_max });
        }
        Ok(Some(Split::new(body)))
    }

    /// Append the next parts of `split` to `dst`, at least one, until `dst` holds `bytes_max` bytes or the last
    /// part is written; returns 1 when it was (the message is out), else 0.
    pub fn encode_parts(&mut self, split: &mut Split, dst: &mut BytesMut, bytes_max: usize) -> usize {
        let chunk = PART_CHUNK_BYTES
            .min(self.frame_bytes_max.saturating_sub(1 + SEQ_BYTES + self.check_bytes() + PART_HEADER_BYTES));
        loop {
            let start = dst.len();
            let body_at = self.open(dst);
            if !split.next_part(chunk, dst) {
                dst.truncate(start);
                return 1;
            }
            self.seal(start, body_at, dst);
            if split.done() {
                return 1;
            }
            if dst.len() >= bytes_max {
                return 0;
            }
        }
    }

    /// Append a frame header with a zero length and check; returns where the body starts.
    fn open(&self, dst: &mut BytesMut) -> usize {
        dst.put_u32(0);
        dst.put_u8(FRAME_VERSION);
        dst.put_u64(self.next_seq);
        dst.put_bytes(0, self.check_bytes());
        dst.len()
    }

    /// Fill in the length and check of the frame opened at `start` (body at `body_at`, within the limit) and take
    /// its sequence number.
    fn seal(&mut self, start: usize, body_at: usize, dst: &mut BytesMut) {
        let len = dst.len() - start - LEN_BYTES;
        let (head, body) = dst[start..].split_at_mut(body_at - start);
        head[..LEN_BYTES].copy_from_slice(&(len as u32).to_be_bytes());
        let (signed, check) = head[LEN_BYTES..].split_at_mut(1 + SEQ_BYTES);
        match &self.key {
            None => check.copy_from_slice(&crc(signed, body).to_be_bytes()),
            Some(key) => check.copy_from_slice(&tag(key, signed, body)),
        }
        self.next_seq += 1;
    }

    /// Take one message off the front of `src`: `Ok(None)` when `src` holds only part of one (whole part frames
    /// of a message in parts are consumed into the reassembly, nothing else).
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        loop {
            let Some(body) = self.decode_frame(src)? else { return Ok(None) };
            match body.split_first() {
                Some((&TAG_PART, part)) => {
                    if let Some(whole) = self.assembly.add(part, self.message_bytes_max)? {
                        return decode_body(&whole).map(Some);
                    }
                }
                _ if self.assembly.buffered_bytes() > 0 => return Err(DecodeError::Malformed("frame between parts")),
                _ => return decode_body(&body).map(Some),
            }
        }
    }

    /// Take one verified frame off the front of `src` and return its body.
    fn decode_frame(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, DecodeError> {
        let Some(prefix) = src.get(..LEN_BYTES) else { return Ok(None) };
        let len = u32::from_be_bytes(prefix.try_into().expect("four bytes")) as usize;
        if len > self.frame_bytes_max {
            return Err(DecodeError::TooLarge { len, max: self.frame_bytes_max });
        }
        let check_bytes = self.check_bytes();
        if len < 1 + SEQ_BYTES + check_bytes {
            return Err(DecodeError::TooShort(len));
        }
        if src.len() < LEN_BYTES + len {
            return Ok(None);
        }
        src.advance(LEN_BYTES);
        let mut frame = src.split_to(len);
        let version = frame[0];
        if version != FRAME_VERSION {
            return Err(DecodeError::Version(version));
        }
        let (signed, rest) = frame.split_at(1 + SEQ_BYTES);
        let (check, body) = rest.split_at(check_bytes);
        let valid = match &self.key {
            None => check == crc(signed, body).to_be_bytes(),
            Some(key) => {
                let mut mac = key.mac();
                mac.update(signed);
                mac.update(body);
                mac.verify_truncated_left(check).is_ok()
            }
        };
        if !valid {
            return Err(DecodeError::Check);
        }
        let seq = u64::from_be_bytes(signed[1..].try_into().expect("eight bytes"));
        let expected = self.next_seq;
        if seq < expected {
            return Err(DecodeError::Replayed { seq, expected });
        }
        if seq > expected {
            return Err(DecodeError::Reordered { seq, expected });
        }
        self.next_seq += 1;
        Ok(Some(frame.split_off(1 + SEQ_BYTES + check_bytes)))
    }
}

/// The crc32 of a frame's `version || seq` and body.
fn crc(signed: &[u8], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(signed);
    hasher.update(body);
    hasher.finalize()
}

/// The truncated HMAC of a frame's `version || seq` and body under `key`.
fn tag(key: &SessionKey, signed: &[u8], body: &[u8]) -> [u8; TAG_BYTES] {
    let mut mac = key.mac();
    mac.update(signed);
    mac.update(body);
    let full = mac.finalize().into_bytes();
    let mut tag = [0u8; TAG_BYTES];
    tag.copy_from_slice(&full[..TAG_BYTES]);
    tag
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
pub mod parts;

use parts::{Assembly, Split, PART_CHUNK_BYTES, PART_HEADER_BYTES, TAG_PART};

#[cfg(test)]
mod bench;
#[cfg(test)]
mod tests;
