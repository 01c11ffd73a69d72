//! Replies as values, independent of the wire protocol.
//!
//! `resp::encode` writes a `Reply` as RESP2 or RESP3. Error texts carry their Redis prefix (`ERR`, `WRONGTYPE`,
//! `NOAUTH`, ...) so clients that match on Redis's messages keep working; the common ones are constants here.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One reply to one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// `+OK`.
    Ok,
    /// A simple string (`+PONG`, `+string`).
    Simple(Cow<'static, str>),
    /// An error; the text starts with its code (`ERR ...`).
    Error(Cow<'static, str>),
    /// An integer.
    Int(i64),
    /// A bulk string.
    Bulk(Bytes),
    /// The null reply (`$-1` in RESP2, `_` in RESP3).
    Nil,
    /// The null array (`*-1` in RESP2, `_` in RESP3).
    NilArray,
    /// An array.
    Array(Vec<Reply>),
    /// A map (RESP3 `%`; RESP2 flattens it into an array of key, value, ...).
    Map(Vec<(Reply, Reply)>),
    /// A set (RESP3 `~`; RESP2 sends an array).
    Set(Vec<Reply>),
    /// A double (RESP3 `,`; RESP2 sends a bulk string).
    Double(f64),
    /// Verbatim text (RESP3 `=` with format `txt`; RESP2 sends a bulk string).
    Verbatim(String),
}

impl Reply {
    /// An error reply from static text.
    pub const fn err(text: &'static str) -> Reply {
        Reply::Error(Cow::Borrowed(text))
    }

    /// An error reply from owned text.
    pub fn error(text: String) -> Reply {
        Reply::Error(Cow::Owned(text))
    }

    /// A bulk string reply that copies `data`.
    pub fn bulk(data: &[u8]) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(data))
    }

    /// A simple string reply from static text.
    pub const fn simple(text: &'static str) -> Reply {
        Reply::Simple(Cow::Borrowed(text))
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// Redis's text for a value that is not an integer (or out of range).
pub const ERR_NOT_INTEGER: &str = "ERR value is not an integer or out of range";
/// Redis's text for a value that is not a float.
pub const ERR_NOT_FLOAT: &str = "ERR value is not a valid float";
/// Redis's text for a syntax error in options.
pub const ERR_SYNTAX: &str = "ERR syntax error";
/// Redis's text for INCR overflow.
pub const ERR_OVERFLOW: &str = "ERR increment or decrement would overflow";
/// Redis's text for INCRBYFLOAT producing NaN or infinity.
pub const ERR_NAN_OR_INF: &str = "ERR increment would produce NaN or Infinity";
/// Redis's text when maxmemory is reached and nothing can be evicted.
pub const ERR_OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
/// Redis's text for a string that would grow past the maximum size.
pub const ERR_STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
/// Redis's text for a negative SETRANGE offset.
pub const ERR_OFFSET_RANGE: &str = "ERR offset is out of range";
/// Redis's text for an invalid cursor.
pub const ERR_INVALID_CURSOR: &str = "ERR invalid cursor";
/// Redis's text for a command that needs AUTH first.
pub const ERR_NOAUTH: &str = "NOAUTH Authentication required.";
/// Redis's text for a wrong password.
pub const ERR_WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Redis's text for an invalid expire time in `cmd` (lower-case command name).
pub fn err_invalid_expire(cmd: &str) -> Reply {
    Reply::error(format!("ERR invalid expire time in '{cmd}' command"))
}

/// Redis's text for a wrong number of arguments to `cmd` (lower-case command name).
pub fn err_wrong_arity(cmd: &str) -> Reply {
    Reply::error(format!("ERR wrong number of arguments for '{cmd}' command"))
}
