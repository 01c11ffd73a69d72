//! Replica convergence (liveness): after the heal and quiescence, every key's live owners hold the same copy.
//!
//! The checker gets, for each key, what every live node says: the key's owners as its ring sees them and its own
//! raw copy (`Node::local_entry`: values, tombstones and eviction markers with their vectors and expiry). All live
//! nodes must name the same owners, every owner must be live, and every owner's copy must be identical (kind,
//! value, vector, expiry). A value whose TTL, or a tombstone whose grace, has passed on the most advanced clock
//! among the owners counts as absent: replicas drop expired entries at their own pace, by their own clocks. A node
//! that is no owner may keep a copy only if the owners' version covers it (it hands newer ones over first). What
//! the owners agree on is the key's final state, which the write checkers judge.

use std::collections::BTreeMap;

use shoal::core::replication::{EntryKind, WireEntry};
use shoal::core::vversion::Relation;
use shoal::core::Millis;

use super::{Kind, Violation};
use crate::event::Ms;

/// One live node's view of one key.
#[derive(Debug, Clone, PartialEq)]
pub struct Copy {
    /// The node's name.
    pub node: String,
    /// The key's owners as this node's ring sees them.
    pub owners: Vec<String>,
    /// The node's own raw copy of the key.
    pub entry: Option<WireEntry>,
    /// The node's clock.
    pub now: Millis,
}

/// Every live node's view of one key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyCopies {
    /// The key (workload numbering).
    pub key: u8,
    /// One per live node.
    pub copies: Vec<Copy>,
}

/// The agreed state of every key (absent or expired: `None`).
pub type Finals = BTreeMap<u8, Option<WireEntry>>;

/// The entry read as absent once its expiry (a value's TTL, a marker's grace) has passed at `now`; an eviction
/// marker reads as absent too (replicas agree on it as on absence: it adds nothing to their digests, so
/// anti-entropy never sends it to a replica without it, and it only stops the evicted version coming back).
pub fn normalized(entry: &Option<WireEntry>, now: Millis) -> Option<WireEntry> {
    match entry {
        Some(e) if e.expire_at_ms != 0 && e.expire_at_ms <= now => None,
        Some(e) if e.kind == EntryKind::Evicted => None,
        other => other.clone(),
    }
}

/// A short description of a copy for violation details.
pub fn describe(entry: &Option<WireEntry>) -> String {
    match entry {
        None => "none".to_string(),
        Some(e) => {
            let vector: Vec<String> =
                e.vector.entries().iter().map(|(n, t)| format!("{:04x}:{}", n.0 >> 48, t.0)).collect();
            let value = if e.value.len() > 48 {
                format!("{:?}... ({} bytes)", String::from_utf8_lossy(&e.value[..32]), e.value.len())
            } else {
                format!("{:?}", String::from_utf8_lossy(&e.value))
            };
            format!("{:?} {value} [{}] expire {}", e.kind, vector.join(" "), e.expire_at_ms)
        }
    }
}

/// The convergence check: the final state of every key, or what still differs.
pub fn converged(at: Ms, keys: &[KeyCopies]) -> Result<Finals, Vec<Violation>> {
    let mut finals = Finals::new();
    let mut found = Vec::new();
    for key in keys {
        match key_state(key) {
            Ok(entry) => {
                finals.insert(key.key, entry);
            }
            Err((kind, detail)) => found.push(Violation { kind, at, detail: format!("k{}: {detail}", key.key) }),
        }
    }
    if found.is_empty() {
        Ok(finals)
    } else {
        Err(found)
    }
}

fn key_state(key: &KeyCopies) -> Result<Option<WireEntry>, (Kind, String)> {
    let Some(first) = key.copies.first() else { return Ok(None) };
    if let Some(other) = key.copies.iter().find(|c| c.owners != first.owners) {
        let detail = format!("{} says owners {:?}, {} says {:?}", first.node, first.owners, other.node, other.owners);
        return Err((Kind::OwnersDisagree, detail));
    }
    if first.owners.is_empty() {
        return Err((Kind::OwnersDisagree, "no owners".to_string()));
    }
    let mut owners = Vec::with_capacity(first.owners.len());
    for name in &first.owners {
        match key.copies.iter().find(|c| &c.node == name) {
            Some(copy) => owners.push(copy),
            None => return Err((Kind::OwnersDisagree, format!("owner {name} is not a live node"))),
        }
    }
    let now = owners.iter().map(|c| c.now).max().unwrap_or(0);
    let entries: Vec<Option<WireEntry>> = owners.iter().map(|c| normalized(&c.entry, now)).collect();
    if entries.iter().all(|e| *e == entries[0]) {
        // A node that is no owner may still hold a version the owners lack (written while it owned the key, in a
        // partition): it hands it over before dropping it, so the key has not converged until the owners' copy
        // covers it.
        let covers = |e: &WireEntry| {
            entries[0]
                .as_ref()
                .is_some_and(|f| matches!(f.vector.compare(&e.vector), Relation::After | Relation::Equal))
        };
        let pending = key
            .copies
            .iter()
            .filter(|c| !first.owners.contains(&c.node))
            .find_map(|c| normalized(&c.entry, now).filter(|e| !covers(e)).map(|e| (c, e)));
        if let Some((c, e)) = pending {
            let detail = format!(
                "non-owner {} holds {} that the owners' {} does not cover",
                c.node,
                describe(&Some(e)),
                describe(&entries[0])
            );
            return Err((Kind::ReplicasDiverged, detail));
        }
        return Ok(entries[0].clone());
    }
    let listed: Vec<String> =
        owners.iter().zip(&entries).map(|(c, e)| format!("{}: {}", c.node, describe(e))).collect();
    Err((Kind::ReplicasDiverged, listed.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use shoal::core::clock::Timestamp;
    use shoal::core::version::NodeId;
    use shoal::core::vversion::VersionVector;

    fn value(v: &str, time: u64, expire_at_ms: Millis) -> Option<WireEntry> {
        let mut vector = VersionVector::new();
        vector.bump(NodeId(1), Timestamp(time));
        Some(WireEntry { kind: EntryKind::Value, value: Bytes::from(v.to_string()), vector, expire_at_ms })
    }

    fn copies(entries: [Option<WireEntry>; 3]) -> KeyCopies {
        let owners: Vec<String> = ["n0", "n1", "n2"].map(String::from).to_vec();
        let mut copies: Vec<Copy> = entries
            .into_iter()
            .enumerate()
            .map(|(i, entry)| Copy { node: format!("n{i}"), owners: owners.clone(), entry, now: 1_000 + i as u64 })
            .collect();
        copies.push(Copy { node: "n3".to_string(), owners, entry: None, now: 1_000 });
        KeyCopies { key: 4, copies }
    }

    #[test]
    fn identical_owner_copies_converge_and_give_the_final_state() {
        let keys = [copies([value("7", 5, 0), value("7", 5, 0), value("7", 5, 0)])];
        let finals = converged(0, &keys).expect("converged");
        assert_eq!(finals[&4], value("7", 5, 0));
    }

    #[test]
    fn a_diverged_replica_is_flagged() {
        let keys = [copies([value("7", 5, 0), value("7", 5, 0), value("6", 4, 0)])];
        let found = converged(9, &keys).expect_err("diverged");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, Kind::ReplicasDiverged);
        assert!(found[0].detail.contains("k4") && found[0].detail.contains("n2"), "{}", found[0].detail);
        // Same value, different vector or expiry: still diverged.
        let keys = [copies([value("7", 5, 0), value("7", 6, 0), value("7", 5, 0)])];
        assert!(converged(0, &keys).is_err());
        let keys = [copies([value("7", 5, 0), value("7", 5, 0), value("7", 5, 99_999)])];
        assert!(converged(0, &keys).is_err());
        let keys = [copies([value("7", 5, 0), None, value("7", 5, 0)])];
        assert!(converged(0, &keys).is_err());
    }

    #[test]
    fn an_expired_value_or_tombstone_equals_absence() {
        let keys = [copies([value("7", 5, 1_001), None, value("7", 5, 1_001)])];
        assert_eq!(converged(0, &keys).expect("converged")[&4], None);
        let mut tomb = value("", 5, 1_002);
        if let Some(t) = tomb.as_mut() {
            t.kind = EntryKind::Tombstone;
        }
        let keys = [copies([tomb.clone(), tomb, None])];
        assert_eq!(converged(0, &keys).expect("converged")[&4], None);
    }

    #[test]
    fn a_non_owner_holding_a_newer_version_is_not_converged() {
        let mut keys = [copies([value("7", 5, 0), value("7", 5, 0), value("7", 5, 0)])];
        keys[0].copies[3].entry = value("8", 9, 0);
        let found = converged(0, &keys).expect_err("non-owner ahead");
        assert!(found[0].detail.contains("non-owner n3"), "{}", found[0].detail);
        // An older copy left on a non-owner is harmless.
        keys[0].copies[3].entry = value("6", 4, 0);
        assert_eq!(converged(0, &keys).expect("converged")[&4], value("7", 5, 0));
    }

    #[test]
    fn owners_must_agree_and_be_live() {
        let mut keys = [copies([None, None, None])];
        keys[0].copies[3].owners = vec!["n0".into(), "n1".into(), "n3".into()];
        assert_eq!(converged(0, &keys).expect_err("disagree")[0].kind, Kind::OwnersDisagree);
        let mut keys = [copies([None, None, None])];
        for c in keys[0].copies.iter_mut() {
            c.owners = vec!["n0".into(), "n1".into(), "n9".into()];
        }
        assert_eq!(converged(0, &keys).expect_err("ghost owner")[0].kind, Kind::OwnersDisagree);
    }
}
