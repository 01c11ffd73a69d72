//! What a node can tell about its membership: members with their state, change events, a digest of the live
//! set, and counters for metrics.
//!
//! Views are sorted by (name, gossip address, incarnation). The live-set digest does not depend on order: it is
//! the wrapping sum of one FNV-1a hash per live row over a fixed binary encoding, so two nodes that hold the same
//! live set produce the same digest, stable across builds and platforms, and a node computes it from its view
//! without sorting or copying it.

use std::net::{IpAddr, SocketAddr};

use super::identity::Identity;

/// How this node currently sees a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberState {
    /// Answers probes.
    Alive,
    /// Missed a probe; still counted as live until declared down.
    Suspect,
    /// Declared down (crashed, left, or replaced by a newer identity not yet seen).
    Down,
}

impl MemberState {
    /// Alive and suspect members are live: they own ring tokens.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Alive | Self::Suspect)
    }

    /// The state's name as SHOAL.MEMBERS shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alive => "alive",
            Self::Suspect => "suspect",
            Self::Down => "down",
        }
    }
}

/// One row of the membership view.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MemberInfo {
    /// Node name.
    pub name: String,
    /// Gossip address (unique among members).
    pub gossip_addr: SocketAddr,
    /// Redis-protocol address.
    pub client_addr: SocketAddr,
    /// Identity incarnation (start time in ms, plus renewals).
    pub incarnation: u64,
    /// State as this node sees it.
    pub state: MemberState,
}

impl MemberInfo {
    /// The row for `id` in `state`.
    pub fn new(id: &Identity, state: MemberState) -> Self {
        Self {
            name: id.name.clone(),
            gossip_addr: id.gossip_addr,
            client_addr: id.client_addr,
            incarnation: id.incarnation,
            state,
        }
    }
}

/// A change in the membership view, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberEvent {
    /// A member became live.
    Up(Identity),
    /// A live member was declared down (or left).
    Down(Identity),
    /// A member's identity was replaced by a newer one on the same gossip address (restart or renewal).
    Renamed {
        /// The identity that was replaced.
        old: Identity,
        /// The identity that replaced it.
        new: Identity,
    },
    /// This node learned it had been declared down and rejoined under a renewed identity.
    Rejoined(Identity),
    /// A name newly held by several live members (a configuration error: see `names`).
    NameConflict(super::names::NameConflict),
}

/// Counters and gauges for metrics; counters only grow, gauges reflect the view after the last call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipCounters {
    /// Datagrams handed to `handle_packet`.
    pub packets_received: u64,
    /// Datagrams emitted as `Send` effects.
    pub packets_sent: u64,
    /// Dropped: longer than `max_packet_size`.
    pub rejected_oversize: u64,
    /// Dropped: too short for the envelope.
    pub rejected_truncated: u64,
    /// Dropped: missing, unexpected or wrong MAC tag.
    pub rejected_auth: u64,
    /// Dropped: unknown envelope, codec version or malformed payload.
    pub rejected_decode: u64,
    /// Refused by foca after decoding (claims to come from ourselves, indirect probe of ourselves, ...); with a
    /// trailing-garbage packet foca may have applied the decoded updates before refusing the rest.
    pub rejected_protocol: u64,
    /// Dropped because this node has left the cluster.
    pub dropped_after_leave: u64,
    /// Errors foca reported on timers (a driver that delivers timers late or out of order causes these).
    pub timer_errors: u64,
    /// Announces sent to seeds and down members.
    pub announces_sent: u64,
    /// `Up` events.
    pub member_up_events: u64,
    /// `Down` events.
    pub member_down_events: u64,
    /// `Renamed` events.
    pub rename_events: u64,
    /// Times this node renewed its identity to rejoin (declared down, or outranked by its own older identity).
    pub rejoins: u64,
    /// Suspects told that they are suspected (so that a live one refutes).
    pub suspect_nudges: u64,
    /// Suspects declared down here because no timer would ever resolve their suspicion.
    pub suspicions_expired: u64,
    /// Packets sent to an outranked identity naming the identity the view holds for its address.
    pub identity_hints_sent: u64,
    /// Suspicion timeouts not delivered to foca because the suspicion had already ended.
    pub stale_suspicion_timers: u64,
    /// Times a name became held by several live members (`NameConflict` events).
    pub name_conflict_events: u64,
    /// Gauge: members seen alive, this node included.
    pub members_alive: u64,
    /// Gauge: members seen suspect.
    pub members_suspect: u64,
    /// Gauge: members seen down and not yet forgotten.
    pub members_down: u64,
}

impl MembershipCounters {
    /// Sets the gauges from the state of every row of the view.
    pub(crate) fn set_gauges(&mut self, states: impl Iterator<Item = MemberState>) {
        (self.members_alive, self.members_suspect, self.members_down) = (0, 0, 0);
        for state in states {
            *match state {
                MemberState::Alive => &mut self.members_alive,
                MemberState::Suspect => &mut self.members_suspect,
                MemberState::Down => &mut self.members_down,
            } += 1;
        }
    }
}

/// The digest of the live rows of `view` (in any order); equal digests mean equal live sets.
pub fn live_digest(view: &[MemberInfo]) -> u64 {
    view.iter()
        .filter(|m| m.state.is_live())
        .fold(0, |sum, m| sum.wrapping_add(row_digest(&m.name, m.gossip_addr, m.client_addr, m.incarnation)))
}

/// One live row's share of the live digest: FNV-1a 64 over its name, addresses and incarnation.
pub(crate) fn row_digest(name: &str, gossip_addr: SocketAddr, client_addr: SocketAddr, incarnation: u64) -> u64 {
    let mut hash = crate::core::digest::Fnv64::default();
    hash.eat(&(name.len() as u64).to_le_bytes());
    hash.eat(name.as_bytes());
    for addr in [gossip_addr, client_addr] {
        match addr.ip() {
            IpAddr::V4(ip) => {
                hash.eat(&[4]);
                hash.eat(&ip.octets());
            }
            IpAddr::V6(ip) => {
                hash.eat(&[6]);
                hash.eat(&ip.octets());
            }
        }
        hash.eat(&addr.port().to_le_bytes());
    }
    hash.eat(&incarnation.to_le_bytes());
    hash.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, state: MemberState) -> MemberInfo {
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        MemberInfo { name: name.into(), gossip_addr: addr, client_addr: addr, incarnation: 7, state }
    }

    #[test]
    fn digest_covers_live_members_only() {
        let a = vec![row("a", MemberState::Alive), row("b", MemberState::Suspect)];
        let mut b = a.clone();
        b.push(row("c", MemberState::Down));
        assert_eq!(live_digest(&a), live_digest(&b));
        b[1].state = MemberState::Down;
        assert_ne!(live_digest(&a), live_digest(&b));
        let mut c = a.clone();
        c[0].incarnation += 1;
        assert_ne!(live_digest(&a), live_digest(&c));
        let mut d = a.clone();
        d.reverse();
        assert_eq!(live_digest(&a), live_digest(&d), "order does not matter");
    }
}
