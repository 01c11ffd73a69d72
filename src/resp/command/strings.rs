//! Parsers for the string commands: GET, SET and its family, counters, ranges, MGET/MSET.
//!
//! SET's and GETEX's options follow Redis's `parseExtendedStringArgumentsOrReply`: an option may repeat, but
//! options that contradict each other (NX with XX, two kinds of expiry, KEEPTTL with an expiry) are a syntax
//! error, found before the expiry value itself is checked.

use bytes::Bytes;

use super::args::{float, int, is, take, ExpireKind};
use super::Parsed;
use crate::core::command::{Command, GetExTtl, SetCond, SetTtl};
use crate::core::reply::{err_wrong_arity, Reply, ERR_OFFSET_RANGE, ERR_SYNTAX};

/// A data command, parsed.
fn data(command: Command) -> Result<Parsed, Reply> {
    Ok(Parsed::Data(command))
}

/// GET key.
pub(crate) fn get(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::Get { key: take(&mut args, 1) })
}

/// GETDEL key.
pub(crate) fn getdel(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::GetDel { key: take(&mut args, 1) })
}

/// SET's options, as parsed before the expiry value is checked.
#[derive(Default)]
struct Options {
    cond: SetCond,
    get: bool,
    keep_ttl: bool,
    persist: bool,
    expire: Option<(ExpireKind, usize)>,
}

/// Reads the options from `args[from..]`; `set` selects SET's options, else GETEX's.
fn options(args: &[Bytes], from: usize, set: bool) -> Result<Options, Reply> {
    let mut opts = Options::default();
    let mut j = from;
    while j < args.len() {
        let opt = &args[j];
        let has_next = j + 1 < args.len();
        let kind = ExpireKind::from_arg(opt);
        if set && is(opt, "nx") && opts.cond != SetCond::IfPresent {
            opts.cond = SetCond::IfAbsent;
        } else if set && is(opt, "xx") && opts.cond != SetCond::IfAbsent {
            opts.cond = SetCond::IfPresent;
        } else if set && is(opt, "get") {
            opts.get = true;
        } else if set && is(opt, "keepttl") && opts.expire.is_none() {
            opts.keep_ttl = true;
        } else if !set && is(opt, "persist") && opts.expire.is_none() {
            opts.persist = true;
        } else if let Some(kind) = kind
            .filter(|&k| has_next && !opts.keep_ttl && !opts.persist && opts.expire.is_none_or(|(prev, _)| prev == k))
        {
            opts.expire = Some((kind, j + 1));
            j += 1;
        } else {
            return Err(Reply::err(ERR_SYNTAX));
        }
        j += 1;
    }
    Ok(opts)
}

/// SET key value [NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ms-ts | KEEPTTL].
pub(crate) fn set(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    let opts = options(&args, 3, true)?;
    let ttl = match opts.expire {
        Some((kind, at)) => SetTtl::At(kind.read(&args[at], "set")?),
        None if opts.keep_ttl => SetTtl::Keep,
        None => SetTtl::Clear,
    };
    let (key, value) = (take(&mut args, 1), take(&mut args, 2));
    data(Command::Set { key, value, cond: opts.cond, ttl, get: opts.get, reply_int: false })
}

/// SETEX / PSETEX key time value.
fn set_with_expiry(mut args: Vec<Bytes>, kind: ExpireKind, cmd: &str) -> Result<Parsed, Reply> {
    let at = kind.read(&args[2], cmd)?;
    let (key, value) = (take(&mut args, 1), take(&mut args, 3));
    data(Command::Set { key, value, cond: SetCond::Always, ttl: SetTtl::At(at), get: false, reply_int: false })
}

/// SETEX key seconds value.
pub(crate) fn setex(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    set_with_expiry(args, ExpireKind::Ex, "setex")
}

/// PSETEX key milliseconds value.
pub(crate) fn psetex(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    set_with_expiry(args, ExpireKind::Px, "psetex")
}

/// SETNX key value.
pub(crate) fn setnx(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    let (key, value) = (take(&mut args, 1), take(&mut args, 2));
    data(Command::Set { key, value, cond: SetCond::IfAbsent, ttl: SetTtl::Clear, get: false, reply_int: true })
}

/// GETSET key value.
pub(crate) fn getset(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    let (key, value) = (take(&mut args, 1), take(&mut args, 2));
    data(Command::Set { key, value, cond: SetCond::Always, ttl: SetTtl::Clear, get: true, reply_int: false })
}

/// GETEX key [EX s | PX ms | EXAT ts | PXAT ms-ts | PERSIST].
pub(crate) fn getex(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    let opts = options(&args, 2, false)?;
    let ttl = match opts.expire {
        Some((kind, at)) => GetExTtl::At(kind.read(&args[at], "getex")?),
        None if opts.persist => GetExTtl::Persist,
        None => GetExTtl::Keep,
    };
    data(Command::GetEx { key: take(&mut args, 1), ttl })
}

/// MGET key [key ...].
pub(crate) fn mget(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    args.remove(0);
    data(Command::MGet { keys: args })
}

/// MSET / MSETNX key value [key value ...].
fn mset_generic(args: Vec<Bytes>, if_none_exist: bool, cmd: &str) -> Result<Parsed, Reply> {
    if args.len() % 2 == 0 {
        return Err(err_wrong_arity(cmd));
    }
    let mut rest = args.into_iter().skip(1);
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    while let (Some(key), Some(value)) = (rest.next(), rest.next()) {
        pairs.push((key, value));
    }
    data(Command::MSet { pairs, if_none_exist })
}

/// MSET key value [key value ...].
pub(crate) fn mset(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    mset_generic(args, false, "mset")
}

/// MSETNX key value [key value ...].
pub(crate) fn msetnx(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    mset_generic(args, true, "msetnx")
}

/// INCR key.
pub(crate) fn incr(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::IncrBy { key: take(&mut args, 1), delta: 1 })
}

/// DECR key.
pub(crate) fn decr(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::IncrBy { key: take(&mut args, 1), delta: -1 })
}

/// INCRBY key increment.
pub(crate) fn incrby(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    let delta = int(&args[2])?;
    data(Command::IncrBy { key: take(&mut args, 1), delta })
}

/// DECRBY key decrement.
pub(crate) fn decrby(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    let decrement = int(&args[2])?;
    let delta = decrement.checked_neg().ok_or(Reply::err("ERR decrement would overflow"))?;
    data(Command::IncrBy { key: take(&mut args, 1), delta })
}

/// INCRBYFLOAT key increment.
pub(crate) fn incrbyfloat(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    let delta = float(&args[2])?;
    data(Command::IncrByFloat { key: take(&mut args, 1), delta })
}

/// APPEND key value.
pub(crate) fn append(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    let (key, value) = (take(&mut args, 1), take(&mut args, 2));
    data(Command::Append { key, value })
}

/// STRLEN key.
pub(crate) fn strlen(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    data(Command::StrLen { key: take(&mut args, 1) })
}

/// GETRANGE key start end.
pub(crate) fn getrange(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    let (start, end) = (int(&args[2])?, int(&args[3])?);
    data(Command::GetRange { key: take(&mut args, 1), start, end })
}

/// SETRANGE key offset value.
pub(crate) fn setrange(mut args: Vec<Bytes>) -> Result<Parsed, Reply> {
    let offset = u64::try_from(int(&args[2])?).map_err(|_| Reply::err(ERR_OFFSET_RANGE))?;
    let (key, value) = (take(&mut args, 1), take(&mut args, 3));
    data(Command::SetRange { key, offset, value })
}
