//! The packet envelope: one mode byte, foca's bytes, and with a cluster secret an HMAC-SHA256 tag.
//!
//! Layout: `[mode][payload][tag]`. Mode `MODE_PLAIN` has no tag; mode `MODE_HMAC` ends with the first
//! `TAG_BYTES` bytes of HMAC-SHA256(secret, mode || payload). A node with a secret accepts only tagged packets
//! whose tag verifies (checked in constant time), and a node without one accepts only plain packets, so a
//! misconfigured node is refused outright instead of half-parsed. The envelope is checked before any byte
//! of the payload is decoded.
//!
//! Replay: there is no replay window. A recorded packet replays as a valid one; foca tolerates duplicates, and
//! what a replay can claim is bounded by incarnations: stale Alive/Suspect updates lose to newer ones, and a
//! replayed Down (or leave) of a member's current identity makes that member renew its identity (incarnation
//! plus one) and rejoin, i.e. churn, not a lasting wrong view. A timestamp window would need synchronized clocks,
//! which an AP cache must not depend on for membership.
//!
//! The same secret keys the peer link handshake (`replication::handshake`): its proofs are HMACs with it, and
//! each link's session key is HKDF-SHA256 of it (extracted once under a fixed salt, expanded per link with the
//! handshake transcript), so peer data frames never use the secret itself as their key.

use bytes::{BufMut, Bytes, BytesMut};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Envelope mode byte of a packet without authentication.
pub const MODE_PLAIN: u8 = 0xA0;
/// Envelope mode byte of a packet with a truncated HMAC-SHA256 tag.
pub const MODE_HMAC: u8 = 0xA1;
/// Length of the MAC tag (HMAC-SHA256 truncated to 128 bits).
pub const TAG_BYTES: usize = 16;
/// Shortest accepted cluster secret, in bytes.
pub const SECRET_BYTES_MIN: usize = 16;
/// HKDF-SHA256 extract salt under which the secret becomes the key-derivation key of peer link sessions.
const KDF_SALT: &[u8] = b"shoal cluster secret kdf v1";

/// The shared key that authenticates gossip and peer link handshakes; its `Debug` output never shows the key.
#[derive(Clone)]
pub struct ClusterSecret {
    keyed: Hmac<Sha256>,
    /// HKDF-SHA256 keyed by the secret (extracted once, under `KDF_SALT`), for per-link session keys.
    kdf: Hkdf<Sha256>,
}

/// A secret that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Shorter than `SECRET_BYTES_MIN`.
    #[error("cluster secret must be at least {SECRET_BYTES_MIN} bytes, got {0}")]
    TooShort(usize),
}

impl ClusterSecret {
    /// Keys the MAC with `bytes` (at least `SECRET_BYTES_MIN` of them).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretError> {
        if bytes.len() < SECRET_BYTES_MIN {
            return Err(SecretError::TooShort(bytes.len()));
        }
        let keyed = Hmac::<Sha256>::new_from_slice(bytes).map_err(|_| SecretError::TooShort(bytes.len()))?;
        let kdf = Hkdf::<Sha256>::new(Some(KDF_SALT), bytes);
        Ok(Self { keyed, kdf })
    }

    /// HKDF-SHA256 expand of the secret with the concatenation of `info` as context: 32 bytes of key material.
    pub(crate) fn derive(&self, info: &[&[u8]]) -> [u8; 32] {
        let mut okm = [0u8; 32];
        self.kdf.expand_multi_info(info, &mut okm).expect("32 bytes is within HKDF-SHA256's output limit");
        okm
    }

    fn tag(&self, data: &[u8]) -> [u8; TAG_BYTES] {
        self.tag_parts(&[data])
    }

    fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        self.verify_parts(&[data], tag)
    }

    /// The first `TAG_BYTES` bytes of HMAC-SHA256 over the concatenation of `parts`.
    pub(crate) fn tag_parts(&self, parts: &[&[u8]]) -> [u8; TAG_BYTES] {
        let mut mac = self.keyed.clone();
        for part in parts {
            mac.update(part);
        }
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// Whether `tag` (exactly `TAG_BYTES` long) is the tag of `parts`, compared in constant time.
    pub(crate) fn verify_parts(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        if tag.len() != TAG_BYTES {
            return false;
        }
        let mut mac = self.keyed.clone();
        for part in parts {
            mac.update(part);
        }
        mac.verify_truncated_left(tag).is_ok()
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

/// Why an envelope was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Too short to hold the mode byte (and the tag, if one is expected).
    Truncated,
    /// Unknown mode byte: not a Shoal gossip packet.
    Garbage,
    /// Wrong mode for this node's configuration, or a tag that does not verify.
    Auth,
}

/// Seals and opens envelopes for one node.
#[derive(Clone, Debug)]
pub struct Envelope {
    secret: Option<ClusterSecret>,
}

impl Envelope {
    /// An envelope that tags packets with `secret`, or leaves them plain without one.
    pub fn new(secret: Option<ClusterSecret>) -> Self {
        Self { secret }
    }

    /// Bytes the envelope adds to foca's payload.
    pub fn overhead(&self) -> usize {
        1 + if self.secret.is_some() { TAG_BYTES } else { 0 }
    }

    /// Wraps `payload` for the wire.
    pub fn seal(&self, payload: &[u8]) -> Bytes {
        let mut packet = BytesMut::with_capacity(payload.len() + self.overhead());
        match &self.secret {
            None => {
                packet.put_u8(MODE_PLAIN);
                packet.put_slice(payload);
            }
            Some(secret) => {
                packet.put_u8(MODE_HMAC);
                packet.put_slice(payload);
                let tag = secret.tag(&packet);
                packet.put_slice(&tag);
            }
        }
        packet.freeze()
    }

    /// The payload of `packet` if its envelope is valid for this node.
    pub fn open<'a>(&self, packet: &'a [u8]) -> Result<&'a [u8], EnvelopeError> {
        let Some((&mode, rest)) = packet.split_first() else {
            return Err(EnvelopeError::Truncated);
        };
        match (mode, &self.secret) {
            (MODE_PLAIN, None) => Ok(rest),
            (MODE_HMAC, Some(secret)) => {
                let Some(body_len) = packet.len().checked_sub(TAG_BYTES).filter(|&n| n >= 1) else {
                    return Err(EnvelopeError::Truncated);
                };
                let (signed, tag) = packet.split_at(body_len);
                if secret.verify(signed, tag) {
                    Ok(&signed[1..])
                } else {
                    Err(EnvelopeError::Auth)
                }
            }
            (MODE_PLAIN | MODE_HMAC, _) => Err(EnvelopeError::Auth),
            _ => Err(EnvelopeError::Garbage),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: u8) -> Option<ClusterSecret> {
        Some(ClusterSecret::from_bytes(&[byte; 32]).expect("long enough"))
    }

    #[test]
    fn sealed_packets_open_with_the_same_secret_only() {
        let a = Envelope::new(secret(1));
        let packet = a.seal(b"hello");
        assert_eq!(packet.len(), 5 + a.overhead());
        assert_eq!(a.open(&packet), Ok(&b"hello"[..]));
        assert_eq!(Envelope::new(secret(2)).open(&packet), Err(EnvelopeError::Auth));
        assert_eq!(Envelope::new(None).open(&packet), Err(EnvelopeError::Auth));
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let a = Envelope::new(secret(1));
        let packet = a.seal(b"payload bytes");
        for i in 0..packet.len() * 8 {
            let mut forged = packet.to_vec();
            forged[i / 8] ^= 1 << (i % 8);
            assert!(a.open(&forged).is_err(), "bit {i} flipped unnoticed");
        }
    }

    #[test]
    fn plain_and_short_packets() {
        let plain = Envelope::new(None);
        assert_eq!(plain.open(&plain.seal(b"x")), Ok(&b"x"[..]));
        assert_eq!(plain.open(&[]), Err(EnvelopeError::Truncated));
        assert_eq!(plain.open(&[0x00, 1, 2]), Err(EnvelopeError::Garbage));
        assert_eq!(Envelope::new(secret(1)).open(&[MODE_HMAC; 16]), Err(EnvelopeError::Truncated));
        assert_eq!(Envelope::new(secret(1)).open(&plain.seal(b"x")), Err(EnvelopeError::Auth));
        assert!(ClusterSecret::from_bytes(b"short").is_err());
    }
}
