//! Byte budgets for what replication sends in bulk: how many bytes of entries one `Put` carries, and how many
//! one step of a repair stream (an anti-entropy exchange, a hint round, a hand-off sweep) sends to one peer.
//!
//! Entry counts alone do not bound a message: a thousand 200 KB values are a 200 MB `Put`, beyond the 64 MiB
//! frame limit and the peer queue's byte bound, so the runtime could not send it. Every bulk path therefore cuts
//! by estimated bytes (`entry_bytes`): a `Put` holds at most `PUT_BYTES_MAX` (or one entry, whatever its size:
//! a value larger than a frame travels in parts, see `codec`), and a step sends at most `STEP_BYTES_MAX` to one
//! peer; what is left waits for the next step, which the repair logic schedules (anti-entropy chases a peer that
//! differed, hints stay until acknowledged, the sweep resumes at its cursor). Invariants: no batch is empty, the
//! entries keep their order, and a batch goes over `PUT_BYTES_MAX` only when it is a single entry.

use bytes::Bytes;

use super::wire::WireEntry;

/// Most estimated bytes of entries in one `Put` of a bulk path (one larger entry still goes, alone).
pub const PUT_BYTES_MAX: usize = 4 << 20;
/// Most estimated bytes of entries one repair step sends to one peer: four concurrent streams to one peer
/// (both directions of anti-entropy, hints, hand-off) stay within the peer queue's 64 MiB bound.
pub const STEP_BYTES_MAX: usize = 16 << 20;
// A bulk `Put` and a step stay far below the frame limit (a frame holds a step several times over).
const _: () = assert!(PUT_BYTES_MAX * 8 <= super::codec::FRAME_BYTES_MAX_DEFAULT);
const _: () = assert!(STEP_BYTES_MAX * 4 <= super::codec::FRAME_BYTES_MAX_DEFAULT);
/// Estimated bytes of one entry's fixed fields: kind, expiry, lengths.
const ENTRY_OVERHEAD_BYTES: usize = 16;
/// Estimated bytes of one version vector entry (node id and timestamp).
const VECTOR_ENTRY_BYTES: usize = 16;

/// The estimated encoded size of one entry with its key.
pub fn entry_bytes(key: &[u8], entry: &WireEntry) -> usize {
    key.len() + entry.value.len() + VECTOR_ENTRY_BYTES * entry.vector.entries().len() + ENTRY_OVERHEAD_BYTES
}

/// Cut `entries` into batches of at most `bytes_max` estimated bytes each (a larger entry is a batch alone).
pub fn split_by_bytes(entries: Vec<(Bytes, WireEntry)>, bytes_max: usize) -> Vec<Vec<(Bytes, WireEntry)>> {
    let mut batches: Vec<Vec<(Bytes, WireEntry)>> = Vec::new();
    let mut bytes = 0;
    for (key, entry) in entries {
        let size = entry_bytes(&key, &entry);
        match batches.last_mut() {
            Some(batch) if bytes + size <= bytes_max => {
                bytes += size;
                batch.push((key, entry));
            }
            _ => {
                bytes = size;
                batches.push(vec![(key, entry)]);
            }
        }
    }
    batches
}

/// A running byte budget: `take` admits items while the budget lasts (the first always), none after a refusal.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    left_bytes: usize,
    first: bool,
    refused: bool,
}

impl Budget {
    /// A budget of `bytes_max` bytes.
    pub fn new(bytes_max: usize) -> Budget {
        Budget { left_bytes: bytes_max, first: true, refused: false }
    }

    /// Whether an item of `bytes` still fits; when it does, it is counted.
    pub fn take(&mut self, bytes: usize) -> bool {
        if !self.refused && (self.first || bytes <= self.left_bytes) {
            self.first = false;
            self.left_bytes = self.left_bytes.saturating_sub(bytes);
            true
        } else {
            self.refused = true;
            false
        }
    }

    /// Whether an item was refused (the step left something for later).
    pub fn exhausted(&self) -> bool {
        self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::replication::EntryKind;
    use crate::core::vversion::VersionVector;

    fn entry(value_bytes: usize) -> WireEntry {
        WireEntry {
            kind: EntryKind::Value,
            value: Bytes::from(vec![7u8; value_bytes]),
            vector: VersionVector::default(),
            expire_at_ms: 0,
        }
    }

    #[test]
    fn batches_stay_under_the_bound_except_single_large_entries() {
        let sizes = [10, 500, 300, 2_000, 1, 1, 990, 1_000];
        let entries: Vec<_> =
            sizes.iter().enumerate().map(|(i, &s)| (Bytes::from(format!("k{i}")), entry(s))).collect();
        let batches = split_by_bytes(entries.clone(), 1_024);
        let flat: Vec<_> = batches.iter().flatten().cloned().collect();
        assert_eq!(flat, entries, "order and content kept");
        for batch in &batches {
            assert!(!batch.is_empty());
            let bytes: usize = batch.iter().map(|(k, e)| entry_bytes(k, e)).sum();
            assert!(bytes <= 1_024 || batch.len() == 1, "{bytes} bytes in {} entries", batch.len());
        }
        assert!(batches.iter().any(|b| b.len() == 1 && b[0].1.value.len() == 2_000));
    }

    #[test]
    fn a_budget_admits_the_first_item_whatever_its_size_then_stops() {
        let mut budget = Budget::new(100);
        assert!(!budget.exhausted());
        assert!(budget.take(1_000));
        assert!(!budget.take(1));
        assert!(budget.exhausted());
        let mut budget = Budget::new(100);
        assert!(budget.take(60));
        assert!(budget.take(40));
        assert!(!budget.exhausted());
        assert!(!budget.take(1));
        assert!(budget.exhausted());
        assert!(!budget.take(0), "nothing more once one item was refused");
        assert!(budget.exhausted());
    }
}
