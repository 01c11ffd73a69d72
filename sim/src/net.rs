//! The network model: per-link delay, loss, duplication and reordering, and partitions of every shape.
//!
//! Every directed link has a base delay drawn once per seed; each datagram adds uniform jitter, and with
//! `reorder_ppm` an extra delay that lets later datagrams overtake it. A cut link drops everything: partitions are
//! just sets of cut directed links, so symmetric, one-way and bridge partitions are the same mechanism. All
//! randomness comes from the network's own RNG, derived from the seed.
//!
//! Peer (data) messages model TCP on the same links: a cut link drops them, a working link never loses,
//! duplicates or reorders them. Each directed link delivers in send order (FIFO): a message never arrives before
//! the one sent ahead of it on that link.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::event::Ms;

/// Parts per million.
pub type Ppm = u32;

/// How the network behaves, drawn once per seed.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    /// Range of the per-link base delay.
    pub link_delay_ms_min: Ms,
    pub link_delay_ms_max: Ms,
    /// Extra uniform delay per datagram, 0..=jitter_ms.
    pub jitter_ms: Ms,
    pub loss_ppm: Ppm,
    pub duplicate_ppm: Ppm,
    pub reorder_ppm: Ppm,
    /// Extra delay of a reordered datagram, 1..=reorder_delay_ms_max.
    pub reorder_delay_ms_max: Ms,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            link_delay_ms_min: 1,
            link_delay_ms_max: 3,
            jitter_ms: 2,
            loss_ppm: 0,
            duplicate_ppm: 0,
            reorder_ppm: 0,
            reorder_delay_ms_max: 20,
        }
    }
}

/// A partition: which directed links it cuts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cut {
    /// `side` and the rest cannot talk in either direction.
    Split { side: Vec<usize> },
    /// Datagrams from `from` to the rest are lost; the other direction works.
    OneWay { from: Vec<usize> },
    /// `a` and `b` cannot talk, but `bridge` talks to both.
    Bridge { a: Vec<usize>, b: Vec<usize>, bridge: usize },
    /// Only node `node` is cut off from everyone.
    Isolate { node: usize },
}

/// Datagrams sent and what became of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    pub sent: u64,
    pub lost: u64,
    pub cut: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

/// Peer messages sent and what became of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Messages handed to the network.
    pub sent: u64,
    /// Their encoded size (whole frames, as the runtime sends them), in bytes.
    pub bytes: u64,
    /// Messages dropped on a cut link.
    pub cut: u64,
    /// Connection failures reported to senders (destination down or restarted).
    pub lost: u64,
}

/// The network among `n` nodes.
pub struct Net {
    n: usize,
    config: NetConfig,
    base_ms: Vec<u16>,
    blocked: Vec<bool>,
    /// Per directed link, the delivery time of the last peer message (FIFO order).
    peer_last_ms: Vec<Ms>,
    rng: StdRng,
    /// Jitter of peer messages: a stream of its own, so data traffic does not shift the datagrams' randomness.
    peer_rng: StdRng,
    pub stats: NetStats,
    pub peer_stats: PeerStats,
}

impl Net {
    pub fn new(n: usize, config: NetConfig, seed: u64) -> Net {
        let mut rng = StdRng::seed_from_u64(seed);
        let (lo, hi) = (config.link_delay_ms_min, config.link_delay_ms_max.max(config.link_delay_ms_min));
        let base_ms = (0..n * n).map(|_| u16::try_from(rng.random_range(lo..=hi)).unwrap_or(u16::MAX)).collect();
        Net {
            n,
            config,
            base_ms,
            blocked: vec![false; n * n],
            peer_last_ms: vec![0; n * n],
            rng,
            peer_rng: StdRng::seed_from_u64(seed ^ 0x7065_6572_5f6c_696e),
            stats: NetStats::default(),
            peer_stats: PeerStats::default(),
        }
    }

    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// Replaces loss, duplication and reordering rates (the healing phase calms the network down).
    pub fn set_rates(&mut self, loss_ppm: Ppm, duplicate_ppm: Ppm, reorder_ppm: Ppm) {
        self.config.loss_ppm = loss_ppm;
        self.config.duplicate_ppm = duplicate_ppm;
        self.config.reorder_ppm = reorder_ppm;
    }

    /// Whether the link `from -> to` is cut.
    pub fn is_cut(&self, from: usize, to: usize) -> bool {
        self.blocked[from * self.n + to]
    }

    /// Applies a partition on top of the cuts in force.
    pub fn cut(&mut self, cut: &Cut) {
        let all: Vec<usize> = (0..self.n).collect();
        let rest = |side: &[usize]| -> Vec<usize> { all.iter().copied().filter(|i| !side.contains(i)).collect() };
        match cut {
            Cut::Split { side } => {
                let other = rest(side);
                self.block(side, &other);
                self.block(&other, side);
            }
            Cut::OneWay { from } => self.block(from, &rest(from)),
            Cut::Bridge { a, b, .. } => {
                self.block(a, b);
                self.block(b, a);
            }
            Cut::Isolate { node } => {
                let other = rest(&[*node]);
                self.block(&[*node], &other);
                self.block(&other, &[*node]);
            }
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.blocked.fill(false);
    }

    fn block(&mut self, from: &[usize], to: &[usize]) {
        for &f in from {
            for &t in to {
                self.blocked[f * self.n + t] = true;
            }
        }
    }

    /// Routes one datagram: the delays after which its copies arrive (none if lost or cut, two if duplicated).
    pub fn route(&mut self, from: usize, to: usize) -> [Option<Ms>; 2] {
        self.stats.sent += 1;
        if self.is_cut(from, to) {
            self.stats.cut += 1;
            return [None, None];
        }
        if self.chance(self.config.loss_ppm) {
            self.stats.lost += 1;
            return [None, None];
        }
        let first = Some(self.delay(from, to));
        let second = if self.chance(self.config.duplicate_ppm) {
            self.stats.duplicated += 1;
            Some(self.delay(from, to))
        } else {
            None
        };
        [first, second]
    }

    /// Routes one peer message of `bytes` sent at `now`: when it arrives, or `None` if the link is cut. Never
    /// lost, duplicated or reordered on a working link; arrival times on a link only grow.
    pub fn route_peer(&mut self, from: usize, to: usize, now: Ms, bytes: usize) -> Option<Ms> {
        self.peer_stats.sent += 1;
        self.peer_stats.bytes += bytes as u64;
        if self.is_cut(from, to) {
            self.peer_stats.cut += 1;
            return None;
        }
        let link = from * self.n + to;
        let jitter = if self.config.jitter_ms > 0 { self.peer_rng.random_range(0..=self.config.jitter_ms) } else { 0 };
        let at = (now + Ms::from(self.base_ms[link]) + jitter).max(self.peer_last_ms[link]);
        self.peer_last_ms[link] = at;
        Some(at)
    }

    /// The round trip of link `from -> to` without jitter: how long a refused connection takes to report.
    pub fn round_trip_ms(&self, from: usize, to: usize) -> Ms {
        Ms::from(self.base_ms[from * self.n + to]) + Ms::from(self.base_ms[to * self.n + from])
    }

    fn delay(&mut self, from: usize, to: usize) -> Ms {
        let base = Ms::from(self.base_ms[from * self.n + to]);
        let jitter = if self.config.jitter_ms > 0 { self.rng.random_range(0..=self.config.jitter_ms) } else { 0 };
        let reorder = if self.chance(self.config.reorder_ppm) {
            self.stats.reordered += 1;
            self.rng.random_range(1..=self.config.reorder_delay_ms_max.max(1))
        } else {
            0
        };
        base + jitter + reorder
    }

    fn chance(&mut self, ppm: Ppm) -> bool {
        ppm > 0 && self.rng.random_range(0..1_000_000) < ppm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cut_the_right_links() {
        let mut net = Net::new(4, NetConfig::default(), 1);
        net.cut(&Cut::OneWay { from: vec![0] });
        assert!(net.is_cut(0, 1) && !net.is_cut(1, 0));
        net.heal();
        net.cut(&Cut::Bridge { a: vec![0], b: vec![1, 2], bridge: 3 });
        assert!(net.is_cut(0, 1) && net.is_cut(2, 0) && !net.is_cut(0, 3) && !net.is_cut(3, 2) && !net.is_cut(1, 2));
        net.heal();
        net.cut(&Cut::Split { side: vec![0, 1] });
        assert!(net.is_cut(0, 2) && net.is_cut(3, 1) && !net.is_cut(0, 1) && !net.is_cut(2, 3));
        assert_eq!(net.route(0, 2), [None, None]);
        assert_eq!(net.stats.cut, 1);
    }

    #[test]
    fn peer_links_keep_order_and_drop_only_when_cut() {
        let config = NetConfig { loss_ppm: 1_000_000, jitter_ms: 50, reorder_ppm: 1_000_000, ..NetConfig::default() };
        let mut net = Net::new(3, config, 9);
        let arrivals: Vec<Ms> = (0..200).map(|t| net.route_peer(0, 1, t / 4, 10).expect("link works")).collect();
        assert!(arrivals.windows(2).all(|w| w[0] <= w[1]), "FIFO per link despite jitter: {arrivals:?}");
        net.cut(&Cut::OneWay { from: vec![0] });
        assert_eq!(net.route_peer(0, 1, 100, 10), None);
        assert!(net.route_peer(1, 0, 100, 10).is_some());
        assert_eq!((net.peer_stats.sent, net.peer_stats.bytes, net.peer_stats.cut), (202, 2_020, 1));
    }

    #[test]
    fn total_loss_loses_everything() {
        let config = NetConfig { loss_ppm: 1_000_000, ..NetConfig::default() };
        let mut net = Net::new(2, config, 7);
        assert!((0..100).all(|_| net.route(0, 1) == [None, None]));
    }
}
