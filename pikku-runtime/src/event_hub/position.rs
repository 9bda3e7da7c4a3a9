//! Positions in a topic's history: an epoch and an offset, written as an event's SSE `id:`.

use std::fmt;

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
}
