//! The proxy's Istio-named metrics, fed only from the access log
//! ([`crate::proxy::access_log`]) so a metric and its log line always agree:
//! same request, same response code, same response flags. [`labels`] are
//! their label sets, [`peers`] interns the source/destination half.

pub mod labels;
pub mod peers;

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use self::labels::Reporter;
use self::labels::{Peers, RequestLabels, TcpClosedLabels, TcpLabels};
use self::peers::{Interner, PeerView};
use crate::config::snapshot::Protocol;
use crate::proxy::context::ConnectionContext;
use crate::proxy::ResponseFlags;

/// Istio's default buckets for `istio_request_duration_milliseconds`.
const DURATION_BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS_MS)
}

/// Request and TCP metrics of every connection this process proxies.
#[derive(Debug)]
pub struct ProxyMetrics {
    peers: Interner,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily,
    opened: Family<TcpLabels, Counter>,
    closed: Family<TcpClosedLabels, Counter>,
    sent: Family<TcpClosedLabels, Counter>,
    received: Family<TcpClosedLabels, Counter>,
    rejected: Family<RejectedLabels, Counter>,
}

/// `limit` of `egret_downstream_connections_rejected_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectedLabels {
    limit: &'static str,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        ProxyMetrics {
            peers: Interner::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(duration_histogram),
            opened: Family::default(),
            closed: Family::default(),
            sent: Family::default(),
            received: Family::default(),
            rejected: Family::default(),
        }
    }
}

/// The labels of a connection's HTTP requests, resolved once per connection.
#[derive(Clone, Debug)]
pub struct RequestMeter {
    peers: Peers,
    protocol: &'static str,
}

/// A connection's metric labels, resolved once when it opened.
#[derive(Clone, Debug)]
pub struct ConnectionMeter {
    peers: Peers,
}

impl ConnectionMeter {
    /// The labels the connection's metrics carry.
    pub fn peers(&self) -> &Peers {
        &self.peers
    }
}

impl ProxyMetrics {
    /// Adds the families to `registry` (they stay shared with `self`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "istio_requests",
            "Requests served by the waypoint",
            self.requests.clone(),
        );
        registry.register(
            "istio_request_duration_milliseconds",
            "Time from request head received to response complete",
            self.request_duration.clone(),
        );
        registry.register(
            "istio_tcp_connections_opened",
            "Workload connections accepted",
            self.opened.clone(),
        );
        registry.register(
            "istio_tcp_connections_closed",
            "Workload connections ended",
            self.closed.clone(),
        );
        registry.register(
            "istio_tcp_sent_bytes",
            "Bytes the workload sent, counted when its connection ends",
            self.sent.clone(),
        );
        registry.register(
            "istio_tcp_received_bytes",
            "Bytes the workload received, counted when its connection ends",
            self.received.clone(),
        );
        registry.register(
            "egret_downstream_connections_rejected",
            "Workload connections closed at once: over the per-workload (`workload`) or total (`total`) cap",
            self.rejected.clone(),
        );
    }

    /// Counts a connection refused over the cap named `limit`.
    pub fn connection_rejected(&self, limit: &'static str) {
        self.rejected.get_or_create(&RejectedLabels { limit }).inc();
    }

    /// Counts a connection as opened; the meter carries its labels to
    /// [`ProxyMetrics::connection_closed`].
    pub fn connection_opened(
        &self,
        conn: &ConnectionContext,
        reporter: Reporter,
    ) -> ConnectionMeter {
        let peers = self.peers.get(PeerView::of(conn, reporter));
        self.opened
            .get_or_create(&TcpLabels {
                peers: peers.clone(),
            })
            .inc();
        ConnectionMeter { peers }
    }

    /// Counts a connection as closed, with its byte totals.
    pub fn connection_closed(
        &self,
        meter: &ConnectionMeter,
        flags: ResponseFlags,
        sent: u64,
        received: u64,
    ) {
        let labels = TcpClosedLabels {
            peers: meter.peers.clone(),
            response_flags: flags,
        };
        self.closed.get_or_create(&labels).inc();
        self.sent.get_or_create(&labels).inc_by(sent);
        self.received.get_or_create(&labels).inc_by(received);
    }

    /// The labels `conn`'s requests are counted under (the same for all
    /// of them, so looked up once per connection).
    pub fn request_meter(&self, conn: &ConnectionContext) -> RequestMeter {
        let protocol = match conn.service_port().map(|p| p.protocol) {
            Some(Protocol::Grpc) => "grpc",
            _ => "http",
        };
        RequestMeter {
            peers: self.peers.get(PeerView::of(conn, Reporter::Waypoint)),
            protocol,
        }
    }

    /// Counts one HTTP request served at the waypoint.
    pub fn request(
        &self,
        meter: &RequestMeter,
        status: http::StatusCode,
        flags: ResponseFlags,
        duration: Duration,
    ) {
        let labels = RequestLabels {
            peers: meter.peers.clone(),
            request_protocol: meter.protocol,
            response_code: status.as_u16(),
            response_flags: flags,
        };
        self.requests.get_or_create(&labels).inc();
        self.request_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64() * 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use prometheus_client::encoding::text::encode;

    use super::*;
    use crate::config::snapshot::Snapshot;
    use crate::proxy::ResponseFlag;
    use crate::testing::fixtures::{self, ServiceFixture};

    fn conn(with_service: bool) -> ConnectionContext {
        let vip: std::net::IpAddr = "240.240.0.2".parse().unwrap();
        let mut snapshot = Snapshot::default();
        if with_service {
            let httpbin = ServiceFixture::new("httpbin.org")
                .named("httpbin")
                .vip("240.240.0.2")
                .bound()
                .build();
            snapshot.by_vip.insert(vip, httpbin.clone());
            snapshot.services.push(httpbin);
        }
        fixtures::connection(snapshot, SocketAddr::new(vip, 80))
    }

    fn exposition(metrics: &ProxyMetrics) -> String {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        text
    }

    const PEERS: &str = "reporter=\"waypoint\",source_workload=\"productpage\",\
        source_workload_namespace=\"bookinfo\",\
        source_principal=\"spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage\",\
        destination_service=\"httpbin.org\",destination_service_namespace=\"istio-egress\"";

    #[test]
    fn requests_are_counted_by_code_and_flags() {
        let metrics = ProxyMetrics::default();
        let c = metrics.request_meter(&conn(true));
        let ms = Duration::from_millis(3);
        metrics.request(&c, http::StatusCode::OK, ResponseFlags::default(), ms);
        metrics.request(&c, http::StatusCode::OK, ResponseFlags::default(), ms);
        metrics.request(
            &c,
            http::StatusCode::FORBIDDEN,
            ResponseFlag::RbacDenied.into(),
            ms,
        );
        let text = exposition(&metrics);
        let ok = format!(
            "istio_requests_total{{{PEERS},request_protocol=\"http\",response_code=\"200\",response_flags=\"-\"}} 2\n"
        );
        let denied = format!(
            "istio_requests_total{{{PEERS},request_protocol=\"http\",response_code=\"403\",response_flags=\"RBAC\"}} 1\n"
        );
        assert!(text.contains(&ok), "{text}");
        assert!(text.contains(&denied), "{text}");
        assert!(text.contains("# TYPE istio_request_duration_milliseconds histogram\n"));
        let bucket = format!(
            "istio_request_duration_milliseconds_bucket{{le=\"5.0\",{PEERS},request_protocol=\"http\",response_code=\"200\",response_flags=\"-\"}} 2\n"
        );
        assert!(text.contains(&bucket), "{text}");
    }

    #[test]
    fn tcp_metrics_carry_flags_when_closed() {
        let metrics = ProxyMetrics::default();
        let c = conn(true);
        let meter = metrics.connection_opened(&c, Reporter::Waypoint);
        metrics.connection_closed(
            &meter,
            ResponseFlag::UpstreamConnectionFailure.into(),
            12,
            34,
        );
        let text = exposition(&metrics);
        for line in [
            format!("istio_tcp_connections_opened_total{{{PEERS},request_protocol=\"tcp\"}} 1\n"),
            format!(
                "istio_tcp_connections_closed_total{{{PEERS},request_protocol=\"tcp\",response_flags=\"UF\"}} 1\n"
            ),
            format!(
                "istio_tcp_sent_bytes_total{{{PEERS},request_protocol=\"tcp\",response_flags=\"UF\"}} 12\n"
            ),
            format!(
                "istio_tcp_received_bytes_total{{{PEERS},request_protocol=\"tcp\",response_flags=\"UF\"}} 34\n"
            ),
        ] {
            assert!(text.contains(&line), "missing {line} in:\n{text}");
        }
    }

    #[test]
    fn unknown_destination_and_source_reporter() {
        let metrics = ProxyMetrics::default();
        let meter = metrics.connection_opened(&conn(false), Reporter::Source);
        metrics.connection_closed(&meter, ResponseFlag::NoRoute.into(), 0, 0);
        let text = exposition(&metrics);
        assert!(
            text.contains(
                "reporter=\"source\",source_workload=\"productpage\",source_workload_namespace=\"bookinfo\",\
                 source_principal=\"spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage\",\
                 destination_service=\"unknown\",destination_service_namespace=\"unknown\",\
                 request_protocol=\"tcp\",response_flags=\"NR\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn one_label_set_per_connection_pair() {
        let metrics = ProxyMetrics::default();
        let c = conn(true);
        for _ in 0..3 {
            let meter = metrics.connection_opened(&c, Reporter::Waypoint);
            metrics.connection_closed(&meter, ResponseFlags::default(), 1, 1);
            metrics.request(
                &metrics.request_meter(&c),
                http::StatusCode::OK,
                ResponseFlags::default(),
                Duration::ZERO,
            );
        }
        assert_eq!(metrics.peers.len(), 1);
        assert!(exposition(&metrics).contains(&format!(
            "istio_tcp_connections_opened_total{{{PEERS},request_protocol=\"tcp\"}} 3\n"
        )));
    }
}
