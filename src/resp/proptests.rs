//! Property tests across the RESP modules: codecs round-trip, and no input makes a parser panic.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::encode::{encode, Protocol};
use super::frame::{parse_request, Limits, RequestParser};
use super::number::format_f64;
use super::value::{decode, Value};
use crate::core::reply::Reply;

/// Any reply, nested a few levels deep.
fn reply() -> impl Strategy<Value = Reply> {
    let leaf = prop_oneof![
        Just(Reply::Ok),
        ".{0,12}".prop_map(|s| Reply::Simple(s.into())),
        ".{0,12}".prop_map(|s| Reply::Error(s.into())),
        any::<i64>().prop_map(Reply::Int),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(|b| Reply::Bulk(b.into())),
        Just(Reply::Nil),
        Just(Reply::NilArray),
        any::<f64>().prop_filter("NaN never equals itself", |d| !d.is_nan()).prop_map(Reply::Double),
        Just(Reply::Double(f64::INFINITY)),
        ".{0,12}".prop_map(Reply::Verbatim),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Reply::Array),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Reply::Set),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Reply::Map),
        ]
    })
}

/// What `decode` must return for `reply` encoded in `proto` (the RESP2 mappings lose the RESP3 types).
fn expected(reply: &Reply, proto: Protocol) -> Value {
    let resp3 = proto == Protocol::Resp3;
    let one_line = |s: &str| s.replace(['\r', '\n'], " ");
    let list = |items: &[Reply]| items.iter().map(|r| expected(r, proto)).collect::<Vec<_>>();
    match reply {
        Reply::Ok => Value::Simple("OK".into()),
        Reply::Simple(s) => Value::Simple(one_line(s)),
        Reply::Error(s) => Value::Error(one_line(s)),
        Reply::Int(n) => Value::Int(*n),
        Reply::Bulk(b) => Value::Bulk(b.clone()),
        Reply::Nil => Value::Nil,
        Reply::NilArray if resp3 => Value::Nil,
        Reply::NilArray => Value::NilArray,
        Reply::Array(items) => Value::Array(list(items)),
        Reply::Set(items) if resp3 => Value::Set(list(items)),
        Reply::Set(items) => Value::Array(list(items)),
        Reply::Map(pairs) if resp3 => {
            Value::Map(pairs.iter().map(|(k, v)| (expected(k, proto), expected(v, proto))).collect())
        }
        Reply::Map(pairs) => {
            Value::Array(pairs.iter().flat_map(|(k, v)| [expected(k, proto), expected(v, proto)]).collect())
        }
        Reply::Double(d) if resp3 => Value::Double(*d),
        Reply::Double(d) => {
            let mut text = Vec::new();
            format_f64(*d, &mut text);
            Value::Bulk(text.into())
        }
        Reply::Verbatim(s) if resp3 => Value::Verbatim { format: "txt".into(), text: Bytes::from(s.clone()) },
        Reply::Verbatim(s) => Value::Bulk(Bytes::from(s.clone())),
    }
}

/// `args` as a client writes them: a multibulk request.
fn multibulk(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Bytes that look like requests often enough to get past the first check.
fn request_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"*".to_vec()),
        Just(b"$".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"'".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\\x4".to_vec()),
        "-?[0-9]{1,3}".prop_map(String::into_bytes),
        "(?i)(set|get|expire|scan|client|command|hello|ex|px|nx|gt|count|match)".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..6),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

/// Parses every request in `input` (and each into a command) until it runs out or fails.
fn parse_everything(input: &[u8]) {
    let limits = Limits { bulk_len_max: 64, array_len_max: 16, inline_len_max: 64 };
    let mut buf = BytesMut::from(input);
    while let Ok(Some(args)) = parse_request(&mut buf, &limits) {
        let _ = super::command::parse(args);
    }
}

proptest! {
    #[test]
    fn replies_round_trip(reply in reply()) {
        for proto in [Protocol::Resp2, Protocol::Resp3] {
            let mut out = BytesMut::new();
            encode(&reply, proto, &mut out);
            let decoded = decode(&out).unwrap();
            prop_assert_eq!(decoded, Some((expected(&reply, proto), out.len())));
        }
    }

    #[test]
    fn resp2_doubles_read_back_exactly(d in any::<f64>().prop_filter("not NaN", |d| !d.is_nan())) {
        let mut text = Vec::new();
        format_f64(d, &mut text);
        prop_assert_eq!(std::str::from_utf8(&text).unwrap().parse::<f64>().unwrap(), d);
    }

    #[test]
    fn requests_round_trip_split_anywhere(
        args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..8),
        split in any::<prop::sample::Index>(),
    ) {
        let wire = multibulk(&args);
        let at = split.index(wire.len() + 1);
        let want: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::from(&wire[..at]);
        let first = parser.parse(&mut buf, &Limits::default()).unwrap();
        if at < wire.len() {
            prop_assert_eq!(first, None);
            buf.extend_from_slice(&wire[at..]);
            prop_assert_eq!(parser.parse(&mut buf, &Limits::default()).unwrap(), Some(want));
        } else {
            prop_assert_eq!(first, Some(want));
        }
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..256)) {
        parse_everything(&input);
        let _ = decode(&input);
    }

    #[test]
    fn parsers_never_panic_on_request_like_bytes(input in request_like_bytes()) {
        parse_everything(&input);
        let _ = decode(&input);
    }
}
