//! A DNS message from a workload, answered by the DNS proxy (mesh names
//! from the snapshot; no upstream is configured, so nothing leaves).
#![no_main]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use egret::config::snapshot::{Resolution, Service, Snapshot, WaypointBinding};
use egret::dns::{DnsProxy, Transport};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use tokio::sync::watch;

fn proxy() -> &'static (Runtime, Arc<DnsProxy>) {
    static PROXY: OnceLock<(Runtime, Arc<DnsProxy>)> = OnceLock::new();
    PROXY.get_or_init(|| {
        let vips: Vec<IpAddr> = vec!["240.240.0.2".parse().unwrap(), "2001:2::2".parse().unwrap()];
        let service = Arc::new(Service {
            namespace: "istio-egress".into(),
            name: "httpbin.org".into(),
            host: "httpbin.org".into(),
            vips,
            ports: vec![],
            resolution: Resolution::Dns,
            endpoints: vec![],
            waypoint: WaypointBinding::None,
        });
        let mut snapshot = Snapshot::default();
        snapshot.by_host = HashMap::from([("httpbin.org".into(), vec![service])]);
        let (tx, rx) = watch::channel(Arc::new(snapshot));
        std::mem::forget(tx);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let proxy = runtime.block_on(async { DnsProxy::new(rx, Vec::new()) });
        (runtime, proxy)
    })
}

fuzz_target!(|data: &[u8]| {
    let (runtime, proxy) = proxy();
    for transport in [Transport::Udp, Transport::Tcp] {
        if let Ok(reply) = runtime.block_on(proxy.answer(data, transport)) {
            // Every reply answers this query: same ID, QR set.
            assert!(reply.len() >= 12 && data.len() >= 2);
            assert_eq!(reply[..2], data[..2]);
            assert_ne!(reply[2] & 0x80, 0);
            if transport == Transport::Udp {
                assert!(reply.len() <= 65535);
            }
        }
    }
});
