//! Protocol errors: a peer sent bytes that are not RESP.
//!
//! The `Display` text of the request-side variants is exactly what Redis writes, so a server can answer
//! `-ERR <text>\r\n` and close the connection as Redis does. The reply-side variants (from `value::decode`) have
//! no Redis counterpart and use the same `Protocol error: ...` style. After any of these the stream is out of
//! sync: the caller must drop the connection, never resume parsing.

use thiserror::Error;

/// Why a byte stream could not be read as RESP.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// `*<n>` where n is not an integer or exceeds `Limits::array_len_max`.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// `$<n>` where n is not an integer, negative, or exceeds `Limits::bulk_len_max`.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// `*<n>` above `PREAUTH_ARRAY_LEN_MAX` from a client that has not authenticated.
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// `$<n>` above `PREAUTH_BULK_LEN_MAX` from a client that has not authenticated.
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    /// An element of a multibulk request that does not start with `$`.
    #[error("Protocol error: expected '$', got '{}'", char::from(*.0))]
    ExpectedDollar(u8),
    /// An inline request longer than `Limits::inline_len_max`.
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    /// A `*<n>` line longer than `Limits::inline_len_max`.
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    /// A `$<n>` line longer than `Limits::inline_len_max`.
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// An inline request with an unterminated quote, or a closing quote not followed by a space.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A reply that starts with a byte that is no RESP2/RESP3 type.
    #[error("Protocol error: invalid reply type '{}'", char::from(*.0))]
    InvalidReplyType(u8),
    /// A reply header or integer that is not a valid number.
    #[error("Protocol error: invalid integer")]
    InvalidInteger,
    /// A RESP3 double that is not a valid float.
    #[error("Protocol error: invalid double")]
    InvalidDouble,
    /// A RESP3 boolean other than `#t` / `#f`.
    #[error("Protocol error: invalid boolean")]
    InvalidBoolean,
    /// A RESP3 verbatim string without its `xxx:` format prefix.
    #[error("Protocol error: invalid verbatim string")]
    InvalidVerbatim,
    /// Data not followed by `\r\n` where the reply grammar requires it.
    #[error("Protocol error: expected CRLF")]
    ExpectedCrlf,
    /// Aggregates nested deeper than the decoder allows.
    #[error("Protocol error: reply nested too deep")]
    NestingTooDeep,
}
