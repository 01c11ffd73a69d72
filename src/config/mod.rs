//! Command-line flags, the TOML config file and `SHOAL_*` environment variables, all with the same names.
//!
//! Precedence: a flag on the command line, then its environment variable, then the config file, then the
//! default. Unknown keys in the file and malformed values are errors that name the offending setting.
//!
//! `Options` (this file) is what can be given and how the three sources merge; `build` turns it into the
//! server's configuration, validating every value; `parse` holds the value parsers (sizes, policies, secrets).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

use crate::secret::Secret;

pub use parse::{parse_bytes, parse_policy};

/// A configuration the node cannot start with; the message names the offending flag, setting or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value out of range, malformed, or in conflict with another setting.
    #[error("{0}")]
    Invalid(String),
    /// A file named by a setting (the config file, a secret file) could not be read.
    #[error("reading {what} {}: {error}", path.display())]
    Read {
        /// Which setting named the file.
        what: String,
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        error: std::io::Error,
    },
}

impl ConfigError {
    /// The same error with `flag` (the setting it concerns) in front of its message.
    fn context(self, flag: &str) -> ConfigError {
        ConfigError::Invalid(format!("{flag}: {self}"))
    }
}

/// Return early with `ConfigError::Invalid` of a formatted message.
macro_rules! bail {
    ($($arg:tt)*) => { return Err(ConfigError::Invalid(format!($($arg)*))) };
}

/// `ConfigError::Invalid` of a formatted message.
macro_rules! invalid {
    ($($arg:tt)*) => { ConfigError::Invalid(format!($($arg)*)) };
}

mod build;
mod parse;
#[cfg(test)]
mod tests;

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
    pub fn from_toml(text: &str) -> Result<Options, ConfigError> {
        toml::from_str(text).map_err(|e| invalid!("invalid config file: {e}"))
    }

    /// Flags and environment, merged with the config file they name (if any).
    pub fn load() -> Result<Options, ConfigError> {
        let cli = Options::parse();
        let Some(path) = cli.config.clone() else { return Ok(cli) };
        let text = std::fs::read_to_string(&path).map_err(|error| ConfigError::Read {
            what: "config file".into(),
            path: path.clone(),
            error,
        })?;
        Ok(cli.or(Options::from_toml(&text).map_err(|e| e.context(&path.display().to_string()))?))
    }
}
