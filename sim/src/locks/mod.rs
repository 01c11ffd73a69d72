//! Lease locks in the simulator: a lock workload, fenced resources, the lock history and its checkers.
//!
//! The workload (`LockWorkload`) is a set of clients that acquire, use (write to a fenced resource with their
//! token), renew and release locks through any node, with occasional GC pauses; an engine drives it with
//! `next_wake`, `next_call` and `on_reply` and replies matched by (connection, request). Everything the clients do
//! goes into a history of `LockEvent`s, which `summarize` judges: no two holders at once without faults, the
//! double-holder stretches and their length under faults, fenced resources that only move forward, stale writes
//! of woken holders rejected, and fencing tokens that grow from one majority grant to the next. Nothing here is
//! product code: the checkers see only what clients sent, were told and wrote.

pub mod check;
pub mod history;
pub mod resource;
pub mod summary;
pub mod workload;

pub use check::{LockKind, LockViolation};
pub use history::{Answer, Call, Hold, LockEvent};
pub use resource::FencedResource;
pub use summary::{markdown_table, summarize, LockSummary};
pub use workload::{lock_client, LockCall, LockConfig, LockWorkload, LOCK_CONN_BASE};

#[cfg(test)]
mod tests;
