//! An in-process waypoint on loopback for wire-level tests: one HTTP
//! ServiceEntry on a VIP, bound to a waypoint this process serves, with one
//! static endpoint (a recording upstream); workload connections handed to
//! `handle_outbound` as if captured.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use egret::config::snapshot::Snapshot;
use egret::proxy::limits::Limits;
use egret::proxy::ProxyContext;
use egret::testing::fixtures::{self, ServiceFixture};
use egret::testing::resolver::StaticDns;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use egret::testing::fixtures::VIP;

/// The service's host.
pub const HOST: &str = "httpbin.org";

/// [`HOST`] on [`VIP`]:80, HTTP, bound to the waypoint, its one endpoint
/// at 127.0.0.1:`target_port`.
pub fn snapshot(target_port: u16) -> Snapshot {
    let service = ServiceFixture::new(HOST)
        .vip(VIP)
        .endpoint("127.0.0.1")
        .target_port(target_port)
        .bound()
        .build();
    fixtures::snapshot([service])
}

/// A proxy serving `snapshot` under `limits`.
pub fn context(snapshot: Snapshot, limits: Limits) -> Arc<ProxyContext> {
    Arc::new(fixtures::proxy(snapshot, StaticDns::none()).with_limits(limits))
}

/// A workload connection to [`VIP`]:80 whose far end the waypoint serves.
pub async fn captured(ctx: Arc<ProxyContext>) -> (TcpStream, SocketAddr, JoinHandle<()>) {
    let orig_dst = SocketAddr::new(VIP.parse().unwrap(), 80);
    egret::testing::client::captured(ctx, orig_dst).await
}
