//! The sans-IO node: every decision Shoal makes about data and membership, with time and randomness as inputs.
//!
//! Nothing here reads a clock, opens a socket or draws from a thread RNG; the tokio runtime and the simulator
//! feed the same `Node` and carry out the effects it writes into its `Outbox`.

pub mod clock;
pub mod command;
pub mod digest;
pub mod driver;
pub mod exec;
pub mod glob;
pub mod info;
pub mod locks;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod node_config;
pub mod number;
pub mod replication;
pub mod reply;
pub mod ring;
pub mod slots;
pub mod store;
#[cfg(test)]
pub(crate) mod testkit;
pub mod timers;
pub mod topology;
pub mod version;
pub mod vversion;

pub use node::{ConnId, Input, Node, NodeConfig, Outbox, Output, ReqId, RequestId, TimerId, EXPIRE_KEYS_PER_INPUT};

/// Wall-clock time in milliseconds since the Unix epoch, as the driver supplies it.
pub type Millis = u64;
