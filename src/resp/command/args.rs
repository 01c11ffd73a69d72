//! Helpers the command parsers share: reading integers, floats and expire times with Redis's errors.

use bytes::Bytes;

use crate::core::command::ExpireAt;
use crate::core::reply::{err_invalid_expire, Reply, ERR_NOT_FLOAT, ERR_NOT_INTEGER};
use crate::resp::number::{parse_f64, parse_i64};

/// Whether `arg` is `word` (lower case) in any case.
pub(crate) fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// Moves argument `i` out (arity is checked before parsers run, so it exists).
pub(crate) fn take(args: &mut [Bytes], i: usize) -> Bytes {
    args.get_mut(i).map(std::mem::take).unwrap_or_default()
}

/// An integer argument, or `ERR value is not an integer or out of range`.
pub(crate) fn int(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or(Reply::err(ERR_NOT_INTEGER))
}

/// A float argument, or `ERR value is not a valid float`.
pub(crate) fn float(arg: &[u8]) -> Result<f64, Reply> {
    parse_f64(arg).ok_or(Reply::err(ERR_NOT_FLOAT))
}

/// Text for error messages and INFO sections: lossy UTF-8.
pub(crate) fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

/// The unit and reference of an expire option (`EX`, `PX`, `EXAT`, `PXAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExpireKind {
    /// EX: seconds from now.
    Ex,
    /// PX: milliseconds from now.
    Px,
    /// EXAT: Unix seconds.
    ExAt,
    /// PXAT: Unix milliseconds.
    PxAt,
}

impl ExpireKind {
    /// The kind an option names, if it names one.
    pub(crate) fn from_arg(arg: &[u8]) -> Option<ExpireKind> {
        [("ex", ExpireKind::Ex), ("px", ExpireKind::Px), ("exat", ExpireKind::ExAt), ("pxat", ExpireKind::PxAt)]
            .into_iter()
            .find_map(|(word, kind)| is(arg, word).then_some(kind))
    }

    /// Reads the option's value as SET, SETEX and GETEX do: positive, and in range once in milliseconds.
    pub(crate) fn read(self, arg: &[u8], cmd: &str) -> Result<ExpireAt, Reply> {
        let n = int(arg)?;
        let seconds = matches!(self, ExpireKind::Ex | ExpireKind::ExAt);
        if n <= 0 || (seconds && n > i64::MAX / 1000) {
            return Err(err_invalid_expire(cmd));
        }
        let ms = if seconds { n * 1000 } else { n };
        Ok(match self {
            ExpireKind::Ex | ExpireKind::Px => ExpireAt::InMs(ms),
            ExpireKind::ExAt | ExpireKind::PxAt => ExpireAt::AtMs(ms),
        })
    }
}
