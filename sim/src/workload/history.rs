//! The history the checkers read: what each client call was (`OpKind`, and the core `Command` that carries it
//! out), how it ended (`Outcome`), and one call with its times (`Op`), whose real-time order (`Op::precedes`) the
//! checkers reason with. Also the bytes of the full mix's large values, which name the write they came from.

use bytes::Bytes;
use shoal::core::command::{Command, ExpireAt, ExpireCond, SetCond, SetTtl};
use shoal::core::replication::Levels;
use shoal::core::reply::Reply;
use shoal::core::Millis;

use crate::event::Ms;

/// What a client asked, in the checker's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// SET of a value unique in the run; `size` 0 sends it as its decimal number, else as `big_value` bytes.
    Set { key: u8, value: u64, ttl_ms: Option<u64>, size: u32 },
    /// GET key.
    Get { key: u8 },
    /// DEL key.
    Del { key: u8 },
    /// EXPIRE key after `ttl_ms`.
    Expire { key: u8, ttl_ms: u64 },
    /// INCRBY key delta (delta >= 1).
    Incr { key: u8, delta: i64 },
    /// APPEND key "token," (the token is unique in the run).
    Append { key: u8, token: u64 },
}

/// The bytes of a large value: `"{value}~{size}~"` then filler up to `size` bytes, so a copy names its write and
/// a truncated or spliced one is caught (`value_number` refuses it).
pub fn big_value(value: u64, size: u32) -> Bytes {
    let head = format!("{value}~{size}~");
    let mut bytes = Vec::with_capacity((size as usize).max(head.len()));
    bytes.extend_from_slice(head.as_bytes());
    bytes.resize((size as usize).max(head.len()), filler(value));
    Bytes::from(bytes)
}

fn filler(value: u64) -> u8 {
    b'a' + (value % 26) as u8
}

/// The SET value a copy carries: a decimal number, or a well-formed `big_value`; `None` for anything else.
pub fn value_number(bytes: &[u8]) -> Option<u64> {
    if !bytes.contains(&b'~') {
        return std::str::from_utf8(bytes).ok()?.parse().ok();
    }
    let mut fields = bytes.splitn(3, |&b| b == b'~');
    let value: u64 = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    let size: usize = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    let rest = fields.next()?;
    // The length says whether it was truncated or extended; the filler's two ends (4 KiB each: the whole of it is
    // megabytes, read on every copy the simulator sniffs) whether another value's bytes were spliced in.
    let ends = rest.iter().take(4096).chain(rest.iter().rev().take(4096));
    let intact = bytes.len() == size.max(bytes.len() - rest.len()) && ends.into_iter().all(|&b| b == filler(value));
    intact.then_some(value)
}

impl OpKind {
    /// Whether the call may change its key.
    pub fn is_write(&self) -> bool {
        !matches!(self, OpKind::Get { .. })
    }

    /// The key the call is about (workload numbering).
    pub fn key(&self) -> u8 {
        match self {
            OpKind::Set { key, .. }
            | OpKind::Get { key }
            | OpKind::Del { key }
            | OpKind::Expire { key, .. }
            | OpKind::Incr { key, .. }
            | OpKind::Append { key, .. } => *key,
        }
    }

    /// The core command that carries out this call.
    pub fn command(&self) -> Command {
        let key = Bytes::from(format!("k{}", self.key()));
        match self {
            OpKind::Set { value, ttl_ms, size, .. } => Command::Set {
                key,
                value: if *size == 0 { Bytes::from(value.to_string()) } else { big_value(*value, *size) },
                cond: SetCond::Always,
                ttl: ttl_ms.map_or(SetTtl::Clear, |ms| SetTtl::At(ExpireAt::InMs(ms as i64))),
                get: false,
                reply_int: false,
            },
            OpKind::Get { .. } => Command::Get { key },
            OpKind::Del { .. } => Command::Del { keys: vec![key] },
            OpKind::Expire { ttl_ms, .. } => {
                Command::Expire { key, at: ExpireAt::InMs(*ttl_ms as i64), cond: ExpireCond::Always }
            }
            OpKind::Incr { delta, .. } => Command::IncrBy { key, delta: *delta },
            OpKind::Append { token, .. } => Command::Append { key, value: Bytes::from(format!("{token},")) },
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The node was down: the connection was refused, the call did not happen.
    Refused,
    /// The node answered.
    Replied(Reply),
    /// No answer (timeout, connection reset, end of the run): the call may or may not have taken effect.
    Unknown,
}

/// One call and its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    /// The client that made the call.
    pub client: u32,
    /// The client's connection the call went out on (a client reconnects after a timeout or a reset).
    pub conn: u64,
    /// The node the call went to.
    pub node: usize,
    /// The node's incarnation number in the simulator (bumped at every restart), when it executed the call.
    pub generation: u64,
    pub kind: OpKind,
    /// The consistency levels the call ran at.
    pub levels: Levels,
    /// Virtual time of the call (its execution is later if the node was paused).
    pub invoked_at: Ms,
    /// Whether the node took the call in (it may still have no effect).
    pub executed: bool,
    /// Virtual time at which the node took the call in.
    pub executed_at: Ms,
    /// The node's clock when it executed the call.
    pub node_now: Millis,
    /// The largest value the node's clock had shown by then.
    pub node_clock_max: Millis,
    /// When the client heard the outcome (`None`: never, the outcome is unknown).
    pub completed_at: Option<Ms>,
    pub outcome: Outcome,
}

impl Op {
    /// Whether the node acknowledged the call (any reply but an error).
    pub fn acked(&self) -> bool {
        matches!(&self.outcome, Outcome::Replied(r) if !matches!(r, Reply::Error(_)))
    }

    /// When the call is known to have finished: its acknowledgement. Calls that failed, timed out or were never
    /// answered may still take effect at any later time, so they have no end.
    pub fn done_at(&self) -> Option<Ms> {
        if self.acked() {
            self.completed_at
        } else {
            None
        }
    }

    /// Whether the call may have changed the key (acknowledged or unknown; refused calls did nothing).
    pub fn may_have_written(&self) -> bool {
        self.kind.is_write() && self.outcome != Outcome::Refused
    }

    /// Whether this call finished before `other` was invoked (real-time order).
    pub fn precedes(&self, other: &Op) -> bool {
        self.done_at().is_some_and(|t| t < other.invoked_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_value_names_its_write_and_a_damaged_one_names_none() {
        let v = big_value(1234, 100_000);
        assert_eq!(v.len(), 100_000);
        assert_eq!(value_number(&v), Some(1234));
        assert_eq!(value_number(b"77"), Some(77));
        assert_eq!(value_number(&v[..99_999]), None, "truncated");
        let mut spliced = v.to_vec();
        spliced[99_000] = b'#';
        assert_eq!(value_number(&spliced), None, "another value's bytes at its end");
        let mut longer = v.to_vec();
        longer.push(filler(1234));
        assert_eq!(value_number(&longer), None, "extended");
    }
}
