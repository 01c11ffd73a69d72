//! Ring tests: hand-built rings, then properties over arbitrary memberships (order independence, distinct
//! preference lists, minimal movement on join and leave, ranges that agree with preference lists).

use proptest::prelude::*;

use super::*;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("node-{i}")).collect()
}

fn keys(count: usize) -> impl Iterator<Item = Vec<u8>> {
    (0..count).map(|i| format!("key:{i}").into_bytes())
}

#[test]
fn empty_ring_has_no_owners() {
    let ring = Ring::new::<&str>(&[], DEFAULT_VNODES);
    assert!(ring.is_empty());
    assert!(ring.preference_list(b"k", 3).is_empty());
    assert_eq!(ring.primary(b"k"), None);
    assert!(ring.arcs().is_empty());
    assert!(ring.ranges_of("a", 1).is_empty());
}

#[test]
fn single_member_owns_the_whole_ring() {
    let ring = Ring::new(&["solo"], 8);
    assert_eq!(ring.preference_list(b"k", 3), vec!["solo"]);
    let ranges = ring.ranges_of("solo", 1);
    assert_eq!(ranges.len(), 1);
    assert_eq!(ranges[0].start, ranges[0].end);
    assert!(ranges[0].contains(0) && ranges[0].contains(u64::MAX));
    assert_eq!(ranges[0].fraction(), 1.0);
}

#[test]
fn vnodes_are_clamped_and_duplicates_ignored() {
    let ring = Ring::new(&["a", "a", "b"], 0);
    assert_eq!(ring.vnodes_per_node(), 1);
    assert_eq!(ring.members(), ["a", "b"]);
    assert_eq!(ring.arcs().len(), 2);
    assert_eq!(Ring::new(&["a"], usize::MAX).vnodes_per_node(), VNODES_MAX);
}

#[test]
fn preference_list_is_capped_at_member_count_and_starts_with_primary() {
    let ring = Ring::new(&names(4), 16);
    for key in keys(200) {
        let list = ring.preference_list(&key, 10);
        assert_eq!(list.len(), 4);
        assert_eq!(Some(list[0]), ring.primary(&key));
        assert!(ring.preference_list(&key, 0).is_empty());
    }
}

#[test]
fn preference_names_and_arc_owners_agree_with_preference_list() {
    let empty = Ring::new::<&str>(&[], DEFAULT_VNODES);
    assert!(empty.preference_names(b"k", 3).is_empty());
    let ring = Ring::new(&names(12), 16);
    let mut owners = vec![99, 98];
    for key in keys(300) {
        for n in [0, 1, 3, 12, 20] {
            let list = ring.preference_list(&key, n);
            let shared = ring.preference_names(&key, n);
            assert_eq!(shared.iter().map(|s| &**s).collect::<Vec<&str>>(), list, "n = {n}");
        }
    }
    for i in 0..ring.arc_count() {
        // A reused buffer is cleared first.
        ring.arc_owners_into(i, 3, &mut owners);
        let by_name: Vec<&str> = owners.iter().map(|&m| ring.members()[m as usize].as_str()).collect();
        assert_eq!(by_name, ring.preference_list_at(ring.arc_end(i), 3), "arc {i}");
    }
}

#[test]
fn token_range_contains_handles_wrap() {
    let plain = TokenRange { start: 10, end: 20 };
    assert!(!plain.contains(10) && plain.contains(11) && plain.contains(20) && !plain.contains(21));
    let wrap = TokenRange { start: u64::MAX - 1, end: 5 };
    assert!(wrap.contains(u64::MAX) && wrap.contains(0) && wrap.contains(5) && !wrap.contains(6));
}

#[test]
fn arcs_partition_the_ring() {
    let ring = Ring::new(&names(5), 32);
    let total: f64 = ring.arcs().iter().map(TokenRange::fraction).sum();
    assert!((total - 1.0).abs() < 1e-9);
}

#[test]
fn every_key_is_in_exactly_the_ranges_of_its_replicas() {
    let ring = Ring::new(&names(6), 32);
    let ranges: Vec<(String, Vec<TokenRange>)> =
        ring.members().iter().map(|m| (m.clone(), ring.ranges_of(m, 3))).collect();
    for key in keys(500) {
        let list = ring.preference_list(&key, 3);
        for (member, member_ranges) in &ranges {
            let inside = member_ranges.iter().any(|r| r.contains(key_hash(&key)));
            assert_eq!(inside, list.contains(&member.as_str()), "{member}");
        }
    }
}

#[test]
fn mixed_tokens_spread_keys_within_target_at_1024_vnodes() {
    let ring = Ring::new(&names(10), 1024);
    let mut load = std::collections::BTreeMap::<&str, f64>::new();
    for arc in ring.arcs() {
        *load.entry(ring.owners_of_range(&arc, 1)[0]).or_default() += arc.fraction();
    }
    let max = load.values().cloned().fold(0.0, f64::max);
    assert!(max * 10.0 <= 1.10, "max share {max}");
}

fn arb_names() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::btree_set("[a-z]{1,3}-[0-9]{1,2}", 1..9).prop_map(|s| s.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn same_membership_in_any_order_gives_same_ring(members in arb_names(), seed in any::<u64>()) {
        let mut shuffled = members.clone();
        // A deterministic shuffle driven by the seed, plus a duplicate.
        shuffled.sort_by_key(|m| mix64(seed ^ key_hash(m.as_bytes())));
        shuffled.push(members[0].clone());
        let a = Ring::new(&members, 16);
        let b = Ring::new(&shuffled, 16);
        prop_assert_eq!(a.digest(), b.digest());
        prop_assert_eq!(&a, &b);
    }

    #[test]
    fn preference_lists_hold_n_distinct_members(members in arb_names(), n in 0usize..12, key in any::<Vec<u8>>()) {
        let ring = Ring::new(&members, 16);
        let list = ring.preference_list(&key, n);
        prop_assert_eq!(list.len(), n.min(members.len()));
        let distinct: BTreeSet<&str> = list.iter().copied().collect();
        prop_assert_eq!(distinct.len(), list.len());
    }

    #[test]
    fn join_moves_keys_only_to_the_new_member(members in arb_names(), joiner in "[A-Z]{2}", n in 1usize..4) {
        let before = Ring::new(&members, 16);
        let mut grown = members.clone();
        grown.push(joiner.clone());
        let after = Ring::new(&grown, 16);
        prop_assert_ne!(before.digest(), after.digest());
        for key in keys(300) {
            let old = before.preference_list(&key, n);
            let new = after.preference_list(&key, n);
            // Removing the joiner from the new list leaves a prefix of the old one.
            let kept: Vec<&str> = new.iter().copied().filter(|m| *m != joiner).collect();
            prop_assert_eq!(&kept[..], &old[..kept.len()]);
        }
    }

    #[test]
    fn leave_moves_only_the_leavers_keys(members in arb_names(), n in 1usize..4, pick in any::<prop::sample::Index>()) {
        let leaver = members[pick.index(members.len())].clone();
        let before = Ring::new(&members, 16);
        let shrunk: Vec<&String> = members.iter().filter(|m| **m != leaver).collect();
        let after = Ring::new(&shrunk, 16);
        for key in keys(300) {
            let old = before.preference_list(&key, n);
            let new = after.preference_list(&key, n);
            let kept: Vec<&str> = old.iter().copied().filter(|m| *m != leaver).collect();
            prop_assert_eq!(&kept[..], &new[..kept.len()]);
        }
    }

    #[test]
    fn rebuilding_from_another_ring_equals_building_anew(
        before in arb_names(),
        after in arb_names(),
        vnodes in 1usize..40,
    ) {
        let old = Ring::new(&before, vnodes);
        let rebuilt = old.with_members(&after);
        let fresh = Ring::new(&after, vnodes);
        prop_assert_eq!(rebuilt.digest(), fresh.digest());
        prop_assert_eq!(&rebuilt, &fresh);
        prop_assert_eq!(&Ring::new::<&str>(&[], vnodes).with_members(&after), &fresh);
        prop_assert_eq!(&fresh.with_members::<&str>(&[]), &Ring::new::<&str>(&[], vnodes));
    }

    #[test]
    fn arcs_owned_by_agree_with_every_arcs_owners(members in arb_names(), n in 0usize..5, vnodes in 1usize..20) {
        let ring = Ring::new(&members, vnodes);
        let mut row = Vec::new();
        for member in 0..members.len() as u32 {
            let expected: Vec<usize> = (0..ring.arc_count())
                .filter(|&arc| {
                    ring.arc_owners_into(arc, n, &mut row);
                    row.contains(&member)
                })
                .collect();
            prop_assert_eq!(ring.arcs_owned_by(member, n), expected);
        }
    }
}
