//! The demo app served by actix-web instead of axum: the same functions (`examples/demo.rs`,
//! included as a module), the same environment (`PIKKU_ADDR`, default 127.0.0.1:3000,
//! `PIKKU_EVENT_HUB`, `PIKKU_SESSION_SECRET`, `PIKKU_COOKIE_SECURE`, ...), the same routes.
//!
//! ```sh
//! cargo run --example actix
//! curl -N http://127.0.0.1:3000/stream/updates?interval_ms=500
//! ```
//!
//! SIGTERM or ctrl-c ends open streams with `event: shutdown`, then stops the server.
//! `PIKKU_CORS_ORIGINS` lets browser apps on those origins call it, as in the demo.

use std::time::Duration;

use pikku::actix_web::{App, HttpServer};

// The demo's functions, types and builders, unchanged (its `main` is not used here).
#[allow(dead_code)]
#[path = "demo.rs"]
mod demo;

/// How long open connections get to finish after the streams were told to shut down.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

fn main() -> std::io::Result<()> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // actix-web runs its own runtime (one current-thread runtime per worker).
    pikku::actix_web::rt::System::new().block_on(run())
}

async fn run() -> std::io::Result<()> {
    let addr = std::env::var("PIKKU_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let cors = pikku::CorsConfig::from_env().map_err(std::io::Error::other)?;
    let pikku = demo::app().await.map_err(std::io::Error::other)?.cors(cors);
    // `--emit-ts-client <path>` writes the TypeScript client and exits, as the demo does.
    if pikku.handle_cli_args()? {
        return Ok(());
    }
    let shutdown = pikku.shutdown_handle();
    let metrics = pikku.metrics();
    let config = pikku.try_actix_config().map_err(std::io::Error::other)?;
    let server = HttpServer::new(move || App::new().configure(config.clone()))
        // A client that went away is noticed at once, not at its stream's next write.
        .h1_allow_half_closed(false)
        // Signals are handled below: the streams hear of the shutdown before the server stops.
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_DEADLINE.as_secs())
        .bind(&addr)?;
    for a in server.addrs() {
        tracing::info!("demo (actix-web) listening on http://{a}");
    }
    let server = server.run();
    let handle = server.handle();
    pikku::actix_web::rt::spawn(async move {
        os_signal().await;
        tracing::info!("shutdown signal received");
        // Every open stream ends with `event: shutdown`; then the server drains and stops.
        shutdown.trigger();
        handle.stop(true).await;
    });
    server.await?;
    let m = metrics.snapshot();
    tracing::info!(
        streams_opened = m.streams_opened,
        streams_closed = m.streams_closed,
        "shutdown complete"
    );
    Ok(())
}

/// Ctrl-c, or SIGTERM on Unix.
async fn os_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; ctrl-c only");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
