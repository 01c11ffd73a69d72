//! Redis Cluster hash slots placed on Shoal's ring.
//!
//! A key's slot is Redis Cluster's: CRC16/XMODEM of the key, or of its `{hash tag}` (the bytes between the first
//! `{` and the first `}` after it, when not empty), modulo 16384. Every slot has one point on the ring,
//! `slot_point`: the 16384 points are spread evenly, slot `s` at `s * 2^50`, which is also the first position of
//! store bucket `s`. A key sits at its slot's point (`ring::key_hash`), so a slot's owners, the first N distinct
//! members clockwise from its point, are the owners of every key in it, and a slot's keys are exactly one store
//! bucket. Nothing is assigned or gossiped: a node derives the slot map from the ring it builds from its own view
//! of the membership, so nodes that see the same members compute the same map.

use sha2::{Digest, Sha256};

use super::ring::Ring;
use super::store::Store;
use super::Millis;

/// Number of hash slots, as in Redis Cluster.
pub const SLOTS: usize = 16384;

/// Bits between a slot number and its ring point (`64 - log2(SLOTS)`).
const POINT_SHIFT: u32 = 64 - SLOTS.trailing_zeros();

/// CRC16/XMODEM (polynomial 0x1021, initial value 0, no reflection): the checksum Redis Cluster hashes keys with.
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &b| (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)])
}

const CRC16_TABLE: [u16; 256] = crc16_table();

const fn crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// The part of a key that is hashed: its hash tag when it has a non-empty one, else the whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else { return key };
    match key[open + 1..].iter().position(|&b| b == b'}') {
        Some(len) if len > 0 => &key[open + 1..open + 1 + len],
        _ => key,
    }
}

/// A key's hash slot, as Redis Cluster computes it.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (SLOTS as u16 - 1)
}

/// The ring position of a slot (and of every key in it).
pub fn slot_point(slot: u16) -> u64 {
    u64::from(slot) << POINT_SHIFT
}

/// A member's Redis Cluster node id: 40 lower-case hex digits derived from its name, so every node names a member
/// alike and the id stays the same for as long as the name does.
pub fn node_id(name: &str) -> String {
    let digest = Sha256::new().chain_update(b"shoal-node-id\0").chain_update(name.as_bytes()).finalize();
    digest.iter().take(20).map(|b| format!("{b:02x}")).collect()
}

/// The live keys of `slot` in `store` (its store bucket; none for a slot out of range).
pub fn slot_keys(store: &Store, slot: u16, now: Millis) -> impl Iterator<Item = &[u8]> {
    let bucket = (usize::from(slot) < SLOTS).then(|| store.bucket_entries(usize::from(slot)));
    bucket.into_iter().flatten().filter(move |(_, e)| e.is_value() && !e.is_expired(now)).map(|(k, _)| k)
}

/// Consecutive slots with the same owners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    /// First slot.
    pub start: u16,
    /// Last slot (inclusive).
    pub end: u16,
    /// The owners, first (master) first, as indices into the ring's `members()`.
    pub owners: Vec<u32>,
}

/// The owners of `slot` on `ring`: the first `n` distinct members clockwise from its point (names).
pub fn slot_owners(ring: &Ring, slot: u16, n: usize) -> Vec<&str> {
    ring.preference_list_at(slot_point(slot), n)
}

/// Every slot of `ring` with its first `n` owners, adjacent slots with the same owners (in the same order)
/// joined: the ranges cover 0..=16383 in order when the ring has members, and are empty otherwise.
pub fn slot_ranges(ring: &Ring, n: usize) -> Vec<SlotRange> {
    let mut ranges: Vec<SlotRange> = Vec::new();
    if ring.is_empty() {
        return ranges;
    }
    let arcs = ring.arc_count();
    let mut owners = Vec::with_capacity(n);
    for slot in 0..SLOTS as u16 {
        // The arc holding the point: the first token at or after it, wrapping past the last one.
        let arc = ring.arcs_before(slot_point(slot)) % arcs;
        ring.arc_owners_into(arc, n, &mut owners);
        match ranges.last_mut() {
            Some(last) if last.owners == owners => last.end = slot,
            _ => ranges.push(SlotRange { start: slot, end: slot, owners: owners.clone() }),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ring::key_hash;

    #[test]
    fn slots_agree_with_redis_cluster() {
        // Vectors from the Redis Cluster specification and `CLUSTER KEYSLOT` on redis-server 7.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(key_slot(b""), 0);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"{user1000}.followers"));
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // An empty tag hashes the whole key; only the first `{` and the first `}` after it count.
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"{no close"), b"{no close");
        assert_eq!(hash_tag(b"}{x}"), b"x");
    }

    #[test]
    fn keys_sit_at_their_slot_point_which_starts_their_store_bucket() {
        for key in [&b"foo"[..], b"{user1000}.x", b"", b"k:123"] {
            let slot = key_slot(key);
            assert_eq!(key_hash(key), slot_point(slot));
            assert_eq!(crate::core::store::bucket_of(key), usize::from(slot));
            assert_eq!(crate::core::store::bucket_start(usize::from(slot)), slot_point(slot));
        }
        assert_eq!(slot_point(16383), 16383u64 << 50);
    }

    #[test]
    fn node_ids_are_40_hex_digits_and_depend_on_the_name_only() {
        let id = node_id("n0");
        assert_eq!(id.len(), 40);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(id, node_id("n0"));
        assert_ne!(id, node_id("n1"));
    }

    #[test]
    fn ranges_cover_every_slot_once_and_agree_with_each_slot_and_key() {
        let names: Vec<String> = (0..5).map(|i| format!("node-{i}")).collect();
        let ring = Ring::new(&names, 64);
        let ranges = slot_ranges(&ring, 3);
        assert_eq!(ranges.first().map(|r| r.start), Some(0));
        assert_eq!(ranges.last().map(|r| r.end), Some(16383));
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].end + 1, pair[1].start);
            assert_ne!(pair[0].owners, pair[1].owners, "adjacent ranges with the same owners are joined");
        }
        let member = |i: &u32| ring.members()[*i as usize].as_str();
        for range in &ranges {
            for slot in [range.start, range.end] {
                let owners: Vec<&str> = range.owners.iter().map(member).collect();
                assert_eq!(owners, slot_owners(&ring, slot, 3));
            }
        }
        for i in 0..200 {
            let key = format!("key:{i}");
            let slot = key_slot(key.as_bytes());
            assert_eq!(ring.preference_list(key.as_bytes(), 3), slot_owners(&ring, slot, 3), "{key}");
        }
        assert!(slot_ranges(&Ring::new::<&str>(&[], 8), 3).is_empty());
    }

    #[test]
    fn one_member_owns_every_slot_in_one_range() {
        let ring = Ring::new(&["solo"], 16);
        assert_eq!(slot_ranges(&ring, 3), vec![SlotRange { start: 0, end: 16383, owners: vec![0] }]);
    }
}
