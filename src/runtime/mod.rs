//! The tokio driver: sockets, timers and the client server around a `core::Node`.
//!
//! `serve` binds the RESP listener, starts the node task and accepts connections until shutdown. Tests start
//! a server in-process with `start` on an ephemeral port; the `shoal` binary calls `serve` from `main`.

pub mod clients;
pub mod conn;
pub mod gossip;
pub mod metrics;
pub mod node_task;
pub mod peer;
pub mod session;
pub mod stats;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::core::command::ServerFacts;
use crate::core::membership::{ClusterSecret, GossipConfig, Identity, Membership};
use crate::core::{Node, NodeConfig};
use crate::resp::frame::Limits;
use clients::Clients;
use node_task::ToNode;
use peer::{PeerConfig, PeerStats, PeerTransport};
use stats::ServerStats;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address of the RESP listener.
    pub listen: SocketAddr,
    /// Password clients must AUTH with, if any.
    pub requirepass: Option<String>,
    /// Most clients connected at once; more are refused with an error.
    pub maxclients: usize,
    /// Most requests one connection may have in flight before it stops reading.
    pub pending_requests_max: usize,
    /// RESP framing limits.
    pub limits: Limits,
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
    /// Shared secret that authenticates gossip packets.
    pub secret: Option<Vec<u8>>,
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
            send_loss_percent: 0,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:6380".parse().expect("valid default address"),
            requirepass: None,
            maxclients: 10_000,
            pending_requests_max: 65_536,
            limits: Limits::default(),
            node: NodeConfig::default(),
            seed: 0,
            cluster: None,
            metrics: None,
            enable_debug_command: DebugCommand::No,
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
            total_commands_processed: self.stats.commands.load(Ordering::Relaxed),
            used_memory_rss: stats::rss_bytes(),
            io_threads: tokio::runtime::Handle::current().metrics().num_workers() as u32,
        }
    }
}

/// A running server started by `start`.
pub struct ServerHandle {
    /// The address the RESP listener is bound to.
    pub addr: SocketAddr,
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
    let sockets = Sockets::bind(&config).await?;
    let addr = sockets.tcp.local_addr()?;
    let cluster_addr = sockets.udp.as_ref().map(|u| u.local_addr()).transpose()?;
    let (shutdown, rx) = watch::channel(false);
    let peer_stats = Arc::new(PeerStats::default());
    let task = tokio::spawn(run(sockets, config, rx, peer_stats.clone()));
    Ok(ServerHandle { addr, cluster_addr, peer_stats, shutdown, task })
}

/// Run a server until `shutdown` becomes true.
pub async fn serve(config: ServerConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let sockets = Sockets::bind(&config).await?;
    run(sockets, config, shutdown, Arc::default()).await
}

/// The listening sockets, bound before anything starts so that address errors come first and clearly.
struct Sockets {
    tcp: TcpListener,
    udp: Option<Arc<UdpSocket>>,
    /// The peer listener: TCP on the gossip socket's address and port.
    peer: Option<TcpListener>,
}

/// Attempts at finding a port free for both UDP and TCP when the cluster address has port 0.
const CLUSTER_BIND_ATTEMPTS: usize = 16;

impl Sockets {
    async fn bind(config: &ServerConfig) -> anyhow::Result<Sockets> {
        let tcp = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding the client listener on {}", config.listen))?;
        let (udp, peer) = match &config.cluster {
            Some(c) => {
                let (udp, peer) = bind_cluster(c.listen).await?;
                (Some(Arc::new(udp)), Some(peer))
            }
            None => (None, None),
        };
        Ok(Sockets { tcp, udp, peer })
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
    let secret = cluster.secret.as_deref().map(ClusterSecret::from_bytes).transpose()?;
    let membership = Membership::new(identity, cluster.gossip.clone(), secret, config.seed ^ 0x9e37_79b9)?;
    let seeds = gossip::resolve(&cluster.seeds).await;
    tracing::info!(node = %config.node.name, gossip = %gossip_addr, seeds = ?seeds, "joining the cluster");
    Ok((Node::clustered(config.node.clone(), config.seed, membership, seeds.clone()), seeds))
}

/// Start the peer transport of a clustered node: it accepts on `listener` and introduces itself by the node's
/// advertised cluster address. `None` for a node without membership.
fn start_peers(
    listener: TcpListener,
    node: &Node,
    config: &ServerConfig,
    to_node: mpsc::Sender<ToNode>,
    stats: Arc<PeerStats>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(Option<PeerTransport>, Option<JoinHandle<()>>)> {
    let Some(membership) = node.membership() else { return Ok((None, None)) };
    let secret = config.cluster.as_ref().and_then(|c| c.secret.as_deref());
    let secret = secret.map(ClusterSecret::from_bytes).transpose()?;
    let advertise = membership.identity().gossip_addr;
    let transport = PeerTransport::new(PeerConfig::new(advertise, config.node.name.clone(), secret), to_node, stats);
    let listening = transport.listen(listener, shutdown);
    tracing::info!(peer = %advertise, "accepting peer connections (TCP)");
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
    config: ServerConfig,
    external: &mut watch::Receiver<bool>,
    (stop, shutdown): (&watch::Sender<bool>, watch::Receiver<bool>),
    peer_stats: Arc<PeerStats>,
) -> anyhow::Result<()> {
    let Sockets { tcp: listener, udp, peer: peer_listener } = sockets;
    let addr = listener.local_addr()?;
    tracing::info!(node = %config.node.name, %addr, "shoal listening for RESP clients");
    let (to_node, rx) = mpsc::channel(4096);
    let (node, seeds) = build_node(&config, addr, udp.as_deref()).await?;
    let mut receiving = None;
    if let (Some(udp), Some(cluster)) = (&udp, &config.cluster) {
        let dropped = Arc::new(AtomicU64::new(0));
        receiving = Some(tokio::spawn(gossip::receive(udp.clone(), to_node.clone(), dropped, shutdown.clone())));
        let period = std::time::Duration::from_millis(cluster.seed_refresh_ms.max(1_000));
        tokio::spawn(gossip::refresh_seeds(cluster.seeds.clone(), seeds, period, to_node.clone(), shutdown.clone()));
    }
    let gossip = udp.map(|socket| {
        let loss_percent = config.cluster.as_ref().map_or(0, |c| c.send_loss_percent);
        node_task::Gossip::new(socket, loss_percent, config.seed)
    });
    let (peers, mut peer_listening) = match peer_listener {
        Some(l) => start_peers(l, &node, &config, to_node.clone(), peer_stats.clone(), shutdown.clone())?,
        None => (None, None),
    };
    let mut node_task = Some(tokio::spawn(node_task::run(node, rx, shutdown.clone(), gossip, peers)));
    let shared = Arc::new(Shared {
        config,
        to_node,
        stats: ServerStats::default(),
        clients: Clients::default(),
        peer_stats,
        started: Instant::now(),
        port: addr.port(),
    });
    if let Some(at) = shared.config.metrics {
        let listener = tokio::net::TcpListener::bind(at).await.with_context(|| format!("binding --metrics on {at}"))?;
        tracing::info!(addr = %at, "serving Prometheus metrics at /metrics");
        tokio::spawn(metrics::serve(listener, shared.clone(), shutdown.clone()));
    }
    let next_conn = AtomicU64::new(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Running out of file descriptors must not kill the server: log, back off, go on.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let id = next_conn.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(accept(socket, peer, id, shared.clone(), shutdown.clone()));
            }
            _ = external.changed() => {
                if *external.borrow() {
                    break;
                }
            }
            how = ended(&mut node_task) => anyhow::bail!("the node task {how}"),
            how = ended(&mut receiving) => anyhow::bail!("the gossip receiver {how}"),
            how = ended(&mut peer_listening) => anyhow::bail!("the peer listener {how}"),
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

async fn accept(
    mut socket: tokio::net::TcpStream,
    peer: SocketAddr,
    id: u64,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let connected = shared.stats.connected.fetch_add(1, Ordering::Relaxed) + 1;
    shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
    if connected as usize > shared.config.maxclients {
        shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
        use tokio::io::AsyncWriteExt;
        let _ = socket.write_all(b"-ERR max number of clients reached\r\n").await;
    } else {
        tracing::debug!(%peer, conn = id, "client connected");
        conn::serve(socket, id, shared.clone(), shutdown).await;
    }
    shared.stats.connected.fetch_sub(1, Ordering::Relaxed);
}
