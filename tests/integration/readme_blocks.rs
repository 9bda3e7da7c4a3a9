//! Every Rust block of the README, compiled: each module holds one block verbatim (between
//! `// README` and `// /README`) plus the few lines it needs around it. The Quickstart is
//! `examples/quickstart.rs` as a whole. `readme::every_rust_block_of_the_readme_is_compiled`
//! fails when a README block is found in none of these files.
//!
//! Generated with the README's text; edit both together.

#![allow(dead_code, unused_variables, clippy::unused_async)]

/// Error items and `?` in a stream (README, "The seed's error handling").
pub mod errors {
    use pikku::prelude::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    #[derive(Default)]
    pub struct Services {
        pub source: Source,
    }

    /// Fails every second read.
    #[derive(Default)]
    pub struct Source(AtomicU64);

    impl Source {
        pub async fn fetch(&self) -> Result<Reading, String> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            if n.is_multiple_of(2) { Err(format!("read {n} failed")) } else { Ok(Reading { n }) }
        }
    }

    #[derive(Serialize, JsonSchema)]
    pub struct Reading {
        pub n: u64,
    }

    // README
    /// Readings of a flaky source; a failed read is one `event: error`, then the stream goes on
    #[pikku_func(route = "/stream/checked", response = "stream", auth = false)]
    async fn checked(s: &Services) -> impl Stream<Item = Result<Reading, PikkuError>> {
        stream! {
            loop {
                yield s.source.fetch().await.map_err(PikkuError::internal); // logged, not leaked
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// The same with `?`: the first failed read is sent as `event: error` and ends the stream
    #[pikku_func(route = "/stream/checked-once", response = "stream", auth = false)]
    async fn checked_once(s: &Services) -> impl Stream<Item = Result<Reading, PikkuError>> {
        try_stream! {
            loop {
                yield s.source.fetch().await.map_err(PikkuError::internal)?;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    // /README
}

/// Progressive enhancement (README).
pub mod reply {
    use pikku::prelude::*;

    pub struct Services;

    #[derive(Deserialize, JsonSchema)]
    pub struct DataQuery {
        #[serde(default)]
        pub realtime: bool,
    }

    #[derive(Serialize, JsonSchema)]
    pub struct Update {
        pub count: u64,
    }

    fn live_updates() -> impl Stream<Item = Update> {
        futures_util::stream::iter((1..=3).map(|count| Update { count }))
    }

    fn snapshot() -> Update {
        Update { count: 0 }
    }

    // README
    #[pikku_func(route = "/data", auth = false)]
    async fn get_data(_: &Services, input: DataQuery) -> Reply<Update, impl Stream<Item = Update>> {
        if input.realtime {
            Reply::Stream(live_updates())
        } else {
            Reply::Json(snapshot())
        }
    }
    // /README
}

/// `Event<T>` (README, "Signature convention").
pub mod event {
    use pikku::prelude::*;

    pub struct Services;

    #[derive(Serialize, JsonSchema)]
    pub struct Notification {
        pub message: String,
    }

    #[pikku_func(route = "/readme/event", response = "stream", auth = false)]
    async fn events(_: &Services) -> impl Stream<Item = Result<Event<Notification>, PikkuError>> {
        try_stream! {
            for seq in 1..=3 {
                let notification = Notification { message: format!("n{seq}") };
                // README
                yield Event::new(notification).with_id(seq)?.with_event("notification")?;
                // /README
            }
        }
    }
}

/// Configuration (README).
pub mod config {
    use pikku::prelude::*;

    pub struct Services;

    pub fn configure(services: Services) -> Result<Pikku<Services>, Box<dyn std::error::Error>> {
        // README
        use std::time::Duration;
        let pikku = Pikku::new(services).sse(
            SseConfig::from_env() // PIKKU_SSE_HEARTBEAT_MS, if set
                .heartbeat(Some(Duration::from_secs(30))) // the seed's `heartbeat: 30000`
                .header("x-stream-version", "2")? // the seed's `sse.headers`
                .retry(Some(Duration::from_secs(3))), // `retry:` sent when a stream opens
        );
        // /README
        Ok(pikku)
    }
}

/// OpenAPI (README, "OpenAPI and the docs page").
pub mod openapi {
    use pikku::prelude::*;

    pub struct Services;

    pub fn configure(services: Services) -> Pikku<Services> {
        // README
        use pikku::openapi::{OpenApiConfig, SpecVersion};
        let pikku = Pikku::new(services).openapi(OpenApiConfig {
            title: "Updates API".into(),
            version: "1.2.0".into(),
            description: Some("Live updates over Server-Sent Events.".into()),
            json_path: Some("/openapi.json".into()), // None: no JSON endpoint
            docs_path: Some("/docs".into()),         // None: no docs page
            servers: vec!["/api".into()],            // where the routes are, when nested
            spec_version: SpecVersion::V3_1,         // or V3_2
            ..OpenApiConfig::default()               // session_cookie: "pikku_session"
        });
        // OpenApiConfig::disabled() turns both off; a docs path that is also a route is a startup error.
        let doc = pikku::openapi::document(pikku.routes(), &OpenApiConfig::default()); // the typed document
        // /README
        let _ = doc;
        pikku
    }
}

/// Nesting and explicit registration (README, "Registration and mounting").
pub mod mounting {
    use pikku::axum;
    use pikku::prelude::*;

    pub struct Services;

    #[pikku_func(route = "/updates", response = "stream", auth = false)]
    pub async fn stream_updates(_: &Services) -> impl Stream<Item = u32> {
        futures_util::stream::iter(1..=3)
    }

    pub mod api {
        use pikku::prelude::*;

        #[pikku_func(route = "/data", auth = false)]
        pub async fn get_data(_: &super::Services) -> u32 {
            1
        }
    }

    pub fn nest(services: Services) -> Result<axum::Router, pikku::StartupError> {
        // README
        let app = axum::Router::new()
            .nest("/api", Pikku::new(services).try_router()?)
            .route("/health", axum::routing::get(|| async { "ok" }))
            .layer(tower_http::trace::TraceLayer::new_for_http());
        // /README
        Ok(app)
    }

    pub fn explicit(services: Services) -> Pikku<Services> {
        // README
        let app = Pikku::with_routes(services, pikku::routes![stream_updates, api::get_data]);
        // /README
        app
    }
}

/// Sessions (README, "Sessions, auth and permissions").
pub mod sessions {
    use pikku::prelude::*;
    use std::sync::Arc;

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct LoginInput {
        pub user_id: String,
    }

    #[derive(Serialize, JsonSchema)]
    pub struct LoginOutput {
        pub token: String,
    }

    #[derive(Serialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct LoggedOut {
        pub logged_out: bool,
    }

    // README
    use pikku::http::header::SET_COOKIE;
    use pikku::session::JwtSessions;

    pub struct Services {
        pub sessions: Arc<JwtSessions<UserSession>>,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    pub struct UserSession {
        pub user_id: String,
    }

    pub fn app() -> Pikku<Services> {
        let sessions = Arc::new(JwtSessions::<UserSession>::from_env()); // PIKKU_SESSION_SECRET
        Pikku::new(Services { sessions: sessions.clone() }).sessions(sessions)
    }

    /// Log in (no password here: a real app checks credentials first)
    #[pikku_func(route = "/auth/login", method = "post", auth = false)]
    async fn login(s: &Services, input: LoginInput, ctx: &Context) -> Result<LoginOutput, PikkuError> {
        let token = s.sessions.issue(&UserSession { user_id: input.user_id })?;
        // `Secure` except for plain HTTP to a loopback host (local development)
        ctx.append_response_header(SET_COOKIE, s.sessions.cookie_for(&token, ctx.headers())?);
        Ok(LoginOutput { token })
    }

    /// Log out: ends the user's open streams (`event: session_end`), refuses their earlier tokens
    #[pikku_func(route = "/auth/logout", method = "post")]
    async fn logout(s: &Services, session: &UserSession, ctx: &Context) -> Result<LoggedOut, PikkuError> {
        s.sessions.revoke(session);
        ctx.append_response_header(SET_COOKIE, s.sessions.clear_cookie(ctx.headers())?);
        Ok(LoggedOut { logged_out: true })
    }
    // /README
}

/// Permissions shared by routes of different input types (README).
pub mod permissions {
    use pikku::event_hub::MemoryHub;
    use pikku::prelude::*;
    use std::sync::Arc;

    pub struct Services {
        pub hub: Arc<dyn EventHub>,
    }

    impl Default for Services {
        fn default() -> Self {
            Self { hub: Arc::new(MemoryHub::new()) }
        }
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct UserSession {
        pub user_id: String,
        pub admin: bool,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct UserPath {
        pub user_id: String,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    pub struct Notification {
        pub message: String,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct NewNotification {
        pub user_id: String,
        #[serde(flatten)]
        pub notification: Notification,
    }

    // README
    /// Inputs that name a user (the `{userId}` of the `/users/{userId}/...` routes).
    pub trait ForUser {
        fn user_id(&self) -> &str;
    }
    impl ForUser for UserPath {
        fn user_id(&self) -> &str {
            &self.user_id
        }
    }
    impl ForUser for NewNotification {
        fn user_id(&self) -> &str {
            &self.user_id
        }
    }

    /// A user may only read and write their own notifications: one check, both routes.
    async fn is_self<I: ForUser>(_: &Services, input: &I, session: &UserSession) -> bool {
        input.user_id() == session.user_id
    }

    /// A check of the session alone fits any input.
    async fn is_admin<I>(_: &Services, _: &I, session: &UserSession) -> bool {
        session.admin
    }

    #[pikku_func(route = "/users/{userId}/notifications", response = "stream", permissions = [is_self])]
    async fn stream_user_notifications(
        s: &Services,
        input: UserPath,
        _session: &UserSession,
    ) -> Result<impl Stream<Item = Frame<Notification>>, PikkuError> {
        Ok(s.hub.subscribe(&input.user_id).await?.frames())
    }

    #[pikku_func(route = "/users/{userId}/notifications", method = "post", permissions = [is_self])]
    async fn post_notification(s: &Services, input: NewNotification, _: &UserSession) -> Result<(), PikkuError> {
        s.hub.publish(&input.user_id, &input.notification).await?;
        Ok(())
    }

    #[pikku_func(route = "/admin/stats", permissions = [is_admin])]
    async fn stats(s: &Services, _session: &UserSession) -> usize {
        s.hub.live_subscriptions()
    }
    // /README
}

/// The event hub (README, "The event hub and resumable streams").
pub mod hub {
    use pikku::event_hub::{self, HubError};
    use pikku::prelude::*;
    use std::sync::Arc;

    pub struct Services {
        pub hub: Arc<dyn EventHub>,
    }

    pub struct UserSession;

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct UserPath {
        pub user_id: String,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    pub struct Notification {
        pub message: String,
    }

    // README
    /// Stream a user's notifications
    #[pikku_func(route = "/users/{userId}/notifications", response = "stream")]
    async fn stream_user_notifications(
        services: &Services,
        input: UserPath,
        _session: &UserSession,
        ctx: &Context,
    ) -> Result<impl Stream<Item = Frame<Notification>>, PikkuError> {
        let topic = event_hub::topic(&["user", &input.user_id, "notifications"]);
        let subscription = services.hub.resume(&topic, ctx.last_event_id()).await?;
        Ok(subscription.frames()) // dropped with the stream when the client goes away
    }

    async fn notify(services: &Services, user_id: &str, n: &Notification) -> Result<String, HubError> {
        let topic = event_hub::topic(&["user", user_id, "notifications"]);
        services.hub.publish(&topic, n).await // the event's id, its SSE `id:` on every stream
    }
    // /README
}

/// The typed Rust client (README, "Typed clients").
pub mod client {
    use crate::demo::*;

    pub async fn use_the_demo() -> Result<(), Box<dyn std::error::Error>> {
        // README
        use futures_util::StreamExt;
        use pikku::client::{CallOptions, Client, ClientError};

        let client = Client::new("http://127.0.0.1:3000")?;
        let mut updates = stream_updates::call(&client, UpdatesQuery { interval_ms: Some(500) });
        while let Some(update) = updates.next().await {
            println!("{}", update?.data.count); // dropping `updates` closes the connection
        }

        let token = login::call(&client, LoginInput { user_id: "alice".into() }).await?.token;
        let alice = client.clone().bearer(&token)?; // session functions send it
        let path = UserPath { user_id: "alice".into() };
        let options = CallOptions::default().last_event_id("41");
        let mut feed = stream_user_notifications::call_with(&alice, path, options);
        while let Some(item) = feed.next().await {
            match item {
                Ok(n) => println!("{}: {}", n.kind, n.message),
                Err(ClientError::Gap(gap)) => eprintln!("missed events: {gap:?}"), // not final
                Err(e) => return Err(e.into()), // Http { status, body } is final
            }
        }
        // /README
        Ok(())
    }
}

/// Serving on actix-web (README, "actix-web").
pub mod actix {
    use pikku::Pikku;
    use pikku::actix_web::{App, HttpServer};

    pub struct Services;

    pub async fn serve(services: Services) -> Result<(), Box<dyn std::error::Error>> {
        // README
        let pikku = Pikku::new(services);
        let shutdown = pikku.shutdown_handle();
        let config = pikku.try_actix_config()?; // the same startup check as `try_router`
        let server = HttpServer::new(move || App::new().configure(config.clone()))
            .h1_allow_half_closed(false) // a client that left is noticed at once, not at the next write
            .disable_signals()
            .bind("127.0.0.1:3000")?
            .run();
        let handle = server.handle();
        actix_web::rt::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            shutdown.trigger(); // open streams end with `event: shutdown`
            handle.stop(true).await;
        });
        server.await?;
        // /README
        Ok(())
    }
}

/// Wiring the runtime's `tracing` spans to OpenTelemetry (README, "Metrics and tracing").
pub mod otel {
    // README
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
    use tracing_subscriber::prelude::*;

    /// Sends the runtime's `pikku` spans (route, method, request id) to OpenTelemetry.
    fn init_tracing(exporter: impl SpanExporter + 'static) -> SdkTracerProvider {
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .build();
        let tracer = provider.tracer("my-app");
        tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("info"))
            .with(tracing_subscriber::fmt::layer())
            .with(tracing_opentelemetry::layer().with_tracer(tracer))
            .init();
        provider // keep it: `provider.shutdown()` flushes the last spans at exit
    }
    // /README
}

/// Latest value and merged streams (README, "Latest value on subscribe", "Many topics on one
/// stream").
pub mod realtime {
    use pikku::event_hub;
    use pikku::prelude::*;
    use std::sync::Arc;

    pub struct Services {
        pub hub: Arc<dyn EventHub>,
    }

    #[derive(Deserialize, JsonSchema)]
    pub struct TickerPath {
        pub ticker: String,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    pub struct Tick {
        pub value: i64,
    }

    #[derive(Deserialize, JsonSchema)]
    pub struct ChannelsQuery {
        pub channels: String,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    pub struct ChannelMessage {
        pub channel: String,
        pub text: String,
    }

    // README
    /// Stream a ticker, latest value first
    #[pikku_func(route = "/tickers/{ticker}/latest", response = "stream", auth = false)]
    async fn stream_ticker(
        services: &Services,
        input: TickerPath,
        ctx: &Context,
    ) -> Result<impl Stream<Item = Frame<Tick>>, PikkuError> {
        let topic = event_hub::topic(&["ticker", &input.ticker]);
        // No `Last-Event-ID`: the newest retained event first, then live. With one: a plain resume.
        let subscription = services.hub.subscribe_latest(&topic, ctx.last_event_id()).await?;
        Ok(subscription.frames())
    }

    /// Stream several channels on one connection
    #[pikku_func(route = "/channels/stream", response = "stream", auth = false)]
    async fn stream_channels(
        services: &Services,
        input: ChannelsQuery, // `?channels=a,b,c`
        ctx: &Context,
    ) -> Result<impl Stream<Item = Frame<ChannelMessage>>, PikkuError> {
        let topics: Vec<String> = input
            .channels
            .split(',')
            .map(|name| event_hub::topic(&["channel", name]))
            .collect();
        // Over `max_topics_per_stream` topics, none, or one named twice: a 400.
        let subscription = services.hub.subscribe_many(&topics, ctx.last_event_id()).await?;
        Ok(subscription.frames()) // each event's id: a composite of every topic's position
    }
    // /README
}

/// Presence in a room's stream (README, "Presence and rooms").
pub mod presence {
    use pikku::event_hub::{self, HubError};
    use pikku::prelude::*;
    use std::sync::Arc;

    pub struct Services {
        pub hub: Arc<dyn EventHub>,
    }

    pub struct UserSession {
        pub user_id: String,
    }

    #[derive(Deserialize, JsonSchema)]
    pub struct RoomPath {
        pub room: String,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct RoomEvent {
        pub user_id: String,
        pub text: Option<String>,
    }

    // README
    /// Stream a room: its messages, and `event: join` / `event: leave` as members come and go
    #[pikku_func(route = "/rooms/{room}/events", response = "stream")]
    async fn stream_room(
        services: &Services,
        input: RoomPath,
        session: &UserSession,
        ctx: &Context,
    ) -> Result<impl Stream<Item = Frame<RoomEvent>>, PikkuError> {
        let topic = event_hub::topic(&["room", &input.room]);
        let subscription = services.hub.resume(&topic, ctx.last_event_id()).await?;
        let presence = services.hub.join(&topic, &session.user_id).await?; // leaves when dropped
        Ok(event_hub::presence_frames(subscription).map(move |frame| {
            let _present = &presence; // held as long as the stream: the client leaving is a leave
            frame
        }))
    }

    async fn who_is_here(services: &Services, room: &str) -> Result<Vec<String>, HubError> {
        services.hub.presence(&event_hub::topic(&["room", room])).await // sorted user ids
    }
    // /README
}
