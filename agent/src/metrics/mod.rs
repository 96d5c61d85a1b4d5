//! Prometheus metrics: Istio's standard request and TCP metrics, fed by the
//! access log so both always tell the same story ([`proxy`]), and egret's own
//! (kernel verdicts, authorization, DNS, config), read at scrape time
//! ([`collector`]). [`MetricsRegistry`] renders them for `/metrics`.

pub mod collector;
pub mod labels;
pub mod peers;
pub mod proxy;
pub mod sources;

use std::sync::OnceLock;

use prometheus_client::registry::Registry;

pub use self::collector::{Readings, ReadingsCollector};
pub use self::labels::Reporter;
pub use self::proxy::{ConnectionMeter, ProxyMetrics};

/// The process's proxy metrics. One per process, like the access log they
/// mirror: every connection of every workload adds to the same families.
pub fn proxy_metrics() -> &'static ProxyMetrics {
    static METRICS: OnceLock<ProxyMetrics> = OnceLock::new();
    METRICS.get_or_init(ProxyMetrics::default)
}

/// Content type of the OpenMetrics text exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Everything `/metrics` shows for one process.
#[derive(Debug)]
pub struct MetricsRegistry(Registry);

impl MetricsRegistry {
    /// The proxy metrics plus `readings`, read on every scrape.
    pub fn new(readings: impl Readings) -> Self {
        let mut registry = Registry::default();
        proxy_metrics().register(&mut registry);
        registry.register_collector(Box::new(ReadingsCollector(readings)));
        MetricsRegistry(registry)
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug
        // in a label value, and a partial page is still worth serving.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.0) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        text
    }
}
