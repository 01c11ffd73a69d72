//! The names a node's rings are built from, read off its membership rows: the live members with their gossip
//! addresses, and every known name. Pure functions of the rows, equal to what the sorted view gives: for a name
//! listed twice, the row last in view order (name, gossip address, client address, incarnation, state) wins, and
//! this node's own name always maps to its own address.

use std::net::SocketAddr;

use crate::core::membership::{Identity, MemberState};

/// The live members by name (sorted, unique) with their gossip address; `own_name` is listed at `own_addr`.
pub(crate) fn live<'a>(
    rows: &[(&'a Identity, MemberState)],
    own_name: &'a str,
    own_addr: SocketAddr,
) -> Vec<(&'a str, SocketAddr)> {
    let mut live: Vec<(&str, SocketAddr, SocketAddr, u64, MemberState)> = rows
        .iter()
        .filter(|(_, state)| state.is_live())
        .map(|(id, state)| (id.name.as_str(), id.gossip_addr, id.client_addr, id.incarnation, *state))
        .collect();
    live.sort_unstable();
    let mut by_name: Vec<(&str, SocketAddr)> = Vec::with_capacity(live.len() + 1);
    for (name, addr, ..) in live {
        match by_name.last_mut() {
            Some(last) if last.0 == name => last.1 = addr,
            _ => by_name.push((name, addr)),
        }
    }
    match by_name.binary_search_by(|(name, _)| name.cmp(&own_name)) {
        Ok(i) => by_name[i].1 = own_addr,
        Err(i) => by_name.insert(i, (own_name, own_addr)),
    }
    by_name
}

/// Every known name, live or not, and `own_name`, sorted and unique.
pub(crate) fn known<'a>(rows: &[(&'a Identity, MemberState)], own_name: &'a str) -> Vec<&'a str> {
    let mut names: Vec<&str> = rows.iter().map(|(id, _)| id.name.as_str()).chain([own_name]).collect();
    names.sort_unstable();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::core::membership::MemberInfo;

    fn addr(i: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], port))
    }

    fn id(name: &str, i: u8, incarnation: u64) -> Identity {
        Identity::new(addr(i, 7946), addr(i, 6379), name, incarnation)
    }

    #[test]
    fn roster_equals_the_sorted_view_with_duplicates_and_own_override() {
        let ids = [id("b", 2, 5), id("a", 1, 1), id("b", 3, 9), id("c", 4, 2), id("me", 9, 1), id("b", 1, 7)];
        let states = [MemberState::Alive, MemberState::Suspect, MemberState::Down];
        for shift in 0..states.len() {
            let rows: Vec<(&Identity, MemberState)> =
                ids.iter().enumerate().map(|(i, id)| (id, states[(i + shift) % states.len()])).collect();
            // The reference: the sorted view, live rows inserted in order (last wins), then this node.
            let mut view: Vec<MemberInfo> = rows.iter().map(|(id, s)| MemberInfo::new(id, *s)).collect();
            view.sort();
            let mut expected: BTreeMap<&str, SocketAddr> = BTreeMap::new();
            for info in view.iter().filter(|info| info.state.is_live()) {
                expected.insert(&info.name, info.gossip_addr);
            }
            expected.insert("me", addr(99, 1));
            let got = live(&rows, "me", addr(99, 1));
            assert_eq!(got, expected.into_iter().collect::<Vec<_>>(), "shift {shift}");
            let mut names: Vec<&str> = view.iter().map(|info| info.name.as_str()).collect();
            names.push("zz");
            names.sort();
            names.dedup();
            assert_eq!(known(&rows, "zz"), names);
        }
    }
}
