//! SWIM membership for one node: foca driven sans-IO, with Shoal's identity, wire codec and authentication.
//!
//! `Membership` owns a foca instance and turns every input (a datagram, a timer, a join or leave request) into
//! effects appended to an outbox: datagrams to send, timers to schedule, view changes. It never reads a clock
//! (foca is timer-driven; `now` is taken for uniformity with `core::Node`) and draws randomness only from the
//! seeded `StdRng` it is built with, so the same inputs give the same outputs. Packets from the network go through
//! the size check, then the envelope (mode byte and MAC), then the codec; a packet that fails any step is counted
//! and dropped with no effect on state. Besides foca's protocol, membership runs its own announce round: every
//! `announce_period_ms` it announces to the seeds that are not live members and to a few down members, so
//! groups that started apart merge and a node that lost every peer finds its way back.
//!
//! Two more rules foca leaves to its user. Every suspicion ends within a bound (`suspicion`). And incarnations
//! are monotonic per (name, gossip address): a node that restarts under a lower incarnation than the cluster
//! holds for it (its wall clock stepped back) would lose every address conflict and be refused for as long as
//! peers remember the old identity (`remove_down_after_ms`, a day). So a member that receives a packet from such
//! an outranked identity tells it which identity the cluster holds for its address, and a node that learns of
//! an identity of its own name and address at or above its own incarnation renews itself just above it. This
//! node's own older identities are history, never rows of its view.

pub mod auth;
pub mod codec;
pub mod config;
pub mod effect;
pub mod identity;
pub mod names;
mod suspicion;
pub mod view;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use foca::{Foca, Member, NoCustomBroadcast, State};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

pub use auth::{ClusterSecret, SecretError};
pub use config::{ConfigError, GossipConfig, Profile};
pub use effect::{GossipEffect, GossipTimer};
pub use identity::Identity;
pub use names::NameConflict;
pub use view::{MemberEvent, MemberInfo, MemberState, MembershipCounters};

use crate::core::Millis;
use auth::{Envelope, EnvelopeError};
use codec::RmpCodec;
use effect::Effects;
use suspicion::{SuspectWatch, Verdict};

/// Mixed into the seed of the announce-round RNG so it differs from foca's.
const ANNOUNCE_RNG_SALT: u64 = 0x5ea1_5eed_a770_0001;

/// For this long after it starts, a node also pulls a roster from one random live member in every announce
/// round. A node that (re)starts learns most of the cluster from rosters, and one roster (a Feed: the random
/// members that fit one packet, ~25) every `roster_period_ms` (10 s) left a restarted node of a 100-node cluster
/// unaware of some members for minutes; afterwards, changes arrive by gossip and the slow roster suffices.
const YOUNG_ROSTER_MS: u64 = 60_000;
/// Announce period of a node that knows no member yet.
const ALONE_ANNOUNCE_MS: u64 = 250;

/// One node's membership: its identity, its view of the others, and the SWIM protocol that maintains it.
pub struct Membership {
    foca: Foca<Identity, RmpCodec, StdRng, NoCustomBroadcast>,
    config: GossipConfig,
    envelope: Envelope,
    seeds: Vec<SocketAddr>,
    rng: StdRng,
    counters: MembershipCounters,
    suspects: SuspectWatch,
    /// Announce rounds left in which a roster is also pulled from a random live member (see `YOUNG_ROSTER_MS`).
    young_rounds: u64,
    announce_scheduled: bool,
    sweep_scheduled: bool,
    left: bool,
    /// The name conflicts last reported, so each is reported once when it appears.
    conflicts: Vec<NameConflict>,
}

impl Membership {
    /// A node that knows nobody yet; `rng_seed` fixes every random choice it makes.
    pub fn new(
        identity: Identity,
        config: GossipConfig,
        secret: Option<ClusterSecret>,
        rng_seed: u64,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        if identity.name.len() > identity::NAME_BYTES_MAX {
            return Err(ConfigError::NameTooLong(identity.name.len()));
        }
        let envelope = Envelope::new(secret);
        let foca_config = config.to_foca(envelope.overhead());
        let foca = Foca::new(identity, foca_config, StdRng::seed_from_u64(rng_seed), RmpCodec);
        Ok(Self {
            foca,
            young_rounds: YOUNG_ROSTER_MS / config.announce_period_ms,
            config,
            envelope,
            seeds: Vec::new(),
            rng: StdRng::seed_from_u64(rng_seed ^ ANNOUNCE_RNG_SALT),
            counters: MembershipCounters::default(),
            suspects: SuspectWatch::default(),
            announce_scheduled: false,
            sweep_scheduled: false,
            left: false,
            conflicts: Vec::new(),
        })
    }

    /// Sets the seeds and announces to them now; the announce round then repeats every `announce_period_ms`.
    pub fn join(&mut self, _now: Millis, seeds: &[SocketAddr], out: &mut Vec<GossipEffect>) {
        if self.left {
            return;
        }
        self.set_seeds(seeds);
        self.announce_round(out);
        self.schedule_announce(out);
        self.schedule_sweep(out);
    }

    /// Replaces the seed addresses (the runtime re-resolves DNS seeds and calls this); our own address is ignored.
    pub fn set_seeds(&mut self, seeds: &[SocketAddr]) {
        let own = self.foca.identity().gossip_addr;
        self.seeds = seeds.iter().copied().filter(|addr| *addr != own).collect();
        self.seeds.sort_unstable();
        self.seeds.dedup();
    }

    /// Handles one datagram received from `from` (informational: the authenticated header names the sender).
    pub fn handle_packet(&mut self, _now: Millis, _from: SocketAddr, packet: &[u8], out: &mut Vec<GossipEffect>) {
        self.counters.packets_received += 1;
        if self.left {
            self.counters.dropped_after_leave += 1;
            return;
        }
        if packet.len() > self.config.max_packet_size {
            self.counters.rejected_oversize += 1;
            return;
        }
        let payload = match self.envelope.open(packet) {
            Ok(payload) => payload,
            Err(EnvelopeError::Truncated) => return self.counters.rejected_truncated += 1,
            Err(EnvelopeError::Garbage) => return self.counters.rejected_decode += 1,
            Err(EnvelopeError::Auth) => return self.counters.rejected_auth += 1,
        };
        self.hint_outranked_sender(payload, out);
        let first_effect = out.len();
        let mut effects = Effects { envelope: &self.envelope, counters: &mut self.counters, out };
        if let Err(error) = self.foca.handle_data(payload, &mut effects) {
            match error {
                foca::Error::Decode(_) | foca::Error::MalformedPacket | foca::Error::DataTooBig => {
                    self.counters.rejected_decode += 1;
                }
                _ => self.counters.rejected_protocol += 1,
            }
        }
        self.outrank_own_past(first_effect, out);
        self.check_names(first_effect, out);
    }

    /// Handles a timer scheduled by an earlier `Schedule` effect.
    pub fn handle_timer(&mut self, _now: Millis, timer: GossipTimer, out: &mut Vec<GossipEffect>) {
        if self.left {
            return;
        }
        match timer {
            GossipTimer::Foca(timer) => {
                if self.is_stale_suspicion(&timer) {
                    self.counters.stale_suspicion_timers += 1;
                    return;
                }
                let first_effect = out.len();
                let mut effects = Effects { envelope: &self.envelope, counters: &mut self.counters, out };
                if self.foca.handle_timer(timer, &mut effects).is_err() {
                    self.counters.timer_errors += 1;
                }
                self.check_names(first_effect, out);
            }
            GossipTimer::Announce => {
                self.announce_scheduled = false;
                self.announce_round(out);
                self.schedule_announce(out);
            }
            GossipTimer::SuspectSweep => {
                self.sweep_scheduled = false;
                self.sweep_suspects(out);
                self.schedule_sweep(out);
            }
        }
    }

    /// Leaves the cluster gracefully: tells a few members this identity is down, then ignores all input.
    pub fn leave(&mut self, _now: Millis, out: &mut Vec<GossipEffect>) {
        if self.left {
            return;
        }
        let mut effects = Effects { envelope: &self.envelope, counters: &mut self.counters, out };
        if self.foca.leave_cluster(&mut effects).is_err() {
            self.counters.timer_errors += 1;
        }
        self.left = true;
    }

    /// This node's current identity (renewed after being declared down).
    pub fn identity(&self) -> &Identity {
        self.foca.identity()
    }

    /// The configuration in force.
    pub fn config(&self) -> &GossipConfig {
        &self.config
    }

    /// Every known member, this node included (under its current identity only), sorted by name, then address.
    pub fn members(&self) -> Vec<MemberInfo> {
        let mut view: Vec<MemberInfo> = self.rows().map(|(id, state)| MemberInfo::new(id, state)).collect();
        // Rows equal under the order are equal in every field, so an unstable sort gives the same view.
        view.sort_unstable();
        view
    }

    /// The rows of `members()` as borrowed identities with their state, in no particular order (no copy, no sort).
    pub fn rows(&self) -> impl Iterator<Item = (&Identity, MemberState)> {
        self.others()
            .map(|member| (member.id(), member_state(member.state())))
            .chain(std::iter::once((self.foca.identity(), self.own_state())))
    }

    /// The live (alive or suspect) members, this node included, sorted.
    pub fn live_members(&self) -> Vec<MemberInfo> {
        self.members().into_iter().filter(|m| m.state.is_live()).collect()
    }

    /// A digest of the live set: two nodes with equal digests see the same live members (equal to
    /// `view::live_digest(&self.members())`, computed without building the view).
    pub fn live_digest(&self) -> u64 {
        let own = (self.foca.identity(), self.own_state());
        self.others()
            .map(|m| (m.id(), member_state(m.state())))
            .chain(std::iter::once(own))
            .filter(|(_, state)| state.is_live())
            .fold(0, |sum, (id, _)| {
                sum.wrapping_add(view::row_digest(&id.name, id.gossip_addr, id.client_addr, id.incarnation))
            })
    }

    /// Packet, event and view counters, with the gauges computed from the view now.
    pub fn counters(&self) -> MembershipCounters {
        let mut counters = self.counters.clone();
        counters.set_gauges(self.others().map(|m| member_state(m.state())).chain(std::iter::once(self.own_state())));
        counters
    }

    fn own_state(&self) -> MemberState {
        if self.left {
            MemberState::Down
        } else {
            MemberState::Alive
        }
    }

    /// foca's view minus this node's own older identities (foca records those as `down` when it hears of them).
    fn others(&self) -> impl Iterator<Item = &Member<Identity>> {
        let own = self.foca.identity().gossip_addr;
        self.foca.iter_membership_state().filter(move |m| m.id().gossip_addr != own)
    }

    /// Announces to every seed that is not a live member, to up to `announce_down_max` down members and, while
    /// this node is young, to one random live member (for its roster).
    fn announce_round(&mut self, out: &mut Vec<GossipEffect>) {
        let live: Vec<SocketAddr> = self.foca.iter_members().map(|m| m.id().gossip_addr).collect();
        let mut targets: Vec<Identity> =
            self.seeds.iter().filter(|seed| !live.contains(seed)).map(|seed| Identity::placeholder(*seed)).collect();
        let mut down: Vec<Identity> = self
            .others()
            .filter(|m| m.state() == State::Down && !self.seeds.contains(&m.id().gossip_addr))
            .map(|m| m.id().clone())
            .collect();
        down.sort();
        for _ in 0..self.config.announce_down_max.min(down.len()) {
            let pick = self.rng.random_range(0..down.len());
            targets.push(down.swap_remove(pick));
        }
        if self.young_rounds > 0 && !live.is_empty() {
            self.young_rounds -= 1;
            let pick = live[self.rng.random_range(0..live.len())];
            targets.push(Identity::placeholder(pick));
        }
        for target in targets {
            let mut effects = Effects { envelope: &self.envelope, counters: &mut self.counters, out };
            if self.foca.announce(target, &mut effects).is_ok() {
                self.counters.announces_sent += 1;
            }
        }
    }

    fn schedule_announce(&mut self, out: &mut Vec<GossipEffect>) {
        if !self.announce_scheduled {
            self.announce_scheduled = true;
            // A node that knows nobody yet (nodes started together, seeds not up) knocks more often, so a cluster
            // started all at once forms within a fraction of a second instead of one announce period.
            let alone = self.foca.num_members() == 0 && !self.seeds.is_empty();
            let period = self.config.announce_period_ms;
            let after_ms = if alone { period.min(ALONE_ANNOUNCE_MS) } else { period };
            out.push(GossipEffect::Schedule { after_ms, timer: GossipTimer::Announce });
        }
    }

    fn schedule_sweep(&mut self, out: &mut Vec<GossipEffect>) {
        if !self.sweep_scheduled {
            self.sweep_scheduled = true;
            let after_ms = self.config.suspect_to_down_after_ms;
            out.push(GossipEffect::Schedule { after_ms, timer: GossipTimer::SuspectSweep });
        }
    }

    /// Tells each suspect it is suspected, and declares down the suspects no timer will ever resolve.
    fn sweep_suspects(&mut self, out: &mut Vec<GossipEffect>) {
        for verdict in self.suspects.sweep(self.foca.iter_membership_state()) {
            match verdict {
                Verdict::Nudge(suspect) => {
                    let to = suspect.id().clone();
                    self.send_gossip(&to, &[suspect], out);
                    self.counters.suspect_nudges += 1;
                }
                Verdict::Expire(suspect) => {
                    let down = Member::new(suspect.id().clone(), suspect.incarnation(), State::Down);
                    let mut effects = Effects { envelope: &self.envelope, counters: &mut self.counters, out };
                    if self.foca.apply_many(std::iter::once(down), true, &mut effects).is_ok() {
                        self.counters.suspicions_expired += 1;
                    }
                }
            }
        }
    }

    /// When `payload` comes from an identity that loses its address conflict to one this node knows under the
    /// same name, tells the sender about that identity (foca would only answer `TurnUndead`, and the sender's
    /// renewals, one incarnation at a time, might never catch up). Only announces and gossip are looked at:
    /// they are what a restarted or renewed node sends first, and skipping probe traffic spares a search of
    /// the view for most packets.
    fn hint_outranked_sender(&mut self, payload: &[u8], out: &mut Vec<GossipEffect>) {
        let Some(header) = codec::peek_header(payload) else { return };
        if !matches!(header.message, foca::Message::Announce | foca::Message::Gossip) {
            return;
        }
        let sender = header.src;
        let winner = self.foca.iter_membership_state().find(|m| {
            let known = m.id();
            known.gossip_addr == sender.gossip_addr
                && known.name == sender.name
                && known != &sender
                && foca::Identity::win_addr_conflict(known, &sender)
        });
        if let Some(winner) = winner.cloned() {
            self.send_gossip(&sender, &[winner], out);
            self.counters.identity_hints_sent += 1;
        }
    }

    /// Renews this node's identity above any identity of its own name and address that the last call recorded
    /// at or above its current incarnation. foca records an identity with our address only as `down`, and then
    /// schedules its removal: the `RemoveDown` timers among the effects from `out[first_effect..]` name exactly
    /// the identities just recorded, so the view need not be searched.
    fn outrank_own_past(&mut self, first_effect: usize, out: &mut Vec<GossipEffect>) {
        let own = self.foca.identity();
        let Some(highest) = out[first_effect..]
            .iter()
            .filter_map(|effect| match effect {
                GossipEffect::Schedule { timer: GossipTimer::Foca(foca::Timer::RemoveDown(id)), .. } => Some(id),
                _ => None,
            })
            .filter(|id| id.gossip_addr == own.gossip_addr && id.name == own.name)
            .map(|id| id.incarnation)
            .max()
            .filter(|incarnation| *incarnation >= own.incarnation)
        else {
            return;
        };
        let Some(incarnation) = highest.checked_add(1) else { return };
        let renewed = Identity { incarnation, ..own.clone() };
        let mut effects = Effects { envelope: &self.envelope, counters: &mut self.counters, out };
        if self.foca.change_identity(renewed.clone(), &mut effects).is_ok() {
            self.counters.rejoins += 1;
            out.push(GossipEffect::Changed(MemberEvent::Rejoined(renewed)));
        }
    }

    /// The names held by several live members now (a configuration error), sorted by name.
    pub fn name_conflicts(&self) -> Vec<NameConflict> {
        names::conflicts(self.rows())
    }

    /// After effects from `out[first_effect..]` that changed the view, report each name conflict that is new
    /// since the last report. Only view changes can create one, so calls that changed nothing cost nothing.
    fn check_names(&mut self, first_effect: usize, out: &mut Vec<GossipEffect>) {
        let changed = out[first_effect..].iter().any(|e| matches!(e, GossipEffect::Changed(_)));
        if !changed {
            return;
        }
        let now = self.name_conflicts();
        for conflict in &now {
            if !self.conflicts.contains(conflict) {
                self.counters.name_conflict_events += 1;
                out.push(GossipEffect::Changed(MemberEvent::NameConflict(conflict.clone())));
            }
        }
        self.conflicts = now;
    }

    /// Whether `timer` is a suspicion timeout for a suspicion that already ended (the member refuted it, was
    /// renamed, declared down, or forgotten). foca ignores such a timer except for one thing: it still sends the
    /// member `TurnUndead` (foca 2.0.0 checks the member's incarnation before declaring it down, but not before
    /// that courtesy message), and the live member, told it is down, renews its identity. Under 5% packet loss
    /// that renewed a live node of a 10-node cluster every minute or so; such timers are not delivered.
    fn is_stale_suspicion(&self, timer: &foca::Timer<Identity>) -> bool {
        let foca::Timer::ChangeSuspectToDown { member_id, incarnation, .. } = timer else { return false };
        !self
            .foca
            .iter_membership_state()
            .any(|m| m.id() == member_id && m.incarnation() == *incarnation && m.state() == State::Suspect)
    }

    /// Sends a foca `Gossip` message carrying `updates` to `to`, outside foca's own schedule.
    fn send_gossip(&mut self, to: &Identity, updates: &[Member<Identity>], out: &mut Vec<GossipEffect>) {
        if let Ok(payload) = codec::gossip_packet(self.foca.identity(), to, updates) {
            self.counters.packets_sent += 1;
            out.push(GossipEffect::Send { to: to.gossip_addr, packet: self.envelope.seal(&payload) });
        }
    }
}

fn member_state(state: State) -> MemberState {
    match state {
        State::Alive => MemberState::Alive,
        State::Suspect => MemberState::Suspect,
        State::Down => MemberState::Down,
    }
}
