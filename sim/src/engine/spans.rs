//! What the checkers are told of a run's fault plan: when faults are in force (and settling), which they use to
//! tell allowed anomalies from violations, and the clock spread of a plan (`checker_facts` gathers it).

use super::*;

/// The greatest difference between two node clock offsets over the run: initial skews and every jump.
pub(super) fn clock_spread_ms(plan: &FaultPlan) -> Ms {
    let mut offsets = plan.skew_ms.clone();
    let (mut lo, mut hi) = (offsets.iter().copied().min().unwrap_or(0), offsets.iter().copied().max().unwrap_or(0));
    for (_, fault) in plan.sorted() {
        if let Fault::ClockJump { node, delta_ms } = fault {
            offsets[node] += delta_ms;
            lo = lo.min(offsets[node]);
            hi = hi.max(offsets[node]);
        }
    }
    hi.saturating_sub(lo).unsigned_abs()
}

/// The spans during which some fault of the plan is in force: a node crashed or paused, a link cut. The heal at
/// `heal_ms` ends them all, except crashes for good, which last to `end_ms`.
pub(super) fn disturbed_spans(plan: &FaultPlan, heal_ms: Ms, end_ms: Ms) -> Vec<(Ms, Ms)> {
    let mut spans = spans_in_force(plan, heal_ms, |_| false);
    let forever = plan.events.iter().any(|(_, f)| matches!(f, Fault::Crash { permanent: true, .. }));
    if forever {
        spans.push((heal_ms, end_ms));
    }
    spans
}

/// The spans during which a fault bears on who holds a lock, each extended by `settle_ms`: a node crashed (a crash
/// for good counts at its instant: the lock's other replicas go on without it) or paused, a link cut, and the
/// instant of every clock jump (a lease granted before it runs short or long on that replica). Constant clock
/// offsets do not count: each lease is measured on one replica's clock.
pub(super) fn lock_fault_spans(plan: &FaultPlan, heal_ms: Ms, settle_ms: Ms) -> Vec<(Ms, Ms)> {
    let instant = |f: &Fault| matches!(f, Fault::Crash { permanent: true, .. } | Fault::ClockJump { .. });
    spans_in_force(plan, heal_ms, instant).into_iter().map(|(from, to)| (from, to + settle_ms)).collect()
}

/// The spans while some node is crashed or paused or a link is cut (the heal at `heal_ms` ends them all), plus a
/// zero-length span at each fault for which `instant` holds (such a fault is not tracked otherwise).
pub(super) fn spans_in_force(plan: &FaultPlan, heal_ms: Ms, instant: impl Fn(&Fault) -> bool) -> Vec<(Ms, Ms)> {
    let mut spans = Vec::new();
    let (mut down, mut paused, mut cut) = (Vec::new(), Vec::new(), false);
    let mut since: Option<Ms> = None;
    for (at, fault) in plan.sorted() {
        if instant(&fault) {
            spans.push((at, at));
            continue;
        }
        match fault {
            Fault::Crash { node, .. } => down.push(node),
            Fault::Restart { node } => down.retain(|&n| n != node),
            Fault::Pause { node } => paused.push(node),
            Fault::Resume { node } => paused.retain(|&n| n != node),
            Fault::Partition(_) => cut = true,
            Fault::HealNet => cut = false,
            Fault::ClockJump { .. } => {}
        }
        let now_disturbed = !down.is_empty() || !paused.is_empty() || cut;
        match (since, now_disturbed) {
            (None, true) => since = Some(at),
            (Some(start), false) => {
                spans.push((start, at));
                since = None;
            }
            _ => {}
        }
    }
    if let Some(start) = since {
        spans.push((start, heal_ms));
    }
    spans
}

/// What the checkers are told of the run: the fault plan's times and spans, the clocks' spread, the grace and
/// the keys' roles.
pub(super) fn checker_facts(config: &SimConfig, plan: &FaultPlan, workload: &Workload, memory_pressure: bool) -> Facts {
    let mut fault_times: Vec<Ms> = plan.events.iter().map(|(at, _)| *at).collect();
    fault_times.push(0);
    fault_times.sort_unstable();
    let grace = NodeConfig::default().tombstone_grace_ms;
    Facts {
        tombstone_grace_ms: grace,
        clock_spread_ms: clock_spread_ms(plan),
        end_ms: config.safety_ms + config.liveness_bound_ms,
        fault_times,
        disturbed: disturbed_spans(plan, config.safety_ms, config.safety_ms + config.liveness_bound_ms),
        disturbed_but_pauses: {
            let mut others = plan.clone();
            others.events.retain(|(_, f)| !matches!(f, Fault::Pause { .. } | Fault::Resume { .. }));
            disturbed_spans(&others, config.safety_ms, config.safety_ms + config.liveness_bound_ms)
        },
        stall_window_ms: 2 * NodeConfig::default().anti_entropy_period_ms,
        fault_times_but_pauses: std::iter::once(0)
            .chain(
                plan.events
                    .iter()
                    .filter(|(_, f)| !matches!(f, Fault::Pause { .. } | Fault::Resume { .. }))
                    .map(|(at, _)| *at),
            )
            .collect(),
        lossy: plan.net.loss_ppm > 0,
        replicas: config.replicas,
        settle_ms: 10_000,
        roles: (0..workload.config.keys)
            .map(|k| (k, workload.config.role(k)))
            .filter(|(_, r)| *r != Role::Register)
            .collect(),
        memory_pressure,
        ..Facts::default()
    }
}
