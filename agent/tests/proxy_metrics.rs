//! Istio metrics of the waypoint in-process on loopback: requests driven
//! through `handle_outbound` must show up in `istio_requests_total` and the
//! TCP counters with the labels, response code and response flags of their
//! access log lines. No eBPF, no traffic off 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use egret::identity::WorkloadInfo;
use egret::proxy::metrics::ProxyMetrics;
use egret::proxy::{handle_outbound, ProxyContext};
use egret::testing::fixtures::{self, ServiceFixture, VIP};
use egret::testing::resolver::StaticDns;
use egret::testing::upstream::{dead_port, recording_http};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};

#[path = "support/log_capture.rs"]
mod log_capture;
use log_capture::{lines_for, logs};

const TEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Log lines of the workload connection from `src` containing `what`.
fn lines(src: SocketAddr, what: &str) -> Vec<String> {
    lines_for(src)
        .into_iter()
        .filter(|l| l.contains(what))
        .collect()
}

/// The value of `key=` in an access log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    Some(rest.split(' ').next().unwrap_or(rest).trim_matches('"'))
}

/// The proxy metrics' text exposition now.
fn exposition(metrics: &ProxyMetrics) -> String {
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

/// The sample of `metric` whose labels include every one of `labels`.
fn sample(text: &str, metric: &str, labels: &[String]) -> Option<u64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want.as_str())))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// `host` on [`VIP`]:80, HTTP, bound to a waypoint this process serves,
/// with its one endpoint at 127.0.0.1:`target_port`.
fn context(host: &str, target_port: u16) -> Arc<ProxyContext> {
    let service = ServiceFixture::new(host)
        .vip(VIP)
        .endpoint("127.0.0.1")
        .target_port(target_port)
        .bound()
        .build();
    Arc::new(fixtures::proxy(
        fixtures::snapshot([service]),
        StaticDns::none(),
    ))
}

/// One keep-alive workload connection to `host` carrying GETs of `paths`;
/// returns the workload's address and the statuses it got.
async fn one_connection(
    ctx: Arc<ProxyContext>,
    workload: &str,
    host: &str,
    paths: &[&str],
) -> (SocketAddr, Vec<u16>) {
    logs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (accepted, src) = listener.accept().await.unwrap();
    let info = Arc::new(WorkloadInfo {
        name: workload.into(),
        namespace: "bookinfo".into(),
        service_account: "bookinfo-productpage".into(),
        ip: "127.0.0.1".parse().unwrap(),
        netns_cookie: 1,
    });
    let orig_dst = SocketAddr::new(VIP.parse().unwrap(), 80);
    let task = tokio::spawn(handle_outbound(ctx, accepted, info, src, orig_dst));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut statuses = Vec::new();
    for path in paths {
        sender.ready().await.unwrap();
        let request = Request::get(*path)
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        statuses.push(response.status().as_u16());
        response.into_body().collect().await.unwrap();
    }
    drop(sender);
    tokio::time::timeout(TEST_TIMEOUT, task)
        .await
        .expect("handle_outbound returns once the workload closes")
        .unwrap();
    (src, statuses)
}

fn peer_labels(workload: &str, host: &str) -> Vec<String> {
    [
        ("reporter", "waypoint"),
        ("source_workload", workload),
        ("source_workload_namespace", "bookinfo"),
        (
            "source_principal",
            "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage",
        ),
        ("destination_service", host),
        ("destination_service_namespace", "istio-egress"),
    ]
    .iter()
    .map(|(k, v)| format!("{k}=\"{v}\""))
    .collect()
}

fn with(mut labels: Vec<String>, more: &[(&str, &str)]) -> Vec<String> {
    labels.extend(more.iter().map(|(k, v)| format!("{k}=\"{v}\"")));
    labels
}

#[tokio::test]
async fn requests_and_connections_are_counted_as_logged() {
    const WORKLOAD: &str = "metrics-ok-5d9c";
    let (upstream, _) = recording_http().await;
    let ctx = context("httpbin.org", upstream);
    let (src, statuses) =
        one_connection(ctx.clone(), WORKLOAD, "httpbin.org", &["/get", "/headers"]).await;
    assert_eq!(statuses, [200, 200]);

    let text = exposition(&ctx.metrics);
    let peers = peer_labels(WORKLOAD, "httpbin.org");
    let requests = with(
        peers.clone(),
        &[
            ("request_protocol", "http"),
            ("response_code", "200"),
            ("response_flags", "-"),
        ],
    );
    assert_eq!(
        sample(&text, "istio_requests_total", &requests),
        Some(2),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "istio_request_duration_milliseconds_count",
            &requests
        ),
        Some(2),
        "{text}"
    );
    let log = lines(src, "request complete");
    assert_eq!(log.len(), 2, "{log:#?}");
    assert!(log
        .iter()
        .all(|l| field(l, "response_code") == Some("200") && field(l, "response_flags").is_none()));

    let tcp = with(peers.clone(), &[("request_protocol", "tcp")]);
    assert_eq!(
        sample(&text, "istio_tcp_connections_opened_total", &tcp),
        Some(1),
        "{text}"
    );
    let closed = with(tcp, &[("response_flags", "-")]);
    assert_eq!(
        sample(&text, "istio_tcp_connections_closed_total", &closed),
        Some(1),
        "{text}"
    );
    let line = lines(src, "connection complete");
    assert_eq!(line.len(), 1, "{line:#?}");
    let logged = |key| field(&line[0], key).and_then(|v| v.parse::<u64>().ok());
    assert!(logged("bytes_sent").unwrap() > 0, "{}", line[0]);
    assert_eq!(
        sample(&text, "istio_tcp_sent_bytes_total", &closed),
        logged("bytes_sent"),
        "{text}\n{}",
        line[0]
    );
    assert_eq!(
        sample(&text, "istio_tcp_received_bytes_total", &closed),
        logged("bytes_recv"),
        "{text}\n{}",
        line[0]
    );
}

#[tokio::test]
async fn a_failed_upstream_has_the_same_flag_in_log_and_metric() {
    const WORKLOAD: &str = "metrics-down-77f1";
    let ctx = context("down.example", dead_port());
    let (src, statuses) = one_connection(ctx.clone(), WORKLOAD, "down.example", &["/get"]).await;
    assert_eq!(statuses, [503]);

    let log = lines(src, "request complete");
    assert_eq!(log.len(), 1, "{log:#?}");
    let flags = field(&log[0], "response_flags").expect("a flagged line");
    assert_eq!(flags, "UF", "{}", log[0]);
    let text = exposition(&ctx.metrics);
    let labels = with(
        peer_labels(WORKLOAD, "down.example"),
        &[
            ("request_protocol", "http"),
            ("response_code", "503"),
            ("response_flags", flags),
        ],
    );
    assert_eq!(
        sample(&text, "istio_requests_total", &labels),
        Some(1),
        "{text}"
    );
}

#[tokio::test]
async fn each_proxy_counts_only_its_own_connections() {
    const WORKLOAD: &str = "metrics-own-1a2b";
    let (upstream, _) = recording_http().await;
    let one = context("httpbin.org", upstream);
    let other = context("httpbin.org", upstream);
    one_connection(one.clone(), WORKLOAD, "httpbin.org", &["/get"]).await;
    let requests = with(
        peer_labels(WORKLOAD, "httpbin.org"),
        &[("response_code", "200"), ("response_flags", "-")],
    );
    let text = exposition(&one.metrics);
    assert_eq!(
        sample(&text, "istio_requests_total", &requests),
        Some(1),
        "{text}"
    );
    let text = exposition(&other.metrics);
    assert_eq!(
        sample(&text, "istio_requests_total", &requests),
        None,
        "{text}"
    );
}
