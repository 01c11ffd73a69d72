//! `Local`: the part of a node that needs no cluster: its configuration, identity, clock, store and RNG, and
//! the execution of data commands against them (`exec.rs` holds the commands' semantics), with memory limits,
//! eviction and active expiry.
//!
//! Executing returns the reply and the keys the command changed, so the cluster part knows what to replicate
//! without reading the store back (docs/architecture.md §3, "Local and cluster parts").

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::RngExt;

use super::{NodeConfig, NodeStats, Outbox, Output, TimerId};
use crate::core::clock::Hlc;
use crate::core::command::Command;
use crate::core::reply::{Reply, ERR_OOM};
use crate::core::store::Store;
use crate::core::version::NodeId;
use crate::core::Millis;

/// What executing one command did.
pub(crate) struct Executed {
    /// The command's reply.
    pub reply: Reply,
    /// The keys it changed, sorted, each once (empty on a standalone node).
    pub changed: Vec<Bytes>,
}

/// A node's local state: everything a standalone node is.
pub(crate) struct Local {
    pub(crate) config: NodeConfig,
    pub(crate) id: NodeId,
    pub(crate) hlc: Hlc,
    pub(crate) store: Store,
    pub(crate) rng: StdRng,
    pub(crate) stats: NodeStats,
    /// Whether writes are replicated: deletes then leave tombstones, evictions leave markers and changed keys
    /// are recorded.
    replicated: bool,
    /// Keys the command being executed changed (recorded only when `replicated`).
    changed: Vec<Bytes>,
}

impl Local {
    /// The local part of a node with `config`, id `id`, drawing from `rng`.
    pub(crate) fn new(config: NodeConfig, id: NodeId, mut rng: StdRng) -> Local {
        let store = Store::new(rng.random());
        Local {
            config,
            id,
            hlc: Hlc::new(),
            store,
            rng,
            stats: NodeStats::default(),
            replicated: false,
            changed: Vec::new(),
        }
    }

    /// Make this the local part of a clustered node: deletes leave tombstones kept for the grace period,
    /// evictions leave markers, and executing reports the keys it changed.
    pub(crate) fn replicate(&mut self) {
        self.replicated = true;
        self.store.set_expiry_grace(Some(self.config.tombstone_grace_ms));
    }

    /// Whether writes are replicated (the node is clustered).
    pub(crate) fn is_replicated(&self) -> bool {
        self.replicated
    }

    /// Run one data command: its reply, and the keys it changed (sorted, each once; empty when not
    /// replicated).
    pub(crate) fn execute(&mut self, now: Millis, cmd: Command) -> Executed {
        self.changed.clear();
        let reply = self.limited(now, cmd.may_grow(), |local| local.apply(now, cmd));
        let mut changed = std::mem::take(&mut self.changed);
        changed.sort();
        changed.dedup();
        Executed { reply, changed }
    }

    /// Count a command and run `f` under the memory limit: refused with OOM when it `may_grow` and no room can
    /// be made, and the store brought back under the limit after it.
    pub(crate) fn limited(&mut self, now: Millis, may_grow: bool, f: impl FnOnce(&mut Local) -> Reply) -> Reply {
        self.stats.commands += 1;
        let limited = self.config.maxmemory_bytes.is_some();
        if limited && may_grow && !self.make_room(now) {
            self.stats.oom_rejections += 1;
            return Reply::err(ERR_OOM);
        }
        let reply = f(self);
        if limited {
            self.make_room(now);
        }
        reply
    }

    /// Remember that `key` changed, so the cluster part replicates it.
    pub(crate) fn touched(&mut self, key: &[u8]) {
        if self.replicated {
            self.changed.push(Bytes::copy_from_slice(key));
        }
    }

    /// Evict until the store fits under `maxmemory` (true without a limit); false when it cannot.
    pub(crate) fn make_room(&mut self, now: Millis) -> bool {
        match self.config.maxmemory_bytes {
            Some(limit) => self.make_room_below(now, limit),
            None => true,
        }
    }

    /// Evict until the store fits under `limit`; false when it cannot.
    pub(crate) fn make_room_below(&mut self, now: Millis, limit: usize) -> bool {
        if self.store.used_bytes() <= limit {
            return true;
        }
        let rng = &mut self.rng;
        let marker_until = self.replicated.then(|| now.saturating_add(self.config.tombstone_grace_ms));
        self.store.evict_to(limit, self.config.eviction, now, marker_until, |n| rng.random_range(0..n))
    }

    /// The active-expiry timer: reclaim a pass of expired keys and schedule the next pass.
    pub(crate) fn active_expire(&mut self, now: Millis, out: &mut Outbox) {
        let max = self.config.active_expire_keys_max;
        let removed = self.store.expire_due(now, max);
        // A full pass means more keys may be due: come back almost at once instead of waiting a period, but
        // still yield so clients are served in between.
        let after = if removed == max { 1 } else { self.config.active_expire_period_ms };
        self.schedule_active_expire(out, after);
    }

    /// Schedule the next active-expiry pass in `after_ms`.
    pub(crate) fn schedule_active_expire(&self, out: &mut Outbox, after_ms: Millis) {
        out.push(Output::Schedule { after_ms, timer: TimerId::ActiveExpire });
    }
}
