//! The node's counters and gauges in the Prometheus text exposition format (version 0.0.4).
//!
//! Pure: the runtime serves the text over HTTP and appends what only it knows (connections, peer links).
//! Names follow Prometheus conventions: `shoal_` prefix, `_total` for counters, base units (bytes).

use std::fmt::Write;

use super::node::Node;
use super::Millis;

/// Write one metric with its HELP and TYPE lines.
pub fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// The node's metrics at `now`.
pub fn render(node: &Node, now: Millis) -> String {
    let mut out = String::with_capacity(4096);
    node_metrics(&mut out, node, now);
    if let Some(m) = node.membership() {
        membership_metrics(&mut out, m);
    }
    if let Some(r) = node.replication_stats() {
        replication_metrics(&mut out, node, &r);
    }
    lock_metrics(&mut out, node);
    out
}

/// The store's and the node's own counters.
fn node_metrics(o: &mut String, node: &Node, now: Millis) {
    let stats = node.stats();
    let store = node.store();
    gauge(o, "shoal_up", "1 while the node runs.", 1.0);
    gauge(o, "shoal_time_seconds", "The node's wall clock.", now as f64 / 1000.0);
    counter(o, "shoal_commands_total", "Data commands executed on this node.", stats.commands);
    counter(o, "shoal_keyspace_hits_total", "Reads that found their key.", stats.keyspace_hits);
    counter(o, "shoal_keyspace_misses_total", "Reads that did not.", stats.keyspace_misses);
    counter(o, "shoal_oom_rejections_total", "Writes refused with OOM.", stats.oom_rejections);
    gauge(o, "shoal_keys", "Values stored on this node (its replicas' share).", store.values_len() as f64);
    gauge(o, "shoal_markers", "Tombstones and eviction markers stored.", store.markers_len() as f64);
    gauge(o, "shoal_used_memory_bytes", "Bytes charged for stored entries.", store.used_bytes() as f64);
    gauge(o, "shoal_maxmemory_bytes", "The memory limit (0: none).", node.config().maxmemory_bytes.unwrap_or(0) as f64);
    counter(o, "shoal_expired_keys_total", "Keys removed because their TTL passed.", store.stats().expired_keys);
    counter(o, "shoal_evicted_keys_total", "Keys evicted under maxmemory.", store.stats().evicted_keys);
    counter(
        o,
        "shoal_evicted_markers_dropped_total",
        "Eviction markers dropped to keep within their memory share.",
        store.stats().evicted_markers_dropped,
    );
}

/// Gossip and membership.
fn membership_metrics(o: &mut String, m: &crate::core::membership::Membership) {
    let c = m.counters();
    metric(
        o,
        "shoal_members",
        "gauge",
        "Members by state as this node sees them.",
        &[
            ("state=\"alive\"", c.members_alive as f64),
            ("state=\"suspect\"", c.members_suspect as f64),
            ("state=\"down\"", c.members_down as f64),
        ],
    );
    counter(o, "shoal_gossip_packets_received_total", "Gossip datagrams received.", c.packets_received);
    counter(o, "shoal_gossip_packets_sent_total", "Gossip datagrams sent.", c.packets_sent);
    metric(
        o,
        "shoal_gossip_rejected_total",
        "counter",
        "Gossip datagrams dropped, by reason.",
        &[
            ("reason=\"auth\"", c.rejected_auth as f64),
            ("reason=\"oversize\"", c.rejected_oversize as f64),
            ("reason=\"truncated\"", c.rejected_truncated as f64),
            ("reason=\"decode\"", c.rejected_decode as f64),
            ("reason=\"protocol\"", c.rejected_protocol as f64),
        ],
    );
    counter(o, "shoal_identity_renewals_total", "Times this node rejoined under a renewed identity.", c.rejoins);
    let conflicts = m.name_conflicts().len() as f64;
    gauge(o, "shoal_member_name_conflicts", "Names held by several live members (a misconfiguration).", conflicts);
    gauge(o, "shoal_incarnation", "This node's identity incarnation.", m.identity().incarnation as f64);
    let digest = format!("digest=\"{:016x}\"", m.live_digest());
    metric(o, "shoal_live_set_info", "gauge", "Digest of the live set (equal digests, same view).", &[(&digest, 1.0)]);
}

/// Ring, requests, hints, repair and peer traffic.
fn replication_metrics(o: &mut String, node: &Node, r: &crate::core::replication::ReplicationStats) {
    let digest = format!("digest=\"{:016x}\"", node.ring_digest());
    metric(o, "shoal_ring_info", "gauge", "Digest of this node's ring.", &[(&digest, 1.0)]);
    gauge(o, "shoal_ring_members", "Members on this node's ring.", node.ring_members() as f64);
    let ready = node.ready_state() == crate::core::replication::ReadyState::Ready;
    let ready_help = "1 once this node joined and synced every range it owns with another owner (SHOAL.READY).";
    gauge(o, "shoal_ready", ready_help, f64::from(u8::from(ready)));
    gauge(o, "shoal_requests_pending", "Replication requests in flight.", node.requests_pending() as f64);
    gauge(o, "shoal_hints_pending", "Hints waiting for their replica.", node.hints_pending() as f64);
    counter(o, "shoal_forwards_total", "Commands forwarded to a key's owner.", r.forwards);
    counter(o, "shoal_forward_failovers_total", "Forwards retried on the next owner.", r.forward_failovers);
    let unknown = "Forwards answered 'may or may not have run': their link failed after sending.";
    counter(o, "shoal_forwards_unknown_total", unknown, r.forwards_unknown);
    let refused = "Forwards refused right after a pause longer than a forward's timeout (maybe given up on).";
    counter(o, "shoal_forwards_refused_total", refused, r.forwards_refused);
    counter(o, "shoal_stalls_total", "Stalls noticed (a gap in the clock, or declared down).", r.stalls);
    let refused = "Commands refused with TRYAGAIN: too many requests in flight.";
    counter(o, "shoal_requests_refused_total", refused, r.requests_refused);
    counter(o, "shoal_replica_failures_total", "Replicas that did not answer in time.", r.replica_failures);
    counter(o, "shoal_request_timeouts_total", "Commands answered with a TIMEOUT error.", r.timeouts);
    counter(o, "shoal_hints_stored_total", "Hints recorded.", r.hints_stored);
    counter(o, "shoal_hints_delivered_total", "Hints delivered to their replica.", r.hints_delivered);
    counter(o, "shoal_hints_dropped_total", "Hints dropped (count or age limit).", r.hints_dropped);
    counter(o, "shoal_read_repairs_total", "Stale replicas written back by reads.", r.read_repairs);
    counter(o, "shoal_lww_conflicts_total", "Concurrent writes settled by last-writer-wins.", r.lww_conflicts);
    counter(o, "shoal_merged_changes_total", "Replica entries that changed the local copy.", r.merged_changes);
    counter(o, "shoal_anti_entropy_rounds_total", "Anti-entropy rounds started.", r.ae_rounds);
    counter(o, "shoal_anti_entropy_entries_sent_total", "Entries sent by anti-entropy.", r.ae_entries_sent);
    counter(o, "shoal_anti_entropy_bytes_sent_total", "Approximate anti-entropy bytes sent.", r.ae_bytes_sent);
    counter(o, "shoal_merges_refused_total", "Peer entries not stored for lack of memory.", r.merges_refused);
    counter(o, "shoal_replica_refusals_total", "Replicas that refused a write for lack of memory.", r.replica_refusals);
    counter(o, "shoal_handoff_dropped_keys_total", "Keys handed to new owners and dropped.", r.handoff_dropped);
    let unknown = "Peer messages dropped: their sender is not a live member under that name and address.";
    counter(o, "shoal_peer_msgs_unknown_sender_total", unknown, r.peer_unknown_sender);
    let drift = "Peer timestamps rejected for being more than clock_drift_max_ms ahead of the local clock.";
    counter(o, "shoal_clock_drift_rejected_total", drift, r.clock_drift_rejected);
    let invalid = "Peer messages dropped or refused for empty or inconsistent content.";
    counter(o, "shoal_peer_msgs_invalid_total", invalid, r.peer_msgs_invalid);
}

/// Lock grants this node coordinated.
fn lock_metrics(o: &mut String, node: &Node) {
    let l = node.lock_stats();
    metric(
        o,
        "shoal_lock_grants_total",
        "counter",
        "Lock grants and renewals this node coordinated, by whether a majority of the replicas gave them.",
        &[("majority=\"true\"", l.grants_majority as f64), ("majority=\"false\"", l.grants_degraded as f64)],
    );
    counter(o, "shoal_lock_contended_total", "Acquires refused because another owner held the lock.", l.contended);
    counter(o, "shoal_lock_no_majority_total", "Acquires refused without a majority (strict mode).", l.no_majority);
}

fn counter(o: &mut String, name: &str, help: &str, v: u64) {
    metric(o, name, "counter", help, &[("", v as f64)]);
}

fn gauge(o: &mut String, name: &str, help: &str, v: f64) {
    metric(o, name, "gauge", help, &[("", v)]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::NodeConfig;

    #[test]
    fn every_sample_line_belongs_to_a_declared_metric() {
        let node = Node::new(NodeConfig::default(), 1);
        let text = render(&node, 1_700_000_000_000);
        let mut declared = std::collections::BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(declared.contains(name), "{line}");
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
        assert!(text.contains("shoal_keys 0"));
    }
}
