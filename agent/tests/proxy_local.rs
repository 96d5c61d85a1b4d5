//! The waypoint in-process on loopback: a workload connection handed to
//! `handle_outbound`, a small hyper upstream, and the access log captured
//! from the global subscriber. No eBPF, no traffic off 127.0.0.1.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use egret::config::snapshot::{Protocol, WaypointBinding, WaypointRef};
use egret::proxy::ProxyContext;
use egret::testing::client::finish;
use egret::testing::fixtures::{self, ServiceFixture, VIP};
use egret::testing::resolver::StaticDns;
use egret::testing::upstream::dead_port;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

#[path = "support/log_capture.rs"]
mod log_capture;
use log_capture::{lines_for, logs};

const TEST_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- log capture

fn request_lines(src: SocketAddr) -> Vec<String> {
    lines_for(src)
        .into_iter()
        .filter(|l| l.contains(" info http access request complete "))
        .collect()
}

fn connection_line(src: SocketAddr) -> String {
    let lines: Vec<_> = lines_for(src)
        .into_iter()
        .filter(|l| l.contains(" info access connection complete "))
        .collect();
    assert_eq!(lines.len(), 1, "exactly one connection line: {lines:#?}");
    lines[0].clone()
}

// ---------------------------------------------------------------- upstreams

/// An HTTP/1.1 upstream: `/echo` streams the request body back, `/close`
/// answers and closes, anything else describes the request it got. Every
/// response says which upstream connection carried it.
async fn http_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let next_conn = Arc::new(AtomicU64::new(1));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let conn_id = next_conn.fetch_add(1, Ordering::Relaxed);
            let service = service_fn(move |req: Request<Incoming>| async move {
                let builder = Response::builder()
                    .header("server", "upstream-echo")
                    .header("x-upstream-conn", conn_id.to_string());
                let response = match req.uri().path() {
                    "/echo" => builder.body(req.into_body().boxed()),
                    "/close" => builder.header("connection", "close").body(full("closing")),
                    _ => {
                        let mut text = format!("{} {}\n", req.method(), req.uri());
                        for (name, value) in req.headers() {
                            text.push_str(&format!("{}: {}\n", name, value.to_str().unwrap()));
                        }
                        builder.body(full(text))
                    }
                };
                Ok::<_, Infallible>(response.unwrap())
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

fn full(text: impl Into<Bytes>) -> http_body_util::combinators::BoxBody<Bytes, hyper::Error> {
    Full::new(text.into()).map_err(|n| match n {}).boxed()
}

/// A raw TCP upstream: echoes bytes, and after the client's EOF (half-close)
/// still sends `bye` before closing its side.
async fn tcp_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    let n = stream.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    stream.write_all(&buf[..n]).await.unwrap();
                }
                stream.write_all(b"bye").await.unwrap();
                stream.shutdown().await.unwrap();
            });
        }
    });
    addr
}

// ---------------------------------------------------------------- config

/// httpbin.org on [`VIP`]:80 (HTTP), bound to the waypoint, its one
/// endpoint at 127.0.0.1:`target_port`.
fn httpbin(target_port: u16) -> ServiceFixture {
    ServiceFixture::new("httpbin.org")
        .vip(VIP)
        .port(80, "p", Protocol::Http)
        .endpoint("127.0.0.1")
        .target_port(target_port)
        .bound()
}

/// A proxy context whose snapshot has `service`; `echo.test` resolves to
/// loopback, nothing else does.
fn context(service: ServiceFixture) -> Arc<ProxyContext> {
    let snapshot = fixtures::snapshot([service.build()]);
    let resolver = StaticDns::with(&[("echo.test", "127.0.0.1")]);
    Arc::new(fixtures::proxy(snapshot, resolver))
}

/// A workload connection to `orig_dst`, its far end served by the waypoint.
async fn captured(
    ctx: Arc<ProxyContext>,
    orig_dst: SocketAddr,
) -> (TcpStream, SocketAddr, JoinHandle<()>) {
    logs();
    egret::testing::client::captured(ctx, orig_dst).await
}

fn vip_port(port: u16) -> SocketAddr {
    SocketAddr::new(VIP.parse().unwrap(), port)
}

/// An HTTP/1.1 client over `stream`.
async fn http_client<B>(stream: TcpStream) -> hyper::client::conn::http1::SendRequest<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "httpbin.org")
        .header("user-agent", "curl/8.5.0")
        .header("connection", "keep-alive")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn text(response: Response<Incoming>) -> String {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

fn service_time(response: &Response<Incoming>) -> u64 {
    response.headers()["x-envoy-upstream-service-time"]
        .to_str()
        .unwrap()
        .parse()
        .expect("numeric x-envoy-upstream-service-time")
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn http_through_waypoint_keeps_alive_and_logs_like_ztunnel() {
    let upstream = http_upstream().await;
    let (client, src, task) = captured(context(httpbin(upstream.port())), vip_port(80)).await;
    let mut sender = http_client(client).await;

    let first = sender.send_request(get("/get?show_env=1")).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["server"], "istio-envoy");
    service_time(&first);
    let first_conn = first.headers()["x-upstream-conn"].clone();
    let echoed = text(first).await;
    assert!(echoed.starts_with("GET /get?show_env=1\n"), "{echoed}");
    assert!(
        echoed.contains("host: httpbin.org\n"),
        "Host preserved: {echoed}"
    );
    assert!(echoed.contains("user-agent: curl/8.5.0\n"), "{echoed}");
    assert!(
        !echoed.contains("connection:"),
        "hop-by-hop removed: {echoed}"
    );

    // Same workload connection, same upstream connection.
    sender.ready().await.unwrap();
    let second = sender.send_request(get("/headers")).await.unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["server"], "istio-envoy");
    service_time(&second);
    assert_eq!(
        second.headers()["x-upstream-conn"],
        first_conn,
        "upstream connection reused"
    );
    assert!(text(second).await.starts_with("GET /headers\n"));
    sender.ready().await.unwrap();
    let third = sender.send_request(get("/headers")).await.unwrap();
    assert_eq!(
        third.headers()["x-upstream-conn"],
        first_conn,
        "still reused"
    );
    text(third).await;

    drop(sender);
    finish(task).await;

    let requests = request_lines(src);
    assert_eq!(requests.len(), 3, "{requests:#?}");
    let peers = format!(
        "src.addr={src} src.workload=\"productpage-v1-7654b4b6d5-7c4l5\" src.namespace=\"bookinfo\" \
         src.identity=\"spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage\" \
         dst.addr={upstream} dst.hbone_addr={VIP}:80 dst.service=\"httpbin.org\" \
         dst.workload=\"egress-waypoint\" dst.namespace=\"istio-egress\" \
         dst.identity=\"spiffe://cluster.local/ns/istio-egress/sa/egress-waypoint\" direction=\"outbound\" "
    );
    let request_re = regex::Regex::new(&format!(
        r#"^\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{6}}Z info http access request complete {}method=GET path="/get\?show_env=1" protocol=HTTP1 response_code=200 host="httpbin.org" user_agent="curl/8.5.0" duration="\d+ms"$"#,
        regex::escape(&peers)
    ))
    .unwrap();
    assert!(request_re.is_match(&requests[0]), "{}", requests[0]);
    assert!(
        requests[1].contains(" path=\"/headers\" "),
        "{}",
        requests[1]
    );

    let connection = connection_line(src);
    let connection_re = regex::Regex::new(&format!(
        r#"^\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{6}}Z info access connection complete {}bytes_sent=(\d+) bytes_recv=(\d+) duration="\d+ms"$"#,
        regex::escape(&peers)
    ))
    .unwrap();
    let caps = connection_re
        .captures(&connection)
        .unwrap_or_else(|| panic!("{connection}"));
    let sent: u64 = caps[1].parse().unwrap();
    let recv: u64 = caps[2].parse().unwrap();
    assert!(sent > 100 && recv > 200, "{connection}");
}

/// A request body that yields what the test feeds it, as it feeds it.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

#[tokio::test]
async fn large_bodies_stream_both_ways_through_dns_resolved_upstream() {
    const TOTAL: usize = 8 << 20;
    const CHUNK: usize = 64 << 10;
    // The sender may run at most this far ahead of what came back: a proxy
    // that buffered a whole body before forwarding would stall the test.
    const WINDOW: usize = 1 << 20;

    let upstream = http_upstream().await;
    let ctx = context(
        ServiceFixture::new("echo.test")
            .vip(VIP)
            .port(80, "p", Protocol::Http)
            .target_port(upstream.port())
            .bound(),
    );
    let (client, src, task) = captured(ctx, vip_port(80)).await;
    let mut sender = http_client(client).await;

    let (chunks, body) = mpsc::channel(4);
    let (progress_tx, mut progress) = watch::channel(0usize);
    let request = Request::post("/echo")
        .header("host", "echo.test")
        .body(ChannelBody(body))
        .unwrap();
    let feeder = tokio::spawn(async move {
        let mut sent = 0;
        while sent < TOTAL {
            progress
                .wait_for(|received| sent - received < WINDOW)
                .await
                .unwrap();
            let chunk: Vec<u8> = (sent..sent + CHUNK).map(|i| (i % 251) as u8).collect();
            chunks.send(Bytes::from(chunk)).await.unwrap();
            sent += CHUNK;
        }
    });

    let run = async {
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["server"], "istio-envoy");
        service_time(&response);
        let mut body = response.into_body();
        let mut received = 0usize;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                for (i, byte) in data.iter().enumerate() {
                    assert_eq!(*byte, ((received + i) % 251) as u8, "byte {}", received + i);
                }
                received += data.len();
                progress_tx.send_replace(received);
            }
        }
        received
    };
    let received = tokio::time::timeout(TEST_TIMEOUT, run)
        .await
        .expect("bodies stream without whole-body buffering");
    assert_eq!(received, TOTAL);
    feeder.await.unwrap();

    drop(sender);
    finish(task).await;
    let line = connection_line(src);
    let sent: u64 = regex::Regex::new(r"bytes_sent=(\d+)")
        .unwrap()
        .captures(&line)
        .unwrap()[1]
        .parse()
        .unwrap();
    assert!(sent > TOTAL as u64, "{line}");
    assert!(line.contains(&format!("dst.addr={upstream} ")), "{line}");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let upstream = http_upstream().await;
    let (mut client, src, task) = captured(context(httpbin(upstream.port())), vip_port(80)).await;
    client
        .write_all(
            b"GET /one HTTP/1.1\r\nhost: httpbin.org\r\n\r\n\
              GET /two HTTP/1.1\r\nhost: httpbin.org\r\nconnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(TEST_TIMEOUT, client.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let one = raw.find("GET /one\n").expect("first answered");
    let two = raw.find("GET /two\n").expect("second answered");
    assert!(one < two, "{raw}");
    assert_eq!(raw.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{raw}");
    assert_eq!(raw.matches("server: istio-envoy\r\n").count(), 2, "{raw}");
    finish(task).await;
    assert_eq!(request_lines(src).len(), 2);
}

#[tokio::test]
async fn upstream_closing_its_connection_gets_a_new_one() {
    let upstream = http_upstream().await;
    let (client, _src, task) = captured(context(httpbin(upstream.port())), vip_port(80)).await;
    let mut sender = http_client(client).await;
    let first = sender.send_request(get("/close")).await.unwrap();
    let first_conn = first.headers()["x-upstream-conn"].clone();
    assert!(
        first.headers().get("connection").is_none(),
        "hop-by-hop removed"
    );
    assert_eq!(text(first).await, "closing");
    sender.ready().await.unwrap();
    let second = sender.send_request(get("/get")).await.unwrap();
    assert_eq!(second.status(), 200);
    assert_ne!(second.headers()["x-upstream-conn"], first_conn);
    text(second).await;
    drop(sender);
    finish(task).await;
}

#[tokio::test]
async fn upstream_down_is_envoys_503_with_uf() {
    let (client, src, task) = captured(context(httpbin(dead_port())), vip_port(80)).await;
    let mut sender = http_client(client).await;
    let response = sender.send_request(get("/get")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["server"], "istio-envoy");
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert!(response
        .headers()
        .get("x-envoy-upstream-service-time")
        .is_none());
    assert_eq!(
        text(response).await,
        "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
    );
    drop(sender);
    finish(task).await;
    let requests = request_lines(src);
    assert_eq!(requests.len(), 1);
    assert!(
        requests[0].contains(" response_code=503 ") && requests[0].ends_with(" response_flags=UF"),
        "{}",
        requests[0]
    );
    assert!(!requests[0].contains("dst.addr="), "{}", requests[0]);
}

#[tokio::test]
async fn unresolvable_host_is_503_with_uh() {
    let ctx = context(
        ServiceFixture::new("nowhere.test")
            .vip(VIP)
            .port(80, "p", Protocol::Http)
            .bound(),
    );
    let (client, src, task) = captured(ctx, vip_port(80)).await;
    let mut sender = http_client(client).await;
    let mut request = get("/get");
    request
        .headers_mut()
        .insert("host", "nowhere.test".parse().unwrap());
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(text(response).await, "no healthy upstream");
    drop(sender);
    finish(task).await;
    assert!(request_lines(src)[0].ends_with(" response_flags=UH"));
}

/// Sends `hello`, half-closes, and expects the echo plus the upstream's
/// `bye` written after it saw the half-close.
async fn assert_tcp_proxied(spec: ServiceFixture, port: u16) -> String {
    let (mut client, src, task) = captured(context(spec), vip_port(port)).await;
    // Not HTTP: the HTTP path would answer 400 instead of echoing.
    client.write_all(b"hello\x00\x01").await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(TEST_TIMEOUT, client.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"hello\x00\x01bye");
    finish(task).await;
    assert!(request_lines(src).is_empty());
    let line = connection_line(src);
    assert!(line.contains(" bytes_sent=7 bytes_recv=10 "), "{line}");
    assert!(!line.contains("response_flags"), "{line}");
    line
}

#[tokio::test]
async fn unbound_service_is_proxied_as_tcp() {
    let upstream = tcp_upstream().await;
    let spec = httpbin(upstream.port()).waypoint(WaypointBinding::None);
    let line = assert_tcp_proxied(spec, 80).await;
    assert!(
        line.contains(&format!(
            "dst.addr={upstream} dst.hbone_addr={VIP}:80 dst.service=\"httpbin.org\" direction="
        )),
        "{line}"
    );
}

#[tokio::test]
async fn bound_tcp_port_is_proxied_as_tcp_by_the_waypoint() {
    let upstream = tcp_upstream().await;
    let spec = ServiceFixture::new("db.test")
        .vip(VIP)
        .port(5432, "p", Protocol::Tcp)
        .endpoint("127.0.0.1")
        .target_port(upstream.port())
        .bound();
    let line = assert_tcp_proxied(spec, 5432).await;
    assert!(
        line.contains(" dst.workload=\"egress-waypoint\" "),
        "{line}"
    );
}

/// Connects to `orig_dst` and expects the waypoint to close at once, logging `flag`.
async fn assert_refused(ctx: Arc<ProxyContext>, orig_dst: SocketAddr, flag: &str) -> String {
    let (mut client, src, task) = captured(ctx, orig_dst).await;
    finish(task).await;
    let mut got = Vec::new();
    let n = tokio::time::timeout(TEST_TIMEOUT, client.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a byte");
    let line = connection_line(src);
    assert!(
        line.contains(&format!(" response_flags={flag} error=")),
        "{line}"
    );
    assert!(line.contains(" bytes_sent=0 bytes_recv=0 "), "{line}");
    line
}

#[tokio::test]
async fn unknown_vip_is_closed_with_nr() {
    let ctx = context(httpbin(dead_port()));
    let line = assert_refused(ctx, "240.240.9.9:80".parse().unwrap(), "NR").await;
    assert!(
        line.contains(" dst.hbone_addr=240.240.9.9:80 direction="),
        "{line}"
    );
}

#[tokio::test]
async fn undeclared_port_is_closed_with_nr() {
    let ctx = context(httpbin(dead_port()));
    assert_refused(ctx, vip_port(8080), "NR").await;
}

#[tokio::test]
async fn missing_waypoint_is_closed_with_wm() {
    let spec = httpbin(dead_port()).waypoint(WaypointBinding::Missing(WaypointRef {
        namespace: "istio-egress".into(),
        name: "gone".into(),
    }));
    assert_refused(context(spec), vip_port(80), "WM").await;
}

#[tokio::test]
async fn log_crate_records_are_bridged_into_the_same_lines() {
    logs();
    log::info!(target: "egret_ebpf_probe", "kernel says {}", 7);
    let text = log_capture::text();
    let line = text
        .lines()
        .find(|l| l.contains("kernel says 7"))
        .expect("bridged record");
    assert!(
        regex::Regex::new(
            r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z info egret_ebpf_probe kernel says 7$"
        )
        .unwrap()
        .is_match(line),
        "{line}"
    );
}
