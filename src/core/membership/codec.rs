//! foca's wire format on MessagePack (rmp-serde), behind a leading version byte.
//!
//! Every foca packet starts with a header, so the header carries the codec version (`CODEC_VERSION`); members
//! that follow it are bare. Wire types are private mirrors of foca's, shaped for size: structs are MessagePack
//! arrays, enum tags are small integers (rmp-serde would spell variant names out), socket addresses are `bin`
//! blobs (not integer arrays) and a client address on the gossip address's IP is sent as its port alone.
//! Decoding never trusts a length: names are bounded by `NAME_BYTES_MAX`, tags and states are checked, and
//! rmp-serde reads from the packet slice, so a claimed length beyond the packet fails instead of allocating.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Buf, BufMut};
use foca::{Header, Member, Message, State};
use serde::{Deserialize, Serialize};

use super::identity::{Identity, NAME_BYTES_MAX};

/// Version of this wire format, the first byte of every packet foca writes.
pub const CODEC_VERSION: u8 = 1;

/// Why a header or member could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The packet was written by an unknown codec version.
    #[error("unknown gossip codec version {0}")]
    Version(u8),
    /// The buffer ended before the item did.
    #[error("gossip item truncated")]
    Truncated,
    /// Not enough room left in the outgoing packet (foca then sends fewer updates).
    #[error("gossip packet full")]
    BufferFull,
    /// Well-formed MessagePack that does not describe a valid item.
    #[error("invalid gossip field: {0}")]
    Invalid(&'static str),
    /// Malformed MessagePack.
    #[error("gossip decode: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    /// Serialization failed (a bug: every identity is encodable).
    #[error("gossip encode: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
}

/// The foca codec Shoal uses on the wire.
#[derive(Clone, Copy, Debug, Default)]
pub struct RmpCodec;

impl foca::Codec<Identity> for RmpCodec {
    type Error = CodecError;

    fn encode_header(&mut self, header: &Header<Identity>, mut buf: impl BufMut) -> Result<(), CodecError> {
        let mut bytes = vec![CODEC_VERSION];
        rmp_serde::encode::write(&mut bytes, &WireHeader::from_foca(header))?;
        put_all(&bytes, &mut buf)
    }

    fn decode_header(&mut self, mut buf: impl Buf) -> Result<Header<Identity>, CodecError> {
        if !buf.has_remaining() {
            return Err(CodecError::Truncated);
        }
        let version = buf.get_u8();
        if version != CODEC_VERSION {
            return Err(CodecError::Version(version));
        }
        let wire: WireHeader = read_one(&mut buf)?;
        wire.into_foca()
    }

    fn encode_member(&mut self, member: &Member<Identity>, mut buf: impl BufMut) -> Result<(), CodecError> {
        let wire = WireMember(WireIdentity::from_foca(member.id()), member.incarnation(), state_tag(member.state()));
        put_all(&rmp_serde::to_vec(&wire)?, &mut buf)
    }

    fn decode_member(&mut self, mut buf: impl Buf) -> Result<Member<Identity>, CodecError> {
        let WireMember(id, incarnation, state) = read_one(&mut buf)?;
        Ok(Member::new(id.into_foca()?, incarnation, state_from_tag(state)?))
    }
}

/// A foca `Gossip` message from `src` to `dst` that carries `updates`, laid out as foca lays out its packets
/// (header, update count as a big-endian u16, members). Membership sends these itself to tell a member what
/// foca would not tell it (that it is suspected, or which identity the cluster holds for its address). The
/// header claims foca incarnation 0 for `src`: the receiver then learns nothing new about the sender.
pub(crate) fn gossip_packet(
    src: &Identity,
    dst: &Identity,
    updates: &[Member<Identity>],
) -> Result<Vec<u8>, CodecError> {
    use foca::Codec as _;
    let header = Header { src: src.clone(), src_incarnation: 0, dst: dst.clone(), message: Message::Gossip };
    let mut packet = Vec::new();
    RmpCodec.encode_header(&header, &mut packet)?;
    let count = u16::try_from(updates.len()).map_err(|_| CodecError::Invalid("too many updates"))?;
    packet.put_u16(count);
    for update in updates {
        RmpCodec.encode_member(update, &mut packet)?;
    }
    Ok(packet)
}

/// A packet's header, or `None` when it does not decode (foca then rejects the packet).
pub(crate) fn peek_header(payload: &[u8]) -> Option<Header<Identity>> {
    use foca::Codec as _;
    RmpCodec.decode_header(payload).ok()
}

/// Writes `bytes` whole or not at all (foca requires a clean buffer when an item does not fit).
fn put_all(bytes: &[u8], buf: &mut impl BufMut) -> Result<(), CodecError> {
    if buf.remaining_mut() < bytes.len() {
        return Err(CodecError::BufferFull);
    }
    buf.put_slice(bytes);
    Ok(())
}

/// Decodes one MessagePack item from the front of `buf` and advances past it (foca hands contiguous buffers).
fn read_one<T: serde::de::DeserializeOwned>(buf: &mut impl Buf) -> Result<T, CodecError> {
    let mut rest = buf.chunk();
    let before = rest.len();
    let value = T::deserialize(&mut rmp_serde::Deserializer::new(&mut rest))?;
    let consumed = before - rest.len();
    buf.advance(consumed);
    Ok(value)
}

/// Header: source, source's foca incarnation, destination, message tag, probe number, optional third identity.
#[derive(Serialize, Deserialize)]
struct WireHeader(WireIdentity, u16, WireIdentity, u8, u8, Option<WireIdentity>);

/// Member update: identity, foca incarnation, state tag.
#[derive(Serialize, Deserialize)]
struct WireMember(WireIdentity, u16, u8);

/// Identity: gossip address, client address (port only when it shares the gossip IP), name, incarnation.
#[derive(Serialize, Deserialize)]
struct WireIdentity(WireAddr, WireAddr, String, u64);

const TAG_PING: u8 = 0;
const TAG_ACK: u8 = 1;
const TAG_PING_REQ: u8 = 2;
const TAG_INDIRECT_PING: u8 = 3;
const TAG_INDIRECT_ACK: u8 = 4;
const TAG_FORWARDED_ACK: u8 = 5;
const TAG_ANNOUNCE: u8 = 6;
const TAG_FEED: u8 = 7;
const TAG_GOSSIP: u8 = 8;
const TAG_BROADCAST: u8 = 9;
const TAG_TURN_UNDEAD: u8 = 10;

impl WireHeader {
    fn from_foca(header: &Header<Identity>) -> Self {
        let (tag, probe, third) = match &header.message {
            Message::Ping(n) => (TAG_PING, *n, None),
            Message::Ack(n) => (TAG_ACK, *n, None),
            Message::PingReq { target, probe_number } => (TAG_PING_REQ, *probe_number, Some(target)),
            Message::IndirectPing { origin, probe_number } => (TAG_INDIRECT_PING, *probe_number, Some(origin)),
            Message::IndirectAck { target, probe_number } => (TAG_INDIRECT_ACK, *probe_number, Some(target)),
            Message::ForwardedAck { origin, probe_number } => (TAG_FORWARDED_ACK, *probe_number, Some(origin)),
            Message::Announce => (TAG_ANNOUNCE, 0, None),
            Message::Feed => (TAG_FEED, 0, None),
            Message::Gossip => (TAG_GOSSIP, 0, None),
            Message::Broadcast => (TAG_BROADCAST, 0, None),
            Message::TurnUndead => (TAG_TURN_UNDEAD, 0, None),
        };
        Self(
            WireIdentity::from_foca(&header.src),
            header.src_incarnation,
            WireIdentity::from_foca(&header.dst),
            tag,
            probe,
            third.map(WireIdentity::from_foca),
        )
    }

    fn into_foca(self) -> Result<Header<Identity>, CodecError> {
        let Self(src, src_incarnation, dst, tag, probe_number, third) = self;
        let third = third.map(WireIdentity::into_foca).transpose()?;
        let needs_third = (TAG_PING_REQ..=TAG_FORWARDED_ACK).contains(&tag);
        let third = match (needs_third, third) {
            (true, Some(id)) => Some(id),
            (false, None) => None,
            (true, None) => return Err(CodecError::Invalid("message lacks its target")),
            (false, Some(_)) => return Err(CodecError::Invalid("message has a stray target")),
        };
        let message = match (tag, third) {
            (TAG_PING, _) => Message::Ping(probe_number),
            (TAG_ACK, _) => Message::Ack(probe_number),
            (TAG_PING_REQ, Some(target)) => Message::PingReq { target, probe_number },
            (TAG_INDIRECT_PING, Some(origin)) => Message::IndirectPing { origin, probe_number },
            (TAG_INDIRECT_ACK, Some(target)) => Message::IndirectAck { target, probe_number },
            (TAG_FORWARDED_ACK, Some(origin)) => Message::ForwardedAck { origin, probe_number },
            (TAG_ANNOUNCE, _) => Message::Announce,
            (TAG_FEED, _) => Message::Feed,
            (TAG_GOSSIP, _) => Message::Gossip,
            (TAG_BROADCAST, _) => Message::Broadcast,
            (TAG_TURN_UNDEAD, _) => Message::TurnUndead,
            _ => return Err(CodecError::Invalid("unknown message tag")),
        };
        Ok(Header { src: src.into_foca()?, src_incarnation, dst: dst.into_foca()?, message })
    }
}

impl WireIdentity {
    fn from_foca(id: &Identity) -> Self {
        let client = if id.client_addr.ip() == id.gossip_addr.ip() {
            WireAddr::Port(id.client_addr.port())
        } else {
            WireAddr::Full(id.client_addr)
        };
        Self(WireAddr::Full(id.gossip_addr), client, id.name.clone(), id.incarnation)
    }

    fn into_foca(self) -> Result<Identity, CodecError> {
        let Self(gossip, client, name, incarnation) = self;
        let WireAddr::Full(gossip_addr) = gossip else {
            return Err(CodecError::Invalid("gossip address without IP"));
        };
        let client_addr = match client {
            WireAddr::Full(addr) => addr,
            WireAddr::Port(port) => SocketAddr::new(gossip_addr.ip(), port),
        };
        if name.len() > NAME_BYTES_MAX {
            return Err(CodecError::Invalid("name too long"));
        }
        Ok(Identity { gossip_addr, client_addr, name, incarnation })
    }
}

fn state_tag(state: State) -> u8 {
    match state {
        State::Alive => 0,
        State::Suspect => 1,
        State::Down => 2,
    }
}

fn state_from_tag(tag: u8) -> Result<State, CodecError> {
    match tag {
        0 => Ok(State::Alive),
        1 => Ok(State::Suspect),
        2 => Ok(State::Down),
        _ => Err(CodecError::Invalid("unknown member state")),
    }
}

/// A socket address as a MessagePack `bin`: 2 bytes (port only), 6 (IPv4 + port) or 18 (IPv6 + port).
enum WireAddr {
    Full(SocketAddr),
    Port(u16),
}

impl Serialize for WireAddr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut bytes = [0u8; 18];
        let len = match self {
            Self::Port(port) => {
                bytes[..2].copy_from_slice(&port.to_be_bytes());
                2
            }
            Self::Full(SocketAddr::V4(addr)) => {
                bytes[..4].copy_from_slice(&addr.ip().octets());
                bytes[4..6].copy_from_slice(&addr.port().to_be_bytes());
                6
            }
            Self::Full(SocketAddr::V6(addr)) => {
                bytes[..16].copy_from_slice(&addr.ip().octets());
                bytes[16..18].copy_from_slice(&addr.port().to_be_bytes());
                18
            }
        };
        serializer.serialize_bytes(&bytes[..len])
    }
}

impl<'de> Deserialize<'de> for WireAddr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bytes(WireAddrVisitor)
    }
}

struct WireAddrVisitor;

impl serde::de::Visitor<'_> for WireAddrVisitor {
    type Value = WireAddr;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("2, 6 or 18 address bytes")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<WireAddr, E> {
        let port_at = |i: usize| u16::from_be_bytes([v[i], v[i + 1]]);
        match v.len() {
            2 => Ok(WireAddr::Port(port_at(0))),
            6 => {
                let ip = Ipv4Addr::new(v[0], v[1], v[2], v[3]);
                Ok(WireAddr::Full(SocketAddr::new(IpAddr::V4(ip), port_at(4))))
            }
            18 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&v[..16]);
                Ok(WireAddr::Full(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port_at(16))))
            }
            _ => Err(E::invalid_length(v.len(), &self)),
        }
    }
}
