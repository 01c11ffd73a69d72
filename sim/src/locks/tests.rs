//! The lock checkers flag planted violations in hand-built histories and pass clean ones; the workload runs
//! against a real lone node without a violation, and its paused holder is fenced off.

use shoal::core::replication::Levels;
use shoal::core::{Input, Node, NodeConfig, Outbox, Output};

use super::check::{
    double_holders, exclusive, exclusive_outside, fence_monotonic, stale_writes, tokens_grow, LockKind,
};
use super::history::{holds, Answer, Call, LockEvent};
use super::*;

fn sent(at: u64, client: usize, req: u64, call: Call) -> LockEvent {
    LockEvent::Sent { at, client, req, node: 0, lock: "l".into(), call }
}

fn answered(at: u64, client: usize, req: u64, answer: Answer) -> LockEvent {
    LockEvent::Answered { at, client, req, answer }
}

fn granted(token: u64) -> Answer {
    Answer::Granted { token, majority: true }
}

fn write(at: u64, client: usize, token: u64, accepted: bool) -> LockEvent {
    LockEvent::Write { at, client, lock: "l".into(), token, accepted }
}

/// Client 0 holds with token 10 over [10, 500); client 1 takes the lock with token 20 at `b_from`, releases at 800.
fn two_holders(b_from: u64) -> Vec<LockEvent> {
    vec![
        sent(0, 0, 1, Call::Acquire { ttl_ms: 1_000 }),
        answered(10, 0, 1, granted(10)),
        sent(b_from - 10, 1, 2, Call::Acquire { ttl_ms: 1_000 }),
        answered(b_from, 1, 2, granted(20)),
        sent(500, 0, 3, Call::Release { token: 10 }),
        sent(800, 1, 4, Call::Release { token: 20 }),
    ]
}

#[test]
fn holds_follow_the_client_rule() {
    let events = vec![
        sent(0, 0, 1, Call::Acquire { ttl_ms: 1_000 }),
        answered(5, 0, 1, granted(7)),
        sent(500, 0, 2, Call::Renew { token: 7, ttl_ms: 1_000 }),
        answered(505, 0, 2, granted(7)),
        // The renewed lease ends at 1_500 by the client's view; no release was sent.
        sent(2_000, 1, 3, Call::Acquire { ttl_ms: 1_000 }),
        answered(2_010, 1, 3, granted(9)),
        sent(2_400, 1, 4, Call::Renew { token: 9, ttl_ms: 1_000 }),
        answered(2_420, 1, 4, Answer::Nil),
        // A grant taken in after its lease would have ended is no hold.
        sent(3_000, 2, 5, Call::Acquire { ttl_ms: 100 }),
        answered(3_100, 2, 5, granted(11)),
    ];
    let found = holds(&events, 10_000);
    let spans: Vec<(usize, u64, u64, u64)> = found.iter().map(|h| (h.client, h.token, h.from, h.to)).collect();
    assert_eq!(spans, [(0, 7, 5, 1_500), (1, 9, 2_010, 2_420)]);
}

#[test]
fn two_holders_at_once_are_found_and_measured() {
    let held = holds(&two_holders(310), 10_000);
    let overlaps = double_holders(&held);
    assert_eq!(overlaps.len(), 1);
    assert_eq!((overlaps[0].from, overlaps[0].to, overlaps[0].clients.clone()), (310, 500, vec![0, 1]));
    let found = exclusive(&held);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, LockKind::DoubleHolder);
}

/// Under faults the checker stays strict where no fault is: a double holder is the fault's only when it starts
/// inside a fault span (settling included); one that starts before a fault or after it settled is a violation.
#[test]
fn a_double_holder_is_excused_only_when_it_starts_under_a_fault() {
    let held = holds(&two_holders(310), 10_000);
    let kinds = |faults: &[(u64, u64)]| -> Vec<LockKind> {
        exclusive_outside(&held, faults).into_iter().map(|v| v.kind).collect()
    };
    assert_eq!(kinds(&[(0, 310)]), [LockKind::DoubleHolderUnderFault]);
    assert_eq!(kinds(&[(100, 200), (300, 400)]), [LockKind::DoubleHolderUnderFault]);
    assert_eq!(kinds(&[(0, 309)]), [LockKind::DoubleHolder], "the fault had settled");
    assert_eq!(kinds(&[(311, 5_000)]), [LockKind::DoubleHolder], "it started before the fault");
    assert_eq!(kinds(&[]), [LockKind::DoubleHolder]);
    // The summary counts both, and only the violation fails.
    let events = two_holders(310);
    let (s, found) = judge("planted", &events, 10_000, &[(0, 310)]);
    assert_eq!((s.double_holder_intervals, s.double_holder_under_fault, s.violations), (1, 1, 0));
    assert!(found.iter().all(|v| v.kind.is_anomaly()) && found.len() == 1, "{found:?}");
    let (s, found) = judge("planted", &events, 10_000, &[(400, 900)]);
    assert_eq!((s.double_holder_intervals, s.double_holder_under_fault, s.violations), (1, 0, 1));
    assert_eq!(found.iter().map(|v| v.kind).collect::<Vec<_>>(), [LockKind::DoubleHolder]);
}

#[test]
fn a_fault_settles_within_a_call_timeout_a_hold_and_a_lease() {
    let config = LockConfig::default();
    assert_eq!(config.settle_ms(), 3_000 + 4_000 + 3_000);
}

#[test]
fn planned_pauses_are_armed_at_their_time() {
    let config = LockConfig { clients: 1, pauses: vec![(5_000, 0, 300)], ..LockConfig::default() };
    let locks = LockWorkload::new(config, 1, 1);
    assert!(locks.next_wake().is_some_and(|w| w <= 5_000));
    let (s, violations) = against_a_lone_node_with(1, vec![(5_000, 0, 500)]);
    assert_eq!(violations, vec![]);
    assert_eq!((s.stale_writes, s.stale_rejected), (1, 1), "{}", s.line());
}

#[test]
fn a_holder_that_starts_when_the_other_releases_is_not_a_double_holder() {
    let held = holds(&two_holders(500), 10_000);
    assert_eq!(held.len(), 2);
    assert_eq!(double_holders(&held), vec![]);
    assert_eq!(exclusive(&held), vec![]);
}

#[test]
fn a_resource_that_accepts_a_lower_token_is_flagged() {
    let planted = vec![write(1, 0, 10, true), write(2, 1, 5, true)];
    let found = fence_monotonic(&planted);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, LockKind::FenceRegressed);
    let clean = vec![write(1, 0, 5, true), write(2, 1, 10, true), write(3, 1, 10, true), write(4, 0, 5, false)];
    assert_eq!(fence_monotonic(&clean), vec![]);
}

/// Client 0 holds token 10 over [10, 1_000) and pauses; client 1 holds token 20 from 1_050 and writes at 1_100;
/// client 0 wakes at 1_500 and writes with token 10.
fn paused_holder(stale_accepted: bool) -> Vec<LockEvent> {
    vec![
        sent(0, 0, 1, Call::Acquire { ttl_ms: 1_000 }),
        answered(10, 0, 1, granted(10)),
        write(10, 0, 10, true),
        LockEvent::Paused { at: 110, client: 0, until: 1_500 },
        sent(1_040, 1, 2, Call::Acquire { ttl_ms: 1_000 }),
        answered(1_050, 1, 2, granted(20)),
        write(1_100, 1, 20, true),
        write(1_500, 0, 10, stale_accepted),
    ]
}

#[test]
fn a_stale_write_accepted_after_a_newer_token_is_flagged() {
    let events = paused_holder(true);
    let (counts, found) = stale_writes(&events, &holds(&events, 5_000));
    assert_eq!(counts.total, 1);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, LockKind::StaleWriteAccepted);
}

#[test]
fn a_stale_write_rejected_by_the_fence_is_counted() {
    let events = paused_holder(false);
    let (counts, found) = stale_writes(&events, &holds(&events, 5_000));
    assert_eq!(found, vec![]);
    assert_eq!((counts.total, counts.rejected, counts.accepted_first), (1, 1, 0));
    // Without a newer writer the stale write goes through, and is counted as such.
    let alone: Vec<LockEvent> = paused_holder(true).into_iter().filter(|e| e.client() == 0).collect();
    let (counts, found) = stale_writes(&alone, &holds(&alone, 5_000));
    assert_eq!(found, vec![]);
    assert_eq!((counts.total, counts.rejected, counts.accepted_first), (1, 0, 1));
}

#[test]
fn a_write_in_the_millisecond_a_renewal_fails_is_not_stale() {
    let events = vec![
        sent(0, 0, 1, Call::Acquire { ttl_ms: 1_000 }),
        answered(10, 0, 1, granted(10)),
        sent(500, 0, 2, Call::Renew { token: 10, ttl_ms: 1_000 }),
        write(504, 0, 10, true),
        answered(504, 0, 2, Answer::Nil),
        write(505, 0, 10, true),
    ];
    let (counts, found) = stale_writes(&events, &holds(&events, 5_000));
    assert_eq!(found, vec![]);
    assert_eq!(counts.total, 1, "only the write after the failed renewal is stale");
}

#[test]
fn a_later_majority_grant_with_a_smaller_token_is_flagged() {
    let planted = vec![
        sent(0, 0, 1, Call::Acquire { ttl_ms: 1_000 }),
        answered(10, 0, 1, granted(100)),
        sent(20, 1, 2, Call::Acquire { ttl_ms: 1_000 }),
        answered(30, 1, 2, granted(90)),
    ];
    let found = tokens_grow(&planted);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, LockKind::TokenNotGrowing);
}

#[test]
fn a_later_grant_is_compared_with_the_largest_earlier_token_of_its_lock() {
    let mut other_lock = sent(1, 3, 9, Call::Acquire { ttl_ms: 1_000 });
    if let LockEvent::Sent { lock, .. } = &mut other_lock {
        *lock = "m".into();
    }
    let planted = vec![
        sent(0, 0, 1, Call::Acquire { ttl_ms: 1_000 }),
        sent(5, 1, 2, Call::Acquire { ttl_ms: 1_000 }),
        other_lock,
        answered(10, 0, 1, granted(100)),
        answered(12, 1, 2, granted(50)),
        answered(13, 3, 9, granted(1_000)),
        sent(20, 2, 3, Call::Acquire { ttl_ms: 1_000 }),
        answered(25, 2, 3, granted(80)),
        sent(30, 2, 4, Call::Acquire { ttl_ms: 1_000 }),
        answered(35, 2, 4, granted(100)),
    ];
    let found = tokens_grow(&planted);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].detail.contains("token 80") && found[0].detail.contains("token 100"), "{}", found[0]);
    assert!(found[1].detail.contains("client 2 got token 100"), "an equal token is not larger: {}", found[1]);
}

#[test]
fn concurrent_or_degraded_grants_are_not_ordered() {
    let events = vec![
        sent(0, 0, 1, Call::Acquire { ttl_ms: 1_000 }),
        sent(5, 1, 2, Call::Acquire { ttl_ms: 1_000 }),
        answered(10, 0, 1, granted(100)),
        answered(30, 1, 2, granted(90)),
        sent(40, 2, 3, Call::Acquire { ttl_ms: 1_000 }),
        answered(50, 2, 3, Answer::Granted { token: 95, majority: false }),
        sent(60, 2, 4, Call::Acquire { ttl_ms: 1_000 }),
        answered(70, 2, 4, granted(101)),
    ];
    assert_eq!(tokens_grow(&events), vec![]);
}

#[test]
fn the_summary_counts_and_the_table_has_a_row_per_scenario() {
    let mut events = two_holders(310);
    events.extend(paused_holder(false).into_iter().map(|mut e| {
        match &mut e {
            LockEvent::Sent { req, lock, .. } => {
                *req += 100;
                *lock = "m".into();
            }
            LockEvent::Answered { req, .. } => *req += 100,
            LockEvent::Write { lock, .. } => *lock = "m".into(),
            LockEvent::Paused { .. } => {}
        }
        e
    }));
    let (s, violations) = summarize("planted", &events, 5_000, false);
    assert_eq!((s.grants, s.degraded, s.double_holder_intervals, s.double_holder_ms), (4, 0, 1, 190));
    assert_eq!((s.writes_accepted, s.writes_rejected, s.stale_writes, s.stale_rejected), (2, 1, 1, 1));
    assert_eq!(s.violations, violations.len() as u64);
    assert!(violations.iter().all(|v| v.kind == LockKind::DoubleHolder), "{violations:?}");
    let (faulty, violations) = summarize("partition", &events, 5_000, true);
    assert_eq!(violations, vec![]);
    assert_eq!(s.double_holder_ms_max, 190);
    let mut both = s.clone();
    both.absorb(&faulty);
    assert_eq!((both.runs, both.grants, both.double_holder_ms, both.double_holder_ms_max), (2, 8, 380, 190));
    let table = markdown_table(&[s, faulty]);
    assert_eq!(table.lines().count(), 4);
    assert!(table.lines().nth(2).is_some_and(|l| l.starts_with("| planted | 1 | 6 | 4 | 0 |")), "{table}");
}

/// Drives the workload against one real node (replies are immediate); `pause`: arm a pause on client 0 at 5 s.
fn against_a_lone_node(seed: u64, pause: bool) -> (LockSummary, Vec<LockViolation>) {
    let (summary, violations, _) = drive_lone_node(seed, pause, None);
    (summary, violations)
}

/// Drives the workload against one real node with pauses planned in its config (`LockConfig::pauses`).
fn against_a_lone_node_with(seed: u64, pauses: Vec<(u64, usize, u64)>) -> (LockSummary, Vec<LockViolation>) {
    let (summary, violations, _) = drive(seed, false, None, LockConfig { pauses, ..LockConfig::default() });
    (summary, violations)
}

/// The lone-node driver; `stop_at`: stop the workload then. Returns the workload too.
fn drive_lone_node(seed: u64, pause: bool, stop_at: Option<u64>) -> (LockSummary, Vec<LockViolation>, LockWorkload) {
    drive(seed, pause, stop_at, LockConfig::default())
}

fn drive(
    seed: u64,
    pause: bool,
    stop_at: Option<u64>,
    config: LockConfig,
) -> (LockSummary, Vec<LockViolation>, LockWorkload) {
    const EPOCH: u64 = 1_700_000_000_000;
    let mut node = Node::new(NodeConfig::default(), seed);
    let mut locks = LockWorkload::new(config, 1, seed);
    let mut out = Outbox::new();
    let end = 30_000;
    let mut armed = !pause;
    let mut stopped = false;
    while let Some(now) = locks.next_wake().filter(|at| *at < end) {
        if stop_at.is_some_and(|at| now >= at) && !stopped {
            locks.stop(now);
            stopped = true;
        }
        if !armed && now >= 5_000 {
            locks.pause_next_write(0, 500);
            armed = true;
        }
        while let Some(call) = locks.next_call(now) {
            let (conn, req) = (call.conn(), call.req);
            let input = Input::Client { conn, req, cmd: call.cmd, levels: Levels::default() };
            node.handle(EPOCH + now, input, &mut out);
            for o in out.drain() {
                if let Output::Reply { conn, req, reply } = o {
                    locks.on_reply(lock_client(conn).expect("a lock client"), req, now, &reply);
                }
            }
        }
    }
    let (summary, violations) = summarize("lone node", locks.history(), end, false);
    (summary, violations, locks)
}

#[test]
fn the_workload_on_a_lone_node_has_no_double_holder() {
    let (s, violations) = against_a_lone_node(1, false);
    assert_eq!(violations, vec![]);
    assert!(s.grants > 5 && s.contended > 0 && s.writes_accepted > 50, "{}", s.line());
    assert_eq!((s.double_holder_intervals, s.stale_writes, s.degraded), (0, 0, 0));
}

#[test]
fn a_paused_holder_wakes_after_its_lease_and_is_fenced_off() {
    let (s, violations) = against_a_lone_node(2, true);
    assert_eq!(violations, vec![]);
    assert_eq!((s.stale_writes, s.stale_rejected), (1, 1), "{}", s.line());
    assert_eq!(s.double_holder_intervals, 0);
}

#[test]
fn a_stopped_workload_releases_and_goes_quiet() {
    let (s, violations, locks) = drive_lone_node(3, false, Some(10_000));
    assert_eq!(violations, vec![]);
    assert_eq!((locks.next_wake(), locks.calls_waiting()), (None, 0));
    assert!((0..3).all(|c| !locks.is_holding(c)));
    // The stop takes effect at the first wake-up from 10 s on, which comes within a think time.
    let acquired_late = locks.history().iter().any(|e| {
        matches!(e, LockEvent::Sent { at, call: Call::Acquire { .. }, .. } if *at > 10_000 + LockConfig::default().think_ms.1)
    });
    assert!(!acquired_late);
    let release_last = locks.history().iter().rev().find(|e| matches!(e, LockEvent::Sent { .. }));
    assert!(matches!(release_last, Some(LockEvent::Sent { call: Call::Release { .. }, .. })), "{}", s.line());
}
