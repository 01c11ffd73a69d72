//! Request framing: cut one client request (multibulk or inline) off the front of a read buffer.
//!
//! Written by hand for speed, in mini-redis's shape: first *check* that a whole request is buffered (no
//! allocation), then *parse* it into `Bytes` slices of one frozen frame (zero-copy: every argument shares the
//! frame's allocation). "Need more bytes" is `Ok(None)` and leaves the buffer untouched. A request that already
//! breaks a `Limits` bound is an error at once, whether or not the rest has arrived, so the caller never buffers
//! unbounded data; results do not depend on how the bytes were split across reads.
//!
//! Before a client authenticates, `Access::Unauthenticated` holds a multibulk request to Redis's bounds for
//! unauthenticated clients (`PREAUTH_ARRAY_LEN_MAX` arguments of at most `PREAUTH_BULK_LEN_MAX` bytes), checked on
//! the `*<n>` and `$<n>` lines, before any of the data is buffered.
//!
//! Accepted as Redis accepts it: a `$<n>` or `*<n>` line ends at `\r` and the byte after it is skipped unchecked,
//! and so are the two bytes after bulk data.

use bytes::{Bytes, BytesMut};

pub use super::error::ProtocolError;
use super::inline::split_args;
use super::number::parse_i64;

/// Bounds on what one request may hold; breaking one is a `ProtocolError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk argument in bytes (Redis's `proto-max-bulk-len`).
    pub bulk_len_max: usize,
    /// Most arguments in one multibulk request.
    pub array_len_max: usize,
    /// Longest inline request, and longest `*<n>` / `$<n>` line, in bytes.
    pub inline_len_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { bulk_len_max: 512 * 1024 * 1024, array_len_max: 1024 * 1024, inline_len_max: 64 * 1024 }
    }
}

/// Most arguments in one request from a client that has not authenticated (Redis's hard-coded 10).
pub const PREAUTH_ARRAY_LEN_MAX: usize = 10;
/// Largest bulk argument from a client that has not authenticated, in bytes (Redis's hard-coded 16384).
pub const PREAUTH_BULK_LEN_MAX: usize = 16 * 1024;

/// Whether the client sending the request has authenticated (or needs no authentication).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// Requests are held to `Limits` only.
    #[default]
    Authenticated,
    /// Requests are also held to `PREAUTH_ARRAY_LEN_MAX` and `PREAUTH_BULK_LEN_MAX`.
    Unauthenticated,
}

/// Removes one complete request from the front of `buf` and returns its arguments.
///
/// `Ok(None)`: more bytes are needed and `buf` is untouched. An empty `Vec` (empty inline line, `*0`, `*-1`) is a
/// request the caller skips. After an error the stream is out of sync and the connection must be closed.
pub fn parse_request(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    RequestParser::default().parse(buf, limits)
}

/// A resumable `parse_request`: remembers how far an incomplete request was checked, so a large request that
/// arrives in many reads is scanned once, not once per read. It also keeps its scratch space between requests,
/// so a connection that owns one parses without allocating anything but the argument `Vec`.
///
/// Between calls the caller may only append to `buf`.
#[derive(Debug, Default, Clone)]
pub struct RequestParser {
    /// How far an incomplete multibulk request was checked.
    progress: Option<Progress>,
    /// Where each argument checked so far lies: (offset, length).
    spans: Vec<(usize, usize)>,
    /// How many bytes of an incomplete inline request were searched for its newline.
    inline_scanned: usize,
}

/// A multibulk request whose `*<n>` line was checked; `spans` tells how far its arguments were.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// Offset just past the `*<n>\r\n` line.
    header_end: usize,
    /// Arguments in the request.
    count: usize,
}

impl RequestParser {
    /// A parser with no request in progress.
    pub fn new() -> Self {
        RequestParser::default()
    }

    /// Same contract as [`parse_request`], resuming the check where the previous call stopped.
    pub fn parse(&mut self, buf: &mut BytesMut, limits: &Limits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        self.parse_as(buf, limits, Access::Authenticated)
    }

    /// [`parse`](Self::parse) for a client with `access`: an unauthenticated one is also held to the pre-AUTH
    /// bounds. The access may change between requests, never inside one (the caller learns of AUTH only after the
    /// request that carried it was parsed).
    pub fn parse_as(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        access: Access,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        if first != b'*' {
            return parse_inline(buf, limits, &mut self.inline_scanned);
        }
        let progress = match self.progress.take() {
            Some(progress) => progress,
            None => {
                self.spans.clear();
                match check_header(buf, limits, access)? {
                    Some(progress) => progress,
                    None => return Ok(None),
                }
            }
        };
        match check_args(buf, limits, access, progress, &mut self.spans) {
            Ok(Some(end)) => {
                let frame = buf.split_to(end).freeze();
                let args = self.spans.iter().map(|&(at, len)| frame.slice(at..at + len)).collect();
                self.forget_large_spans();
                Ok(Some(args))
            }
            Ok(None) => {
                self.progress = Some(progress);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Frees the scratch space a huge request left, so an idle connection holds little memory.
    fn forget_large_spans(&mut self) {
        const SPANS_KEPT_MAX: usize = 1024;
        if self.spans.capacity() > SPANS_KEPT_MAX {
            self.spans = Vec::new();
        }
    }
}

/// Finds the `\r` that ends the line starting at `start` (whose first byte is a type marker).
///
/// `Ok(None)` when the line, or the byte after its `\r`, has not arrived. `Err(())` when the line is longer than
/// `len_max`, checked over the bytes at hand so the answer does not depend on how the input was split.
fn find_line_end(buf: &[u8], start: usize, len_max: usize) -> Result<Option<usize>, ()> {
    let window_end = buf.len().min(start.saturating_add(len_max).saturating_add(1));
    let window = buf.get(start..window_end).unwrap_or_default();
    match window.iter().position(|&b| b == b'\r') {
        Some(offset) if start + offset + 1 < buf.len() => Ok(Some(start + offset)),
        Some(_) => Ok(None),
        None if buf.len() - start > len_max => Err(()),
        None => Ok(None),
    }
}

/// Checks the `*<n>` line; `None` when it has not fully arrived.
fn check_header(buf: &[u8], limits: &Limits, access: Access) -> Result<Option<Progress>, ProtocolError> {
    let Some(cr) = find_line_end(buf, 0, limits.inline_len_max).map_err(|()| ProtocolError::TooBigMultibulkCount)?
    else {
        return Ok(None);
    };
    let count = parse_i64(&buf[1..cr]).ok_or(ProtocolError::InvalidMultibulkLength)?;
    if count > limits.array_len_max as i64 || count > i64::from(i32::MAX) {
        return Err(ProtocolError::InvalidMultibulkLength);
    }
    if access == Access::Unauthenticated && count > PREAUTH_ARRAY_LEN_MAX as i64 {
        return Err(ProtocolError::UnauthenticatedMultibulkLength);
    }
    Ok(Some(Progress { header_end: cr + 2, count: count.max(0) as usize }))
}

/// Checks the arguments not yet in `spans`, recording where each lies; returns the request's end, or `None`
/// when more bytes are needed.
fn check_args(
    buf: &[u8],
    limits: &Limits,
    access: Access,
    progress: Progress,
    spans: &mut Vec<(usize, usize)>,
) -> Result<Option<usize>, ProtocolError> {
    let mut next = spans.last().map_or(progress.header_end, |&(at, len)| at + len + 2);
    while spans.len() < progress.count {
        let Some(&marker) = buf.get(next) else {
            return Ok(None);
        };
        if marker != b'$' {
            return Err(ProtocolError::ExpectedDollar(marker));
        }
        let Some(cr) = find_line_end(buf, next, limits.inline_len_max).map_err(|()| ProtocolError::TooBigBulkCount)?
        else {
            return Ok(None);
        };
        let len = bulk_len(&buf[next + 1..cr], limits)?;
        if access == Access::Unauthenticated && len > PREAUTH_BULK_LEN_MAX {
            return Err(ProtocolError::UnauthenticatedBulkLength);
        }
        let end = (cr + 4).saturating_add(len);
        if end > buf.len() {
            return Ok(None);
        }
        spans.push((cr + 2, len));
        next = end;
    }
    Ok(Some(next))
}

/// Reads a `$<n>` length and checks it against the limit.
fn bulk_len(digits: &[u8], limits: &Limits) -> Result<usize, ProtocolError> {
    match parse_i64(digits) {
        Some(len) if len >= 0 && len as u64 <= limits.bulk_len_max as u64 => Ok(len as usize),
        _ => Err(ProtocolError::InvalidBulkLength),
    }
}

/// Parses an inline request: one line ended by `\n` (or `\r\n`), split with Redis's quoting rules.
///
/// `scanned` is how many bytes earlier calls searched for the newline; it is reset once a line is found.
fn parse_inline(buf: &mut BytesMut, limits: &Limits, scanned: &mut usize) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let window_end = buf.len().min(limits.inline_len_max.saturating_add(1));
    let from = (*scanned).min(window_end);
    let Some(newline) = buf[from..window_end].iter().position(|&b| b == b'\n').map(|offset| from + offset) else {
        if buf.len() > limits.inline_len_max {
            return Err(ProtocolError::TooBigInline);
        }
        *scanned = window_end;
        return Ok(None);
    };
    *scanned = 0;
    let line_end = if newline > 0 && buf[newline - 1] == b'\r' { newline - 1 } else { newline };
    let frame = buf.split_to(newline + 1).freeze();
    split_args(&frame.slice(..line_end)).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Result<Option<Vec<Bytes>>, ProtocolError>;

    fn parse(input: &[u8]) -> (Parsed, usize) {
        let mut buf = BytesMut::from(input);
        let result = parse_request(&mut buf, &Limits::default());
        (result, buf.len())
    }

    fn args(list: &[&str]) -> Option<Vec<Bytes>> {
        Some(list.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect())
    }

    /// Parses every request in `input`, feeding it one byte at a time.
    fn parse_byte_by_byte(input: &[u8], limits: &Limits) -> Vec<Parsed> {
        let mut buf = BytesMut::new();
        let mut parser = RequestParser::new();
        let mut out = Vec::new();
        for &b in input {
            buf.extend_from_slice(&[b]);
            loop {
                match parser.parse(&mut buf, limits) {
                    Ok(None) => break,
                    Err(e) => return [out, vec![Err(e)]].concat(),
                    ok => out.push(ok),
                }
            }
        }
        out
    }

    /// Parses every request in `input`, given all at once.
    fn parse_all(input: &[u8], limits: &Limits) -> Vec<Parsed> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match parse_request(&mut buf, limits) {
                Ok(None) => return out,
                Err(e) => return [out, vec![Err(e)]].concat(),
                ok => out.push(ok),
            }
        }
    }

    #[test]
    fn multibulk_request() {
        let (result, left) = parse(b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$0\r\n\r\n");
        assert_eq!(result, Ok(args(&["SET", "a", ""])));
        assert_eq!(left, 0);
    }

    #[test]
    fn incomplete_requests_leave_the_buffer() {
        let full = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
        for end in 0..full.len() {
            let (result, left) = parse(&full[..end]);
            assert_eq!(result, Ok(None), "prefix of {end} bytes");
            assert_eq!(left, end);
        }
    }

    #[test]
    fn empty_requests_yield_empty_args() {
        for input in [&b"*0\r\n"[..], b"*-1\r\n", b"*-5\r\n", b"\r\n", b"\n", b"   \r\n"] {
            assert_eq!(parse(input), (Ok(Some(vec![])), 0), "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn inline_requests() {
        assert_eq!(parse(b"PING\r\n"), (Ok(args(&["PING"])), 0));
        assert_eq!(parse(b"PING\n"), (Ok(args(&["PING"])), 0));
        assert_eq!(parse(b"SET a \"b c\"\r\nGET a\r\n"), (Ok(args(&["SET", "a", "b c"])), 7));
        assert_eq!(parse(b"PING"), (Ok(None), 4));
        assert_eq!(parse(b"PING\r"), (Ok(None), 5));
    }

    #[test]
    fn pipelined_requests_come_out_in_order() {
        let input = b"*1\r\n$4\r\nPING\r\nECHO hi\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*0\r\n*1\r\n$4\r\nPI";
        let expected = vec![Ok(args(&["PING"])), Ok(args(&["ECHO", "hi"])), Ok(args(&["GET", "k"])), Ok(args(&[]))];
        assert_eq!(parse_all(input, &Limits::default()), expected);
        assert_eq!(parse_byte_by_byte(input, &Limits::default()), expected);
    }

    #[test]
    fn byte_by_byte_equals_all_at_once() {
        let limits = Limits { bulk_len_max: 8, array_len_max: 4, inline_len_max: 16 };
        let inputs: &[&[u8]] = &[
            b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\nSET a 'b c'\nPING\r\n",
            b"*1\r\n$9\r\n",
            b"*5\r\n",
            b"*1\r\nx",
            b"0123456789abcdefg",
            b"0123456789abcdef\n",
            b"0123456789abcdefg\n",
            b"*00000000000000001\r\n",
            b"*1\r\n$0000000000000001\r\n",
            b"GET \"a\r\n",
            b"*1\r\n$3\r\nabcXY*1\r\n$1\r\nz\r\n",
        ];
        for input in inputs {
            assert_eq!(
                parse_byte_by_byte(input, &limits),
                parse_all(input, &limits),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn arguments_share_the_frame() {
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"[..]);
        let frame_ptr = buf.as_ptr() as usize;
        let args = parse_request(&mut buf, &Limits::default()).unwrap().unwrap();
        assert_eq!(args[1].as_ptr() as usize, frame_ptr + 17);
    }

    #[test]
    fn error_texts_are_redis_texts() {
        let cases: &[(&[u8], &str)] = &[
            (b"*x\r\n", "Protocol error: invalid multibulk length"),
            (b"*01\r\n", "Protocol error: invalid multibulk length"),
            (b"*2147483648\r\n", "Protocol error: invalid multibulk length"),
            (b"*1048577\r\n", "Protocol error: invalid multibulk length"),
            (b"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"),
            (b"*1\r\n$x\r\n", "Protocol error: invalid bulk length"),
            (b"*1\r\n$536870913\r\n", "Protocol error: invalid bulk length"),
            (b"*1\r\nx", "Protocol error: expected '$', got 'x'"),
            (b"*2\r\n$1\r\na\r\n:1\r\n", "Protocol error: expected '$', got ':'"),
            (b"GET \"a\r\n", "Protocol error: unbalanced quotes in request"),
            (b"GET 'a'b\r\n", "Protocol error: unbalanced quotes in request"),
        ];
        for (input, text) in cases {
            let (result, _) = parse(input);
            assert_eq!(result.unwrap_err().to_string(), *text, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn limits_fail_before_the_data_arrives() {
        let limits = Limits { bulk_len_max: 10, array_len_max: 3, inline_len_max: 8 };
        let check = |input: &[u8]| parse_request(&mut BytesMut::from(input), &limits);
        assert_eq!(check(b"*4\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(check(b"*3\r\n"), Ok(None));
        assert_eq!(check(b"*1\r\n$11\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(check(b"*1\r\n$10\r\n"), Ok(None));
        assert_eq!(check(b"GET abcde"), Err(ProtocolError::TooBigInline));
        assert_eq!(check(b"GET abcd"), Ok(None));
        assert_eq!(check(b"GET abcd\n").unwrap().unwrap().len(), 2);
        assert_eq!(check(b"GET abcde\n"), Err(ProtocolError::TooBigInline));
        assert_eq!(check(b"*000000000"), Err(ProtocolError::TooBigMultibulkCount));
        assert_eq!(check(b"*1\r\n$000000000"), Err(ProtocolError::TooBigBulkCount));
        assert_eq!(ProtocolError::TooBigInline.to_string(), "Protocol error: too big inline request");
    }

    #[test]
    fn unauthenticated_bounds_fail_on_the_length_lines() {
        let unauth = |input: &[u8]| {
            RequestParser::new().parse_as(&mut BytesMut::from(input), &Limits::default(), Access::Unauthenticated)
        };
        let authed = |input: &[u8]| {
            RequestParser::new().parse_as(&mut BytesMut::from(input), &Limits::default(), Access::Authenticated)
        };
        assert_eq!(unauth(b"*11\r\n"), Err(ProtocolError::UnauthenticatedMultibulkLength));
        assert_eq!(authed(b"*11\r\n"), Ok(None));
        assert_eq!(unauth(b"*10\r\n"), Ok(None));
        assert_eq!(unauth(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n"), Err(ProtocolError::UnauthenticatedBulkLength));
        assert_eq!(authed(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n"), Ok(None));
        assert_eq!(unauth(b"*2\r\n$4\r\nAUTH\r\n$16384\r\n"), Ok(None));
        // An invalid length is reported as invalid, as Redis does, before the unauthenticated bound.
        assert_eq!(unauth(b"*1\r\n$-3\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(unauth(b"*2147483648\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(
            ProtocolError::UnauthenticatedMultibulkLength.to_string(),
            "Protocol error: unauthenticated multibulk length"
        );
        assert_eq!(ProtocolError::UnauthenticatedBulkLength.to_string(), "Protocol error: unauthenticated bulk length");
    }

    #[test]
    fn resumed_parser_matches_a_fresh_one() {
        let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::new();
        for chunk in input.chunks(5) {
            buf.extend_from_slice(chunk);
            let fresh = parse_request(&mut buf.clone(), &Limits::default());
            assert_eq!(parser.parse(&mut buf.clone(), &Limits::default()), fresh);
        }
        assert_eq!(parser.parse(&mut buf, &Limits::default()), Ok(args(&["SET", "key", "value"])));
        assert_eq!(parser.parse(&mut buf, &Limits::default()), Ok(None));
    }
}
