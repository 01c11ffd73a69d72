//! The hand-written encoding of the hot messages (`Put`, `PutAck`, `Get`, `GetReply`, `Forward` of a GET or a
//! SET, `ForwardReply` of a flat reply). Each has its own body tag; everything else is tag `TAG_RMP`
//! followed by the rmp-serde encoding of the `Frame`.
//!
//! Primitives: `uv` is an unsigned LEB128 varint (at most 10 bytes), `iv` a zigzag-mapped signed varint, `u64`
//! 8 bytes big endian, `bytes` a `uv` length and the raw bytes, `str` a `bytes` that must be UTF-8. An entry is
//! `kind: u8 (0 value, 1 tombstone, 2 evicted)`, `value: bytes`, `n: uv` (at most `ENTRIES_MAX`) and `n` times
//! `node: u64, time: u64` (validated as a `VersionVector`), then `expire_at_ms: uv`. Levels are one byte,
//! `read | write << 4`, each `0 one, 1 quorum, 2 all`.

use bytes::{BufMut, Bytes, BytesMut};

use super::{DecodeError, Frame};
use crate::core::clock::Timestamp;
use crate::core::command::{Command, ExpireAt, SetCond, SetTtl};
use crate::core::driver::{answer_id, RequestId};
use crate::core::replication::levels::{Consistency, Levels};
use crate::core::replication::wire::{EntryKind, PeerMsg, WireEntry};
use crate::core::reply::Reply;
use crate::core::version::NodeId;
use crate::core::vversion::{VersionVector, ENTRIES_MAX};

/// Body tag: the rest is the rmp-serde encoding of a `Frame`.
pub const TAG_RMP: u8 = 0;
/// Body tag of `Put`: `id: uv, n: uv, n × (key: bytes, entry), hint: u8 (0 none, 1 then str)`.
pub const TAG_PUT: u8 = 1;
/// Body tag of `PutAck`: `id: uv`.
pub const TAG_PUT_ACK: u8 = 2;
/// Body tag of `Get`: `id: uv, n: uv, n × key: bytes`.
pub const TAG_GET: u8 = 3;
/// Body tag of `GetReply`: `id: uv, n: uv, n × (0 | 1 then entry)`.
pub const TAG_GET_REPLY: u8 = 4;
/// Body tag of a `Forward` of a GET: `id: uv, levels: u8, key: bytes`.
pub const TAG_FORWARD_GET: u8 = 5;
/// Body tag of a `Forward` of a SET: `id: uv, levels: u8, key: bytes, value: bytes, cond: u8 (0 always,
/// 1 NX, 2 XX), ttl: u8 (0 clear, 1 keep, 2 then in-ms: iv, 3 then at-ms: iv), flags: u8 (1 GET, 2 reply int)`.
pub const TAG_FORWARD_SET: u8 = 6;
/// Body tag of a `ForwardReply` of a flat reply: `id: uv, kind: u8` then by kind: 0 OK, 1 nil, 2 `int: iv`,
/// 3 `bulk: bytes`, 4 `simple: str`, 5 `error: str`.
pub const TAG_FORWARD_REPLY: u8 = 7;

/// Write the hand-coded body of `frame` (tag first) and return true, or write nothing and return false when
/// the frame is not one of the hot shapes.
pub fn encode(frame: &Frame, dst: &mut BytesMut) -> bool {
    let Frame::Msg(msg) = frame;
    match msg {
        PeerMsg::Put { id, entries, hint_for } => {
            dst.put_u8(TAG_PUT);
            put_uv(dst, answer_id::to_wire(*id));
            put_uv(dst, entries.len() as u64);
            for (key, entry) in entries {
                put_bytes(dst, key);
                put_entry(dst, entry);
            }
            match hint_for {
                None => dst.put_u8(0),
                Some(owner) => {
                    dst.put_u8(1);
                    put_bytes(dst, owner.as_bytes());
                }
            }
        }
        PeerMsg::PutAck { id } => {
            dst.put_u8(TAG_PUT_ACK);
            put_uv(dst, id.0);
        }
        PeerMsg::Get { id, keys } => {
            dst.put_u8(TAG_GET);
            put_uv(dst, id.0);
            put_uv(dst, keys.len() as u64);
            for key in keys {
                put_bytes(dst, key);
            }
        }
        PeerMsg::GetReply { id, entries } => {
            dst.put_u8(TAG_GET_REPLY);
            put_uv(dst, id.0);
            put_uv(dst, entries.len() as u64);
            for entry in entries {
                match entry {
                    None => dst.put_u8(0),
                    Some(entry) => {
                        dst.put_u8(1);
                        put_entry(dst, entry);
                    }
                }
            }
        }
        PeerMsg::Forward { id, cmd: Command::Get { key }, levels } => {
            dst.put_u8(TAG_FORWARD_GET);
            put_uv(dst, id.0);
            dst.put_u8(levels_byte(levels));
            put_bytes(dst, key);
        }
        PeerMsg::Forward { id, cmd: Command::Set { key, value, cond, ttl, get, reply_int }, levels } => {
            dst.put_u8(TAG_FORWARD_SET);
            put_uv(dst, id.0);
            dst.put_u8(levels_byte(levels));
            put_bytes(dst, key);
            put_bytes(dst, value);
            dst.put_u8(match cond {
                SetCond::Always => 0,
                SetCond::IfAbsent => 1,
                SetCond::IfPresent => 2,
            });
            match ttl {
                SetTtl::Clear => dst.put_u8(0),
                SetTtl::Keep => dst.put_u8(1),
                SetTtl::At(ExpireAt::InMs(ms)) => {
                    dst.put_u8(2);
                    put_iv(dst, *ms);
                }
                SetTtl::At(ExpireAt::AtMs(ms)) => {
                    dst.put_u8(3);
                    put_iv(dst, *ms);
                }
            }
            dst.put_u8(u8::from(*get) | u8::from(*reply_int) << 1);
        }
        PeerMsg::ForwardReply { id, reply } => {
            let kind = match reply {
                Reply::Ok => 0,
                Reply::Nil => 1,
                Reply::Int(_) => 2,
                Reply::Bulk(_) => 3,
                Reply::Simple(_) => 4,
                Reply::Error(_) => 5,
                _ => return false,
            };
            dst.put_u8(TAG_FORWARD_REPLY);
            put_uv(dst, id.0);
            dst.put_u8(kind);
            match reply {
                Reply::Int(n) => put_iv(dst, *n),
                Reply::Bulk(b) => put_bytes(dst, b),
                Reply::Simple(s) | Reply::Error(s) => put_bytes(dst, s.as_bytes()),
                _ => {}
            }
        }
        _ => return false,
    }
    true
}

/// Decode a hand-coded body (its tag already taken off); every byte must be used.
pub fn decode(tag: u8, body: &[u8]) -> Result<Frame, DecodeError> {
    let mut r = Reader(body);
    let msg = match tag {
        TAG_PUT => {
            let id = answer_id::from_wire(r.uv()?);
            let n = r.count()?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let key = r.bytes()?;
                entries.push((key, r.entry()?));
            }
            let hint_for = match r.u8()? {
                0 => None,
                1 => Some(r.string()?),
                _ => return Err(DecodeError::Malformed("hint marker")),
            };
            PeerMsg::Put { id, entries, hint_for }
        }
        TAG_PUT_ACK => PeerMsg::PutAck { id: RequestId(r.uv()?) },
        TAG_GET => {
            let id = RequestId(r.uv()?);
            let n = r.count()?;
            let mut keys = Vec::with_capacity(n);
            for _ in 0..n {
                keys.push(r.bytes()?);
            }
            PeerMsg::Get { id, keys }
        }
        TAG_GET_REPLY => {
            let id = RequestId(r.uv()?);
            let n = r.count()?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                entries.push(match r.u8()? {
                    0 => None,
                    1 => Some(r.entry()?),
                    _ => return Err(DecodeError::Malformed("entry marker")),
                });
            }
            PeerMsg::GetReply { id, entries }
        }
        TAG_FORWARD_GET => {
            let id = RequestId(r.uv()?);
            let levels = r.levels()?;
            PeerMsg::Forward { id, cmd: Command::Get { key: r.bytes()? }, levels }
        }
        TAG_FORWARD_SET => {
            let id = RequestId(r.uv()?);
            let levels = r.levels()?;
            let key = r.bytes()?;
            let value = r.bytes()?;
            let cond = match r.u8()? {
                0 => SetCond::Always,
                1 => SetCond::IfAbsent,
                2 => SetCond::IfPresent,
                _ => return Err(DecodeError::Malformed("SET condition")),
            };
            let ttl = match r.u8()? {
                0 => SetTtl::Clear,
                1 => SetTtl::Keep,
                2 => SetTtl::At(ExpireAt::InMs(r.iv()?)),
                3 => SetTtl::At(ExpireAt::AtMs(r.iv()?)),
                _ => return Err(DecodeError::Malformed("SET ttl")),
            };
            let flags = r.u8()?;
            if flags > 3 {
                return Err(DecodeError::Malformed("SET flags"));
            }
            let cmd = Command::Set { key, value, cond, ttl, get: flags & 1 != 0, reply_int: flags & 2 != 0 };
            PeerMsg::Forward { id, cmd, levels }
        }
        TAG_FORWARD_REPLY => {
            let id = RequestId(r.uv()?);
            let reply = match r.u8()? {
                0 => Reply::Ok,
                1 => Reply::Nil,
                2 => Reply::Int(r.iv()?),
                3 => Reply::Bulk(r.bytes()?),
                4 => Reply::Simple(r.string()?.into()),
                5 => Reply::Error(r.string()?.into()),
                _ => return Err(DecodeError::Malformed("reply kind")),
            };
            PeerMsg::ForwardReply { id, reply }
        }
        _ => return Err(DecodeError::Malformed("unknown body tag")),
    };
    if !r.0.is_empty() {
        return Err(DecodeError::Trailing(r.0.len()));
    }
    Ok(Frame::Msg(msg))
}

fn put_uv(dst: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        dst.put_u8(n as u8 | 0x80);
        n >>= 7;
    }
    dst.put_u8(n as u8);
}

fn put_iv(dst: &mut BytesMut, n: i64) {
    put_uv(dst, ((n << 1) ^ (n >> 63)) as u64);
}

fn put_bytes(dst: &mut BytesMut, b: &[u8]) {
    put_uv(dst, b.len() as u64);
    dst.put_slice(b);
}

fn put_entry(dst: &mut BytesMut, entry: &WireEntry) {
    dst.put_u8(match entry.kind {
        EntryKind::Value => 0,
        EntryKind::Tombstone => 1,
        EntryKind::Evicted => 2,
    });
    put_bytes(dst, &entry.value);
    let writes = entry.vector.entries();
    put_uv(dst, writes.len() as u64);
    for &(node, time) in writes {
        dst.put_u64(node.0);
        dst.put_u64(time.0);
    }
    put_uv(dst, entry.expire_at_ms);
}

fn levels_byte(levels: &Levels) -> u8 {
    let level = |c: Consistency| match c {
        Consistency::One => 0,
        Consistency::Quorum => 1,
        Consistency::All => 2,
    };
    level(levels.read) | level(levels.write) << 4
}

/// A cursor over an untrusted body: every read is bounds-checked and nothing allocates more than the bytes left.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if n > self.0.len() {
            return Err(DecodeError::Malformed("truncated body"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("eight bytes")))
    }

    fn uv(&mut self) -> Result<u64, DecodeError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err(DecodeError::Malformed("varint overflow"));
            }
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(n);
            }
        }
        Err(DecodeError::Malformed("varint overflow"))
    }

    fn iv(&mut self) -> Result<i64, DecodeError> {
        let n = self.uv()?;
        Ok((n >> 1) as i64 ^ -((n & 1) as i64))
    }

    /// An element count: each element takes at least one byte, so a count above the bytes left is refused
    /// before anything is allocated for it.
    fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.uv()?;
        if n > self.0.len() as u64 {
            return Err(DecodeError::Malformed("count exceeds the body"));
        }
        Ok(n as usize)
    }

    fn slice(&mut self) -> Result<&[u8], DecodeError> {
        let n = self.uv()?;
        if n > self.0.len() as u64 {
            return Err(DecodeError::Malformed("truncated body"));
        }
        self.take(n as usize)
    }

    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        self.slice().map(Bytes::copy_from_slice)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let s = std::str::from_utf8(self.slice()?).map_err(|_| DecodeError::Malformed("string is not UTF-8"))?;
        Ok(s.to_owned())
    }

    fn levels(&mut self) -> Result<Levels, DecodeError> {
        let b = self.u8()?;
        let level = |n: u8| match n {
            0 => Ok(Consistency::One),
            1 => Ok(Consistency::Quorum),
            2 => Ok(Consistency::All),
            _ => Err(DecodeError::Malformed("consistency level")),
        };
        Ok(Levels { read: level(b & 0xf)?, write: level(b >> 4)? })
    }

    fn entry(&mut self) -> Result<WireEntry, DecodeError> {
        let kind = match self.u8()? {
            0 => EntryKind::Value,
            1 => EntryKind::Tombstone,
            2 => EntryKind::Evicted,
            _ => return Err(DecodeError::Malformed("entry kind")),
        };
        let value = self.bytes()?;
        let n = self.uv()?;
        if n > ENTRIES_MAX as u64 {
            return Err(DecodeError::Malformed("version vector too long"));
        }
        // On the stack: a vector has at most `ENTRIES_MAX` entries, and the common one entry is stored inline.
        let mut writes = [(NodeId(0), Timestamp(0)); ENTRIES_MAX];
        for w in writes.iter_mut().take(n as usize) {
            *w = (NodeId(self.u64()?), Timestamp(self.u64()?));
        }
        let vector = VersionVector::try_from(&writes[..n as usize])
            .map_err(|_| DecodeError::Malformed("invalid version vector"))?;
        Ok(WireEntry { kind, value, vector, expire_at_ms: self.uv()? })
    }
}
