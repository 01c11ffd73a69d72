//! The peer link handshake: before any `PeerMsg` travels, the two ends of a connection prove to each other that
//! they hold the cluster secret, over fresh nonces from both sides, and derive the link's session key.
//!
//! Each direction between two nodes has its own TCP connection: the *connector* opens it and later writes
//! message frames on it; the *acceptor* only answers the handshake. Three frames, each
//! `[len: u32 BE][version: u8 = FRAME_VERSION][kind: u8][fields]`, `len` counting every byte after itself and at
//! most `HANDSHAKE_BYTES_MAX`:
//!
//! 1. `Hello` (connector → acceptor), kind 1: `mode: u8, nonce_c: [u8; 32], from: str8, name: str8`.
//! 2. `Challenge` (acceptor → connector), kind 2: `mode: u8, nonce_a: [u8; 32], from: str8, name: str8,
//!    proof_a: [u8; 16]`.
//! 3. `Finish` (connector → acceptor), kind 3: `proof_c: [u8; 16]`.
//!
//! `str8` is a one-byte length then UTF-8 (`from` is the sender's advertised cluster address as text, `name` at
//! most `NAME_BYTES_MAX` bytes); `mode` is 1 with a cluster secret and 0 without, and both ends must agree.
//! The transcript `T` is SHA-256 of `TRANSCRIPT_LABEL`, the `Hello` frame as sent (length prefix included) and
//! the `Challenge` frame as sent up to its proof; it binds the protocol version, the mode, both nonces and both
//! claimed addresses and names. With a secret, `proof_a` is HMAC-SHA256(secret, `"shoal/peer/v3/acceptor"` ‖ T)
//! and `proof_c` is HMAC-SHA256(secret, `"shoal/peer/v3/connector"` ‖ T), each truncated to 16 bytes and
//! checked in constant time; the distinct labels stop a proof from being reflected back. The session key is
//! HKDF-SHA256 (extract under a fixed salt, expand with info `"shoal/peer/v3/session"` ‖ T), 32 bytes, used by
//! `FrameCodec` to MAC every message frame of the link. A recorded handshake is useless: the other side's
//! nonce is fresh, so old proofs do not verify and old frames do not verify under the new key. Without a
//! secret (allowed only on loopback or with the explicit insecure opt-out) the same three frames run, the
//! proofs are unkeyed SHA-256 digests (integrity, not authentication) and frames carry a crc32.
//!
//! Decoding never trusts the peer: the length is checked before anything else, fields are bounded, trailing
//! bytes are refused, nothing panics. A partial frame is `Ok(None)`.

use std::net::SocketAddr;

use bytes::{Buf, BufMut, BytesMut};
use hmac::{Hmac, KeyInit};
use sha2::{Digest, Sha256};

use super::codec::{FRAME_VERSION, LEN_BYTES};
use crate::core::membership::identity::NAME_BYTES_MAX;
use crate::core::membership::ClusterSecret;

/// Largest handshake frame, counted as its length field.
pub const HANDSHAKE_BYTES_MAX: usize = 256;
/// Bytes of each side's nonce.
pub const NONCE_BYTES: usize = 32;
/// Bytes of a proof (HMAC-SHA256 truncated to 128 bits).
pub const PROOF_BYTES: usize = 16;
/// The transcript hash starts with this label.
pub const TRANSCRIPT_LABEL: &[u8] = b"shoal peer handshake v3";

const KIND_HELLO: u8 = 1;
const KIND_CHALLENGE: u8 = 2;
const KIND_FINISH: u8 = 3;
const MODE_OPEN: u8 = 0;
const MODE_SECRET: u8 = 1;
const LABEL_ACCEPTOR: &[u8] = b"shoal/peer/v3/acceptor";
const LABEL_CONNECTOR: &[u8] = b"shoal/peer/v3/connector";
const LABEL_SESSION: &[u8] = b"shoal/peer/v3/session";

/// The key that MACs one link's message frames (HMAC-SHA256, keyed once); its `Debug` never shows it.
#[derive(Clone)]
pub struct SessionKey {
    keyed: Hmac<Sha256>,
}

impl SessionKey {
    /// A session key from 32 bytes of key material.
    pub fn from_bytes(bytes: &[u8; 32]) -> SessionKey {
        SessionKey { keyed: Hmac::<Sha256>::new_from_slice(bytes).expect("HMAC takes any key length") }
    }

    /// The HMAC state keyed with this key, to be fed one frame and finalized.
    pub(crate) fn mac(&self) -> Hmac<Sha256> {
        self.keyed.clone()
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

/// Who one side says it is, with its fresh nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// The sender's advertised cluster address.
    pub from: SocketAddr,
    /// The sender's node name.
    pub name: String,
    /// The sender's nonce, fresh from the OS for this connection.
    pub nonce: [u8; NONCE_BYTES],
}

/// Why a handshake failed. Every error means the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The length prefix exceeds `HANDSHAKE_BYTES_MAX`: not a handshake (nothing more is read).
    #[error("handshake frame of {0} bytes exceeds the limit of {HANDSHAKE_BYTES_MAX}")]
    TooLarge(usize),
    /// An unknown version: the peer runs another Shoal release, or is not Shoal.
    #[error("unknown peer protocol version {0} (this node speaks version {FRAME_VERSION}; is the peer running another Shoal release?)")]
    Version(u8),
    /// The frame is not the one expected at this step.
    #[error("unexpected handshake frame kind {0}")]
    Kind(u8),
    /// One side has a cluster secret and the other has none.
    #[error("cluster secret mismatch: this node {ours} a cluster secret, the peer {theirs}")]
    Mode {
        /// "has" or "has no", for this node.
        ours: &'static str,
        /// "has" or "has no", for the peer.
        theirs: &'static str,
    },
    /// A field is malformed.
    #[error("malformed handshake frame: {0}")]
    Malformed(&'static str),
    /// The peer's proof does not verify: it does not hold the same cluster secret (or replays an old handshake).
    #[error("handshake proof failed (a different cluster secret, or a replayed handshake)")]
    Proof,
}

/// The connector's side: built with its `Hello` frame, finished by the acceptor's `Challenge`.
pub struct Connector {
    secret: Option<ClusterSecret>,
    transcript: Sha256,
}

/// What the connector learns from a valid `Challenge`.
#[derive(Debug)]
pub struct Accepted {
    /// The acceptor's claimed identity (authenticated when there is a secret).
    pub peer: Greeting,
    /// The `Finish` frame to send.
    pub finish: BytesMut,
    /// The key of the link's message frames (`None` without a secret: crc32).
    pub key: Option<SessionKey>,
}

impl Connector {
    /// Start a handshake as `me`; returns the state and the `Hello` frame to send.
    pub fn new(secret: Option<ClusterSecret>, me: &Greeting) -> (Connector, BytesMut) {
        let mut hello = BytesMut::new();
        frame(&mut hello, KIND_HELLO, |dst| put_greeting(dst, mode(&secret), me));
        let mut transcript = Sha256::new();
        transcript.update(TRANSCRIPT_LABEL);
        transcript.update(&hello);
        (Connector { secret, transcript }, hello)
    }

    /// Take the `Challenge` off `src`: `Ok(None)` until it is complete.
    pub fn challenge(&self, src: &mut BytesMut) -> Result<Option<Accepted>, HandshakeError> {
        let Some(raw) = take(src)? else { return Ok(None) };
        let mut body = body(&raw, KIND_CHALLENGE)?;
        let peer = get_greeting(&mut body, mode(&self.secret))?;
        let proof = get_array::<PROOF_BYTES>(&mut body)?;
        ended(body)?;
        let mut transcript = self.transcript.clone();
        transcript.update(&raw[..raw.len() - PROOF_BYTES]);
        let t: [u8; 32] = transcript.finalize().into();
        if !verify(&self.secret, LABEL_ACCEPTOR, &t, &proof) {
            return Err(HandshakeError::Proof);
        }
        let mut finish = BytesMut::new();
        frame(&mut finish, KIND_FINISH, |dst| dst.put_slice(&prove(&self.secret, LABEL_CONNECTOR, &t)));
        Ok(Some(Accepted { peer, finish, key: session_key(&self.secret, &t) }))
    }
}

/// The acceptor's side: takes the `Hello`, answers the `Challenge`, checks the `Finish`.
pub struct Acceptor {
    secret: Option<ClusterSecret>,
    me: Greeting,
    /// The transcript hash, once the `Challenge` is written.
    transcript: Option<[u8; 32]>,
}

impl Acceptor {
    /// An acceptor answering as `me`.
    pub fn new(secret: Option<ClusterSecret>, me: Greeting) -> Acceptor {
        Acceptor { secret, me, transcript: None }
    }

    /// Take the `Hello` off `src`: `Ok(None)` until it is complete; then the connector's claimed identity and
    /// the `Challenge` frame to send.
    pub fn hello(&mut self, src: &mut BytesMut) -> Result<Option<(Greeting, BytesMut)>, HandshakeError> {
        if self.transcript.is_some() {
            return Err(HandshakeError::Kind(KIND_HELLO));
        }
        let Some(raw) = take(src)? else { return Ok(None) };
        let mut body = body(&raw, KIND_HELLO)?;
        let peer = get_greeting(&mut body, mode(&self.secret))?;
        ended(body)?;
        let mut challenge = BytesMut::new();
        frame(&mut challenge, KIND_CHALLENGE, |dst| {
            put_greeting(dst, mode(&self.secret), &self.me);
            dst.put_bytes(0, PROOF_BYTES); // Room for the proof, filled in below.
        });
        let signed = challenge.len() - PROOF_BYTES;
        let mut transcript = Sha256::new();
        transcript.update(TRANSCRIPT_LABEL);
        transcript.update(&raw);
        transcript.update(&challenge[..signed]);
        let t: [u8; 32] = transcript.finalize().into();
        challenge[signed..].copy_from_slice(&prove(&self.secret, LABEL_ACCEPTOR, &t));
        self.transcript = Some(t);
        Ok(Some((peer, challenge)))
    }

    /// Take the `Finish` off `src`: `Ok(None)` until it is complete; then the link's session key (`None`
    /// without a secret). Bytes after it (the first message frames) stay in `src`.
    pub fn finish(&self, src: &mut BytesMut) -> Result<Option<Option<SessionKey>>, HandshakeError> {
        let Some(t) = self.transcript else { return Err(HandshakeError::Kind(KIND_FINISH)) };
        let Some(raw) = take(src)? else { return Ok(None) };
        let mut body = body(&raw, KIND_FINISH)?;
        let proof = get_array::<PROOF_BYTES>(&mut body)?;
        ended(body)?;
        if !verify(&self.secret, LABEL_CONNECTOR, &t, &proof) {
            return Err(HandshakeError::Proof);
        }
        Ok(Some(session_key(&self.secret, &t)))
    }
}

fn mode(secret: &Option<ClusterSecret>) -> u8 {
    if secret.is_some() {
        MODE_SECRET
    } else {
        MODE_OPEN
    }
}

/// The proof of `label` over transcript `t`: HMAC with the secret, or an unkeyed digest without one.
fn prove(secret: &Option<ClusterSecret>, label: &[u8], t: &[u8; 32]) -> [u8; PROOF_BYTES] {
    match secret {
        Some(s) => s.tag_parts(&[label, t]),
        None => {
            let digest: [u8; 32] = Sha256::new().chain_update(label).chain_update(t).finalize().into();
            let mut proof = [0u8; PROOF_BYTES];
            proof.copy_from_slice(&digest[..PROOF_BYTES]);
            proof
        }
    }
}

fn verify(secret: &Option<ClusterSecret>, label: &[u8], t: &[u8; 32], proof: &[u8; PROOF_BYTES]) -> bool {
    match secret {
        Some(s) => s.verify_parts(&[label, t], proof),
        None => prove(secret, label, t) == *proof,
    }
}

fn session_key(secret: &Option<ClusterSecret>, t: &[u8; 32]) -> Option<SessionKey> {
    secret.as_ref().map(|s| SessionKey::from_bytes(&s.derive(&[LABEL_SESSION, t])))
}

/// Append one handshake frame of `kind` whose fields `fields` writes.
fn frame(dst: &mut BytesMut, kind: u8, fields: impl FnOnce(&mut BytesMut)) {
    let start = dst.len();
    dst.put_u32(0);
    dst.put_u8(FRAME_VERSION);
    dst.put_u8(kind);
    fields(dst);
    let len = (dst.len() - start - LEN_BYTES) as u32;
    dst[start..start + LEN_BYTES].copy_from_slice(&len.to_be_bytes());
}

/// Take one whole frame (length prefix included) off the front of `src`, or `None` if it is not all there.
fn take(src: &mut BytesMut) -> Result<Option<BytesMut>, HandshakeError> {
    let Some(prefix) = src.get(..LEN_BYTES) else { return Ok(None) };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if len > HANDSHAKE_BYTES_MAX {
        return Err(HandshakeError::TooLarge(len));
    }
    if len < 2 {
        return Err(HandshakeError::Malformed("frame too short for its header"));
    }
    if src.len() < LEN_BYTES + len {
        return Ok(None);
    }
    Ok(Some(src.split_to(LEN_BYTES + len)))
}

/// The fields of a whole frame, after checking its version and kind.
fn body(raw: &[u8], kind: u8) -> Result<&[u8], HandshakeError> {
    let (version, got) = (raw[LEN_BYTES], raw[LEN_BYTES + 1]);
    if version != FRAME_VERSION {
        return Err(HandshakeError::Version(version));
    }
    if got != kind {
        return Err(HandshakeError::Kind(got));
    }
    Ok(&raw[LEN_BYTES + 2..])
}

fn put_greeting(dst: &mut BytesMut, mode: u8, g: &Greeting) {
    dst.put_u8(mode);
    dst.put_slice(&g.nonce);
    put_str8(dst, &g.from.to_string());
    put_str8(dst, &g.name);
}

fn get_greeting(src: &mut &[u8], ours: u8) -> Result<Greeting, HandshakeError> {
    let theirs = get_array::<1>(src)?[0];
    if theirs != MODE_OPEN && theirs != MODE_SECRET {
        return Err(HandshakeError::Malformed("unknown mode"));
    }
    if theirs != ours {
        let has = |m| if m == MODE_SECRET { "has" } else { "has no" };
        return Err(HandshakeError::Mode { ours: has(ours), theirs: has(theirs) });
    }
    let nonce = get_array::<NONCE_BYTES>(src)?;
    let from = get_str8(src)?.parse().map_err(|_| HandshakeError::Malformed("from is not ip:port"))?;
    let name = get_str8(src)?;
    if name.len() > NAME_BYTES_MAX {
        return Err(HandshakeError::Malformed("name longer than NAME_BYTES_MAX"));
    }
    Ok(Greeting { from, name: name.to_string(), nonce })
}

/// A one-byte length and the bytes; names and addresses are short, so the cut at 255 bytes never bites (a
/// longer name is refused by the receiver, which checks `NAME_BYTES_MAX`).
fn put_str8(dst: &mut BytesMut, text: &str) {
    let bytes = &text.as_bytes()[..text.len().min(u8::MAX as usize)];
    dst.put_u8(bytes.len() as u8);
    dst.put_slice(bytes);
}

fn get_str8<'a>(src: &mut &'a [u8]) -> Result<&'a str, HandshakeError> {
    let len = get_array::<1>(src)?[0] as usize;
    if src.len() < len {
        return Err(HandshakeError::Malformed("truncated string"));
    }
    let (text, rest) = src.split_at(len);
    *src = rest;
    std::str::from_utf8(text).map_err(|_| HandshakeError::Malformed("string is not UTF-8"))
}

fn get_array<const N: usize>(src: &mut &[u8]) -> Result<[u8; N], HandshakeError> {
    if src.len() < N {
        return Err(HandshakeError::Malformed("truncated field"));
    }
    let mut out = [0u8; N];
    out.copy_from_slice(&src[..N]);
    src.advance(N);
    Ok(out)
}

fn ended(rest: &[u8]) -> Result<(), HandshakeError> {
    match rest.is_empty() {
        true => Ok(()),
        false => Err(HandshakeError::Malformed("trailing bytes")),
    }
}

#[cfg(test)]
mod tests;
