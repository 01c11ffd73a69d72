//! Parsers for the lock commands: LOCK.ACQUIRE, LOCK.RENEW, LOCK.RELEASE, LOCK.INFO.
//!
//! Lock names and owners are text (lossy UTF-8); lease times are positive milliseconds; tokens are the
//! non-negative integers LOCK.ACQUIRE returned.

use bytes::Bytes;

use super::args::{int, text};
use super::Parsed;
use crate::core::command::Command;
use crate::core::locks::LockOp;
use crate::core::reply::Reply;

/// Longest lease a client may ask for: one day.
pub const LEASE_MS_MAX: i64 = 86_400_000;

fn lease(arg: &[u8]) -> Result<u64, Reply> {
    match int(arg)? {
        ms @ 1..=LEASE_MS_MAX => Ok(ms as u64),
        _ => Err(Reply::err("ERR invalid lease time: expected milliseconds between 1 and 86400000")),
    }
}

fn token(arg: &[u8]) -> Result<u64, Reply> {
    u64::try_from(int(arg)?).map_err(|_| Reply::err("ERR invalid fencing token"))
}

fn lock(op: LockOp) -> Result<Parsed, Reply> {
    Ok(Parsed::Data(Command::Lock(op)))
}

/// LOCK.ACQUIRE name owner ttl_ms.
pub(crate) fn acquire(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    lock(LockOp::Acquire { name: text(&args[1]), owner: text(&args[2]), token: 0, ttl_ms: lease(&args[3])? })
}

/// LOCK.RENEW name owner token ttl_ms.
pub(crate) fn renew(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    lock(LockOp::Renew {
        name: text(&args[1]),
        owner: text(&args[2]),
        token: token(&args[3])?,
        ttl_ms: lease(&args[4])?,
    })
}

/// LOCK.RELEASE name owner token.
pub(crate) fn release(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    lock(LockOp::Release { name: text(&args[1]), owner: text(&args[2]), token: token(&args[3])? })
}

/// LOCK.INFO name.
pub(crate) fn info(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    lock(LockOp::Info { name: text(&args[1]) })
}
