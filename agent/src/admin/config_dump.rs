//! `/config_dump`: the snapshot in force as JSON, for operators and tests:
//! services with their VIPs and waypoint bindings, policy counts, workloads.

use std::net::IpAddr;

use serde::Serialize;

use crate::config::snapshot::{Protocol, Resolution, Service, Snapshot, WaypointBinding};
use crate::workload::WorkloadSummary;

/// The whole dump.
#[derive(Debug, Serialize)]
pub struct ConfigDump {
    pub generation: u64,
    pub services: Vec<ServiceDump>,
    pub waypoints: Vec<WaypointDump>,
    pub authorization_policies: usize,
    pub virtual_services: usize,
    pub destination_rules: usize,
    /// `None` in the standalone waypoint (it has no workloads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workloads: Option<Vec<WorkloadSummary>>,
}

/// One ServiceEntry host.
#[derive(Debug, Serialize)]
pub struct ServiceDump {
    pub namespace: String,
    pub name: String,
    pub host: String,
    pub vips: Vec<IpAddr>,
    pub ports: Vec<PortDump>,
    pub resolution: &'static str,
    /// `none`, `bound` or `missing`.
    pub waypoint_binding: &'static str,
    /// `namespace/name` of the bound (or missing) waypoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waypoint: Option<String>,
}

/// One declared port.
#[derive(Debug, Serialize)]
pub struct PortDump {
    pub number: u16,
    pub name: String,
    pub protocol: &'static str,
}

/// One waypoint Gateway.
#[derive(Debug, Serialize)]
pub struct WaypointDump {
    /// `namespace/name`.
    pub name: String,
    pub service_account: String,
    /// Where it is reached over HBONE; `None`: served by this agent.
    pub address: Option<IpAddr>,
}

impl ConfigDump {
    /// The dump of `snapshot` (and the node's workloads, when there are any).
    pub fn of(snapshot: &Snapshot, workloads: Option<Vec<WorkloadSummary>>) -> Self {
        let mut services: Vec<ServiceDump> = snapshot.services.iter().map(|s| service(s)).collect();
        services.sort_by(|a, b| {
            (&a.namespace, &a.name, &a.host).cmp(&(&b.namespace, &b.name, &b.host))
        });
        let mut waypoints: Vec<WaypointDump> = snapshot
            .waypoints
            .values()
            .map(|w| WaypointDump {
                name: w.reference.to_string(),
                service_account: w.service_account.clone(),
                address: w.address,
            })
            .collect();
        waypoints.sort_by(|a, b| a.name.cmp(&b.name));
        ConfigDump {
            generation: snapshot.generation,
            services,
            waypoints,
            authorization_policies: snapshot.authz.len(),
            virtual_services: snapshot.routes.len(),
            destination_rules: snapshot.destination_rules.len(),
            workloads,
        }
    }
}

fn service(s: &Service) -> ServiceDump {
    let (binding, waypoint) = match &s.waypoint {
        WaypointBinding::None => ("none", None),
        WaypointBinding::Bound(w) => ("bound", Some(w.to_string())),
        WaypointBinding::Missing(w) => ("missing", Some(w.to_string())),
    };
    ServiceDump {
        namespace: s.namespace.clone(),
        name: s.name.clone(),
        host: s.host.to_string(),
        vips: s.vips.clone(),
        ports: s
            .ports
            .iter()
            .map(|p| PortDump {
                number: p.number,
                name: p.name.clone(),
                protocol: protocol(p.protocol),
            })
            .collect(),
        resolution: resolution(s.resolution),
        waypoint_binding: binding,
        waypoint,
    }
}

/// As a ServiceEntry spells it.
fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Http => "HTTP",
        Protocol::Http2 => "HTTP2",
        Protocol::Grpc => "GRPC",
        Protocol::Https => "HTTPS",
        Protocol::Tls => "TLS",
        Protocol::Tcp => "TCP",
        Protocol::Mongo => "MONGO",
    }
}

/// As a ServiceEntry spells it.
fn resolution(r: Resolution) -> &'static str {
    match r {
        Resolution::None => "NONE",
        Resolution::Static => "STATIC",
        Resolution::Dns => "DNS",
        Resolution::DnsRoundRobin => "DNS_ROUND_ROBIN",
        Resolution::DynamicDns => "DYNAMIC_DNS",
    }
}
