//! A fenced resource: the storage a lock protects, which checks the fencing token of every write.
//!
//! It accepts a write whose token is at least the highest it has accepted (the same holder writes many times
//! with one token) and rejects any lower one, so a holder that lost its lock without knowing (a pause, a
//! partition) cannot overwrite the work of a later holder once that one has written.

/// One fenced resource and its counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FencedResource {
    /// The highest token accepted so far (0: none).
    pub highest: u64,
    /// Writes accepted.
    pub accepted: u64,
    /// Writes rejected for a token below `highest`.
    pub rejected: u64,
}

impl FencedResource {
    /// A resource that has seen no write.
    pub fn new() -> FencedResource {
        FencedResource::default()
    }

    /// A write fenced with `token`: accepted (true) when `token` is not below the highest accepted before.
    pub fn write(&mut self, token: u64) -> bool {
        if token < self.highest {
            self.rejected += 1;
            return false;
        }
        self.highest = token;
        self.accepted += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_equal_and_higher_tokens_and_rejects_lower_ones() {
        let mut r = FencedResource::new();
        assert!(r.write(5));
        assert!(r.write(5), "the same holder writes again");
        assert!(r.write(9));
        assert!(!r.write(7), "an older holder is fenced off");
        assert!(r.write(9));
        assert_eq!((r.highest, r.accepted, r.rejected), (9, 4, 1));
    }
}
