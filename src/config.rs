//! Command-line flags, the TOML config file and `SHOAL_*` environment variables, all with the same names.
//!
//! Precedence: a flag on the command line, then its environment variable, then the config file, then the
//! default. Unknown keys in the file and malformed values are errors that name the offending setting.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use serde::Deserialize;

use crate::core::locks::LockMode;
use crate::core::membership::{ClusterSecret, GossipConfig, Profile};
use crate::core::replication::{Consistency, Levels};
use crate::core::ring::VNODES_MAX;
use crate::core::store::EvictionPolicy;
use crate::core::NodeConfig;
use crate::resp::frame::Limits;
use crate::runtime::{ClusterConfig, ServerConfig};

/// Settings as given by flags, environment or file; `None` means "not given here".
#[derive(Debug, Clone, Default, Parser, Deserialize, PartialEq)]
#[command(name = "shoal", version, about = "Shoal: an AP in-memory cache cluster that speaks the Redis protocol")]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Options {
    /// TOML config file with the same setting names (e.g. `listen = "127.0.0.1:6380"`).
    #[arg(long, env = "SHOAL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address for Redis-protocol clients [default: 127.0.0.1:6380].
    #[arg(long, env = "SHOAL_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// This node's name, unique in its cluster [default: shoal-<port>].
    #[arg(long, env = "SHOAL_NAME")]
    pub name: Option<String>,
    /// Memory limit for data, e.g. `100mb`, `1gb`, `0` for none [default: 0].
    #[arg(long, env = "SHOAL_MAXMEMORY")]
    pub maxmemory: Option<String>,
    /// Eviction policy: allkeys-lru, allkeys-random, volatile-lru, noeviction [default: allkeys-lru].
    #[arg(long, env = "SHOAL_MAXMEMORY_POLICY")]
    pub maxmemory_policy: Option<String>,
    /// Password clients must AUTH with.
    #[arg(long, env = "SHOAL_REQUIREPASS")]
    pub requirepass: Option<String>,
    /// Most clients connected at once [default: 10000].
    #[arg(long, env = "SHOAL_MAXCLIENTS")]
    pub maxclients: Option<usize>,
    /// Largest bulk string a client may send, e.g. `512mb` [default: 512mb].
    #[arg(long, env = "SHOAL_PROTO_MAX_BULK_LEN")]
    pub proto_max_bulk_len: Option<String>,
    /// Runtime worker threads; 1 runs everything on one thread like Redis [default: 1].
    #[arg(long, env = "SHOAL_THREADS")]
    pub threads: Option<usize>,
    /// UDP address for cluster gossip, or `off` for a standalone node [default: 127.0.0.1:7946].
    #[arg(long, env = "SHOAL_CLUSTER")]
    pub cluster: Option<String>,
    /// Gossip address to announce to peers; required when `--cluster` binds a wildcard address.
    #[arg(long, env = "SHOAL_ADVERTISE")]
    pub advertise: Option<SocketAddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics [default: off].
    #[arg(long, env = "SHOAL_METRICS")]
    pub metrics: Option<SocketAddr>,
    /// A seed to join through, `host:port` (repeatable; DNS names are re-resolved periodically).
    #[arg(long = "seed", env = "SHOAL_SEED", value_delimiter = ',')]
    #[serde(default)]
    pub seed: Vec<String>,
    /// Shared secret (16 bytes or more) that authenticates every gossip packet.
    #[arg(long, env = "SHOAL_CLUSTER_SECRET")]
    pub cluster_secret: Option<String>,
    /// File holding the cluster secret (its bytes, trailing newline removed).
    #[arg(long, env = "SHOAL_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Failure-detection preset: lan or wan [default: lan].
    #[arg(long, env = "SHOAL_GOSSIP_PROFILE")]
    pub gossip_profile: Option<String>,
    /// SWIM probe period in ms (overrides the profile).
    #[arg(long, env = "SHOAL_PROBE_PERIOD_MS")]
    pub probe_period_ms: Option<u64>,
    /// SWIM probe round-trip timeout in ms (overrides the profile).
    #[arg(long, env = "SHOAL_PROBE_RTT_MS")]
    pub probe_rtt_ms: Option<u64>,
    /// How long a suspect member has to refute before it is declared down, in ms (overrides the profile).
    #[arg(long, env = "SHOAL_SUSPECT_TO_DOWN_MS")]
    pub suspect_to_down_ms: Option<u64>,
    /// Replicas per key (N), at least 1 [default: 3].
    #[arg(long, env = "SHOAL_REPLICAS")]
    pub replicas: Option<usize>,
    /// Consistency of reads unless a connection chooses: ONE, QUORUM or ALL [default: ONE].
    #[arg(long, env = "SHOAL_READ_CONSISTENCY")]
    pub read_consistency: Option<String>,
    /// Consistency of writes unless a connection chooses: ONE, QUORUM or ALL [default: QUORUM].
    #[arg(long, env = "SHOAL_WRITE_CONSISTENCY")]
    pub write_consistency: Option<String>,
    /// How long a coordinator waits for a replica, in ms [default: 1000].
    #[arg(long, env = "SHOAL_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// How long deletes are remembered (tombstones), in seconds [default: 300].
    #[arg(long, env = "SHOAL_TOMBSTONE_GRACE")]
    pub tombstone_grace: Option<u64>,
    /// Most hints held for unreachable replicas [default: 100000].
    #[arg(long, env = "SHOAL_HINTS_MAX")]
    pub hints_max: Option<usize>,
    /// Hints older than this are dropped, in seconds; at most the tombstone grace [default: 240].
    #[arg(long, env = "SHOAL_HINT_MAX_AGE")]
    pub hint_max_age: Option<u64>,
    /// Period of anti-entropy rounds, in ms [default: 5000].
    #[arg(long, env = "SHOAL_ANTI_ENTROPY_PERIOD_MS")]
    pub anti_entropy_period_ms: Option<u64>,
    /// Virtual nodes per member on the hash ring, 1 to 4096 [default: 1024].
    #[arg(long, env = "SHOAL_VNODES")]
    pub vnodes: Option<usize>,
    /// What LOCK.ACQUIRE does without a majority of the lock's replicas: `available` grants it marked
    /// degraded, `strict` refuses [default: available].
    #[arg(long, env = "SHOAL_LOCK_MODE")]
    pub lock_mode: Option<String>,
    /// Refuse peer timestamps (versions, clocks, lock tokens) more than this far ahead of the local clock, in ms,
    /// 1 to 86400000 [default: 60000].
    #[arg(long, env = "SHOAL_MAX_CLOCK_DRIFT_MS")]
    pub max_clock_drift_ms: Option<u64>,
    /// Allow the DEBUG command (DEBUG PANIC ends the process, for tests): no, yes, or local (loopback clients
    /// only), as Redis's enable-debug-command [default: no].
    #[arg(long, env = "SHOAL_ENABLE_DEBUG_COMMAND")]
    pub enable_debug_command: Option<String>,
    /// Test-only: drop this percentage (0-100) of outgoing gossip datagrams, to measure failure detection
    /// under packet loss where no netem is available. Never set it in production.
    #[arg(long, env = "SHOAL_GOSSIP_LOSS_PERCENT", hide = true)]
    pub gossip_loss_percent: Option<u8>,
}

impl Options {
    /// Fill every setting not given here from `file`.
    pub fn or(self, file: Options) -> Options {
        Options {
            config: self.config.or(file.config),
            listen: self.listen.or(file.listen),
            name: self.name.or(file.name),
            maxmemory: self.maxmemory.or(file.maxmemory),
            maxmemory_policy: self.maxmemory_policy.or(file.maxmemory_policy),
            requirepass: self.requirepass.or(file.requirepass),
            maxclients: self.maxclients.or(file.maxclients),
            proto_max_bulk_len: self.proto_max_bulk_len.or(file.proto_max_bulk_len),
            threads: self.threads.or(file.threads),
            cluster: self.cluster.or(file.cluster),
            metrics: self.metrics.or(file.metrics),
            advertise: self.advertise.or(file.advertise),
            seed: if self.seed.is_empty() { file.seed } else { self.seed },
            cluster_secret: self.cluster_secret.or(file.cluster_secret),
            cluster_secret_file: self.cluster_secret_file.or(file.cluster_secret_file),
            gossip_profile: self.gossip_profile.or(file.gossip_profile),
            probe_period_ms: self.probe_period_ms.or(file.probe_period_ms),
            probe_rtt_ms: self.probe_rtt_ms.or(file.probe_rtt_ms),
            suspect_to_down_ms: self.suspect_to_down_ms.or(file.suspect_to_down_ms),
            max_clock_drift_ms: self.max_clock_drift_ms.or(file.max_clock_drift_ms),
            enable_debug_command: self.enable_debug_command.or(file.enable_debug_command),
            gossip_loss_percent: self.gossip_loss_percent.or(file.gossip_loss_percent),
            replicas: self.replicas.or(file.replicas),
            read_consistency: self.read_consistency.or(file.read_consistency),
            write_consistency: self.write_consistency.or(file.write_consistency),
            request_timeout_ms: self.request_timeout_ms.or(file.request_timeout_ms),
            tombstone_grace: self.tombstone_grace.or(file.tombstone_grace),
            hints_max: self.hints_max.or(file.hints_max),
            hint_max_age: self.hint_max_age.or(file.hint_max_age),
            anti_entropy_period_ms: self.anti_entropy_period_ms.or(file.anti_entropy_period_ms),
            vnodes: self.vnodes.or(file.vnodes),
            lock_mode: self.lock_mode.or(file.lock_mode),
        }
    }

    /// Parse a TOML config file's text.
    pub fn from_toml(text: &str) -> anyhow::Result<Options> {
        toml::from_str(text).map_err(|e| anyhow!("invalid config file: {e}"))
    }

    /// Flags and environment, merged with the config file they name (if any).
    pub fn load() -> anyhow::Result<Options> {
        let cli = Options::parse();
        let Some(path) = cli.config.clone() else { return Ok(cli) };
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading config file {}", path.display()))?;
        Ok(cli.or(Options::from_toml(&text).with_context(|| path.display().to_string())?))
    }

    /// The server configuration these options describe, with defaults for what is not given.
    pub fn server_config(&self, seed: u64) -> anyhow::Result<ServerConfig> {
        let d = ServerConfig::default();
        let listen = self.listen.unwrap_or(d.listen);
        let maxmemory = self.maxmemory.as_deref().map(parse_bytes).transpose().context("--maxmemory")?;
        let bulk = self.proto_max_bulk_len.as_deref().map(parse_bytes).transpose().context("--proto-max-bulk-len")?;
        let eviction = self.maxmemory_policy.as_deref().map(parse_policy).transpose()?;
        if self.threads == Some(0) {
            bail!("--threads must be at least 1");
        }
        let limits = Limits { bulk_len_max: bulk.map_or(d.limits.bulk_len_max, |b| b as usize), ..d.limits };
        let node = NodeConfig {
            name: self.name.clone().unwrap_or_else(|| format!("shoal-{}", listen.port())),
            maxmemory_bytes: maxmemory.map_or(0, |m| m as usize),
            eviction: eviction.unwrap_or_default(),
            value_bytes_max: limits.bulk_len_max,
            ..NodeConfig::default()
        };
        Ok(ServerConfig {
            listen,
            requirepass: self.requirepass.clone().filter(|p| !p.is_empty()),
            maxclients: self.maxclients.unwrap_or(d.maxclients),
            limits,
            node: self.replication(node)?,
            seed,
            cluster: self.cluster_config()?,
            metrics: self.metrics,
            enable_debug_command: parse_debug_command(self.enable_debug_command.as_deref())?,
            ..d
        })
    }

    /// `node` with the replication settings given here.
    fn replication(&self, node: NodeConfig) -> anyhow::Result<NodeConfig> {
        let replicas = self.replicas.unwrap_or(node.replicas);
        if replicas == 0 {
            bail!("--replicas 0: expected at least 1");
        }
        let level = |flag: &str, given: &Option<String>, default: Consistency| match given {
            None => Ok(default),
            Some(text) => text.parse::<Consistency>().map_err(|e| anyhow!("--{flag}: {e}")),
        };
        let levels = Levels {
            read: level("read-consistency", &self.read_consistency, node.levels.read)?,
            write: level("write-consistency", &self.write_consistency, node.levels.write)?,
        };
        let request_timeout_ms = positive("request-timeout-ms", self.request_timeout_ms, node.request_timeout_ms)?;
        let period_ms = positive("anti-entropy-period-ms", self.anti_entropy_period_ms, node.anti_entropy_period_ms)?;
        let clock_drift_max_ms = positive("max-clock-drift-ms", self.max_clock_drift_ms, node.clock_drift_max_ms)?;
        for (flag, ms) in [
            ("request-timeout-ms", request_timeout_ms),
            ("anti-entropy-period-ms", period_ms),
            ("max-clock-drift-ms", clock_drift_max_ms),
        ] {
            if ms > DELAY_MS_MAX {
                bail!("--{flag} {ms}: expected at most {DELAY_MS_MAX} (a day)");
            }
        }
        let grace_ms = seconds_to_ms("tombstone-grace", self.tombstone_grace, node.tombstone_grace_ms)?;
        if grace_ms == 0 {
            bail!("--tombstone-grace 0: expected at least 1 second (deletes must outlive their propagation)");
        }
        let hint_age_max_ms = seconds_to_ms("hint-max-age", self.hint_max_age, node.hint_age_max_ms)?;
        if hint_age_max_ms > grace_ms {
            bail!(
                "--hint-max-age {}s exceeds --tombstone-grace {}s: a hint delivered after the grace could bring a \
                 deleted key back; lower the hint age or raise the grace",
                hint_age_max_ms / 1000,
                grace_ms / 1000
            );
        }
        let vnodes = self.vnodes.unwrap_or(node.vnodes);
        if !(1..=VNODES_MAX).contains(&vnodes) {
            bail!("--vnodes {vnodes}: expected 1 to {VNODES_MAX}");
        }
        let lock_mode = match self.lock_mode.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => node.lock_mode,
            Some("available") => LockMode::Available,
            Some("strict") => LockMode::Strict,
            Some(other) => bail!("--lock-mode {other}: expected available or strict"),
        };
        Ok(NodeConfig {
            lock_mode,
            replicas,
            levels,
            request_timeout_ms,
            tombstone_grace_ms: grace_ms,
            hints_max: self.hints_max.unwrap_or(node.hints_max),
            hint_age_max_ms,
            anti_entropy_period_ms: period_ms,
            vnodes,
            clock_drift_max_ms,
            ..node
        })
    }

    /// The cluster settings, or `None` with `--cluster off`.
    fn cluster_config(&self) -> anyhow::Result<Option<ClusterConfig>> {
        let listen: SocketAddr = match self.cluster.as_deref() {
            Some("off" | "none" | "") => return Ok(None),
            Some(addr) => addr.parse().map_err(|e| anyhow!("--cluster {addr:?}: {e} (expected ip:port or off)"))?,
            None => "127.0.0.1:7946".parse().expect("valid default"),
        };
        let profile = match self.gossip_profile.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("lan") => Profile::Lan,
            Some("wan") => Profile::Wan,
            Some(other) => bail!("--gossip-profile {other:?}: expected lan or wan"),
        };
        let mut gossip = GossipConfig::for_profile(profile);
        gossip.probe_period_ms = self.probe_period_ms.unwrap_or(gossip.probe_period_ms);
        gossip.probe_rtt_ms = self.probe_rtt_ms.unwrap_or(gossip.probe_rtt_ms);
        gossip.suspect_to_down_after_ms = self.suspect_to_down_ms.unwrap_or(gossip.suspect_to_down_after_ms);
        gossip.validate().map_err(|e| anyhow!("gossip settings: {e}"))?;
        let secret = match (&self.cluster_secret, &self.cluster_secret_file) {
            (Some(_), Some(_)) => bail!("give --cluster-secret or --cluster-secret-file, not both"),
            (Some(s), None) => Some(s.as_bytes().to_vec()),
            (None, Some(path)) => {
                let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                let trimmed = text.strip_suffix(b"\n").unwrap_or(&text);
                Some(trimmed.strip_suffix(b"\r").unwrap_or(trimmed).to_vec())
            }
            (None, None) => None,
        };
        if let Some(s) = &secret {
            ClusterSecret::from_bytes(s).map_err(|e| anyhow!("cluster secret: {e}"))?;
        }
        // Peers send gossip to the address this node announces; a wildcard is not an address they can reach.
        match self.advertise {
            Some(addr) if addr.ip().is_unspecified() || addr.port() == 0 => {
                bail!("--advertise {addr}: give the IP and port peers reach this node's gossip on")
            }
            None if listen.ip().is_unspecified() => bail!(
                "--cluster {listen} binds every interface, and peers cannot send gossip to {ip}: \
                 give --advertise IP:PORT, the address peers reach this node on",
                ip = listen.ip()
            ),
            _ => {}
        }
        let loss_percent = self.gossip_loss_percent.unwrap_or(0);
        if loss_percent > 100 {
            bail!("--gossip-loss-percent {loss_percent}: expected 0 to 100");
        }
        Ok(Some(ClusterConfig {
            advertise: self.advertise,
            seeds: self.seed.clone(),
            gossip,
            secret,
            send_loss_percent: loss_percent,
            ..ClusterConfig::new(listen)
        }))
    }
}

/// A duration in ms that must not be zero: `given`, or `default` when not given.
/// Longest delay or bound in ms a timing flag may give: a day. Far beyond any sensible setting, and far from
/// the values whose deadlines would overflow the runtime's clock arithmetic.
const DELAY_MS_MAX: u64 = 86_400_000;

/// `--enable-debug-command`: no (the default), yes, or local.
fn parse_debug_command(given: Option<&str>) -> anyhow::Result<crate::runtime::DebugCommand> {
    use crate::runtime::DebugCommand;
    Ok(match given.map(str::to_ascii_lowercase).as_deref() {
        None | Some("no") => DebugCommand::No,
        Some("yes") => DebugCommand::Yes,
        Some("local") => DebugCommand::Local,
        Some(other) => bail!("--enable-debug-command {other}: expected no, yes or local"),
    })
}

fn positive(flag: &str, given: Option<u64>, default: u64) -> anyhow::Result<u64> {
    match given {
        Some(0) => bail!("--{flag} 0: expected at least 1"),
        Some(ms) => Ok(ms),
        None => Ok(default),
    }
}

/// A duration given in seconds, as ms: `given`, or `default_ms` when not given.
fn seconds_to_ms(flag: &str, given: Option<u64>, default_ms: u64) -> anyhow::Result<u64> {
    match given {
        Some(s) => s.checked_mul(1000).ok_or_else(|| anyhow!("--{flag} {s}: too large")),
        None => Ok(default_ms),
    }
}

/// Parse a size the way Redis's config does: `100`, `1k` (1000), `1kb` (1024), `5mb`, `1gb`, case-insensitive.
pub fn parse_bytes(text: &str) -> anyhow::Result<u64> {
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| anyhow!("invalid size {text:?}: expected a number with an optional unit"))?;
    let mult: u64 = match unit {
        "" | "b" => 1,
        "k" => 1_000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => bail!("invalid size {text:?}: unknown unit {unit:?} (use b, k, kb, m, mb, g, gb)"),
    };
    n.checked_mul(mult).ok_or_else(|| anyhow!("invalid size {text:?}: too large"))
}

/// Parse an eviction policy by its Redis name.
pub fn parse_policy(text: &str) -> anyhow::Result<EvictionPolicy> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "allkeys-lru" => EvictionPolicy::AllKeysLru,
        "allkeys-random" => EvictionPolicy::AllKeysRandom,
        "volatile-lru" => EvictionPolicy::VolatileLru,
        "noeviction" => EvictionPolicy::NoEviction,
        other => bail!("unknown maxmemory policy {other:?} (allkeys-lru, allkeys-random, volatile-lru, noeviction)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_drift_and_timer_flags_are_bounded() {
        let cfg = |o: Options| o.server_config(1);
        assert_eq!(cfg(Options::default()).unwrap().node.clock_drift_max_ms, 60_000);
        let file = Options::from_toml("max-clock-drift-ms = 5000").unwrap();
        assert_eq!(cfg(file).unwrap().node.clock_drift_max_ms, 5_000);
        assert!(cfg(Options { max_clock_drift_ms: Some(0), ..Options::default() }).is_err());
        let huge = Some(u64::MAX);
        for bad in [
            Options { max_clock_drift_ms: huge, ..Options::default() },
            Options { request_timeout_ms: huge, ..Options::default() },
            Options { anti_entropy_period_ms: huge, ..Options::default() },
        ] {
            let err = cfg(bad).expect_err("refused").to_string();
            assert!(err.contains("at most 86400000"), "{err}");
        }
    }

    #[test]
    fn the_debug_command_is_off_unless_enabled() {
        use crate::runtime::DebugCommand;
        let cfg = |v: Option<&str>| Options { enable_debug_command: v.map(String::from), ..Options::default() };
        assert_eq!(cfg(None).server_config(1).unwrap().enable_debug_command, DebugCommand::No);
        assert_eq!(cfg(Some("YES")).server_config(1).unwrap().enable_debug_command, DebugCommand::Yes);
        assert_eq!(cfg(Some("local")).server_config(1).unwrap().enable_debug_command, DebugCommand::Local);
        assert!(cfg(Some("maybe")).server_config(1).is_err());
    }

    #[test]
    fn sizes_parse_like_redis() {
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert_eq!(parse_bytes("1k").unwrap(), 1000);
        assert_eq!(parse_bytes("1kb").unwrap(), 1024);
        assert_eq!(parse_bytes("100mb").unwrap(), 100 << 20);
        assert_eq!(parse_bytes("1GB").unwrap(), 1 << 30);
        assert!(parse_bytes("12xb").is_err());
        assert!(parse_bytes("mb").is_err());
        assert!(parse_bytes("99999999999999999gb").is_err());
    }

    #[test]
    fn flags_win_over_file_and_defaults_fill_the_rest() {
        let file = Options::from_toml("listen = \"127.0.0.1:7000\"\nmaxmemory = \"1mb\"\nname = \"f\"").unwrap();
        let cli = Options { name: Some("cli".into()), ..Options::default() };
        let cfg = cli.or(file).server_config(1).unwrap();
        assert_eq!(cfg.listen.port(), 7000);
        assert_eq!(cfg.node.name, "cli");
        assert_eq!(cfg.node.maxmemory_bytes, 1 << 20);
        assert_eq!(cfg.maxclients, 10_000);
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_errors() {
        assert!(Options::from_toml("listn = \"x\"").is_err());
        let bad = Options { maxmemory: Some("lots".into()), ..Options::default() };
        assert!(bad.server_config(1).is_err());
        let bad = Options { maxmemory_policy: Some("lfu".into()), ..Options::default() };
        assert!(bad.server_config(1).is_err());
        let bad = Options { gossip_loss_percent: Some(101), ..Options::default() };
        assert!(bad.server_config(1).is_err());
    }

    #[test]
    fn replication_settings_map_to_the_node() {
        let node = |o: Options| o.server_config(1).map(|c| c.node);
        let d = node(Options::default()).unwrap();
        assert_eq!((d.replicas, d.levels), (3, Levels::default()));
        assert_eq!((d.tombstone_grace_ms, d.hint_age_max_ms), (300_000, 240_000));
        assert_eq!(d.vnodes, crate::core::ring::DEFAULT_VNODES);
        let file = "replicas = 5\nread-consistency = \"quorum\"\nwrite-consistency = \"ALL\"\n\
                    request-timeout-ms = 250\ntombstone-grace = 60\nhints-max = 7\nhint-max-age = 60\n\
                    anti-entropy-period-ms = 900\nvnodes = 64";
        let n = node(Options::from_toml(file).unwrap()).unwrap();
        assert_eq!((n.replicas, n.levels.read, n.levels.write), (5, Consistency::Quorum, Consistency::All));
        assert_eq!((n.request_timeout_ms, n.tombstone_grace_ms, n.hint_age_max_ms), (250, 60_000, 60_000));
        assert_eq!((n.hints_max, n.anti_entropy_period_ms, n.vnodes), (7, 900, 64));
    }

    #[test]
    fn wrong_replication_settings_say_what_is_wrong() {
        let err = |o: Options| format!("{:#}", o.server_config(1).unwrap_err());
        assert!(err(Options { replicas: Some(0), ..Options::default() }).contains("--replicas"));
        let e = err(Options { read_consistency: Some("two".into()), ..Options::default() });
        assert!(e.contains("--read-consistency") && e.contains("unknown consistency level 'two'"), "{e}");
        assert!(err(Options { write_consistency: Some("".into()), ..Options::default() }).contains("--write-"));
        assert!(err(Options { request_timeout_ms: Some(0), ..Options::default() }).contains("--request-timeout"));
        assert!(err(Options { anti_entropy_period_ms: Some(0), ..Options::default() }).contains("anti-entropy"));
        assert!(err(Options { vnodes: Some(0), ..Options::default() }).contains("--vnodes"));
        assert!(err(Options { vnodes: Some(VNODES_MAX + 1), ..Options::default() }).contains("--vnodes"));
        assert!(err(Options { tombstone_grace: Some(0), ..Options::default() }).contains("--tombstone-grace"));
        let e = err(Options { tombstone_grace: Some(100), ..Options::default() });
        assert!(e.contains("--hint-max-age 240s exceeds --tombstone-grace 100s"), "{e}");
        let ok = Options { tombstone_grace: Some(100), hint_max_age: Some(100), ..Options::default() };
        assert!(ok.server_config(1).is_ok());
        assert!(err(Options { hint_max_age: Some(u64::MAX), ..Options::default() }).contains("too large"));
    }

    #[test]
    fn a_wildcard_cluster_address_needs_an_advertised_one() {
        let wildcard = Options { cluster: Some("0.0.0.0:7946".into()), ..Options::default() };
        let error = wildcard.clone().server_config(1).unwrap_err().to_string();
        assert!(error.contains("--advertise"), "{error}");
        let advertise = Some("10.1.2.3:7946".parse().unwrap());
        let cluster = Options { advertise, ..wildcard.clone() }.server_config(1).unwrap().cluster.unwrap();
        assert_eq!(cluster.advertise, advertise);
        let bad = Options { advertise: Some("0.0.0.0:7946".parse().unwrap()), ..wildcard };
        assert!(bad.server_config(1).is_err());
        let v6 = Options { cluster: Some("[::]:7946".into()), ..Options::default() };
        assert!(v6.server_config(1).is_err());
    }

    #[test]
    fn gossip_loss_is_off_unless_asked_for() {
        let cluster = |o: Options| o.server_config(1).unwrap().cluster.unwrap();
        assert_eq!(cluster(Options::default()).send_loss_percent, 0);
        assert_eq!(cluster(Options { gossip_loss_percent: Some(5), ..Options::default() }).send_loss_percent, 5);
    }
}
