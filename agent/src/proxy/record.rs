//! One record per connection: counted opened when it is made, and when it
//! is dropped — whatever ended the connection (its end, a refusal, a config
//! change, a cancelled task) — its `connection complete` line written and
//! its metrics counted closed, exactly once, with the outcome it was given
//! (ztunnel's `ConnectionResult` does the same on `Drop`).

use std::sync::Arc;

use super::access_log;
use super::context::ConnectionContext;
use super::counted::ByteCounters;
use super::metrics::{ConnectionMeter, ProxyMetrics, Reporter};
use super::outcome::{ConnectionOutcome, Failure};

/// What a connection ended without: a task cancelled before it was done.
const NO_OUTCOME: &str = "the connection was dropped before it ended";

/// The access-log line and metrics of one connection.
#[derive(Debug)]
pub struct ConnectionRecord {
    metrics: Arc<ProxyMetrics>,
    conn: Arc<ConnectionContext>,
    meter: ConnectionMeter,
    bytes: Arc<ByteCounters>,
    outcome: Option<ConnectionOutcome>,
}

impl ConnectionRecord {
    /// Counts `conn` as opened in `metrics`, reported by `reporter`.
    pub fn open(
        metrics: Arc<ProxyMetrics>,
        conn: Arc<ConnectionContext>,
        reporter: Reporter,
    ) -> Self {
        let meter = metrics.connection_opened(&conn, reporter);
        ConnectionRecord {
            metrics,
            conn,
            meter,
            bytes: Arc::new(ByteCounters::default()),
            outcome: None,
        }
    }

    /// The counters of the bytes the workload sent and received.
    pub fn bytes(&self) -> &Arc<ByteCounters> {
        &self.bytes
    }

    /// How the connection ended; written when the record is dropped.
    pub fn end(&mut self, outcome: ConnectionOutcome) {
        self.outcome = Some(outcome);
    }
}

impl Drop for ConnectionRecord {
    fn drop(&mut self) {
        let outcome = self
            .outcome
            .take()
            .unwrap_or_else(|| ConnectionOutcome::refused(Failure::unflagged(NO_OUTCOME)));
        let (sent, recv) = (self.bytes.sent(), self.bytes.recv());
        self.metrics
            .connection_closed(&self.meter, outcome.flags(), sent, recv);
        access_log::connection_complete(&self.conn, &outcome, &self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use super::*;
    use crate::config::snapshot::Snapshot;
    use crate::proxy::flags::ResponseFlag;
    use crate::testing::fixtures;

    fn conn() -> Arc<ConnectionContext> {
        let dst = "240.240.0.2:80".parse().unwrap();
        Arc::new(fixtures::connection(Snapshot::default(), dst))
    }

    /// `metric`'s samples, summed.
    fn total(metrics: &ProxyMetrics, metric: &str) -> u64 {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text.lines()
            .filter(|l| l.starts_with(&format!("{metric}{{")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    #[test]
    fn counted_opened_when_made_and_closed_once_when_dropped() {
        let metrics = Arc::new(ProxyMetrics::default());
        let mut record = ConnectionRecord::open(metrics.clone(), conn(), Reporter::Source);
        assert_eq!(total(&metrics, "istio_tcp_connections_opened_total"), 1);
        assert_eq!(total(&metrics, "istio_tcp_connections_closed_total"), 0);
        record.end(ConnectionOutcome::refused(Failure::flagged(
            ResponseFlag::NoRoute,
            "no service",
        )));
        drop(record);
        assert_eq!(total(&metrics, "istio_tcp_connections_closed_total"), 1);
    }

    #[test]
    fn a_record_dropped_without_an_outcome_is_still_closed_once() {
        let metrics = Arc::new(ProxyMetrics::default());
        // A cancelled task drops its record where it stands.
        drop(ConnectionRecord::open(
            metrics.clone(),
            conn(),
            Reporter::Source,
        ));
        assert_eq!(total(&metrics, "istio_tcp_connections_opened_total"), 1);
        assert_eq!(total(&metrics, "istio_tcp_connections_closed_total"), 1);
    }
}
