//! The install manifests (`deploy/kubernetes/`, the Helm chart) checked
//! against the code: they parse, the DaemonSet has what pod adoption needs,
//! and RBAC grants exactly the verbs the agent uses.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::resources::{has_status, scope, watched, Scope};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every document of every `*.yaml` in `dir`.
fn documents(dir: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    files
        .iter()
        .flat_map(|f| parse_all(&std::fs::read_to_string(f).unwrap(), f))
        .collect()
}

fn parse_all(text: &str, file: &Path) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| {
            serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        })
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// (apiGroup, resource, verb) triples a role grants.
fn grants(role: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_sequence().unwrap() {
        for g in strings(&rule["apiGroups"]) {
            for r in strings(&rule["resources"]) {
                for v in strings(&rule["verbs"]) {
                    out.insert((g.clone(), r.clone(), v));
                }
            }
        }
    }
    out
}

/// What the agent does with the cluster-wide API: watches every config
/// kind and its node's pods, patches status of the kinds that have one.
fn needed() -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let mut read = |g: &str, r: &str| {
        for v in ["get", "list", "watch"] {
            out.insert((g.to_string(), r.to_string(), v.to_string()));
        }
    };
    read("", "pods");
    for k in watched().filter(|k| matches!(scope(k), Scope::All)) {
        read(k.group, k.plural);
    }
    for k in watched().filter(|k| has_status(k)) {
        out.insert((
            k.group.to_string(),
            format!("{}/status", k.plural),
            "patch".into(),
        ));
    }
    out
}

/// What the agent reads in istiod's namespace only (its MeshConfig).
fn mesh_config_grants() -> BTreeSet<(String, String, String)> {
    ["get", "list", "watch"]
        .iter()
        .map(|v| (String::new(), "configmaps".into(), v.to_string()))
        .collect()
}

/// The Role named `name` among `docs`.
fn role<'a>(docs: &'a [Value], name_suffix: &str) -> &'a Value {
    of_kind(docs, "Role")
        .into_iter()
        .find(|r| {
            r["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with(name_suffix))
        })
        .unwrap_or_else(|| panic!("no Role named *{name_suffix}"))
}

fn lease_grants() -> BTreeSet<(String, String, String)> {
    ["get", "create", "update"]
        .iter()
        .map(|v| ("coordination.k8s.io".into(), "leases".into(), v.to_string()))
        .collect()
}

fn check_daemonset(ds: &Value) {
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["hostPID"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["privileged"], true);
    let args = strings(&c["args"]);
    assert!(args.contains(&"--kubernetes".into()), "{args:?}");
    assert!(args.contains(&"--proc-root=/host/proc".into()), "{args:?}");
    let env = c["env"].as_sequence().unwrap();
    let node = env.iter().find(|e| e["name"] == "NODE_NAME").unwrap();
    assert_eq!(node["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
    let host_paths: BTreeSet<String> = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v["hostPath"]["path"].as_str().map(str::to_string))
        .collect();
    for p in ["/sys/fs/cgroup", "/sys/fs/bpf", "/proc", "/var/run/netns"] {
        assert!(host_paths.contains(p), "{p} not mounted: {host_paths:?}");
    }
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert!(mounts.contains(&"/host/proc"), "{mounts:?}");
}

#[test]
fn kubernetes_manifests_parse_and_match_the_code() {
    let docs = documents(&deploy_dir().join("kubernetes"));
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "DaemonSet",
    ] {
        assert_eq!(of_kind(&docs, kind).len(), 1, "one {kind}");
    }
    assert_eq!(
        of_kind(&docs, "Role").len(),
        2,
        "the Lease's, and istiod's ConfigMap's"
    );
    assert_eq!(of_kind(&docs, "RoleBinding").len(), 2);
    for d in &docs {
        assert!(
            d["apiVersion"].is_string() && d["metadata"]["name"].is_string(),
            "{d:?}"
        );
    }
    check_daemonset(of_kind(&docs, "DaemonSet")[0]);
    check_roles(&docs);
    let sa =
        of_kind(&docs, "DaemonSet")[0]["spec"]["template"]["spec"]["serviceAccountName"].clone();
    for binding in ["ClusterRoleBinding", "RoleBinding"] {
        for b in of_kind(&docs, binding) {
            assert_eq!(b["subjects"][0]["name"], sa);
        }
    }
}

/// The ClusterRole, the Lease's Role and the MeshConfig Role grant
/// exactly what the agent uses, the last in istiod's namespace only.
fn check_roles(docs: &[Value]) {
    assert_eq!(grants(of_kind(docs, "ClusterRole")[0]), needed());
    assert_eq!(grants(role(docs, "-status-writer")), lease_grants());
    let mesh = role(docs, "-mesh-config");
    assert_eq!(mesh["metadata"]["namespace"], "istio-system");
    assert_eq!(grants(mesh), mesh_config_grants());
}

/// A crude Helm render: directive-only lines dropped, `{{ … }}` replaced
/// by a placeholder. Enough to parse the templates' YAML structure.
fn render(text: &str) -> String {
    let re = regex::Regex::new(r"\{\{[^}]*\}\}").unwrap();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("{{-"))
        .map(|l| re.replace_all(l, "x").into_owned() + "\n")
        .collect()
}

#[test]
fn helm_chart_renders_the_same_install() {
    let chart = deploy_dir().join("helm/egret");
    let values: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart.join("values.yaml")).unwrap()).unwrap();
    for key in ["image", "trustDomain", "dnsUpstream", "logLevel"] {
        assert!(!values[key].is_null(), "values.{key}");
    }
    let meta: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart.join("Chart.yaml")).unwrap()).unwrap();
    assert_eq!(meta["name"], "egret");
    // Every `.Values.x.y` a template uses is defined.
    let used = regex::Regex::new(r"\.Values((?:\.[A-Za-z]+)+)").unwrap();
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(chart.join("templates")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for c in used.captures_iter(&text) {
            let mut v = &values;
            for part in c[1].trim_start_matches('.').split('.') {
                v = &v[part];
            }
            assert!(
                !v.is_null(),
                "{}: {} not in values.yaml",
                path.display(),
                &c[0]
            );
        }
        docs.extend(parse_all(&render(&text), &path));
    }
    check_daemonset(of_kind(&docs, "DaemonSet")[0]);
    check_roles(&docs);
    assert_eq!(of_kind(&docs, "ServiceAccount").len(), 1);
}
