//! The `/metrics` page: the families the proxy counts into (registered by
//! whoever owns them, e.g. [`crate::proxy::metrics`]) and egret's own
//! counters read at scrape time ([`collector`]). [`MetricsRegistry`] renders
//! them.

pub mod collector;

use prometheus_client::registry::Registry;

pub use self::collector::{Readings, ReadingsCollector};

/// Content type of the OpenMetrics text exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Everything `/metrics` shows for one process.
#[derive(Debug)]
pub struct MetricsRegistry(Registry);

impl MetricsRegistry {
    /// The families `register` adds, plus `readings`, read on every scrape.
    pub fn new(register: impl FnOnce(&mut Registry), readings: impl Readings) -> Self {
        let mut registry = Registry::default();
        register(&mut registry);
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
