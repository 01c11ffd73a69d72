//! CLUSTER SLOTS, SHARDS, NODES, INFO and MYID in Redis 7's reply shapes, rendered from a `Topology`.
//!
//! A slot's first owner is its master and the others its replicas. SLOTS has one entry per range of slots with
//! the same owners; SHARDS one shard per distinct owner list with all its ranges; NODES one line per live member,
//! flagged `master` with the ranges it is master of (every Shoal node is the master of some slots and a replica
//! of others, which NODES cannot say; SLOTS and SHARDS do).

use std::fmt::Write;

use bytes::Bytes;

use super::{TopoMember, Topology};
use crate::core::reply::Reply;
use crate::core::slots::SLOTS;

fn text(s: impl Into<String>) -> Reply {
    Reply::Bulk(Bytes::from(s.into()))
}

impl Topology {
    fn member(&self, i: u32) -> &TopoMember {
        &self.members[i as usize]
    }

    /// CLUSTER MYID.
    pub fn myid_reply(&self) -> Reply {
        self.me().map_or(Reply::Nil, |m| text(m.id.clone()))
    }

    /// CLUSTER SLOTS: `[start, end, [ip, port, id, {}], ...]` per range, master first.
    pub fn slots_reply(&self) -> Reply {
        let node = |m: &TopoMember| {
            Reply::Array(vec![
                text(m.client.ip().to_string()),
                Reply::Int(i64::from(m.client.port())),
                text(m.id.clone()),
                Reply::Map(Vec::new()),
            ])
        };
        let ranges = self.ranges.iter().map(|r| {
            let mut entry = vec![Reply::Int(i64::from(r.start)), Reply::Int(i64::from(r.end))];
            entry.extend(r.owners.iter().map(|&o| node(self.member(o))));
            Reply::Array(entry)
        });
        Reply::Array(ranges.collect())
    }

    /// CLUSTER SHARDS: one map per distinct owner list, with its slot ranges (flat start, end pairs) and nodes.
    pub fn shards_reply(&self) -> Reply {
        let mut shards: Vec<(&[u32], Vec<Reply>)> = Vec::new();
        for r in &self.ranges {
            let bounds = [Reply::Int(i64::from(r.start)), Reply::Int(i64::from(r.end))];
            match shards.iter_mut().find(|(owners, _)| *owners == r.owners.as_slice()) {
                Some((_, slots)) => slots.extend(bounds),
                None => shards.push((&r.owners, bounds.into())),
            }
        }
        let node = |(k, &o): (usize, &u32)| {
            let m = self.member(o);
            let field = |name: &'static str, value: Reply| (Reply::simple(name), value);
            Reply::Map(vec![
                field("id", text(m.id.clone())),
                field("port", Reply::Int(i64::from(m.client.port()))),
                field("ip", text(m.client.ip().to_string())),
                field("endpoint", text(m.client.ip().to_string())),
                field("role", text(if k == 0 { "master" } else { "replica" })),
                field("replication-offset", Reply::Int(0)),
                field("health", text("online")),
            ])
        };
        let shards = shards.into_iter().map(|(owners, slots)| {
            Reply::Map(vec![
                (Reply::simple("slots"), Reply::Array(slots)),
                (Reply::simple("nodes"), Reply::Array(owners.iter().enumerate().map(node).collect())),
            ])
        });
        Reply::Array(shards.collect())
    }

    /// CLUSTER NODES: `id ip:port@cport flags master ping pong epoch link slots...` per live member.
    pub fn nodes_reply(&self) -> Reply {
        let mut out = String::new();
        for (i, m) in self.members.iter().enumerate() {
            let myself = if self.me == Some(i as u32) { "myself," } else { "" };
            let fail = if m.suspect { ",fail?" } else { "" };
            let (ip, port, bus) = (m.client.ip(), m.client.port(), m.gossip.port());
            let _ = write!(out, "{} {ip}:{port}@{bus} {myself}master{fail} - 0 0 {} connected", m.id, self.epoch);
            for (start, end) in self.master_ranges(i as u32) {
                let _ = match start == end {
                    true => write!(out, " {start}"),
                    false => write!(out, " {start}-{end}"),
                };
            }
            out.push('\n');
        }
        Reply::Verbatim(out)
    }

    /// The slot ranges `member` is the master of, adjacent ones joined.
    fn master_ranges(&self, member: u32) -> Vec<(u16, u16)> {
        let mut out: Vec<(u16, u16)> = Vec::new();
        for r in self.ranges.iter().filter(|r| r.owners.first() == Some(&member)) {
            match out.last_mut() {
                Some(last) if last.1 + 1 == r.start => last.1 = r.end,
                _ => out.push((r.start, r.end)),
            }
        }
        out
    }

    /// CLUSTER INFO: state, slot counts (a slot whose master is suspected counts as `pfail`), nodes, epochs.
    pub fn info_reply(&self) -> Reply {
        let assigned: usize = self.ranges.iter().map(|r| usize::from(r.end - r.start) + 1).sum();
        let pfail: usize = self
            .ranges
            .iter()
            .filter(|r| r.owners.first().is_some_and(|&o| self.member(o).suspect))
            .map(|r| usize::from(r.end - r.start) + 1)
            .sum();
        let masters = (0..self.members.len() as u32).filter(|&m| !self.master_ranges(m).is_empty()).count();
        let state = if assigned == SLOTS { "ok" } else { "fail" };
        Reply::Verbatim(format!(
            "cluster_state:{state}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{}\r\n\
             cluster_slots_pfail:{pfail}\r\ncluster_slots_fail:0\r\ncluster_known_nodes:{}\r\ncluster_size:{masters}\r\n\
             cluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\ncluster_stats_messages_sent:0\r\n\
             cluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n",
            assigned - pfail,
            self.members.len(),
            self.epoch,
            self.epoch,
        ))
    }
}
