//! One shared log per topic: a bounded window of events that every subscriber reads through a
//! cursor of its own, so a subscriber costs a position, not a queue.
//!
//! The embedded hub keeps its topics' history here; the remote backends use it as their
//! per-instance fan-out layer (the backend's reader appends, local subscribers read).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_util::Stream;
use parking_lot::Mutex;
use slab::Slab;

use super::config::SlowConsumerPolicy;
use super::{GapReason, HubConfig, HubError, HubEvent, HubItem, Position, Resume};

/// Events a cursor takes from the log per lock.
const BATCH: usize = 32;

/// The retained-bytes budget shared by all logs of a hub.
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicUsize,
    max: usize,
}

impl Budget {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            max,
        })
    }
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
    fn try_add(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|&t| t <= self.max)
            })
            .is_ok()
    }
    fn add(&self, n: usize) {
        self.used.fetch_add(n, Ordering::AcqRel);
    }
    fn sub(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
    fn over(&self) -> bool {
        self.used() > self.max
    }
}

/// Told when a log's last subscriber leaves (the owner may then drop the topic).
pub(crate) trait LogOwner: Send + Sync {
    fn idle(&self, topic: &Arc<str>);
}

/// A topic's window and its subscribers' wakers.
pub(crate) struct TopicLog {
    topic: Arc<str>,
    state: Mutex<LogState>,
    window: usize,
    max_age: Duration,
    max_lag: u64,
    policy: SlowConsumerPolicy,
    budget: Arc<Budget>,
    owner: Weak<dyn LogOwner>,
}

struct LogState {
    /// The epoch events published here get (the embedded hub's history).
    epoch: u64,
    /// The offset the next event published here gets.
    next_offset: u64,
    /// The local index of `events[0]`: cursors count in these indexes, which never repeat.
    base: u64,
    events: VecDeque<HubEvent>,
    bytes: usize,
    wakers: Slab<Waker>,
    /// Bumped each time `wakers` is drained, so a cursor knows whether its slot is still its own.
    wake_gen: u64,
    subscribers: usize,
    /// The newest position a remote backend appended or reported (its fan-out layer).
    last_pos: Option<Position>,
}

impl LogState {
    fn end(&self) -> u64 {
        self.base + self.events.len() as u64
    }
    fn pop_front(&mut self, budget: &Budget) -> bool {
        match self.events.pop_front() {
            Some(ev) => {
                let n = ev.retained_bytes();
                self.bytes -= n;
                budget.sub(n);
                self.base += 1;
                true
            }
            None => false,
        }
    }
    fn take_wakers(&mut self) -> Vec<Waker> {
        if self.wakers.is_empty() {
            return Vec::new();
        }
        self.wake_gen += 1;
        self.wakers.drain().collect()
    }
}

impl TopicLog {
    pub(crate) fn new(
        topic: Arc<str>,
        cfg: &HubConfig,
        budget: Arc<Budget>,
        owner: Weak<dyn LogOwner>,
    ) -> Arc<Self> {
        Arc::new(Self {
            topic,
            state: Mutex::new(LogState {
                epoch: Position::new_epoch(),
                next_offset: 1,
                base: 0,
                events: VecDeque::new(),
                bytes: 0,
                wakers: Slab::new(),
                wake_gen: 0,
                subscribers: 0,
                last_pos: None,
            }),
            window: cfg.window(),
            max_age: cfg.replay_max_age,
            max_lag: cfg.max_lag() as u64,
            policy: cfg.slow_consumer,
            budget,
            owner,
        })
    }

    /// Publishes into this log's own history (the embedded hub): the next offset of its epoch.
    /// Makes room in the byte budget from this topic's oldest events; refuses when other topics
    /// hold the budget. Returns the wakers to wake once the caller has released its locks.
    pub(crate) fn publish(&self, json: bytes::Bytes) -> Result<(HubEvent, Vec<Waker>), HubError> {
        let mut st = self.state.lock();
        let pos = Position {
            epoch: st.epoch,
            offset: st.next_offset,
        };
        let event = HubEvent::new(pos, json);
        let size = event.retained_bytes();
        while !self.budget.try_add(size) {
            if !st.pop_front(&self.budget) {
                return Err(HubError::Full {
                    max: self.budget.max,
                });
            }
        }
        st.next_offset += 1;
        st.bytes += size;
        st.events.push_back(event.clone());
        self.trim(&mut st, Instant::now());
        Ok((event, st.take_wakers()))
    }

    /// Appends an event a remote backend delivered (its position is the backend's). Never
    /// refuses: over the byte budget, this topic's oldest events make room.
    pub(crate) fn append(&self, events: impl IntoIterator<Item = HubEvent>) {
        let wakers;
        {
            let mut st = self.state.lock();
            let before = st.end();
            for event in events {
                let size = event.retained_bytes();
                self.budget.add(size);
                st.bytes += size;
                st.last_pos = Some(event.position());
                st.events.push_back(event);
            }
            if st.end() == before {
                return;
            }
            while self.budget.over() && st.events.len() > 1 {
                st.pop_front(&self.budget);
            }
            self.trim(&mut st, Instant::now());
            wakers = st.take_wakers();
        }
        wakers.into_iter().for_each(Waker::wake);
    }

    fn trim(&self, st: &mut LogState, now: Instant) {
        while st.events.len() > self.window
            || st
                .events
                .front()
                .is_some_and(|e| now.duration_since(e.published_at()) > self.max_age)
        {
            st.pop_front(&self.budget);
        }
    }

    /// Drops expired events; true when the log is idle (no subscriber, nothing retained).
    pub(crate) fn sweep(&self, now: Instant) -> bool {
        let mut st = self.state.lock();
        self.trim(&mut st, now);
        st.subscribers == 0 && st.events.is_empty()
    }

    /// True when no subscriber is left.
    pub(crate) fn unsubscribed(&self) -> bool {
        self.state.lock().subscribers == 0
    }

    /// Drops every retained event (a remote backend's cache when its last subscriber left).
    pub(crate) fn clear(&self) {
        let mut st = self.state.lock();
        while st.pop_front(&self.budget) {}
    }

    /// A cursor reading this log's own history from `resume` (the embedded hub).
    pub(crate) fn cursor(self: &Arc<Self>, resume: Resume) -> Cursor {
        let mut st = self.state.lock();
        st.subscribers += 1;
        let epoch = st.epoch;
        let first = st.events.front().map_or(st.next_offset, HubEvent::seq);
        let mut head = VecDeque::new();
        let (next, last) = match resume {
            Resume::Live => (st.end(), None),
            Resume::Invalid => {
                head.push_back(gap(GapReason::UnknownId, None));
                (st.base, None)
            }
            Resume::After(p) if p.epoch != epoch => {
                head.push_back(gap(GapReason::Reset, None));
                (st.base, None)
            }
            Resume::After(p) if p.offset >= st.next_offset => {
                head.push_back(gap(GapReason::UnknownId, None));
                (st.base, None)
            }
            Resume::Start | Resume::After(_) => {
                let after = match resume {
                    Resume::After(p) => p.offset,
                    _ => 0,
                };
                if after + 1 < first {
                    head.push_back(gap(GapReason::Expired, Some(first - after - 1)));
                    (
                        st.base,
                        Some(Position {
                            epoch,
                            offset: first - 1,
                        }),
                    )
                } else {
                    let next = st.base + (after + 1 - first);
                    (
                        next,
                        Some(Position {
                            epoch,
                            offset: after,
                        }),
                    )
                }
            }
        };
        drop(st);
        Cursor::new(self.clone(), next, last, head)
    }

    /// A cursor at the end of the log: live events only, skipping any at or before `last`
    /// (a remote backend sets the replay it read with [`Cursor::replay`]).
    pub(crate) fn cursor_at_end(self: &Arc<Self>) -> Cursor {
        let mut st = self.state.lock();
        st.subscribers += 1;
        let next = st.end();
        drop(st);
        Cursor::new(self.clone(), next, None, VecDeque::new())
    }

    /// The position of the newest event published into this log's own history (the
    /// embedded hub); `None` before the first.
    pub(crate) fn head(&self) -> Option<Position> {
        let st = self.state.lock();
        (st.next_offset > 1).then(|| Position {
            epoch: st.epoch,
            offset: st.next_offset - 1,
        })
    }

    /// The newest position a remote backend appended or reported as its baseline.
    pub(crate) fn last_known(&self) -> Option<Position> {
        self.state.lock().last_pos
    }

    /// Where the backend's topic stood when this log started following it, unless an event
    /// has been appended already (the reconnect catch-up reads from here).
    pub(crate) fn set_baseline(&self, pos: Position) {
        let mut st = self.state.lock();
        if st.last_pos.is_none() {
            st.last_pos = Some(pos);
        }
    }

    /// The position of the newest event this log retains (latest value on subscribe).
    pub(crate) fn newest(&self) -> Option<Position> {
        self.state.lock().events.back().map(HubEvent::position)
    }
}

impl Drop for TopicLog {
    fn drop(&mut self) {
        self.budget.sub(self.state.get_mut().bytes);
    }
}

fn gap(reason: GapReason, missed: Option<u64>) -> HubItem {
    HubItem::Gap { reason, missed }
}

/// A subscriber's place in a [`TopicLog`]: replayed items first, then the log from `next`.
pub(crate) struct Cursor {
    log: Arc<TopicLog>,
    /// The local index of the next event to read.
    next: u64,
    /// The last event delivered: later events at or before it are duplicates, and a jump past
    /// it is a gap.
    last: Option<Position>,
    pending: VecDeque<HubItem>,
    /// This cursor's waker slot: (the log's `wake_gen` when registered, slab key).
    slot: Option<(u64, usize)>,
    ended: bool,
}

impl Cursor {
    fn new(
        log: Arc<TopicLog>,
        next: u64,
        last: Option<Position>,
        pending: VecDeque<HubItem>,
    ) -> Self {
        Self {
            log,
            next,
            last,
            pending,
            slot: None,
            ended: false,
        }
    }

    /// The log this cursor reads.
    pub(crate) fn log(&self) -> &Arc<TopicLog> {
        &self.log
    }

    /// Items read from a remote backend's history, delivered before the log; live events at
    /// or before the last replayed one are skipped.
    pub(crate) fn replay(&mut self, items: Vec<HubItem>, last: Option<Position>) {
        self.pending.extend(items);
        if last.is_some() {
            self.last = last;
        }
    }
}

/// Queues `ev` after the continuity check against the last delivered position (a function of
/// the two fields, so a cursor can call it while it holds its log's lock).
fn accept(last: &mut Option<Position>, pending: &mut VecDeque<HubItem>, ev: &HubEvent) {
    let pos = ev.position();
    match *last {
        Some(l) if l.epoch == pos.epoch && pos.offset <= l.offset => return,
        Some(l) if l.epoch != pos.epoch => pending.push_back(gap(GapReason::Reset, None)),
        Some(l) if pos.offset > l.offset + 1 => {
            pending.push_back(gap(GapReason::Expired, Some(pos.offset - l.offset - 1)))
        }
        _ => {}
    }
    *last = Some(pos);
    pending.push_back(HubItem::Event(ev.clone()));
}

impl Stream for Cursor {
    type Item = HubItem;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<HubItem>> {
        let this = &mut *self;
        loop {
            if let Some(item) = this.pending.pop_front() {
                return Poll::Ready(Some(item));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            let log = &this.log;
            let mut st = log.state.lock();
            let end = st.end();
            let floor = st.base.max(end.saturating_sub(log.max_lag));
            if this.next < floor {
                let missed = floor - this.next;
                this.next = floor;
                drop(st);
                return Poll::Ready(Some(match log.policy {
                    SlowConsumerPolicy::Disconnect => {
                        this.ended = true;
                        HubItem::Lagged { missed }
                    }
                    SlowConsumerPolicy::Skip => {
                        this.last = None;
                        gap(GapReason::Lagged, Some(missed))
                    }
                }));
            }
            if this.next < end {
                let start = (this.next - st.base) as usize;
                let n = ((end - this.next) as usize).min(BATCH);
                // Straight into `pending` (its capacity is kept): no allocation per delivery.
                for ev in st.events.range(start..start + n) {
                    accept(&mut this.last, &mut this.pending, ev);
                }
                drop(st);
                this.next += n as u64;
                continue;
            }
            match this.slot {
                Some((g, k)) if g == st.wake_gen => match st.wakers.get_mut(k) {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    Some(w) => *w = cx.waker().clone(),
                    None => {
                        let k = st.wakers.insert(cx.waker().clone());
                        this.slot = Some((st.wake_gen, k));
                    }
                },
                _ => {
                    let k = st.wakers.insert(cx.waker().clone());
                    this.slot = Some((st.wake_gen, k));
                }
            }
            return Poll::Pending;
        }
    }
}

impl Drop for Cursor {
    fn drop(&mut self) {
        let idle = {
            let mut st = self.log.state.lock();
            if let Some((g, k)) = self.slot
                && g == st.wake_gen
            {
                st.wakers.try_remove(k);
            }
            st.subscribers -= 1;
            st.subscribers == 0
        };
        if idle && let Some(owner) = self.log.owner.upgrade() {
            owner.idle(&self.log.topic);
        }
    }
}
