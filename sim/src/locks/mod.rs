//! Lease locks in the simulator: a lock workload, fenced resources, the lock history and its checkers.
//!
//! The workload (`LockWorkload`) is a set of clients that acquire, use (write to a fenced resource with their
//! token), renew and release locks through any node, with occasional GC pauses; an engine drives it with
//! `next_wake`, `next_call` and `on_reply` and replies matched by (connection, request). Everything the clients do
//! goes into a history of `LockEvent`s, which `summarize` judges: no two holders at once without faults, the
//! double-holder stretches and their length under faults, fenced resources that only move forward, stale writes
//! of woken holders rejected, and fencing tokens that grow from one majority grant to the next. Nothing here is
//! product code: the checkers see only what clients sent, were told and wrote.
//!
//! Driving it from an engine with asynchronous replies (virtual time `now` never goes back):
//! - create it with `LockWorkload::new(LockConfig { clients, start_ms, .. }, nodes, seed)` from its own RNG stream;
//! - keep one wake-up event scheduled at `next_wake()` (when it is earlier than the one pending); at a wake-up,
//!   and after every `on_reply`, take `next_call(now)` until `None` and deliver each `LockCall` to `call.node` as
//!   `Input::Client { conn: call.conn(), req: call.req, cmd: call.cmd, levels }` (held while the node is paused);
//!   a call to a crashed node is `on_refused(call.client, call.req, now)`;
//! - route `Output::Reply { conn, req, reply }` with `lock_client(conn) == Some(client)` to
//!   `on_reply(client, req, now, &reply)` (unanswered calls time out inside the workload);
//! - `stop(now)` at the heal if the liveness phase must be quiet (`calls_waiting()` tells when it is);
//! - at the end, `judge(name, history(), now, fault_spans)` gives the row, the violations and the double-holder
//!   anomalies (`summarize(.., faults: bool)` for a run judged as a whole); `settle_ms` is how long after a
//!   fault its effects on locks may last.

pub mod check;
pub mod history;
pub mod resource;
pub mod summary;
pub mod workload;

pub use check::{LockKind, LockViolation};
pub use history::{Answer, Call, Hold, LockEvent};
pub use resource::FencedResource;
pub use summary::{judge, markdown_table, summarize, LockSummary};
pub use workload::{lock_client, LockCall, LockConfig, LockWorkload, LOCK_CONN_BASE};

#[cfg(test)]
mod tests;
