//! The agent's modules depend one way. Each top-level module of
//! `agent/src` sits in a layer and may name (`crate::<module>`) only
//! modules of lower layers: a connection's path reads top to bottom, and
//! no two modules import each other. Run it with
//! `cargo test -p egret --test layers`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, lowest first.
const LAYERS: &[&[&str]] = &[
    // Sockets and host names: what every other module may use.
    &["net"],
    // Building blocks that know nothing of the rest.
    &["authz", "route", "kernel", "logging"],
    // The compiled config; the metrics page.
    &["config", "metrics"],
    // Identities and certificates; the DNS proxy.
    &["identity", "dns"],
    // HBONE transport.
    &["hbone"],
    // The proxy: outbound, inbound, L7, L4, tunnels.
    &["proxy"],
    // Workloads and the listeners in their namespaces.
    &["workload"],
    // The admin endpoint; kernel verdicts for people.
    &["admin", "verdicts"],
    // The control socket; Kubernetes mode.
    &["control", "kube"],
    // What both roots compose alike.
    &["app"],
    // The two roots.
    &["node", "waypoint"],
    // The command line.
    &["cli"],
    // Test support: compiled only for tests (`cfg(test)`, feature
    // `testing`), so any module's tests may name it; it names any module.
    &["testing"],
];

/// The module only tests are built with.
const TEST_SUPPORT: &str = "testing";

/// One `crate::<module>` reference.
#[derive(Debug)]
struct Reference {
    from: String,
    to: String,
    at: String,
}

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` is in no layer of tests/layers.rs"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::<module>` named outside comments, by the top-level
/// module of the file naming it.
fn references() -> Vec<Reference> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative.components().next().unwrap().as_os_str();
        let from = Path::new(top).file_stem().unwrap().to_string_lossy();
        if from == "lib" || from == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            let at = format!("{}:{}", relative.display(), n + 1);
            assert!(
                !line.contains("crate::{"),
                "{at}: name modules one `use crate::<module>` at a time, so this test sees them"
            );
            for (i, _) in line.match_indices("crate::") {
                if line[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                    continue; // `egret_crate::`, not ours
                }
                let rest = &line[i + "crate::".len()..];
                let to: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if !to.is_empty() && to != from {
                    found.push(Reference {
                        from: from.to_string(),
                        to,
                        at: at.clone(),
                    });
                }
            }
        }
    }
    found
}

#[test]
fn every_module_names_only_lower_layers() {
    let upward: Vec<String> = references()
        .into_iter()
        .filter(|r| r.to != TEST_SUPPORT && layer_of(&r.to) >= layer_of(&r.from))
        .map(|r| format!("{}: {} -> {}", r.at, r.from, r.to))
        .collect();
    assert!(
        upward.is_empty(),
        "references that do not point down a layer:\n{}",
        upward.join("\n")
    );
}

#[test]
fn proxy_hbone_and_metrics_do_not_import_each_other_in_circles() {
    let edges: BTreeSet<(String, String)> =
        references().into_iter().map(|r| (r.from, r.to)).collect();
    let has = |from: &str, to: &str| edges.contains(&(from.to_string(), to.to_string()));
    for (from, to) in [
        ("hbone", "proxy"),
        ("hbone", "metrics"),
        ("metrics", "proxy"),
        ("metrics", "hbone"),
    ] {
        assert!(!has(from, to), "{from} imports {to}");
    }
    // The proxy does use HBONE: the edge exists, one way.
    assert!(has("proxy", "hbone"));
}

#[test]
fn every_top_level_module_has_a_layer() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(name) = line
            .strip_prefix("pub mod ")
            .and_then(|r| r.strip_suffix(';'))
        {
            layer_of(name);
        }
    }
}

/// The agent's source files (below `agent/src`, test support left out)
/// whose code, outside comments, names `needle`.
fn files_naming(needle: &str) -> BTreeSet<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .filter(|f| !f.starts_with(src.join(TEST_SUPPORT)))
        .filter(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .any(|l| !l.trim_start().starts_with("//") && l.contains(needle))
        })
        .map(|f| f.strip_prefix(&src).unwrap().display().to_string())
        .collect()
}

#[test]
fn one_socket_factory_and_one_l4_copy() {
    // Every marked socket of the agent comes from one factory...
    assert_eq!(
        files_naming(".set_mark("),
        BTreeSet::from(["net/socket.rs".to_string()])
    );
    assert_eq!(
        files_naming("TcpSocket::new_v"),
        BTreeSet::from(["hbone/server.rs".to_string()]),
        "only the HBONE listener makes a TCP socket of its own (it binds, never connects)"
    );
    // ...and bytes are carried both ways in one place.
    assert_eq!(
        files_naming("copy_bidirectional"),
        BTreeSet::from(["proxy/l4.rs".to_string()])
    );
}

#[test]
fn no_process_wide_state() {
    // The proxy's metrics, counters, pools, caches and roots live in the
    // values that use them (`ProxyContext`), never in a `static`.
    let declares_static = |line: &str| {
        let line = line.trim_start();
        let line = line.strip_prefix("pub ").unwrap_or(line);
        let line = line.strip_prefix("pub(crate) ").unwrap_or(line);
        line.starts_with("static ")
    };
    for kind in ["OnceLock", "Mutex", "RwLock", "Atomic", "LazyLock"] {
        let holders: BTreeSet<String> = files_naming("static ")
            .into_iter()
            .filter(|f| {
                let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(f);
                std::fs::read_to_string(path)
                    .unwrap()
                    .lines()
                    .any(|l| declares_static(l) && l.contains(kind))
            })
            .collect();
        assert!(holders.is_empty(), "a static {kind} in {holders:?}");
    }
}

#[test]
fn the_config_snapshot_does_not_know_the_kernel_map_abi() {
    // config/ describes services in addresses and networks; the kernel
    // (kernel/keys.rs) turns them into egret-common's map keys at the sync.
    let in_config = |files: BTreeSet<String>| -> Vec<String> {
        files
            .into_iter()
            .filter(|f| f.starts_with("config/"))
            .collect()
    };
    assert_eq!(
        in_config(files_naming("egret_common")),
        Vec::<String>::new()
    );
    assert_eq!(
        in_config(files_naming("crate::kernel")),
        Vec::<String>::new()
    );
}

#[test]
fn one_name_per_concept() {
    // A type name means one thing across the agent. The exception mirrors
    // Istio's API: DestinationRule and VirtualService each read Istio's
    // `PortSelector` message, with their own defaults.
    const API_MIRRORS: &[&str] = &["PortSelector"];
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut seen: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            let line = line.trim_start();
            let Some(rest) = line
                .strip_prefix("pub ")
                .or_else(|| line.strip_prefix("pub(crate) "))
            else {
                continue;
            };
            for item in ["struct ", "enum ", "trait ", "type "] {
                if let Some(rest) = rest.strip_prefix(item) {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    let at = file.strip_prefix(&src).unwrap().display().to_string();
                    seen.entry(name).or_default().push(at);
                }
            }
        }
    }
    let twice: Vec<String> = seen
        .into_iter()
        .filter(|(name, at)| at.len() > 1 && !API_MIRRORS.contains(&name.as_str()))
        .map(|(name, at)| format!("{name}: {}", at.join(", ")))
        .collect();
    assert!(
        twice.is_empty(),
        "type names used for two things:\n{}",
        twice.join("\n")
    );
}
