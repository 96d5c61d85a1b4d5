//! Small upstream servers on loopback.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Request lines (`METHOD path?query`) an upstream received, in order.
pub type Seen = Arc<Mutex<Vec<String>>>;

/// How long `/slow` takes to be answered.
pub const SLOW: Duration = Duration::from_millis(500);

/// An HTTP/1.1 and HTTP/2 upstream answering `200` with the request line it
/// got (`METHOD path?query`; after [`SLOW`] for `/slow`), and every request
/// line that reached it.
pub async fn recording_http() -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let record = record.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
                let line = format!("{} {target}", req.method());
                record.lock().unwrap().push(line.clone());
                let slow = req.uri().path() == "/slow";
                async move {
                    if slow {
                        tokio::time::sleep(SLOW).await;
                    }
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(line))))
                }
            });
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, seen)
}

/// A TCP upstream echoing every byte back until the client closes.
pub async fn echo_tcp() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A loopback port where nothing listens.
pub fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
