//! Last good, durable, fail-closed: what a restarted agent runs when a
//! source is now invalid, and what it runs when there is no last good
//! version at all.

use super::super::*;
use crate::config::last_good::LAST_GOOD_DIR;
use crate::config::refused::{self, InForce};
use crate::testing::manifests::waypoint_policy;
use crate::testing::manifests::{http_allowed, EGRESS_NAMESPACE, GATEWAY, SERVICE_ENTRY};

/// No POST through the waypoint.
fn deny() -> String {
    waypoint_policy(
        "no-post",
        "DENY",
        "  - to:\n    - operation:\n        methods: [\"POST\"]\n",
    )
}

/// `GET /get` and `POST /post` through the waypoint.
fn allow() -> String {
    waypoint_policy(
        "httpbin",
        "ALLOW",
        "  - to:\n    - operation:\n        methods: [\"GET\", \"POST\"]\n        paths: [\"/get\", \"/post\"]\n",
    )
}

/// An invalid edit of `policy`: a field of the wrong type.
fn broken(policy: &str) -> String {
    policy.replace("  action:", "  bogus: 1\n  action:")
}

/// The walkthrough's Steps 1-3 in a config folder, restarted at will.
struct Agent(super::Setup);

impl std::ops::Deref for Agent {
    type Target = super::Setup;

    fn deref(&self) -> &super::Setup {
        &self.0
    }
}

impl Agent {
    fn new() -> Self {
        Agent(super::setup_with(&format!(
            "{EGRESS_NAMESPACE}---\n{GATEWAY}---\n{SERVICE_ENTRY}"
        )))
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.config.join(file), text).unwrap();
    }

    /// Where the last good version of policy `name` is kept.
    fn stored(&self, name: &str) -> PathBuf {
        self.state.join(LAST_GOOD_DIR).join(ap(name).file_name())
    }

    /// A fresh start: a new reconciler on the same folders.
    fn start(&self) -> (Reconciler, Snapshot) {
        let mut r = Reconciler::new(&self.config, &self.state).unwrap();
        let snapshot = r.reload().unwrap().unwrap();
        (r, snapshot)
    }
}

fn ap(name: &str) -> ObjectKey {
    ObjectKey::new("AuthorizationPolicy", "istio-egress", name)
}

#[test]
fn invalid_sources_after_a_restart_run_on_their_last_good_versions() {
    let agent = Agent::new();
    agent.write("deny.yaml", &deny());
    agent.write("allow.yaml", &allow());
    let (_, before) = agent.start();
    assert!(!http_allowed(&before, "POST", "/post"), "denied by DENY");
    assert!(
        !http_allowed(&before, "GET", "/headers"),
        "not allowed by ALLOW"
    );
    assert!(http_allowed(&before, "GET", "/get"));

    // Both replaced by invalid versions while the agent is down: one with a
    // bad field, one that does not even parse.
    agent.write("deny.yaml", &broken(&deny()));
    agent.write("allow.yaml", "kind: [");
    let (r, after) = agent.start();
    assert!(
        !http_allowed(&after, "POST", "/post"),
        "the DENY still holds"
    );
    assert!(
        !http_allowed(&after, "GET", "/headers"),
        "the ALLOW still holds"
    );
    assert!(http_allowed(&after, "GET", "/get"));
    assert_eq!(r.objects().count(), 5);

    let reports: Vec<&Refused> = r.refused().collect();
    assert_eq!(reports.len(), 2, "{reports:#?}");
    for report in reports {
        assert!(
            matches!(&report.in_force, InForce::LastGood { source, .. } if source.ends_with(".yaml")),
            "{report:?}"
        );
    }
    let deny = r.refused().find(|x| x.is_for(&ap("no-post"))).unwrap();
    assert!(deny.errors[0].contains("spec.bogus"), "{:?}", deny.errors);
    let allow = r.refused().find(|x| x.is_for(&ap("httpbin"))).unwrap();
    assert!(
        allow.errors[0].contains("YAML syntax error"),
        "{:?}",
        allow.errors
    );
    assert_eq!(
        refused::read(&agent.state).len(),
        2,
        "written for egret get"
    );
}

#[test]
fn an_invalid_allow_with_no_last_good_version_denies_instead_of_allowing_all() {
    let agent = Agent::new();
    agent.write("allow.yaml", &broken(&allow()));
    let (r, snapshot) = agent.start();
    assert!(!http_allowed(&snapshot, "GET", "/get"), "fail closed");
    assert!(!http_allowed(&snapshot, "POST", "/anything"));
    let report = r.refused().next().unwrap();
    assert_eq!(report.in_force, InForce::FailClosed);
    assert!(report.errors[0].contains("AuthorizationPolicy istio-egress/httpbin: spec.bogus"));
    assert_eq!(r.unaccepted().count(), 1);

    // Fixed: the real policy replaces the stand-in.
    agent.write("allow.yaml", &allow());
    let (r, fixed) = agent.start();
    assert!(http_allowed(&fixed, "GET", "/get"));
    assert!(r.refused().next().is_none());
}

#[test]
fn a_policy_turning_invalid_while_running_keeps_its_version_and_a_new_one_fails_closed() {
    let agent = Agent::new();
    agent.write("deny.yaml", &deny());
    let (mut r, _) = agent.start();
    agent.write("deny.yaml", &broken(&deny()));
    assert!(r.reload().unwrap().is_none(), "nothing changes in force");
    // A new policy that never was valid: a stand-in, so a new snapshot.
    agent.write("allow.yaml", &broken(&allow()));
    let s = r.reload().unwrap().expect("the stand-in is a change");
    assert!(!http_allowed(&s, "GET", "/get"));
    let fates: Vec<_> = r.refused().map(|x| x.in_force.clone()).collect();
    assert!(matches!(fates[0], InForce::FailClosed), "{fates:?}");
    assert!(matches!(fates[1], InForce::LastGood { .. }), "{fates:?}");
}

#[test]
fn an_object_deleted_while_stopped_is_gone_with_its_last_good_version() {
    let agent = Agent::new();
    agent.write("deny.yaml", &deny());
    agent.start();
    let stored = agent.stored("no-post");
    assert!(stored.exists());
    std::fs::remove_file(agent.config.join("deny.yaml")).unwrap();
    let (r, s) = agent.start();
    assert!(http_allowed(&s, "POST", "/post"));
    assert_eq!(r.objects().count(), 3);
    let mut r = r;
    r.write_status().unwrap();
    assert!(!stored.exists());
}

#[test]
fn a_corrupt_last_good_file_is_reported_and_never_trusted() {
    let agent = Agent::new();
    agent.write("allow.yaml", &allow());
    agent.start();
    let stored = agent.stored("httpbin");
    let text = std::fs::read_to_string(&stored).unwrap();
    // Truncated, as a crash mid-write on a careless filesystem could leave it.
    std::fs::write(&stored, &text[..text.len() / 2]).unwrap();
    agent.write("allow.yaml", &broken(&allow()));
    let (r, s) = agent.start();
    assert!(
        !http_allowed(&s, "GET", "/get"),
        "no usable last good: fail closed"
    );
    assert_eq!(r.refused().next().unwrap().in_force, InForce::FailClosed);
}

const MESH: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |
    outboundTrafficPolicy:
      mode: MODE
";

const SIDECAR: &str = "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
  namespace: bookinfo
spec:
  outboundTrafficPolicy:
    mode: ALLOW_ANY
";

#[test]
fn unreadable_mesh_config_and_sidecars_make_their_scope_registry_only() {
    use crate::config::mesh::OutboundMode::{AllowAny, RegistryOnly};
    let agent = Agent::new();
    // Never valid: no last good version, so REGISTRY_ONLY (never ALLOW_ANY,
    // the default it would otherwise fall back to).
    agent.write("mesh.yaml", &MESH.replace("MODE", "ALLOW_EVERYTHING"));
    agent.write(
        "sidecar.yaml",
        &SIDECAR.replace("spec:\n", "spec:\n  workloadSelector: {labels: {app: x}}\n"),
    );
    let (_, s) = agent.start();
    assert_eq!(s.mesh.outbound, RegistryOnly);
    assert_eq!(s.outbound_mode("istio-egress"), RegistryOnly);
    assert_eq!(s.outbound_mode("bookinfo"), RegistryOnly);

    // Valid: in force, and kept as the last good version...
    agent.write("mesh.yaml", &MESH.replace("MODE", "ALLOW_ANY"));
    agent.write("sidecar.yaml", SIDECAR);
    let (_, s) = agent.start();
    assert_eq!(s.outbound_mode("istio-egress"), AllowAny);
    assert_eq!(s.outbound_mode("bookinfo"), AllowAny);
    // ...which stays in force when the source breaks again, across a restart.
    agent.write("mesh.yaml", &MESH.replace("MODE", "bogus"));
    let (_, s) = agent.start();
    assert_eq!(s.mesh.outbound, AllowAny);
}
