//! Membership tests: hand-built packets, codec properties, and multi-node scenarios on a simulated network.

mod harness;
mod scenarios;
