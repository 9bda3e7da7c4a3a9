use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pikku::event_hub::MemoryHub;
use pikku::prelude::*;
use tracing_subscriber::EnvFilter;

/// Your singleton services: db pools, clients, the event hub...
pub struct Services {
    pub hub: Arc<dyn EventHub>,
}

#[derive(Serialize, JsonSchema)]
pub struct Update {
    timestamp_ms: u64,
    data: UpdateData,
}

#[derive(Serialize, JsonSchema)]
pub struct UpdateData {
    count: u64,
    message: String,
}

/// Stream live updates
#[pikku_func(route = "/stream/updates", method = "get", response = "stream", auth = false, tags = ["streaming"])]
pub async fn stream_updates(_services: &Services) -> impl Stream<Item = Update> {
    stream! {
        let mut count = 0;
        loop {
            count += 1;
            let data = UpdateData { count, message: "Live update".into() };
            yield Update { timestamp_ms: now_ms(), data };
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Message {
    text: String,
}

#[derive(Serialize, JsonSchema)]
pub struct Published {
    id: String,
}

/// Publish a message
#[pikku_func(route = "/messages", method = "post", auth = false)]
pub async fn post_message(services: &Services, input: Message) -> Result<Published, PikkuError> {
    // `publish` returns the event's id: its SSE `id:` on every stream.
    let id = services.hub.publish("messages", &input).await?;
    Ok(Published { id })
}

/// Stream the messages, resuming after `Last-Event-ID`
#[pikku_func(route = "/messages", response = "stream", auth = false)]
pub async fn messages(
    services: &Services,
    ctx: &Context,
) -> Result<impl Stream<Item = Frame<Message>>, PikkuError> {
    let subscription = services.hub.resume("messages", ctx.last_event_id()).await?;
    Ok(subscription.frames())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Pikku logs through `tracing`: the routes it mounts, startup warnings, request errors.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    let hub = Arc::new(MemoryHub::new()); // the embedded hub; `event_hub::from_env` for Redis
    let pikku = Pikku::new(Services { hub }); // every #[pikku_func] taking &Services
    let shutdown = pikku.shutdown_handle();
    let router = pikku.try_router()?; // duplicate routes, bad `{param}`s, ... as an error

    let addr = std::env::var("PIKKU_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    pikku::serve(listener, router, shutdown).await?; // graceful on ctrl-c / SIGTERM
    Ok(())
}
