//! An in-process waypoint on loopback for wire-level tests: one HTTP
//! ServiceEntry on a VIP, bound to a waypoint this process serves, with one
//! static endpoint (a recording upstream); workload connections handed to
//! `handle_outbound` as if captured.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use egret::config::snapshot::{
    Endpoint, Protocol, Resolution, Service, ServicePort, Snapshot, Waypoint, WaypointBinding,
    WaypointRef,
};
use egret::identity::WorkloadInfo;
use egret::proxy::limits::Limits;
use egret::proxy::{handle_outbound, ProxyContext, ResolveHost};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The service's address.
pub const VIP: &str = "240.240.0.2";
/// The service's host.
pub const HOST: &str = "httpbin.org";

/// Request lines (`METHOD target`) an upstream received, in order.
pub type Seen = Arc<Mutex<Vec<String>>>;

/// An HTTP/1.1 upstream that answers 200 with the request line it got.
pub async fn recording_upstream() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let record = record.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                let line = format!("{} {}", req.method(), req.uri());
                record.lock().unwrap().push(line.clone());
                async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(line)))) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (addr, seen)
}

struct NoResolver;

impl ResolveHost for NoResolver {
    fn resolve<'a>(
        &'a self,
        _host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>> {
        Box::pin(async { Err(io::Error::new(io::ErrorKind::NotFound, "no such host")) })
    }
}

/// The waypoint the service is bound to.
pub fn waypoint_ref() -> WaypointRef {
    WaypointRef {
        namespace: "istio-egress".into(),
        name: "egress-waypoint".into(),
    }
}

/// [`HOST`] on [`VIP`]:80, HTTP, bound to the waypoint, its one endpoint
/// at 127.0.0.1:`target_port`.
pub fn snapshot(target_port: u16) -> Snapshot {
    let vip: IpAddr = VIP.parse().unwrap();
    let service = Arc::new(Service {
        namespace: "istio-egress".into(),
        name: HOST.into(),
        host: HOST.into(),
        vips: vec![vip],
        ports: vec![ServicePort {
            number: 80,
            name: "http".into(),
            protocol: Protocol::Http,
            target_port: Some(target_port),
        }],
        resolution: Resolution::Static,
        endpoints: vec![Endpoint {
            address: "127.0.0.1".into(),
            ports: HashMap::new(),
        }],
        waypoint: WaypointBinding::Bound(waypoint_ref()),
    });
    let mut snapshot = Snapshot::default();
    snapshot.waypoints.insert(
        waypoint_ref(),
        Waypoint {
            reference: waypoint_ref(),
            service_account: "egress-waypoint".into(),
            address: None,
        },
    );
    snapshot.services.push(service.clone());
    snapshot.by_vip.insert(vip, service.clone());
    snapshot.by_host.insert(HOST.into(), vec![service]);
    snapshot
}

/// A proxy serving `snapshot` under `limits`.
pub fn context(snapshot: Snapshot, limits: Limits) -> Arc<ProxyContext> {
    let (tx, rx) = watch::channel(Arc::new(snapshot));
    // The sender may go: the receiver keeps the last value.
    drop(tx);
    Arc::new(ProxyContext::new(rx, Arc::new(NoResolver), "cluster.local").with_limits(limits))
}

/// The workload every connection comes from.
pub fn workload() -> Arc<WorkloadInfo> {
    Arc::new(WorkloadInfo {
        name: "productpage-v1-7654b4b6d5-7c4l5".into(),
        namespace: "bookinfo".into(),
        service_account: "bookinfo-productpage".into(),
        ip: "127.0.0.1".parse().unwrap(),
        netns_cookie: 1,
    })
}

/// Source addresses handed out so far (each test binary counts its own).
static NEXT_CLIENT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// A workload connection to [`VIP`]:80 whose far end the waypoint serves.
pub async fn captured(ctx: Arc<ProxyContext>) -> (TcpStream, SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    // A client address of its own in 127/8: log lines are found by it, and a
    // port alone may repeat across listeners.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    let n = NEXT_CLIENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ip = std::net::Ipv4Addr::new(127, 1, (n >> 8) as u8, n as u8);
    socket.bind(SocketAddr::new(ip.into(), 0)).unwrap();
    let client = socket
        .connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (accepted, src) = listener.accept().await.unwrap();
    let orig_dst = SocketAddr::new(VIP.parse().unwrap(), 80);
    let task = tokio::spawn(handle_outbound(ctx, accepted, workload(), src, orig_dst));
    (client, src, task)
}

/// Sends `bytes` and reads until the waypoint closes (at most 10 s).
pub async fn exchange(client: &mut TcpStream, bytes: &[u8]) -> String {
    client.write_all(bytes).await.unwrap();
    read_to_close(client).await
}

/// Reads until the waypoint closes (at most 10 s).
pub async fn read_to_close(client: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut out))
        .await
        .expect("the waypoint closes the connection")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits for `handle_outbound` to finish (at most 10 s).
pub async fn finish(task: JoinHandle<()>) {
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the connection ends")
        .unwrap();
}
