//! The event trace: a running hash of everything that happened, and optionally its text, line by line.
//!
//! Every event the engine processes is folded into an FNV-1a hash (time, node, kind tag, payload bytes), so two
//! runs of a seed are identical exactly when their hashes are; the text form is written only with `--trace`.

use std::io::Write;

use crate::event::Ms;

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// The trace of one run.
pub struct Trace {
    hash: u64,
    events: u64,
    out: Option<Box<dyn Write>>,
}

impl Default for Trace {
    fn default() -> Self {
        Trace::new(None)
    }
}

impl Trace {
    /// A trace that also writes its lines to `out`.
    pub fn new(out: Option<Box<dyn Write>>) -> Trace {
        Trace { hash: OFFSET, events: 0, out }
    }

    /// Whether lines are written (callers skip formatting otherwise).
    pub fn is_writing(&self) -> bool {
        self.out.is_some()
    }

    /// Records one event: `tag` names its kind, `payload` its content; `line` is only called when writing.
    pub fn record(&mut self, at: Ms, node: usize, tag: u8, payload: &[u8], line: impl FnOnce() -> String) {
        self.events += 1;
        self.eat(&at.to_le_bytes());
        self.eat(&(node as u64).to_le_bytes());
        self.eat(&[tag]);
        self.eat(payload);
        if let Some(out) = self.out.as_mut() {
            // A trace that cannot be written is a lost debugging aid, not a reason to change the run.
            let _ = writeln!(out, "{at:>9} n{node:<3} {}", line());
        }
    }

    fn eat(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.hash ^= u64::from(b);
            self.hash = self.hash.wrapping_mul(PRIME);
        }
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn flush(&mut self) {
        if let Some(out) = self.out.as_mut() {
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_field() {
        let hash = |at, node, tag, payload: &[u8]| {
            let mut t = Trace::default();
            t.record(at, node, tag, payload, String::new);
            t.hash()
        };
        let base = hash(1, 2, 3, b"x");
        assert_ne!(base, hash(2, 2, 3, b"x"));
        assert_ne!(base, hash(1, 3, 3, b"x"));
        assert_ne!(base, hash(1, 2, 4, b"x"));
        assert_ne!(base, hash(1, 2, 3, b"y"));
        assert_eq!(base, hash(1, 2, 3, b"x"));
    }
}
