//! Drain on shutdown, in-process on loopback: the root's trigger fires
//! while workload connections are open; HTTP ones wind down (HTTP/1.1
//! `connection: close`, at once when idle; HTTP/2 GOAWAY) and the drain
//! waits for each connection held, up to its deadline. The process-level
//! behaviour (SIGTERM, refused connects, the exit) is in
//! tests/tests/drain.rs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use egret::net::drain::{self, Drained, Trigger};
use egret::proxy::ProxyContext;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "support/mesh.rs"]
mod mesh;
use egret::testing::client::read_to_close;
use egret::testing::upstream::{echo_tcp, recording_http};
use mesh::{service_entry, Mesh, WAYPOINT};

/// Longer than any drain here should take.
const DEADLINE: Duration = Duration::from_secs(10);
/// What "at once" means for a connection with nothing in flight.
const PROMPT: Duration = Duration::from_secs(1);

/// httpbin.org (HTTP) on 240.240.0.2 and db.test (TCP) on 240.240.0.5,
/// served by a proxy drained by the returned trigger.
async fn drained_mesh() -> (Mesh, Trigger) {
    let (http, _) = recording_http().await;
    let tcp = echo_tcp().await;
    let manifests = format!(
        "{WAYPOINT}---\n{}---\n{}",
        service_entry("httpbin.org", "240.240.0.2", "HTTP", http),
        service_entry("db.test", "240.240.0.5", "TCP", tcp),
    );
    let (trigger, watch) = drain::channel();
    (Mesh::drained_by(&manifests, watch), trigger)
}

fn vip(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 80)
}

/// A captured connection, held against the drain as the outbound listener
/// holds it until its serving task ends.
async fn accepted(ctx: &Arc<ProxyContext>, orig_dst: SocketAddr) -> TcpStream {
    let held = ctx.drain.hold();
    let (client, _src, task) = mesh::captured(ctx.clone(), orig_dst).await;
    tokio::spawn(async move {
        let _ = task.await;
        drop(held);
    });
    client
}

#[tokio::test]
async fn an_http1_request_in_flight_completes_with_connection_close() {
    let (mesh, trigger) = drained_mesh().await;
    let mut client = accepted(&mesh.ctx, vip("240.240.0.2")).await;
    client
        .write_all(b"GET /slow HTTP/1.1\r\nhost: httpbin.org\r\n\r\n")
        .await
        .unwrap();
    // The upstream takes half a second: the drain starts while it works.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let drained = tokio::spawn(trigger.drain(DEADLINE));
    let response = read_to_close(&mut client).await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "the client is told the connection ends: {response}"
    );
    assert!(
        response.ends_with("\r\n\r\nGET /slow"),
        "full body: {response}"
    );
    assert_eq!(drained.await.unwrap(), Drained::Complete);
    assert!(started.elapsed() < DEADLINE / 2, "{:?}", started.elapsed());
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_once() {
    let (mesh, trigger) = drained_mesh().await;
    let mut client = accepted(&mesh.ctx, vip("240.240.0.2")).await;
    client
        .write_all(b"GET /fast HTTP/1.1\r\nhost: httpbin.org\r\n\r\n")
        .await
        .unwrap();
    let mut first = Vec::new();
    while !first.ends_with(b"GET /fast") {
        let mut buf = [0u8; 1024];
        let n = client.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the response");
        first.extend_from_slice(&buf[..n]);
    }
    assert!(
        !String::from_utf8_lossy(&first).contains("connection: close"),
        "kept alive before the drain"
    );
    let started = Instant::now();
    let drained = tokio::spawn(trigger.drain(DEADLINE));
    let rest = read_to_close(&mut client).await;
    assert_eq!(rest, "", "closed with nothing more sent");
    assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());
    assert_eq!(drained.await.unwrap(), Drained::Complete);
    assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());
}

#[tokio::test]
async fn http2_gets_goaway_and_its_open_stream_finishes() {
    let (mesh, trigger) = drained_mesh().await;
    let client = accepted(&mesh.ctx, vip("240.240.0.2")).await;
    let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(client),
    )
    .await
    .unwrap();
    let driven = tokio::spawn(conn);
    let request = |path: &str| {
        Request::get(format!("http://httpbin.org{path}"))
            .body(Empty::new())
            .unwrap()
    };
    let slow = tokio::spawn(sender.send_request(request("/slow")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let drained = tokio::spawn(trigger.drain(DEADLINE));
    let response = slow.await.unwrap().expect("the open stream is answered");
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"GET /slow", "full body");
    // GOAWAY: the connection takes no new stream, and ends.
    tokio::time::timeout(DEADLINE, driven)
        .await
        .expect("the connection ends after GOAWAY")
        .unwrap()
        .unwrap();
    assert!(sender.send_request(request("/fast")).await.is_err());
    assert_eq!(drained.await.unwrap(), Drained::Complete);
    assert!(started.elapsed() < DEADLINE / 2, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_busy_tcp_connection_keeps_the_drain_until_its_deadline() {
    let (mesh, trigger) = drained_mesh().await;
    let mut client = accepted(&mesh.ctx, vip("240.240.0.5")).await;
    client.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    client.read_exact(&mut buf).await.unwrap();
    let started = Instant::now();
    let drained = trigger.drain(Duration::from_millis(300)).await;
    assert_eq!(drained, Drained::TimedOut { open: 1 });
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < PROMPT,
        "{waited:?}"
    );
    // Bytes still flow until the root closes it by exiting (tests/tests/drain.rs).
    client.write_all(b"pong").await.unwrap();
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
}
