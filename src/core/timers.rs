//! The timer queue every driver of the core uses: the tokio runtime (`runtime/node_task.rs`), the simulator
//! (`sim/src/engine.rs`) and the two test drivers (`testkit.rs`, `membership/tests/harness.rs`).
//!
//! It holds the rule of the driver contract (architecture §2.3) in one place: the timers due by an instant are
//! handed over together, sorted by the timer's own order, equal timers by deadline, then in scheduling order
//! (foca requires timers that are due together to arrive in that order). Timers are never replaced: scheduling
//! a timer equal to one already pending adds a second one, and both fire. A timer can be looked up and taken
//! out by the `TimerKey` its scheduling returned (the simulator holds a paused node's timers that way).
//!
//! Most timers go to an ordered map. A driver that schedules many timers with the same delay (the runtime's
//! request timeouts, one per write, read or forward) can put them on a FIFO lane per delay instead: with a
//! clock that never goes back their deadlines arrive in order, so scheduling and firing them is O(1). Lanes only
//! change the cost, never what `pop_due` returns. The queue is generic over the deadline type (`Millis` of
//! virtual time, or the runtime's monotonic `Instant`) and reads no clock itself.

use std::collections::{BTreeMap, VecDeque};

use super::Millis;

/// Most FIFO lanes one queue keeps; a timer for a further lane goes to the ordered map.
pub const FIFO_LANES_MAX: usize = 8;

/// The handle of one scheduled timer: its deadline and its scheduling sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerKey<D = Millis> {
    at: D,
    seq: u64,
}

impl<D: Copy> TimerKey<D> {
    /// When the timer is due.
    pub fn deadline(&self) -> D {
        self.at
    }
}

/// One timer on a lane: its deadline, its sequence number and the timer.
type Laned<T, D> = (D, u64, T);

/// Timers by deadline; `pop_due` hands over those due sorted by (timer, deadline, scheduling order).
#[derive(Debug)]
pub struct TimerQueue<T, D = Millis> {
    /// Timers by (deadline, sequence).
    map: BTreeMap<(D, u64), T>,
    /// FIFO lanes by delay, each in (deadline, sequence) order.
    lanes: Vec<(Millis, VecDeque<Laned<T, D>>)>,
    /// Sequence number of the last timer scheduled.
    seq: u64,
}

impl<T, D> Default for TimerQueue<T, D> {
    fn default() -> Self {
        TimerQueue { map: BTreeMap::new(), lanes: Vec::new(), seq: 0 }
    }
}

impl<T: Ord, D: Ord + Copy> TimerQueue<T, D> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedule `timer` for `at`; returns its key.
    pub fn schedule(&mut self, at: D, timer: T) -> TimerKey<D> {
        self.seq += 1;
        self.map.insert((at, self.seq), timer);
        TimerKey { at, seq: self.seq }
    }

    /// Schedule `timer` for `at` on the FIFO lane of `delay` (the delay it was asked for): O(1) while deadlines
    /// on that lane do not go back. A deadline earlier than the lane's last one, or a new lane beyond
    /// `FIFO_LANES_MAX`, goes to the ordered map instead; either way `pop_due` returns the same.
    pub fn schedule_fifo(&mut self, delay: Millis, at: D, timer: T) -> TimerKey<D> {
        let lane = self.lanes.iter().position(|(d, _)| *d == delay);
        let lane = match lane {
            Some(i) if self.lanes[i].1.back().is_none_or(|(last, _, _)| *last <= at) => i,
            None if self.lanes.len() < FIFO_LANES_MAX => {
                self.lanes.push((delay, VecDeque::new()));
                self.lanes.len() - 1
            }
            _ => return self.schedule(at, timer),
        };
        self.seq += 1;
        self.lanes[lane].1.push_back((at, self.seq, timer));
        TimerKey { at, seq: self.seq }
    }

    /// The earliest deadline pending, if any.
    pub fn next_deadline(&self) -> Option<D> {
        let laned = self.lanes.iter().filter_map(|(_, lane)| lane.front().map(|(at, _, _)| *at));
        self.map.first_key_value().map(|((at, _), _)| *at).into_iter().chain(laned).min()
    }

    /// Take every timer due at or before `now`, sorted by timer, equal timers by deadline, then in scheduling
    /// order (the driver contract).
    pub fn pop_due(&mut self, now: D) -> Vec<T> {
        let mut due: Vec<(T, D, u64)> = Vec::new();
        while self.map.first_key_value().is_some_and(|((at, _), _)| *at <= now) {
            let ((at, seq), timer) = self.map.pop_first().expect("a first entry");
            due.push((timer, at, seq));
        }
        for (_, lane) in &mut self.lanes {
            while lane.front().is_some_and(|(at, _, _)| *at <= now) {
                let (at, seq, timer) = lane.pop_front().expect("a front entry");
                due.push((timer, at, seq));
            }
        }
        // Sequence numbers are unique, so no two entries compare equal and an unstable sort is exact.
        due.sort_unstable();
        due.into_iter().map(|(timer, _, _)| timer).collect()
    }

    /// Whether the timer of `key` is still pending (neither popped nor cancelled).
    pub fn is_pending(&self, key: TimerKey<D>) -> bool {
        self.map.contains_key(&(key.at, key.seq)) || self.lane_slot(key).is_some()
    }

    /// Take the timer of `key` out of the queue, if it is still pending.
    pub fn cancel(&mut self, key: TimerKey<D>) -> Option<T> {
        if let Some(timer) = self.map.remove(&(key.at, key.seq)) {
            return Some(timer);
        }
        let (lane, slot) = self.lane_slot(key)?;
        self.lanes[lane].1.remove(slot).map(|(_, _, timer)| timer)
    }

    /// Number of timers pending.
    pub fn len(&self) -> usize {
        self.map.len() + self.lanes.iter().map(|(_, lane)| lane.len()).sum::<usize>()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lane and position of `key`'s timer, if it is on a lane (sequence numbers grow along each lane).
    fn lane_slot(&self, key: TimerKey<D>) -> Option<(usize, usize)> {
        self.lanes.iter().enumerate().find_map(|(i, (_, lane))| {
            let slot = lane.binary_search_by_key(&key.seq, |(_, seq, _)| *seq).ok()?;
            (lane[slot].0 == key.at).then_some((i, slot))
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A timer ordered (and compared) by its id alone; `tag` tells equal timers apart.
    #[derive(Debug, Clone, Copy)]
    struct Tagged {
        id: u8,
        tag: char,
    }

    impl PartialEq for Tagged {
        fn eq(&self, other: &Self) -> bool {
            self.id == other.id
        }
    }

    impl Eq for Tagged {}

    impl PartialOrd for Tagged {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }

    impl Ord for Tagged {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            self.id.cmp(&other.id)
        }
    }

    fn tags(timers: Vec<Tagged>) -> String {
        timers.into_iter().map(|t| t.tag).collect()
    }

    fn tags_of(timers: Vec<Tagged>) -> Vec<char> {
        timers.into_iter().map(|t| t.tag).collect()
    }

    #[test]
    fn due_timers_come_sorted_by_timer_then_deadline_then_scheduling_order() {
        let mut q: TimerQueue<Tagged> = TimerQueue::new();
        for (at, id, tag) in [(10, 2, 'a'), (5, 2, 'b'), (10, 1, 'c'), (7, 3, 'd'), (5, 2, 'e'), (10, 2, 'f')] {
            q.schedule(at, Tagged { id, tag });
        }
        assert_eq!(tags(q.pop_due(10)), "cbeafd");
        assert!(q.is_empty());
    }

    #[test]
    fn equal_timers_are_not_replaced_and_keep_deadline_then_scheduling_order() {
        let mut q: TimerQueue<&str> = TimerQueue::new();
        let first = q.schedule(4, "x");
        let second = q.schedule(4, "x");
        let earlier = q.schedule(3, "x");
        assert_eq!(q.len(), 3);
        assert_ne!(first, second);
        assert_eq!(q.cancel(second), Some("x"));
        q.schedule(4, "x");
        assert_eq!(q.pop_due(4), vec!["x", "x", "x"]);
        assert!(!q.is_pending(first) && !q.is_pending(earlier));
    }

    #[test]
    fn pop_due_takes_only_what_is_due_and_next_deadline_follows() {
        let mut q: TimerQueue<u32> = TimerQueue::new();
        assert_eq!(q.next_deadline(), None);
        q.schedule(30, 1);
        q.schedule_fifo(100, 20, 2);
        q.schedule(10, 3);
        assert_eq!(q.next_deadline(), Some(10));
        assert_eq!(q.pop_due(9), Vec::<u32>::new());
        assert_eq!(q.pop_due(20), vec![2, 3]);
        assert_eq!(q.next_deadline(), Some(30));
        assert_eq!(q.pop_due(1_000), vec![1]);
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn lanes_and_map_give_the_same_order() {
        let plan = [(5, 50, 3u8), (5, 55, 1), (9, 59, 1), (5, 60, 1), (1, 61, 2), (9, 61, 1)];
        let mut laned: TimerQueue<u8> = TimerQueue::new();
        let mut mapped: TimerQueue<u8> = TimerQueue::new();
        for (delay, at, timer) in plan {
            laned.schedule_fifo(delay, at, timer);
            mapped.schedule(at, timer);
        }
        assert_eq!(laned.len(), mapped.len());
        for now in [54, 59, 61] {
            assert_eq!(laned.next_deadline(), mapped.next_deadline());
            assert_eq!(laned.pop_due(now), mapped.pop_due(now));
        }
        assert!(laned.is_empty() && mapped.is_empty());
    }

    #[test]
    fn a_lane_deadline_that_goes_back_or_a_lane_too_many_falls_back_to_the_map() {
        let mut q: TimerQueue<u64> = TimerQueue::new();
        q.schedule_fifo(10, 100, 1);
        q.schedule_fifo(10, 90, 2);
        for delay in 0..FIFO_LANES_MAX as u64 + 2 {
            q.schedule_fifo(1_000 + delay, 200 + delay, 10 + delay);
        }
        assert_eq!(q.lanes.len(), FIFO_LANES_MAX);
        assert_eq!(q.len(), 2 + FIFO_LANES_MAX + 2);
        assert_eq!(q.pop_due(100), vec![1, 2]);
        let rest: Vec<u64> = (10..10 + FIFO_LANES_MAX as u64 + 2).collect();
        assert_eq!(q.pop_due(u64::MAX), rest);
    }

    #[test]
    fn a_key_finds_its_timer_on_the_map_and_on_a_lane_until_it_is_taken() {
        let mut q: TimerQueue<char> = TimerQueue::new();
        let a = q.schedule(5, 'a');
        let b = q.schedule_fifo(7, 5, 'b');
        let c = q.schedule_fifo(7, 6, 'c');
        assert_eq!(b.deadline(), 5);
        assert!(q.is_pending(a) && q.is_pending(b) && q.is_pending(c));
        assert_eq!(q.cancel(b), Some('b'));
        assert_eq!(q.cancel(b), None);
        assert!(!q.is_pending(b) && q.is_pending(c));
        assert_eq!(q.pop_due(5), vec!['a']);
        assert!(!q.is_pending(a));
        assert_eq!(q.cancel(a), None);
        assert_eq!(q.cancel(c), Some('c'));
        assert!(q.is_empty());
    }

    /// One step of a random run against the queue.
    #[derive(Debug, Clone)]
    enum Op {
        /// Schedule timer `id` `after` ms from now on the ordered map.
        Map { after: Millis, id: u8 },
        /// Schedule timer `id` on the lane of `delay` (more delays than there are lanes), `back` ms earlier than
        /// now + delay, so deadlines on a lane sometimes go back.
        Fifo { delay: Millis, back: Millis, id: u8 },
        /// Take out the timer of the `pick`-th key handed out so far (modulo their number).
        Cancel { pick: usize },
        /// Move the clock forward by `by` ms and pop what is due.
        Advance { by: Millis },
    }

    fn arb_ops() -> impl Strategy<Value = Vec<Op>> {
        let op = prop_oneof![
            (0..40u64, 0..4u8).prop_map(|(after, id)| Op::Map { after, id }),
            (0..12u64, 0..3u64, 0..4u8).prop_map(|(delay, back, id)| Op::Fifo { delay: delay * 5, back, id }),
            any::<usize>().prop_map(|pick| Op::Cancel { pick }),
            (0..30u64).prop_map(|by| Op::Advance { by }),
        ];
        proptest::collection::vec(op, 1..120)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Against a plain list sorted on every pop (the rule as written), and against a queue that puts every
        /// timer on the map: same timers due, same order, same next deadline, same keys pending.
        #[test]
        fn the_queue_matches_a_sorted_list_with_or_without_lanes(ops in arb_ops()) {
            let mut laned: TimerQueue<Tagged> = TimerQueue::new();
            let mut mapped: TimerQueue<Tagged> = TimerQueue::new();
            // The model: (timer, deadline, scheduling order) of every pending timer.
            let mut model: Vec<(Tagged, Millis, usize)> = Vec::new();
            let mut keys: Vec<(TimerKey, TimerKey)> = Vec::new();
            let mut now: Millis = 1_000;
            for op in ops {
                let tag = char::from_u32(keys.len() as u32 + 1).expect("below the surrogates");
                match op {
                    Op::Map { after, id } => {
                        let timer = Tagged { id, tag };
                        keys.push((laned.schedule(now + after, timer), mapped.schedule(now + after, timer)));
                        model.push((timer, now + after, keys.len()));
                    }
                    Op::Fifo { delay, back, id } => {
                        let timer = Tagged { id, tag };
                        let at = (now + delay).saturating_sub(back);
                        keys.push((laned.schedule_fifo(delay, at, timer), mapped.schedule(at, timer)));
                        model.push((timer, at, keys.len()));
                    }
                    Op::Cancel { pick } => {
                        if keys.is_empty() {
                            continue;
                        }
                        let i = pick % keys.len();
                        let (in_lanes, in_map) = keys[i];
                        let expected = model.iter().position(|m| m.2 == i + 1).map(|at| model.remove(at).0);
                        prop_assert_eq!(in_lanes.deadline(), in_map.deadline());
                        prop_assert_eq!(laned.cancel(in_lanes).map(|t| t.tag), expected.map(|t| t.tag));
                        prop_assert_eq!(mapped.cancel(in_map).map(|t| t.tag), expected.map(|t| t.tag));
                    }
                    Op::Advance { by } => {
                        now += by;
                        let (mut due, rest): (Vec<_>, Vec<_>) = model.drain(..).partition(|m| m.1 <= now);
                        model = rest;
                        due.sort_by_key(|m| (m.0.id, m.1, m.2));
                        let expected: Vec<char> = due.into_iter().map(|m| m.0.tag).collect();
                        prop_assert_eq!(tags_of(laned.pop_due(now)), expected.clone());
                        prop_assert_eq!(tags_of(mapped.pop_due(now)), expected);
                    }
                }
                prop_assert_eq!(laned.len(), model.len());
                prop_assert_eq!(mapped.len(), model.len());
                prop_assert_eq!(laned.next_deadline(), model.iter().map(|m| m.1).min());
                prop_assert_eq!(mapped.next_deadline(), model.iter().map(|m| m.1).min());
                for (i, (in_lanes, in_map)) in keys.iter().enumerate() {
                    let pending = model.iter().any(|m| m.2 == i + 1);
                    prop_assert_eq!(laned.is_pending(*in_lanes), pending);
                    prop_assert_eq!(mapped.is_pending(*in_map), pending);
                }
            }
        }
    }
}
