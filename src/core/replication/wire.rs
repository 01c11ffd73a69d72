//! Messages nodes exchange over their TCP peer connections (replication, repair, anti-entropy, forwarding).
//!
//! These are values; the runtime frames them (`codec`: length, version byte, crc32 or MAC, and a hand-coded
//! body for the hot messages, rmp-serde for the rest) and the simulator passes them as they are. Every message
//! that expects an answer carries a request id chosen by the sender; answers echo it. A node must treat every field as untrusted: sizes are bounded by the reassembly limit
//! (`codec::parts`) and vectors are validated when decoded. Bulk senders bound what they put in one message in
//! bytes (`batch`).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::levels::Levels;
use crate::core::command::Command;
use crate::core::driver::{answer_id, RequestId};
use crate::core::locks::{LockAnswer, LockOp};
use crate::core::reply::Reply;
use crate::core::version::Version;
use crate::core::vversion::VersionVector;
use crate::core::Millis;

/// What a stored entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntryKind {
    /// A value clients can read.
    Value,
    /// A delete, kept for the tombstone grace period so replicas that missed it cannot bring the key back.
    Tombstone,
    /// An eviction under `maxmemory`: same version as the evicted value, so a newer write still wins.
    Evicted,
}

/// One key's state as it travels between replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireEntry {
    /// What the entry is.
    pub kind: EntryKind,
    /// The value (empty for tombstones and eviction markers).
    pub value: Bytes,
    /// The version vector of the write.
    pub vector: VersionVector,
    /// Absolute expiry in Unix milliseconds (0: none); for markers, when they may be dropped.
    pub expire_at_ms: Millis,
}

/// One key as anti-entropy describes it: enough to tell whether the peer's copy is the same, older or newer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AeKey {
    /// The key.
    pub key: Bytes,
    /// `entry_hash` of the sender's entry.
    pub hash: u64,
    /// The latest write in the sender's version vector (the one whose payload the entry carries).
    pub latest: Option<Version>,
}

/// A message between two nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PeerMsg {
    /// A client command sent by a node that does not own the key to the key's first live owner.
    Forward {
        /// Request id.
        id: RequestId,
        /// The command (single-key).
        cmd: Command,
        /// The levels the client asked for.
        levels: Levels,
    },
    /// The reply to a `Forward`.
    ForwardReply {
        /// Request id of the `Forward`.
        id: RequestId,
        /// The reply for the client.
        reply: Reply,
    },
    /// Store these entries, merging with what is there. `id` `None` asks for no acknowledgement.
    Put {
        /// Request id (`None`: no `PutAck` wanted).
        #[serde(with = "answer_id")]
        id: Option<RequestId>,
        /// Keys and their entries.
        entries: Vec<(Bytes, WireEntry)>,
        /// The owner this copy is meant for when the receiver only holds it as a hint.
        hint_for: Option<String>,
    },
    /// Acknowledges a `Put`.
    PutAck {
        /// Request id of the `Put`.
        id: RequestId,
    },
    /// Send back your copies of these keys.
    Get {
        /// Request id.
        id: RequestId,
        /// The keys.
        keys: Vec<Bytes>,
    },
    /// The answer to `Get`: one slot per key asked, `None` when the receiver holds nothing for it.
    GetReply {
        /// Request id of the `Get`.
        id: RequestId,
        /// The entries.
        entries: Vec<Option<WireEntry>>,
    },
    /// Anti-entropy, step 1: hashes of groups of buckets, over the keys both nodes replicate.
    AeGroups {
        /// A wire slot the first protocol version gave a round id that no node ever read: written as 0,
        /// ignored when read, kept so frames stay compatible.
        unused: Unused,
        /// Digest of the sender's ring: rounds between different views are skipped.
        ring: u64,
        /// One hash per group of buckets.
        hashes: Vec<u64>,
        /// The sender's hybrid logical clock: receivers advance past it, so every node's clock follows the
        /// fastest one in the cluster and a later write outranks an earlier one even from a slower clock.
        hlc: u64,
    },
    /// Anti-entropy, step 2: bucket digests of the groups that differ.
    AeBuckets {
        /// A wire slot the first protocol version gave a round id that no node ever read: written as 0,
        /// ignored when read, kept so frames stay compatible.
        unused: Unused,
        /// (bucket, digest) for every bucket of every differing group.
        buckets: Vec<(u32, u64)>,
    },
    /// Anti-entropy, step 3: for each bucket that differs, the digests of its 16 sub-buckets.
    AeSubs {
        /// A wire slot the first protocol version gave a round id that no node ever read: written as 0,
        /// ignored when read, kept so frames stay compatible.
        unused: Unused,
        /// (bucket, 16 sub-bucket digests).
        buckets: Vec<(u32, Vec<u64>)>,
    },
    /// Anti-entropy, step 4: every shared key in the sub-buckets that differ, with its entry hash and latest write.
    AeKeys {
        /// A wire slot the first protocol version gave a round id that no node ever read: written as 0,
        /// ignored when read, kept so frames stay compatible.
        unused: Unused,
        /// The (bucket, mask of sub-buckets) described, so keys the receiver has and the sender lacks are found.
        buckets: Vec<(u32, u16)>,
        /// The sender's keys.
        keys: Vec<AeKey>,
    },
    /// Anti-entropy, step 6: send me your entries for these keys (answered with a `Put` that wants no acknowledgement).
    AePull {
        /// The keys.
        keys: Vec<Bytes>,
    },
    /// Hand-off: keys the sender no longer owns, described; the receiver (an owner) answers with `Want`.
    Offer {
        /// Hand-off id.
        id: RequestId,
        /// The keys, with the hash and latest write of the sender's entries.
        keys: Vec<AeKey>,
    },
    /// The answer to `Offer`: the keys the owner lacks or holds older (empty: it has them all).
    Want {
        /// Hand-off id.
        id: RequestId,
        /// The keys to send (with `Put` under the same id).
        keys: Vec<Bytes>,
    },
    /// FLUSHALL coordinated by another node: drop every key.
    FlushAll,
    /// Apply a lock operation to your lock table; `id` `None` asks for no answer.
    Lock {
        /// Request id (`None`: no `LockReply` wanted).
        #[serde(with = "answer_id")]
        id: Option<RequestId>,
        /// The operation.
        op: LockOp,
    },
    /// The answer to `Lock`.
    LockReply {
        /// Request id of the `Lock`.
        id: RequestId,
        /// This replica's answer.
        answer: LockAnswer,
    },
    /// Answers a `Put` (instead of `PutAck`) when the receiver stored some of its entries but not these: they
    /// need memory it cannot free under its `maxmemory` policy. The sender counts no acknowledgement for them.
    /// (Last, so the rmp-serde index of every older variant stays the same.)
    PutRefused {
        /// Request id of the `Put`.
        id: RequestId,
        /// The keys not stored.
        keys: Vec<Bytes>,
    },
    /// A flush epoch: FLUSHALL at this HLC time (sent by its coordinator, and at the start of anti-entropy rounds).
    /// The receiver drops every entry written at or before it, and refuses such entries from then on.
    Flushed {
        /// Request id (`None`: no acknowledgement wanted); acknowledged with `PutAck`.
        #[serde(with = "answer_id")]
        id: Option<RequestId>,
        /// The flush's HLC time.
        before: u64,
    },
}

/// A wire slot kept for compatibility: it is written as the integer 0 and any integer is accepted when read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unused;

impl Serialize for Unused {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        0u64.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Unused {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Unused, D::Error> {
        u64::deserialize(d).map(|_| Unused)
    }
}
