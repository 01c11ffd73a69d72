//! Reply encoding: write a `Reply` as RESP2 or RESP3 bytes.
//!
//! RESP2 has no map, set, double, verbatim or null type, so some replies are sent as their nearest RESP2 shape,
//! as Redis does: `Nil` is `$-1`, `NilArray` is `*-1`, a map is an array of key, value, ..., a set is an array,
//! a double and a verbatim string are bulk strings. Simple strings and errors are one line: any `\r` or `\n`
//! inside them is replaced by a space, so a reply can never break the stream.

use bytes::{BufMut, BytesMut};

use super::number::format_f64;
use crate::core::reply::Reply;

/// The protocol version a connection speaks (RESP2 until `HELLO 3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, the default.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

/// Appends `reply` to `out` in `proto`.
pub fn encode(reply: &Reply, proto: Protocol, out: &mut BytesMut) {
    match reply {
        Reply::Ok => out.put_slice(b"+OK\r\n"),
        Reply::Simple(text) => line(b'+', text.as_bytes(), out),
        Reply::Error(text) => line(b'-', text.as_bytes(), out),
        Reply::Int(n) => header(b':', *n, out),
        Reply::Bulk(data) => bulk(b'$', data, out),
        Reply::Nil => out.put_slice(if proto == Protocol::Resp3 { b"_\r\n" } else { b"$-1\r\n" }),
        Reply::NilArray => out.put_slice(if proto == Protocol::Resp3 { b"_\r\n" } else { b"*-1\r\n" }),
        Reply::Array(items) => aggregate(b'*', items, proto, out),
        Reply::Set(items) => aggregate(if proto == Protocol::Resp3 { b'~' } else { b'*' }, items, proto, out),
        Reply::Map(pairs) => {
            match proto {
                Protocol::Resp3 => header(b'%', pairs.len() as i64, out),
                Protocol::Resp2 => header(b'*', 2 * pairs.len() as i64, out),
            }
            for (key, value) in pairs {
                encode(key, proto, out);
                encode(value, proto, out);
            }
        }
        Reply::Double(value) => {
            let mut text = Vec::with_capacity(24);
            format_f64(*value, &mut text);
            match proto {
                Protocol::Resp3 => line(b',', &text, out),
                Protocol::Resp2 => bulk(b'$', &text, out),
            }
        }
        Reply::Verbatim(text) => match proto {
            Protocol::Resp3 => {
                header(b'=', text.len() as i64 + 4, out);
                out.put_slice(b"txt:");
                out.put_slice(text.as_bytes());
                out.put_slice(b"\r\n");
            }
            Protocol::Resp2 => bulk(b'$', text.as_bytes(), out),
        },
    }
}

/// Writes `<marker><n>\r\n`.
fn header(marker: u8, n: i64, out: &mut BytesMut) {
    out.put_u8(marker);
    out.put_slice(itoa::Buffer::new().format(n).as_bytes());
    out.put_slice(b"\r\n");
}

/// Writes a length-prefixed string: `<marker><len>\r\n<data>\r\n`.
fn bulk(marker: u8, data: &[u8], out: &mut BytesMut) {
    out.reserve(data.len() + 16);
    header(marker, data.len() as i64, out);
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// Writes a one-line reply, turning line breaks inside `text` into spaces.
fn line(marker: u8, text: &[u8], out: &mut BytesMut) {
    out.reserve(text.len() + 3);
    out.put_u8(marker);
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(text.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    } else {
        out.put_slice(text);
    }
    out.put_slice(b"\r\n");
}

/// Writes an array or set header and its items.
fn aggregate(marker: u8, items: &[Reply], proto: Protocol, out: &mut BytesMut) {
    header(marker, items.len() as i64, out);
    for item in items {
        encode(item, proto, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn enc(reply: &Reply, proto: Protocol) -> String {
        let mut out = BytesMut::new();
        encode(reply, proto, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    fn both(reply: Reply, resp2: &str, resp3: &str) {
        assert_eq!(enc(&reply, Protocol::Resp2), resp2, "RESP2 {reply:?}");
        assert_eq!(enc(&reply, Protocol::Resp3), resp3, "RESP3 {reply:?}");
    }

    #[test]
    fn scalars() {
        both(Reply::Ok, "+OK\r\n", "+OK\r\n");
        both(Reply::simple("PONG"), "+PONG\r\n", "+PONG\r\n");
        both(Reply::err("ERR bad"), "-ERR bad\r\n", "-ERR bad\r\n");
        both(Reply::Int(-42), ":-42\r\n", ":-42\r\n");
        both(Reply::Bulk(Bytes::from_static(b"a\r\nb")), "$4\r\na\r\nb\r\n", "$4\r\na\r\nb\r\n");
        both(Reply::Bulk(Bytes::new()), "$0\r\n\r\n", "$0\r\n\r\n");
        both(Reply::Nil, "$-1\r\n", "_\r\n");
        both(Reply::NilArray, "*-1\r\n", "_\r\n");
    }

    #[test]
    fn line_breaks_in_one_line_replies_become_spaces() {
        both(Reply::error("ERR a\r\nb".into()), "-ERR a  b\r\n", "-ERR a  b\r\n");
        both(Reply::Simple("x\ny".into()), "+x y\r\n", "+x y\r\n");
    }

    #[test]
    fn aggregates() {
        let items = vec![Reply::Int(1), Reply::Nil];
        both(Reply::Array(items.clone()), "*2\r\n:1\r\n$-1\r\n", "*2\r\n:1\r\n_\r\n");
        both(Reply::Set(items), "*2\r\n:1\r\n$-1\r\n", "~2\r\n:1\r\n_\r\n");
        let map = Reply::Map(vec![(Reply::bulk(b"k"), Reply::Int(7))]);
        both(map, "*2\r\n$1\r\nk\r\n:7\r\n", "%1\r\n$1\r\nk\r\n:7\r\n");
        both(Reply::Array(vec![]), "*0\r\n", "*0\r\n");
    }

    #[test]
    fn doubles_and_verbatim() {
        both(Reply::Double(1.5), "$3\r\n1.5\r\n", ",1.5\r\n");
        both(Reply::Double(3.0), "$1\r\n3\r\n", ",3\r\n");
        both(Reply::Double(f64::NEG_INFINITY), "$4\r\n-inf\r\n", ",-inf\r\n");
        both(Reply::Verbatim("hi".into()), "$2\r\nhi\r\n", "=6\r\ntxt:hi\r\n");
    }
}
