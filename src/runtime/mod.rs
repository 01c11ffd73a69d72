//! The tokio driver: sockets, timers and the client server around a `core::Node`.
//!
//! `serve` binds the RESP listener, starts the node task and accepts connections until shutdown. Tests start
//! a server in-process with `start` on an ephemeral port; the `shoal` binary calls `serve` from `main`.

pub mod clients;
pub mod conn;
pub mod node_task;
pub mod session;
pub mod stats;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::core::command::ServerFacts;
use crate::core::{Node, NodeConfig};
use crate::resp::frame::Limits;
use clients::Clients;
use node_task::ToNode;
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
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let (shutdown, rx) = watch::channel(false);
    let task = tokio::spawn(run(listener, config, rx));
    Ok(ServerHandle { addr, shutdown, task })
}

/// Run a server until `shutdown` becomes true.
pub async fn serve(config: ServerConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen).await?;
    run(listener, config, shutdown).await
}

async fn run(listener: TcpListener, config: ServerConfig, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(node = %config.node.name, %addr, "shoal listening for RESP clients");
    let (to_node, rx) = mpsc::channel(4096);
    let node = Node::new(config.node.clone(), config.seed);
    let node_task = tokio::spawn(node_task::run(node, rx, shutdown.clone()));
    let shared = Arc::new(Shared {
        config,
        to_node,
        stats: ServerStats::default(),
        clients: Clients::default(),
        started: Instant::now(),
        port: addr.port(),
    });
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
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    tracing::info!("shutting down");
    drop(shared);
    let _ = node_task.await;
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
