//! Object status in `<state_dir>/status/<kind>.<ns>.<name>.yaml`: ServiceEntry
//! addresses and `istio.io/WaypointBound`, Gateway `Accepted`/`Programmed`.
//! `egret get -o yaml` merges these into what the user applied.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::allocate::{Addresses, AllocKey};
use super::error::ConfigError;
use super::kinds::service_entry::ServiceEntry;
use super::kinds::Spec;
use super::object::{Object, ObjectKey};
use super::snapshot::{Snapshot, WaypointBinding};
pub use super::status_writer::StatusWriter;
use crate::net::HostName;

/// One `status.addresses[]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressStatus {
    /// The host the address is for.
    pub host: String,
    /// The address.
    pub value: String,
}

/// One `status.conditions[]` entry (Kubernetes field order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCondition {
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// Human-readable detail.
    pub message: String,
    /// Machine-readable reason.
    pub reason: String,
    /// `"True"` or `"False"`.
    pub status: String,
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: String,
}

/// An object's `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Auto-allocated addresses (ServiceEntry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<AddressStatus>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<StatusCondition>,
}

/// ServiceEntry condition type for waypoint binding.
pub const WAYPOINT_BOUND: &str = "istio.io/WaypointBound";

fn condition(type_: &str, ok: bool, reason: &str, message: String, now: &str) -> StatusCondition {
    StatusCondition {
        last_transition_time: now.to_string(),
        message,
        reason: reason.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        type_: type_.to_string(),
    }
}

/// The status of every ServiceEntry and Gateway, by status file name.
pub fn render<'a>(
    objects: impl IntoIterator<Item = &'a Object>,
    snapshot: &Snapshot,
    addresses: &HashMap<AllocKey, Addresses>,
    now: &str,
) -> BTreeMap<String, Status> {
    objects
        .into_iter()
        .filter_map(|o| {
            Some((
                o.key().file_name(),
                render_one(o, snapshot, addresses, now)?,
            ))
        })
        .collect()
}

/// The status of one object; `None` for kinds without one.
pub fn render_one(
    o: &Object,
    snapshot: &Snapshot,
    addresses: &HashMap<AllocKey, Addresses>,
    now: &str,
) -> Option<Status> {
    let status = match &o.spec {
        Spec::ServiceEntry(se) => {
            let mut status = Status::default();
            for host in &se.hosts {
                let key = AllocKey {
                    namespace: o.namespace().to_string(),
                    name: o.name().to_string(),
                    host: HostName::new(host),
                };
                if let Some(a) = addresses.get(&key) {
                    for value in [a.ipv4.to_string(), a.ipv6.to_string()] {
                        status.addresses.push(AddressStatus {
                            host: host.clone(),
                            value,
                        });
                    }
                }
            }
            status
                .conditions
                .push(waypoint_condition(binding_of(o, se, snapshot), now));
            status
        }
        Spec::Gateway(gw) => {
            let ok = gw.is_waypoint();
            let (accepted, programmed) = if ok {
                (
                    ("Accepted", "Resource accepted".to_string()),
                    (
                        "Programmed",
                        "Resource programmed, served by egret".to_string(),
                    ),
                )
            } else {
                let msg = format!(
                    "gateway class \"{}\" is not handled by egret",
                    gw.gateway_class_name
                );
                (("Pending", msg.clone()), ("Pending", msg))
            };
            Status {
                addresses: Vec::new(),
                conditions: vec![
                    condition("Accepted", ok, accepted.0, accepted.1, now),
                    condition("Programmed", ok, programmed.0, programmed.1, now),
                ],
            }
        }
        Spec::Namespace(_)
        | Spec::DestinationRule(_)
        | Spec::Secret(_)
        | Spec::AuthorizationPolicy(_)
        | Spec::VirtualService(_)
        | Spec::ConfigMap(_)
        | Spec::Sidecar(_) => return None,
    };
    Some(status)
}

/// How the snapshot bound a ServiceEntry (every host shares the binding),
/// found through the host index instead of a scan of all services.
fn binding_of<'a>(o: &Object, se: &ServiceEntry, snapshot: &'a Snapshot) -> &'a WaypointBinding {
    se.hosts
        .iter()
        .filter_map(|h| snapshot.by_host.get(&HostName::new(h)))
        .flatten()
        .find(|s| s.namespace == o.namespace() && s.name == o.name())
        .map_or(&WaypointBinding::None, |s| &s.waypoint)
}

fn waypoint_condition(binding: &WaypointBinding, now: &str) -> StatusCondition {
    match binding {
        WaypointBinding::Bound(r) => condition(
            WAYPOINT_BOUND,
            true,
            "WaypointAccepted",
            format!("Successfully attached to waypoint {r}"),
            now,
        ),
        WaypointBinding::Missing(r) => condition(
            WAYPOINT_BOUND,
            false,
            "WaypointNotFound",
            format!("waypoint {r} not found"),
            now,
        ),
        WaypointBinding::None => condition(
            WAYPOINT_BOUND,
            false,
            "NotBound",
            "not bound to a waypoint".to_string(),
            now,
        ),
    }
}

/// The status folder under the agent's state folder.
pub fn status_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("status")
}

/// Reads an object's status file, if any (for `get -o yaml`).
pub fn read(state_dir: &Path, key: &ObjectKey) -> Option<Status> {
    let text = std::fs::read_to_string(status_dir(state_dir).join(key.file_name())).ok()?;
    serde_yaml::from_str(&text).ok()
}

/// Writes the rendered statuses: a condition whose status did not change
/// keeps its old `lastTransitionTime`; unchanged files are not rewritten;
/// files of objects that are gone are removed.
pub fn write(state_dir: &Path, rendered: BTreeMap<String, Status>) -> Result<(), ConfigError> {
    let mut writer = StatusWriter::new(state_dir);
    writer.stage_all(rendered);
    writer.flush()
}

/// `now` as Kubernetes writes times: `2025-02-20T16:52:48Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_dates() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_740_070_368, "2025-02-20T16:52:48Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
        ];
        for (secs, want) in cases {
            assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(secs)), want);
        }
    }
}

#[cfg(test)]
mod render_tests {
    use super::*;
    use crate::config::allocate::Allocator;
    use crate::config::compile::{compile, wanted_addresses};
    use crate::testing::manifests::{objects, EGRESS_NAMESPACE, GATEWAY, SERVICE_ENTRY};

    fn rendered(text: &str, now: &str) -> BTreeMap<String, Status> {
        let all = objects(text);
        let mut alloc = Allocator::in_memory();
        alloc.reconcile(&wanted_addresses(&all)).unwrap();
        let snapshot = compile(&all, alloc.assigned());
        render(&all, &snapshot, alloc.assigned(), now)
    }

    #[test]
    fn walkthrough_service_entry_status() {
        let r = rendered(
            &format!("{EGRESS_NAMESPACE}---\n{GATEWAY}---\n{SERVICE_ENTRY}"),
            "T0",
        );
        let yaml = serde_yaml::to_string(&r["serviceentry.istio-egress.httpbin.org.yaml"]).unwrap();
        assert_eq!(
            yaml,
            "addresses:\n- host: httpbin.org\n  value: 240.240.0.2\n- host: httpbin.org\n  value: 2001:2::2\nconditions:\n- lastTransitionTime: T0\n  message: Successfully attached to waypoint istio-egress/egress-waypoint\n  reason: WaypointAccepted\n  status: 'True'\n  type: istio.io/WaypointBound\n"
        );
        let gw = &r["gateway.istio-egress.egress-waypoint.yaml"];
        let summary: Vec<(&str, &str)> = gw
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(summary, [("Accepted", "True"), ("Programmed", "True")]);
        assert!(!r.contains_key("namespace.istio-egress.yaml"));
    }

    #[test]
    fn unbound_and_missing_waypoint_conditions() {
        let missing = rendered(&format!("{EGRESS_NAMESPACE}---\n{SERVICE_ENTRY}"), "T0");
        let c = &missing["serviceentry.istio-egress.httpbin.org.yaml"].conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "WaypointNotFound")
        );
        assert!(c.message.contains("istio-egress/egress-waypoint"));
        let unbound = rendered(
            &SERVICE_ENTRY.replace("istio.io/use-waypoint: egress-waypoint", "app: x"),
            "T0",
        );
        let c = &unbound["serviceentry.istio-egress.httpbin.org.yaml"].conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "NotBound")
        );
    }

    #[test]
    fn write_keeps_transition_time_and_removes_stale_files() {
        let tmp = tempfile::tempdir().unwrap();
        let text = format!("{EGRESS_NAMESPACE}---\n{GATEWAY}---\n{SERVICE_ENTRY}");
        write(tmp.path(), rendered(&text, "T0")).unwrap();
        let file = status_dir(tmp.path()).join("serviceentry.istio-egress.httpbin.org.yaml");
        let first = std::fs::read_to_string(&file).unwrap();
        write(tmp.path(), rendered(&text, "T1")).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            first,
            "same status keeps T0"
        );
        // The waypoint goes away: the condition flips and gets a new time.
        write(
            tmp.path(),
            rendered(&format!("{EGRESS_NAMESPACE}---\n{SERVICE_ENTRY}"), "T2"),
        )
        .unwrap();
        let flipped = read(
            tmp.path(),
            &crate::config::object::ObjectKey::new("ServiceEntry", "istio-egress", "httpbin.org"),
        )
        .unwrap();
        assert_eq!(flipped.conditions[0].last_transition_time, "T2");
        assert!(!status_dir(tmp.path())
            .join("gateway.istio-egress.egress-waypoint.yaml")
            .exists());
    }
}
