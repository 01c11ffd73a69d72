//! `NodeConfig`: the settings of one node's data path, with their defaults.

use super::locks::LockMode;
use super::replication::Levels;
use super::ring::DEFAULT_VNODES;
use super::store::EvictionPolicy;
use super::Millis;

/// Settings of one node's data path.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// The node's name, unique in its cluster.
    pub name: String,
    /// Memory limit for stored data in bytes (`None`: no limit).
    pub maxmemory_bytes: Option<usize>,
    /// What to evict when over the limit.
    pub eviction: EvictionPolicy,
    /// Largest value a write may produce (Redis's proto-max-bulk-len).
    pub value_bytes_max: usize,
    /// Period of active expiry.
    pub active_expire_period_ms: Millis,
    /// Most keys one active-expiry pass removes before it yields (it reschedules itself at once).
    pub active_expire_keys_max: usize,
    /// Replicas per key (N).
    pub replicas: usize,
    /// Levels of connections that did not choose their own.
    pub levels: Levels,
    /// How long a coordinator waits for a replica before it counts it as failed (hint, failover, error).
    pub request_timeout_ms: Millis,
    /// How long tombstones (and eviction markers) are kept.
    pub tombstone_grace_ms: Millis,
    /// Most hints a node holds for unreachable replicas; beyond it the oldest are dropped and counted.
    pub hints_max: usize,
    /// Hints older than this are dropped and counted (keep it below the tombstone grace).
    pub hint_age_max_ms: Millis,
    /// Period of anti-entropy rounds (one peer per round).
    pub anti_entropy_period_ms: Millis,
    /// Virtual nodes per member on the ring.
    pub vnodes: usize,
    /// What a lock acquire does without a majority of the lock's replicas.
    pub lock_mode: LockMode,
    /// Largest lead over this node's wall clock accepted in a timestamp from a peer (entries' versions, clocks,
    /// lock tokens); beyond it what carries the timestamp is dropped and counted.
    pub clock_drift_max_ms: Millis,
    /// Most requests this node coordinates at once (reads, writes, forwards, fan-outs, lock rounds); a client
    /// or forwarded command beyond it is refused with `TRYAGAIN`.
    pub requests_in_flight_max: usize,
}

/// Default of `NodeConfig::clock_drift_max_ms`: a minute. NTP keeps clocks within tens of milliseconds, and even
/// an unsynchronized clock drifts by well under a minute a day; a peer a minute ahead has a broken clock (or lies),
/// and accepting its timestamps would carry every other node's clock along with it.
pub const CLOCK_DRIFT_MAX_MS_DEFAULT: Millis = 60_000;

/// Default of `NodeConfig::requests_in_flight_max`: far above what a node serves at once (64 connections of
/// 512-deep pipelines are 32,768), low enough that the table stays a few tens of MB of small requests.
pub const REQUESTS_IN_FLIGHT_MAX_DEFAULT: usize = 131_072;

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: "shoal".to_string(),
            maxmemory_bytes: None,
            eviction: EvictionPolicy::AllKeysLru,
            value_bytes_max: 512 * 1024 * 1024,
            active_expire_period_ms: 100,
            active_expire_keys_max: 2_000,
            replicas: 3,
            levels: Levels::default(),
            request_timeout_ms: 1_000,
            tombstone_grace_ms: 300_000,
            hints_max: 100_000,
            hint_age_max_ms: 240_000,
            anti_entropy_period_ms: 5_000,
            vnodes: DEFAULT_VNODES,
            lock_mode: LockMode::default(),
            clock_drift_max_ms: CLOCK_DRIFT_MAX_MS_DEFAULT,
            requests_in_flight_max: REQUESTS_IN_FLIGHT_MAX_DEFAULT,
        }
    }
}
