//! The text of INFO: Redis's `# Section` / `field:value` layout, with the sections Shoal has.
//!
//! Facts the core cannot know (process id, uptime, connections) come in `ServerFacts` from the runtime.

use std::fmt::Write;

use super::command::ServerFacts;
use super::membership::Membership;
use super::node::Node;
use super::store::EvictionPolicy;
use super::Millis;

/// The sections INFO knows, in the order Redis prints them.
pub const SECTIONS: [&str; 8] =
    ["server", "clients", "memory", "persistence", "stats", "replication", "cluster", "keyspace"];

/// Render INFO for the requested sections (empty, `default`, `all` or `everything` mean every section).
pub fn render(node: &Node, now: Millis, requested: &[String], server: &ServerFacts) -> String {
    let all = requested.is_empty()
        || requested.iter().any(|s| ["default", "all", "everything"].contains(&s.to_ascii_lowercase().as_str()));
    let mut out = String::with_capacity(1024);
    for name in SECTIONS {
        if all || requested.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            section(&mut out, name, node, now, server);
        }
    }
    out
}

fn section(out: &mut String, name: &str, node: &Node, now: Millis, f: &ServerFacts) {
    let stats = node.stats();
    let store = node.store().stats();
    let cfg = node.config();
    let _ = match name {
        "server" => write!(
            out,
            "# Server\r\nredis_version:7.2.0\r\nshoal_version:{}\r\nredis_mode:{}\r\nos:{}\r\narch_bits:{}\r\n\
             run_id:{}\r\nshoal_node:{}\r\n\
             process_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nio_threads_active:{}\r\n\
             unix_time_ms:{}\r\n",
            env!("CARGO_PKG_VERSION"),
            if node.membership().is_some() { "cluster" } else { "standalone" },
            os_name(),
            usize::BITS,
            run_id(node.id().0),
            cfg.name,
            f.process_id,
            f.tcp_port,
            f.uptime_ms / 1000,
            f.uptime_ms / 86_400_000,
            f.io_threads,
            now
        ),
        "clients" => {
            write!(out, "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n", f.connected_clients, f.maxclients)
        }
        "memory" => {
            let used = node.store().used_bytes();
            write!(
                out,
                "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{}\r\n\
                 used_memory_rss_human:{}\r\nmaxmemory:{}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\n\
                 evicted_keys:{}\r\n",
                human(used as u64),
                f.used_memory_rss,
                human(f.used_memory_rss),
                cfg.maxmemory_bytes.unwrap_or(0),
                human(cfg.maxmemory_bytes.unwrap_or(0) as u64),
                policy_name(cfg.eviction),
                store.evicted_keys
            )
        }
        "persistence" => {
            write!(out, "# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:0\r\naof_enabled:0\r\n")
        }
        "stats" => write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\n\
             expired_keys:{}\r\nevicted_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\noom_rejections:{}\r\n\
             client_query_buffer_limit_disconnections:{}\r\nclient_output_buffer_limit_disconnections:{}\r\n\
             client_idle_timeouts:{}\r\ntls_handshake_failures:{}\r\n",
            f.total_connections_received,
            f.total_commands_processed.max(stats.commands),
            f.rejected_connections,
            store.expired_keys,
            store.evicted_keys,
            stats.keyspace_hits,
            stats.keyspace_misses,
            stats.oom_rejections,
            f.client_query_buffer_limit_disconnections,
            f.client_output_buffer_limit_disconnections,
            f.client_idle_timeouts,
            f.tls_handshake_failures
        ),
        "replication" => write!(out, "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"),
        "cluster" => cluster(out, node, now).and_then(|()| match node.membership() {
            Some(_) => peer_links(out, &f.peer_links)
                .and_then(|()| write!(out, "gossip_datagrams_dropped:{}\r\n", f.gossip_datagrams_dropped)),
            None => Ok(()),
        }),
        "keyspace" => {
            out.push_str("# Keyspace\r\n");
            let keys = node.store().len();
            if keys > 0 {
                let _ = write!(out, "db0:keys={keys},expires={},avg_ttl=0\r\n", node.store().expiring_len());
            }
            Ok(())
        }
        _ => Ok(()),
    };
}

/// The OS and architecture, as Redis's `os` field names them (`Linux x86_64`).
fn os_name() -> String {
    let os = std::env::consts::OS;
    let mut name: String = os.chars().take(1).flat_map(char::to_uppercase).chain(os.chars().skip(1)).collect();
    name.push(' ');
    name.push_str(std::env::consts::ARCH);
    name
}

/// A 40-hex-digit id of this process life (Redis's `run_id`), derived from the node's per-life id.
fn run_id(life: u64) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(b"shoal-run-id\0").chain_update(life.to_le_bytes()).finalize();
    digest.iter().take(20).map(|b| format!("{b:02x}")).collect()
}

/// The Redis name of an eviction policy.
pub fn policy_name(p: EvictionPolicy) -> &'static str {
    match p {
        EvictionPolicy::AllKeysLru => "allkeys-lru",
        EvictionPolicy::AllKeysRandom => "allkeys-random",
        EvictionPolicy::VolatileLru => "volatile-lru",
        EvictionPolicy::NoEviction => "noeviction",
    }
}

/// Bytes in Redis's human form (`1.50M`).
pub fn human(bytes: u64) -> String {
    let units = [(1u64 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
    for (size, unit) in units {
        if bytes >= size {
            return format!("{:.2}{unit}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes}B")
}

/// The peer transport's rejection counters, at the end of a clustered node's cluster section.
fn peer_links(out: &mut String, p: &super::command::PeerLinkFacts) -> std::fmt::Result {
    write!(
        out,
        "peer_frames_bad:{}\r\npeer_frames_forged:{}\r\npeer_frames_replayed:{}\r\npeer_frames_reordered:{}\r\n\
         peer_handshakes_failed:{}\r\npeer_handshake_timeouts:{}\r\npeer_handshakes_refused:{}\r\n\
         peer_tls_handshakes_failed:{}\r\n\
         peer_frames_dropped:{}\r\npeer_messages_split:{}\r\npeer_messages_too_large:{}\r\n",
        p.frames_bad,
        p.frames_forged,
        p.frames_replayed,
        p.frames_reordered,
        p.handshakes_failed,
        p.handshake_timeouts,
        p.handshakes_refused,
        p.tls_handshakes_failed,
        p.frames_dropped,
        p.messages_split,
        p.messages_too_large,
    )
}

/// The cluster section: this node's view of the membership, with a digest of the live set, then replication.
fn cluster(out: &mut String, node: &Node, now: Millis) -> std::fmt::Result {
    let Some(m) = node.membership() else {
        return write!(out, "# Cluster\r\ncluster_enabled:0\r\n");
    };
    cluster_membership(out, m)?;
    cluster_replication(out, node, now)
}

/// The cluster section's membership fields: identity, member counts, live digest, gossip counters, name conflicts.
fn cluster_membership(out: &mut String, m: &Membership) -> std::fmt::Result {
    let c = m.counters();
    let conflicts = m.name_conflicts();
    write!(
        out,
        "# Cluster\r\ncluster_enabled:1\r\nnode_name:{}\r\ncluster_addr:{}\r\nincarnation:{}\r\n\
         members_alive:{}\r\nmembers_suspect:{}\r\nmembers_down:{}\r\nlive_digest:{:016x}\r\n\
         gossip_packets_received:{}\r\ngossip_packets_sent:{}\r\ngossip_rejected_auth:{}\r\n\
         gossip_rejected_malformed:{}\r\nname_conflicts:{}\r\n",
        m.identity().name,
        m.identity().gossip_addr,
        m.identity().incarnation,
        c.members_alive,
        c.members_suspect,
        c.members_down,
        m.live_digest(),
        c.packets_received,
        c.packets_sent,
        c.rejected_auth,
        c.rejected_oversize + c.rejected_truncated + c.rejected_decode + c.rejected_protocol,
        conflicts.len(),
    )?;
    // Each name held by several live members, with their gossip addresses: `name_conflict_0:name=a,addrs=x|y`.
    for (i, conflict) in conflicts.iter().enumerate() {
        let addrs: Vec<String> = conflict.addrs.iter().map(|a| a.to_string()).collect();
        write!(out, "name_conflict_{i}:name={},addrs={}\r\n", conflict.name, addrs.join("|"))?;
    }
    Ok(())
}

/// The cluster section's replication fields: ring, levels, requests, hints, anti-entropy, hand-off and the
/// counters of refused or dropped peer data.
fn cluster_replication(out: &mut String, node: &Node, now: Millis) -> std::fmt::Result {
    let r = node.replication_stats().unwrap_or_default();
    write!(
        out,
        "ring_digest:{:016x}\r\nring_members:{}\r\nring_settled:{}\r\nreplicas:{}\r\nread_consistency:{}\r\n\
         write_consistency:{}\r\nrequests_pending:{}\r\nforwards:{}\r\nforward_failovers:{}\r\n\
         replica_failures:{}\r\nrequest_timeouts:{}\r\n\
         hints_pending:{}\r\nhints_stored:{}\r\nhints_delivered:{}\r\nhints_dropped:{}\r\nread_repairs:{}\r\n\
         lww_conflicts:{}\r\nmerged_changes:{}\r\nanti_entropy_rounds:{}\r\nanti_entropy_entries_sent:{}\r\n\
         anti_entropy_bytes_sent:{}\r\nhandoff_dropped_keys:{}\r\nmarkers:{}\r\npeer_msgs_unknown_sender:{}\r\n\
         merges_refused:{}\r\n\
         replica_refusals:{}\r\nevicted_markers_dropped:{}\r\nflushed_drops:{}\r\n\
         clock_drift_max_ms:{}\r\n\
         clock_drift_rejected:{}\r\npeer_msgs_invalid:{}\r\nforwards_unknown:{}\r\nforwards_refused:{}\r\nstalls:{}\r\n\
         requests_refused:{}\r\nready:{}\r\nready_reason:{}\r\nready_after_ms:{}\r\n",
        node.ring_digest(),
        node.ring_members(),
        u8::from(node.ring_settled(now)),
        node.config().replicas,
        node.config().levels.read,
        node.config().levels.write,
        node.requests_pending(),
        r.forwards,
        r.forward_failovers,
        r.replica_failures,
        r.timeouts,
        node.hints_pending(),
        r.hints_stored,
        r.hints_delivered,
        r.hints_dropped,
        r.read_repairs,
        r.lww_conflicts,
        r.merged_changes,
        r.ae_rounds,
        r.ae_entries_sent,
        r.ae_bytes_sent,
        r.handoff_dropped,
        node.store().markers_len(),
        r.peer_unknown_sender,
        r.merges_refused,
        r.replica_refusals,
        node.store().stats().evicted_markers_dropped,
        r.flushed_drops,
        node.config().clock_drift_max_ms,
        r.clock_drift_rejected,
        r.peer_msgs_invalid,
        r.forwards_unknown,
        r.forwards_refused,
        r.stalls,
        r.requests_refused,
        u8::from(node.ready_state() == crate::core::replication::ReadyState::Ready),
        node.ready_state().reason(),
        node.ready_after_ms().map_or(-1, |ms| ms as i64),
    )
}
