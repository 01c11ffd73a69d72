//! The consistent-hash ring: which members hold a key, rebuilt locally from the live membership.
//!
//! Each member owns `vnodes_per_node` tokens on a 64-bit circle. A member's tokens are a splitmix64 stream seeded
//! with its `NodeId` (two crc32s of its name), so they depend on the name alone; a key sits at `key_hash(key)`,
//! the point of its Redis Cluster hash slot (`slots.rs`: 16384 points spread evenly, so a key's owners are its
//! slot's owners). (Raw crc32 of "name#i" is affine in its input, so every member's token set is an
//! xor-translate of every other's and the arcs cluster; the finalizer removes that structure.)
//! A key belongs to the first token at or after its position, wrapping; its preference list is the first n
//! distinct members met walking clockwise from there. Invariants: members are sorted and unique, token
//! positions are sorted and unique (a colliding position keeps the member whose name sorts first), so the ring,
//! its arcs and its digest depend only on the set of names and V, never on the order they were given in.

use std::collections::BTreeSet;
use std::sync::Arc;

use smallvec::SmallVec;

use super::version::NodeId;

/// Tokens per member unless configured otherwise. Random tokens give a member a share with a relative spread of
/// about 1/sqrt(V): at 256 only about half of 10-node name sets keep the busiest node within 1.10x of the mean,
/// at 1024 all measured ones do (`examples/ring_spread.rs`).
pub const DEFAULT_VNODES: usize = 1024;
/// Most tokens per member a ring accepts; larger requests are clamped.
pub const VNODES_MAX: usize = 4096;

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// The splitmix64 finalizer: a bijection on u64 that spreads every input bit over the whole output.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A key's position on the ring: the point of its hash slot (`slots::slot_point(slots::key_slot(key))`), so every
/// key of a slot has the slot's owners and lives in the slot's store bucket.
pub fn key_hash(key: &[u8]) -> u64 {
    super::slots::slot_point(super::slots::key_slot(key))
}

/// A hash of a key that spreads the keys of one slot (crc32 through the 64-bit finalizer): splits a bucket into
/// sub-buckets for anti-entropy, where every key of the bucket has the same ring position.
pub fn key_scatter(key: &[u8]) -> u64 {
    mix64(u64::from(crc32fast::hash(key)))
}

/// The position of a member's `index`-th token: element `index` of the splitmix64 stream seeded by its id.
pub fn token_position(name: &str, index: usize) -> u64 {
    token_at(NodeId::from_name(name).0, index)
}

/// Element `index` of the splitmix64 stream seeded with `seed` (the name's id, computed once per member).
fn token_at(seed: u64, index: usize) -> u64 {
    mix64(seed.wrapping_add((index as u64).wrapping_add(1).wrapping_mul(GOLDEN_GAMMA)))
}

/// An arc of the ring, `(start, end]` clockwise; `start == end` is the whole ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenRange {
    /// Exclusive start position.
    pub start: u64,
    /// Inclusive end position (a token).
    pub end: u64,
}

impl TokenRange {
    /// Whether a ring position lies in the arc.
    pub fn contains(&self, position: u64) -> bool {
        match self.start.cmp(&self.end) {
            std::cmp::Ordering::Less => self.start < position && position <= self.end,
            std::cmp::Ordering::Greater => position > self.start || position <= self.end,
            std::cmp::Ordering::Equal => true,
        }
    }

    /// The arc's length as a fraction of the ring.
    pub fn fraction(&self) -> f64 {
        let width = self.end.wrapping_sub(self.start);
        if width == 0 {
            1.0
        } else {
            width as f64 / 2f64.powi(64)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Token {
    position: u64,
    member: u32,
}

/// A consistent-hash ring over a set of member names. Immutable once built, so clones share it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    inner: Arc<RingData>,
}

#[derive(Debug, PartialEq, Eq)]
struct RingData {
    members: Vec<String>,
    /// `members` again, as shared names: preference lists hand them out without allocating a string each.
    shared: Vec<Arc<str>>,
    tokens: Vec<Token>,
    vnodes_per_node: usize,
    /// `digest()`, computed once (it depends only on the members and V).
    digest: u64,
    /// Two members' tokens fell on one position and one was dropped (an incremental rebuild cannot tell which
    /// token a departed member hid, so it starts over).
    collided: bool,
}

impl Ring {
    /// The ring of `members` (duplicates ignored) with `vnodes_per_node` tokens each, clamped to 1..=VNODES_MAX.
    pub fn new<S: AsRef<str>>(members: &[S], vnodes_per_node: usize) -> Ring {
        let vnodes_per_node = vnodes_per_node.clamp(1, VNODES_MAX);
        let members = sorted_names(members);
        let mut tokens = Vec::with_capacity(members.len().saturating_mul(vnodes_per_node));
        for (member, name) in members.iter().enumerate() {
            push_tokens(&mut tokens, name, index_u32(member), vnodes_per_node);
        }
        // Members are sorted by name, so (position, member) order breaks a position collision by name.
        tokens.sort_unstable_by_key(|t| (t.position, t.member));
        let before = tokens.len();
        tokens.dedup_by_key(|t| t.position);
        let collided = tokens.len() != before;
        Ring::assemble(members, tokens, vnodes_per_node, collided)
    }

    /// The ring of `members` with this ring's V: equal to `Ring::new(members, self.vnodes_per_node())`, built
    /// from this ring's tokens (kept members keep theirs, only joining members' tokens are computed and sorted).
    pub fn with_members<S: AsRef<str>>(&self, members: &[S]) -> Ring {
        let vnodes = self.inner.vnodes_per_node;
        let members = sorted_names(members);
        // Old member index -> new one (u32::MAX: gone); new indices of the members that joined.
        let mut renumber = vec![u32::MAX; self.inner.members.len()];
        let mut joined: Vec<usize> = Vec::new();
        let mut old = 0;
        for (new, name) in members.iter().enumerate() {
            while old < self.inner.members.len() && self.inner.members[old] < *name {
                old += 1;
            }
            if old < self.inner.members.len() && self.inner.members[old] == *name {
                renumber[old] = index_u32(new);
                old += 1;
            } else {
                joined.push(new);
            }
        }
        // A token hidden by a collision may have to come back: build from scratch (64-bit positions make it rare).
        if self.inner.collided {
            return Ring::new(&members, vnodes);
        }
        let mut fresh = Vec::with_capacity(joined.len() * vnodes);
        for &member in &joined {
            push_tokens(&mut fresh, &members[member], index_u32(member), vnodes);
        }
        fresh.sort_unstable_by_key(|t| (t.position, t.member));
        // Renumbering keeps the order of kept members, so the kept tokens stay sorted by (position, member).
        let kept = self.inner.tokens.iter().filter_map(|t| {
            let member = renumber[t.member as usize];
            (member != u32::MAX).then_some(Token { position: t.position, member })
        });
        let mut tokens: Vec<Token> = Vec::with_capacity(members.len().saturating_mul(vnodes));
        let mut collided = false;
        let mut push = |t: Token| match tokens.last() {
            Some(last) if last.position == t.position => collided = true,
            _ => tokens.push(t),
        };
        let mut fresh = fresh.into_iter().peekable();
        for t in kept {
            while let Some(f) = fresh.next_if(|f| (f.position, f.member) < (t.position, t.member)) {
                push(f);
            }
            push(t);
        }
        fresh.for_each(&mut push);
        Ring::assemble(members, tokens, vnodes, collided)
    }

    fn assemble(members: Vec<String>, tokens: Vec<Token>, vnodes_per_node: usize, collided: bool) -> Ring {
        let digest = ring_digest(&members, vnodes_per_node);
        let shared = members.iter().map(|m| Arc::from(m.as_str())).collect();
        Ring { inner: Arc::new(RingData { members, shared, tokens, vnodes_per_node, digest, collided }) }
    }

    /// The members, sorted by name.
    pub fn members(&self) -> &[String] {
        &self.inner.members
    }

    /// Tokens per member.
    pub fn vnodes_per_node(&self) -> usize {
        self.inner.vnodes_per_node
    }

    /// Whether the ring has no members (every preference list is empty).
    pub fn is_empty(&self) -> bool {
        self.inner.tokens.is_empty()
    }

    /// The first `n` distinct members clockwise from the key's position (fewer if the ring has fewer).
    pub fn preference_list(&self, key: &[u8], n: usize) -> Vec<&str> {
        self.preference_list_at(key_hash(key), n)
    }

    /// The first `n` distinct members clockwise from a ring position.
    pub fn preference_list_at(&self, position: u64, n: usize) -> Vec<&str> {
        let first = self.inner.tokens.partition_point(|t| t.position < position);
        self.walk(first, n).into_iter().map(|m| self.inner.members[m as usize].as_str()).collect()
    }

    /// `preference_list` as shared names (cloning one is a reference count, not a string copy).
    pub fn preference_names(&self, key: &[u8], n: usize) -> Vec<Arc<str>> {
        let position = key_hash(key);
        let first = self.inner.tokens.partition_point(|t| t.position < position);
        // On the stack: this runs for every write the node handles.
        let mut found: SmallVec<[u32; 8]> = SmallVec::new();
        self.walk_into(first, n, &mut found);
        found.iter().map(|&m| self.inner.shared[m as usize].clone()).collect()
    }

    /// The member that owns a key first (its coordinator of choice), if the ring is not empty.
    pub fn primary(&self, key: &[u8]) -> Option<&str> {
        let position = key_hash(key);
        let first = self.inner.tokens.partition_point(|t| t.position < position);
        let token = self.inner.tokens.get(first).or_else(|| self.inner.tokens.first())?;
        Some(self.inner.members[token.member as usize].as_str())
    }

    /// The arcs between consecutive tokens, in token order; every position in one arc has the same owners.
    pub fn arcs(&self) -> Vec<TokenRange> {
        (0..self.inner.tokens.len()).map(|i| self.arc(i)).collect()
    }

    /// Number of arcs (and tokens).
    pub fn arc_count(&self) -> usize {
        self.inner.tokens.len()
    }

    /// The end position of arc `i` of `arcs()`.
    pub fn arc_end(&self, i: usize) -> u64 {
        self.inner.tokens[i].position
    }

    /// How many arcs end before `position` (`arc_count()` when all do: the position is in the first arc).
    pub fn arcs_before(&self, position: u64) -> usize {
        self.inner.tokens.partition_point(|t| t.position < position)
    }

    /// The indices in `members()` of the first `n` owners of arc `i`, into `owners` (cleared first).
    pub fn arc_owners_into(&self, i: usize, n: usize, owners: &mut Vec<u32>) {
        owners.clear();
        self.walk_into(i, n, owners);
    }

    /// The arcs (indices into `arcs()`, ascending) among whose first `n` owners is member number `member`: found
    /// by walking back from each of its tokens while fewer than `n` other members were passed, so the cost
    /// grows with the member's tokens, not with the ring.
    pub fn arcs_owned_by(&self, member: u32, n: usize) -> Vec<usize> {
        let tokens = &self.inner.tokens;
        let n = n.min(self.inner.members.len());
        let len = tokens.len();
        let mut owned = Vec::new();
        if n == 0 {
            return owned;
        }
        let mut others: Vec<u32> = Vec::with_capacity(n);
        for t in (0..len).filter(|&t| tokens[t].member == member) {
            owned.push(t);
            others.clear();
            // Arc i is owned when the walk from i meets this token before n distinct other members; an earlier
            // token of the member's own ends the run (the walk from there meets that one first).
            for back in 1..len {
                let m = tokens[(t + len - back) % len].member;
                if m == member {
                    break;
                }
                if !others.contains(&m) {
                    others.push(m);
                }
                if others.len() >= n {
                    break;
                }
                owned.push((t + len - back) % len);
            }
        }
        owned.sort_unstable();
        owned
    }

    /// The first `n` owners of an arc from `arcs()` (for any other range: the owners of its end position).
    pub fn owners_of_range(&self, range: &TokenRange, n: usize) -> Vec<&str> {
        self.preference_list_at(range.end, n)
    }

    /// The arcs for which `member` is among the first `n` owners, adjacent arcs joined, in token order.
    pub fn ranges_of(&self, member: &str, n: usize) -> Vec<TokenRange> {
        let Ok(member) = self.inner.members.binary_search_by(|m| m.as_str().cmp(member)) else { return Vec::new() };
        let owned: Vec<bool> =
            (0..self.inner.tokens.len()).map(|i| self.walk(i, n).contains(&(member as u32))).collect();
        if owned.iter().all(|&o| o) {
            return match self.inner.tokens.first() {
                Some(t) => vec![TokenRange { start: t.position, end: t.position }],
                None => Vec::new(),
            };
        }
        // Start right after an arc the member does not own, so no run wraps past the end of the scan.
        let len = owned.len();
        let skip = owned.iter().position(|&o| !o).unwrap_or(0) + 1;
        let mut ranges: Vec<TokenRange> = Vec::new();
        let mut previous_owned = false;
        for i in (skip..skip + len).map(|i| i % len) {
            if owned[i] {
                let arc = self.arc(i);
                match ranges.last_mut() {
                    Some(run) if previous_owned => run.end = arc.end,
                    _ => ranges.push(arc),
                }
            }
            previous_owned = owned[i];
        }
        ranges.sort_unstable_by_key(|r| r.end);
        ranges
    }

    /// A digest of the ring's definition (member names and V): equal on every node with the same membership.
    pub fn digest(&self) -> u64 {
        self.inner.digest
    }

    /// The arc that ends at token `i`.
    fn arc(&self, i: usize) -> TokenRange {
        let previous = if i == 0 { self.inner.tokens.len() - 1 } else { i - 1 };
        TokenRange { start: self.inner.tokens[previous].position, end: self.inner.tokens[i].position }
    }

    /// Member indices of the first `n` distinct members from token `first` on (wrapping).
    fn walk(&self, first: usize, n: usize) -> Vec<u32> {
        let mut found = Vec::with_capacity(n.min(self.inner.members.len()));
        self.walk_into(first, n, &mut found);
        found
    }

    /// `walk`, appended to an empty `found` (a reused `Vec` or a stack `SmallVec`), without allocating.
    fn walk_into<V: Extend<u32> + std::ops::Deref<Target = [u32]>>(&self, first: usize, n: usize, found: &mut V) {
        let n = n.min(self.inner.members.len());
        let len = self.inner.tokens.len();
        for k in 0..len {
            if found.len() == n {
                break;
            }
            let member = self.inner.tokens[(first + k) % len].member;
            if !found.contains(&member) {
                found.extend(std::iter::once(member));
            }
        }
    }
}

/// Names sorted and without duplicates.
fn sorted_names<S: AsRef<str>>(members: &[S]) -> Vec<String> {
    let names: BTreeSet<&str> = members.iter().map(AsRef::as_ref).collect();
    names.into_iter().map(str::to_owned).collect()
}

fn index_u32(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// Append the `vnodes` tokens of member number `member` named `name`.
fn push_tokens(tokens: &mut Vec<Token>, name: &str, member: u32, vnodes: usize) {
    let seed = NodeId::from_name(name).0;
    tokens.extend((0..vnodes).map(|i| Token { position: token_at(seed, i), member }));
}

/// The digest of a ring's definition: its sorted member names and V.
fn ring_digest(members: &[String], vnodes_per_node: usize) -> u64 {
    const SCHEME: u8 = 1;
    let mut hash = crate::core::digest::Fnv64::default();
    let mut eat = |bytes: &[u8]| hash.eat(bytes);
    eat(&[SCHEME]);
    eat(&(vnodes_per_node as u64).to_le_bytes());
    for name in members {
        eat(&(name.len() as u64).to_le_bytes());
        eat(name.as_bytes());
    }
    hash.finish()
}

#[cfg(test)]
mod tests;
