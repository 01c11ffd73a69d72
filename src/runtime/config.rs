//! What a server is started with: `ServerConfig` and its parts (client TLS, cluster), their defaults, and the
//! start-time check that a cluster port beyond loopback has a secret. `config::Options` builds it from flags,
//! environment and file; tests build it directly.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::tls;
use crate::core::membership::GossipConfig;
use crate::core::NodeConfig;
use crate::resp::frame::Limits;
use crate::secret::Secret;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address of the plain-TCP RESP listener; `None` (`--listen off`) serves clients over TLS only.
    pub listen: Option<SocketAddr>,
    /// The TLS RESP listener, if any.
    pub tls: Option<TlsListenConfig>,
    /// Password clients must AUTH with, if any.
    pub requirepass: Option<Secret>,
    /// Most clients connected at once; more are refused with an error.
    pub maxclients: usize,
    /// Most requests one connection may have in flight before it stops reading.
    pub pending_requests_max: usize,
    /// RESP framing limits.
    pub limits: Limits,
    /// Most unparsed request bytes one client may have buffered; beyond, it is disconnected (Redis's
    /// `client-query-buffer-limit`).
    pub client_query_buffer_bytes_max: usize,
    /// Most reply bytes held for one client (reorder window and write buffer); beyond, it is disconnected.
    /// 0: no limit (Redis's `client-output-buffer-limit normal` hard limit).
    pub client_output_buffer_bytes_max: usize,
    /// A client that sends nothing and receives nothing for this long is closed; 0: never (Redis's `timeout`).
    pub client_idle_timeout_ms: u64,
    /// The node's data-path settings.
    pub node: NodeConfig,
    /// Seed for the node's RNG (drawn from the OS by the binary).
    pub seed: u64,
    /// Cluster membership settings; `None` runs a standalone node.
    pub cluster: Option<ClusterConfig>,
    /// Address of the Prometheus scrape endpoint (`GET /metrics`), if any.
    pub metrics: Option<SocketAddr>,
    /// Who may use the DEBUG command (Redis's `enable-debug-command`).
    pub enable_debug_command: DebugCommand,
    /// Test-only skew added to every wall-clock reading, in ms (`--debug-clock-offset-ms`); process-wide, set
    /// when the server starts if not 0.
    pub clock_offset_ms: i64,
}

/// Who may use the DEBUG command, as Redis's `enable-debug-command`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DebugCommand {
    /// Nobody (the default).
    #[default]
    No,
    /// Every client.
    Yes,
    /// Clients connected over loopback.
    Local,
}

/// The TLS client listener (Redis's `tls-port` and the `tls-*` files).
#[derive(Debug, Clone)]
pub struct TlsListenConfig {
    /// Address of the TLS RESP listener.
    pub listen: SocketAddr,
    /// The server's certificate chain and key.
    pub identity: tls::CertFiles,
    /// The CA that signs client certificates; required unless `auth_clients` is `No`.
    pub ca_cert_file: Option<PathBuf>,
    /// Whether clients must present a certificate.
    pub auth_clients: tls::ClientAuth,
    /// Longest a TLS handshake may take before the connection is closed.
    pub handshake_timeout_ms: u64,
}

impl TlsListenConfig {
    /// TLS on `listen` with `identity`, Redis's default client authentication (`yes`) and a 10 s handshake.
    pub fn new(listen: SocketAddr, identity: tls::CertFiles, ca_cert_file: Option<PathBuf>) -> TlsListenConfig {
        TlsListenConfig {
            listen,
            identity,
            ca_cert_file,
            auth_clients: tls::ClientAuth::default(),
            handshake_timeout_ms: 10_000,
        }
    }
}

/// How a node finds and watches its peers.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// UDP address for gossip (the same port over TCP will carry peer data).
    pub listen: SocketAddr,
    /// The address peers and clients should use to reach this node's gossip port, when `listen` is a wildcard.
    pub advertise: Option<SocketAddr>,
    /// Seeds as `host:port`; names are re-resolved every `seed_refresh_ms`.
    pub seeds: Vec<String>,
    /// How often seeds are re-resolved.
    pub seed_refresh_ms: u64,
    /// SWIM timing.
    pub gossip: GossipConfig,
    /// Shared secret that authenticates gossip packets and peer links.
    pub secret: Option<Secret>,
    /// TLS on every peer link (`--tls-cluster`): the node's certificate and the cluster CA; gossip stays UDP.
    pub tls: Option<tls::ClusterTlsFiles>,
    /// The operator's explicit opt-out (`--cluster-insecure`): a cluster address beyond loopback without a
    /// secret is allowed (else refused at start, see `check_cluster_exposure`).
    pub insecure: bool,
    /// Test-only fault injection: the percentage (0-100) of outgoing gossip datagrams dropped on purpose, drawn
    /// from an RNG seeded by `ServerConfig::seed`. Benchmarks use it to measure false downs under loss on hosts
    /// without netem. Always 0 in production.
    pub send_loss_percent: u8,
}

impl ClusterConfig {
    /// Gossip on `listen` with LAN timing, no seeds and no secret.
    pub fn new(listen: SocketAddr) -> ClusterConfig {
        ClusterConfig {
            listen,
            advertise: None,
            seeds: Vec::new(),
            seed_refresh_ms: 30_000,
            gossip: GossipConfig::lan(),
            secret: None,
            tls: None,
            insecure: false,
            send_loss_percent: 0,
        }
    }
}

/// Refuse a cluster address reachable beyond this host without a cluster secret: anyone who reaches the
/// gossip or peer port of such a node could join, read and change every key. The bound address (`listen`) and
/// the announced one (`advertise`) must both be loopback unless there is a secret or `insecure` is set. TLS peer
/// links (`--tls-cluster`) do not lift the rule: they authenticate peers by certificate, but gossip would be open.
pub fn check_cluster_exposure(
    listen: SocketAddr,
    advertise: Option<SocketAddr>,
    has_secret: bool,
    insecure: bool,
) -> Result<(), crate::config::ConfigError> {
    if has_secret || insecure {
        return Ok(());
    }
    let exposed = [Some(listen), advertise].into_iter().flatten().find(|a| !a.ip().is_loopback());
    if let Some(addr) = exposed {
        return Err(crate::config::ConfigError::Invalid(format!(
            "refusing to start: the cluster address {addr} is not loopback and no cluster secret is set, so anyone \
             who reaches it could join the cluster and read or change every key. Give every node the same \
             --cluster-secret (or --cluster-secret-file) of 16 bytes or more, or, only on a network you fully \
             trust, pass --cluster-insecure (SHOAL_CLUSTER_INSECURE=true, cluster-insecure = true)"
        )));
    }
    Ok(())
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: Some("127.0.0.1:6380".parse().expect("valid default address")),
            tls: None,
            requirepass: None,
            maxclients: 10_000,
            pending_requests_max: 65_536,
            limits: Limits::default(),
            client_query_buffer_bytes_max: 1 << 30,
            client_output_buffer_bytes_max: 1 << 30,
            client_idle_timeout_ms: 0,
            node: NodeConfig::default(),
            seed: 0,
            cluster: None,
            metrics: None,
            enable_debug_command: DebugCommand::No,
            clock_offset_ms: 0,
        }
    }
}
