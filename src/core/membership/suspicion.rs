//! The suspicion watchdog: every suspicion in this node's view ends, refuted or declared down, within a bound.
//!
//! foca declares a suspect down only from the timer its *prober* armed, and that timer is void as soon as foca's
//! timer token changes (this node renewed its identity, lost every peer, or was declared down itself). A
//! suspicion learned through gossip gets no timer at all. Either way, a live suspect that never hears of its
//! suspicion stays `suspect` in this view for good (simulator seed 148: after a partition healed, n4 kept n0
//! suspect forever on a lossless network, because n4 had renewed its identity in between).
//!
//! The watchdog restores SWIM's rule that whoever holds a suspicion also times it out. Every
//! `suspect_to_down_after_ms` it sweeps the view: each suspect is told that it is suspected (a live one then
//! refutes by bumping its foca incarnation, which every later message of its carries), and a suspect seen under
//! the same identity and foca incarnation on `SWEEPS_TO_DOWN` consecutive sweeps, so for longer than foca's own
//! timer allows, is declared down here. Only this sweep's suspects are remembered: the state is bounded by the
//! view.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use foca::{Incarnation, Member, State};

use super::identity::Identity;

/// A suspect still suspect, unchanged, on this many consecutive sweeps is declared down. With sweeps every
/// `suspect_to_down_after_ms`, that is two to three suspicion timeouts after the suspicion began, so foca's own
/// timer, when it is still valid, always acts first.
pub(crate) const SWEEPS_TO_DOWN: u8 = 3;

/// What a sweep decided for one suspect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Tell the member it is suspected under this foca incarnation, so it can refute.
    Nudge(Member<Identity>),
    /// The suspicion outlived every timer: declare the member down at this foca incarnation.
    Expire(Member<Identity>),
}

/// The suspects of the last sweep: gossip address -> (identity, foca incarnation, consecutive sweeps seen).
#[derive(Debug, Default)]
pub(crate) struct SuspectWatch {
    seen: BTreeMap<SocketAddr, (Identity, Incarnation, u8)>,
}

impl SuspectWatch {
    /// Looks at the current view and returns a verdict per suspect, in view order.
    pub(crate) fn sweep<'a>(&mut self, view: impl Iterator<Item = &'a Member<Identity>>) -> Vec<Verdict> {
        let mut seen = BTreeMap::new();
        let mut verdicts = Vec::new();
        for member in view.filter(|m| m.state() == State::Suspect) {
            let id = member.id();
            let sweeps = match self.seen.get(&id.gossip_addr) {
                Some((known, incarnation, sweeps)) if known == id && *incarnation == member.incarnation() => {
                    sweeps.saturating_add(1)
                }
                _ => 1,
            };
            if sweeps >= SWEEPS_TO_DOWN {
                verdicts.push(Verdict::Expire(member.clone()));
            } else {
                seen.insert(id.gossip_addr, (id.clone(), member.incarnation(), sweeps));
                verdicts.push(Verdict::Nudge(member.clone()));
            }
        }
        self.seen = seen;
        verdicts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u8) -> Identity {
        let addr: SocketAddr = format!("10.0.0.{i}:7946").parse().expect("addr");
        Identity::new(addr, addr, format!("n{i}"), 1)
    }

    fn kinds(verdicts: &[Verdict]) -> Vec<(&'static str, &str)> {
        verdicts
            .iter()
            .map(|v| match v {
                Verdict::Nudge(m) => ("nudge", m.id().name.as_str()),
                Verdict::Expire(m) => ("expire", m.id().name.as_str()),
            })
            .collect()
    }

    #[test]
    fn a_suspect_is_nudged_then_expired_on_the_third_unchanged_sweep() {
        let mut watch = SuspectWatch::default();
        let view = [Member::new(id(1), 4, State::Suspect), Member::new(id(2), 0, State::Alive)];
        assert_eq!(kinds(&watch.sweep(view.iter())), [("nudge", "n1")]);
        assert_eq!(kinds(&watch.sweep(view.iter())), [("nudge", "n1")]);
        assert_eq!(watch.sweep(view.iter()), [Verdict::Expire(view[0].clone())]);
    }

    #[test]
    fn a_refuted_or_renamed_suspicion_starts_over() {
        let mut watch = SuspectWatch::default();
        watch.sweep([Member::new(id(1), 4, State::Suspect)].iter());
        watch.sweep([Member::new(id(1), 4, State::Suspect)].iter());
        // Refuted (alive), then suspected again at a higher incarnation: counted from one again.
        assert!(watch.sweep([Member::new(id(1), 5, State::Alive)].iter()).is_empty());
        let again = [Member::new(id(1), 6, State::Suspect)];
        assert!(matches!(watch.sweep(again.iter())[..], [Verdict::Nudge(_)]));
        let renewed = [Member::new(id(1).renew_for_test(), 6, State::Suspect)];
        assert!(matches!(watch.sweep(renewed.iter())[..], [Verdict::Nudge(_)]));
        assert!(matches!(watch.sweep(renewed.iter())[..], [Verdict::Nudge(_)]));
        assert!(matches!(watch.sweep(renewed.iter())[..], [Verdict::Expire(_)]));
    }

    impl Identity {
        fn renew_for_test(&self) -> Identity {
            Identity { incarnation: self.incarnation + 1, ..self.clone() }
        }
    }
}
