//! Status the elected agent writes back to the API: ServiceEntry
//! `status.addresses` + `istio.io/WaypointBound`, Gateway `Accepted` and
//! `Programmed`, as JSON merge patches of the `status` subresource.

use kube::api::{Api, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject};
use kube::Client;

use super::error::KubeError;
use crate::config::object::ObjectKey;
use crate::config::status::Status;

/// One status update to send.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusPatch {
    /// The object.
    pub key: ObjectKey,
    /// Its resource (for the URL).
    pub resource: ApiResource,
    /// The merge patch: `{"status": {...}}`.
    pub body: serde_json::Value,
}

/// The patch that brings `current` to `wanted`, or `None` when they agree.
/// A condition whose status did not change keeps its `lastTransitionTime`,
/// so rewriting the same status is a no-op and no update loop starts.
pub fn patch_body(current: &Status, mut wanted: Status) -> Option<serde_json::Value> {
    for c in &mut wanted.conditions {
        if let Some(prev) = current
            .conditions
            .iter()
            .find(|p| p.type_ == c.type_ && p.status == c.status)
        {
            c.last_transition_time = prev.last_transition_time.clone();
        }
    }
    if &wanted == current {
        return None;
    }
    Some(serde_json::json!({ "status": wanted }))
}

/// Sends `patch`. Errors name the object.
pub async fn send(client: &Client, patch: &StatusPatch) -> Result<(), KubeError> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &patch.key.namespace, &patch.resource);
    api.patch_status(
        &patch.key.name,
        &PatchParams::default(),
        &Patch::Merge(&patch.body),
    )
    .await
    .map_err(KubeError::api(format!("patch status of {}", patch.key)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::status::{AddressStatus, StatusCondition, WAYPOINT_BOUND};

    fn bound(time: &str, status: &str) -> StatusCondition {
        StatusCondition {
            last_transition_time: time.into(),
            message: "Successfully attached to waypoint istio-egress/egress-waypoint".into(),
            reason: "WaypointAccepted".into(),
            status: status.into(),
            type_: WAYPOINT_BOUND.into(),
        }
    }

    fn walkthrough(time: &str) -> Status {
        Status {
            addresses: vec![
                AddressStatus {
                    host: "httpbin.org".into(),
                    value: "240.240.0.2".into(),
                },
                AddressStatus {
                    host: "httpbin.org".into(),
                    value: "2001:2::2".into(),
                },
            ],
            conditions: vec![bound(time, "True")],
        }
    }

    #[test]
    fn first_patch_has_addresses_and_condition() {
        let body = patch_body(&Status::default(), walkthrough("T0")).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"status": {
                "addresses": [
                    {"host": "httpbin.org", "value": "240.240.0.2"},
                    {"host": "httpbin.org", "value": "2001:2::2"}
                ],
                "conditions": [{
                    "lastTransitionTime": "T0",
                    "message": "Successfully attached to waypoint istio-egress/egress-waypoint",
                    "reason": "WaypointAccepted",
                    "status": "True",
                    "type": "istio.io/WaypointBound"
                }]
            }})
        );
    }

    #[test]
    fn same_status_later_is_not_patched() {
        assert_eq!(patch_body(&walkthrough("T0"), walkthrough("T1")), None);
    }

    #[test]
    fn flipped_condition_gets_a_new_time() {
        let mut wanted = walkthrough("T2");
        wanted.conditions[0] = bound("T2", "False");
        let body = patch_body(&walkthrough("T0"), wanted).unwrap();
        assert_eq!(body["status"]["conditions"][0]["lastTransitionTime"], "T2");
    }
}
