//! Process-wide counters the connections update and INFO reads.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by all connections (relaxed atomics: they are statistics, not synchronization).
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Clients connected now.
    pub connected: AtomicU64,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections refused because of `maxclients`.
    pub rejected: AtomicU64,
    /// Requests parsed since start.
    pub commands: AtomicU64,
    /// Clients disconnected for more unparsed input than `client_query_buffer_bytes_max`.
    pub query_buffer_disconnections: AtomicU64,
    /// Clients disconnected for more held replies than `client_output_buffer_bytes_max`.
    pub output_buffer_disconnections: AtomicU64,
    /// Clients closed after `client_idle_timeout_ms` without traffic.
    pub idle_timeouts: AtomicU64,
    /// TLS connections closed because their handshake failed or took too long.
    pub tls_handshake_failures: AtomicU64,
}

impl ServerStats {
    /// Add `n` processed commands.
    pub fn count_commands(&self, n: u64) {
        if n > 0 {
            self.commands.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Resident set size of this process in bytes (Linux `/proc/self/statm`; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/statm") else { return 0 };
    let pages: u64 = text.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}
