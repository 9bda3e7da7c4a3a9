//! The runtime's counters in the Prometheus text format (feature `prometheus`), served at
//! `GET /metrics` by [`Pikku::metrics_endpoint`](crate::Pikku::metrics_endpoint).
//!
//! Built on `prometheus-client` (the Prometheus project's Rust client) with a registry of the
//! app's own, never a global one: two apps in one process export their own counters. The
//! counters are read when scraped, so counting costs the request path nothing more than the
//! atomic additions [`Metrics`] makes anyway.
//!
//! | Metric | Type | Labels |
//! |---|---|---|
//! | `pikku_streams_open` | gauge | |
//! | `pikku_streams_opened_total`, `pikku_streams_closed_total` | counter | |
//! | `pikku_requests_total`, `pikku_requests_rejected_total`, `pikku_panics_total` | counter | |
//! | `pikku_route_streams_open` | gauge | `method`, `route` |
//! | `pikku_route_streams_opened_total`, `pikku_route_streams_closed_total` | counter | `method`, `route` |
//! | `pikku_route_requests_total`, `pikku_route_requests_rejected_total`, `pikku_route_panics_total` | counter | `method`, `route` |
//! | `pikku_hub_subscriptions`, `pikku_hub_healthy` (with [`Exporter::with_hub`]) | gauge | `backend` |
//! | `pikku_hub_delivered_total`, `pikku_hub_gaps_total`, `pikku_hub_lagged_total` (with [`Exporter::with_hub`]) | counter | `backend` |
//!
//! `route` is the path as declared (`/users/{userId}/notifications`), never the request's
//! path, so the label's values are bounded by the app's routes.
//!
//! ```
//! let metrics = pikku::Metrics::default();
//! let text = pikku::prometheus::Exporter::new(metrics).render().unwrap();
//! assert!(text.contains("pikku_streams_open 0"));
//! ```

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::event_hub::EventHub;
use crate::metrics::{Metrics, MetricsSnapshot};

/// The `Content-Type` of the exposition (the Prometheus text format, version 0.0.4).
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Renders an app's counters (and optionally a hub's gauges and the app's own metrics) as
/// Prometheus text.
pub struct Exporter {
    registry: Registry,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

impl Exporter {
    /// An exporter of `metrics` (an app's, from [`Pikku::metrics`](crate::Pikku::metrics)).
    pub fn new(metrics: Metrics) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(RuntimeCollector(metrics)));
        Self { registry }
    }

    /// Also exports the hub's live subscriptions in this process and its health.
    pub fn with_hub(mut self, hub: Arc<dyn EventHub>) -> Self {
        self.registry
            .register_collector(Box::new(HubCollector(hub)));
        self
    }

    /// The registry, to register the app's own metrics beside the runtime's.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The exposition now.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Reads [`Metrics`] at each scrape.
#[derive(Debug)]
struct RuntimeCollector(Metrics);

/// One metric of [`MetricsSnapshot`]: name (without `_total`), help, type, value.
type Field = (
    &'static str,
    &'static str,
    MetricType,
    fn(&MetricsSnapshot) -> u64,
);

const FIELDS: &[Field] = &[
    (
        "streams_open",
        "Streams open now.",
        MetricType::Gauge,
        |m| m.streams_open,
    ),
    (
        "streams_opened",
        "Streams opened since start.",
        MetricType::Counter,
        |m| m.streams_opened,
    ),
    (
        "streams_closed",
        "Streams closed since start (each ran its generator's cleanup).",
        MetricType::Counter,
        |m| m.streams_closed,
    ),
    ("requests", "Requests served.", MetricType::Counter, |m| {
        m.requests
    }),
    (
        "requests_rejected",
        "Requests refused by a limit (429/503).",
        MetricType::Counter,
        |m| m.rejected,
    ),
    (
        "panics",
        "Panics caught in functions and stream generators.",
        MetricType::Counter,
        |m| m.panics,
    ),
];

fn encode_value(
    encoder: prometheus_client::encoding::MetricEncoder<'_>,
    kind: MetricType,
    value: u64,
) -> Result<(), std::fmt::Error> {
    match kind {
        MetricType::Counter => ConstCounter::new(value).encode(encoder),
        _ => ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(encoder),
    }
}

impl Collector for RuntimeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let app = self.0.snapshot();
        let routes = self.0.routes();
        for (name, help, kind, read) in FIELDS {
            let name_all = format!("pikku_{name}");
            let metric = encoder.encode_descriptor(&name_all, help, None, *kind)?;
            encode_value(metric, *kind, read(&app))?;
        }
        for (name, help, kind, read) in FIELDS {
            let name_route = format!("pikku_route_{name}");
            let help = format!("{help} By route.");
            let mut family = encoder.encode_descriptor(&name_route, &help, None, *kind)?;
            for r in &routes {
                let labels = [("method", r.method), ("route", r.path)];
                encode_value(family.encode_family(&labels)?, *kind, read(&r.counts))?;
            }
        }
        Ok(())
    }
}

/// Reads a hub's status at each scrape.
struct HubCollector(Arc<dyn EventHub>);

impl std::fmt::Debug for HubCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubCollector").finish_non_exhaustive()
    }
}

impl Collector for HubCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = self.0.status();
        let labels = [("backend", status.backend.as_ref())];
        let mut family = encoder.encode_descriptor(
            "pikku_hub_subscriptions",
            "Live event hub subscriptions in this process.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(status.subscriptions as i64).encode(family.encode_family(&labels)?)?;
        let mut family = encoder.encode_descriptor(
            "pikku_hub_healthy",
            "Whether the event hub can publish and deliver (1) or not (0), as last seen.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(status.healthy)).encode(family.encode_family(&labels)?)?;
        let counts = self.0.counts();
        for (name, help, value) in [
            (
                "pikku_hub_delivered",
                "Events the hub delivered to subscribers in this process (one per subscriber).",
                counts.delivered,
            ),
            (
                "pikku_hub_gaps",
                "Gaps subscribers in this process were told of (events they missed).",
                counts.gaps,
            ),
            (
                "pikku_hub_lagged",
                "Subscribers in this process disconnected for falling behind.",
                counts.lagged,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hub_deliveries_are_counted() {
        use crate::event_hub::{EventHubExt, MemoryHub};
        use futures_util::StreamExt as _;
        let hub = Arc::new(MemoryHub::new());
        let exporter = Exporter::new(Metrics::default()).with_hub(hub.clone());
        let mut sub = hub.subscribe("t").await.unwrap();
        hub.publish("t", &1).await.unwrap();
        assert!(sub.next().await.is_some());
        drop(sub);
        let text = exporter.render().unwrap();
        assert!(
            text.contains("pikku_hub_delivered_total{backend=\"memory\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pikku_hub_gaps_total{backend=\"memory\"} 0"),
            "{text}"
        );
    }
}
