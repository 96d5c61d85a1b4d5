//! `cargo xtask test`: every test, as CI runs it. Builds the kernel programs
//! and the agent first; lints; then unit, integration and end-to-end suites
//! (the privileged ones need root and fail, never skip, without it), and a
//! short run of every fuzz target.

use xtask::prereq::{cargo, ensure_packages, require_root, workspace_root, PACKAGES};

/// Runs every check and test.
pub fn run() -> anyhow::Result<()> {
    require_root("the test suite")?;
    ensure_packages(PACKAGES)?;
    xtask::build_ebpf::run()?;
    cargo(&["fmt", "--all", "--", "--check"], &[])?;
    cargo(
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    // The fuzz crate is outside the workspace (clippy does not see it): a
    // target broken by a rename fails here, not after every other test.
    cargo(
        &[
            "check",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--bins",
            "--quiet",
        ],
        &[("CARGO_TARGET_DIR", "target/fuzz/check")],
    )?;
    cargo(&["build", "-p", "egret"], &[])?;
    let egret = workspace_root().join("target/debug/egret");
    let egret = egret.to_string_lossy();
    // Two threads: each end-to-end test runs a whole node (agent, dnsmasq,
    // httpbin), and the machine has two cores.
    cargo(
        &[
            "test",
            "--workspace",
            "--all-targets",
            // Every failing suite in one run, not just the first.
            "--no-fail-fast",
            "--",
            "--test-threads=2",
        ],
        &[("EGRET_BIN", &egret)],
    )?;
    // Every fuzz target briefly: a parser that panics on its seeds or on
    // what the fuzzer finds in a few seconds fails the run.
    crate::fuzz::smoke()
}
