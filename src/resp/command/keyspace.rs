//! Parsers for the keyspace commands: DEL, EXISTS, the EXPIRE family, TTL, TYPE, KEYS, SCAN, FLUSH, ...
//!
//! EXPIRE's checks follow Redis's `expireGenericCommand`: the NX/XX/GT/LT options first, then the integer, then
//! the overflow of seconds to milliseconds. Adding the base time (and its overflow) is `core`'s, which has the
//! clock.

use bytes::Bytes;

use super::args::{int, is, take, text};
use super::Parsed;
use crate::core::command::{Command, ExpireAt, ExpireCond, TimeUnit};
use crate::core::reply::{err_invalid_expire, Reply, ERR_INVALID_CURSOR, ERR_SYNTAX};
use crate::resp::number::parse_cursor;

/// A data command, parsed.
fn data(command: Command) -> Result<Parsed, Reply> {
    Ok(Parsed::Data(command))
}

/// The arguments after the command name.
fn key_list(mut args: Vec<Bytes>) -> Vec<Bytes> {
    args.remove(0);
    args
}

/// DEL / UNLINK key [key ...].
pub(crate) fn del(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::Del { keys: key_list(args) })
}

/// EXISTS key [key ...].
pub(crate) fn exists(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::Exists { keys: key_list(args) })
}

/// TOUCH key [key ...].
pub(crate) fn touch(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::Touch { keys: key_list(args) })
}

/// EXPIRE's NX / XX / GT / LT options, checked for contradictions.
fn expire_cond(options: &[Bytes]) -> Result<ExpireCond, Reply> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in options {
        match () {
            _ if is(opt, "nx") => nx = true,
            _ if is(opt, "xx") => xx = true,
            _ if is(opt, "gt") => gt = true,
            _ if is(opt, "lt") => lt = true,
            _ => return Err(Reply::error(format!("ERR Unsupported option {}", text(opt)))),
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Reply::err("ERR NX and XX, GT or LT options at the same time are not compatible"));
    }
    if gt && lt {
        return Err(Reply::err("ERR GT and LT options at the same time are not compatible"));
    }
    // XX GT is GT (a key without expiry never passes GT); XX LT needs a TTL and a smaller one.
    Ok(match (nx, xx, gt, lt) {
        (true, ..) => ExpireCond::IfNoTtl,
        (_, true, _, true) => ExpireCond::IfTtlAndLess,
        (_, _, true, _) => ExpireCond::Greater,
        (_, _, _, true) => ExpireCond::Less,
        (_, true, ..) => ExpireCond::IfTtl,
        _ => ExpireCond::Always,
    })
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key time [NX | XX | GT | LT].
fn expire_generic(mut args: Vec<Bytes>, seconds: bool, absolute: bool, cmd: &str) -> Result<Parsed, Reply> {
    let cond = expire_cond(&args[3..])?;
    let when = int(&args[2])?;
    let ms = if seconds { when.checked_mul(1000).ok_or_else(|| err_invalid_expire(cmd))? } else { when };
    let at = if absolute { ExpireAt::AtMs(ms) } else { ExpireAt::InMs(ms) };
    data(Command::Expire { key: take(&mut args, 1), at, cond })
}

/// EXPIRE key seconds [NX | XX | GT | LT].
pub(crate) fn expire(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    expire_generic(args, true, false, "expire")
}

/// PEXPIRE key milliseconds [NX | XX | GT | LT].
pub(crate) fn pexpire(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    expire_generic(args, false, false, "pexpire")
}

/// EXPIREAT key unix-time-seconds [NX | XX | GT | LT].
pub(crate) fn expireat(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    expire_generic(args, true, true, "expireat")
}

/// PEXPIREAT key unix-time-milliseconds [NX | XX | GT | LT].
pub(crate) fn pexpireat(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    expire_generic(args, false, true, "pexpireat")
}

/// TTL key.
pub(crate) fn ttl(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::Ttl { key: take(&mut args, 1), unit: TimeUnit::Seconds })
}

/// PTTL key.
pub(crate) fn pttl(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::Ttl { key: take(&mut args, 1), unit: TimeUnit::Millis })
}

/// EXPIRETIME key.
pub(crate) fn expiretime(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::ExpireTime { key: take(&mut args, 1), unit: TimeUnit::Seconds })
}

/// PEXPIRETIME key.
pub(crate) fn pexpiretime(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::ExpireTime { key: take(&mut args, 1), unit: TimeUnit::Millis })
}

/// PERSIST key.
pub(crate) fn persist(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::Persist { key: take(&mut args, 1) })
}

/// TYPE key.
pub(crate) fn key_type(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::Type { key: take(&mut args, 1) })
}

/// DBSIZE.
pub(crate) fn dbsize(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::DbSize)
}

/// SHOAL.MEMBERS.
pub(crate) fn members(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::Members)
}

/// SHOAL.OWNERS key.
pub(crate) fn owners(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::Owners { key: take(&mut args, 1) })
}

/// SHOAL.LOCALGET key.
pub(crate) fn localget(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::LocalGet { key: take(&mut args, 1) })
}

/// SHOAL.READY.
pub(crate) fn ready(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::Ready)
}

/// RANDOMKEY.
pub(crate) fn randomkey(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::RandomKey)
}

/// FLUSHALL / FLUSHDB [ASYNC | SYNC].
pub(crate) fn flush(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    match args.get(1) {
        None => data(Command::FlushAll),
        Some(mode) if args.len() == 2 && (is(mode, "async") || is(mode, "sync")) => data(Command::FlushAll),
        Some(_) => Err(Reply::err(ERR_SYNTAX)),
    }
}

/// KEYS pattern.
pub(crate) fn keys(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::Keys { pattern: take(&mut args, 1) })
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type].
pub(crate) fn scan(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    const COUNT_DEFAULT: usize = 10;
    let cursor = parse_cursor(&args[1]).ok_or(Reply::err(ERR_INVALID_CURSOR))?;
    let (mut pattern, mut count, mut type_filter) = (None, COUNT_DEFAULT, None);
    let mut i = 2;
    while i < args.len() {
        let has_value = i + 1 < args.len();
        if has_value && is(&args[i], "count") {
            let n = int(&args[i + 1])?;
            count = usize::try_from(n).ok().filter(|&n| n >= 1).ok_or(Reply::err(ERR_SYNTAX))?;
        } else if has_value && is(&args[i], "match") {
            pattern = Some(take(&mut args, i + 1)).filter(|p| &p[..] != b"*");
        } else if has_value && is(&args[i], "type") {
            type_filter = Some(take(&mut args, i + 1));
        } else {
            return Err(Reply::err(ERR_SYNTAX));
        }
        i += 2;
    }
    data(Command::Scan { cursor, pattern, count, type_filter })
}
