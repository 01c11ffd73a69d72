//! Why a server could not start, or stopped on its own: the typed error of `start`, `serve` and `stop`.

use std::net::SocketAddr;

use super::tls;

/// Why a server could not start, or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration cannot run (the message says which setting and why).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A listening socket could not be bound.
    #[error("binding {what} on {addr}: {error}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address it was to bind.
        addr: SocketAddr,
        /// Why it failed.
        error: std::io::Error,
    },
    /// A certificate, key or CA file could not be used.
    #[error("{what}: {error}")]
    Tls {
        /// Which TLS endpoint.
        what: &'static str,
        /// Why.
        error: tls::TlsError,
    },
    /// The cluster secret was refused.
    #[error("cluster secret: {0}")]
    Secret(#[from] crate::core::membership::SecretError),
    /// The gossip settings were refused by the membership layer.
    #[error("gossip settings: {0}")]
    Gossip(#[from] crate::core::membership::ConfigError),
    /// One of the server's own tasks ended while it was serving (a panic, or a channel that closed).
    #[error("the {task} {how}")]
    TaskEnded {
        /// Which task.
        task: &'static str,
        /// How it ended.
        how: String,
    },
    /// Another I/O error of a socket the server holds.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The server task itself could not be joined (it panicked).
    #[error("the server task: {0}")]
    Join(#[from] tokio::task::JoinError),
}
