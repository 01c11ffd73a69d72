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
use crate::core::membership::identity::NAME_BYTES_MAX;
use crate::core::membership::{ClusterSecret, GossipConfig, Profile};
use crate::core::replication::{Consistency, Levels};
use crate::core::ring::VNODES_MAX;
use crate::core::store::EvictionPolicy;
use crate::core::NodeConfig;
use crate::resp::frame::Limits;
use crate::runtime::tls::{CertFiles, ClientAuth, ClusterTlsFiles};
use crate::runtime::{ClusterConfig, ServerConfig, TlsListenConfig};
use crate::secret::Secret;

/// Smallest `--client-query-buffer-limit` (Redis's minimum).
const CLIENT_QUERY_BUFFER_MIN_BYTES: u64 = 1 << 20;

/// Settings as given by flags, environment or file; `None` means "not given here".
#[derive(Debug, Clone, Default, Parser, Deserialize, PartialEq)]
#[command(name = "shoal", version, about = "Shoal: an AP in-memory cache cluster that speaks the Redis protocol")]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Options {
    /// TOML config file with the same setting names (e.g. `listen = "127.0.0.1:6380"`).
    #[arg(long, env = "SHOAL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address for Redis-protocol clients over plain TCP, or `off` to serve clients over TLS only
    /// [default: 127.0.0.1:6380].
    #[arg(long, env = "SHOAL_LISTEN")]
    pub listen: Option<String>,
    /// This node's name, unique in its cluster [default: <hostname>-<port>].
    #[arg(long, env = "SHOAL_NAME")]
    pub name: Option<String>,
    /// Memory limit for data, e.g. `100mb`, `1gb`, `0` for none [default: 0].
    #[arg(long, env = "SHOAL_MAXMEMORY")]
    pub maxmemory: Option<String>,
    /// Eviction policy: allkeys-lru, allkeys-random, volatile-lru, noeviction [default: allkeys-lru].
    #[arg(long, env = "SHOAL_MAXMEMORY_POLICY")]
    pub maxmemory_policy: Option<String>,
    /// Password clients must AUTH with (its value is never printed; prefer --requirepass-file).
    #[arg(long, env = "SHOAL_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<Secret>,
    /// File holding the client password (its bytes, trailing newline removed).
    #[arg(long, env = "SHOAL_REQUIREPASS_FILE")]
    pub requirepass_file: Option<PathBuf>,
    /// Most clients connected at once [default: 10000].
    #[arg(long, env = "SHOAL_MAXCLIENTS")]
    pub maxclients: Option<usize>,
    /// Largest bulk string a client may send, e.g. `512mb` [default: 512mb].
    #[arg(long, env = "SHOAL_PROTO_MAX_BULK_LEN")]
    pub proto_max_bulk_len: Option<String>,
    /// Runtime worker threads; 1 runs everything on one thread like Redis [default: 1].
    #[arg(long, env = "SHOAL_THREADS")]
    pub threads: Option<usize>,
    /// Address for Redis-protocol clients over TLS (Redis's `tls-port`) [default: off].
    #[arg(long, env = "SHOAL_TLS_LISTEN")]
    pub tls_listen: Option<SocketAddr>,
    /// Run every peer link inside mutual TLS with --tls-cert-file, --tls-key-file and the CA of
    /// --tls-ca-cert-file (Redis's `tls-cluster`); gossip (UDP) keeps its HMAC [default: false].
    #[arg(long, env = "SHOAL_TLS_CLUSTER", num_args = 0..=1, default_missing_value = "true")]
    pub tls_cluster: Option<bool>,
    /// PEM certificate chain the TLS listener and TLS peer links present, leaf first.
    #[arg(long, env = "SHOAL_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the TLS certificate.
    #[arg(long, env = "SHOAL_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificate(s) that sign client certificates, and with --tls-cluster every node's certificate.
    #[arg(long, env = "SHOAL_TLS_CA_CERT_FILE")]
    pub tls_ca_cert_file: Option<PathBuf>,
    /// Client certificates: `yes` requires one signed by the CA, `optional` verifies one if sent, `no` asks for
    /// none [default: yes].
    #[arg(long, env = "SHOAL_TLS_AUTH_CLIENTS")]
    pub tls_auth_clients: Option<String>,
    /// Longest a client's TLS handshake may take, in ms [default: 10000].
    #[arg(long, env = "SHOAL_TLS_HANDSHAKE_TIMEOUT_MS")]
    pub tls_handshake_timeout_ms: Option<u64>,
    /// Most unparsed request bytes a client may have buffered before it is disconnected, e.g. `1gb`
    /// [default: 1gb].
    #[arg(long, env = "SHOAL_CLIENT_QUERY_BUFFER_LIMIT")]
    pub client_query_buffer_limit: Option<String>,
    /// Most reply bytes held for a client that does not read before it is disconnected, e.g. `256mb`; `0` for no
    /// limit [default: 1gb].
    #[arg(long, env = "SHOAL_CLIENT_OUTPUT_BUFFER_LIMIT")]
    pub client_output_buffer_limit: Option<String>,
    /// Close a client idle for this many seconds; 0 never [default: 0].
    #[arg(long, env = "SHOAL_TIMEOUT")]
    pub timeout: Option<u64>,
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
    /// Shared secret (16 bytes or more) that authenticates every gossip packet and peer link (its value is
    /// never printed; prefer --cluster-secret-file).
    #[arg(long, env = "SHOAL_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<Secret>,
    /// File holding the cluster secret (its bytes, trailing newline removed).
    #[arg(long, env = "SHOAL_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Allow a cluster address other than loopback without a cluster secret: anyone who reaches the port
    /// can then read and change every key. Never set it on a network you do not fully trust.
    #[arg(long, env = "SHOAL_CLUSTER_INSECURE", num_args = 0..=1, default_missing_value = "true")]
    pub cluster_insecure: Option<bool>,
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
    /// Test-only: add this many ms (may be negative) to every wall-clock reading of the process, to skew one
    /// node's clock in chaos tests. Accepted only with `--enable-debug-command yes|local`. Never set it in
    /// production.
    #[arg(long, env = "SHOAL_DEBUG_CLOCK_OFFSET_MS", hide = true, allow_hyphen_values = true)]
    pub debug_clock_offset_ms: Option<i64>,
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
            requirepass_file: self.requirepass_file.or(file.requirepass_file),
            maxclients: self.maxclients.or(file.maxclients),
            proto_max_bulk_len: self.proto_max_bulk_len.or(file.proto_max_bulk_len),
            threads: self.threads.or(file.threads),
            tls_listen: self.tls_listen.or(file.tls_listen),
            tls_cluster: self.tls_cluster.or(file.tls_cluster),
            tls_cert_file: self.tls_cert_file.or(file.tls_cert_file),
            tls_key_file: self.tls_key_file.or(file.tls_key_file),
            tls_ca_cert_file: self.tls_ca_cert_file.or(file.tls_ca_cert_file),
            tls_auth_clients: self.tls_auth_clients.or(file.tls_auth_clients),
            tls_handshake_timeout_ms: self.tls_handshake_timeout_ms.or(file.tls_handshake_timeout_ms),
            client_query_buffer_limit: self.client_query_buffer_limit.or(file.client_query_buffer_limit),
            client_output_buffer_limit: self.client_output_buffer_limit.or(file.client_output_buffer_limit),
            timeout: self.timeout.or(file.timeout),
            cluster: self.cluster.or(file.cluster),
            metrics: self.metrics.or(file.metrics),
            advertise: self.advertise.or(file.advertise),
            seed: if self.seed.is_empty() { file.seed } else { self.seed },
            cluster_secret: self.cluster_secret.or(file.cluster_secret),
            cluster_secret_file: self.cluster_secret_file.or(file.cluster_secret_file),
            cluster_insecure: self.cluster_insecure.or(file.cluster_insecure),
            gossip_profile: self.gossip_profile.or(file.gossip_profile),
            probe_period_ms: self.probe_period_ms.or(file.probe_period_ms),
            probe_rtt_ms: self.probe_rtt_ms.or(file.probe_rtt_ms),
            suspect_to_down_ms: self.suspect_to_down_ms.or(file.suspect_to_down_ms),
            max_clock_drift_ms: self.max_clock_drift_ms.or(file.max_clock_drift_ms),
            enable_debug_command: self.enable_debug_command.or(file.enable_debug_command),
            gossip_loss_percent: self.gossip_loss_percent.or(file.gossip_loss_percent),
            debug_clock_offset_ms: self.debug_clock_offset_ms.or(file.debug_clock_offset_ms),
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
        let listen = match self.listen.as_deref() {
            None => d.listen,
            Some("off" | "none" | "") => None,
            Some(addr) => Some(addr.parse().map_err(|e| anyhow!("--listen {addr:?}: {e} (expected ip:port or off)"))?),
        };
        let tls = self.tls_config()?;
        if listen.is_none() && tls.is_none() {
            bail!("--listen off leaves no client listener: give --tls-listen, or a --listen address");
        }
        let client_port = listen.or(tls.as_ref().map(|t| t.listen)).map_or(0, |a| a.port());
        let maxmemory = self.maxmemory.as_deref().map(parse_bytes).transpose().context("--maxmemory")?;
        let bulk = self.proto_max_bulk_len.as_deref().map(parse_bytes).transpose().context("--proto-max-bulk-len")?;
        let eviction = self.maxmemory_policy.as_deref().map(parse_policy).transpose()?;
        if self.threads == Some(0) {
            bail!("--threads must be at least 1");
        }
        let limits = Limits { bulk_len_max: bulk.map_or(d.limits.bulk_len_max, |b| b as usize), ..d.limits };
        let node = NodeConfig {
            name: self
                .name
                .clone()
                .unwrap_or_else(|| default_name(&gethostname::gethostname().to_string_lossy(), client_port)),
            maxmemory_bytes: maxmemory.map_or(0, |m| m as usize),
            eviction: eviction.unwrap_or_default(),
            value_bytes_max: limits.bulk_len_max,
            ..NodeConfig::default()
        };
        let query_max = match self.client_query_buffer_limit.as_deref() {
            None => d.client_query_buffer_bytes_max as u64,
            Some(text) => parse_bytes(text).context("--client-query-buffer-limit")?,
        };
        if query_max < CLIENT_QUERY_BUFFER_MIN_BYTES {
            bail!("--client-query-buffer-limit {query_max}: expected at least 1mb (as Redis)");
        }
        if limits.bulk_len_max as u64 > query_max {
            bail!(
                "--proto-max-bulk-len {} exceeds --client-query-buffer-limit {query_max}: a client sending the largest \
                 bulk would be disconnected; lower the bulk length or raise the query buffer limit",
                limits.bulk_len_max
            );
        }
        let output_max = match self.client_output_buffer_limit.as_deref() {
            None => d.client_output_buffer_bytes_max as u64,
            Some(text) => parse_bytes(text).context("--client-output-buffer-limit")?,
        };
        let enable_debug_command = parse_debug_command(self.enable_debug_command.as_deref())?;
        let clock_offset_ms = self.debug_clock_offset_ms.unwrap_or(0);
        if clock_offset_ms != 0 && enable_debug_command == crate::runtime::DebugCommand::No {
            bail!("--debug-clock-offset-ms is test-only: it needs --enable-debug-command yes or local");
        }
        Ok(ServerConfig {
            listen,
            tls,
            client_query_buffer_bytes_max: usize::try_from(query_max).unwrap_or(usize::MAX),
            client_output_buffer_bytes_max: usize::try_from(output_max).unwrap_or(usize::MAX),
            client_idle_timeout_ms: seconds_to_ms("timeout", self.timeout, d.client_idle_timeout_ms)?,
            requirepass: self.requirepass()?,
            maxclients: self.maxclients.unwrap_or(d.maxclients),
            limits,
            node: self.replication(node)?,
            seed,
            cluster: self.cluster_config()?,
            metrics: self.metrics,
            enable_debug_command,
            clock_offset_ms,
            ..d
        })
    }

    /// The client password, from `--requirepass` or `--requirepass-file`; an empty one means none, as in Redis.
    fn requirepass(&self) -> anyhow::Result<Option<Secret>> {
        Ok(secret_from("requirepass", &self.requirepass, &self.requirepass_file)?.filter(|p| !p.is_empty()))
    }

    /// The TLS client listener, or `None` without `--tls-listen`.
    fn tls_config(&self) -> anyhow::Result<Option<TlsListenConfig>> {
        let Some(listen) = self.tls_listen else {
            let files = self.tls_cert_file.is_some() || self.tls_key_file.is_some() || self.tls_ca_cert_file.is_some();
            if files && !self.tls_cluster() {
                bail!("TLS certificate files are given but nothing uses them: add --tls-listen ADDR or --tls-cluster");
            }
            return Ok(None);
        };
        let (Some(cert_file), Some(key_file)) = (self.tls_cert_file.clone(), self.tls_key_file.clone()) else {
            bail!("--tls-listen {listen} needs --tls-cert-file and --tls-key-file");
        };
        let auth_clients = match self.tls_auth_clients.as_deref() {
            None => ClientAuth::default(),
            Some(text) => text.parse::<ClientAuth>().map_err(|e| anyhow!("--tls-auth-clients {e}"))?,
        };
        if auth_clients != ClientAuth::No && self.tls_ca_cert_file.is_none() {
            bail!(
                "--tls-auth-clients {auth_clients} (the default is yes, as in Redis) needs --tls-ca-cert-file, the CA \
                 that signs client certificates; or give --tls-auth-clients no"
            );
        }
        let mut config = TlsListenConfig::new(listen, CertFiles { cert_file, key_file }, self.tls_ca_cert_file.clone());
        config.auth_clients = auth_clients;
        config.handshake_timeout_ms =
            positive("tls-handshake-timeout-ms", self.tls_handshake_timeout_ms, config.handshake_timeout_ms)?;
        Ok(Some(config))
    }

    /// Whether `--tls-cluster` is on.
    fn tls_cluster(&self) -> bool {
        self.tls_cluster.unwrap_or(false)
    }

    /// The files of TLS peer links, or `None` without `--tls-cluster`; all three are required with it.
    fn cluster_tls(&self) -> anyhow::Result<Option<ClusterTlsFiles>> {
        if !self.tls_cluster() {
            return Ok(None);
        }
        let missing: Vec<&str> = [
            ("--tls-cert-file", self.tls_cert_file.is_none()),
            ("--tls-key-file", self.tls_key_file.is_none()),
            ("--tls-ca-cert-file", self.tls_ca_cert_file.is_none()),
        ]
        .into_iter()
        .filter_map(|(flag, absent)| absent.then_some(flag))
        .collect();
        let (Some(cert_file), Some(key_file), Some(ca_cert_file)) =
            (self.tls_cert_file.clone(), self.tls_key_file.clone(), self.tls_ca_cert_file.clone())
        else {
            bail!(
                "--tls-cluster needs --tls-cert-file, --tls-key-file and --tls-ca-cert-file (this node's certificate,                  its key, and the CA that signs every node's certificate); missing: {}",
                missing.join(", ")
            );
        };
        Ok(Some(ClusterTlsFiles { identity: CertFiles { cert_file, key_file }, ca_cert_file }))
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
            Some("off" | "none" | "") if self.tls_cluster() => {
                bail!("--tls-cluster with --cluster off: a standalone node has no peer links to protect")
            }
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
        let secret = secret_from("cluster-secret", &self.cluster_secret, &self.cluster_secret_file)?;
        if let Some(s) = &secret {
            ClusterSecret::from_bytes(s.expose()).map_err(|e| anyhow!("cluster secret: {e}"))?;
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
        let insecure = self.cluster_insecure.unwrap_or(false);
        // TLS alone does not lift the rule: it authenticates peer links by certificate, but gossip would be open.
        crate::runtime::check_cluster_exposure(listen, self.advertise, secret.is_some(), insecure)?;
        let loss_percent = self.gossip_loss_percent.unwrap_or(0);
        if loss_percent > 100 {
            bail!("--gossip-loss-percent {loss_percent}: expected 0 to 100");
        }
        Ok(Some(ClusterConfig {
            advertise: self.advertise,
            seeds: self.seed.clone(),
            gossip,
            secret,
            tls: self.cluster_tls()?,
            insecure,
            send_loss_percent: loss_percent,
            ..ClusterConfig::new(listen)
        }))
    }
}

/// The default node name: the host name and the client port, `web-3-6380`. Host names are unique per host (a
/// Kubernetes pod's host name is its pod name) and ports per host, so two nodes never share it by default; a
/// host name too long for `NAME_BYTES_MAX` is cut, and one that is empty becomes `shoal`.
fn default_name(host: &str, port: u16) -> String {
    let suffix = format!("-{port}");
    let host = host.trim();
    let host = if host.is_empty() { "shoal" } else { host };
    let mut cut = NAME_BYTES_MAX.saturating_sub(suffix.len()).min(host.len());
    while !host.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &host[..cut])
}

/// A secret given inline (`--FLAG`) or in a file (`--FLAG-file`), not both; a file's trailing newline is dropped.
fn secret_from(flag: &str, inline: &Option<Secret>, file: &Option<PathBuf>) -> anyhow::Result<Option<Secret>> {
    match (inline, file) {
        (Some(_), Some(_)) => bail!("give --{flag} or --{flag}-file, not both"),
        (Some(s), None) => Ok(Some(s.clone())),
        (None, Some(path)) => {
            let text = std::fs::read(path).with_context(|| format!("reading --{flag}-file {}", path.display()))?;
            let trimmed = text.strip_suffix(b"\n").unwrap_or(&text);
            Ok(Some(Secret::from(trimmed.strip_suffix(b"\r").unwrap_or(trimmed))))
        }
        (None, None) => Ok(None),
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
    fn a_clock_offset_needs_the_debug_command() {
        let cfg = |debug: Option<&str>| Options {
            enable_debug_command: debug.map(String::from),
            debug_clock_offset_ms: Some(-1_500),
            ..Options::default()
        };
        let refused = cfg(None).server_config(1).unwrap_err().to_string();
        assert!(refused.contains("test-only"), "{refused}");
        assert_eq!(cfg(Some("local")).server_config(1).unwrap().clock_offset_ms, -1_500);
        assert_eq!(Options::default().server_config(1).unwrap().clock_offset_ms, 0);
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
        assert_eq!(cfg.listen.unwrap().port(), 7000);
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
        let secret = Some("0123456789abcdef".into());
        let exposed = Options { advertise, cluster_secret: secret, ..wildcard.clone() };
        let cluster = exposed.server_config(1).unwrap().cluster.unwrap();
        assert_eq!(cluster.advertise, advertise);
        let bad = Options { advertise: Some("0.0.0.0:7946".parse().unwrap()), ..wildcard };
        assert!(bad.server_config(1).is_err());
        let v6 = Options { cluster: Some("[::]:7946".into()), ..Options::default() };
        assert!(v6.server_config(1).is_err());
    }

    #[test]
    fn the_default_name_is_the_host_and_port_and_fits_an_identity() {
        assert_eq!(default_name("web-3", 6380), "web-3-6380");
        assert_eq!(default_name("", 6380), "shoal-6380");
        let long = "h".repeat(200);
        let name = default_name(&long, 6380);
        assert_eq!(name.len(), NAME_BYTES_MAX);
        assert!(name.ends_with("-6380"));
        let wide = "é".repeat(40); // two bytes each: the cut must fall on a character boundary
        assert!(default_name(&wide, 1).len() <= NAME_BYTES_MAX);
        let node = Options::default().server_config(1).unwrap().node;
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        assert_eq!(node.name, default_name(&host, 6380));
    }

    #[test]
    fn secrets_come_inline_or_from_a_file_and_never_show() {
        let dir = std::env::temp_dir().join(format!("shoal-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pass_file = dir.join("pass");
        std::fs::write(&pass_file, "from-file-pass\n").unwrap();
        let secret_file = dir.join("secret");
        std::fs::write(&secret_file, "a-cluster-secret-from-a-file\r\n").unwrap();
        let o = Options {
            requirepass_file: Some(pass_file.clone()),
            cluster_secret_file: Some(secret_file),
            ..Options::default()
        };
        let cfg = o.server_config(1).unwrap();
        assert_eq!(cfg.requirepass.as_ref().unwrap().expose(), b"from-file-pass");
        let cluster = cfg.cluster.as_ref().unwrap();
        assert_eq!(cluster.secret.as_ref().unwrap().expose(), b"a-cluster-secret-from-a-file");
        let shown = format!("{o:?} {cfg:?} {cfg:#?}");
        assert!(!shown.contains("from-file-pass") && !shown.contains("a-cluster-secret"), "{shown}");
        let inline = Options {
            requirepass: Some("inline-pass".into()),
            cluster_secret: Some("inline-cluster-secret".into()),
            ..Options::default()
        };
        let shown = format!("{inline:?} {:?}", inline.server_config(1).unwrap());
        assert!(!shown.contains("inline-pass") && !shown.contains("inline-cluster-secret"), "{shown}");
        let both = Options { requirepass: Some("x".into()), requirepass_file: Some(pass_file), ..Options::default() };
        assert!(format!("{:#}", both.server_config(1).unwrap_err()).contains("not both"));
        let empty = Options { requirepass: Some("".into()), ..Options::default() };
        assert!(empty.server_config(1).unwrap().requirepass.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn help_never_prints_secret_values_from_the_environment() {
        use clap::CommandFactory;
        let mut cmd = Options::command();
        for arg in ["requirepass", "cluster_secret"] {
            let a = cmd.get_arguments().find(|a| a.get_id() == arg).unwrap();
            assert!(a.is_hide_env_values_set(), "--{arg} must hide its environment value");
        }
        let help = cmd.render_long_help().to_string();
        assert!(help.contains("SHOAL_REQUIREPASS") && help.contains("SHOAL_CLUSTER_SECRET"), "{help}");
    }

    #[test]
    fn tls_listener_settings() {
        let tls = |o: Options| o.server_config(1).map(|c| (c.listen, c.tls));
        let err = |o: Options| format!("{:#}", o.server_config(1).unwrap_err());
        let files = Options {
            tls_listen: Some("127.0.0.1:6390".parse().unwrap()),
            tls_cert_file: Some("c.pem".into()),
            tls_key_file: Some("k.pem".into()),
            ..Options::default()
        };
        let e = err(files.clone());
        assert!(e.contains("--tls-ca-cert-file") && e.contains("default is yes"), "{e}");
        let no_auth = Options { tls_auth_clients: Some("no".into()), ..files.clone() };
        let (listen, t) = tls(no_auth.clone()).unwrap();
        let t = t.unwrap();
        assert_eq!(
            (listen, t.auth_clients, t.handshake_timeout_ms),
            (ServerConfig::default().listen, ClientAuth::No, 10_000)
        );
        let with_ca = Options { tls_ca_cert_file: Some("ca.pem".into()), listen: Some("off".into()), ..files.clone() };
        let (listen, t) = tls(with_ca).unwrap();
        assert_eq!((listen, t.unwrap().auth_clients), (None, ClientAuth::Yes));
        assert!(err(Options { tls_auth_clients: Some("sometimes".into()), ..no_auth.clone() }).contains("--tls-auth"));
        assert!(err(Options { tls_handshake_timeout_ms: Some(0), ..no_auth }).contains("handshake"));
        assert!(err(Options { tls_key_file: None, ..files }).contains("--tls-key-file"));
        assert!(err(Options { tls_cert_file: Some("c.pem".into()), ..Options::default() }).contains("--tls-listen"));
        assert!(err(Options { listen: Some("off".into()), ..Options::default() }).contains("no client listener"));
        assert!(err(Options { listen: Some("nowhere".into()), ..Options::default() }).contains("--listen"));
    }

    #[test]
    fn tls_cluster_settings() {
        let err = |o: Options| format!("{:#}", o.server_config(1).unwrap_err());
        let on = Options { tls_cluster: Some(true), ..Options::default() };
        let e = err(on.clone());
        assert!(e.contains("--tls-cluster needs") && e.contains("missing: --tls-cert-file, --tls-key-file, --tls-ca"));
        let files = Options {
            tls_cert_file: Some("node.pem".into()),
            tls_key_file: Some("node.key".into()),
            tls_ca_cert_file: Some("ca.pem".into()),
            ..Options::default()
        };
        let e = err(Options { tls_ca_cert_file: None, ..Options { tls_cluster: Some(true), ..files.clone() } });
        assert!(e.ends_with("missing: --tls-ca-cert-file"), "{e}");
        // The certificate files with --tls-cluster alone (no client TLS listener) are accepted.
        let cfg = Options { tls_cluster: Some(true), ..files.clone() }.server_config(1).unwrap();
        assert!(cfg.tls.is_none(), "no client TLS listener");
        let tls = cfg.cluster.unwrap().tls.expect("peer TLS");
        assert_eq!((tls.identity.cert_file, tls.identity.key_file), ("node.pem".into(), "node.key".into()));
        assert_eq!(tls.ca_cert_file, PathBuf::from("ca.pem"));
        // Without it the same files are refused: nothing would use them.
        assert!(err(files.clone()).contains("--tls-listen ADDR or --tls-cluster"));
        assert!(err(Options { tls_cluster: Some(false), ..files.clone() }).contains("nothing uses them"));
        // A flag alone means true; the TOML key has the flag's name.
        let parsed = Options::try_parse_from(["shoal", "--tls-cluster", "--tls-cert-file", "n.pem"]).unwrap();
        assert_eq!((parsed.tls_cluster, parsed.tls_cert_file), (Some(true), Some("n.pem".into())));
        let file = Options::from_toml(
            "tls-cluster = true\ntls-cert-file = \"n.pem\"\ntls-key-file = \"n.key\"\n\
                                       tls-ca-cert-file = \"ca.pem\"",
        )
        .unwrap();
        assert!(file.server_config(1).unwrap().cluster.unwrap().tls.is_some());
        // A standalone node has no peer links to protect.
        assert!(err(Options { cluster: Some("off".into()), ..on.clone() }).contains("--cluster off"));
        // TLS does not open a non-loopback cluster address without a secret: gossip would be unauthenticated.
        let exposed = Options { cluster: Some("10.1.2.3:7946".into()), tls_cluster: Some(true), ..files };
        assert!(err(exposed.clone()).contains("--cluster-secret"));
        let keyed = Options { cluster_secret: Some("0123456789abcdef".into()), ..exposed };
        assert!(keyed.server_config(1).unwrap().cluster.unwrap().tls.is_some());
    }

    #[test]
    fn client_limits() {
        let d = Options::default().server_config(1).unwrap();
        assert_eq!((d.client_query_buffer_bytes_max, d.client_output_buffer_bytes_max), (1 << 30, 1 << 30));
        assert_eq!(d.client_idle_timeout_ms, 0);
        let file = "client-query-buffer-limit = \"2mb\"\nclient-output-buffer-limit = \"0\"\ntimeout = 30\n\
                    proto-max-bulk-len = \"1mb\"";
        let c = Options::from_toml(file).unwrap().server_config(1).unwrap();
        assert_eq!((c.client_query_buffer_bytes_max, c.client_output_buffer_bytes_max), (2 << 20, 0));
        assert_eq!(c.client_idle_timeout_ms, 30_000);
        let err = |o: Options| format!("{:#}", o.server_config(1).unwrap_err());
        let small = Options { client_query_buffer_limit: Some("100kb".into()), ..Options::default() };
        assert!(err(small).contains("at least 1mb"));
        let below_bulk = Options { client_query_buffer_limit: Some("64mb".into()), ..Options::default() };
        assert!(err(below_bulk).contains("exceeds --client-query-buffer-limit"));
        assert!(err(Options { timeout: Some(u64::MAX), ..Options::default() }).contains("too large"));
    }

    #[test]
    fn a_cluster_address_beyond_loopback_needs_a_secret_or_the_insecure_opt_out() {
        let err = |o: Options| format!("{:#}", o.server_config(1).unwrap_err());
        let exposed = Options { cluster: Some("10.1.2.3:7946".into()), ..Options::default() };
        let e = err(exposed.clone());
        assert!(e.contains("--cluster-secret") && e.contains("--cluster-insecure"), "{e}");
        assert!(e.contains("10.1.2.3:7946") && e.contains("not loopback"), "{e}");
        // A wildcard bind is open to every interface even when it announces loopback.
        let wildcard = Options {
            cluster: Some("0.0.0.0:7946".into()),
            advertise: Some("127.0.0.1:7946".parse().unwrap()),
            ..Options::default()
        };
        assert!(err(wildcard).contains("--cluster-secret"));
        // A loopback bind announcing another address is reached there too.
        let announced = Options { advertise: Some("192.0.2.7:7946".parse().unwrap()), ..Options::default() };
        assert!(err(announced).contains("192.0.2.7:7946"));
        let secret = Some("0123456789abcdef".into());
        let keyed = Options { cluster_secret: secret, ..exposed.clone() }.server_config(1).unwrap();
        assert!(!keyed.cluster.unwrap().insecure);
        let opted_out = Options { cluster_insecure: Some(true), ..exposed.clone() }.server_config(1).unwrap();
        assert!(opted_out.cluster.unwrap().insecure);
        let file = Options::from_toml("cluster = \"10.1.2.3:7946\"\ncluster-insecure = true").unwrap();
        assert!(file.server_config(1).is_ok(), "the TOML key has the flag's name");
        assert!(Options { cluster_insecure: Some(false), ..exposed }.server_config(1).is_err());
        // The flag alone means true, as the other boolean switches of Redis-like servers do.
        let parsed = Options::try_parse_from(["shoal", "--cluster", "10.1.2.3:7946", "--cluster-insecure"]).unwrap();
        assert_eq!(parsed.cluster_insecure, Some(true));
        assert!(parsed.server_config(1).is_ok());
        // Loopback (v4 and v6) needs neither.
        assert!(Options::default().server_config(1).is_ok());
        assert!(Options { cluster: Some("[::1]:7946".into()), ..Options::default() }.server_config(1).is_ok());
    }

    #[test]
    fn gossip_loss_is_off_unless_asked_for() {
        let cluster = |o: Options| o.server_config(1).unwrap().cluster.unwrap();
        assert_eq!(cluster(Options::default()).send_loss_percent, 0);
        assert_eq!(cluster(Options { gossip_loss_percent: Some(5), ..Options::default() }).send_loss_percent, 5);
    }
}
