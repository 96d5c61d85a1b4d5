//! VirtualService semantics at the waypoint, on the wire: a redirect keeps
//! the query and builds its port and path as Envoy does with Istio's
//! config; routes can match pseudo-headers.

use std::sync::Arc;

use egret::config::snapshot::Snapshot;
use egret::proxy::limits::Limits;
use egret::route::{compile, RouteTable, VirtualServiceSpec};

#[allow(dead_code)] // only the capture itself is used here
#[path = "support/log_capture.rs"]
mod log_capture;
use egret::testing::client::{exchange, finish};
use egret::testing::upstream::recording_http;

#[path = "support/waypoint.rs"]
mod waypoint;

use waypoint::{captured, context, snapshot};

fn with_routes(mut snapshot: Snapshot, http_yaml: &str) -> Snapshot {
    let spec: VirtualServiceSpec =
        serde_yaml::from_str(&format!("hosts: [httpbin.org]\nhttp:\n{http_yaml}")).unwrap();
    let vs = compile("istio-egress", "v", &spec).unwrap();
    snapshot.routes = Arc::new(RouteTable::new(vec![Arc::new(vs)]));
    snapshot
}

async fn reply(snapshot: Snapshot, request: &str) -> String {
    log_capture::logs();
    let (mut client, _, task) = captured(context(snapshot, Limits::default())).await;
    let text = exchange(&mut client, request.as_bytes()).await;
    finish(task).await;
    text
}

fn location(reply: &str) -> &str {
    reply
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap_or_else(|| panic!("no location: {reply}"))
}

#[tokio::test]
async fn redirects_keep_the_query_and_derive_the_port() {
    let (upstream, seen) = recording_http().await;
    let routes = "- match: [{uri: {prefix: /v1/}}]\n  redirect: {prefixRewrite: /v2/, derivePort: FROM_REQUEST_PORT, redirectCode: 308}\n\
                  - match: [{uri: {prefix: /old}}]\n  redirect: {uri: /new, port: 8443, scheme: https}\n";
    let r = reply(
        with_routes(snapshot(upstream), routes),
        "GET /v1/items?page=2&q=%2F HTTP/1.1\r\nhost: httpbin.org:80\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 308 Permanent Redirect\r\n"), "{r}");
    assert!(r.contains("\r\nserver: istio-envoy\r\n"), "{r}");
    // Port 80 of plain http is left out; the Host keeps what it said.
    assert_eq!(location(&r), "http://httpbin.org:80/v2/items?page=2&q=%2F");
    let r = reply(
        with_routes(snapshot(upstream), routes),
        "GET /old/x?keep=1 HTTP/1.1\r\nhost: httpbin.org\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 301 Moved Permanently\r\n"), "{r}");
    assert_eq!(location(&r), "https://httpbin.org:8443/new?keep=1");
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn routes_match_the_method_pseudo_header() {
    let (upstream, seen) = recording_http().await;
    let routes = "- match: [{headers: {':method': {exact: DELETE}}}]\n  directResponse: {status: 405, body: {string: no deletes}}\n\
                  - route: [{destination: {host: httpbin.org}}]\n";
    let r = reply(
        with_routes(snapshot(upstream), routes),
        "DELETE /x HTTP/1.1\r\nhost: httpbin.org\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{r}");
    assert!(r.ends_with("no deletes"), "{r}");
    let r = reply(
        with_routes(snapshot(upstream), routes),
        "GET /x HTTP/1.1\r\nhost: httpbin.org\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert_eq!(*seen.lock().unwrap(), ["GET /x"]);
}

#[tokio::test]
async fn response_header_edits_of_the_route_and_its_picked_destination_apply() {
    let (upstream, seen) = recording_http().await;
    // The weight-0 destination is never picked: only the second one's edits apply.
    let routes = "- headers: {response: {set: {x-route: r}}}\n  route:\n  \
                  - {destination: {host: httpbin.org}, weight: 0, headers: {response: {add: {x-dest: never}}}}\n  \
                  - {destination: {host: httpbin.org}, weight: 100, headers: {response: {add: {x-dest: picked}}}}\n";
    for _ in 0..2 {
        let r = reply(
            with_routes(snapshot(upstream), routes),
            "GET /x HTTP/1.1\r\nhost: httpbin.org\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("\r\nx-route: r\r\n"), "{r}");
        assert!(r.contains("\r\nx-dest: picked\r\n"), "{r}");
        assert!(!r.contains("never"), "{r}");
    }
    assert_eq!(*seen.lock().unwrap(), ["GET /x", "GET /x"]);
}
