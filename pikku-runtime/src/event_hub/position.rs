//! Positions in a topic's history: an epoch and an offset, written as an event's SSE `id:`.

use std::fmt;

use super::{GapReason, HubEvent, HubItem};

/// Where an event is in its topic: the `offset` counts the topic's events from 1, the `epoch`
/// names the history the offset counts in. A backend starts a new epoch whenever it may have
/// lost a topic's history, so a position of an old epoch can never be mistaken for continuity.
///
/// Written as `<epoch in hex>-<offset>`, which is the event's SSE `id:`.
///
/// ```
/// use pikku::event_hub::Position;
/// let p = Position { epoch: 0xbeef, offset: 7 };
/// assert_eq!(p.to_string(), "beef-7");
/// assert_eq!("beef-7".parse::<Position>(), Ok(p));
/// assert!("7".parse::<Position>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// The history this offset counts in (never 0).
    pub epoch: u64,
    /// The event's number in that history, from 1.
    pub offset: u64,
}

impl Position {
    /// A new random epoch: 40 bits, never 0, so ids stay short.
    pub fn new_epoch() -> u64 {
        loop {
            let e = rand::random::<u64>() & 0xff_ffff_ffff;
            if e != 0 {
                return e;
            }
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}-{}", self.epoch, self.offset)
    }
}

/// A text that is not a [`Position`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidPosition;

impl std::str::FromStr for Position {
    type Err = InvalidPosition;
    fn from_str(s: &str) -> Result<Self, InvalidPosition> {
        let (epoch, offset) = s.split_once('-').ok_or(InvalidPosition)?;
        let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        if epoch.is_empty() || epoch.len() > 16 || !epoch.chars().all(hex) {
            return Err(InvalidPosition);
        }
        if offset.is_empty() || !offset.chars().all(|c| c.is_ascii_digit()) {
            return Err(InvalidPosition);
        }
        let epoch = u64::from_str_radix(epoch, 16).map_err(|_| InvalidPosition)?;
        let offset = offset.parse().map_err(|_| InvalidPosition)?;
        if epoch == 0 {
            return Err(InvalidPosition);
        }
        Ok(Position { epoch, offset })
    }
}

/// Where a subscription starts, read from a client's `Last-Event-ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// No id: live events only.
    Live,
    /// `0` (or `earliest`, Mercure's word for it): everything the window holds (a gap first
    /// if the topic's start was trimmed).
    Start,
    /// After this position.
    After(Position),
    /// Not a position of any topic (the subscription says so with a gap, then replays the
    /// window).
    Invalid,
}

impl Resume {
    /// Reads a `Last-Event-ID`.
    pub fn parse(last_event_id: Option<&str>) -> Self {
        match last_event_id.map(str::trim) {
            None => Resume::Live,
            Some("0" | "earliest") => Resume::Start,
            Some(id) => id.parse().map_or(Resume::Invalid, Resume::After),
        }
    }
}

/// A topic's history as a remote backend read it for a resume: its epoch (`None` when it has
/// none: never published, or lost), the offset of its last event, and the retained events
/// after the resume point (all the window's when the point is of no use), oldest first.
#[cfg_attr(
    not(any(feature = "redis", feature = "nats", feature = "postgres")),
    allow(dead_code)
)]
pub(crate) struct History {
    pub(crate) epoch: Option<u64>,
    pub(crate) last: u64,
    pub(crate) events: Vec<HubEvent>,
}

impl Resume {
    /// The position to read the history after (`None`: the whole window, or nothing for a
    /// live subscription).
    #[cfg_attr(
        not(any(feature = "redis", feature = "nats", feature = "postgres")),
        allow(dead_code)
    )]
    pub(crate) fn after(self) -> Option<Position> {
        match self {
            Resume::After(p) => Some(p),
            Resume::Live | Resume::Start | Resume::Invalid => None,
        }
    }
}

/// What a resume from `resume` yields before the live feed, given the topic's `history`, and
/// the last position it covers (later live events at or before it are duplicates; `None` when
/// the topic has no history). The one decision of the Redis, NATS and PostgreSQL hubs:
///
/// - no history: a `reset` gap for a position (whatever the client saw is gone), an
///   `unknown_id` gap for garbage, nothing otherwise;
/// - live: nothing, up to the topic's last event;
/// - garbage, or a position ahead of the topic: an `unknown_id` gap, then the window;
/// - a position of another epoch: a `reset` gap, then the window;
/// - a position of this epoch, or `0`: the events after it, preceded by an `expired` gap
///   counting those that left the window.
#[cfg_attr(
    not(any(feature = "redis", feature = "nats", feature = "postgres")),
    allow(dead_code)
)]
pub(crate) fn replay(resume: Resume, history: History) -> (Vec<HubItem>, Option<Position>) {
    let gap = |reason, missed| HubItem::Gap { reason, missed };
    let mut items = Vec::new();
    let Some(current) = history.epoch else {
        match resume {
            Resume::After(_) => items.push(gap(GapReason::Reset, None)),
            Resume::Invalid => items.push(gap(GapReason::UnknownId, None)),
            Resume::Live | Resume::Start => {}
        }
        return (items, None);
    };
    let from = match resume {
        Resume::Live => {
            let head = Position {
                epoch: current,
                offset: history.last,
            };
            return (items, Some(head));
        }
        Resume::Invalid => {
            items.push(gap(GapReason::UnknownId, None));
            0
        }
        Resume::After(p) if p.epoch != current => {
            items.push(gap(GapReason::Reset, None));
            0
        }
        Resume::After(p) if p.offset > history.last => {
            items.push(gap(GapReason::UnknownId, None));
            0
        }
        Resume::After(p) => p.offset,
        Resume::Start => 0,
    };
    let first = history
        .events
        .first()
        .map_or(history.last + 1, HubEvent::seq);
    // Only a resume within the current history can have lost its start to trimming.
    let continuous = matches!(resume, Resume::Start)
        || matches!(resume, Resume::After(p) if p.epoch == current && p.offset <= history.last);
    if continuous && from + 1 < first {
        items.push(gap(GapReason::Expired, Some(first - from - 1)));
    }
    let last = Position {
        epoch: current,
        offset: history.last.max(from),
    };
    items.extend(
        history
            .events
            .into_iter()
            .filter(|e| e.seq() > from)
            .map(HubItem::Event),
    );
    (items, Some(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_garbage_is_refused() {
        for p in [
            Position {
                epoch: 1,
                offset: 0,
            },
            Position {
                epoch: Position::new_epoch(),
                offset: u64::MAX,
            },
        ] {
            assert_eq!(p.to_string().parse(), Ok(p));
        }
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "0-5",
            "g-1",
            "1-x",
            "1-2-3",
            "99999999999999999-0",
            "7",
        ] {
            assert_eq!(bad.parse::<Position>(), Err(InvalidPosition), "{bad}");
        }
        assert_eq!(Resume::parse(Some("0")), Resume::Start);
        assert_eq!(Resume::parse(Some("earliest")), Resume::Start);
        assert_eq!(Resume::parse(None), Resume::Live);
        assert_eq!(Resume::parse(Some("nope")), Resume::Invalid);
    }

    const E: u64 = 0xbeef;

    fn at(offset: u64) -> Position {
        Position { epoch: E, offset }
    }

    /// A topic of epoch `E` whose last event is `last` and whose window holds `first..=last`.
    fn history(first: u64, last: u64) -> History {
        History {
            epoch: Some(E),
            last,
            events: (first..=last)
                .map(|o| HubEvent::new(at(o), bytes::Bytes::from(o.to_string())))
                .collect(),
        }
    }

    fn none() -> History {
        History {
            epoch: None,
            last: 0,
            events: Vec::new(),
        }
    }

    /// The items as text: `gap:<reason>:<missed>` or the event's offset.
    fn show(items: &[HubItem]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                HubItem::Event(e) => e.seq().to_string(),
                HubItem::Gap { reason, missed } => format!("gap:{}:{missed:?}", reason.as_str()),
                HubItem::Lagged { missed } => format!("lagged:{missed}"),
            })
            .collect()
    }

    #[test]
    fn without_history_only_a_position_or_garbage_is_told() {
        for (resume, want) in [
            (Resume::Live, vec![]),
            (Resume::Start, vec![]),
            (Resume::After(at(3)), vec!["gap:reset:None"]),
            (Resume::Invalid, vec!["gap:unknown_id:None"]),
        ] {
            let (items, last) = replay(resume, none());
            assert_eq!(show(&items), want, "{resume:?}");
            assert_eq!(last, None);
        }
    }

    #[test]
    fn live_starts_after_the_last_event() {
        let (items, last) = replay(Resume::Live, history(3, 5));
        assert!(items.is_empty());
        assert_eq!(last, Some(at(5)));
    }

    #[test]
    fn an_exact_resume_replays_what_followed() {
        let (items, last) = replay(Resume::After(at(4)), history(3, 6));
        assert_eq!(show(&items), ["5", "6"]);
        assert_eq!(last, Some(at(6)));
        // At the head: nothing to replay, and live events after it are new.
        let (items, last) = replay(Resume::After(at(6)), history(3, 6));
        assert!(items.is_empty());
        assert_eq!(last, Some(at(6)));
    }

    #[test]
    fn a_resume_before_the_window_is_an_expired_gap_counting_the_lost() {
        let (items, _) = replay(Resume::After(at(2)), history(6, 7));
        assert_eq!(show(&items), ["gap:expired:Some(3)", "6", "7"]);
        let (items, _) = replay(Resume::Start, history(4, 5));
        assert_eq!(show(&items), ["gap:expired:Some(3)", "4", "5"]);
        // From the start of an untrimmed topic: everything, no gap.
        let (items, _) = replay(Resume::Start, history(1, 2));
        assert_eq!(show(&items), ["1", "2"]);
        // Just before the first event of an epoch (latest value on subscribe): no gap.
        let (items, _) = replay(Resume::After(at(0)), history(1, 1));
        assert_eq!(show(&items), ["1"]);
    }

    #[test]
    fn another_epoch_is_a_reset_then_the_window() {
        let old = Position {
            epoch: E + 1,
            offset: 4,
        };
        let (items, last) = replay(Resume::After(old), history(2, 3));
        assert_eq!(show(&items), ["gap:reset:None", "2", "3"]);
        assert_eq!(last, Some(at(3)));
    }

    #[test]
    fn garbage_or_a_position_ahead_is_unknown_then_the_window() {
        let (items, last) = replay(Resume::After(at(9)), history(2, 3));
        assert_eq!(show(&items), ["gap:unknown_id:None", "2", "3"]);
        assert_eq!(last, Some(at(3)));
        let (items, _) = replay(Resume::Invalid, history(2, 3));
        assert_eq!(show(&items), ["gap:unknown_id:None", "2", "3"]);
    }
}
