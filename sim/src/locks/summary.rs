//! The per-scenario lock summary: what the clients got and what the checkers found, as one row of counts, plus
//! the markdown table `docs/locks.md` quotes.

use crate::event::Ms;
use crate::locks::check::{self, LockViolation};
use crate::locks::history::{holds, Answer, Call, LockEvent};

/// One scenario's lock counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockSummary {
    /// The scenario's name.
    pub scenario: String,
    /// Runs (seeds) summed up in this row.
    pub runs: u64,
    /// Lock calls sent.
    pub calls: u64,
    /// Acquires granted (majority and degraded).
    pub grants: u64,
    /// Of those, degraded (no majority).
    pub degraded: u64,
    /// Acquires answered nil (held by another owner).
    pub contended: u64,
    /// Calls answered with an error or not answered in time.
    pub failed: u64,
    /// Stretches in which two clients believed they held the same lock.
    pub double_holder_intervals: u64,
    /// Of those, the ones that started under a fault (allowed by the design).
    pub double_holder_under_fault: u64,
    /// Their total length.
    pub double_holder_ms: Ms,
    /// The longest of them.
    pub double_holder_ms_max: Ms,
    /// Writes the fenced resources accepted.
    pub writes_accepted: u64,
    /// Writes they rejected (a lower token).
    pub writes_rejected: u64,
    /// Writes made outside a hold (a holder waking from a pause after its lease).
    pub stale_writes: u64,
    /// Of those, rejected by the fencing token.
    pub stale_rejected: u64,
    /// Broken invariants (see `check`).
    pub violations: u64,
}

/// Runs every checker over `events` (a run that ended at `end`) and sums them up. `faults`: whether the run had
/// faults (without, two holders at once is a violation; with, it is counted). Anomalies are left out.
pub fn summarize(scenario: &str, events: &[LockEvent], end: Ms, faults: bool) -> (LockSummary, Vec<LockViolation>) {
    let spans: &[(Ms, Ms)] = if faults { &[(0, Ms::MAX)] } else { &[] };
    let (summary, mut found) = judge(scenario, events, end, spans);
    found.retain(|v| !v.kind.is_anomaly());
    (summary, found)
}

/// Runs every checker over `events` (a run that ended at `end`) and sums them up. `faults`: the spans during
/// which a fault was in force or settling (see `check::exclusive_outside`). The list holds the violations and,
/// with their kind marked, the double-holder anomalies (`LockKind::is_anomaly`); the summary's `violations`
/// counts only the former.
pub fn judge(scenario: &str, events: &[LockEvent], end: Ms, faults: &[(Ms, Ms)]) -> (LockSummary, Vec<LockViolation>) {
    let held = holds(events, end);
    let overlaps = check::double_holders(&held);
    let mut violations = check::exclusive_outside(&held, faults);
    violations.extend(check::fence_monotonic(events));
    let (stale, found) = check::stale_writes(events, &held);
    violations.extend(found);
    violations.extend(check::tokens_grow(events));
    let mut s = LockSummary { scenario: scenario.to_string(), runs: 1, ..LockSummary::default() };
    let mut acquires = std::collections::BTreeSet::new();
    for event in events {
        match event {
            LockEvent::Sent { req, call, .. } => {
                s.calls += 1;
                if matches!(call, Call::Acquire { .. }) {
                    acquires.insert(*req);
                }
            }
            LockEvent::Answered { req, answer, .. } => match answer {
                Answer::Granted { majority, .. } if acquires.contains(req) => {
                    s.grants += 1;
                    s.degraded += u64::from(!majority);
                }
                Answer::Nil if acquires.contains(req) => s.contended += 1,
                Answer::Error(_) | Answer::TimedOut => s.failed += 1,
                _ => {}
            },
            LockEvent::Write { accepted: true, .. } => s.writes_accepted += 1,
            LockEvent::Write { accepted: false, .. } => s.writes_rejected += 1,
            LockEvent::Paused { .. } => {}
        }
    }
    s.double_holder_intervals = overlaps.len() as u64;
    s.double_holder_under_fault = violations.iter().filter(|v| v.kind.is_anomaly()).count() as u64;
    s.double_holder_ms = overlaps.iter().map(|o| o.to - o.from).sum();
    s.double_holder_ms_max = overlaps.iter().map(|o| o.to - o.from).max().unwrap_or(0);
    s.stale_writes = stale.total;
    s.stale_rejected = stale.rejected;
    s.violations = violations.iter().filter(|v| !v.kind.is_anomaly()).count() as u64;
    (s, violations)
}

const HEADER: [&str; 15] = [
    "scenario",
    "runs",
    "calls",
    "grants",
    "degraded",
    "nil",
    "failed",
    "double holders",
    "double-holder ms",
    "longest ms",
    "writes ok",
    "writes fenced",
    "stale writes",
    "stale rejected",
    "violations",
];

impl LockSummary {
    /// Adds another run's counts to this row (the longest stretch is the longest of both).
    pub fn absorb(&mut self, other: &LockSummary) {
        self.runs += other.runs;
        self.calls += other.calls;
        self.grants += other.grants;
        self.degraded += other.degraded;
        self.contended += other.contended;
        self.failed += other.failed;
        self.double_holder_intervals += other.double_holder_intervals;
        self.double_holder_under_fault += other.double_holder_under_fault;
        self.double_holder_ms += other.double_holder_ms;
        self.double_holder_ms_max = self.double_holder_ms_max.max(other.double_holder_ms_max);
        self.writes_accepted += other.writes_accepted;
        self.writes_rejected += other.writes_rejected;
        self.stale_writes += other.stale_writes;
        self.stale_rejected += other.stale_rejected;
        self.violations += other.violations;
    }

    fn cells(&self) -> [String; 15] {
        [
            self.scenario.clone(),
            self.runs.to_string(),
            self.calls.to_string(),
            self.grants.to_string(),
            self.degraded.to_string(),
            self.contended.to_string(),
            self.failed.to_string(),
            self.double_holder_intervals.to_string(),
            self.double_holder_ms.to_string(),
            self.double_holder_ms_max.to_string(),
            self.writes_accepted.to_string(),
            self.writes_rejected.to_string(),
            self.stale_writes.to_string(),
            self.stale_rejected.to_string(),
            self.violations.to_string(),
        ]
    }

    /// The counts on one line, for the CLI.
    pub fn line(&self) -> String {
        HEADER.iter().zip(self.cells()).map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")
    }
}

/// A markdown table with one row per scenario (for `docs/locks.md`).
pub fn markdown_table(rows: &[LockSummary]) -> String {
    let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
    let mut table = line(&HEADER.map(String::from));
    table.push_str(&line(&HEADER.map(|_| "---".to_string())));
    for row in rows {
        table.push_str(&line(&row.cells()));
    }
    table
}
