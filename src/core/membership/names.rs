//! Name conflicts: two live members that carry the same node name under different gossip addresses.
//!
//! The ring places a member's tokens by its name, so two live members with one name share one set of tokens:
//! the ring silently holds fewer distinct owners than members, and replication to the second one stops. That is
//! always a configuration error (two hosts started with the same `--name`), never a state the protocol can
//! repair, so membership detects it and reports it loudly: a `MemberEvent::NameConflict` the first time a
//! conflict appears (the runtime logs it as a warning), a counter, and the current conflicts for `INFO cluster`.
//! One node that restarted keeps its gossip address, so a restart is not a conflict.

use std::net::SocketAddr;

use super::identity::Identity;
use super::view::MemberState;

/// One name held by several live members.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NameConflict {
    /// The shared name.
    pub name: String,
    /// The gossip addresses of the live members that carry it, sorted (at least two).
    pub addrs: Vec<SocketAddr>,
}

/// The conflicts among `rows` (identities with their states), sorted by name.
pub fn conflicts<'a>(rows: impl Iterator<Item = (&'a Identity, MemberState)>) -> Vec<NameConflict> {
    let mut live: Vec<(&str, SocketAddr)> =
        rows.filter(|(_, state)| state.is_live()).map(|(id, _)| (id.name.as_str(), id.gossip_addr)).collect();
    live.sort_unstable();
    live.dedup();
    let mut out: Vec<NameConflict> = Vec::new();
    for pair in live.windows(2) {
        let [(name, a), (next, b)] = [pair[0], pair[1]];
        if name != next {
            continue;
        }
        match out.last_mut() {
            Some(c) if c.name == name => c.addrs.push(b),
            _ => out.push(NameConflict { name: name.to_string(), addrs: vec![a, b] }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str, port: u16) -> Identity {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        Identity::new(addr, addr, name, 1)
    }

    #[test]
    fn only_live_members_with_one_name_on_different_addresses_conflict() {
        let (a1, a2, a3, b, c1, c2) = (id("a", 1), id("a", 2), id("a", 3), id("b", 4), id("c", 5), id("c", 6));
        let rows = [
            (&a1, MemberState::Alive),
            (&b, MemberState::Alive),
            (&a2, MemberState::Suspect),
            (&c1, MemberState::Alive),
            (&c2, MemberState::Down),
            (&a3, MemberState::Alive),
        ];
        let found = conflicts(rows.into_iter());
        assert_eq!(
            found,
            vec![NameConflict { name: "a".into(), addrs: vec![a1.gossip_addr, a2.gossip_addr, a3.gossip_addr] }]
        );
    }

    #[test]
    fn a_restarted_member_on_its_own_address_is_no_conflict() {
        let old = id("a", 1);
        let new = Identity { incarnation: 2, ..old.clone() };
        assert!(conflicts([(&old, MemberState::Alive), (&new, MemberState::Alive)].into_iter()).is_empty());
        assert!(conflicts(std::iter::empty()).is_empty());
    }
}
