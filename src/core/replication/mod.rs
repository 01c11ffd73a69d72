//! Replication: consistency levels, the peer messages, and the node's coordinator, hint, repair and
//! anti-entropy logic.

pub mod codec;
pub mod levels;
pub mod wire;

pub use codec::{DecodeError, EncodeError, Frame, FrameCodec};
pub use levels::{Consistency, Levels, UnknownLevel};
pub use wire::{EntryKind, PeerMsg, WireEntry};
