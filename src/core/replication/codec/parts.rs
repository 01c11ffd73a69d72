//! Messages larger than one frame: their body is sent as consecutive part frames and reassembled by the
//! receiving codec, so every value the client protocol accepts replicates whatever the frame limit.
//!
//! A part frame is an ordinary message frame (length, version, sequence number, check) whose body is
//! `[TAG_PART][total: u64 BE][offset: u64 BE][chunk]`: `total` is the size of the whole message body (its own tag
//! first), `offset` where `chunk` starts in it. The parts of one message follow each other on the link with
//! nothing in between (a link writes one message at a time, so order per link is kept), from offset 0 up, each
//! chunk at most `PART_CHUNK_BYTES`. The receiver checks before it buffers anything: `total` within its
//! `message_bytes_max` (a per-link bound on the bytes being reassembled), the same `total` in every part, each
//! offset where the last chunk ended, no chunk empty or past `total`, and no part inside a reassembled body. When
//! the last chunk arrives the whole body is decoded like any frame's. Any violation is `DecodeError::Malformed`
//! (close the connection; the partial message goes with it).

use bytes::{BufMut, Bytes, BytesMut};

use super::DecodeError;

/// Body tag of a part of a message too large for one frame.
pub const TAG_PART: u8 = 8;
/// Bytes of a part body before its chunk: tag, total, offset.
pub const PART_HEADER_BYTES: usize = 1 + 8 + 8;
/// Largest chunk of one part frame: small enough that a link's batch (1 MiB) interleaves nothing but keeps writes
/// short, large enough that the per-frame overhead is noise.
pub const PART_CHUNK_BYTES: usize = 1 << 20;

/// A message body being sent in parts: what is left to write.
#[derive(Debug)]
pub struct Split {
    body: Bytes,
    offset: usize,
}

impl Split {
    /// The parts of `body` (a whole message body, tag first).
    pub fn new(body: Bytes) -> Split {
        Split { body, offset: 0 }
    }

    /// Bytes of the whole message body.
    pub fn total_bytes(&self) -> usize {
        self.body.len()
    }

    /// Append the next part body (header and a chunk of at most `chunk_bytes_max`) to `dst`; false when every
    /// part was written already.
    pub fn next_part(&mut self, chunk_bytes_max: usize, dst: &mut BytesMut) -> bool {
        if self.offset >= self.body.len() {
            return false;
        }
        let end = self.body.len().min(self.offset + chunk_bytes_max.max(1));
        dst.put_u8(TAG_PART);
        dst.put_u64(self.body.len() as u64);
        dst.put_u64(self.offset as u64);
        dst.put_slice(&self.body[self.offset..end]);
        self.offset = end;
        true
    }

    /// Whether every part was written.
    pub fn done(&self) -> bool {
        self.offset >= self.body.len()
    }
}

/// The message body a receiving codec is reassembling from parts.
#[derive(Debug, Default, Clone)]
pub struct Assembly {
    body: BytesMut,
    total: usize,
}

impl Assembly {
    /// Add one part (its body after `TAG_PART`); returns the whole message body once its last part arrived.
    pub fn add(&mut self, part: &[u8], message_bytes_max: usize) -> Result<Option<Bytes>, DecodeError> {
        let Some((head, chunk)) = part.split_at_checked(PART_HEADER_BYTES - 1) else {
            return Err(DecodeError::Malformed("truncated part header"));
        };
        let total = u64::from_be_bytes(head[..8].try_into().expect("eight bytes"));
        let offset = u64::from_be_bytes(head[8..].try_into().expect("eight bytes"));
        let (Ok(total), Ok(offset)) = (usize::try_from(total), usize::try_from(offset)) else {
            return Err(DecodeError::Malformed("part sizes beyond this platform"));
        };
        if total > message_bytes_max {
            return Err(DecodeError::Malformed("message in parts exceeds the reassembly limit"));
        }
        if offset != self.body.len() || (offset > 0 && total != self.total) {
            return Err(DecodeError::Malformed("part out of sequence"));
        }
        if chunk.is_empty() || chunk.len() > total - offset {
            return Err(DecodeError::Malformed("part chunk empty or past the message end"));
        }
        if offset == 0 {
            self.total = total;
        }
        self.body.extend_from_slice(chunk);
        if self.body.len() < total {
            return Ok(None);
        }
        let body = std::mem::take(&mut self.body).freeze();
        if body.first() == Some(&TAG_PART) {
            return Err(DecodeError::Malformed("part inside a message in parts"));
        }
        self.total = 0;
        Ok(Some(body))
    }

    /// Bytes of the message being reassembled that arrived so far.
    pub fn buffered_bytes(&self) -> usize {
        self.body.len()
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use super::super::{DecodeError, EncodeError, Frame, FrameCodec, SessionKey};
    use super::*;
    use crate::core::driver::RequestId;
    use crate::core::replication::{EntryKind, PeerMsg, WireEntry};
    use crate::core::vversion::VersionVector;

    fn put(value_bytes: usize) -> Frame {
        let value = Bytes::from((0..value_bytes).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let entry = WireEntry { kind: EntryKind::Value, value, vector: VersionVector::new(), expire_at_ms: 0 };
        Frame::Msg(PeerMsg::Put {
            id: Some(RequestId(3)),
            entries: vec![(Bytes::from_static(b"big"), entry)],
            hint_for: None,
        })
    }

    fn codec() -> FrameCodec {
        FrameCodec::new(Some(SessionKey::from_bytes(&[5; 32]))).with_frame_bytes_max(1_024)
    }

    #[test]
    fn a_message_larger_than_a_frame_goes_in_parts_and_comes_back_whole() {
        let (mut tx, mut rx) = (codec(), codec());
        let mut wire = BytesMut::new();
        tx.encode(&put(10_000), &mut wire).expect("split into parts");
        tx.encode(&put(10), &mut wire).expect("one frame");
        assert!(tx.next_seq() > 10, "about ten parts, each numbered: {}", tx.next_seq());
        // Byte by byte: every frame boundary, and every point inside one, is met.
        let (mut buf, mut got) = (BytesMut::new(), Vec::new());
        for byte in wire.iter() {
            buf.extend_from_slice(&[*byte]);
            while let Some(frame) = rx.decode(&mut buf).expect("valid") {
                got.push(frame);
            }
        }
        assert_eq!(got, vec![put(10_000), put(10)]);
        assert_eq!(rx.assembly.buffered_bytes(), 0);
    }

    #[test]
    fn parts_are_streamed_in_batches_of_bounded_bytes() {
        let mut tx = codec();
        let mut probe = BytesMut::new();
        let Some(mut split) = tx.encode_or_split(&put(20_000), &mut probe).expect("encodes") else {
            panic!("a 20 KB message does not fit a 1 KB frame")
        };
        assert!(probe.is_empty() && split.total_bytes() > 20_000);
        let (mut rx, mut batches, mut got) = (codec(), 0, None);
        loop {
            let mut batch = BytesMut::new();
            let done = tx.encode_parts(&mut split, &mut batch, 4_096);
            assert!(batch.len() < 4_096 + 1_024, "a batch holds at most one part past its bound");
            batches += 1;
            if let Some(frame) = rx.decode(&mut batch).expect("valid") {
                got = Some(frame);
            }
            assert!(batch.is_empty());
            if done == 1 {
                break;
            }
            assert!(batches < 100, "bounded");
        }
        assert!(batches >= 5);
        assert_eq!(got, Some(put(20_000)));
    }

    #[test]
    fn a_message_beyond_the_reassembly_limit_is_refused_on_both_sides() {
        let mut tx = codec().with_message_bytes_max(5_000);
        let mut buf = BytesMut::new();
        assert!(matches!(tx.encode(&put(10_000), &mut buf), Err(EncodeError::TooLarge { .. })));
        assert!(buf.is_empty() && tx.next_seq() == 0);
        let mut wire = BytesMut::new();
        codec().encode(&put(10_000), &mut wire).expect("the sender's limit is larger");
        let mut rx = codec().with_message_bytes_max(5_000);
        assert!(matches!(rx.decode(&mut wire), Err(DecodeError::Malformed(_))), "refused at the first part");
        assert_eq!(rx.assembly.buffered_bytes(), 0, "nothing buffered");
    }

    #[test]
    fn parts_out_of_sequence_or_interleaved_are_refused() {
        let mut a = Assembly::default();
        let part = |total: u64, offset: u64, chunk: &[u8]| {
            let mut p = total.to_be_bytes().to_vec();
            p.extend_from_slice(&offset.to_be_bytes());
            p.extend_from_slice(chunk);
            p
        };
        assert!(a.add(&part(10, 4, b"abcd"), 100).is_err(), "must start at 0");
        assert!(a.add(&part(10, 0, b"abcd"), 100).expect("first").is_none());
        assert!(a.add(&part(11, 4, b"ef"), 100).is_err(), "total changed");
        let mut a = Assembly::default();
        assert!(a.add(&part(4, 0, b"abcdef"), 100).is_err(), "past the end");
        assert!(a.add(&part(4, 0, b""), 100).is_err(), "empty chunk");
        assert!(a.add(&[0; 5], 100).is_err(), "truncated header");
        // A whole frame while a message is in parts.
        let (mut tx, mut rx) = (codec(), codec());
        let mut wire = BytesMut::new();
        let mut split = tx.encode_or_split(&put(5_000), &mut wire).expect("encodes").expect("split");
        assert_eq!(tx.encode_parts(&mut split, &mut wire, 1), 0, "one part, more to come");
        tx.encode(&put(1), &mut wire).expect("one frame");
        assert!(matches!(rx.decode(&mut wire), Err(DecodeError::Malformed("frame between parts"))));
    }
}
