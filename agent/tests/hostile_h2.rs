//! Hostile HTTP/2 (prior knowledge) at the waypoint, on the wire: header
//! limits answered with egret's 431, and the h2 protections egret relies on
//! kept under test — a CONTINUATION flood and a rapid-reset burst end with
//! GOAWAY `ENHANCE_YOUR_CALM` instead of unbounded work.

use std::time::Duration;

use bytes::Bytes;
use egret::proxy::limits::Limits;
use http_body_util::Empty;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "support/log_capture.rs"]
mod log_capture;
use egret::testing::client::finish;
use egret::testing::upstream::recording_http;

#[path = "support/waypoint.rs"]
mod waypoint;

use waypoint::{captured, context, snapshot};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;
/// RFC 9113 section 7.
const ENHANCE_YOUR_CALM: u32 = 0xb;
const CANCEL: u32 = 0x8;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK string literal (no Huffman) with a 7-bit length prefix.
fn string(out: &mut Vec<u8>, s: &str) {
    let len = s.len();
    if len < 127 {
        out.push(len as u8);
    } else {
        out.push(127);
        let mut rest = len - 127;
        while rest >= 128 {
            out.push((rest % 128) as u8 | 0x80);
            rest /= 128;
        }
        out.push(rest as u8);
    }
    out.extend_from_slice(s.as_bytes());
}

/// HPACK "literal header field without indexing, new name".
fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0);
    string(out, name);
    string(out, value);
}

fn request_block() -> Vec<u8> {
    let mut block = Vec::new();
    for (n, v) in [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "httpbin.org"),
    ] {
        field(&mut block, n, v);
    }
    block
}

/// Reads frames until the waypoint closes; the GOAWAY error code if one came.
async fn goaway_code(client: &mut TcpStream) -> Option<u32> {
    let mut wire = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut wire)).await;
    assert!(read.is_ok(), "the waypoint closes the connection");
    let mut at = 0;
    let mut code = None;
    while at + 9 <= wire.len() {
        let len = usize::from(wire[at]) << 16
            | usize::from(wire[at + 1]) << 8
            | usize::from(wire[at + 2]);
        let kind = wire[at + 3];
        let payload = &wire[at + 9..(at + 9 + len).min(wire.len())];
        if kind == GOAWAY && payload.len() >= 8 {
            code = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
        }
        at += 9 + len;
    }
    code
}

#[tokio::test]
async fn a_continuation_flood_is_cut_off_with_enhance_your_calm() {
    log_capture::logs();
    let (upstream, seen) = recording_http().await;
    let (mut client, _, task) = captured(context(snapshot(upstream), Limits::default())).await;
    let mut wire = PREFACE.to_vec();
    wire.extend(frame(SETTINGS, 0, 0, &[]));
    wire.extend(frame(HEADERS, 0, 1, &request_block()));
    // Header blocks that never end: tiny fragments, one after another.
    let mut piece = Vec::new();
    field(&mut piece, "x-flood", "a");
    for _ in 0..10_000 {
        wire.extend(frame(CONTINUATION, 0, 1, &piece));
    }
    // The waypoint may hang up before all of it is written.
    let _ = client.write_all(&wire).await;
    assert_eq!(goaway_code(&mut client).await, Some(ENHANCE_YOUR_CALM));
    finish(task).await;
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_rapid_reset_burst_is_cut_off_with_enhance_your_calm() {
    log_capture::logs();
    let (upstream, seen) = recording_http().await;
    let (mut client, _, task) = captured(context(snapshot(upstream), Limits::default())).await;
    let mut wire = PREFACE.to_vec();
    wire.extend(frame(SETTINGS, 0, 0, &[]));
    let block = request_block();
    for i in 0..5_000u32 {
        let stream = 2 * i + 1;
        wire.extend(frame(HEADERS, END_HEADERS, stream, &block));
        wire.extend(frame(RST_STREAM, 0, stream, &CANCEL.to_be_bytes()));
    }
    let _ = client.write_all(&wire).await;
    assert_eq!(goaway_code(&mut client).await, Some(ENHANCE_YOUR_CALM));
    finish(task).await;
    let upstream_requests = seen.lock().unwrap().len();
    assert!(
        upstream_requests < 200,
        "{upstream_requests} reset streams still went upstream"
    );
}

#[tokio::test]
async fn too_many_header_fields_get_431_from_egret() {
    log_capture::logs();
    let (upstream, seen) = recording_http().await;
    let (client, src, task) = captured(context(snapshot(upstream), Limits::default())).await;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(client),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut request = http::Request::get("http://httpbin.org/many");
    for i in 0..101 {
        request = request.header(format!("x-{i}"), "1");
    }
    let response = sender
        .send_request(request.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    assert_eq!(response.headers()["server"], "istio-envoy");
    let ok = sender
        .send_request(
            http::Request::get("http://httpbin.org/fine")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    drop((response, ok, sender));
    finish(task).await;
    assert_eq!(*seen.lock().unwrap(), ["GET /fine"]);
    let lines = log_capture::lines_for(src);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("response_code=431") && l.contains("response_flags=DPE")),
        "{lines:#?}"
    );
}
