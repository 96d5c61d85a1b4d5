//! Where the binaries under test are.

use std::path::PathBuf;

/// The egret binary: `$EGRET_BIN`, else the workspace's debug build.
pub fn egret() -> PathBuf {
    if let Ok(path) = std::env::var("EGRET_BIN") {
        return PathBuf::from(path);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("target/debug/egret");
    assert!(
        path.exists(),
        "egret binary not found at {}: run `cargo xtask test` (it builds the eBPF programs and the agent first) or set EGRET_BIN",
        path.display()
    );
    path
}

/// Fails the test unless it runs as root: these suites must not skip.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this end-to-end test needs root (eBPF, network namespaces); run it as root via `cargo xtask test`"
    );
}
