//! Reply decoding: read any RESP2 or RESP3 reply into a `Value`.
//!
//! The client side of the protocol, for tests (it is how the round-trip property checks `encode`) and for any
//! Rust client Shoal grows. It copies what it reads, so it works on a plain `&[u8]`; "need more bytes" is
//! `Ok(None)`. It accepts every RESP3 type, streamed strings and aggregates, and attributes. It is strict about
//! `\r\n` after every line and payload, and refuses nesting deeper than `DEPTH_MAX`, so hostile input can
//! neither desynchronise it silently nor overflow the stack.

use bytes::Bytes;

use super::error::ProtocolError;
use super::number::parse_i64;

/// Deepest nesting of aggregates the decoder accepts.
pub const DEPTH_MAX: usize = 128;

/// One decoded reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `+text`.
    Simple(String),
    /// `-text`.
    Error(String),
    /// `:n`.
    Int(i64),
    /// `$n` bulk string.
    Bulk(Bytes),
    /// `$-1` or RESP3 `_`.
    Nil,
    /// `*-1`.
    NilArray,
    /// `*n` array.
    Array(Vec<Value>),
    /// RESP3 `%n` map, in wire order.
    Map(Vec<(Value, Value)>),
    /// RESP3 `~n` set, in wire order.
    Set(Vec<Value>),
    /// RESP3 `>n` push message.
    Push(Vec<Value>),
    /// RESP3 `,` double.
    Double(f64),
    /// RESP3 `#t` / `#f`.
    Bool(bool),
    /// RESP3 `(` big number, as its decimal text.
    BigNumber(String),
    /// RESP3 `!n` blob error.
    BlobError(Bytes),
    /// RESP3 `=n` verbatim string: a three-letter format (`txt`, `mkd`) and the text.
    Verbatim {
        /// The format, such as `txt`.
        format: String,
        /// The text.
        text: Bytes,
    },
    /// RESP3 `|n` attributes, followed by the value they describe.
    Attribute {
        /// The attribute map.
        attrs: Vec<(Value, Value)>,
        /// The reply they describe.
        value: Box<Value>,
    },
}

/// Decodes one reply from the front of `buf`: the value and how many bytes it took, or `None` if incomplete.
pub fn decode(buf: &[u8]) -> Result<Option<(Value, usize)>, ProtocolError> {
    let mut decoder = Decoder { buf, pos: 0 };
    match decoder.value(0) {
        Ok(value) => Ok(Some((value, decoder.pos))),
        Err(Stop::Incomplete) => Ok(None),
        Err(Stop::Invalid(e)) => Err(e),
    }
}

/// Why decoding stopped early.
enum Stop {
    /// The buffer ends inside the reply.
    Incomplete,
    /// The bytes are not RESP.
    Invalid(ProtocolError),
}

impl From<ProtocolError> for Stop {
    fn from(e: ProtocolError) -> Self {
        Stop::Invalid(e)
    }
}

/// A cursor over the input.
struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// Reads one value; `depth` counts the aggregates around it.
    fn value(&mut self, depth: usize) -> Result<Value, Stop> {
        if depth > DEPTH_MAX {
            return Err(ProtocolError::NestingTooDeep.into());
        }
        let marker = *self.buf.get(self.pos).ok_or(Stop::Incomplete)?;
        self.pos += 1;
        let line = self.line()?;
        Ok(match marker {
            b'+' => Value::Simple(String::from_utf8_lossy(line).into_owned()),
            b'-' => Value::Error(String::from_utf8_lossy(line).into_owned()),
            b':' => Value::Int(int(line)?),
            b'_' if line.is_empty() => Value::Nil,
            b'#' => Value::Bool(boolean(line)?),
            b',' => Value::Double(double(line)?),
            b'(' => Value::BigNumber(big_number(line)?),
            b'$' if line == b"-1" => Value::Nil,
            b'$' if line == b"?" => Value::Bulk(self.streamed_string()?),
            b'$' => Value::Bulk(self.payload(line)?),
            b'!' => Value::BlobError(self.payload(line)?),
            b'=' => verbatim(self.payload(line)?)?,
            b'*' if line == b"-1" => Value::NilArray,
            b'*' => Value::Array(self.items(line, depth)?),
            b'~' => Value::Set(self.items(line, depth)?),
            b'>' => Value::Push(self.items(line, depth)?),
            b'%' => Value::Map(self.pairs(line, depth)?),
            b'|' => {
                let attrs = self.pairs(line, depth)?;
                Value::Attribute { attrs, value: Box::new(self.value(depth + 1)?) }
            }
            _ => return Err(ProtocolError::InvalidReplyType(marker).into()),
        })
    }

    /// Reads up to the next `\r\n` and moves past it.
    fn line(&mut self) -> Result<&'a [u8], Stop> {
        let rest = &self.buf[self.pos..];
        let cr = rest.iter().position(|&b| b == b'\r').ok_or(Stop::Incomplete)?;
        match rest.get(cr + 1) {
            None => Err(Stop::Incomplete),
            Some(b'\n') => {
                self.pos += cr + 2;
                Ok(&rest[..cr])
            }
            Some(_) => Err(ProtocolError::ExpectedCrlf.into()),
        }
    }

    /// Reads a payload of the length in `header`, then its `\r\n`.
    fn payload(&mut self, header: &[u8]) -> Result<Bytes, Stop> {
        let len = length(header)?;
        let rest = &self.buf[self.pos..];
        if rest.len() < len.saturating_add(2) {
            return Err(Stop::Incomplete);
        }
        if &rest[len..len + 2] != b"\r\n" {
            return Err(ProtocolError::ExpectedCrlf.into());
        }
        self.pos += len + 2;
        Ok(Bytes::copy_from_slice(&rest[..len]))
    }

    /// Reads `;n` chunks up to the empty one that ends a streamed string.
    fn streamed_string(&mut self) -> Result<Bytes, Stop> {
        let mut data = Vec::new();
        loop {
            let marker = *self.buf.get(self.pos).ok_or(Stop::Incomplete)?;
            if marker != b';' {
                return Err(ProtocolError::InvalidReplyType(marker).into());
            }
            self.pos += 1;
            let header = self.line()?;
            let chunk = self.payload(header)?;
            if chunk.is_empty() {
                return Ok(data.into());
            }
            data.extend_from_slice(&chunk);
        }
    }

    /// Reads `header` items (or, for `?`, items up to the `.` that ends a streamed aggregate).
    fn items(&mut self, header: &[u8], depth: usize) -> Result<Vec<Value>, Stop> {
        if header == b"?" {
            let mut items = Vec::new();
            while !self.end_of_stream()? {
                items.push(self.value(depth + 1)?);
            }
            return Ok(items);
        }
        let count = length(header)?;
        let mut items = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            items.push(self.value(depth + 1)?);
        }
        Ok(items)
    }

    /// Reads `header` key-value pairs (or, for `?`, pairs up to the `.` that ends a streamed map).
    fn pairs(&mut self, header: &[u8], depth: usize) -> Result<Vec<(Value, Value)>, Stop> {
        let mut pairs = Vec::new();
        if header == b"?" {
            while !self.end_of_stream()? {
                pairs.push((self.value(depth + 1)?, self.value(depth + 1)?));
            }
            return Ok(pairs);
        }
        for _ in 0..length(header)? {
            pairs.push((self.value(depth + 1)?, self.value(depth + 1)?));
        }
        Ok(pairs)
    }

    /// Consumes the `.\r\n` that ends a streamed aggregate, if it comes next.
    fn end_of_stream(&mut self) -> Result<bool, Stop> {
        if *self.buf.get(self.pos).ok_or(Stop::Incomplete)? != b'.' {
            return Ok(false);
        }
        self.pos += 1;
        if !self.line()?.is_empty() {
            return Err(ProtocolError::ExpectedCrlf.into());
        }
        Ok(true)
    }
}

/// An integer line.
fn int(line: &[u8]) -> Result<i64, Stop> {
    Ok(parse_i64(line).ok_or(ProtocolError::InvalidInteger)?)
}

/// A non-negative length line.
fn length(line: &[u8]) -> Result<usize, Stop> {
    usize::try_from(int(line)?).map_err(|_| ProtocolError::InvalidInteger.into())
}

/// A RESP3 boolean line.
fn boolean(line: &[u8]) -> Result<bool, Stop> {
    match line {
        b"t" => Ok(true),
        b"f" => Ok(false),
        _ => Err(ProtocolError::InvalidBoolean.into()),
    }
}

/// A RESP3 double line (`1.5`, `10`, `1e+21`, `inf`, `-inf`, `nan`).
fn double(line: &[u8]) -> Result<f64, Stop> {
    let text = std::str::from_utf8(line).map_err(|_| ProtocolError::InvalidDouble)?;
    Ok(text.parse().map_err(|_| ProtocolError::InvalidDouble)?)
}

/// A RESP3 big number line: an optional `-` and decimal digits.
fn big_number(line: &[u8]) -> Result<String, Stop> {
    let digits = line.strip_prefix(b"-").unwrap_or(line);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ProtocolError::InvalidInteger.into());
    }
    Ok(String::from_utf8_lossy(line).into_owned())
}

/// A RESP3 verbatim payload: `fmt:text`.
fn verbatim(payload: Bytes) -> Result<Value, Stop> {
    if payload.len() < 4 || payload[3] != b':' {
        return Err(ProtocolError::InvalidVerbatim.into());
    }
    let format = String::from_utf8_lossy(&payload[..3]).into_owned();
    Ok(Value::Verbatim { format, text: payload.slice(4..) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(input: &[u8]) -> Value {
        let (value, used) = decode(input).unwrap().unwrap();
        assert_eq!(used, input.len(), "{:?}", String::from_utf8_lossy(input));
        value
    }

    fn bulk(s: &str) -> Value {
        Value::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn resp2_types() {
        assert_eq!(one(b"+OK\r\n"), Value::Simple("OK".into()));
        assert_eq!(one(b"-ERR x\r\n"), Value::Error("ERR x".into()));
        assert_eq!(one(b":-7\r\n"), Value::Int(-7));
        assert_eq!(one(b"$3\r\na\r\n\r\n"), bulk("a\r\n"));
        assert_eq!(one(b"$-1\r\n"), Value::Nil);
        assert_eq!(one(b"*-1\r\n"), Value::NilArray);
        assert_eq!(one(b"*2\r\n:1\r\n$1\r\nx\r\n"), Value::Array(vec![Value::Int(1), bulk("x")]));
    }

    #[test]
    fn resp3_types() {
        assert_eq!(one(b"_\r\n"), Value::Nil);
        assert_eq!(one(b"#t\r\n"), Value::Bool(true));
        assert_eq!(one(b",-inf\r\n"), Value::Double(f64::NEG_INFINITY));
        assert_eq!(one(b",1e+21\r\n"), Value::Double(1e21));
        assert_eq!(
            one(b"(-123456789012345678901234567890\r\n"),
            Value::BigNumber("-123456789012345678901234567890".into())
        );
        assert_eq!(one(b"!5\r\nERR x\r\n"), Value::BlobError(Bytes::from_static(b"ERR x")));
        assert_eq!(one(b"=6\r\ntxt:hi\r\n"), Value::Verbatim { format: "txt".into(), text: Bytes::from_static(b"hi") });
        assert_eq!(one(b"%1\r\n+a\r\n:1\r\n"), Value::Map(vec![(Value::Simple("a".into()), Value::Int(1))]));
        assert_eq!(one(b"~1\r\n:1\r\n"), Value::Set(vec![Value::Int(1)]));
        assert_eq!(one(b">1\r\n:1\r\n"), Value::Push(vec![Value::Int(1)]));
        assert_eq!(
            one(b"|1\r\n+ttl\r\n:3\r\n:9\r\n"),
            Value::Attribute {
                attrs: vec![(Value::Simple("ttl".into()), Value::Int(3))],
                value: Box::new(Value::Int(9))
            }
        );
    }

    #[test]
    fn streamed_types() {
        assert_eq!(one(b"$?\r\n;2\r\nab\r\n;1\r\nc\r\n;0\r\n\r\n"), bulk("abc"));
        assert_eq!(one(b"*?\r\n:1\r\n:2\r\n.\r\n"), Value::Array(vec![Value::Int(1), Value::Int(2)]));
        assert_eq!(one(b"%?\r\n+a\r\n:1\r\n.\r\n"), Value::Map(vec![(Value::Simple("a".into()), Value::Int(1))]));
    }

    #[test]
    fn incomplete_is_none_at_every_prefix() {
        let input = b"*3\r\n$3\r\nabc\r\n%1\r\n+k\r\n,1.5\r\n$?\r\n;1\r\na\r\n;0\r\n\r\n";
        for end in 0..input.len() {
            assert_eq!(decode(&input[..end]), Ok(None), "prefix of {end} bytes");
        }
        assert!(decode(input).unwrap().is_some());
    }

    #[test]
    fn invalid_input_is_an_error() {
        let cases: &[(&[u8], ProtocolError)] = &[
            (b"?\r\n", ProtocolError::InvalidReplyType(b'?')),
            (b":1x\r\n", ProtocolError::InvalidInteger),
            (b"$-2\r\n", ProtocolError::InvalidInteger),
            (b"$1\r\nabc", ProtocolError::ExpectedCrlf),
            (b"+a\rb\r\n", ProtocolError::ExpectedCrlf),
            (b"#x\r\n", ProtocolError::InvalidBoolean),
            (b",abc\r\n", ProtocolError::InvalidDouble),
            (b"=2\r\nab\r\n", ProtocolError::InvalidVerbatim),
            (b"_x\r\n", ProtocolError::InvalidReplyType(b'_')),
        ];
        for (input, error) in cases {
            assert_eq!(decode(input), Err(error.clone()), "{:?}", String::from_utf8_lossy(input));
        }
        let deep = b"*1\r\n".repeat(DEPTH_MAX + 2);
        assert_eq!(decode(&deep), Err(ProtocolError::NestingTooDeep));
    }
}
