//! From `Options` to the server's configuration: defaults for what is not given, and a check of every value
//! (range, units, combinations), with an error that names the setting.

use std::net::SocketAddr;

use crate::core::locks::LockMode;
use crate::core::membership::identity::NAME_BYTES_MAX;
use crate::core::membership::{ClusterSecret, GossipConfig, Profile};
use crate::core::replication::{Consistency, Levels};
use crate::core::ring::VNODES_MAX;
use crate::core::NodeConfig;
use crate::resp::frame::Limits;
use crate::runtime::tls::{CertFiles, ClientAuth, ClusterTlsFiles};
use crate::runtime::{ClusterConfig, ServerConfig, TlsListenConfig};
use crate::secret::Secret;

use super::parse::{
    parse_bytes, parse_debug_command, parse_policy, positive, seconds_to_ms, secret_from, DELAY_MS_MAX,
};
use super::{ConfigError, Options};

/// Smallest `--client-query-buffer-limit` (Redis's minimum).
const CLIENT_QUERY_BUFFER_MIN_BYTES: u64 = 1 << 20;

impl Options {
    /// The server configuration these options describe, with defaults for what is not given.
    pub fn server_config(&self, seed: u64) -> Result<ServerConfig, ConfigError> {
        let d = ServerConfig::default();
        let listen = match self.listen.as_deref() {
            None => d.listen,
            Some("off" | "none" | "") => None,
            Some(addr) => Some(addr.parse().map_err(|e| invalid!("--listen {addr:?}: {e} (expected ip:port or off)"))?),
        };
        let tls = self.tls_config()?;
        if listen.is_none() && tls.is_none() {
            bail!("--listen off leaves no client listener: give --tls-listen, or a --listen address");
        }
        let client_port = listen.or(tls.as_ref().map(|t| t.listen)).map_or(0, |a| a.port());
        let maxmemory = self.maxmemory.as_deref().map(parse_bytes).transpose().map_err(|e| e.context("--maxmemory"))?;
        let bulk = self
            .proto_max_bulk_len
            .as_deref()
            .map(parse_bytes)
            .transpose()
            .map_err(|e| e.context("--proto-max-bulk-len"))?;
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
            maxmemory_bytes: maxmemory.filter(|&m| m > 0).map(|m| m as usize),
            eviction: eviction.unwrap_or_default(),
            value_bytes_max: limits.bulk_len_max,
            ..NodeConfig::default()
        };
        let (query_max, output_max) = self.buffer_limits(limits.bulk_len_max, &d)?;
        let (enable_debug_command, clock_offset_ms) = self.debug_options()?;
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

    /// The client query and output buffer limits in bytes; the query limit must hold the largest bulk.
    fn buffer_limits(&self, bulk_len_max: usize, d: &ServerConfig) -> Result<(u64, u64), ConfigError> {
        let query_max = match self.client_query_buffer_limit.as_deref() {
            None => d.client_query_buffer_bytes_max as u64,
            Some(text) => parse_bytes(text).map_err(|e| e.context("--client-query-buffer-limit"))?,
        };
        if query_max < CLIENT_QUERY_BUFFER_MIN_BYTES {
            bail!("--client-query-buffer-limit {query_max}: expected at least 1mb (as Redis)");
        }
        if bulk_len_max as u64 > query_max {
            bail!(
                "--proto-max-bulk-len {bulk_len_max} exceeds --client-query-buffer-limit {query_max}: a client sending \
                 the largest bulk would be disconnected; lower the bulk length or raise the query buffer limit"
            );
        }
        let output_max = match self.client_output_buffer_limit.as_deref() {
            None => d.client_output_buffer_bytes_max as u64,
            Some(text) => parse_bytes(text).map_err(|e| e.context("--client-output-buffer-limit"))?,
        };
        Ok((query_max, output_max))
    }

    /// `--enable-debug-command` and the test-only clock offset, which needs it.
    fn debug_options(&self) -> Result<(crate::runtime::DebugCommand, i64), ConfigError> {
        let enable_debug_command = parse_debug_command(self.enable_debug_command.as_deref())?;
        let clock_offset_ms = self.debug_clock_offset_ms.unwrap_or(0);
        if clock_offset_ms != 0 && enable_debug_command == crate::runtime::DebugCommand::No {
            bail!("--debug-clock-offset-ms is test-only: it needs --enable-debug-command yes or local");
        }
        Ok((enable_debug_command, clock_offset_ms))
    }

    /// The client password, from `--requirepass` or `--requirepass-file`; an empty one means none, as in Redis.
    fn requirepass(&self) -> Result<Option<Secret>, ConfigError> {
        Ok(secret_from("requirepass", &self.requirepass, &self.requirepass_file)?.filter(|p| !p.is_empty()))
    }

    /// The TLS client listener, or `None` without `--tls-listen`.
    fn tls_config(&self) -> Result<Option<TlsListenConfig>, ConfigError> {
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
            Some(text) => text.parse::<ClientAuth>().map_err(|e| invalid!("--tls-auth-clients {e}"))?,
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
    fn cluster_tls(&self) -> Result<Option<ClusterTlsFiles>, ConfigError> {
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
    fn replication(&self, node: NodeConfig) -> Result<NodeConfig, ConfigError> {
        let replicas = self.replicas.unwrap_or(node.replicas);
        if replicas == 0 {
            bail!("--replicas 0: expected at least 1");
        }
        let level = |flag: &str, given: &Option<String>, default: Consistency| match given {
            None => Ok(default),
            Some(text) => text.parse::<Consistency>().map_err(|e| invalid!("--{flag}: {e}")),
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
    fn cluster_config(&self) -> Result<Option<ClusterConfig>, ConfigError> {
        let listen: SocketAddr = match self.cluster.as_deref() {
            Some("off" | "none" | "") if self.tls_cluster() => {
                bail!("--tls-cluster with --cluster off: a standalone node has no peer links to protect")
            }
            Some("off" | "none" | "") => return Ok(None),
            Some(addr) => addr.parse().map_err(|e| invalid!("--cluster {addr:?}: {e} (expected ip:port or off)"))?,
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
        gossip.validate().map_err(|e| invalid!("gossip settings: {e}"))?;
        let secret = secret_from("cluster-secret", &self.cluster_secret, &self.cluster_secret_file)?;
        if let Some(s) = &secret {
            ClusterSecret::from_bytes(s.expose()).map_err(|e| invalid!("cluster secret: {e}"))?;
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
pub(super) fn default_name(host: &str, port: u16) -> String {
    let suffix = format!("-{port}");
    let host = host.trim();
    let host = if host.is_empty() { "shoal" } else { host };
    let mut cut = NAME_BYTES_MAX.saturating_sub(suffix.len()).min(host.len());
    while !host.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &host[..cut])
}
