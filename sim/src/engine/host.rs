//! The engine's effects on hosts: feeding a node one input and carrying out its outbox, faults, the heal, and
//! the checker's probe.

use super::*;
use shoal::core::timers::TimerKey;

/// A stable one-byte tag of a timer for the trace hash (its full debug form is written only to trace files).
fn timer_tag(timer: &TimerId) -> u8 {
    match timer {
        TimerId::ActiveExpire => 0,
        TimerId::Gossip(_) => 1,
        TimerId::Request(_) => 2,
        TimerId::Hints => 3,
        TimerId::AntiEntropy => 4,
        TimerId::Sweep => 5,
    }
}

impl Engine {
    /// Feeds node `i` one input and carries out every effect it wrote.
    pub(super) fn handle(&mut self, i: usize, input: Input) {
        let now = self.node_now(i);
        let host = &mut self.hosts[i];
        let Some(node) = host.node.as_mut() else { return };
        node.handle(now, input, &mut self.outbox);
        if let Some(m) = node.membership() {
            host.incarnation_max = host.incarnation_max.max(m.identity().incarnation);
        }
        let evicted = node.store().stats().evicted_keys;
        let evictions = evicted.saturating_sub(host.evicted_seen);
        host.evicted_seen = evicted;
        let generation = host.generation;
        if evictions > 0 {
            self.note_evictions(i, evictions);
        }
        let mut outbox = std::mem::take(&mut self.outbox);
        for output in outbox.drain() {
            match output {
                Output::Reply { conn, req, reply } => {
                    self.trace
                        .record(self.now, i, 10, &req.to_le_bytes(), || format!("reply to call {req}: {reply:?}"));
                    if let Some(client) = lock_client(conn) {
                        self.lock_reply(client, req, &reply);
                    } else if let Some(op) = self.workload.waiting_for(conn, req) {
                        self.sniff_local(i, op);
                        self.finish(op, Outcome::Replied(reply));
                    }
                }
                Output::Schedule { after_ms, timer } => self.schedule_timer(i, self.now + after_ms, generation, timer),
                Output::SendGossip { to, packet } => {
                    let Some(to) = index_of(to, self.config.nodes) else { continue };
                    for delay in self.net.route(i, to).into_iter().flatten() {
                        self.queue.push(self.now + delay, Event::Deliver { to, from: i, packet: packet.clone() });
                    }
                }
                Output::SendPeer { to, msg } => self.send_peer(i, to, msg),
                Output::Member(event) => {
                    self.trace.record(self.now, i, 5, &[], || format!("member {event:?}"));
                }
            }
        }
        self.outbox = outbox;
    }

    pub(super) fn fault(&mut self, fault: Fault) {
        let label = fault.label();
        self.trace.record(self.now, fault.node().unwrap_or(usize::MAX), 6, label.as_bytes(), || label.clone());
        if let Some(t) = self.timeline.as_mut() {
            t.mark(self.now, label);
        }
        match fault {
            Fault::Crash { node, permanent } => self.crash(node, permanent),
            Fault::Restart { node } => self.start(node),
            Fault::Pause { node } => {
                if self.hosts[node].node.is_some() {
                    self.hosts[node].paused = true;
                }
            }
            Fault::Resume { node } => self.resume(node),
            Fault::Partition(cut) => self.net.cut(&cut),
            Fault::HealNet => self.net.heal(),
            Fault::ClockJump { node, delta_ms } => self.hosts[node].skew_ms += delta_ms,
        }
    }

    /// The process dies: its memory, its timers and what waited for it are gone; its clients' connections reset.
    fn crash(&mut self, node: usize, permanent: bool) {
        self.note_crash_losses(node);
        let host = &mut self.hosts[node];
        let alive = host.node.take().is_some();
        host.generation += 1;
        host.paused = false;
        host.gone_for_good |= permanent;
        for event in std::mem::take(&mut host.held) {
            if let Event::PeerDeliver { from, .. } = event {
                self.peer_in_flight -= 1;
                let generation = self.hosts[from].generation;
                let at = self.now + self.net.round_trip_ms(node, from);
                self.queue.push(at, Event::PeerLost { node: from, generation, peer: node });
            }
        }
        if !alive {
            return;
        }
        let history = &self.workload.history;
        let calls: Vec<usize> =
            self.workload.clients.iter().filter_map(|c| c.waiting).filter(|&op| history[op].node == node).collect();
        for op in calls {
            let outcome = if self.workload.history[op].executed { Outcome::Unknown } else { Outcome::Refused };
            self.finish(op, outcome);
        }
    }

    fn resume(&mut self, node: usize) {
        let host = &mut self.hosts[node];
        if host.paused && host.node.is_some() {
            self.facts.resumes.push((node, self.now));
        }
        host.paused = false;
        for event in std::mem::take(&mut host.held) {
            match event {
                Event::HeldTimer { node, generation, timer } => self.schedule_timer(node, self.now, generation, timer),
                event => self.queue.push(self.now, event),
            }
        }
    }

    /// Puts `timer` of node `node`'s incarnation `generation` in the node's timer queue for `at`, with the event
    /// that fires it.
    fn schedule_timer(&mut self, node: usize, at: Ms, generation: u64, timer: TimerId) {
        let key = self.hosts[node].timers.schedule(at, (timer, generation));
        self.queue.push(at, Event::Timer { node, key });
    }

    /// Timer `key` of `node` is due: a paused node holds it; otherwise every timer of the node due now goes to
    /// it, sorted (the driver contract), those of a dead incarnation skipped. A key already gone went along with
    /// an earlier timer due at the same instant.
    pub(super) fn timers(&mut self, node: usize, key: TimerKey) {
        let host = &mut self.hosts[node];
        if !host.timers.is_pending(key) {
            return;
        }
        if host.paused && host.node.is_some() {
            let (timer, generation) = host.timers.cancel(key).expect("pending");
            host.held.push(Event::HeldTimer { node, generation, timer });
            return;
        }
        for (timer, generation) in host.timers.pop_due(self.now) {
            if generation != self.hosts[node].generation || self.hosts[node].node.is_none() {
                continue;
            }
            if self.trace.is_writing() {
                self.trace.record(self.now, node, 3, &[], || format!("timer {timer:?}"));
            } else {
                self.trace.record(self.now, node, 3, &[timer_tag(&timer)], String::new);
            }
            self.handle(node, Input::Timer(timer));
        }
    }

    /// The end of the safety phase: links heal, the network calms down, paused nodes resume, crashed nodes
    /// restart (except those gone for good).
    pub(super) fn heal(&mut self) {
        self.trace.record(self.now, usize::MAX, 7, &[], || "heal".to_string());
        if let Some(t) = self.timeline.as_mut() {
            t.mark(self.now, "HEAL".to_string());
        }
        self.net.heal();
        self.net.set_rates(0, 0, 0);
        for node in 0..self.config.nodes {
            self.resume(node);
            if self.hosts[node].node.is_none() {
                self.start(node);
            }
        }
        self.phase = Phase::Liveness { healed_at: self.now };
        // Lock clients release what they hold and stop, so the liveness phase can go quiet.
        self.locks.stop(self.now);
        self.lock_calls();
    }

    pub(super) fn probe(&mut self) {
        // Converging needs every running node's live digest to agree; that is cheap to test, every view is not.
        if matches!(self.phase, Phase::Liveness { .. }) && self.timeline.is_none() && !self.digests_agree() {
            self.queue.push(self.now + self.probe_ms(), Event::Probe);
            return;
        }
        let nodes = self.observe();
        if let Some(t) = self.timeline.as_mut() {
            t.sample(self.now, &nodes);
        }
        match self.phase {
            Phase::Safety => {
                let max: Vec<u64> = self.hosts.iter().map(|h| h.incarnation_max).collect();
                let found = check::membership_safe(self.now, &nodes, &max);
                self.flag_all(found);
            }
            Phase::Liveness { healed_at } => {
                if check::membership_converged(self.now, &nodes).is_empty() && self.data_converged().is_ok() {
                    self.converged_after_ms = Some(self.now - healed_at);
                }
            }
        }
        self.queue.push(self.now + self.probe_ms(), Event::Probe);
    }

    fn digests_agree(&self) -> bool {
        let mut digests = self.hosts.iter().filter_map(|h| h.node.as_ref()?.membership()).map(|m| m.live_digest());
        let first = digests.next();
        digests.all(|d| Some(d) == first)
    }

    /// What the checker sees of every node now. A paused node is a live process: it counts.
    pub(super) fn observe(&self) -> Vec<Observed> {
        self.hosts
            .iter()
            .enumerate()
            .map(|(i, host)| Observed {
                name: format!("n{i}"),
                addr: addr_of(i),
                live: host.node.as_ref().and_then(|n| n.membership()).map(|m| {
                    let view = m.members();
                    LiveNode {
                        incarnation: m.identity().incarnation,
                        digest: shoal::core::membership::view::live_digest(&view),
                        view,
                    }
                }),
            })
            .collect()
    }

    pub(super) fn flag_all(&mut self, mut found: Vec<Violation>) {
        self.excuse_beyond_drift(&mut found);
        for v in found {
            let count = self.counts.entry(v.kind).or_default();
            *count += 1;
            if *count > VIOLATION_DETAILS_MAX {
                continue;
            }
            if v.kind.is_anomaly() {
                self.anomalies.push(v);
            } else {
                self.violations.push(v);
            }
        }
    }
}
