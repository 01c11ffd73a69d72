//! Execution of data commands against the node's store, with Redis's semantics and replies.
//!
//! Every write is stamped with a fresh version from the node's HLC. Expiry times given relative to "now" are
//! resolved here with the `now` the driver passed in; a resolved time at or before `now` deletes the key, as
//! Redis does. Counters for hits and misses are kept for INFO.

use bytes::{Bytes, BytesMut};
use rand::RngExt;

use super::command::{Command, ExpireAt, ExpireCond, GetExTtl, SetCond, SetTtl, TimeUnit};
use super::glob;
use super::node::Local;
use super::number::{format_f64, parse_f64, parse_i64};
use super::replication::EntryKind;
use super::reply::{Reply, ERR_NAN_OR_INF, ERR_NOT_FLOAT, ERR_NOT_INTEGER, ERR_OVERFLOW, ERR_STRING_TOO_LONG};
use super::store::Entry;
use super::vversion::VersionVector;
use super::Millis;

/// Resolve a client's expiry to absolute Unix milliseconds (saturating; never 0, which means "no expiry").
pub fn resolve_expiry(at: ExpireAt, now: Millis) -> Millis {
    let abs = match at {
        ExpireAt::InMs(ms) => (now as i64).saturating_add(ms),
        ExpireAt::AtMs(ms) => ms,
    };
    abs.max(1) as Millis
}

impl Local {
    /// Apply one command to the store (limits already checked by `execute`).
    pub(crate) fn apply(&mut self, now: Millis, cmd: Command) -> Reply {
        match cmd {
            Command::Get { key } => self.read(&key, now).map_or(Reply::Nil, Reply::Bulk),
            Command::Set { key, value, cond, ttl, get, reply_int } => {
                self.set(now, &key, value, cond, ttl, get, reply_int)
            }
            Command::GetDel { key } => match self.read(&key, now) {
                Some(v) => {
                    self.delete(now, &key);
                    Reply::Bulk(v)
                }
                None => Reply::Nil,
            },
            Command::GetEx { key, ttl } => self.getex(now, &key, ttl),
            Command::MGet { keys } => {
                Reply::Array(keys.iter().map(|k| self.read(k, now).map_or(Reply::Nil, Reply::Bulk)).collect())
            }
            Command::MSet { pairs, if_none_exist } => {
                if if_none_exist && pairs.iter().any(|(k, _)| self.store.peek(k, now).is_some()) {
                    return Reply::Int(0);
                }
                if let Some(r) = pairs.iter().find_map(|(_, v)| self.check_size(v.len())) {
                    return r;
                }
                for (k, v) in pairs {
                    self.write(now, &k, v, 0);
                }
                if if_none_exist {
                    Reply::Int(1)
                } else {
                    Reply::Ok
                }
            }
            // Every key is deleted, held or not: a clustered node writes the tombstone even for a key it does not
            // hold (its copy may miss a write another replica has, and the delete must win there too); on a lone
            // node removing an absent key does nothing. The reply counts the keys that existed.
            Command::Del { keys } => Reply::Int(
                keys.iter()
                    .filter(|k| {
                        let existed = self.store.get(k, now).is_some();
                        self.delete(now, k);
                        existed
                    })
                    .count() as i64,
            ),
            Command::Exists { keys } => {
                Reply::Int(keys.iter().filter(|k| self.store.peek(k, now).is_some()).count() as i64)
            }
            Command::Touch { keys } => {
                Reply::Int(keys.iter().filter(|k| self.store.get(k, now).is_some()).count() as i64)
            }
            Command::Expire { key, at, cond } => self.expire(now, &key, at, cond),
            Command::Ttl { key, unit } => match self.store.peek(&key, now) {
                None => Reply::Int(-2),
                Some(e) if e.expire_at_ms == 0 => Reply::Int(-1),
                Some(e) => {
                    let ms = (e.expire_at_ms - now) as i64;
                    Reply::Int(match unit {
                        TimeUnit::Millis => ms,
                        TimeUnit::Seconds => (ms + 500) / 1000,
                    })
                }
            },
            Command::ExpireTime { key, unit } => match self.store.peek(&key, now) {
                None => Reply::Int(-2),
                Some(e) if e.expire_at_ms == 0 => Reply::Int(-1),
                Some(e) => Reply::Int(match unit {
                    TimeUnit::Millis => e.expire_at_ms as i64,
                    TimeUnit::Seconds => (e.expire_at_ms / 1000) as i64,
                }),
            },
            Command::Persist { key } => match self.store.peek(&key, now) {
                Some(e) if e.expire_at_ms != 0 => {
                    self.store.set_expiry(&key, 0);
                    self.bump_version(now, &key);
                    Reply::Int(1)
                }
                _ => Reply::Int(0),
            },
            Command::IncrBy { key, delta } => self.incr_by(now, &key, delta),
            Command::IncrByFloat { key, delta } => self.incr_by_float(now, &key, delta),
            Command::Append { key, value } => self.append(now, &key, &value),
            Command::StrLen { key } => Reply::Int(self.store.peek(&key, now).map_or(0, |e| e.value.len() as i64)),
            Command::GetRange { key, start, end } => {
                let v = self.read(&key, now).unwrap_or_default();
                Reply::Bulk(range_of(&v, start, end))
            }
            Command::SetRange { key, offset, value } => self.set_range(now, &key, offset, &value),
            Command::Type { key } => {
                Reply::simple(if self.store.peek(&key, now).is_some() { "string" } else { "none" })
            }
            Command::DbSize => Reply::Int(self.store.values_len() as i64),
            Command::FlushAll => {
                self.store.clear();
                Reply::Ok
            }
            Command::Keys { pattern } => Reply::Array(
                self.store.keys(now, |k| glob::matches(&pattern, k)).into_iter().map(Reply::Bulk).collect(),
            ),
            Command::Scan { cursor, pattern, count, type_filter } => {
                let strings_only = type_filter.as_ref().is_none_or(|t| t.eq_ignore_ascii_case(b"string"));
                let (next, keys) = self
                    .store
                    .scan(cursor, count, now, |k| strings_only && pattern.as_ref().is_none_or(|p| glob::matches(p, k)));
                Reply::Array(vec![
                    Reply::Bulk(Bytes::from(next.to_string())),
                    Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
                ])
            }
            Command::RandomKey => {
                let rng = &mut self.rng;
                self.store.random_key(now, |n| rng.random_range(0..n)).map_or(Reply::Nil, Reply::Bulk)
            }
            // The node hands lock commands to the lock coordinator before execution; one reaching here is a bug.
            Command::Lock(_) => Reply::err("ERR lock commands are coordinated, not executed"),
            Command::CountKeysInSlot { slot } => {
                Reply::Int(super::slots::slot_keys(&self.store, slot, now).count() as i64)
            }
            Command::GetKeysInSlot { slot, count } => {
                Reply::Array(super::slots::slot_keys(&self.store, slot, now).take(count).map(Reply::bulk).collect())
            }
            // The node answers the commands that describe it (`Node::execute`); one reaching here is a bug.
            Command::Members
            | Command::Owners { .. }
            | Command::LocalGet { .. }
            | Command::Ready
            | Command::Info { .. } => Reply::err("ERR this command describes the node and is answered by it"),
        }
    }

    /// The live value of `key`, counting a hit or a miss.
    fn read(&mut self, key: &[u8], now: Millis) -> Option<Bytes> {
        match self.store.get(key, now) {
            Some(e) => {
                self.stats.keyspace_hits += 1;
                Some(e.value.clone())
            }
            None => {
                self.stats.keyspace_misses += 1;
                None
            }
        }
    }

    /// The version vector for a write this node makes to `key` now: the stored one (value or marker) with this
    /// node's entry set to a fresh HLC time, so the write dominates everything it overwrites.
    fn next_vector(&mut self, now: Millis, key: &[u8]) -> VersionVector {
        let mut vector = self.store.raw(key, now).map(|e| e.vector.clone()).unwrap_or_default();
        let time = self.hlc.now(now);
        let used = vector.bump(self.id, time);
        self.hlc.observe(used);
        vector
    }

    /// Store `value` under `key` with a fresh version; `expire_at_ms` 0 means no expiry.
    fn write(&mut self, now: Millis, key: &[u8], value: Bytes, expire_at_ms: Millis) {
        if expire_at_ms != 0 && expire_at_ms <= now {
            self.delete(now, key);
            return;
        }
        let vector = self.next_vector(now, key);
        // Copy so the stored value does not pin the connection's read buffer it was sliced from.
        let value = Bytes::copy_from_slice(&value);
        self.store.insert(key, Entry::new(value, vector, expire_at_ms), now);
        self.touched(key);
    }

    /// Delete `key`: a clustered node writes a tombstone (kept for the grace period, so a replica that missed
    /// the delete cannot bring the key back); a lone node just removes it. Returns true.
    fn delete(&mut self, now: Millis, key: &[u8]) -> bool {
        if !self.is_replicated() {
            self.store.remove(key);
            return true;
        }
        let vector = self.next_vector(now, key);
        let until = now.saturating_add(self.config.tombstone_grace_ms);
        self.store.insert(key, Entry::marker(EntryKind::Tombstone, vector, until), now);
        self.touched(key);
        true
    }

    fn bump_version(&mut self, now: Millis, key: &[u8]) {
        let vector = self.next_vector(now, key);
        self.store.set_vector(key, vector);
        self.touched(key);
    }

    fn check_size(&self, len: usize) -> Option<Reply> {
        (len > self.config.value_bytes_max).then_some(Reply::err(ERR_STRING_TOO_LONG))
    }

    #[allow(clippy::too_many_arguments)]
    fn set(
        &mut self,
        now: Millis,
        key: &[u8],
        value: Bytes,
        cond: SetCond,
        ttl: SetTtl,
        get: bool,
        reply_int: bool,
    ) -> Reply {
        if let Some(r) = self.check_size(value.len()) {
            return r;
        }
        // The old value is only cloned for SET ... GET (a clone of a stored value allocates its shared header).
        let old = self.store.get(key, now).map(|e| (get.then(|| e.value.clone()), e.expire_at_ms));
        let allowed = match cond {
            SetCond::Always => true,
            SetCond::IfAbsent => old.is_none(),
            SetCond::IfPresent => old.is_some(),
        };
        if allowed {
            let expire_at = match ttl {
                SetTtl::Clear => 0,
                SetTtl::Keep => old.as_ref().map_or(0, |(_, at)| *at),
                SetTtl::At(at) => resolve_expiry(at, now),
            };
            self.write(now, key, value, expire_at);
        }
        match (get, reply_int) {
            (true, _) => old.and_then(|(v, _)| v).map_or(Reply::Nil, Reply::Bulk),
            (false, true) => Reply::Int(allowed as i64),
            (false, false) if allowed => Reply::Ok,
            (false, false) => Reply::Nil,
        }
    }

    fn getex(&mut self, now: Millis, key: &[u8], ttl: GetExTtl) -> Reply {
        let Some(value) = self.read(key, now) else { return Reply::Nil };
        match ttl {
            GetExTtl::Keep => {}
            GetExTtl::Persist => {
                if self.store.peek(key, now).is_some_and(|e| e.expire_at_ms != 0) {
                    self.store.set_expiry(key, 0);
                    self.bump_version(now, key);
                }
            }
            GetExTtl::At(at) => self.set_expiry_or_delete(now, key, resolve_expiry(at, now)),
        }
        Reply::Bulk(value)
    }

    fn set_expiry_or_delete(&mut self, now: Millis, key: &[u8], at: Millis) {
        if at <= now {
            self.delete(now, key);
        } else {
            self.store.set_expiry(key, at);
            self.bump_version(now, key);
        }
    }

    fn expire(&mut self, now: Millis, key: &[u8], at: ExpireAt, cond: ExpireCond) -> Reply {
        let Some(current) = self.store.get(key, now).map(|e| e.expire_at_ms) else { return Reply::Int(0) };
        let at = resolve_expiry(at, now);
        // A key without expiry counts as an infinite TTL for GT and LT, as in Redis.
        let current_inf = if current == 0 { Millis::MAX } else { current };
        let ok = match cond {
            ExpireCond::Always => true,
            ExpireCond::IfNoTtl => current == 0,
            ExpireCond::IfTtl => current != 0,
            ExpireCond::Greater => at > current_inf,
            ExpireCond::Less => at < current_inf,
            ExpireCond::IfTtlAndLess => current != 0 && at < current,
        };
        if !ok {
            return Reply::Int(0);
        }
        self.set_expiry_or_delete(now, key, at);
        Reply::Int(1)
    }

    /// Replace the value of `key` keeping its expiry (INCR, APPEND, SETRANGE keep the TTL in Redis).
    fn rewrite(&mut self, now: Millis, key: &[u8], value: Bytes) {
        let at = self.store.peek(key, now).map_or(0, |e| e.expire_at_ms);
        self.write(now, key, value, at);
    }

    fn incr_by(&mut self, now: Millis, key: &[u8], delta: i64) -> Reply {
        let current = match self.store.get(key, now) {
            None => 0,
            Some(e) => match parse_i64(&e.value) {
                Some(n) => n,
                None => return Reply::err(ERR_NOT_INTEGER),
            },
        };
        let Some(next) = current.checked_add(delta) else { return Reply::err(ERR_OVERFLOW) };
        self.rewrite(now, key, Bytes::from(next.to_string()));
        Reply::Int(next)
    }

    fn incr_by_float(&mut self, now: Millis, key: &[u8], delta: f64) -> Reply {
        let current = match self.store.get(key, now) {
            None => 0.0,
            Some(e) => match parse_f64(&e.value) {
                Some(n) => n,
                None => return Reply::err(ERR_NOT_FLOAT),
            },
        };
        let next = current + delta;
        if !next.is_finite() {
            return Reply::err(ERR_NAN_OR_INF);
        }
        let mut text = Vec::with_capacity(24);
        format_f64(next, &mut text);
        let text = Bytes::from(text);
        self.rewrite(now, key, text.clone());
        Reply::Bulk(text)
    }

    fn append(&mut self, now: Millis, key: &[u8], tail: &[u8]) -> Reply {
        let old = self.store.get(key, now).map(|e| e.value.clone()).unwrap_or_default();
        if let Some(r) = self.check_size(old.len() + tail.len()) {
            return r;
        }
        let mut v = BytesMut::with_capacity(old.len() + tail.len());
        v.extend_from_slice(&old);
        v.extend_from_slice(tail);
        let len = v.len() as i64;
        self.rewrite(now, key, v.freeze());
        Reply::Int(len)
    }

    fn set_range(&mut self, now: Millis, key: &[u8], offset: u64, patch: &[u8]) -> Reply {
        let old = self.store.get(key, now).map(|e| e.value.clone());
        if patch.is_empty() {
            return Reply::Int(old.map_or(0, |v| v.len() as i64));
        }
        let end = offset.saturating_add(patch.len() as u64);
        if end > self.config.value_bytes_max as u64 {
            return Reply::err(ERR_STRING_TOO_LONG);
        }
        let old = old.unwrap_or_default();
        let mut v = BytesMut::from(&old[..]);
        if v.len() < end as usize {
            v.resize(end as usize, 0);
        }
        v[offset as usize..end as usize].copy_from_slice(patch);
        let len = v.len() as i64;
        self.rewrite(now, key, v.freeze());
        Reply::Int(len)
    }
}

/// GETRANGE's slice of `v` with Redis's negative-index rules.
fn range_of(v: &Bytes, start: i64, end: i64) -> Bytes {
    let len = v.len() as i64;
    if len == 0 {
        return Bytes::new();
    }
    let norm = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (s, e) = (norm(start), norm(end).min(len - 1));
    if s > e || s >= len {
        return Bytes::new();
    }
    v.slice(s as usize..=e as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getrange_handles_negative_indexes() {
        let v = Bytes::from_static(b"This is a string");
        assert_eq!(range_of(&v, 0, 3), Bytes::from_static(b"This"));
        assert_eq!(range_of(&v, -3, -1), Bytes::from_static(b"ing"));
        assert_eq!(range_of(&v, 0, -1), v);
        assert_eq!(range_of(&v, 10, 100), Bytes::from_static(b"string"));
        assert_eq!(range_of(&v, 5, 2), Bytes::new());
    }

    #[test]
    fn relative_expiry_resolves_against_now() {
        assert_eq!(resolve_expiry(ExpireAt::InMs(500), 1_000), 1_500);
        assert_eq!(resolve_expiry(ExpireAt::InMs(-5_000), 1_000), 1);
        assert_eq!(resolve_expiry(ExpireAt::AtMs(77), 1_000), 77);
        assert_eq!(resolve_expiry(ExpireAt::InMs(i64::MAX), 1_000), i64::MAX as u64);
    }
}
