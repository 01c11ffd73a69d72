//! Gossip settings: a LAN and a WAN profile whose every value can be overridden, and their mapping onto foca.
//!
//! Durations are in milliseconds and sizes in bytes, as the names say. `validate` states the limits; the
//! LAN profile is tuned so that a crashed node is declared down by every member of a 10-node cluster within
//! 2.5 s (p99, simulated) while 5% random packet loss causes no false down and no identity renewal over 10
//! minutes (see the scenario tests in `tests/scenarios.rs` for the measurements). A probe raises a false
//! suspicion only when the direct round trip and all `num_indirect_probes` indirect ones fail: with 5% loss per
//! datagram that is about 0.1 x 0.19^k per probe, so the LAN profile asks 4 members (k = 3 gave five times
//! more suspicions in the lossy scenarios); indirect probes run in parallel, so detection time does not change.

use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

/// Which set of defaults a configuration started from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Profile {
    /// Low-latency network: fast probes, short suspicion.
    #[default]
    Lan,
    /// High or variable latency: slow probes, long suspicion.
    Wan,
}

/// Everything that tunes failure detection, dissemination and rejoining.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipConfig {
    /// The profile the defaults came from.
    pub profile: Profile,
    /// How often each member probes one other member.
    pub probe_period_ms: u64,
    /// How long a direct probe waits for its ack before asking others to probe indirectly.
    pub probe_rtt_ms: u64,
    /// How many members are asked to probe indirectly.
    pub num_indirect_probes: usize,
    /// How long a suspect has to refute the suspicion before it is declared down.
    pub suspect_to_down_after_ms: u64,
    /// How long a down member is remembered (a renewed or restarted identity replaces it earlier).
    pub remove_down_after_ms: u64,
    /// How many times each membership update is piggybacked before it is dropped.
    pub max_transmissions: u8,
    /// Largest datagram sent or accepted, envelope and MAC tag included.
    pub max_packet_size: usize,
    /// How often pending updates are pushed to `gossip_fanout` random members.
    pub gossip_period_ms: u64,
    /// How many members each periodic gossip goes to.
    pub gossip_fanout: usize,
    /// How often the seeds that are not live members, and a few down members, are announced to.
    pub announce_period_ms: u64,
    /// How many down members each announce round contacts.
    pub announce_down_max: usize,
    /// How often one random live member is asked for its roster (foca's periodic announce).
    pub roster_period_ms: u64,
}

/// A configuration that breaks one of `GossipConfig::validate`'s rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A duration or count that must be positive is zero.
    #[error("gossip setting `{0}` must be greater than zero")]
    Zero(&'static str),
    /// The probe RTT does not leave room for the indirect probe within the probe period.
    #[error("probe_rtt_ms ({rtt_ms}) must be less than probe_period_ms ({period_ms})")]
    RttNotBelowPeriod {
        /// The configured RTT.
        rtt_ms: u64,
        /// The configured period.
        period_ms: u64,
    },
    /// The packet size is outside what a UDP datagram can carry with room for a header.
    #[error("max_packet_size ({0}) must be within {PACKET_SIZE_MIN}..={PACKET_SIZE_MAX}")]
    PacketSize(usize),
    /// The node name is longer than peers accept.
    #[error("node name is {0} bytes, longer than {max}", max = super::identity::NAME_BYTES_MAX)]
    NameTooLong(usize),
}

/// Smallest accepted `max_packet_size`: room for a header with three identities, envelope and tag.
pub const PACKET_SIZE_MIN: usize = 512;
/// Largest accepted `max_packet_size`: what a UDP datagram can carry.
pub const PACKET_SIZE_MAX: usize = 65_507;

impl Default for GossipConfig {
    fn default() -> Self {
        Self::lan()
    }
}

impl GossipConfig {
    /// Defaults for a LAN (sub-millisecond to few-millisecond RTT), tuned for clusters of up to ~50 nodes.
    pub fn lan() -> Self {
        Self {
            profile: Profile::Lan,
            probe_period_ms: 250,
            probe_rtt_ms: 80,
            num_indirect_probes: 4,
            suspect_to_down_after_ms: 1_000,
            remove_down_after_ms: 24 * 3_600_000,
            max_transmissions: 8,
            max_packet_size: 1_400,
            gossip_period_ms: 100,
            gossip_fanout: 3,
            announce_period_ms: 2_000,
            announce_down_max: 2,
            roster_period_ms: 10_000,
        }
    }

    /// Defaults for a WAN (tens to hundreds of ms RTT, occasional spikes).
    pub fn wan() -> Self {
        Self {
            profile: Profile::Wan,
            probe_period_ms: 2_000,
            probe_rtt_ms: 800,
            num_indirect_probes: 4,
            suspect_to_down_after_ms: 10_000,
            remove_down_after_ms: 24 * 3_600_000,
            max_transmissions: 10,
            max_packet_size: 1_200,
            gossip_period_ms: 500,
            gossip_fanout: 4,
            announce_period_ms: 10_000,
            announce_down_max: 3,
            roster_period_ms: 60_000,
        }
    }

    /// The defaults of `profile`.
    pub fn for_profile(profile: Profile) -> Self {
        match profile {
            Profile::Lan => Self::lan(),
            Profile::Wan => Self::wan(),
        }
    }

    /// Checks the limits every setting must respect.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("probe_period_ms", self.probe_period_ms),
            ("probe_rtt_ms", self.probe_rtt_ms),
            ("num_indirect_probes", self.num_indirect_probes as u64),
            ("suspect_to_down_after_ms", self.suspect_to_down_after_ms),
            ("remove_down_after_ms", self.remove_down_after_ms),
            ("max_transmissions", u64::from(self.max_transmissions)),
            ("gossip_period_ms", self.gossip_period_ms),
            ("gossip_fanout", self.gossip_fanout as u64),
            ("announce_period_ms", self.announce_period_ms),
            ("roster_period_ms", self.roster_period_ms),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::Zero(name));
        }
        if self.probe_rtt_ms >= self.probe_period_ms {
            return Err(ConfigError::RttNotBelowPeriod { rtt_ms: self.probe_rtt_ms, period_ms: self.probe_period_ms });
        }
        if !(PACKET_SIZE_MIN..=PACKET_SIZE_MAX).contains(&self.max_packet_size) {
            return Err(ConfigError::PacketSize(self.max_packet_size));
        }
        Ok(())
    }

    /// foca's view of this configuration; `envelope_bytes` is what the authentication layer adds to each packet.
    ///
    /// Call only on a validated configuration (zeros are clamped to one rather than trusted).
    pub(crate) fn to_foca(&self, envelope_bytes: usize) -> foca::Config {
        let ms = Duration::from_millis;
        let nonzero = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        foca::Config {
            probe_period: ms(self.probe_period_ms),
            probe_rtt: ms(self.probe_rtt_ms),
            num_indirect_probes: nonzero(self.num_indirect_probes),
            max_transmissions: NonZeroU8::new(self.max_transmissions).unwrap_or(NonZeroU8::MIN),
            suspect_to_down_after: ms(self.suspect_to_down_after_ms),
            remove_down_after: Some(ms(self.remove_down_after_ms)),
            max_packet_size: nonzero(self.max_packet_size.saturating_sub(envelope_bytes)),
            notify_down_members: true,
            periodic_announce: Some(foca::PeriodicParams {
                frequency: ms(self.roster_period_ms),
                num_members: NonZeroUsize::MIN,
            }),
            // Announcing to down members is done by `Membership`'s own announce round, which also runs while
            // this node has no live peer at all (foca's periodic tasks stop then).
            periodic_announce_to_down_members: None,
            periodic_gossip: Some(foca::PeriodicParams {
                frequency: ms(self.gossip_period_ms),
                num_members: nonzero(self.gossip_fanout),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_valid() {
        assert_eq!(GossipConfig::lan().validate(), Ok(()));
        assert_eq!(GossipConfig::wan().validate(), Ok(()));
    }

    #[test]
    fn bad_settings_are_named() {
        let mut config = GossipConfig::lan();
        config.gossip_fanout = 0;
        assert_eq!(config.validate(), Err(ConfigError::Zero("gossip_fanout")));
        let mut config = GossipConfig::lan();
        config.probe_rtt_ms = config.probe_period_ms;
        assert!(matches!(config.validate(), Err(ConfigError::RttNotBelowPeriod { .. })));
        let mut config = GossipConfig::lan();
        config.max_packet_size = 100;
        assert_eq!(config.validate(), Err(ConfigError::PacketSize(100)));
    }
}
