//! Who a member is: its advertised gossip address, its client address, its name and its incarnation.
//!
//! The gossip address is foca's `Addr`: at most one identity per address is live in a view. When two identities
//! share an address the one with the higher incarnation wins, so a restarted node (whose incarnation is its start
//! time in ms) or a renewed one (incarnation + 1, after it learned it was declared down) replaces its old self in
//! every view as a `Rename`, never as a zombie. Ties are broken by name and client address so that every member
//! picks the same winner.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// A member's identity as it travels in gossip.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub struct Identity {
    /// Address peers send gossip datagrams to (the advertised address, not necessarily the bound one).
    pub gossip_addr: SocketAddr,
    /// Address clients and peers use for the Redis protocol and data traffic.
    pub client_addr: SocketAddr,
    /// Human-readable node name; at most `NAME_BYTES_MAX` bytes.
    pub name: String,
    /// Generation of this node: its start time in ms, bumped by one on every renewal.
    pub incarnation: u64,
}

/// Longest node name accepted in an identity, in bytes.
pub const NAME_BYTES_MAX: usize = 64;

impl Identity {
    /// Builds an identity; `incarnation` should be the node's start time in ms.
    pub fn new(gossip_addr: SocketAddr, client_addr: SocketAddr, name: impl Into<String>, incarnation: u64) -> Self {
        Self { gossip_addr, client_addr, name: name.into(), incarnation }
    }

    /// A stand-in for an unknown node at `gossip_addr`, used as the destination of an announce to a seed.
    ///
    /// foca accepts an announce whose destination has the receiver's address, whatever the rest of it says.
    pub(crate) fn placeholder(gossip_addr: SocketAddr) -> Self {
        let unspecified = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        Self { gossip_addr, client_addr: unspecified, name: String::new(), incarnation: 0 }
    }

    /// The key that decides address conflicts: higher wins.
    fn precedence(&self) -> (u64, &str, SocketAddr) {
        (self.incarnation, &self.name, self.client_addr)
    }
}

impl foca::Identity for Identity {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        let incarnation = self.incarnation.checked_add(1)?;
        Some(Self { incarnation, ..self.clone() })
    }

    fn addr(&self) -> SocketAddr {
        self.gossip_addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.precedence() > adversary.precedence()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity as _;

    fn id(incarnation: u64, name: &str) -> Identity {
        let addr: SocketAddr = "10.0.0.1:7000".parse().expect("addr");
        Identity::new(addr, "10.0.0.1:6379".parse().expect("addr"), name, incarnation)
    }

    #[test]
    fn renewed_identity_wins_over_its_predecessor() {
        let old = id(1_700_000_000_000, "a");
        let new = old.renew().expect("renews");
        assert_eq!(new.incarnation, old.incarnation + 1);
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
    }

    #[test]
    fn restarted_identity_wins_and_ties_break_the_same_way_on_both_sides() {
        let before = id(100, "a");
        let after = id(200, "a");
        assert!(after.win_addr_conflict(&before) && !before.win_addr_conflict(&after));
        let (x, y) = (id(5, "a"), id(5, "b"));
        assert_ne!(x.win_addr_conflict(&y), y.win_addr_conflict(&x));
    }

    #[test]
    fn renew_stops_at_the_top_incarnation() {
        assert_eq!(id(u64::MAX, "a").renew(), None);
    }
}
