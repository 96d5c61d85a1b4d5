//! Gateway API `Gateway`: egret serves those of class `istio-waypoint`.

use serde::Deserialize;
use serde_yaml::Value;

use super::{typed_spec, Kind, KindInfo};
use crate::config::object::{FieldError, ObjectMeta};

/// The class of Gateways that are waypoints.
pub const WAYPOINT_CLASS: &str = "istio-waypoint";

/// Gateway `spec`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gateway {
    /// `spec.gatewayClassName` (required).
    #[serde(default)]
    pub gateway_class_name: String,
    /// `spec.listeners`.
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// `spec.addresses`: an `IPAddress` entry makes the waypoint remote
    /// (reached over HBONE at that address); other types are accepted and
    /// unused.
    #[serde(default)]
    pub addresses: Vec<Value>,
    /// `spec.infrastructure`, accepted and unused.
    #[serde(default)]
    pub infrastructure: Option<Value>,
    /// `spec.backendTLS`, accepted and unused.
    #[serde(default, rename = "backendTLS")]
    pub backend_tls: Option<Value>,
    /// `spec.allowedListeners`, accepted and unused.
    #[serde(default)]
    pub allowed_listeners: Option<Value>,
}

/// One `spec.listeners[]` entry.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listener {
    /// Listener name (required, unique).
    #[serde(default)]
    pub name: String,
    /// Optional hostname the listener matches.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Port number.
    pub port: u32,
    /// Protocol, e.g. `HBONE`, `HTTP`.
    pub protocol: String,
    /// TLS settings, accepted and unused.
    #[serde(default)]
    pub tls: Option<Value>,
    /// Which routes may attach, accepted and unused.
    #[serde(default)]
    pub allowed_routes: Option<Value>,
}

impl Gateway {
    /// Whether this Gateway is a waypoint egret serves.
    pub fn is_waypoint(&self) -> bool {
        self.gateway_class_name == WAYPOINT_CLASS
    }

    /// The first `spec.addresses` entry of type `IPAddress` (the Gateway
    /// API default type), when there is one.
    pub fn ip_address(&self) -> Option<std::net::IpAddr> {
        self.addresses.iter().find_map(|a| {
            let kind = a.get("type").and_then(Value::as_str).unwrap_or("IPAddress");
            let value = a.get("value").and_then(Value::as_str)?;
            (kind == "IPAddress").then(|| value.parse().ok()).flatten()
        })
    }
}

impl Kind for Gateway {
    const INFO: &'static KindInfo = &KindInfo {
        kind: "Gateway",
        group: "gateway.networking.k8s.io",
        versions: &["v1", "v1beta1"],
        plural: "gateways",
        short_names: &["gtw"],
        namespaced: true,
    };

    fn parse(spec: &Value, _meta: &ObjectMeta) -> Result<Self, Vec<FieldError>> {
        let gw: Gateway = typed_spec(spec)?;
        let mut errors = Vec::new();
        if gw.gateway_class_name.is_empty() {
            errors.push(FieldError::new("spec.gatewayClassName", "Required value"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, l) in gw.listeners.iter().enumerate() {
            if l.name.is_empty() {
                errors.push(FieldError::new(format!("spec.listeners[{i}].name"), "Required value"));
            } else if !names.insert(l.name.as_str()) {
                errors.push(FieldError::new(
                    format!("spec.listeners[{i}].name"),
                    format!("duplicate listener name \"{}\"", l.name),
                ));
            }
            if !(1..=65535).contains(&l.port) {
                errors.push(FieldError::new(
                    format!("spec.listeners[{i}].port"),
                    format!("port {} out of range 1-65535", l.port),
                ));
            }
        }
        for (i, a) in gw.addresses.iter().enumerate() {
            let kind = a.get("type").and_then(Value::as_str).unwrap_or("IPAddress");
            let value = a.get("value").and_then(Value::as_str).unwrap_or_default();
            if kind == "IPAddress" && value.parse::<std::net::IpAddr>().is_err() {
                errors.push(FieldError::new(
                    format!("spec.addresses[{i}].value"),
                    format!("\"{value}\" is not an IP address"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(gw)
        } else {
            Err(errors)
        }
    }
}
