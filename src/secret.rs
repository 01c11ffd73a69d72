//! `Secret`: a password or key held so that it cannot leak by accident.
//!
//! Its `Debug` and `Display` print `<redacted>`, so a secret inside a configuration struct never reaches a log
//! line, a panic message or `{:?}` output; the bytes are only reached through `expose`, which names the intent at
//! every use. Comparison with `matches` takes the same time wherever the inputs differ (a password check must not
//! tell an attacker how many leading bytes were right). It parses from a string (flags, environment variables)
//! and deserializes from one (the TOML file).

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// Bytes that must never be printed: a client password or a cluster secret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The secret's bytes, for the code that checks or keys with them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Whether the secret has no bytes (an empty password means "none").
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `candidate` equals the secret, in time independent of where they differ.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let (a, b) = (self.0.as_slice(), candidate);
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<Vec<u8>> for Secret {
    fn from(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }
}

impl From<&[u8]> for Secret {
    fn from(bytes: &[u8]) -> Secret {
        Secret(bytes.to_vec())
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Secret {
        Secret(text.into_bytes())
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Secret {
        Secret(text.as_bytes().to_vec())
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Secret, Self::Err> {
        Ok(Secret::from(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_bytes() {
        let s = Secret::from("hunter2-hunter2-hunter2");
        for shown in [format!("{s:?}"), format!("{s}"), format!("{:?}", Some(s.clone())), format!("{:#?}", s)] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
    }

    #[test]
    fn matches_only_the_same_bytes() {
        let s = Secret::from("abc");
        assert!(s.matches(b"abc"));
        assert!(!s.matches(b"abd"));
        assert!(!s.matches(b"ab"));
        assert!(!s.matches(b"abcd"));
        assert!(!s.matches(b""));
        assert!(Secret::from("").matches(b""));
    }

    #[test]
    fn parses_from_strings_and_toml() {
        #[derive(Deserialize)]
        struct File {
            pass: Secret,
        }
        let f: File = toml::from_str("pass = \"p@ss\"").unwrap();
        assert_eq!(f.pass.expose(), b"p@ss");
        assert_eq!("x".parse::<Secret>().unwrap().expose(), b"x");
    }
}
