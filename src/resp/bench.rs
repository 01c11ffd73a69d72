//! A quick throughput check of the request path (ignored by default; run in release):
//! `cargo test --release --lib resp::bench -- --ignored --nocapture`.
//!
//! It prints ns per request for framing alone and for framing plus command parsing, over 1M pipelined
//! `SET key:NNNNNN <100 bytes>` requests fed in 16 KiB reads, as a connection would see them.

use std::time::Instant;

use bytes::BytesMut;

use super::command::{parse, Parsed};
use super::frame::{Limits, RequestParser};

const REQUESTS: usize = 1_000_000;
const READ_LEN: usize = 16 * 1024;

/// The wire bytes of `REQUESTS` SET requests.
fn pipeline() -> Vec<u8> {
    let value = [b'x'; 100];
    let mut wire = Vec::with_capacity(REQUESTS * 140);
    for i in 0..REQUESTS {
        let key = format!("key:{:06}", i % 1_000_000);
        wire.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$100\r\n", key.len()).as_bytes());
        wire.extend_from_slice(&value);
        wire.extend_from_slice(b"\r\n");
    }
    wire
}

/// Feeds `wire` in reads of `READ_LEN` and calls `each` on every request; returns ns per request.
fn run(wire: &[u8], mut each: impl FnMut(Vec<bytes::Bytes>)) -> f64 {
    let limits = Limits::default();
    let mut parser = RequestParser::new();
    let mut buf = BytesMut::with_capacity(READ_LEN * 2);
    let mut count = 0;
    let start = Instant::now();
    for chunk in wire.chunks(READ_LEN) {
        buf.extend_from_slice(chunk);
        while let Some(args) = parser.parse(&mut buf, &limits).expect("valid input") {
            each(args);
            count += 1;
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(count, REQUESTS);
    elapsed.as_nanos() as f64 / count as f64
}

#[test]
#[ignore]
fn parse_one_million_pipelined_sets() {
    let wire = pipeline();
    for round in 0..3 {
        let frame_ns = run(&wire, |args| assert_eq!(args.len(), 3));
        let full_ns = run(&wire, |args| assert!(matches!(parse(args), Parsed::Data(_))));
        println!("round {round}: parse_request {frame_ns:.1} ns/request, parse_request + command::parse {full_ns:.1} ns/request");
    }
}
