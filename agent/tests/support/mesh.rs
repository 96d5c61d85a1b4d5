//! A mesh config compiled from manifests and changed while workload
//! connections are open (the test plays the config watcher); upstreams come
//! from `egret::testing::upstream`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use egret::config::parse::parse_text;
use egret::config::snapshot::Snapshot;
use egret::net::drain;
use egret::proxy::ProxyContext;
use egret::testing::resolver::StaticDns;
use tokio::sync::watch;

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
        let ctx = ProxyContext::new(rx, StaticDns::none(), "cluster.local").with_drain(drain);
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

pub use egret::testing::client::captured;
