//! The version a stored value carries, and how two versions of one key are ordered.
//!
//! For a single node a version is the coordinator's HLC timestamp plus its node id; the id breaks ties so that
//! two writes never compare equal unless they are the same write. The replication work extends this type to a
//! vector of (node, HLC) entries; code outside this module only compares versions and never looks inside.

use serde::{Deserialize, Serialize};

use super::clock::Timestamp;

/// A node's numeric id, derived from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The id for a node name: a stable 64-bit hash (two crc32s over the name and its reverse).
    pub fn from_name(name: &str) -> NodeId {
        let hi = crc32fast::hash(name.as_bytes()) as u64;
        let rev: Vec<u8> = name.bytes().rev().chain(*b"#shoal").collect();
        let lo = crc32fast::hash(&rev) as u64;
        NodeId(hi << 32 | lo)
    }

    /// The id a clustered node writes its version-vector entries under for one process life: the name's hash
    /// in the high half, a random draw in the low half. A cache node restarts with no memory, and maybe with a
    /// clock behind the writes it made before; under its old id its new writes would look older than those
    /// (their vector entry lower), and be dropped.
    pub fn for_life(name: &str, nonce: u32) -> NodeId {
        NodeId(NodeId::from_name(name).0 & !0xffff_ffff | u64::from(nonce))
    }
}

/// The version of one write: when (HLC) and where (coordinator) it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Version {
    /// The coordinator's HLC time of the write.
    pub time: Timestamp,
    /// The coordinator.
    pub node: NodeId,
}

impl Version {
    /// The version of a write made by `node` at `time`.
    pub fn new(time: Timestamp, node: NodeId) -> Version {
        Version { time, node }
    }

    /// Whether this version supersedes `other` (last writer wins, node id breaks ties).
    pub fn supersedes(&self, other: &Version) -> bool {
        self > other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_time_wins_then_node_breaks_ties() {
        let a = Version::new(Timestamp(10), NodeId(2));
        let b = Version::new(Timestamp(11), NodeId(1));
        let c = Version::new(Timestamp(11), NodeId(3));
        assert!(b.supersedes(&a));
        assert!(c.supersedes(&b));
        assert!(!a.supersedes(&a));
    }

    #[test]
    fn node_ids_differ_for_different_names() {
        assert_ne!(NodeId::from_name("a"), NodeId::from_name("b"));
        assert_eq!(NodeId::from_name("node-1"), NodeId::from_name("node-1"));
    }
}
