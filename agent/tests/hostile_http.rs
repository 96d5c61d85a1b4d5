//! Hostile HTTP/1.1 at the waypoint, on the wire (in-process, loopback):
//! malformed and oversized requests get egret's own 400/431/501 (Envoy's
//! wording, `server: istio-envoy`, a `request complete` line with `DPE`)
//! and never reach the upstream; paths are normalized per Istio's rules for
//! policy and upstream alike; slow and idle connections are bounded.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use egret::authz::{compile, AuthorizationPolicySpec, PolicySet};
use egret::config::mesh::PathNormalization;
use egret::config::snapshot::Snapshot;
use egret::proxy::limits::Limits;
use egret::proxy::metrics::ProxyMetrics;
use egret::proxy::ProxyContext;

#[path = "support/log_capture.rs"]
mod log_capture;
use egret::testing::client::{exchange, finish, read_to_close};
use egret::testing::upstream::recording_http;

#[path = "support/waypoint.rs"]
mod waypoint;

use log_capture::{lines_for, logs};
use waypoint::{captured, context, snapshot};

/// `request complete` lines of the connection from `src`.
fn request_lines(src: std::net::SocketAddr) -> Vec<String> {
    lines_for(src)
        .into_iter()
        .filter(|l| l.contains(" request complete "))
        .collect()
}

/// Sends `request` on a fresh connection and returns the reply text and the
/// connection's request log lines.
async fn one(snapshot: Snapshot, limits: Limits, request: &[u8]) -> (String, Vec<String>) {
    one_on(&context(snapshot, limits), request).await
}

/// Like [`one`], on the waypoint of `ctx`.
async fn one_on(ctx: &Arc<ProxyContext>, request: &[u8]) -> (String, Vec<String>) {
    logs();
    let (mut client, src, task) = captured(ctx.clone()).await;
    let reply = exchange(&mut client, request).await;
    finish(task).await;
    (reply, request_lines(src))
}

fn assert_local_reply(reply: &str, status_line: &str, body: &str) {
    assert!(reply.starts_with(status_line), "{reply:?}");
    assert!(reply.contains("\r\nserver: istio-envoy\r\n"), "{reply:?}");
    assert!(
        reply.contains("\r\ncontent-type: text/plain\r\n"),
        "{reply:?}"
    );
    assert!(
        reply.contains(&format!("\r\ncontent-length: {}\r\n", body.len())),
        "{reply:?}"
    );
    assert!(reply.ends_with(&format!("\r\n\r\n{body}")), "{reply:?}");
}

/// The value of `key=` in a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    line[start..].split(' ').next()
}

fn assert_logged(lines: &[String], code: u16, flag: &str) {
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(
        field(&lines[0], "response_code"),
        Some(code.to_string().as_str()),
        "{}",
        lines[0]
    );
    assert_eq!(
        field(&lines[0], "response_flags"),
        Some(flag),
        "{}",
        lines[0]
    );
}

#[tokio::test]
async fn malformed_requests_get_400_from_egret_never_a_silent_close() {
    let (upstream, seen) = recording_http().await;
    let ctx = context(snapshot(upstream), Limits::default());
    let counted = requests(&ctx.metrics, 400, "DPE");
    let mut sent = 0;
    for request in [
        &b"GET / HTTP/1.1\r\nhost: httpbin.org\r\nbad header: x\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nhost : httpbin.org\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: httpbin.org\r\nx: a\0b\r\n\r\n",
        b"GET /a\0 HTTP/1.1\r\nhost: httpbin.org\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: httpbin.org\r\nx: a\r\n folded\r\n\r\n",
        b"GET /admin#frag HTTP/1.1\r\nhost: httpbin.org\r\n\r\n",
        b"POST / HTTP/1.1\r\nhost: httpbin.org\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nhost: httpbin.org\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nhost: httpbin.org\r\ncontent-length: -1\r\n\r\n",
        b"GARBAGE\r\n\r\n",
    ] {
        let (reply, lines) = one_on(&ctx, request).await;
        assert_local_reply(&reply, "HTTP/1.1 400 Bad Request\r\n", "Bad Request");
        assert_logged(&lines, 400, "DPE");
        sent += 1;
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    // The metric counts what the log says: this waypoint's own metrics.
    assert_eq!(requests(&ctx.metrics, 400, "DPE"), counted + sent);
}

#[tokio::test]
async fn a_bad_request_after_a_good_one_gets_its_400_after_the_first_response() {
    let (upstream, seen) = recording_http().await;
    let (reply, lines) = one(
        snapshot(upstream),
        Limits::default(),
        b"GET /first HTTP/1.1\r\nhost: httpbin.org\r\n\r\nGET /second HTTP/1.1\r\nbad header: 1\r\n\r\n",
    )
    .await;
    let (first, second) = reply.split_once("GET /first").expect("first response");
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert_local_reply(second, "HTTP/1.1 400 Bad Request\r\n", "Bad Request");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(*seen.lock().unwrap(), ["GET /first"]);
}

#[tokio::test]
async fn transfer_codings_other_than_chunked_get_501() {
    let (upstream, seen) = recording_http().await;
    let (reply, lines) = one(
        snapshot(upstream),
        Limits::default(),
        b"POST / HTTP/1.1\r\nhost: httpbin.org\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert_local_reply(
        &reply,
        "HTTP/1.1 501 Not Implemented\r\n",
        "Not Implemented",
    );
    assert_logged(&lines, 501, "DPE");
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn headers_over_60_kib_or_100_fields_get_431_from_egret() {
    let (upstream, seen) = recording_http().await;
    let big = format!(
        "GET /big HTTP/1.1\r\nhost: httpbin.org\r\nx-big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let (reply, lines) = one(snapshot(upstream), Limits::default(), big.as_bytes()).await;
    assert_local_reply(
        &reply,
        "HTTP/1.1 431 Request Header Fields Too Large\r\n",
        "Request Header Fields Too Large",
    );
    assert_logged(&lines, 431, "DPE");

    let fields = |n: usize| {
        let mut text = String::from("GET /many HTTP/1.1\r\nhost: httpbin.org\r\n");
        for i in 1..n {
            text.push_str(&format!("x-{i}: {i}\r\n"));
        }
        text + "\r\n"
    };
    let (reply, lines) = one(
        snapshot(upstream),
        Limits::default(),
        fields(101).as_bytes(),
    )
    .await;
    assert!(
        reply.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{reply}"
    );
    assert_logged(&lines, 431, "DPE");
    assert!(seen.lock().unwrap().is_empty());

    // Exactly at the limits: served.
    let at_limit = fields(100).replace("\r\n\r\n", "\r\nconnection: close\r\n\r\n");
    let (reply, _) = one(
        snapshot(upstream),
        Limits {
            max_request_headers: 101,
            ..Limits::default()
        },
        at_limit.as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
}

#[tokio::test]
async fn lower_case_methods_and_nul_paths_get_400() {
    let (upstream, seen) = recording_http().await;
    for request in [
        &b"get / HTTP/1.1\r\nhost: httpbin.org\r\nconnection: close\r\n\r\n"[..],
        b"Get / HTTP/1.1\r\nhost: httpbin.org\r\nconnection: close\r\n\r\n",
        b"GET /admin%00 HTTP/1.1\r\nhost: httpbin.org\r\nconnection: close\r\n\r\n",
        b"GET /a/%00/../b HTTP/1.1\r\nhost: httpbin.org\r\nconnection: close\r\n\r\n",
    ] {
        let (reply, lines) = one(snapshot(upstream), Limits::default(), request).await;
        assert!(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{reply}");
        assert!(reply.contains("\r\nserver: istio-envoy\r\n"), "{reply}");
        assert!(reply.ends_with("\r\n\r\nBad Request"), "{reply}");
        assert_logged(&lines, 400, "DPE");
    }
    assert!(seen.lock().unwrap().is_empty());
}

/// What the upstream received for `target` under `mode`.
async fn upstream_sees(mode: PathNormalization, target: &str) -> String {
    let (upstream, seen) = recording_http().await;
    let mut snapshot = snapshot(upstream);
    snapshot.mesh.path_normalization = mode;
    let request =
        format!("GET {target} HTTP/1.1\r\nhost: httpbin.org\r\nconnection: close\r\n\r\n");
    let (reply, _) = one(snapshot, Limits::default(), request.as_bytes()).await;
    assert!(
        reply.starts_with("HTTP/1.1 200 OK\r\n"),
        "{target}: {reply}"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    seen[0].clone()
}

#[tokio::test]
async fn the_upstream_gets_the_normalized_path_with_escapes_as_sent() {
    use PathNormalization::*;
    for (mode, target, want) in [
        (Base, r"/public\..\admin", "GET /admin"),
        (Base, "/a/./b/../%61dmin", "GET /a/admin"),
        (Base, "/a%2fb?q=%2F%2e.", "GET /a%2fb?q=%2F%2e."),
        (Base, "/a%2Fb/%5c", "GET /a%2Fb/%5c"),
        (Base, "//x//y", "GET //x//y"),
        (None, r"/a/..\b", r"GET /a/..\b"),
        (MergeSlashes, "//x//y/", "GET /x/y/"),
        (DecodeAndMergeSlashes, "/a%2Fb%5cc", "GET /a/b/c"),
    ] {
        assert_eq!(upstream_sees(mode, target).await, want, "{mode:?} {target}");
    }
}

/// The snapshot with one AuthorizationPolicy targeting the waypoint.
fn with_policy(mut snapshot: Snapshot, rules_yaml: &str) -> Snapshot {
    let yaml = format!(
        "targetRefs:\n- kind: Gateway\n  group: gateway.networking.k8s.io\n  name: egress-waypoint\n{rules_yaml}"
    );
    let spec: AuthorizationPolicySpec = serde_yaml::from_str(&yaml).unwrap();
    let policy = compile("istio-egress", "hostile", &BTreeMap::new(), &spec).unwrap();
    snapshot.authz = Arc::new(PolicySet::new(vec![Arc::new(policy)], "istio-system"));
    snapshot
}

#[tokio::test]
async fn a_deny_cannot_be_dodged_by_path_or_method_tricks() {
    let (upstream, seen) = recording_http().await;
    let deny = || {
        with_policy(
            snapshot(upstream),
            "action: DENY\nrules:\n- to:\n  - operation:\n      paths: [\"/admin\", \"/a%2fb\"]\n  - operation:\n      methods: [\"DELETE\"]\n",
        )
    };
    for target in [
        "/admin",
        r"/public\..\admin",
        "/public/%2e%2e/admin",
        "/%61dmin",
        "/./admin?x=1",
        "/a%2fb",
    ] {
        let request =
            format!("GET {target} HTTP/1.1\r\nhost: httpbin.org\r\nconnection: close\r\n\r\n");
        let (reply, lines) = one(deny(), Limits::default(), request.as_bytes()).await;
        assert!(
            reply.starts_with("HTTP/1.1 403 Forbidden\r\n"),
            "{target}: {reply}"
        );
        assert_logged(&lines, 403, "RBAC");
    }
    let (reply, _) = one(
        deny(),
        Limits::default(),
        b"delete /x HTTP/1.1\r\nhost: httpbin.org\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{reply}");
    // Neither dodged the DENY; an innocent request still passes.
    assert!(seen.lock().unwrap().is_empty());
    let (reply, _) = one(
        deny(),
        Limits::default(),
        b"GET /a%2Fb HTTP/1.1\r\nhost: httpbin.org\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
}

#[tokio::test]
async fn half_sent_requests_get_408_within_the_headers_timeout() {
    logs();
    let (upstream, _) = recording_http().await;
    let limits = Limits {
        request_headers_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let ctx = context(snapshot(upstream), limits);
    // A slowloris client: many connections, each with a head never finished.
    let mut clients = Vec::new();
    for _ in 0..50 {
        let (mut client, src, task) = captured(ctx.clone()).await;
        tokio::io::AsyncWriteExt::write_all(
            &mut client,
            b"GET / HTTP/1.1\r\nhost: httpbin.org\r\nx-a: ",
        )
        .await
        .unwrap();
        clients.push((client, src, task));
    }
    let started = std::time::Instant::now();
    for (mut client, src, task) in clients {
        let reply = read_to_close(&mut client).await;
        assert_local_reply(
            &reply,
            "HTTP/1.1 408 Request Timeout\r\n",
            "request header timeout",
        );
        finish(task).await;
        let lines = request_lines(src);
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(lines[0].contains(" response_code=408 "), "{}", lines[0]);
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    logs();
    let (upstream, _) = recording_http().await;
    let limits = Limits {
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let ctx = context(snapshot(upstream), limits);
    // Never a byte: closed, no reply.
    let (mut silent, _, task) = captured(ctx.clone()).await;
    assert_eq!(read_to_close(&mut silent).await, "");
    finish(task).await;
    // One request, then nothing: the response, then the close.
    let (mut client, _, task) = captured(ctx).await;
    let reply = exchange(
        &mut client,
        b"GET /once HTTP/1.1\r\nhost: httpbin.org\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.ends_with("GET /once"), "{reply}");
    finish(task).await;
}

/// The proxy metrics' text exposition now.
fn exposition(metrics: &ProxyMetrics) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

/// `egret_downstream_connections_rejected_total{limit}` now.
fn rejected(metrics: &ProxyMetrics, limit: &str) -> u64 {
    let series = format!("egret_downstream_connections_rejected_total{{limit=\"{limit}\"}} ");
    exposition(metrics)
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.parse().unwrap())
}

/// `istio_requests_total` summed over the series with `code` and `flags`.
fn requests(metrics: &ProxyMetrics, code: u16, flags: &str) -> u64 {
    let code = format!("response_code=\"{code}\"");
    let flags = format!("response_flags=\"{flags}\"");
    exposition(metrics)
        .lines()
        .filter(|l| l.starts_with("istio_requests_total{"))
        .filter(|l| l.contains(&code) && l.contains(&flags))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn connections_over_the_workload_cap_are_refused_with_om() {
    logs();
    let (upstream, _) = recording_http().await;
    let limits = Limits {
        max_connections_per_workload: 2,
        ..Limits::default()
    };
    let ctx = context(snapshot(upstream), limits);
    let before = rejected(&ctx.metrics, "workload");
    let (held1, _, task1) = captured(ctx.clone()).await;
    let (mut held2, _, task2) = captured(ctx.clone()).await;
    // Counted from accept; an answered request shows the waypoint has both.
    let reply = exchange_keep_alive(&mut held2).await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    let (mut over, src, task) = captured(ctx.clone()).await;
    assert_eq!(read_to_close(&mut over).await, "", "closed at once");
    finish(task).await;
    let line = lines_for(src)
        .into_iter()
        .find(|l| l.contains(" connection complete "))
        .expect("a connection line");
    assert_eq!(field(&line, "response_flags"), Some("OM"), "{line}");
    assert!(line.contains("--max-connections-per-workload"), "{line}");
    assert_eq!(rejected(&ctx.metrics, "workload"), before + 1);
    // A place freed is a place taken.
    drop((held1, held2));
    finish(task1).await;
    finish(task2).await;
    let (mut again, _, task) = captured(ctx).await;
    let reply = exchange(
        &mut again,
        b"GET /again HTTP/1.1\r\nhost: httpbin.org\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    finish(task).await;
}

/// One keep-alive request; returns its response (read by content length).
async fn exchange_keep_alive(client: &mut tokio::net::TcpStream) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    client
        .write_all(b"GET /held HTTP/1.1\r\nhost: httpbin.org\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut text = String::new();
    while !text.ends_with("GET /held") {
        let n = client.read(&mut buf).await.unwrap();
        assert!(n > 0, "{text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text
}

#[tokio::test]
async fn a_request_waiting_on_a_silent_upstream_gets_408_si() {
    // An upstream that accepts and reads, and never answers.
    let (reply, lines) = through_stalling_upstream(
        b"",
        b"GET /slow HTTP/1.1\r\nhost: httpbin.org\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_local_reply(&reply, "HTTP/1.1 408 Request Timeout\r\n", "stream timeout");
    assert_logged(&lines, 408, "SI");
}

/// `request` sent to an upstream that answers `reply` and then stalls,
/// under a 300 ms stream idle timeout: what came back (within 5 s) and the
/// request lines logged.
async fn through_stalling_upstream(reply: &'static [u8], request: &[u8]) -> (String, Vec<String>) {
    logs();
    let port = stalling_upstream(reply).await;
    let limits = Limits {
        stream_idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let started = std::time::Instant::now();
    let answered = one(snapshot(port), limits, request).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    answered
}

/// An upstream that reads a request, sends `reply`, and then nothing more,
/// holding every connection open.
async fn stalling_upstream(reply: &'static [u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            let _ = stream.write_all(reply).await;
            held.push(stream);
        }
    });
    port
}

/// An upstream that answers 200 and counts its connections still open.
async fn counting_upstream() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let open = Arc::new(AtomicUsize::new(0));
    let count = open.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let count = count.clone();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                count.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (port, open)
}

#[tokio::test]
async fn pooled_upstream_connections_close_after_the_upstream_idle_timeout() {
    use std::sync::atomic::Ordering;
    let (port, open) = counting_upstream().await;
    let limits = Limits {
        upstream_idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (reply, _) = one(
        snapshot(port),
        limits,
        b"GET /x HTTP/1.1\r\nhost: httpbin.org\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    // Pooled for the next workload, then closed once idle for 300 ms.
    assert_eq!(open.load(Ordering::SeqCst), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while open.load(Ordering::SeqCst) > 0 {
        assert!(std::time::Instant::now() < deadline, "still open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_response_that_stalls_is_cut_after_the_stream_idle_timeout() {
    // Headers and 3 of 100 body bytes, then nothing, the connection kept.
    let (reply, lines) = through_stalling_upstream(
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc",
        b"GET /stall HTTP/1.1\r\nhost: httpbin.org\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.ends_with("\r\n\r\nabc"), "cut short: {reply}");
    assert_logged(&lines, 200, "SI");
}
