//! Membership tests: hand-built packets, codec properties, and multi-node scenarios on a simulated network.

mod codec_props;
mod harness;
mod scenarios;
mod unit;
