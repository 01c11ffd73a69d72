//! What a queued message weighs: an estimate of its encoded size, so a link's queue is bounded in bytes as well
//! as in messages without encoding on the node task.
//!
//! The estimate counts the variable-size parts (keys, values, reply strings, lists) plus a fixed overhead per
//! message and per item; it is within a small factor of the frame size, which is all a memory bound needs.
//! Message kinds added later weigh `OVERHEAD_BYTES` until they are listed here.

use crate::core::command::Command;
use crate::core::locks::LockOp;
use crate::core::replication::{PeerMsg, WireEntry};
use crate::core::reply::Reply;

/// Fixed cost of any message: tags, ids, levels.
const OVERHEAD_BYTES: usize = 32;
/// Fixed cost of one entry: kind, expiry, a typical version vector.
const ENTRY_BYTES: usize = 48;

/// The estimated encoded size of `msg`.
pub(super) fn weight(msg: &PeerMsg) -> usize {
    OVERHEAD_BYTES
        + match msg {
            PeerMsg::Put { entries, hint_for, .. } => {
                entries.iter().map(|(k, e)| k.len() + entry(e)).sum::<usize>()
                    + hint_for.as_ref().map_or(0, String::len)
            }
            PeerMsg::GetReply { entries, .. } => entries.iter().map(|e| e.as_ref().map_or(1, entry)).sum(),
            PeerMsg::Get { keys, .. } | PeerMsg::AePull { keys } => keys.iter().map(|k| k.len() + 2).sum(),
            PeerMsg::AeGroups { hashes, .. } => hashes.len() * 9,
            PeerMsg::AeBuckets { buckets, .. } => buckets.len() * 14,
            PeerMsg::Offer { keys, .. } => keys.iter().map(|k| k.key.len() + 32).sum(),
            PeerMsg::Want { keys, .. } => keys.iter().map(|k| k.len() + 2).sum(),
            PeerMsg::AeSubs { buckets, .. } => buckets.iter().map(|(_, subs)| 6 + subs.len() * 9).sum(),
            PeerMsg::AeKeys { buckets, keys, .. } => {
                buckets.len() * 8 + keys.iter().map(|k| k.key.len() + 32).sum::<usize>()
            }
            PeerMsg::Lock { op, .. } => lock_op(op),
            PeerMsg::LockReply { answer, .. } => answer.holder.as_ref().map_or(0, |h| h.owner.len() + 20),
            PeerMsg::Forward { cmd, .. } => command(cmd),
            PeerMsg::ForwardReply { reply: r, .. } => reply(r),
            _ => 0,
        }
}

fn lock_op(op: &LockOp) -> usize {
    match op {
        LockOp::Acquire { name, owner, .. }
        | LockOp::Renew { name, owner, .. }
        | LockOp::Release { name, owner, .. } => name.len() + owner.len() + 20,
        LockOp::Info { name } => name.len(),
    }
}

fn entry(e: &WireEntry) -> usize {
    ENTRY_BYTES + e.value.len()
}

/// The keys and values a forwarded command carries (a forwarded command names one key, or a few).
fn command(cmd: &Command) -> usize {
    match cmd {
        Command::Set { key, value, .. } | Command::Append { key, value } | Command::SetRange { key, value, .. } => {
            key.len() + value.len()
        }
        Command::MSet { pairs, .. } => pairs.iter().map(|(k, v)| k.len() + v.len() + 4).sum(),
        Command::MGet { keys } | Command::Del { keys } | Command::Exists { keys } | Command::Touch { keys } => {
            keys.iter().map(|k| k.len() + 2).sum()
        }
        _ => OVERHEAD_BYTES,
    }
}

/// The strings and lists of a reply, recursively (replies are nested a few levels at most).
fn reply(r: &Reply) -> usize {
    2 + match r {
        Reply::Simple(s) | Reply::Error(s) => s.len(),
        Reply::Bulk(b) => b.len(),
        Reply::Verbatim(s) => s.len(),
        Reply::Array(items) | Reply::Set(items) => items.iter().map(reply).sum(),
        Reply::Map(pairs) => pairs.iter().map(|(k, v)| reply(k) + reply(v)).sum(),
        Reply::Ok | Reply::Int(_) | Reply::Nil | Reply::NilArray | Reply::Double(_) => 8,
    }
}
