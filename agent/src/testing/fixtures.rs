//! The walkthrough's objects as compiled config, built in code: the egress
//! waypoint, services bound to it, snapshots holding them, the workload
//! that connects, and a proxy serving a fixed snapshot.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::snapshot::{
    Endpoint, Protocol, Resolution, Service, ServicePort, Snapshot, Waypoint, WaypointBinding,
    WaypointRef,
};
use crate::identity::WorkloadInfo;
use crate::proxy::context::ConnectionContext;
use crate::proxy::{ProxyContext, ResolveHost};

/// The walkthrough's service address (httpbin.org in Step 3).
pub const VIP: &str = "240.240.0.2";

/// The walkthrough's waypoint: `istio-egress/egress-waypoint`.
pub fn waypoint_ref() -> WaypointRef {
    WaypointRef {
        namespace: "istio-egress".into(),
        name: "egress-waypoint".into(),
    }
}

/// The walkthrough's workload (bookinfo's productpage) on 127.0.0.1.
pub fn workload() -> Arc<WorkloadInfo> {
    Arc::new(WorkloadInfo {
        name: "productpage-v1-7654b4b6d5-7c4l5".into(),
        namespace: "bookinfo".into(),
        service_account: "bookinfo-productpage".into(),
        ip: "127.0.0.1".parse().unwrap(),
        netns_cookie: 1,
    })
}

/// A ServiceEntry of `istio-egress` as the config compiles it, field by
/// field: by default port 80 `http` (HTTP), `resolution: DNS`, no VIP, no
/// endpoint, no waypoint.
#[derive(Clone, Debug)]
pub struct ServiceFixture(Service);

impl ServiceFixture {
    /// `host` (also its name).
    pub fn new(host: &str) -> Self {
        ServiceFixture(Service {
            namespace: "istio-egress".into(),
            name: host.into(),
            host: host.into(),
            vips: Vec::new(),
            ports: vec![ServicePort {
                number: 80,
                name: "http".into(),
                protocol: Protocol::Http,
                target_port: None,
            }],
            resolution: Resolution::Dns,
            endpoints: Vec::new(),
            waypoint: WaypointBinding::None,
        })
    }

    /// Named `name` (the object's name, when not the host).
    pub fn named(mut self, name: &str) -> Self {
        self.0.name = name.into();
        self
    }

    /// Reached on `vip` too.
    pub fn vip(mut self, vip: &str) -> Self {
        self.0.vips.push(vip.parse().expect("an IP address"));
        self
    }

    /// Its one port is `number`, named `name`, of `protocol`.
    pub fn port(mut self, number: u16, name: &str, protocol: Protocol) -> Self {
        let port = &mut self.0.ports[0];
        port.number = number;
        port.name = name.into();
        port.protocol = protocol;
        self
    }

    /// Its port is sent to `target_port` on the endpoints.
    pub fn target_port(mut self, target_port: u16) -> Self {
        self.0.ports[0].target_port = Some(target_port);
        self
    }

    /// `resolution: STATIC`, with one more endpoint `address`.
    pub fn endpoint(mut self, address: &str) -> Self {
        self.0.resolution = Resolution::Static;
        self.0.endpoints.push(Endpoint {
            address: address.into(),
            ports: HashMap::new(),
        });
        self
    }

    /// Bound to the walkthrough's waypoint.
    pub fn bound(self) -> Self {
        self.waypoint(WaypointBinding::Bound(waypoint_ref()))
    }

    /// Its waypoint binding is `binding`.
    pub fn waypoint(mut self, binding: WaypointBinding) -> Self {
        self.0.waypoint = binding;
        self
    }

    /// The service.
    pub fn build(self) -> Arc<Service> {
        Arc::new(self.0)
    }
}

/// A snapshot of `services`, found by VIP and host, with the walkthrough's
/// waypoint served by this process.
pub fn snapshot(services: impl IntoIterator<Item = Arc<Service>>) -> Snapshot {
    let mut snapshot = Snapshot::default();
    snapshot.waypoints.insert(
        waypoint_ref(),
        Waypoint {
            reference: waypoint_ref(),
            service_account: "egress-waypoint".into(),
            address: None,
        },
    );
    for service in services {
        crate::config::compile::index(&mut snapshot, &service);
        snapshot.services.push(service);
    }
    snapshot
}

/// A proxy whose config is `snapshot` for good, resolving names with
/// `resolver`, in trust domain `cluster.local`.
pub fn proxy(snapshot: Snapshot, resolver: Arc<dyn ResolveHost>) -> ProxyContext {
    let (tx, rx) = watch::channel(Arc::new(snapshot));
    // The sender may go: the receiver keeps the last value.
    drop(tx);
    ProxyContext::new(rx, resolver, "cluster.local")
}

/// A connection of bookinfo's productpage on the pod network
/// (10.238.0.2:40000) to `dst`, decided on `snapshot`.
pub fn connection(snapshot: Snapshot, dst: SocketAddr) -> ConnectionContext {
    let workload = Arc::new(WorkloadInfo {
        name: "productpage".into(),
        namespace: "bookinfo".into(),
        service_account: "bookinfo-productpage".into(),
        ip: "10.238.0.2".parse().unwrap(),
        netns_cookie: 7,
    });
    let src = SocketAddr::new(workload.ip, 40000);
    ConnectionContext::new(Arc::new(snapshot), "cluster.local", workload, src, dst)
}
