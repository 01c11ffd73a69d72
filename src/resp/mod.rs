//! The Redis protocol (RESP2 and RESP3): request framing, command parsing and reply encoding, all pure.
//!
//! Bytes in: `frame::parse_request` cuts a request into argument slices, `command::parse` turns them into a
//! `core::command::Command` or a connection-level `ConnCommand`. Replies out: `encode::encode` writes a
//! `core::reply::Reply` as RESP2 or RESP3. `value::decode` reads replies back (tests and Rust clients). No I/O,
//! no clock, no tokio: the runtime owns the sockets.

pub mod error;
pub mod frame;
mod inline;
pub mod number;

pub use error::ProtocolError;
pub use frame::{parse_request, Limits, RequestParser};
