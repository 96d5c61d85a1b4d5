//! A mesh config compiled from manifests and changed while workload
//! connections are open (the test plays the config watcher), with small
//! loopback upstreams that record what reaches them.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use egret::config::parse::parse_text;
use egret::config::snapshot::Snapshot;
use egret::identity::WorkloadInfo;
use egret::net::drain;
use egret::proxy::{handle_outbound, ProxyContext, ResolveHost};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The waypoint's namespace and Gateway (Steps 1–2 of the walkthrough).
pub const WAYPOINT: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: istio-egress
  labels:
    istio.io/dataplane-mode: ambient
    istio.io/use-waypoint: egress-waypoint
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: egress-waypoint
  namespace: istio-egress
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
";

/// A ServiceEntry `name` (host `name`) on `vip`, port 80 of `protocol`,
/// sent to `127.0.0.1:upstream`.
pub fn service_entry(name: &str, vip: &str, protocol: &str, upstream: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
  namespace: istio-egress
spec:
  hosts: [{name}]
  addresses: [{vip}]
  ports:
  - name: p
    number: 80
    protocol: {protocol}
    targetPort: {upstream}
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
"
    )
}

/// Nothing resolves: every service here has static endpoints.
struct NoDns;

impl ResolveHost for NoDns {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>> {
        Box::pin(async move { Err(io::Error::other(format!("no DNS in this test: {host}"))) })
    }
}

/// The config in force, changed by [`Mesh::apply`] like the watcher does.
pub struct Mesh {
    tx: watch::Sender<Arc<Snapshot>>,
    /// The waypoint's inputs, reading the config from `tx`.
    pub ctx: Arc<ProxyContext>,
}

impl Mesh {
    /// A waypoint whose config is `manifests` (generation 1).
    pub fn new(manifests: &str) -> Self {
        Self::drained_by(manifests, drain::Watch::default())
    }

    /// A waypoint whose config is `manifests`, drained by `drain`.
    pub fn drained_by(manifests: &str, drain: drain::Watch) -> Self {
        let (tx, rx) = watch::channel(Arc::new(compile(manifests, 1)));
        let ctx = ProxyContext::new(rx, Arc::new(NoDns), "cluster.local").with_drain(drain);
        Mesh {
            tx,
            ctx: Arc::new(ctx),
        }
    }

    /// Puts `manifests` in force as the next generation.
    pub fn apply(&self, manifests: &str) {
        let generation = self.tx.borrow().generation + 1;
        self.tx
            .send_replace(Arc::new(compile(manifests, generation)));
    }
}

/// Every object of `manifests` (all must be valid), compiled.
fn compile(manifests: &str, generation: u64) -> Snapshot {
    let objects: Vec<_> = parse_text(manifests, "test.yaml", "default")
        .expect("manifests parse")
        .into_iter()
        .flat_map(|d| d.objects)
        .map(|o| o.expect("manifest is valid"))
        .collect();
    let mut snapshot = egret::config::compile(&objects, &HashMap::new());
    snapshot.generation = generation;
    snapshot
}

/// The walkthrough's workload.
pub fn workload() -> Arc<WorkloadInfo> {
    Arc::new(WorkloadInfo {
        name: "productpage-v1-7654b4b6d5-7c4l5".into(),
        namespace: "bookinfo".into(),
        service_account: "bookinfo-productpage".into(),
        ip: "127.0.0.1".parse().unwrap(),
        netns_cookie: 1,
    })
}

/// A workload connection to `orig_dst`, its far end served by the waypoint
/// of `ctx`: (the workload's socket, its address, the serving task).
pub async fn captured(
    ctx: Arc<ProxyContext>,
    orig_dst: SocketAddr,
) -> (TcpStream, SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (accepted, src) = listener.accept().await.unwrap();
    let task = tokio::spawn(handle_outbound(ctx, accepted, workload(), src, orig_dst));
    (client, src, task)
}

/// An HTTP/1.1 and HTTP/2 upstream answering `200 <method> <path>` (after
/// half a second for `/slow`), and the `(method, path)` of every request
/// that reached it.
pub async fn recording_upstream() -> (u16, Arc<Mutex<Vec<(String, String)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let record = record.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                let line = (req.method().to_string(), req.uri().path().to_string());
                record.lock().unwrap().push(line.clone());
                async move {
                    if line.1 == "/slow" {
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                    let body = Full::new(Bytes::from(format!("{} {}", line.0, line.1)));
                    Ok::<_, Infallible>(Response::new(body))
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
pub async fn echo_upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
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
