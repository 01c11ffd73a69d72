//! What membership asks its driver to do, and the adapter that turns foca's runtime callbacks into it.
//!
//! foca reports effects through its `Runtime` trait; `Effects` implements it by sealing each packet in the
//! envelope, turning timers into `Schedule` effects and notifications into `Changed` events, and appending them
//! to the caller's outbox in the order foca produced them.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use foca::{Notification, Runtime, Timer};

use super::auth::Envelope;
use super::identity::Identity;
use super::view::{MemberEvent, MembershipCounters};

/// A timer the driver must hand back through `Membership::handle_timer` once `after_ms` have passed.
///
/// Every scheduled timer must be delivered, even late. When several are due at the same time, deliver them in
/// ascending `Ord` order (foca needs, for instance, an indirect probe before the next probe round); the order
/// only ranks the timer kind, so sort stably to keep their scheduling order among equals.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GossipTimer {
    /// A foca protocol timer (probe, indirect probe, suspicion, periodic gossip, forgetting a down member).
    Foca(Timer<Identity>),
    /// Membership's own round: announce to seeds that are not live members and to a few down members.
    Announce,
    /// Membership's suspicion sweep: tell each suspect it is suspected, and declare down a suspect whose
    /// suspicion outlived foca's own timer (see `Membership::sweep_suspects`).
    SuspectSweep,
}

/// One thing the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GossipEffect {
    /// Send `packet` as one UDP datagram to `to`.
    Send {
        /// Destination gossip address.
        to: SocketAddr,
        /// The datagram, envelope included.
        packet: Bytes,
    },
    /// Call `handle_timer(timer)` after `after_ms` milliseconds.
    Schedule {
        /// Delay from the time of the call that produced this effect.
        after_ms: u64,
        /// The timer to hand back.
        timer: GossipTimer,
    },
    /// The membership view changed.
    Changed(MemberEvent),
}

/// foca's runtime for one call: collects effects into the caller's outbox.
pub(crate) struct Effects<'a> {
    pub(crate) envelope: &'a Envelope,
    pub(crate) counters: &'a mut MembershipCounters,
    pub(crate) out: &'a mut Vec<GossipEffect>,
}

impl Runtime<Identity> for Effects<'_> {
    fn notify(&mut self, notification: Notification<'_, Identity>) {
        let event = match notification {
            Notification::MemberUp(id) => {
                self.counters.member_up_events += 1;
                MemberEvent::Up(id.clone())
            }
            Notification::MemberDown(id) => {
                self.counters.member_down_events += 1;
                MemberEvent::Down(id.clone())
            }
            Notification::Rename(old, new) => {
                self.counters.rename_events += 1;
                MemberEvent::Renamed { old: old.clone(), new: new.clone() }
            }
            Notification::Rejoin(id) => {
                self.counters.rejoins += 1;
                MemberEvent::Rejoined(id.clone())
            }
            // Connection-state changes are visible in `members()`; nothing for the node to act on.
            Notification::Active | Notification::Idle | Notification::Defunct => return,
        };
        self.out.push(GossipEffect::Changed(event));
    }

    fn send_to(&mut self, to: Identity, data: &[u8]) {
        self.counters.packets_sent += 1;
        self.out.push(GossipEffect::Send { to: to.gossip_addr, packet: self.envelope.seal(data) });
    }

    fn submit_after(&mut self, event: Timer<Identity>, after: Duration) {
        let after_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        self.out.push(GossipEffect::Schedule { after_ms, timer: GossipTimer::Foca(event) });
    }
}
