//! The tokio driver: sockets, timers and the client server around a `core::Node`.
//!
//! `serve` binds the RESP listeners (plain, TLS, or both), starts the node task and accepts connections until
//! shutdown. Tests start a server in-process with `start` on an ephemeral port; the `shoal` binary calls `serve`
//! from `main`. A TLS connection is counted against `maxclients` from accept, and its handshake must finish within
//! `TlsListenConfig::handshake_timeout_ms`; a failed or late handshake closes the connection and is counted. With
//! `ClusterConfig::tls` (`--tls-cluster`) the peer transport runs its links inside mutual TLS (`peer::PeerTls`),
//! built from its files when the sockets are bound, before anything is served.

mod accept;
pub mod clients;
pub mod cluster;
mod config;
pub mod conn;
mod error;
pub mod fdlimit;
pub mod gossip;
pub mod metrics;
pub mod node_task;
pub mod peer;
pub mod session;
pub mod stats;
pub mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::core::command::ServerFacts;
use crate::core::membership::{ClusterSecret, Identity, Membership};
use crate::core::Node;
use clients::Clients;
pub use config::{check_cluster_exposure, ClusterConfig, DebugCommand, ServerConfig, TlsListenConfig};
pub use error::ServeError;
use node_task::ToNode;
use peer::{PeerConfig, PeerStats, PeerTls, PeerTransport};
use stats::ServerStats;
use tokio_rustls::TlsAcceptor;

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
    /// The slot map the node task publishes for cluster clients.
    pub topology: Arc<cluster::TopologyCell>,
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
    task: JoinHandle<Result<(), ServeError>>,
}

impl ServerHandle {
    /// Stop accepting, close connections, stop the node, and wait for it.
    pub async fn stop(self) -> Result<(), ServeError> {
        let _ = self.shutdown.send(true);
        self.task.await?
    }
}

/// Bind and start a server on the current tokio runtime; returns once it accepts connections.
pub async fn start(config: ServerConfig) -> Result<ServerHandle, ServeError> {
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
pub async fn serve(config: ServerConfig, shutdown: watch::Receiver<bool>) -> Result<(), ServeError> {
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
    async fn bind(config: &ServerConfig) -> Result<Sockets, ServeError> {
        if config.listen.is_none() && config.tls.is_none() {
            return Err(crate::config::ConfigError::Invalid(
                "no client listener: with --listen off, give --tls-listen".into(),
            )
            .into());
        }
        let tcp = match config.listen {
            Some(at) => Some(TcpListener::bind(at).await.map_err(|error| ServeError::Bind {
                what: "the client listener",
                addr: at,
                error,
            })?),
            None => None,
        };
        let tls = match &config.tls {
            Some(t) => {
                let server = tls::server_config(&t.identity, t.ca_cert_file.as_deref(), t.auth_clients)
                    .map_err(|error| ServeError::Tls { what: "--tls-listen", error })?;
                let listener = TcpListener::bind(t.listen).await.map_err(|error| ServeError::Bind {
                    what: "the TLS client listener",
                    addr: t.listen,
                    error,
                })?;
                Some((listener, TlsAcceptor::from(server)))
            }
            None => None,
        };
        let (udp, peer, peer_tls) = match &config.cluster {
            Some(c) => {
                check_cluster_exposure(c.listen, c.advertise, c.secret.is_some(), c.insecure)?;
                let peer_tls = c
                    .tls
                    .as_ref()
                    .map(PeerTls::new)
                    .transpose()
                    .map_err(|error| ServeError::Tls { what: "--tls-cluster", error })?;
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
async fn bind_cluster(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), ServeError> {
    let attempts = if addr.port() == 0 { CLUSTER_BIND_ATTEMPTS } else { 1 };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let udp =
            UdpSocket::bind(addr).await.map_err(|error| ServeError::Bind { what: "gossip (UDP)", addr, error })?;
        let local = udp.local_addr()?;
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(_) if attempt < attempts => continue,
            Err(error) => return Err(ServeError::Bind { what: "the peer listener (TCP)", addr: local, error }),
        }
    }
}

/// Build the node: standalone, or with membership joined through the resolved seeds.
async fn build_node(
    config: &ServerConfig,
    client_addr: SocketAddr,
    udp: Option<&UdpSocket>,
) -> Result<(Node, Vec<SocketAddr>), ServeError> {
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
) -> Result<(Option<PeerTransport>, Option<JoinHandle<()>>), ServeError> {
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
) -> Result<(), ServeError> {
    let (stop, shutdown) = watch::channel(false);
    let result = serve_until(sockets, config, &mut external, (&stop, shutdown), peer_stats).await;
    let _ = stop.send(true);
    if let Err(e) = &result {
        tracing::error!(error = %e, "server failed");
    }
    result
}

/// The server's own tasks, watched while it serves: when one ends on its own, the server stops with an error.
struct Tasks {
    node_task: Option<JoinHandle<Node>>,
    receiving: Option<JoinHandle<()>>,
    peer_listening: Option<JoinHandle<()>>,
}

async fn serve_until(
    sockets: Sockets,
    mut config: ServerConfig,
    external: &mut watch::Receiver<bool>,
    (stop, shutdown): (&watch::Sender<bool>, watch::Receiver<bool>),
    peer_stats: Arc<PeerStats>,
) -> Result<(), ServeError> {
    config.maxclients = fdlimit::fit_maxclients(config.maxclients);
    let addr = sockets.client_addr()?;
    let Sockets { tcp: listener, tls, udp, peer: peer_listener, peer_tls } = sockets;
    if let Some(l) = &listener {
        tracing::info!(node = %config.node.name, addr = %l.local_addr()?, "shoal listening for RESP clients");
    }
    if let Some((l, _)) = &tls {
        tracing::info!(node = %config.node.name, addr = %l.local_addr()?, "shoal listening for RESP clients over TLS");
    }
    let port = listener.as_ref().map_or(Ok(0), |l| l.local_addr().map(|a| a.port()))?;
    let (mut tasks, shared) =
        start_node(config, addr, port, udp, peer_listener, peer_tls, peer_stats, &shutdown).await?;
    if let Some(at) = shared.config.metrics {
        let listener = tokio::net::TcpListener::bind(at).await.map_err(|error| ServeError::Bind {
            what: "--metrics",
            addr: at,
            error,
        })?;
        tracing::info!(addr = %at, "serving Prometheus metrics at /metrics");
        tokio::spawn(metrics::serve(listener, shared.clone(), shutdown.clone()));
    }
    accept::accept_until(listener, tls, external, &mut tasks, &shared, &shutdown).await?;
    tracing::info!("shutting down");
    let _ = stop.send(true);
    drop(shared);
    if let Some(task) = tasks.node_task {
        let _ = task.await;
    }
    Ok(())
}

/// Build the node and start what runs beside the accept loop: the node task, and for a clustered node the
/// gossip receiver, the seed refresher and the peer transport.
#[allow(clippy::too_many_arguments)]
async fn start_node(
    config: ServerConfig,
    addr: SocketAddr,
    port: u16,
    udp: Option<Arc<UdpSocket>>,
    peer_listener: Option<TcpListener>,
    peer_tls: Option<PeerTls>,
    peer_stats: Arc<PeerStats>,
    shutdown: &watch::Receiver<bool>,
) -> Result<(Tasks, Arc<Shared>), ServeError> {
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
    let (peers, peer_listening) = match peer_listener {
        Some(l) => start_peers(l, peer_tls, &node, &config, to_node.clone(), peer_stats.clone(), shutdown.clone())?,
        None => (None, None),
    };
    let topology = Arc::new(cluster::TopologyCell::default());
    let node_task =
        Some(tokio::spawn(node_task::run(node, rx, gossip_rx, shutdown.clone(), gossip, peers, topology.clone())));
    let shared = Arc::new(Shared {
        config,
        to_node,
        stats: ServerStats::default(),
        clients: Clients::default(),
        peer_stats,
        gossip_dropped,
        topology,
        started: Instant::now(),
        port,
    });
    Ok((Tasks { node_task, receiving, peer_listening }, shared))
}
