//! A waypoint Gateway's status from what runs it: `Accepted`; `Programmed`
//! once its Deployment has an available replica and its Service a cluster
//! IP, with `status.addresses` = the Service's cluster IPs (where node
//! agents tunnel to). Until then `Programmed` is False with the reason, and
//! no address is published, so no traffic is sent to a waypoint that is not
//! there.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use serde_json::{json, Value};

use super::render::{GatewayRef, HBONE_PORT};

/// The status egret wants on the Gateway (`lastTransitionTime` = `now`
/// for every condition; [`patch`] keeps the old time of unchanged ones).
pub fn wanted(
    gw: &GatewayRef,
    generation: i64,
    deployment: Option<&Deployment>,
    service: Option<&Service>,
    now: &str,
) -> Value {
    let available = deployment
        .and_then(|d| d.status.as_ref())
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    let replicas = deployment
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let ips: Vec<String> = service
        .and_then(|s| s.spec.as_ref())
        .map(|s| {
            s.cluster_ips
                .clone()
                .filter(|ips| !ips.is_empty())
                .or_else(|| s.cluster_ip.clone().map(|ip| vec![ip]))
                .unwrap_or_default()
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
        .collect();
    let (programmed, reason, message) = if deployment.is_none() || available < 1 {
        (
            false,
            "Pending",
            format!(
                "Waiting for Deployment {}/{}: {available} of {replicas} replicas available",
                gw.namespace, gw.name
            ),
        )
    } else if ips.is_empty() {
        (
            false,
            "AddressNotAssigned",
            format!(
                "Waiting for Service {}/{} to get a cluster IP",
                gw.namespace, gw.name
            ),
        )
    } else {
        (
            true,
            "Programmed",
            format!(
                "Resource programmed, assigned to service(s) {}.{}.svc.cluster.local:{HBONE_PORT}",
                gw.name, gw.namespace
            ),
        )
    };
    let addresses: Vec<Value> = if programmed {
        ips.iter()
            .map(|ip| json!({"type": "IPAddress", "value": ip}))
            .collect()
    } else {
        Vec::new()
    };
    let condition = |type_: &str, ok: bool, reason: &str, message: &str| {
        json!({
            "lastTransitionTime": now,
            "message": message,
            "observedGeneration": generation,
            "reason": reason,
            "status": if ok { "True" } else { "False" },
            "type": type_,
        })
    };
    json!({
        "addresses": addresses,
        "conditions": [
            condition("Accepted", true, "Accepted", "Resource accepted"),
            condition("Programmed", programmed, reason, &message),
        ],
    })
}

/// The merge patch that brings `current` (the Gateway's `status`) to
/// `wanted`, or `None` when they agree. Conditions whose status did not
/// change keep their `lastTransitionTime`; conditions of other writers
/// are left as they are (merge patch replaces the list, so they are
/// carried over).
pub fn patch(current: &Value, mut wanted: Value) -> Option<Value> {
    let old: &[Value] = current["conditions"].as_array().map_or(&[], Vec::as_slice);
    if let Some(conditions) = wanted["conditions"].as_array_mut() {
        for c in conditions.iter_mut() {
            let same = old
                .iter()
                .find(|o| o["type"] == c["type"] && o["status"] == c["status"]);
            if let Some(o) = same {
                c["lastTransitionTime"] = o["lastTransitionTime"].clone();
            }
        }
        let ours: Vec<Value> = conditions.iter().map(|c| c["type"].clone()).collect();
        conditions.extend(old.iter().filter(|o| !ours.contains(&o["type"])).cloned());
    }
    let empty = Vec::new();
    let current_addresses = current["addresses"].as_array().unwrap_or(&empty);
    let same = wanted["conditions"] == current["conditions"]
        && wanted["addresses"].as_array().unwrap_or(&empty) == current_addresses;
    (!same).then(|| json!({ "status": wanted }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::waypoints::gw;

    fn deployment(available: i32) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "egress-waypoint", "namespace": "istio-egress"},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"availableReplicas": available}
        }))
        .unwrap()
    }

    fn service(ip: Option<&str>) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "egress-waypoint", "namespace": "istio-egress"},
            "spec": {"clusterIP": ip, "clusterIPs": ip.map(|i| vec![i])}
        }))
        .unwrap()
    }

    #[test]
    fn programmed_with_the_service_address_once_a_replica_is_available() {
        let s = wanted(
            &gw(),
            3,
            Some(&deployment(1)),
            Some(&service(Some("10.96.0.10"))),
            "T0",
        );
        assert_eq!(
            s["addresses"],
            json!([{"type": "IPAddress", "value": "10.96.0.10"}])
        );
        assert_eq!(s["conditions"][1]["type"], "Programmed");
        assert_eq!(s["conditions"][1]["status"], "True");
        assert_eq!(s["conditions"][1]["observedGeneration"], 3);
        assert_eq!(s["conditions"][0]["status"], "True");
    }

    #[test]
    fn pending_without_an_available_replica_or_an_address() {
        let s = wanted(
            &gw(),
            1,
            Some(&deployment(0)),
            Some(&service(Some("10.96.0.10"))),
            "T0",
        );
        assert_eq!(s["conditions"][1]["status"], "False");
        assert_eq!(s["conditions"][1]["reason"], "Pending");
        assert!(s["conditions"][1]["message"]
            .as_str()
            .unwrap()
            .contains("0 of 2 replicas available"));
        assert_eq!(s["addresses"], json!([]));
        let s = wanted(&gw(), 1, None, None, "T0");
        assert_eq!(s["conditions"][1]["reason"], "Pending");
        let s = wanted(&gw(), 1, Some(&deployment(2)), Some(&service(None)), "T0");
        assert_eq!(s["conditions"][1]["reason"], "AddressNotAssigned");
        assert_eq!(s["addresses"], json!([]));
    }

    #[test]
    fn unchanged_status_is_not_patched_and_times_are_kept() {
        let ready = || {
            wanted(
                &gw(),
                1,
                Some(&deployment(1)),
                Some(&service(Some("10.96.0.10"))),
                "T0",
            )
        };
        let body = patch(&json!({}), ready()).unwrap();
        let current = body["status"].clone();
        let later = wanted(
            &gw(),
            1,
            Some(&deployment(1)),
            Some(&service(Some("10.96.0.10"))),
            "T1",
        );
        assert_eq!(patch(&current, later), None);
        // Lost its replica: Programmed flips (new time), the address goes.
        let down = wanted(
            &gw(),
            1,
            Some(&deployment(0)),
            Some(&service(Some("10.96.0.10"))),
            "T2",
        );
        let body = patch(&current, down).unwrap();
        assert_eq!(body["status"]["conditions"][0]["lastTransitionTime"], "T0");
        assert_eq!(body["status"]["conditions"][1]["lastTransitionTime"], "T2");
        assert_eq!(body["status"]["addresses"], json!([]));
    }
}
