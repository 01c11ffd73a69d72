//! The hybrid logical clock (HLC) every node stamps its writes with.
//!
//! A timestamp packs 48 bits of physical milliseconds and 16 bits of logical counter into a `u64`, so plain
//! integer order is causal order. The clock never goes backwards: when the wall clock stalls or jumps back, the
//! logical counter advances instead; when it receives a timestamp from the future it advances past it, unless it
//! is more than a bound ahead of the local wall clock (`observe_within`): one absurd timestamp from a peer (a
//! broken clock, a forged message, `u64::MAX`) would otherwise drag the clock to the end of time, after which
//! this node's writes stop winning. Such a timestamp is refused and the caller drops what carried it.

use serde::{Deserialize, Serialize};

use super::Millis;

/// A hybrid logical clock timestamp: `physical_ms << 16 | logical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Timestamp(pub u64);

const LOGICAL_BITS: u32 = 16;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;
const PHYSICAL_MAX: u64 = (1 << 48) - 1;

impl Timestamp {
    /// The timestamp for a physical time with a zero logical counter.
    pub fn from_millis(ms: Millis) -> Timestamp {
        Timestamp(ms.min(PHYSICAL_MAX) << LOGICAL_BITS)
    }

    /// The physical milliseconds part.
    pub fn millis(self) -> Millis {
        self.0 >> LOGICAL_BITS
    }

    /// The logical counter part.
    pub fn logical(self) -> u16 {
        (self.0 & LOGICAL_MASK) as u16
    }
}

/// A timestamp from elsewhere that is further ahead of the local wall clock than the bound allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timestamp {ahead_ms} ms ahead of the local clock (at most {limit_ms} ms allowed)")]
pub struct TooFarAhead {
    /// How far ahead of the local wall clock the timestamp's physical part is.
    pub ahead_ms: Millis,
    /// The bound it exceeds.
    pub limit_ms: Millis,
}

impl Timestamp {
    /// Ok when this timestamp's physical part is at most `limit_ms` ahead of `wall_ms`.
    pub fn within_drift(self, wall_ms: Millis, limit_ms: Millis) -> Result<(), TooFarAhead> {
        let ahead_ms = self.millis().saturating_sub(wall_ms);
        if ahead_ms > limit_ms {
            return Err(TooFarAhead { ahead_ms, limit_ms });
        }
        Ok(())
    }
}

/// One node's hybrid logical clock.
#[derive(Debug, Clone, Default)]
pub struct Hlc {
    last: Timestamp,
}

impl Hlc {
    /// A clock that has issued nothing yet.
    pub fn new() -> Hlc {
        Hlc::default()
    }

    /// A fresh timestamp, strictly greater than every one this clock issued or observed.
    pub fn now(&mut self, wall_ms: Millis) -> Timestamp {
        let wall = Timestamp::from_millis(wall_ms);
        // When the wall clock is behind (or equal), the logical counter carries causality; a carry out of the
        // 16 logical bits simply advances the physical part by one millisecond, which keeps order intact.
        // Saturating: a forged timestamp at the very top cannot make the clock wrap around to zero.
        self.last = if wall > self.last { wall } else { Timestamp(self.last.0.saturating_add(1)) };
        self.last
    }

    /// Advance past a timestamp received from elsewhere (a replica, a peer).
    pub fn observe(&mut self, seen: Timestamp) {
        if seen > self.last {
            self.last = seen;
        }
    }

    /// `observe`, unless `seen` is more than `limit_ms` ahead of `wall_ms`: then the clock is left as it is.
    pub fn observe_within(&mut self, seen: Timestamp, wall_ms: Millis, limit_ms: Millis) -> Result<(), TooFarAhead> {
        seen.within_drift(wall_ms, limit_ms)?;
        self.observe(seen);
        Ok(())
    }

    /// The last timestamp issued or observed.
    pub fn last(&self) -> Timestamp {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards_when_wall_clock_jumps_back() {
        let mut c = Hlc::new();
        let a = c.now(10_000);
        let b = c.now(5_000);
        let d = c.now(5_000);
        assert!(a < b && b < d);
        assert_eq!(b.millis(), 10_000);
        assert_eq!(b.logical(), 1);
    }

    #[test]
    fn follows_wall_clock_when_it_moves_forward() {
        let mut c = Hlc::new();
        c.now(1_000);
        let t = c.now(2_000);
        assert_eq!((t.millis(), t.logical()), (2_000, 0));
    }

    #[test]
    fn advances_past_observed_timestamps() {
        let mut c = Hlc::new();
        c.observe(Timestamp::from_millis(50_000));
        let t = c.now(1_000);
        assert!(t > Timestamp::from_millis(50_000));
        assert_eq!(t.millis(), 50_000);
    }

    #[test]
    fn refuses_timestamps_beyond_the_drift_bound() {
        let mut c = Hlc::new();
        let wall = 1_700_000_000_000;
        c.now(wall);
        let before = c.last();
        let err = c.observe_within(Timestamp(u64::MAX), wall, 60_000).expect_err("u64::MAX is refused");
        assert_eq!(err.limit_ms, 60_000);
        assert_eq!(c.last(), before, "a refused timestamp leaves the clock alone");
        assert!(c.observe_within(Timestamp::from_millis(wall + 60_001), wall, 60_000).is_err());
        c.observe_within(Timestamp::from_millis(wall + 60_000), wall, 60_000).expect("at the bound is accepted");
        assert_eq!(c.last(), Timestamp::from_millis(wall + 60_000));
        // A timestamp in the past is always fine, and a later write still gets a greater timestamp.
        c.observe_within(Timestamp(1), wall, 0).expect("the past is fine");
        assert!(c.now(wall) > Timestamp::from_millis(wall + 60_000));
    }

    #[test]
    fn logical_overflow_carries_into_physical() {
        let mut c = Hlc::new();
        c.observe(Timestamp((7 << 16) | 0xffff));
        let t = c.now(0);
        assert_eq!((t.millis(), t.logical()), (8, 0));
    }
}
