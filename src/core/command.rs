//! Typed commands that reach the node's store.
//!
//! `resp::command` turns a client's argument vector into one of these (or answers it on the connection itself
//! when it touches no data, like PING or CLIENT). Every field is already validated for syntax; what needs the
//! store or the clock (relative TTLs, integer parsing of stored values) is resolved by `core`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A point in time for a key to expire, as the client gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpireAt {
    /// Relative to the time the node applies the command, in milliseconds (EX, PX, EXPIRE, PEXPIRE).
    /// May be zero or negative for EXPIRE/PEXPIRE, which then delete the key.
    InMs(i64),
    /// Absolute Unix time in milliseconds (EXAT, PXAT, EXPIREAT, PEXPIREAT).
    AtMs(i64),
}

/// SET's NX / XX condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SetCond {
    /// Always write.
    #[default]
    Always,
    /// NX: only when the key does not exist.
    IfAbsent,
    /// XX: only when the key exists.
    IfPresent,
}

/// What SET does with the key's time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SetTtl {
    /// No option: the new value has no expiry.
    #[default]
    Clear,
    /// KEEPTTL: keep the old expiry.
    Keep,
    /// EX / PX / EXAT / PXAT.
    At(ExpireAt),
}

/// EXPIRE's NX / XX / GT / LT condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ExpireCond {
    /// Always set.
    #[default]
    Always,
    /// NX: only when the key has no expiry.
    IfNoTtl,
    /// XX: only when the key has an expiry.
    IfTtl,
    /// GT: only when the new expiry is greater (a key without expiry counts as infinite).
    Greater,
    /// LT: only when the new expiry is less (a key without expiry counts as infinite).
    Less,
    /// XX LT: only when the key has an expiry and the new one is less.
    IfTtlAndLess,
}

/// GETEX's option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum GetExTtl {
    /// No option: leave the expiry as it is.
    #[default]
    Keep,
    /// PERSIST: remove the expiry.
    Persist,
    /// EX / PX / EXAT / PXAT.
    At(ExpireAt),
}

/// Which clock unit TTL-style commands answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeUnit {
    /// Seconds (TTL, EXPIRETIME).
    Seconds,
    /// Milliseconds (PTTL, PEXPIRETIME).
    Millis,
}

/// A command that reads or writes the keyspace, or asks the node about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// GET key.
    Get { key: Bytes },
    /// SET and its aliases (SETEX, PSETEX, SETNX, GETSET).
    Set {
        key: Bytes,
        value: Bytes,
        cond: SetCond,
        ttl: SetTtl,
        /// GET option: answer with the old value instead of OK.
        get: bool,
        /// SETNX answers 1/0 instead of OK/nil.
        reply_int: bool,
    },
    /// GETDEL key.
    GetDel { key: Bytes },
    /// GETEX key [option].
    GetEx { key: Bytes, ttl: GetExTtl },
    /// MGET key [key ...].
    MGet { keys: Vec<Bytes> },
    /// MSET key value [key value ...]; with `if_none_exist` this is MSETNX.
    MSet { pairs: Vec<(Bytes, Bytes)>, if_none_exist: bool },
    /// DEL / UNLINK key [key ...].
    Del { keys: Vec<Bytes> },
    /// EXISTS key [key ...] (a key named twice counts twice, as in Redis).
    Exists { keys: Vec<Bytes> },
    /// TOUCH key [key ...]: count existing keys and mark them used.
    Touch { keys: Vec<Bytes> },
    /// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT.
    Expire { key: Bytes, at: ExpireAt, cond: ExpireCond },
    /// TTL / PTTL.
    Ttl { key: Bytes, unit: TimeUnit },
    /// EXPIRETIME / PEXPIRETIME.
    ExpireTime { key: Bytes, unit: TimeUnit },
    /// PERSIST key.
    Persist { key: Bytes },
    /// INCR / DECR / INCRBY / DECRBY.
    IncrBy { key: Bytes, delta: i64 },
    /// INCRBYFLOAT key increment.
    IncrByFloat { key: Bytes, delta: f64 },
    /// APPEND key value.
    Append { key: Bytes, value: Bytes },
    /// STRLEN key.
    StrLen { key: Bytes },
    /// GETRANGE key start end.
    GetRange { key: Bytes, start: i64, end: i64 },
    /// SETRANGE key offset value.
    SetRange { key: Bytes, offset: u64, value: Bytes },
    /// TYPE key.
    Type { key: Bytes },
    /// DBSIZE.
    DbSize,
    /// FLUSHALL / FLUSHDB.
    FlushAll,
    /// KEYS pattern.
    Keys { pattern: Bytes },
    /// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type].
    Scan { cursor: u64, pattern: Option<Bytes>, count: usize, type_filter: Option<Bytes> },
    /// RANDOMKEY.
    RandomKey,
    /// SHOAL.MEMBERS: the members this node knows, with their state.
    Members,
    /// SHOAL.OWNERS key: the key's preference list as this node's ring sees it.
    Owners { key: Bytes },
    /// SHOAL.LOCALGET key: this node's own copy of the key with its version, without coordination.
    LocalGet { key: Bytes },
    /// SHOAL.READY: whether this node joined and synced every range it owns once since it started.
    Ready,
    /// LOCK.ACQUIRE / LOCK.RENEW / LOCK.RELEASE / LOCK.INFO (an acquire's token is chosen by the coordinator).
    Lock(crate::core::locks::LockOp),
    /// INFO [section ...], with the facts only the runtime knows.
    Info { sections: Vec<String>, server: ServerFacts },
    /// CLUSTER COUNTKEYSINSLOT slot: how many live keys of the slot this node holds.
    CountKeysInSlot { slot: u16 },
    /// CLUSTER GETKEYSINSLOT slot count: up to `count` live keys of the slot this node holds.
    GetKeysInSlot { slot: u16, count: usize },
}

/// Facts about the process that the runtime supplies for INFO (the core reads no clock and no OS state).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServerFacts {
    /// Process id.
    pub process_id: u32,
    /// TCP port of the RESP listener.
    pub tcp_port: u16,
    /// Milliseconds since the process started.
    pub uptime_ms: u64,
    /// Clients connected now.
    pub connected_clients: u64,
    /// Connections accepted since start.
    pub total_connections_received: u64,
    /// Connections refused because of `maxclients`.
    pub rejected_connections: u64,
    /// Most clients connected at once (after fitting the file-descriptor limit).
    pub maxclients: u64,
    /// Clients disconnected for exceeding the query buffer limit.
    pub client_query_buffer_limit_disconnections: u64,
    /// Clients disconnected for exceeding the output buffer limit.
    pub client_output_buffer_limit_disconnections: u64,
    /// Clients closed by the idle timeout.
    pub client_idle_timeouts: u64,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: u64,
    /// Commands processed since start (all connections).
    pub total_commands_processed: u64,
    /// Resident set size of the process in bytes, when the OS tells it (0 otherwise).
    pub used_memory_rss: u64,
    /// Number of runtime worker threads.
    pub io_threads: u32,
    /// The peer transport's rejection counters, for INFO cluster.
    pub peer_links: PeerLinkFacts,
    /// Gossip datagrams the runtime dropped because the node task's gossip queue was full.
    pub gossip_datagrams_dropped: u64,
}

/// What the peer transport refused, as counted by the runtime (INFO cluster shows them beside the core's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PeerLinkFacts {
    /// Connections closed for a malformed frame (size, version, body).
    pub frames_bad: u64,
    /// Frames whose MAC or crc did not verify: forged, corrupt, or spliced from another link.
    pub frames_forged: u64,
    /// Verified frames with an old sequence number: replays.
    pub frames_replayed: u64,
    /// Verified frames with a sequence number ahead of the expected one.
    pub frames_reordered: u64,
    /// Handshakes that failed: malformed, oversized, wrong secret or mode, bad proof.
    pub handshakes_failed: u64,
    /// Connections that did not finish their handshake in time.
    pub handshake_timeouts: u64,
    /// Connections refused because too many were in handshake at once.
    pub handshakes_refused: u64,
    /// TLS handshakes on peer links (`--tls-cluster`) that failed or timed out, either side.
    pub tls_handshakes_failed: u64,
    /// Messages dropped: a full peer queue, queued on a link that failed, or too large even in parts.
    pub frames_dropped: u64,
    /// Messages larger than one frame, sent in parts.
    pub messages_split: u64,
    /// Messages dropped for exceeding the reassembly limit (also in `frames_dropped`).
    pub messages_too_large: u64,
}

impl Command {
    /// The one key a single-key command works on; `None` for keyless and multi-key commands.
    pub fn single_key(&self) -> Option<&Bytes> {
        match self {
            Command::Get { key }
            | Command::Set { key, .. }
            | Command::GetDel { key }
            | Command::GetEx { key, .. }
            | Command::Expire { key, .. }
            | Command::Ttl { key, .. }
            | Command::ExpireTime { key, .. }
            | Command::Persist { key }
            | Command::IncrBy { key, .. }
            | Command::IncrByFloat { key, .. }
            | Command::Append { key, .. }
            | Command::StrLen { key }
            | Command::GetRange { key, .. }
            | Command::SetRange { key, .. }
            | Command::Type { key } => Some(key),
            Command::MGet { keys } | Command::Del { keys } | Command::Exists { keys } | Command::Touch { keys }
                if keys.len() == 1 =>
            {
                Some(&keys[0])
            }
            Command::MSet { pairs, .. } if pairs.len() == 1 => Some(&pairs[0].0),
            _ => None,
        }
    }

    /// Whether a single-key command only reads (so any replica may answer it at read level ONE).
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Command::Get { .. }
                | Command::Ttl { .. }
                | Command::ExpireTime { .. }
                | Command::StrLen { .. }
                | Command::GetRange { .. }
                | Command::Type { .. }
                | Command::MGet { .. }
                | Command::Exists { .. }
                | Command::Touch { .. }
                | Command::GetEx { ttl: GetExTtl::Keep, .. }
        )
    }

    /// Whether a write's effect depends on the key's current value (everything but a plain SET or MSET).
    pub fn depends_on_value(&self) -> bool {
        !matches!(
            self,
            Command::Set { cond: SetCond::Always, ttl: SetTtl::Clear | SetTtl::At(_), get: false, .. }
                | Command::MSet { if_none_exist: false, .. }
        )
    }

    /// Whether the command may add data, so it is refused with OOM when memory cannot be freed.
    pub fn may_grow(&self) -> bool {
        matches!(
            self,
            Command::Set { .. }
                | Command::MSet { .. }
                | Command::IncrBy { .. }
                | Command::IncrByFloat { .. }
                | Command::Append { .. }
                | Command::SetRange { .. }
        )
    }
}
