//! The demo app: the seed's SSE examples, served on `PIKKU_ADDR` (default 127.0.0.1:3000).
//!
//! ```sh
//! cargo run --example demo
//! curl -N http://127.0.0.1:3000/stream/updates?interval_ms=500
//! cargo run --example demo -- --emit-ts-client examples/client/pikku-fetch.gen.ts
//! ```
//!
//! Rooms with presence (README, "Presence and rooms"): `GET /rooms/{room}/events`,
//! `POST /rooms/{room}/messages`, `GET /rooms/{room}/presence`, after `POST /auth/login`.
//!
//! Production settings (README, "Deploying"): `PIKKU_SESSION_SECRET`, `PIKKU_COOKIE_SECURE=always`
//! behind TLS, and `PIKKU_CORS_ORIGINS` when a browser app on another origin calls it.
//! With `PIKKU_TLS_CERT` and `PIKKU_TLS_KEY` (PEM files) it serves HTTPS itself, with HTTP/2
//! (README, "HTTP/2 and TLS").

use std::sync::Arc;
use std::time::Duration;

use pikku::event_hub::{self, HubConfig, HubStatus};
use pikku::prelude::*;
use pikku::session::JwtSessions;

/// The app's services (Pikku's singleton services): shared by every function.
pub struct Services {
    /// A simulated flaky upstream for `/stream/with-errors`.
    pub flaky: FlakySource,
    /// Pub/sub for notification streams (embedded by default).
    pub hub: Arc<dyn EventHub>,
    /// Signs and verifies session tokens (secret from `PIKKU_SESSION_SECRET`).
    pub sessions: Arc<JwtSessions<UserSession>>,
}

impl Services {
    /// Services configured from the environment: the event hub from `PIKKU_EVENT_HUB`
    /// (embedded when unset, `redis://...` to share streams across instances), the session
    /// secret from `PIKKU_SESSION_SECRET`.
    pub async fn from_env() -> Result<Self, event_hub::HubError> {
        Ok(Self {
            flaky: FlakySource,
            hub: event_hub::from_env(HubConfig::from_env()).await?,
            sessions: Arc::new(JwtSessions::from_env()),
        })
    }
}

/// A logged-in user's session (carried inside the signed token).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserSession {
    /// Who is logged in.
    pub user_id: String,
}

/// A deterministic stand-in for `fetchDataFromExternalAPI()`: every third call fails.
#[derive(Default)]
pub struct FlakySource;

impl FlakySource {
    /// Fetches reading number `call`; calls 3, 6, 9, ... fail.
    pub async fn fetch(&self, call: u64) -> Result<Reading, String> {
        if call.is_multiple_of(3) {
            Err(format!("upstream timed out (call {call})"))
        } else {
            Ok(Reading {
                call,
                value: call * 10,
            })
        }
    }
}

/// One update of `/stream/updates`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Update {
    /// When the update was produced (RFC 3339).
    pub timestamp: String,
    /// The payload.
    pub data: UpdateData,
}

/// The payload of an [`Update`].
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct UpdateData {
    /// Counts from 1.
    pub count: u64,
    /// What happened.
    pub message: String,
}

/// Query of `/stream/updates`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct UpdatesQuery {
    /// Milliseconds between updates (default 1000, at least 50).
    pub interval_ms: Option<u64>,
}

/// A reading of the flaky source.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Reading {
    /// Which call produced it.
    pub call: u64,
    /// The value read.
    pub value: u64,
}

/// One item of `/stream/with-errors`: the seed's `{ status, data?, error? }`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum StatusUpdate {
    /// The source answered.
    Success {
        /// The reading.
        data: Reading,
    },
    /// The source failed; the stream goes on.
    Error {
        /// What went wrong.
        error: String,
    },
}

/// Query of `/data`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct DataQuery {
    /// Stream live updates instead of answering once.
    #[serde(default)]
    pub realtime: bool,
    /// Milliseconds between streamed updates (default 1000, at least 50).
    pub interval_ms: Option<u64>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The fastest a client may ask streams to tick: a 1 ms interval let 20 anonymous clients
/// take half a core (and `/stream/with-errors` write a warning per tick).
pub const MIN_INTERVAL_MS: u64 = 50;

fn interval(ms: Option<u64>) -> Duration {
    Duration::from_millis(ms.unwrap_or(1000).max(MIN_INTERVAL_MS))
}

fn live_updates(every: Duration) -> impl Stream<Item = Update> {
    stream! {
        let mut count = 0;
        loop {
            count += 1;
            yield Update {
                timestamp: now(),
                data: UpdateData { count, message: "Live update".into() },
            };
            tokio::time::sleep(every).await;
        }
    }
}

/// Stream live updates
///
/// One update per `interval_ms` (default 1000, at least 50), counting from 1.
#[pikku_func(route = "/stream/updates", method = "get", response = "stream", auth = false, tags = ["streaming"])]
pub async fn stream_updates(
    _services: &Services,
    input: UpdatesQuery,
) -> impl Stream<Item = Update> {
    live_updates(interval(input.interval_ms))
}

/// Stream readings of a flaky source
///
/// Failures of the source are reported as `{"status":"error"}` items and the stream goes on.
#[pikku_func(route = "/stream/with-errors", response = "stream", auth = false, tags = ["streaming"])]
pub async fn stream_with_errors(
    services: &Services,
    input: UpdatesQuery,
) -> impl Stream<Item = StatusUpdate> {
    let every = interval(input.interval_ms);
    stream! {
        for call in 1.. {
            match services.flaky.fetch(call).await {
                Ok(data) => yield StatusUpdate::Success { data },
                Err(error) => {
                    tracing::warn!(%error, "stream error");
                    yield StatusUpdate::Error { error };
                }
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// Data, live or not
///
/// Progressive enhancement: `?realtime=true` streams updates, otherwise one JSON snapshot.
#[pikku_func(route = "/data", auth = false, tags = ["streaming"])]
pub async fn get_data(
    _services: &Services,
    input: DataQuery,
) -> Reply<Update, impl Stream<Item = Update>> {
    if input.realtime {
        Reply::Stream(live_updates(interval(input.interval_ms)))
    } else {
        Reply::Json(Update {
            timestamp: now(),
            data: UpdateData {
                count: 0,
                message: "Static snapshot".into(),
            },
        })
    }
}

/// Input of `POST /auth/login`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginInput {
    /// The user to log in as (letters, digits, `-`, `_`; at most 64).
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub user_id: String,
}

/// Answer of `POST /auth/login`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct LoginOutput {
    /// A bearer token; the same token is also set as the `pikku_session` cookie.
    pub token: String,
}

fn valid_user_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Log in
///
/// A demo login without a password: real apps check credentials here. Answers with a signed
/// token and sets it as an HttpOnly cookie, which browsers' `EventSource` sends.
#[pikku_func(route = "/auth/login", method = "post", auth = false, rate_limit = "10/s", tags = ["auth"])]
pub async fn login(
    services: &Services,
    input: LoginInput,
    ctx: &Context,
) -> Result<LoginOutput, PikkuError> {
    if !valid_user_id(&input.user_id) {
        return Err(
            PikkuError::unprocessable("userId must be 1-64 letters, digits, `-` or `_`")
                .with_field("userId"),
        );
    }
    let token = services.sessions.issue(&UserSession {
        user_id: input.user_id,
    })?;
    let cookie = services.sessions.cookie_for(&token, ctx.headers())?;
    ctx.append_response_header(http::header::SET_COOKIE, cookie);
    Ok(LoginOutput { token })
}

/// Answer of `POST /auth/logout`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogoutOutput {
    /// Always true: the user's sessions are revoked.
    pub logged_out: bool,
}

/// Log out
///
/// Revokes every session of the user issued until now (their open streams end with
/// `event: session_end`, their tokens are refused) and clears the cookie.
#[pikku_func(route = "/auth/logout", method = "post", tags = ["auth"])]
pub async fn logout(
    services: &Services,
    session: &UserSession,
    ctx: &Context,
) -> Result<LogoutOutput, PikkuError> {
    services.sessions.revoke(session);
    let cookie = services.sessions.clear_cookie(ctx.headers())?;
    ctx.append_response_header(http::header::SET_COOKIE, cookie);
    Ok(LogoutOutput { logged_out: true })
}

/// A user's notification topic: `user:{userId}:notifications`, with the user id escaped so it
/// cannot change the topic's structure.
pub fn notifications_topic(user_id: &str) -> String {
    event_hub::topic(&["user", user_id, "notifications"])
}

/// Path of the notification routes.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPath {
    /// Whose notifications.
    pub user_id: String,
}

/// One notification, as published and as streamed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Notification {
    /// What kind of notification.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text.
    pub message: String,
    /// Who sent it (the sender's session, never the client's say-so).
    pub from: String,
}

/// Input of `POST /users/{userId}/notifications`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewNotification {
    /// To whom.
    pub user_id: String,
    /// What kind of notification.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text.
    pub message: String,
}

/// Answer of a publish.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Published {
    /// The event's id: its SSE `id:` on every stream.
    pub id: String,
}

/// Permission: a user may only open their own notification stream.
pub async fn is_self(_services: &Services, input: &UserPath, session: &UserSession) -> bool {
    input.user_id == session.user_id
}

/// Permission: a user may only publish to their own notifications (other devices and tabs
/// of theirs receive them). A real app that lets users message each other checks here that
/// they may (friends, a role), and still names the sender.
pub async fn is_self_recipient(
    _services: &Services,
    input: &NewNotification,
    session: &UserSession,
) -> bool {
    input.user_id == session.user_id
}

/// Stream a user's notifications
///
/// Subscribes to `user:{userId}:notifications` on the event hub and streams each notification
/// with its id. Reconnecting with `Last-Event-ID` resumes where the client left off; a first
/// connection resumes from `?lastEventId=` (e.g. the position of
/// `/users/{userId}/notifications/snapshot`). The subscription ends when the client goes away.
#[pikku_func(route = "/users/{userId}/notifications", response = "stream", permissions = [is_self], tags = ["notifications"])]
pub async fn stream_user_notifications(
    services: &Services,
    input: UserPath,
    _session: &UserSession,
    ctx: &Context,
) -> Result<impl Stream<Item = Frame<Notification>>, PikkuError> {
    let subscription = services
        .hub
        .resume(&notifications_topic(&input.user_id), ctx.last_event_id())
        .await?;
    // Dropping the stream (the client went away) drops the subscription: the seed's
    // `finally { await subscription.unsubscribe() }`.
    Ok(subscription.frames())
}

/// What a page renders before it opens the notification stream.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct NotificationsSnapshot {
    /// Where the user's notification topic stands: open the stream with
    /// `?lastEventId=<position>` (or `Last-Event-ID`) to receive exactly the notifications
    /// published after this snapshot. `earliest` when the topic has no history yet.
    pub position: String,
}

/// A user's notifications snapshot
///
/// The resume point for the stream, taken when the snapshot is. A real app returns the
/// notifications it renders (read from its database) beside it; the page then opens
/// `EventSource('/users/{userId}/notifications?lastEventId=' + position)` and misses nothing
/// published in between.
#[pikku_func(route = "/users/{userId}/notifications/snapshot", permissions = [is_self], tags = ["notifications"])]
pub async fn notifications_snapshot(
    services: &Services,
    input: UserPath,
    _session: &UserSession,
) -> Result<NotificationsSnapshot, PikkuError> {
    let position = services
        .hub
        .position(&notifications_topic(&input.user_id))
        .await?;
    Ok(NotificationsSnapshot {
        position: position.map_or_else(|| pikku::context::EARLIEST.to_owned(), |p| p.to_string()),
    })
}

/// Send a notification
///
/// Publishes to the user's own topic, with the sender named; every open stream of that user
/// receives it.
#[pikku_func(route = "/users/{userId}/notifications", method = "post", permissions = [is_self_recipient], rate_limit = "20/s", tags = ["notifications"])]
pub async fn post_notification(
    services: &Services,
    input: NewNotification,
    session: &UserSession,
) -> Result<Published, PikkuError> {
    if !valid_user_id(&input.user_id) {
        return Err(PikkuError::unprocessable("no such user").with_field("userId"));
    }
    let notification = Notification {
        kind: input.kind,
        message: input.message,
        from: session.user_id.clone(),
    };
    let id = services
        .hub
        .publish(&notifications_topic(&input.user_id), &notification)
        .await?;
    Ok(Published { id })
}

/// A ticker's topic: `ticker:{name}`.
pub fn ticker_topic(name: &str) -> String {
    event_hub::topic(&["ticker", name])
}

/// Path of the ticker routes.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct TickerPath {
    /// The ticker's name (letters, digits, `-`, `_`; at most 64).
    pub ticker: String,
}

/// Input of `POST /tickers/{ticker}`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct NewTick {
    /// The ticker's name.
    pub ticker: String,
    /// The new value.
    pub value: i64,
}

/// One value of a ticker, as published and as streamed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Tick {
    /// Which ticker.
    pub ticker: String,
    /// Its value.
    pub value: i64,
    /// Who set it.
    pub by: String,
}

/// Set a ticker's value
///
/// Publishes the value to `ticker:{ticker}`; every open stream of the ticker receives it.
#[pikku_func(route = "/tickers/{ticker}", method = "post", rate_limit = "20/s", tags = ["realtime"])]
pub async fn post_tick(
    services: &Services,
    input: NewTick,
    session: &UserSession,
) -> Result<Published, PikkuError> {
    if !valid_user_id(&input.ticker) {
        return Err(
            PikkuError::unprocessable("ticker must be 1-64 letters, digits, `-` or `_`")
                .with_field("ticker"),
        );
    }
    let tick = Tick {
        ticker: input.ticker,
        value: input.value,
        by: session.user_id.clone(),
    };
    let id = services
        .hub
        .publish(&ticker_topic(&tick.ticker), &tick)
        .await?;
    Ok(Published { id })
}

/// Stream a ticker, latest value first
///
/// A new subscriber first receives the ticker's current value (its newest event, with its
/// real id), then every change: no separate fetch. Reconnecting with `Last-Event-ID` resumes
/// after the last value seen, without repeating it.
#[pikku_func(route = "/tickers/{ticker}/latest", response = "stream", auth = false, tags = ["realtime"])]
pub async fn stream_ticker(
    services: &Services,
    input: TickerPath,
    ctx: &Context,
) -> Result<impl Stream<Item = Frame<Tick>>, PikkuError> {
    if !valid_user_id(&input.ticker) {
        return Err(PikkuError::unprocessable("no such ticker").with_field("ticker"));
    }
    let subscription = services
        .hub
        .subscribe_latest(&ticker_topic(&input.ticker), ctx.last_event_id())
        .await?;
    Ok(subscription.frames())
}

/// A channel's topic: `channel:{name}`.
pub fn channel_topic(name: &str) -> String {
    event_hub::topic(&["channel", name])
}

/// Path of `POST /channels/{channel}/messages`, and the message.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct NewChannelMessage {
    /// The channel (letters, digits, `-`, `_`; at most 64).
    pub channel: String,
    /// The text.
    pub text: String,
}

/// One message of a channel, as published and as streamed: it names its channel, so a
/// client of a merged stream knows where each message belongs.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ChannelMessage {
    /// The channel it was posted to.
    pub channel: String,
    /// The text.
    pub text: String,
    /// Who posted it.
    pub from: String,
}

/// Query of `GET /channels/stream`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ChannelsQuery {
    /// The channels to follow, comma-separated (`?channels=a,b,c`; at most 16 by default).
    pub channels: String,
}

/// Post to a channel
///
/// Publishes to `channel:{channel}`, with the sender named.
#[pikku_func(route = "/channels/{channel}/messages", method = "post", rate_limit = "20/s", tags = ["realtime"])]
pub async fn post_channel_message(
    services: &Services,
    input: NewChannelMessage,
    session: &UserSession,
) -> Result<Published, PikkuError> {
    if !valid_user_id(&input.channel) {
        return Err(
            PikkuError::unprocessable("channel must be 1-64 letters, digits, `-` or `_`")
                .with_field("channel"),
        );
    }
    let message = ChannelMessage {
        channel: input.channel,
        text: input.text,
        from: session.user_id.clone(),
    };
    let id = services
        .hub
        .publish(&channel_topic(&message.channel), &message)
        .await?;
    Ok(Published { id })
}

/// A room's topic: `room:{room}`, with the name escaped so it cannot change the topic's
/// structure.
pub fn room_topic(room: &str) -> String {
    event_hub::topic(&["room", room])
}

/// Path of the room routes.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RoomPath {
    /// The room (letters, digits, `-`, `_`; at most 64).
    pub room: String,
}

/// Input of `POST /rooms/{room}/messages`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct NewRoomMessage {
    /// The room.
    pub room: String,
    /// The message (at most 2000 characters).
    #[schemars(length(max = 2000))]
    pub text: String,
}

/// A message in a room, as published and streamed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoomMessage {
    /// Who wrote it (the sender's session, never the client's say-so).
    pub user_id: String,
    /// The text.
    pub text: String,
}

/// The data of a room's `event: join` and `event: leave`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoomMember {
    /// Who joined or left.
    pub user_id: String,
}

/// One event of a room's stream: a message (no `event:` name), or a member's arrival
/// (`event: join`) or departure (`event: leave`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum RoomEvent {
    /// A message.
    Message(RoomMessage),
    /// `join` or `leave`.
    Member(RoomMember),
}

/// Answer of `GET /rooms/{room}/presence`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RoomPresence {
    /// The users with an open stream of the room, on any instance, sorted.
    pub users: Vec<String>,
}

fn valid_room(room: &str) -> Result<(), PikkuError> {
    if valid_user_id(room) {
        Ok(())
    } else {
        Err(
            PikkuError::unprocessable("room must be 1-64 letters, digits, `-` or `_`")
                .with_field("room"),
        )
    }
}

/// Stream a room
///
/// The room's messages, and `event: join` / `event: leave` (`{"userId"}`) as members open
/// their first stream of the room or close their last (on any instance; several tabs are one
/// member). Opening this stream makes the session's user present until it closes; an instance
/// that dies loses its members within `PIKKU_HUB_PRESENCE_TTL_MS` (15 s by default).
/// Reconnecting with `Last-Event-ID` resumes.
#[pikku_func(route = "/rooms/{room}/events", response = "stream", tags = ["rooms"])]
pub async fn stream_room(
    services: &Services,
    input: RoomPath,
    session: &UserSession,
    ctx: &Context,
) -> Result<impl Stream<Item = Frame<RoomEvent>>, PikkuError> {
    valid_room(&input.room)?;
    let topic = room_topic(&input.room);
    // Subscribed first, so the user's own `join` is on their stream too.
    let subscription = services.hub.resume(&topic, ctx.last_event_id()).await?;
    let presence = services.hub.join(&topic, &session.user_id).await?;
    // The guard lives as long as the stream: when the client goes away, the user leaves.
    Ok(event_hub::presence_frames(subscription).map(move |frame| {
        let _present = &presence;
        frame
    }))
}

/// Post to a room
///
/// Publishes `{"userId", "text"}` (the user from the session) to every stream of the room.
#[pikku_func(route = "/rooms/{room}/messages", method = "post", rate_limit = "20/s", tags = ["rooms"])]
pub async fn post_room_message(
    services: &Services,
    input: NewRoomMessage,
    session: &UserSession,
) -> Result<Published, PikkuError> {
    valid_room(&input.room)?;
    if input.text.chars().count() > 2000 {
        return Err(PikkuError::unprocessable("text is over 2000 characters").with_field("text"));
    }
    let message = RoomMessage {
        user_id: session.user_id.clone(),
        text: input.text,
    };
    let id = services
        .hub
        .publish(&room_topic(&input.room), &message)
        .await?;
    Ok(Published { id })
}

/// Stream several channels on one connection
///
/// Merges the channels' messages into one stream (one connection instead of one per channel,
/// which browsers cap at six per origin over HTTP/1.1). Each event's id is a composite
/// (`m:<position>,<position>,...`, one per channel in the order asked), so reconnecting with
/// `Last-Event-ID` resumes every channel exactly where it stopped. Too many channels (over the
/// hub's `max_topics_per_stream`) or a channel named twice is a 400.
#[pikku_func(route = "/channels/stream", response = "stream", auth = false, tags = ["realtime"])]
pub async fn stream_channels(
    services: &Services,
    input: ChannelsQuery,
    ctx: &Context,
) -> Result<impl Stream<Item = Frame<ChannelMessage>>, PikkuError> {
    let mut topics = Vec::new();
    for name in input.channels.split(',') {
        if !valid_user_id(name) {
            return Err(PikkuError::unprocessable(
                "channels must be comma-separated names of 1-64 letters, digits, `-` or `_`",
            )
            .with_field("channels"));
        }
        topics.push(channel_topic(name));
    }
    // The hub refuses more topics than its bound, or one named twice (a 400).
    let subscription = services
        .hub
        .subscribe_many(&topics, ctx.last_event_id())
        .await?;
    Ok(subscription.frames())
}

/// Who is in a room
///
/// The users with an open stream of the room, across instances.
#[pikku_func(route = "/rooms/{room}/presence", tags = ["rooms"])]
pub async fn room_presence(
    services: &Services,
    input: RoomPath,
    _session: &UserSession,
) -> Result<RoomPresence, PikkuError> {
    valid_room(&input.room)?;
    let users = services.hub.presence(&room_topic(&input.room)).await?;
    Ok(RoomPresence { users })
}

/// Readiness
///
/// 200 with the event hub's status when it can publish and deliver, 503 when not.
#[pikku_func(route = "/health/ready", auth = false, tags = ["health"])]
pub async fn ready(services: &Services) -> Result<HubStatus, PikkuError> {
    let status = services.hub.check().await;
    if status.healthy {
        Ok(status)
    } else {
        Err(PikkuError::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "hub_unavailable",
            format!("event hub ({}) unavailable", status.backend),
        )
        .with_retry_after(1))
    }
}

/// The demo's Pikku app, configured from the environment (embedded defaults).
pub async fn app() -> Result<Pikku<Services>, event_hub::HubError> {
    Ok(app_with(Services::from_env().await?))
}

/// The demo's stream caps: plenty for a demo, and a bound on what one client or one user
/// can hold (many users can share one IP behind NAT, hence the larger per-IP cap).
pub fn demo_limits() -> pikku::Limits {
    pikku::Limits {
        max_streams: Some(10_000),
        max_streams_per_ip: Some(1_000),
        max_streams_per_session: Some(32),
        ..pikku::Limits::default()
    }
}

/// The demo's Pikku app with the given services.
///
/// Serves the runtime's counters and the hub's gauges at `GET /metrics` (Prometheus text).
pub fn app_with(services: Services) -> Pikku<Services> {
    let sessions = services.sessions.clone();
    let hub = services.hub.clone();
    Pikku::new(services)
        .sessions(sessions)
        .limits(demo_limits())
        .metrics_endpoint("/metrics")
        .metrics_hub(hub)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::var("PIKKU_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    // Browser apps on other origins: `PIKKU_CORS_ORIGINS=https://app.example.com,...`.
    let cors = pikku::CorsConfig::from_env().map_err(std::io::Error::other)?;
    // HTTPS (HTTP/2 and HTTP/1.1) when both are set; one without the other, or a file that
    // does not hold what it should, stops the start.
    let tls = pikku::TlsConfig::from_env()
        .map_err(|e| std::io::Error::other(format!("TLS configuration: {e}")))?;
    let pikku = app().await.map_err(std::io::Error::other)?.cors(cors);
    // `--emit-ts-client <path>` writes the TypeScript client and exits (README, "Clients").
    if pikku.handle_cli_args()? {
        return Ok(());
    }
    let shutdown = pikku.shutdown_handle();
    let metrics = pikku.metrics();
    let router = pikku.router();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let mut cfg = pikku::ServeConfig::default();
    let scheme = match tls {
        Some(tls) => {
            cfg = cfg.tls(tls);
            "https"
        }
        None => "http",
    };
    tracing::info!("demo listening on {scheme}://{}", listener.local_addr()?);
    pikku::serve_with(listener, router, shutdown, cfg).await?;
    let m = metrics.snapshot();
    tracing::info!(
        streams_opened = m.streams_opened,
        streams_closed = m.streams_closed,
        "shutdown complete"
    );
    Ok(())
}
