//! The hub's settings: the replay window, the slow-consumer policy and the memory budgets.

use std::time::Duration;

/// What happens to a subscriber that falls further behind than [`HubConfig::subscriber_queue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowConsumerPolicy {
    /// End its stream with `event: error` `{"error":"lagged"}`; it reconnects with
    /// `Last-Event-ID` and resumes from the replay window. The default: nothing is lost
    /// while the window holds the missed events, and the window is never smaller than the lag
    /// that triggers the disconnect.
    #[default]
    Disconnect,
    /// Skip to the newest `subscriber_queue` events and say so with an `event: gap`.
    Skip,
}

/// Limits of a hub: the replay window, how far a subscriber may fall behind, and the memory
/// budgets that protect a server exposed to the internet.
///
/// ```
/// use pikku::event_hub::{HubConfig, MemoryHub};
/// let hub = MemoryHub::with_config(HubConfig {
///     max_event_bytes: 16 * 1024,
///     ..HubConfig::default()
/// });
/// ```
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Events kept per topic for resume (the window). Default 10,000.
    pub replay_max_events: usize,
    /// How long events are kept for resume; expired events are trimmed on a timer.
    /// Default 5 minutes.
    pub replay_max_age: Duration,
    /// How many events a subscriber may fall behind the newest before the slow-consumer
    /// policy applies (capped at the window). Default 10,000. It costs nothing per
    /// subscriber: subscribers share the topic's window.
    pub subscriber_queue: usize,
    /// What happens to a subscriber that falls behind.
    pub slow_consumer: SlowConsumerPolicy,
    /// Topics held at once (with subscribers or retained events); a publish or subscribe that
    /// would add one more is refused. Default 100,000.
    pub max_topics: usize,
    /// Bytes of events retained across all topics; a publish over it is refused once its own
    /// topic's oldest events have been dropped to make room. Default 256 MiB.
    pub max_retained_bytes: usize,
    /// Largest event (JSON payload) accepted; larger publishes are refused. Default 1 MiB.
    pub max_event_bytes: usize,
    /// Connections a remote backend opens for live delivery, whatever the number of topics.
    /// Default 2.
    pub connections: usize,
    /// Topics one merged stream may subscribe to ([`EventHubExt::subscribe_many`]); more are
    /// refused with [`HubError::TooManyTopicsPerStream`]. Default 16, at most
    /// [`MAX_TOPICS_PER_STREAM_CEILING`] (which keeps a composite id under
    /// [`MAX_COMPOSITE_LAST_EVENT_ID_LEN`]).
    ///
    /// [`EventHubExt::subscribe_many`]: super::EventHubExt::subscribe_many
    /// [`HubError::TooManyTopicsPerStream`]: super::HubError::TooManyTopicsPerStream
    /// [`MAX_COMPOSITE_LAST_EVENT_ID_LEN`]: crate::context::MAX_COMPOSITE_LAST_EVENT_ID_LEN
    pub max_topics_per_stream: usize,
    /// How long an instance's presence entries live without a refresh: members of an instance
    /// that died without leaving disappear within this. Default 15 s.
    pub presence_ttl: Duration,
    /// How often an instance refreshes its presence entries (and reaps expired ones); keep it
    /// well under [`HubConfig::presence_ttl`]. Default 5 s.
    pub presence_heartbeat: Duration,
    /// Members present in one topic at once (across instances); a join past it is refused
    /// with [`HubError::TooManyMembers`](super::HubError::TooManyMembers). Default 10,000.
    pub max_presence_members: usize,
    /// Topics this instance holds presence in at once; a join in one more is refused with
    /// [`HubError::TooManyPresenceTopics`](super::HubError::TooManyPresenceTopics).
    /// Default 10,000.
    pub max_presence_topics: usize,
}

/// The most topics one merged stream can ever hold, whatever the configuration: a composite id
/// holds a position per topic (at most 38 bytes each) and must fit
/// [`MAX_COMPOSITE_LAST_EVENT_ID_LEN`](crate::context::MAX_COMPOSITE_LAST_EVENT_ID_LEN), and a
/// merged stream tracks which topics are ready in one 64-bit set.
pub const MAX_TOPICS_PER_STREAM_CEILING: usize = 64;

/// Env vars read by [`HubConfig::from_env`].
pub const HUB_ENV_VARS: [&str; 13] = [
    "PIKKU_HUB_SUBSCRIBER_QUEUE",
    "PIKKU_HUB_REPLAY_MAX_EVENTS",
    "PIKKU_HUB_REPLAY_MAX_AGE_MS",
    "PIKKU_HUB_SLOW_CONSUMER",
    "PIKKU_HUB_MAX_TOPICS",
    "PIKKU_HUB_MAX_RETAINED_BYTES",
    "PIKKU_HUB_MAX_EVENT_BYTES",
    "PIKKU_HUB_CONNECTIONS",
    "PIKKU_HUB_MAX_TOPICS_PER_STREAM",
    "PIKKU_HUB_PRESENCE_TTL_MS",
    "PIKKU_HUB_PRESENCE_HEARTBEAT_MS",
    "PIKKU_HUB_MAX_PRESENCE_MEMBERS",
    "PIKKU_HUB_MAX_PRESENCE_TOPICS",
];

impl HubConfig {
    /// The defaults, overridden by the [`HUB_ENV_VARS`] that are set:
    /// `PIKKU_HUB_SUBSCRIBER_QUEUE`, `PIKKU_HUB_REPLAY_MAX_EVENTS`,
    /// `PIKKU_HUB_REPLAY_MAX_AGE_MS`, `PIKKU_HUB_SLOW_CONSUMER` (`disconnect` or `skip`),
    /// `PIKKU_HUB_MAX_TOPICS`, `PIKKU_HUB_MAX_RETAINED_BYTES`, `PIKKU_HUB_MAX_EVENT_BYTES`,
    /// `PIKKU_HUB_CONNECTIONS`, `PIKKU_HUB_MAX_TOPICS_PER_STREAM`, `PIKKU_HUB_PRESENCE_TTL_MS`,
    /// `PIKKU_HUB_PRESENCE_HEARTBEAT_MS`, `PIKKU_HUB_MAX_PRESENCE_MEMBERS` and
    /// `PIKKU_HUB_MAX_PRESENCE_TOPICS`. Unparsable values are ignored with a warning.
    pub fn from_env() -> Self {
        fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
            let v = std::env::var(name).ok()?;
            let parsed = v.trim().parse().ok();
            if parsed.is_none() {
                tracing::warn!(value = %v, "ignoring unparsable {name}");
            }
            parsed
        }
        let mut cfg = Self::default();
        if let Some(n) = var::<usize>(HUB_ENV_VARS[0]) {
            cfg.subscriber_queue = n.max(1);
        }
        if let Some(n) = var::<usize>(HUB_ENV_VARS[1]) {
            cfg.replay_max_events = n;
        }
        if let Some(ms) = var::<u64>(HUB_ENV_VARS[2]) {
            cfg.replay_max_age = Duration::from_millis(ms);
        }
        if let Some(policy) = var::<String>(HUB_ENV_VARS[3]) {
            match policy.as_str() {
                "disconnect" => cfg.slow_consumer = SlowConsumerPolicy::Disconnect,
                "skip" => cfg.slow_consumer = SlowConsumerPolicy::Skip,
                other => tracing::warn!(value = other, "ignoring unknown {}", HUB_ENV_VARS[3]),
            }
        }
        if let Some(n) = var::<usize>(HUB_ENV_VARS[4]) {
            cfg.max_topics = n;
        }
        if let Some(n) = var::<usize>(HUB_ENV_VARS[5]) {
            cfg.max_retained_bytes = n;
        }
        if let Some(n) = var::<usize>(HUB_ENV_VARS[6]) {
            cfg.max_event_bytes = n;
        }
        if let Some(n) = var::<usize>(HUB_ENV_VARS[7]) {
            cfg.connections = n.clamp(1, 64);
        }
        if let Some(n) = var::<usize>(HUB_ENV_VARS[8]) {
            cfg.max_topics_per_stream = n;
        }
        if let Some(ms) = var::<u64>(HUB_ENV_VARS[9]) {
            cfg.presence_ttl = Duration::from_millis(ms.max(1));
        }
        if let Some(ms) = var::<u64>(HUB_ENV_VARS[10]) {
            cfg.presence_heartbeat = Duration::from_millis(ms.max(1));
        }
        if let Some(n) = var::<usize>(HUB_ENV_VARS[11]) {
            cfg.max_presence_members = n;
        }
        if let Some(n) = var::<usize>(HUB_ENV_VARS[12]) {
            cfg.max_presence_topics = n;
        }
        cfg
    }

    /// The window's size in events (at least 1).
    pub(crate) fn window(&self) -> usize {
        self.replay_max_events.max(1)
    }

    /// How far a subscriber may fall behind: never more than the window, so a disconnected
    /// laggard can always resume from it.
    pub(crate) fn max_lag(&self) -> usize {
        self.subscriber_queue.clamp(1, self.window())
    }

    /// Topics per merged stream, within `1..=`[`MAX_TOPICS_PER_STREAM_CEILING`].
    pub fn topics_per_stream(&self) -> usize {
        self.max_topics_per_stream
            .clamp(1, MAX_TOPICS_PER_STREAM_CEILING)
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            replay_max_events: 10_000,
            replay_max_age: Duration::from_secs(300),
            subscriber_queue: 10_000,
            slow_consumer: SlowConsumerPolicy::Disconnect,
            max_topics: 100_000,
            max_retained_bytes: 256 * 1024 * 1024,
            max_event_bytes: 1024 * 1024,
            connections: 2,
            max_topics_per_stream: 16,
            presence_ttl: Duration::from_secs(15),
            presence_heartbeat: Duration::from_secs(5),
            max_presence_members: 10_000,
            max_presence_topics: 10_000,
        }
    }
}
