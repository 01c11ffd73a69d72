//! Fuzzes the request path: frame every request in the input, then parse each into a command.
//!
//! Small limits so that the limit checks are reached; the first byte picks between feeding the input at once
//! and feeding it in two parts through the resumable parser, so both paths are covered.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shoal::resp::{command, frame::Limits, introspect, ConnCommand, Parsed, RequestParser};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else { return };
    let limits = Limits { bulk_len_max: 4096, array_len_max: 64, inline_len_max: 4096 };
    let split = if mode & 1 == 1 { usize::from(mode >> 1).min(input.len()) } else { input.len() };
    let mut parser = RequestParser::new();
    let mut buf = BytesMut::from(&input[..split]);
    let mut rest = Some(&input[split..]);
    loop {
        match parser.parse(&mut buf, &limits) {
            Ok(Some(args)) => {
                match command::parse(args) {
                    // The all-commands replies do not depend on the input and are costly under ASan: skip them.
                    Parsed::Conn(ConnCommand::CommandInfo(names) | ConnCommand::CommandDocs(names))
                        if names.is_empty() => {}
                    Parsed::Conn(conn) => {
                        let _ = introspect::command_reply(&conn);
                    }
                    _ => {}
                }
            }
            Ok(None) => match rest.take() {
                Some(more) if !more.is_empty() => buf.extend_from_slice(more),
                _ => break,
            },
            Err(_) => break,
        }
    }
});
