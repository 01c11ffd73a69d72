//! The slot map a node shows cluster-aware clients: every slot's owners (first owner = master, the others its
//! replicas) with their client addresses and node ids, computed from this node's own view of the live members.
//!
//! `Topology::of` rebuilds the ring from the live members exactly as the node's replication does (same names,
//! same V), so the map agrees with where the node's coordinator sends each key; nodes that see the same members
//! build the same map. During a partition each side's map names that side's owners only (once the others are
//! declared down): a cluster-aware client is sent to an owner on the side it talks to. `route` decides, for
//! one command of a cluster-aware connection, whether this node serves it or answers `MOVED` (or `CROSSSLOT`).
//! The replies of CLUSTER SLOTS, SHARDS, NODES and INFO are in `topology/replies.rs`.

mod replies;

use std::net::SocketAddr;

use bytes::Bytes;

use super::command::Command;
use super::membership::MemberState;
use super::node::Node;
use super::ring::Ring;
use super::slots::{key_slot, node_id, slot_ranges, SlotRange, SLOTS};

pub use super::replication::coordinator::ERR_CROSSSLOT;

/// One live member as cluster clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopoMember {
    /// Node name.
    pub name: String,
    /// Redis Cluster node id (40 hex digits).
    pub id: String,
    /// Client (RESP) address: what MOVED and CLUSTER SLOTS advertise.
    pub client: SocketAddr,
    /// Gossip address (shown as the cluster bus port).
    pub gossip: SocketAddr,
    /// Suspected (missed probes, not yet declared down): `fail?` in CLUSTER NODES.
    pub suspect: bool,
}

/// The slot map of one ring, with the members it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Members in ring order (sorted by name); owners are indices into it.
    members: Vec<TopoMember>,
    /// This node's index in `members`.
    me: Option<u32>,
    /// Every slot once, in order; adjacent ranges differ in owners.
    ranges: Vec<SlotRange>,
    /// Per slot, the index of its range.
    range_of: Vec<u16>,
    /// A local counter of rebuilds (CLUSTER INFO's epochs).
    epoch: u64,
}

/// What a node does with a command from a cluster-aware connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Run it here.
    Serve,
    /// `-MOVED slot host:port`: the slot's master serves it.
    Moved(u16, SocketAddr),
    /// Its keys are in several slots.
    CrossSlot,
}

impl Route {
    /// The error reply for a command not served here (`None` for `Serve`).
    pub fn reply(&self) -> Option<super::reply::Reply> {
        match self {
            Route::Serve => None,
            Route::Moved(slot, addr) => Some(super::reply::Reply::error(format!("MOVED {slot} {addr}"))),
            Route::CrossSlot => Some(super::reply::Reply::err(ERR_CROSSSLOT)),
        }
    }
}

impl Topology {
    /// The map of `ring` (its `n` owners per slot); `members` in the ring's member order, `me` this node's name.
    pub fn build(ring: &Ring, n: usize, members: Vec<TopoMember>, me: &str, epoch: u64) -> Topology {
        let ranges = slot_ranges(ring, n);
        let mut range_of = vec![0u16; if ranges.is_empty() { 0 } else { SLOTS }];
        for (i, r) in ranges.iter().enumerate() {
            range_of[usize::from(r.start)..=usize::from(r.end)].fill(i as u16);
        }
        let me = members.iter().position(|m| m.name == me).map(|i| i as u32);
        Topology { members, me, ranges, range_of, epoch }
    }

    /// This node's map from its live members (`None` without a cluster).
    pub fn of(node: &Node, epoch: u64) -> Option<Topology> {
        let m = node.membership()?;
        let own = m.identity();
        // Sorted by (name, gossip address, ...): the last row of a name wins, as in the node's own ring.
        let mut members: Vec<TopoMember> = Vec::new();
        for row in m.live_members() {
            let member = TopoMember {
                id: node_id(&row.name),
                client: row.client_addr,
                gossip: row.gossip_addr,
                suspect: row.state == MemberState::Suspect,
                name: row.name,
            };
            match members.last_mut() {
                Some(last) if last.name == member.name => *last = member,
                _ => members.push(member),
            }
        }
        let own_row = TopoMember {
            name: own.name.clone(),
            id: node_id(&own.name),
            client: own.client_addr,
            gossip: own.gossip_addr,
            suspect: false,
        };
        match members.binary_search_by(|m| m.name.cmp(&own.name)) {
            Ok(i) => members[i] = own_row,
            Err(i) => members.insert(i, own_row),
        }
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        let ring = Ring::new(&names, node.config().vnodes);
        Some(Topology::build(&ring, node.config().replicas, members, &own.name, epoch))
    }

    /// The members, in ring order.
    pub fn members(&self) -> &[TopoMember] {
        &self.members
    }

    /// This node's entry.
    pub fn me(&self) -> Option<&TopoMember> {
        self.me.map(|i| &self.members[i as usize])
    }

    /// The slot ranges, in slot order.
    pub fn ranges(&self) -> &[SlotRange] {
        &self.ranges
    }

    /// The local rebuild counter.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The owners of `slot` (indices into `members()`), master first.
    pub fn owners(&self, slot: u16) -> &[u32] {
        match self.range_of.get(usize::from(slot)) {
            Some(&r) => &self.ranges[usize::from(r)].owners,
            None => &[],
        }
    }

    /// The master of `slot`.
    pub fn master(&self, slot: u16) -> Option<&TopoMember> {
        self.owners(slot).first().map(|&i| &self.members[i as usize])
    }

    /// Where a cluster-aware connection's command runs: here when this node is the master of the command's
    /// slot, or (with READONLY) one of its owners and the command only reads; else MOVED to the master. Keys in
    /// several slots are CROSSSLOT; keyless commands run here.
    pub fn route(&self, cmd: &Command, readonly: bool) -> Route {
        let slot = match command_slot(cmd) {
            Ok(Some(slot)) => slot,
            Ok(None) => return Route::Serve,
            Err(CrossSlot) => return Route::CrossSlot,
        };
        let owners = self.owners(slot);
        let (Some(&master), Some(me)) = (owners.first(), self.me) else { return Route::Serve };
        if master == me || (readonly && cmd.is_read() && owners.contains(&me)) {
            return Route::Serve;
        }
        Route::Moved(slot, self.members[master as usize].client)
    }
}

/// A command's keys are in more than one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrossSlot;

/// The one slot of a data command's keys: `None` for keyless commands (and the SHOAL.* and LOCK.* commands,
/// which are routed by the node), `CrossSlot` when the keys span several slots.
pub fn command_slot(cmd: &Command) -> Result<Option<u16>, CrossSlot> {
    if let Some(key) = cmd.single_key() {
        return Ok(Some(key_slot(key)));
    }
    let keys: Box<dyn Iterator<Item = &Bytes>> = match cmd {
        Command::MGet { keys } | Command::Del { keys } | Command::Exists { keys } | Command::Touch { keys } => {
            Box::new(keys.iter())
        }
        Command::MSet { pairs, .. } => Box::new(pairs.iter().map(|(k, _)| k)),
        _ => return Ok(None),
    };
    let mut slot = None;
    for key in keys {
        let s = key_slot(key);
        match slot {
            Some(first) if first != s => return Err(CrossSlot),
            _ => slot = Some(s),
        }
    }
    Ok(slot)
}

#[cfg(test)]
mod tests;
