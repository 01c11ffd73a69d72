//! Redis Cluster on the connection side: the slot map the node task publishes, and each connection's cluster
//! state (whether it is cluster-aware, READONLY).
//!
//! The node task rebuilds the `Topology` when its live membership changes (`NodeTask::publish_topology`) and
//! stores it in the `TopologyCell` every connection shares. A connection becomes cluster-aware when it asks for
//! the topology (CLUSTER SLOTS, SHARDS or NODES) or sends READONLY; from then on each data command whose slot
//! this node is not the master of (or, with READONLY, a read on a slot it does not own) is answered `-MOVED slot
//! host:port` here, without reaching the node, and a multi-key command across slots `-CROSSSLOT`. Other
//! connections are served for every key as before (the node forwards to the owners).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::core::command::Command;
use crate::core::reply::Reply;
use crate::core::topology::{Route, Topology};
use crate::resp::command::cluster::ClusterCmd;

/// Redis's answer to cluster commands on a node without a cluster.
pub const ERR_CLUSTER_DISABLED: &str = "ERR This instance has cluster support disabled";

/// The latest slot map, shared by the node task (writer) and the connections (readers).
#[derive(Debug, Default)]
pub struct TopologyCell {
    /// Bumped on every publication (0: nothing published yet).
    version: AtomicU64,
    current: RwLock<Option<Arc<Topology>>>,
}

impl TopologyCell {
    /// Replace the map.
    pub fn publish(&self, topology: Topology) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        *current = Some(Arc::new(topology));
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The current map (`None` on a node without a cluster).
    pub fn load(&self) -> Option<Arc<Topology>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The publication counter.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

/// One connection's cluster state.
#[derive(Debug, Default)]
pub struct ClusterConn {
    aware: bool,
    readonly: bool,
    /// The map last read, with the version it was read at.
    cached: Option<(u64, Arc<Topology>)>,
}

impl ClusterConn {
    /// Back to a fresh connection's state (RESET).
    pub fn reset(&mut self) {
        *self = ClusterConn::default();
    }

    /// The current map, re-read only when a newer one was published.
    fn topology(&mut self, cell: &TopologyCell) -> Option<Arc<Topology>> {
        let version = cell.version();
        match &self.cached {
            Some((v, t)) if *v == version => Some(t.clone()),
            _ => {
                let t = cell.load()?;
                self.cached = Some((version, t.clone()));
                Some(t)
            }
        }
    }

    /// Answer a CLUSTER subcommand, READONLY, READWRITE or ASKING.
    pub fn answer(&mut self, cell: &TopologyCell, cmd: ClusterCmd) -> Reply {
        if let ClusterCmd::KeySlot(slot) = cmd {
            return Reply::Int(i64::from(slot));
        }
        let Some(t) = self.topology(cell) else { return Reply::err(ERR_CLUSTER_DISABLED) };
        match cmd {
            ClusterCmd::Slots | ClusterCmd::Shards | ClusterCmd::Nodes => self.aware = true,
            ClusterCmd::ReadOnly => (self.aware, self.readonly) = (true, true),
            ClusterCmd::ReadWrite => self.readonly = false,
            _ => {}
        }
        match cmd {
            ClusterCmd::Slots => t.slots_reply(),
            ClusterCmd::Shards => t.shards_reply(),
            ClusterCmd::Nodes => t.nodes_reply(),
            ClusterCmd::Info => t.info_reply(),
            ClusterCmd::MyId => t.myid_reply(),
            ClusterCmd::ReadOnly | ClusterCmd::ReadWrite | ClusterCmd::Asking => Reply::Ok,
            ClusterCmd::KeySlot(slot) => Reply::Int(i64::from(slot)),
        }
    }

    /// For a cluster-aware connection, the MOVED or CROSSSLOT error a data command gets instead of running here.
    pub fn redirect(&mut self, cell: &TopologyCell, cmd: &Command) -> Option<Reply> {
        if !self.aware {
            return None;
        }
        let readonly = self.readonly;
        match self.topology(cell)?.route(cmd, readonly) {
            Route::Serve => None,
            other => other.reply(),
        }
    }
}
