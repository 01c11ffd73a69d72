//! The tokio driver: sockets, timers and the client server around a `core::Node`.
//!
//! `serve` binds the RESP listeners (plain, TLS, or both), starts the node task and accepts connections until
//! shutdown. Tests start a server in-process with `start` on an ephemeral port; the `shoal` binary calls `serve`
//! from `main`. A TLS connection is counted against `maxclients` from accept, and its handshake must finish within
//! `TlsListenConfig::handshake_timeout_ms`; a failed or late handshake closes the connection and is counted. With
//! `ClusterConfig::tls` (`--tls-cluster`) the peer transport runs its links inside mutual TLS (`peer::PeerTls`),
//! built from its files when the sockets are bound, before anything is served.

pub mod clients;
pub mod conn;
pub mod fdlimit;
pub mod gossip;
pub mod metrics;
pub mod node_task;
pub mod peer;
pub mod session;
pub mod stats;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::core::command::ServerFacts;
use crate::core::membership::{ClusterSecret, GossipConfig, Identity, Membership};
use crate::core::{Node, NodeConfig};
use crate::resp::frame::Limits;
use crate::secret::Secret;
use clients::Clients;
use node_task::ToNode;
use peer::{PeerConfig, PeerStats, PeerTls, PeerTransport};
use stats::ServerStats;
use tokio_rustls::TlsAcceptor;

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
) -> anyhow::Result<()> {
    if has_secret || insecure {
        return Ok(());
    }
    let exposed = [Some(listen), advertise].into_iter().flatten().find(|a| !a.ip().is_loopback());
    if let Some(addr) = exposed {
        anyhow::bail!(
            "refusing to start: the cluster address {addr} is not loopback and no cluster secret is set, so anyone \
             who reaches it could join the cluster and read or change every key. Give every node the same \
             --cluster-secret (or --cluster-secret-file) of 16 bytes or more, or, only on a network you fully \
             trust, pass --cluster-insecure (SHOAL_CLUSTER_INSECURE=true, cluster-insecure = true)"
        );
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

/// State shared by the accept loop and every connection.
pub struct Shared {
    /// The configuration the server runs with.
    pub config: ServerConfig,
    /// The node task's queue.
    pub to_node: mpsc::Sender<ToNode>,
    /// Process counters.
    pub stats: ServerStats,
    /// Connected clients, for CLIENT LIST.
    pub clients: Clients,
    /// The peer transport's counters (for INFO and metrics).
    pub peer_stats: Arc<PeerStats>,
    /// Gossip datagrams dropped because the node task's gossip queue was full.
    pub gossip_dropped: Arc<AtomicU64>,
    started: Instant,
    port: u16,
}

impl Shared {
    /// The facts INFO needs from the runtime, now.
    pub fn facts(&self) -> ServerFacts {
        ServerFacts {
            process_id: std::process::id(),
            tcp_port: self.port,
            uptime_ms: self.started.elapsed().as_millis() as u64,
            connected_clients: self.stats.connected.load(Ordering::Relaxed),
            total_connections_received: self.stats.accepted.load(Ordering::Relaxed),
            rejected_connections: self.stats.rejected.load(Ordering::Relaxed),
            maxclients: self.config.maxclients as u64,
            client_query_buffer_limit_disconnections: self.stats.query_buffer_disconnections.load(Ordering::Relaxed),
            client_output_buffer_limit_disconnections: self.stats.output_buffer_disconnections.load(Ordering::Relaxed),
            client_idle_timeouts: self.stats.idle_timeouts.load(Ordering::Relaxed),
            tls_handshake_failures: self.stats.tls_handshake_failures.load(Ordering::Relaxed),
            total_commands_processed: self.stats.commands.load(Ordering::Relaxed),
            used_memory_rss: stats::rss_bytes(),
            io_threads: tokio::runtime::Handle::current().metrics().num_workers() as u32,
            peer_links: self.peer_stats.snapshot().link_facts(),
            gossip_datagrams_dropped: self.gossip_dropped.load(Ordering::Relaxed),
        }
    }
}

/// A running server started by `start`.
pub struct ServerHandle {
    /// The address of the plain RESP listener, or of the TLS one when there is no plain listener.
    pub addr: SocketAddr,
    /// The address of the TLS RESP listener, if any.
    pub tls_addr: Option<SocketAddr>,
    /// The gossip address, when clustered (the peer listener has the same address over TCP).
    pub cluster_addr: Option<SocketAddr>,
    /// The peer transport's counters (all zero on a standalone node).
    pub peer_stats: Arc<PeerStats>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl ServerHandle {
    /// Stop accepting, close connections, stop the node, and wait for it.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.task.await?
    }
}

/// Bind and start a server on the current tokio runtime; returns once it accepts connections.
pub async fn start(config: ServerConfig) -> anyhow::Result<ServerHandle> {
    node_task::set_clock_offset(config.clock_offset_ms);
    let sockets = Sockets::bind(&config).await?;
    let addr = sockets.client_addr()?;
    let tls_addr = sockets.tls.as_ref().map(|(l, _)| l.local_addr()).transpose()?;
    let cluster_addr = sockets.udp.as_ref().map(|u| u.local_addr()).transpose()?;
    let (shutdown, rx) = watch::channel(false);
    let peer_stats = Arc::new(PeerStats::default());
    let task = tokio::spawn(run(sockets, config, rx, peer_stats.clone()));
    Ok(ServerHandle { addr, tls_addr, cluster_addr, peer_stats, shutdown, task })
}

/// Run a server until `shutdown` becomes true.
pub async fn serve(config: ServerConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    node_task::set_clock_offset(config.clock_offset_ms);
    let sockets = Sockets::bind(&config).await?;
    run(sockets, config, shutdown, Arc::default()).await
}

/// The listening sockets, bound before anything starts so that address and certificate errors come first and
/// clearly.
struct Sockets {
    /// The plain RESP listener.
    tcp: Option<TcpListener>,
    /// The TLS RESP listener and its acceptor.
    tls: Option<(TcpListener, TlsAcceptor)>,
    udp: Option<Arc<UdpSocket>>,
    /// The peer listener: TCP on the gossip socket's address and port.
    peer: Option<TcpListener>,
    /// TLS for peer links (`--tls-cluster`), its files read before anything listens.
    peer_tls: Option<PeerTls>,
}

/// Attempts at finding a port free for both UDP and TCP when the cluster address has port 0.
const CLUSTER_BIND_ATTEMPTS: usize = 16;

impl Sockets {
    async fn bind(config: &ServerConfig) -> anyhow::Result<Sockets> {
        if config.listen.is_none() && config.tls.is_none() {
            anyhow::bail!("no client listener: with --listen off, give --tls-listen");
        }
        let tcp = match config.listen {
            Some(at) => {
                Some(TcpListener::bind(at).await.with_context(|| format!("binding the client listener on {at}"))?)
            }
            None => None,
        };
        let tls = match &config.tls {
            Some(t) => {
                let server = tls::server_config(&t.identity, t.ca_cert_file.as_deref(), t.auth_clients)?;
                let listener = TcpListener::bind(t.listen)
                    .await
                    .with_context(|| format!("binding the TLS client listener on {}", t.listen))?;
                Some((listener, TlsAcceptor::from(server)))
            }
            None => None,
        };
        let (udp, peer, peer_tls) = match &config.cluster {
            Some(c) => {
                check_cluster_exposure(c.listen, c.advertise, c.secret.is_some(), c.insecure)?;
                let peer_tls = c.tls.as_ref().map(PeerTls::new).transpose().context("--tls-cluster")?;
                let (udp, peer) = bind_cluster(c.listen).await?;
                (Some(Arc::new(udp)), Some(peer), peer_tls)
            }
            None => (None, None, None),
        };
        Ok(Sockets { tcp, tls, udp, peer, peer_tls })
    }

    /// The address clients are announced: the plain listener's, or the TLS one's without it.
    fn client_addr(&self) -> std::io::Result<SocketAddr> {
        match (&self.tcp, &self.tls) {
            (Some(l), _) | (None, Some((l, _))) => l.local_addr(),
            (None, None) => Err(std::io::Error::other("no client listener")),
        }
    }
}

/// Bind gossip (UDP) and the peer listener (TCP) on the same address and port. With port 0 the OS picks the
/// UDP port and the TCP one may be taken: then try another port, a bounded number of times.
async fn bind_cluster(addr: SocketAddr) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let attempts = if addr.port() == 0 { CLUSTER_BIND_ATTEMPTS } else { 1 };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let udp = UdpSocket::bind(addr).await.with_context(|| format!("binding gossip (UDP) on {addr}"))?;
        let local = udp.local_addr()?;
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(_) if attempt < attempts => continue,
            Err(e) => return Err(e).with_context(|| format!("binding the peer listener (TCP) on {local}")),
        }
    }
}

/// Build the node: standalone, or with membership joined through the resolved seeds.
async fn build_node(
    config: &ServerConfig,
    client_addr: SocketAddr,
    udp: Option<&UdpSocket>,
) -> anyhow::Result<(Node, Vec<SocketAddr>)> {
    let (Some(cluster), Some(udp)) = (&config.cluster, udp) else {
        return Ok((Node::new(config.node.clone(), config.seed), Vec::new()));
    };
    let gossip_addr = cluster.advertise.unwrap_or(udp.local_addr()?);
    // A client listener on every interface is reached on the advertised IP (config refuses a wildcard gossip
    // address without `--advertise`).
    let client_addr = match client_addr.ip().is_unspecified() {
        true => SocketAddr::new(gossip_addr.ip(), client_addr.port()),
        false => client_addr,
    };
    // A restarted node comes back with a higher incarnation than any it had before: its start time.
    let identity = Identity::new(gossip_addr, client_addr, config.node.name.clone(), node_task::wall_ms());
    let secret = cluster.secret.as_ref().map(|s| ClusterSecret::from_bytes(s.expose())).transpose()?;
    let membership = Membership::new(identity, cluster.gossip.clone(), secret, config.seed ^ 0x9e37_79b9)?;
    let seeds = gossip::resolve(&cluster.seeds).await;
    tracing::info!(node = %config.node.name, gossip = %gossip_addr, seeds = ?seeds, "joining the cluster");
    Ok((Node::clustered(config.node.clone(), config.seed, membership, seeds.clone()), seeds))
}

/// Start the peer transport of a clustered node: it accepts on `listener` and introduces itself by the node's
/// advertised cluster address, over TLS when `tls` is given. `None` for a node without membership.
fn start_peers(
    listener: TcpListener,
    tls: Option<PeerTls>,
    node: &Node,
    config: &ServerConfig,
    to_node: mpsc::Sender<ToNode>,
    stats: Arc<PeerStats>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(Option<PeerTransport>, Option<JoinHandle<()>>)> {
    let Some(membership) = node.membership() else { return Ok((None, None)) };
    let secret = config.cluster.as_ref().and_then(|c| c.secret.as_ref());
    let secret = secret.map(|s| ClusterSecret::from_bytes(s.expose())).transpose()?;
    let advertise = membership.identity().gossip_addr;
    let over = if tls.is_some() { "TLS" } else { "TCP" };
    let mut peer_config = PeerConfig { tls, ..PeerConfig::new(advertise, config.node.name.clone(), secret) };
    // Every value the client protocol accepts replicates: a key and a value at the bulk limit, and the rest.
    peer_config.message_bytes_max = config.node.value_bytes_max.saturating_mul(2).saturating_add(1 << 20);
    // A link whose data the peer has not acknowledged for two request timeouts (at least 1 s) fails, and what
    // it held is dropped, before a forward sent on it times out (2.5 request timeouts) and fails over: a
    // partition that heals never delivers a forward that already ran elsewhere (found by tests/chaos.rs).
    peer_config.user_timeout_ms = config.node.request_timeout_ms.saturating_mul(2).max(1_000);
    let transport = PeerTransport::new(peer_config, to_node, stats);
    let listening = transport.listen(listener, shutdown);
    tracing::info!(peer = %advertise, over, "accepting peer connections");
    Ok((Some(transport), Some(listening)))
}

/// Wait for the task `handle` (forever when there is none), then say how it ended.
async fn ended<T>(handle: &mut Option<JoinHandle<T>>) -> String {
    match handle {
        Some(h) => match h.await {
            Ok(_) => "stopped".to_string(),
            Err(e) if e.is_panic() => format!("panicked: {}", panic_text(e.into_panic())),
            Err(e) => format!("was cancelled: {e}"),
        },
        None => std::future::pending().await,
    }
}

/// The message a panic carried, when it is text.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload.downcast::<&'static str>().map_or_else(|_| "(no message)".into(), |s| s.to_string()),
    }
}

/// Run the server until `external` shutdown flips to true. Every task gets an internal stop signal instead, so
/// that a failure stops them too: when the node task or a listener (client accept loop, peer listener, gossip
/// receiver) panics or stops on its own, everything stops and this returns an error, never leaving a process
/// that accepts connections it cannot serve.
async fn run(
    sockets: Sockets,
    config: ServerConfig,
    mut external: watch::Receiver<bool>,
    peer_stats: Arc<PeerStats>,
) -> anyhow::Result<()> {
    let (stop, shutdown) = watch::channel(false);
    let result = serve_until(sockets, config, &mut external, (&stop, shutdown), peer_stats).await;
    let _ = stop.send(true);
    if let Err(e) = &result {
        tracing::error!(error = %e, "server failed");
    }
    result
}

async fn serve_until(
    sockets: Sockets,
    mut config: ServerConfig,
    external: &mut watch::Receiver<bool>,
    (stop, shutdown): (&watch::Sender<bool>, watch::Receiver<bool>),
    peer_stats: Arc<PeerStats>,
) -> anyhow::Result<()> {
    config.maxclients = fdlimit::fit_maxclients(config.maxclients);
    let addr = sockets.client_addr()?;
    let Sockets { tcp: listener, tls, udp, peer: peer_listener, peer_tls } = sockets;
    if let Some(l) = &listener {
        tracing::info!(node = %config.node.name, addr = %l.local_addr()?, "shoal listening for RESP clients");
    }
    if let Some((l, _)) = &tls {
        tracing::info!(node = %config.node.name, addr = %l.local_addr()?, "shoal listening for RESP clients over TLS");
    }
    let (to_node, rx) = mpsc::channel(4096);
    // Gossip has a queue of its own, which the node task serves first (without a cluster it is closed at once).
    let (gossip_tx, gossip_rx) = mpsc::channel(gossip::GOSSIP_QUEUE_MAX);
    let gossip_dropped = Arc::new(AtomicU64::new(0));
    let (node, seeds) = build_node(&config, addr, udp.as_deref()).await?;
    let mut receiving = None;
    if let (Some(udp), Some(cluster)) = (&udp, &config.cluster) {
        receiving =
            Some(tokio::spawn(gossip::receive(udp.clone(), gossip_tx, gossip_dropped.clone(), shutdown.clone())));
        let period = std::time::Duration::from_millis(cluster.seed_refresh_ms.max(1_000));
        tokio::spawn(gossip::refresh_seeds(cluster.seeds.clone(), seeds, period, to_node.clone(), shutdown.clone()));
    }
    let gossip = udp.map(|socket| {
        let loss_percent = config.cluster.as_ref().map_or(0, |c| c.send_loss_percent);
        node_task::Gossip::new(socket, loss_percent, config.seed)
    });
    let (peers, mut peer_listening) = match peer_listener {
        Some(l) => start_peers(l, peer_tls, &node, &config, to_node.clone(), peer_stats.clone(), shutdown.clone())?,
        None => (None, None),
    };
    let mut node_task = Some(tokio::spawn(node_task::run(node, rx, gossip_rx, shutdown.clone(), gossip, peers)));
    let shared = Arc::new(Shared {
        config,
        to_node,
        stats: ServerStats::default(),
        clients: Clients::default(),
        peer_stats,
        gossip_dropped,
        started: Instant::now(),
        port: listener.as_ref().map_or(Ok(0), |l| l.local_addr().map(|a| a.port()))?,
    });
    if let Some(at) = shared.config.metrics {
        let listener = tokio::net::TcpListener::bind(at).await.with_context(|| format!("binding --metrics on {at}"))?;
        tracing::info!(addr = %at, "serving Prometheus metrics at /metrics");
        tokio::spawn(metrics::serve(listener, shared.clone(), shutdown.clone()));
    }
    let next_conn = AtomicU64::new(1);
    let (tls_listener, acceptor) = tls.unzip();
    loop {
        let (accepted, acceptor) = tokio::select! {
            accepted = accept_on(listener.as_ref()) => (accepted, None),
            accepted = accept_on(tls_listener.as_ref()) => (accepted, acceptor.clone()),
            _ = external.changed() => {
                if *external.borrow() {
                    break;
                }
                continue;
            }
            how = ended(&mut node_task) => anyhow::bail!("the node task {how}"),
            how = ended(&mut receiving) => anyhow::bail!("the gossip receiver {how}"),
            how = ended(&mut peer_listening) => anyhow::bail!("the peer listener {how}"),
        };
        match accepted {
            Ok((socket, peer)) => {
                let id = next_conn.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(accept(socket, peer, id, acceptor, shared.clone(), shutdown.clone()));
            }
            Err(e) => {
                // Running out of file descriptors must not kill the server: log, back off, go on.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    tracing::info!("shutting down");
    let _ = stop.send(true);
    drop(shared);
    if let Some(task) = node_task {
        let _ = task.await;
    }
    Ok(())
}

/// The next connection on `listener`; never, without one.
async fn accept_on(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Serve one accepted connection, over TLS when `acceptor` is given.
async fn accept(
    socket: TcpStream,
    peer: SocketAddr,
    id: u64,
    acceptor: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = socket.set_nodelay(true);
    shared.stats.connected.fetch_add(1, Ordering::Relaxed);
    shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
    match acceptor {
        None => {
            let (reader, writer) = socket.into_split();
            client(reader, writer, peer, id, &shared, shutdown).await;
        }
        Some(acceptor) => {
            let timeout_ms = shared.config.tls.as_ref().map_or(10_000, |t| t.handshake_timeout_ms);
            match tokio::time::timeout(Duration::from_millis(timeout_ms), acceptor.accept(socket)).await {
                Ok(Ok(stream)) => {
                    let (reader, writer) = tokio::io::split(stream);
                    client(reader, writer, peer, id, &shared, shutdown).await;
                }
                Ok(Err(e)) => {
                    shared.stats.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    shared.stats.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, timeout_ms, "TLS handshake timed out");
                }
            }
        }
    }
    shared.stats.connected.fetch_sub(1, Ordering::Relaxed);
}

/// Serve a client over its (plain or TLS) stream halves, or refuse it past `maxclients`.
async fn client<R, W>(
    reader: R,
    mut writer: W,
    peer: SocketAddr,
    id: u64,
    shared: &Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if shared.stats.connected.load(Ordering::Relaxed) as usize > shared.config.maxclients {
        shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
        let _ = writer.write_all(b"-ERR max number of clients reached\r\n").await;
        let _ = writer.shutdown().await;
    } else {
        tracing::debug!(%peer, conn = id, "client connected");
        conn::serve(reader, writer, peer, id, shared.clone(), shutdown).await;
    }
}
