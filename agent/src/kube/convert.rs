//! API objects -> egret objects: a `DynamicObject` becomes the YAML value a
//! manifest would have been, and the folder's parser checks it, so the API
//! and a folder accept and refuse exactly the same things.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kube::core::{ApiResource, DynamicObject};
use serde_yaml::{Mapping, Value};

use crate::config::allocate::{Addresses, AllocKey};
use crate::config::object::{Object, ObjectKey, DEFAULT_NAMESPACE};
use crate::config::parse::{parse_object, Rejected};
use crate::config::snapshot::WaypointRef;
use crate::config::status::{AddressStatus, Status};
use crate::net::HostName;

/// Metadata the API server maintains; dropped so that an object counts as
/// changed only when its content does.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
];

/// The manifest value of `obj` (apiVersion and kind filled from `ar` when
/// the server left them out, as it does for list items; server-maintained
/// metadata removed; `status` kept).
pub fn to_value(obj: &DynamicObject, ar: &ApiResource) -> Value {
    let json = serde_json::to_value(obj).unwrap_or(serde_json::Value::Null);
    let mut value: Value = serde_yaml::to_value(json).unwrap_or(Value::Null);
    if let Some(map) = value.as_mapping_mut() {
        map.insert("apiVersion".into(), ar.api_version.clone().into());
        map.insert("kind".into(), ar.kind.clone().into());
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_mapping_mut) {
            for field in SERVER_METADATA {
                meta.remove(*field);
            }
            drop_empty(meta, "labels");
            drop_empty(meta, "annotations");
        }
    }
    value
}

fn drop_empty(meta: &mut Mapping, field: &str) {
    if meta.get(field).is_some_and(Value::is_null) {
        meta.remove(field);
    }
}

/// Parses `obj` with the manifest parser; errors name the object.
pub fn to_object(obj: &DynamicObject, ar: &ApiResource) -> Result<Object, Rejected> {
    let value = to_value(obj, ar);
    let text = serde_yaml::to_string(&value).unwrap_or_default();
    let source = format!(
        "{} {}/{}",
        ar.kind,
        obj.metadata.namespace.as_deref().unwrap_or(""),
        obj.metadata.name.as_deref().unwrap_or("")
    );
    parse_object(value, text, &source, 1, DEFAULT_NAMESPACE)
}

/// The key `obj` has, or would have if it parsed.
pub fn key_of(obj: &DynamicObject, kind: &'static str, namespaced: bool) -> ObjectKey {
    let namespace = if namespaced {
        obj.metadata.namespace.clone().unwrap_or_default()
    } else {
        String::new()
    };
    ObjectKey::new(
        kind,
        namespace,
        obj.metadata.name.clone().unwrap_or_default(),
    )
}

/// The object's current `status`, as egret renders it (missing or foreign
/// shapes read as empty).
pub fn status_of(obj: &DynamicObject) -> Status {
    obj.data
        .get("status")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default()
}

/// The address a Gateway's `status.addresses` publishes (the first
/// `IPAddress`, the Gateway API's default type): where its waypoint is
/// reached when it runs as a Deployment.
pub fn gateway_address(obj: &DynamicObject) -> Option<(WaypointRef, IpAddr)> {
    let addresses = obj.data.get("status")?.get("addresses")?.as_array()?;
    let ip = addresses.iter().find_map(|a| {
        let kind = a
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("IPAddress");
        let value = a.get("value")?.as_str()?;
        (kind == "IPAddress")
            .then(|| value.parse::<IpAddr>().ok())
            .flatten()
    })?;
    let r = WaypointRef {
        namespace: obj.metadata.namespace.clone()?,
        name: obj.metadata.name.clone()?,
    };
    Some((r, ip.to_canonical()))
}

/// Addresses already published in a ServiceEntry's `status.addresses`: one
/// IPv4 and one IPv6 per host, both required for the pair to count.
pub fn published_addresses(obj: &DynamicObject) -> HashMap<AllocKey, Addresses> {
    let namespace = obj.metadata.namespace.clone().unwrap_or_default();
    let name = obj.metadata.name.clone().unwrap_or_default();
    let mut v4: HashMap<HostName, Ipv4Addr> = HashMap::new();
    let mut v6: HashMap<HostName, Ipv6Addr> = HashMap::new();
    let addresses: &[AddressStatus] = &status_of(obj).addresses;
    for a in addresses {
        let host = HostName::new(&a.host);
        match a.value.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => {
                v4.entry(host).or_insert(ip);
            }
            Ok(IpAddr::V6(ip)) => {
                v6.entry(host).or_insert(ip);
            }
            Err(_) => {}
        }
    }
    v4.into_iter()
        .filter_map(|(host, ipv4)| {
            let ipv6 = *v6.get(&host)?;
            let key = AllocKey {
                namespace: namespace.clone(),
                name: name.clone(),
                host,
            };
            Some((key, Addresses { ipv4, ipv6 }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::kinds::{by_kind, Spec};
    use crate::kube::resources::api_resource;

    /// A manifest as the API server returns it: JSON, with server metadata.
    fn from_manifest(text: &str) -> DynamicObject {
        let mut value: serde_json::Value = serde_yaml::from_str(text).unwrap();
        let meta = value["metadata"].as_object_mut().unwrap();
        meta.insert("resourceVersion".into(), "42".into());
        meta.insert("uid".into(), "0b6f-11".into());
        meta.insert(
            "managedFields".into(),
            serde_json::json!([{"manager": "kubectl"}]),
        );
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn walkthrough_manifests_parse_as_in_a_folder() {
        let gw = from_manifest(include_str!("../config/testdata/step2-gateway.yaml"));
        let o = to_object(&gw, &api_resource(by_kind("Gateway").unwrap())).unwrap();
        assert_eq!(
            o.key(),
            ObjectKey::new("Gateway", "istio-egress", "egress-waypoint")
        );
        assert!(matches!(&o.spec, Spec::Gateway(g) if g.is_waypoint()));
        let meta = o.raw.get("metadata").unwrap();
        assert!(meta.get("resourceVersion").is_none() && meta.get("managedFields").is_none());

        let se = from_manifest(include_str!("../config/testdata/step3-serviceentry.yaml"));
        let o = to_object(&se, &api_resource(by_kind("ServiceEntry").unwrap())).unwrap();
        let Spec::ServiceEntry(spec) = &o.spec else {
            panic!("not a ServiceEntry")
        };
        assert_eq!(spec.hosts, ["httpbin.org"]);
        assert_eq!(o.meta.labels["istio.io/use-waypoint"], "egress-waypoint");

        for (text, kind) in [
            (
                include_str!("../config/testdata/step4a-authorizationpolicy.yaml"),
                "AuthorizationPolicy",
            ),
            (
                include_str!("../config/testdata/step4b-virtualservice.yaml"),
                "VirtualService",
            ),
        ] {
            let obj = from_manifest(text);
            let o = to_object(&obj, &api_resource(by_kind(kind).unwrap())).unwrap();
            assert_eq!(o.info.kind, kind);
        }
    }

    #[test]
    fn list_items_without_type_fields_get_them_from_the_resource() {
        let mut ns: DynamicObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "bookinfo", "labels": {"istio.io/dataplane-mode": "ambient"}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"}
        }))
        .unwrap();
        ns.types = None;
        let o = to_object(&ns, &api_resource(by_kind("Namespace").unwrap())).unwrap();
        assert_eq!(o.key(), ObjectKey::new("Namespace", "", "bookinfo"));
        assert!(o.raw.get("status").is_none());
    }

    #[test]
    fn invalid_object_is_rejected_with_its_name_and_field() {
        let text = include_str!("../config/testdata/step3-serviceentry.yaml")
            .replace("  resolution: DNS", "  resolution: SOMETIMES");
        let se = from_manifest(&text);
        let err = to_object(&se, &api_resource(by_kind("ServiceEntry").unwrap())).unwrap_err();
        assert_eq!(
            err.key,
            Some(ObjectKey::new(
                "ServiceEntry",
                "istio-egress",
                "httpbin.org"
            ))
        );
        let msg = err.errors[0].to_string();
        assert!(
            msg.starts_with("ServiceEntry istio-egress/httpbin.org: spec.resolution"),
            "{msg}"
        );
    }

    #[test]
    fn published_addresses_need_both_families() {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": "httpbin.org", "namespace": "istio-egress"},
            "spec": {"hosts": ["httpbin.org", "other.org"]},
            "status": {"addresses": [
                {"host": "httpbin.org", "value": "240.240.0.7"},
                {"host": "httpbin.org", "value": "2001:2::7"},
                {"host": "other.org", "value": "240.240.0.8"}
            ]}
        }))
        .unwrap();
        let got = published_addresses(&obj);
        assert_eq!(got.len(), 1);
        let key = AllocKey {
            namespace: "istio-egress".into(),
            name: "httpbin.org".into(),
            host: "httpbin.org".into(),
        };
        assert_eq!(got[&key].ipv4, Ipv4Addr::new(240, 240, 0, 7));
        assert_eq!(got[&key].ipv6, "2001:2::7".parse::<Ipv6Addr>().unwrap());
    }
}
