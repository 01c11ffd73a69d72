//! The lock table one replica keeps: for each lock name, its holder (owner, fencing token, lease end on this
//! replica's own clock) and the highest token it ever accepted. Pure: time is a parameter.
//!
//! Rules, applied by every replica on its own: a grant needs the lock free (no holder, or the lease over) or
//! held by the same owner, and a token above every token this replica accepted for the lock, so tokens only
//! grow on each replica. Renew and release need the exact (owner, token) of the current holder. The table keeps
//! free entries (their highest token) and forgets the oldest free ones beyond `LOCKS_MAX`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::Millis;

/// Most entries a table keeps; beyond, free entries are forgotten (the HLC still keeps later tokens higher).
pub const LOCKS_MAX: usize = 100_000;

/// One operation on a replica's lock table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockOp {
    /// Take the lock for `owner` with `token` for `ttl_ms`.
    Acquire { name: String, owner: String, token: u64, ttl_ms: u64 },
    /// Extend `owner`'s lease (token must match).
    Renew { name: String, owner: String, token: u64, ttl_ms: u64 },
    /// Free the lock if `owner` holds it with `token`.
    Release { name: String, owner: String, token: u64 },
    /// Report the lock's state.
    Info { name: String },
}

impl LockOp {
    /// The lock the operation is about.
    pub fn name(&self) -> &str {
        match self {
            LockOp::Acquire { name, .. }
            | LockOp::Renew { name, .. }
            | LockOp::Release { name, .. }
            | LockOp::Info { name } => name,
        }
    }
}

/// A current holder as one replica sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Who holds the lock.
    pub owner: String,
    /// The fencing token of the grant.
    pub token: u64,
    /// Lease left on this replica's clock.
    pub remaining_ms: u64,
}

/// A replica's answer to one `LockOp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockAnswer {
    /// The operation took effect (granted, renewed, released; for Info: the lock is held).
    pub applied: bool,
    /// The holder after the operation, if any.
    pub holder: Option<Holder>,
    /// The highest token this replica ever accepted for the lock.
    pub max_token: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    owner: Option<String>,
    token: u64,
    expires_at: Millis,
    max_token: u64,
    touched: Millis,
}

/// One replica's locks.
#[derive(Debug, Default)]
pub struct LockTable {
    entries: BTreeMap<String, Entry>,
}

impl LockTable {
    /// An empty table.
    pub fn new() -> LockTable {
        LockTable::default()
    }

    /// Number of locks known (held or free).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no lock is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Apply one operation at `now` (this replica's clock).
    pub fn apply(&mut self, op: &LockOp, now: Millis) -> LockAnswer {
        let name = op.name().to_string();
        let entry = self.entries.entry(name).or_insert(Entry {
            owner: None,
            token: 0,
            expires_at: 0,
            max_token: 0,
            touched: now,
        });
        entry.touched = now;
        if entry.owner.is_some() && entry.expires_at <= now {
            entry.owner = None;
        }
        let applied = match op {
            LockOp::Acquire { owner, token, ttl_ms, .. } => {
                let free = entry.owner.as_ref().is_none_or(|o| o == owner);
                let fresh = *token > entry.max_token;
                if free && fresh {
                    entry.owner = Some(owner.clone());
                    entry.token = *token;
                    entry.expires_at = now.saturating_add(*ttl_ms);
                    entry.max_token = *token;
                }
                free && fresh
            }
            LockOp::Renew { owner, token, ttl_ms, .. } => {
                let holds = entry.owner.as_ref() == Some(owner) && entry.token == *token;
                if holds {
                    entry.expires_at = now.saturating_add(*ttl_ms);
                }
                holds
            }
            LockOp::Release { owner, token, .. } => {
                let holds = entry.owner.as_ref() == Some(owner) && entry.token == *token;
                if holds {
                    entry.owner = None;
                }
                holds
            }
            LockOp::Info { .. } => entry.owner.is_some(),
        };
        let answer = LockAnswer {
            applied,
            holder: entry.owner.as_ref().map(|owner| Holder {
                owner: owner.clone(),
                token: entry.token,
                remaining_ms: entry.expires_at.saturating_sub(now),
            }),
            max_token: entry.max_token,
        };
        self.forget_beyond_limit(now);
        answer
    }

    /// The highest token accepted for `name` (0 if unknown).
    pub fn max_token(&self, name: &str) -> u64 {
        self.entries.get(name).map_or(0, |e| e.max_token)
    }

    fn forget_beyond_limit(&mut self, now: Millis) {
        if self.entries.len() <= LOCKS_MAX {
            return;
        }
        let free_oldest = self
            .entries
            .iter()
            .filter(|(_, e)| e.owner.is_none() || e.expires_at <= now)
            .min_by_key(|(_, e)| e.touched)
            .map(|(k, _)| k.clone());
        if let Some(k) = free_oldest {
            self.entries.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acquire(owner: &str, token: u64, ttl_ms: u64) -> LockOp {
        LockOp::Acquire { name: "l".into(), owner: owner.into(), token, ttl_ms }
    }

    #[test]
    fn a_held_lock_refuses_others_until_released_or_expired() {
        let mut t = LockTable::new();
        assert!(t.apply(&acquire("a", 10, 1_000), 0).applied);
        let refused = t.apply(&acquire("b", 11, 1_000), 10);
        assert!(!refused.applied);
        assert_eq!(refused.holder.as_ref().map(|h| h.owner.as_str()), Some("a"));
        assert!(!t.apply(&LockOp::Release { name: "l".into(), owner: "a".into(), token: 9 }, 20).applied);
        assert!(t.apply(&LockOp::Release { name: "l".into(), owner: "a".into(), token: 10 }, 20).applied);
        assert!(t.apply(&acquire("b", 12, 1_000), 30).applied);
        // The lease ends on this replica's clock.
        assert!(!t.apply(&acquire("c", 13, 1_000), 1_029).applied);
        assert!(t.apply(&acquire("c", 13, 1_000), 1_030).applied);
    }

    #[test]
    fn tokens_only_grow_on_a_replica() {
        let mut t = LockTable::new();
        assert!(t.apply(&acquire("a", 50, 100), 0).applied);
        assert!(t.apply(&LockOp::Release { name: "l".into(), owner: "a".into(), token: 50 }, 1).applied);
        let stale = t.apply(&acquire("b", 40, 100), 2);
        assert!(!stale.applied);
        assert_eq!(stale.max_token, 50);
        assert!(t.apply(&acquire("b", 51, 100), 3).applied);
        assert_eq!(t.max_token("l"), 51);
    }

    #[test]
    fn renew_needs_the_exact_holder_and_extends_the_lease() {
        let mut t = LockTable::new();
        t.apply(&acquire("a", 5, 100), 0);
        assert!(!t.apply(&LockOp::Renew { name: "l".into(), owner: "b".into(), token: 5, ttl_ms: 100 }, 50).applied);
        assert!(t.apply(&LockOp::Renew { name: "l".into(), owner: "a".into(), token: 5, ttl_ms: 100 }, 50).applied);
        assert!(!t.apply(&acquire("b", 6, 100), 120).applied, "renewed lease runs to 150");
        assert!(t.apply(&acquire("b", 6, 100), 150).applied);
        assert!(!t.apply(&LockOp::Renew { name: "l".into(), owner: "a".into(), token: 5, ttl_ms: 100 }, 160).applied);
    }
}
