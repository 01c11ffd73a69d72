//! Consistency levels: how many replicas must answer a read or acknowledge a write before the client hears back.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A consistency level for reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Consistency {
    /// One replica.
    One,
    /// A majority of the replicas: `n / 2 + 1`.
    Quorum,
    /// Every replica.
    All,
}

impl Consistency {
    /// Replicas that must answer when the key has `n` replicas (at least 1).
    pub fn required(self, n: usize) -> usize {
        match self {
            Consistency::One => 1,
            Consistency::Quorum => n / 2 + 1,
            Consistency::All => n.max(1),
        }
    }

    /// The level's name as flags and SHOAL.CONSISTENCY write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::One => "ONE",
            Consistency::Quorum => "QUORUM",
            Consistency::All => "ALL",
        }
    }
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a consistency level name was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown consistency level '{0}' (expected ONE, QUORUM or ALL)")]
pub struct UnknownLevel(pub String);

impl FromStr for Consistency {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "ONE" | "1" => Ok(Consistency::One),
            "QUORUM" => Ok(Consistency::Quorum),
            "ALL" => Ok(Consistency::All),
            _ => Err(UnknownLevel(s.to_string())),
        }
    }
}

/// The read and write levels a request runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Levels {
    /// Level of reads.
    pub read: Consistency,
    /// Level of writes.
    pub write: Consistency,
}

impl Default for Levels {
    fn default() -> Self {
        Levels { read: Consistency::One, write: Consistency::Quorum }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_counts() {
        assert_eq!(Consistency::One.required(3), 1);
        assert_eq!(Consistency::Quorum.required(3), 2);
        assert_eq!(Consistency::Quorum.required(4), 3);
        assert_eq!(Consistency::Quorum.required(1), 1);
        assert_eq!(Consistency::All.required(3), 3);
        assert_eq!(Consistency::All.required(0), 1);
    }

    #[test]
    fn parses_names_case_insensitively() {
        assert_eq!("quorum".parse::<Consistency>(), Ok(Consistency::Quorum));
        assert_eq!("ALL".parse::<Consistency>(), Ok(Consistency::All));
        assert!("two".parse::<Consistency>().is_err());
    }
}
