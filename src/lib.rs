//! Shoal: an AP, eventually consistent, in-memory cache cluster that speaks the Redis protocol.
//!
//! `core` is the sans-IO node logic (no sockets, no clocks, no thread RNG), `resp` is the pure RESP protocol
//! layer, and `runtime` drives both with tokio. The `shoal-sim` crate drives the same `core` in simulated time.
#![forbid(unsafe_code)]

pub mod config;
/// Sans-IO: no clocks, thread RNGs, spawning or sleeping (the methods listed in clippy.toml are denied here).
#[deny(clippy::disallowed_methods)]
pub mod core;
pub mod resp;
pub mod runtime;
pub mod secret;
