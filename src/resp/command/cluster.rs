//! Parsers for CLUSTER's subcommands and for READONLY, READWRITE and ASKING, with Redis 7's error texts.
//!
//! The topology subcommands (SLOTS, SHARDS, NODES, INFO, MYID), KEYSLOT and the three connection switches are
//! answered by the connection from the slot map its node publishes (`runtime/cluster.rs`); COUNTKEYSINSLOT and
//! GETKEYSINSLOT read the store, so they are data commands the node answers for itself.

use bytes::Bytes;

use super::args::int;
use super::{ConnCommand, Parsed};
use crate::core::command::Command;
use crate::core::reply::Reply;
use crate::core::slots::{key_slot, SLOTS};

/// A CLUSTER subcommand (or switch) the connection answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterCmd {
    /// CLUSTER SLOTS.
    Slots,
    /// CLUSTER SHARDS.
    Shards,
    /// CLUSTER NODES.
    Nodes,
    /// CLUSTER INFO.
    Info,
    /// CLUSTER MYID.
    MyId,
    /// CLUSTER KEYSLOT key, already computed.
    KeySlot(u16),
    /// READONLY: reads may be served by any owner of their slot.
    ReadOnly,
    /// READWRITE: back to master-only.
    ReadWrite,
    /// ASKING: accepted (Shoal never answers ASK).
    Asking,
}

fn cluster(cmd: ClusterCmd) -> Result<Parsed, Reply> {
    Ok(Parsed::Conn(ConnCommand::Cluster(cmd)))
}

/// CLUSTER SLOTS.
pub(crate) fn slots(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    cluster(ClusterCmd::Slots)
}

/// CLUSTER SHARDS.
pub(crate) fn shards(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    cluster(ClusterCmd::Shards)
}

/// CLUSTER NODES.
pub(crate) fn nodes(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    cluster(ClusterCmd::Nodes)
}

/// CLUSTER INFO.
pub(crate) fn info(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    cluster(ClusterCmd::Info)
}

/// CLUSTER MYID.
pub(crate) fn myid(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    cluster(ClusterCmd::MyId)
}

/// CLUSTER KEYSLOT key.
pub(crate) fn keyslot(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    cluster(ClusterCmd::KeySlot(key_slot(&args[2])))
}

/// READONLY.
pub(crate) fn readonly(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    cluster(ClusterCmd::ReadOnly)
}

/// READWRITE.
pub(crate) fn readwrite(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    cluster(ClusterCmd::ReadWrite)
}

/// ASKING.
pub(crate) fn asking(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    cluster(ClusterCmd::Asking)
}

/// A slot number in 0..16384.
fn slot(arg: &[u8], invalid: &'static str) -> Result<u16, Reply> {
    let slot = int(arg)?;
    u16::try_from(slot).ok().filter(|&s| usize::from(s) < SLOTS).ok_or(Reply::err(invalid))
}

/// CLUSTER COUNTKEYSINSLOT slot.
pub(crate) fn countkeysinslot(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    let slot = slot(&args[2], "ERR Invalid slot")?;
    Ok(Parsed::Data(Command::CountKeysInSlot { slot }))
}

/// CLUSTER GETKEYSINSLOT slot count.
pub(crate) fn getkeysinslot(args: Vec<Bytes>) -> Result<Parsed, Reply> {
    const INVALID: &str = "ERR Invalid slot or number of keys";
    let count = int(&args[3])?;
    let slot = slot(&args[2], INVALID)?;
    let count = usize::try_from(count).map_err(|_| Reply::err(INVALID))?;
    Ok(Parsed::Data(Command::GetKeysInSlot { slot, count }))
}

/// CLUSTER HELP.
pub(crate) fn help(_args: Vec<Bytes>) -> Result<Parsed, Reply> {
    Ok(Parsed::Conn(ConnCommand::Help(&[
        "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "COUNTKEYSINSLOT <slot>",
        "    Return the number of keys in <slot> held by this node.",
        "GETKEYSINSLOT <slot> <count>",
        "    Return key names stored by this node in a slot.",
        "INFO",
        "    Return information about the cluster.",
        "KEYSLOT <key>",
        "    Return the hash slot for <key>.",
        "MYID",
        "    Return the node id.",
        "NODES",
        "    Return cluster configuration seen by node. Output format:",
        "    <id> <ip:port@bus-port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
        "SHARDS",
        "    Return information about slot range mappings and the nodes associated with them.",
        "SLOTS",
        "    Return information about slots range mappings. Each range is made of:",
        "    start, end, master and replicas IP addresses, ports and ids",
        "HELP",
        "    Print this help.",
    ])))
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn run(line: &str) -> Parsed {
        parse(line.split(' ').map(|a| Bytes::copy_from_slice(a.as_bytes())).collect())
    }

    fn error(line: &str) -> String {
        match run(line) {
            Parsed::Error(Reply::Error(text)) => text.into_owned(),
            other => panic!("{line}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn cluster_subcommands_parse_in_any_case() {
        let conn = |c| Parsed::Conn(ConnCommand::Cluster(c));
        assert_eq!(run("CLUSTER slots"), conn(ClusterCmd::Slots));
        assert_eq!(run("cluster SHARDS"), conn(ClusterCmd::Shards));
        assert_eq!(run("cluster nodes"), conn(ClusterCmd::Nodes));
        assert_eq!(run("cluster info"), conn(ClusterCmd::Info));
        assert_eq!(run("cluster myid"), conn(ClusterCmd::MyId));
        assert_eq!(run("cluster keyslot foo"), conn(ClusterCmd::KeySlot(12182)));
        assert_eq!(run("cluster keyslot {user1000}.following"), conn(ClusterCmd::KeySlot(key_slot(b"user1000"))));
        assert_eq!(run("READONLY"), conn(ClusterCmd::ReadOnly));
        assert_eq!(run("readwrite"), conn(ClusterCmd::ReadWrite));
        assert_eq!(run("asking"), conn(ClusterCmd::Asking));
        assert_eq!(run("cluster countkeysinslot 16383"), Parsed::Data(Command::CountKeysInSlot { slot: 16383 }));
        assert_eq!(run("cluster getkeysinslot 0 10"), Parsed::Data(Command::GetKeysInSlot { slot: 0, count: 10 }));
        assert!(matches!(run("cluster help"), Parsed::Conn(ConnCommand::Help(_))));
    }

    #[test]
    fn malformed_cluster_commands_get_redis_errors() {
        assert_eq!(error("cluster"), "ERR wrong number of arguments for 'cluster' command");
        assert_eq!(error("cluster keyslot"), "ERR wrong number of arguments for 'cluster|keyslot' command");
        assert_eq!(error("cluster keyslot a b"), "ERR wrong number of arguments for 'cluster|keyslot' command");
        assert_eq!(error("cluster slots x"), "ERR wrong number of arguments for 'cluster|slots' command");
        assert_eq!(error("cluster addslots 1"), "ERR unknown subcommand 'addslots'. Try CLUSTER HELP.");
        assert_eq!(error("cluster countkeysinslot x"), "ERR value is not an integer or out of range");
        assert_eq!(error("cluster countkeysinslot 16384"), "ERR Invalid slot");
        assert_eq!(error("cluster countkeysinslot -1"), "ERR Invalid slot");
        assert_eq!(error("cluster getkeysinslot 1 x"), "ERR value is not an integer or out of range");
        assert_eq!(error("cluster getkeysinslot x 1"), "ERR value is not an integer or out of range");
        assert_eq!(error("cluster getkeysinslot 1 -1"), "ERR Invalid slot or number of keys");
        assert_eq!(error("cluster getkeysinslot 99999 1"), "ERR Invalid slot or number of keys");
        assert_eq!(error("readonly x"), "ERR wrong number of arguments for 'readonly' command");
    }
}
