//! `cargo xtask build-ebpf` on a fresh clone compiles xtask first: xtask
//! must not pull the agent, its Kubernetes client or its network stack.

use std::process::Command;

/// Crates that belong to the agent, the test harness or the bench, never to
/// the task runner.
const HEAVY: &[&str] = &[
    "egret",
    "egret-e2e",
    "egret-common",
    "aya",
    "kube",
    "k8s-openapi",
    "hyper",
    "rustls",
    "tokio",
];

#[test]
fn xtask_compiles_none_of_the_agents_dependencies() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Offline: the test runs in a built workspace and needs no registry.
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--package",
            "xtask",
            "--edges",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(names.contains(&"xtask"), "no xtask in:\n{tree}");
    let mut heavy: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| HEAVY.contains(name))
        .collect();
    heavy.sort_unstable();
    heavy.dedup();
    assert!(
        heavy.is_empty(),
        "xtask depends on {heavy:?}: move that task into its own crate (xtask/bench, xtask/demo)"
    );
}
