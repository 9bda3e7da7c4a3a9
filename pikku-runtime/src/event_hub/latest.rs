//! Latest value on subscribe (Centrifugo's cache recovery): a new subscriber first receives
//! the topic's newest retained event, then live ones.
//!
//! Built on resume rather than a path of its own: the subscription resumes *just before* the
//! newest event, so every backend's hand-over from history to live (no gap, no duplicate)
//! applies unchanged, and the single-topic hot path costs nothing more. Should events be
//! published between reading the newest position and subscribing, they are delivered too, in
//! order: the subscriber may start a few events back, never after a hole. (Should the window
//! trim the newest event in between, a tiny window under a fast publisher, the stream starts
//! with an `expired` gap, as any resume would: said, not silent.)

use super::{EventHub, HubError, Position, Subscription};

/// See [`EventHubExt::subscribe_latest`](super::EventHubExt::subscribe_latest).
pub(super) async fn subscribe_latest<H: EventHub + ?Sized>(
    hub: &H,
    topic: &str,
    last_event_id: Option<&str>,
) -> Result<Subscription, HubError> {
    if last_event_id.is_some() {
        return hub.subscribe_from(topic, last_event_id).await;
    }
    match hub.newest(topic).await? {
        Some(newest) => {
            let before = just_before(newest).to_string();
            hub.subscribe_from(topic, Some(&before)).await
        }
        None => hub.subscribe_from(topic, None).await,
    }
}

/// The position whose resume yields `p` first (offset 0 reads the epoch from its start).
pub(super) fn just_before(p: Position) -> Position {
    Position {
        epoch: p.epoch,
        offset: p.offset.saturating_sub(1),
    }
}
