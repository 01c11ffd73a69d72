//! Replication: consistency levels, the peer messages, and the node's coordinator, hint, repair and
//! anti-entropy logic.

pub mod antientropy;
mod apply;
pub mod batch;
pub mod codec;
pub mod coordinator;
mod fanout;
mod flush;
mod forward;
pub mod handoff;
pub mod handshake;
mod hints;
pub mod levels;
mod pressure;
mod read;
pub mod readiness;
pub(crate) mod roster;
mod sharing;
mod stall;
pub mod state;
pub mod wire;
mod write;

pub use codec::{DecodeError, EncodeError, Frame, FrameCodec};
pub use handshake::{Acceptor, Connector, Greeting, HandshakeError, SessionKey};
pub use levels::{Consistency, Levels, UnknownLevel};
pub use readiness::ReadyState;
pub use state::ReplicationStats;
pub use wire::{AeKey, EntryKind, PeerMsg, Unused, WireEntry};

#[cfg(test)]
mod tests;
