//! The Redis protocol (RESP2 and RESP3): request framing, command parsing and reply encoding, all pure.
//!
//! Bytes in: `frame::parse_request` cuts a request into argument slices, `command::parse` turns them into a
//! `core::command::Command` or a connection-level `ConnCommand` (using the command `table`). Replies out:
//! `encode::encode` writes a `core::reply::Reply` as RESP2 or RESP3, and `introspect::command_reply` builds the
//! answers to COMMAND. `value::decode` reads replies back (tests and Rust clients). No I/O, no clock, no tokio:
//! the runtime owns the sockets.

pub mod command;
pub mod encode;
pub mod error;
pub mod frame;
mod inline;
pub mod introspect;
pub mod table;
pub mod value;

/// Redis's number rules live in `core` (the store parses stored values with them too).
pub use crate::core::number;

#[cfg(test)]
mod bench;
#[cfg(test)]
mod proptests;

pub use command::{parse, ClientAttr, ConnCommand, Parsed};
pub use encode::{encode, Protocol};
pub use error::ProtocolError;
pub use frame::{parse_request, Limits, RequestParser};
pub use introspect::command_reply;
pub use value::{decode, Value};
