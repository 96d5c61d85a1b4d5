//! The incremental path: what one changed file costs, and that its result
//! equals a full rescan's.

mod restart;

use super::*;
use crate::config::snapshot::Service;
use crate::testing::manifests::{service_entry, EGRESS_NAMESPACE, GATEWAY, SERVICE_ENTRY};

struct Setup {
    _tmp: tempfile::TempDir,
    config: PathBuf,
    state: PathBuf,
}

/// A config folder holding the waypoint's namespace and Gateway.
fn setup() -> Setup {
    setup_with(&format!("{EGRESS_NAMESPACE}---\n{GATEWAY}"))
}

/// A reconciler of `s` that has loaded `n` ServiceEntries `h<i>.com`:80,
/// one file each (`se<i>.yaml`).
fn loaded_with_services(s: &Setup, n: usize) -> Reconciler {
    for i in 0..n {
        std::fs::write(
            s.config.join(format!("se{i}.yaml")),
            se(&format!("h{i}.com"), 80),
        )
        .unwrap();
    }
    let mut r = Reconciler::new(&s.config, &s.state).unwrap();
    r.reload().unwrap().unwrap();
    r
}

/// A config folder whose `base.yaml` is `base`, and an empty state folder.
fn setup_with(base: &str) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config");
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("base.yaml"), base).unwrap();
    Setup {
        _tmp: tmp,
        config,
        state,
    }
}

fn se(name: &str, port: u16) -> String {
    service_entry(
        "istio-egress",
        name,
        "",
        &format!("  hosts: [{name}]\n  ports:\n  - {{name: http, number: {port}, protocol: HTTP}}\n  resolution: DNS\n"),
    )
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("ServiceEntry", "istio-egress", name)
}

/// (host, vips, first port) of every service, sorted: what traffic sees.
fn services(s: &Snapshot) -> Vec<(String, Vec<std::net::IpAddr>, u16)> {
    let mut v: Vec<_> = s
        .services
        .iter()
        .map(|x: &Arc<Service>| (x.host.to_string(), x.vips.clone(), x.ports[0].number))
        .collect();
    v.sort();
    v
}

#[test]
fn a_changed_file_is_parsed_alone() {
    let s = setup();
    let mut r = loaded_with_services(&s, 20);
    let changed = s.config.join("se7.yaml");
    std::fs::write(&changed, se("h7.com", 8080)).unwrap();
    // The folder sees exactly one file change, by event path or by rescan.
    let changes = r.folder.refresh([changed.clone()]);
    assert_eq!(changes.files, BTreeSet::from([changed.clone()]));
    assert_eq!(changes.keys, BTreeSet::from([key("h7.com")]));
    std::fs::write(&changed, se("h7.com", 8081)).unwrap();
    let changes = r.folder.rescan().unwrap();
    assert_eq!(changes.files, BTreeSet::from([changed.clone()]));
    // Through the reconciler: a new snapshot with just that port moved.
    std::fs::write(&changed, se("h7.com", 9090)).unwrap();
    let snap = r.reload_paths([changed]).unwrap().unwrap();
    let h7 = snap.by_host[&crate::net::HostName::new("h7.com")][0].clone();
    assert_eq!(h7.ports[0].number, 9090);
    assert_eq!(snap.services.len(), 20);
    // An event for an untouched file changes nothing.
    assert!(r
        .reload_paths([s.config.join("se3.yaml")])
        .unwrap()
        .is_none());
}

#[test]
fn a_deleted_file_takes_its_objects_status_and_addresses() {
    let s = setup();
    let file = s.config.join("se.yaml");
    std::fs::write(&file, SERVICE_ENTRY).unwrap();
    let mut r = Reconciler::new(&s.config, &s.state).unwrap();
    assert_eq!(r.reload().unwrap().unwrap().services.len(), 1);
    let status_file = status::status_dir(&s.state).join(key("httpbin.org").file_name());
    assert!(status_file.exists());
    std::fs::remove_file(&file).unwrap();
    let snap = r.reload_paths([file]).unwrap().unwrap();
    assert!(snap.services.is_empty());
    r.write_status().unwrap();
    assert!(!status_file.exists());
    let saved = std::fs::read_to_string(s.state.join("addresses.json")).unwrap();
    assert!(!saved.contains("httpbin.org"), "{saved}");
}

#[test]
fn an_invalid_edit_keeps_the_last_good_version() {
    let s = setup();
    let file = s.config.join("se.yaml");
    std::fs::write(&file, se("a.com", 80)).unwrap();
    let mut r = Reconciler::new(&s.config, &s.state).unwrap();
    let first = r.reload().unwrap().unwrap();
    // A bad field, then a syntax error: nothing in force moves.
    std::fs::write(&file, se("a.com", 80).replace("number: 80", "number: 0")).unwrap();
    assert!(r.reload_paths([file.clone()]).unwrap().is_none());
    std::fs::write(&file, "apiVersion: [").unwrap();
    assert!(r.reload_paths([file.clone()]).unwrap().is_none());
    let kept = r.objects().find(|o| o.key() == key("a.com")).unwrap();
    let crate::config::kinds::Spec::ServiceEntry(spec) = &kept.spec else {
        panic!("not a ServiceEntry")
    };
    assert_eq!(spec.ports[0].number, 80);
    // Fixed: the fix goes through, on the addresses it had.
    std::fs::write(&file, se("a.com", 81)).unwrap();
    let fixed = r.reload_paths([file]).unwrap().unwrap();
    assert_eq!(fixed.services[0].ports[0].number, 81);
    assert_eq!(fixed.services[0].vips, first.services[0].vips);
}

#[test]
fn a_rename_moves_the_object_without_a_change() {
    let s = setup();
    let (from, to) = (s.config.join("a.yaml"), s.config.join("b.yml"));
    std::fs::write(&from, se("a.com", 80)).unwrap();
    let mut r = Reconciler::new(&s.config, &s.state).unwrap();
    r.reload().unwrap().unwrap();
    std::fs::rename(&from, &to).unwrap();
    assert!(r
        .reload_paths([from.clone(), to.clone()])
        .unwrap()
        .is_none());
    assert_eq!(
        r.folder.files_naming(&key("a.com")),
        std::slice::from_ref(&to)
    );
    // Renamed out of what the loader reads: gone.
    let hidden = s.config.join(".b.yml.bak");
    std::fs::rename(&to, &hidden).unwrap();
    let snap = r.reload_paths([to, hidden]).unwrap().unwrap();
    assert!(snap.services.is_empty());
}

#[test]
fn a_full_rescan_equals_the_incremental_result() {
    let s = setup();
    let mut r = loaded_with_services(&s, 5);
    // Edits, a delete, an invalid edit, a duplicate in a second file.
    let path = |i: usize| s.config.join(format!("se{i}.yaml"));
    std::fs::write(path(1), se("h1.com", 81)).unwrap();
    std::fs::remove_file(path(2)).unwrap();
    std::fs::write(path(3), "kind: [").unwrap();
    std::fs::write(
        path(5),
        format!("{}---\n{}", se("h5.com", 85), se("h0.com", 90)),
    )
    .unwrap();
    let mut last = None;
    for i in 1..=5 {
        if let Some(snap) = r.reload_paths([path(i)]).unwrap() {
            last = Some(snap);
        }
    }
    r.write_status().unwrap();
    let incremental = last.unwrap();
    // The same reconciler finds nothing left to do on a rescan…
    assert!(r.reload().unwrap().is_none());
    // …and a fresh one (same state folder: same addresses, same last good
    // versions, h3's included though its file no longer parses) compiles
    // the same.
    let mut fresh = Reconciler::new(&s.config, &s.state).unwrap();
    let full = fresh.reload().unwrap().unwrap();
    assert_eq!(services(&full), services(&incremental));
    assert_eq!(services(&incremental).len(), 5);
    assert_eq!(
        full.by_host[&crate::net::HostName::new("h0.com")][0].ports[0].number,
        90,
        "newer file wins"
    );
    let a: Vec<_> = r.objects().map(Object::key).collect();
    let b: Vec<_> = fresh.objects().map(Object::key).collect();
    assert_eq!(a, b);
}
