//! `cargo xtask fuzz [TARGET] [--seconds N]`: runs the cargo-fuzz targets of
//! `fuzz/` (all, or one) for N seconds each with the nightly toolchain,
//! installing cargo-fuzz under `target/tools` first. Seeds come from
//! `fuzz/seeds/<target>`; what the fuzzer learns goes to `target/fuzz/`,
//! never into the repository. A crash fails the task and leaves its input in
//! `target/fuzz/artifacts/<target>/`: turn it into a regression test.
//! `cargo xtask test` runs every target briefly ([`smoke`]), built without
//! optimizations: the build is most of the time a short run takes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use xtask::build_ebpf::{clean_command, run_checked};
use xtask::prereq::workspace_root;

/// The targets, as named in `fuzz/Cargo.toml`.
pub const TARGETS: [&str; 6] = [
    "http_request",
    "tls_client_hello",
    "manifest",
    "authz",
    "dns",
    "hbone_connect",
];
/// Seconds per target in `cargo xtask test` (six targets: 90 s of fuzzing).
const SMOKE_SECONDS: u64 = 15;

/// `cargo xtask fuzz`.
#[derive(clap::Args)]
pub struct Args {
    /// One target (default: all of them, one after the other).
    target: Option<String>,
    /// How long to fuzz each target.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Build without optimizations (quicker to build, slower to run).
    #[arg(long)]
    dev: bool,
}

/// Runs the targets `args` names.
pub fn run(args: Args) -> Result<()> {
    let targets: Vec<&str> = match &args.target {
        None => TARGETS.to_vec(),
        Some(t) if TARGETS.contains(&t.as_str()) => vec![t.as_str()],
        Some(t) => bail!("no fuzz target {t:?}; targets: {}", TARGETS.join(", ")),
    };
    fuzz(&targets, args.seconds, args.dev)
}

/// Every target for a few seconds: the check `cargo xtask test` runs.
pub fn smoke() -> Result<()> {
    fuzz(&TARGETS, SMOKE_SECONDS, true)
}

fn fuzz(targets: &[&str], seconds: u64, dev: bool) -> Result<()> {
    let root = workspace_root();
    let tools = root.join("target/tools");
    ensure_cargo_fuzz(&tools)?;
    for target in targets {
        run_target(&root, &tools, target, seconds, dev)
            .with_context(|| format!("fuzz target {target}"))?;
    }
    Ok(())
}

/// cargo-fuzz under `tools/bin`, skipped when already there.
fn ensure_cargo_fuzz(tools: &Path) -> Result<()> {
    if tools.join("bin/cargo-fuzz").is_file() {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz under {}", tools.display());
    run_checked(
        clean_command("cargo")
            .args(["install", "cargo-fuzz", "--locked", "--root"])
            .arg(tools),
        "cargo install cargo-fuzz",
    )
}

fn run_target(root: &Path, tools: &Path, target: &str, seconds: u64, dev: bool) -> Result<()> {
    let work = root.join("target/fuzz");
    let corpus = work.join("corpus").join(target);
    let artifacts = work.join("artifacts").join(target);
    for dir in [&corpus, &artifacts] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let seeds = root.join("fuzz/seeds").join(target);
    eprintln!("xtask: fuzzing {target} for {seconds} s");
    let mut cmd = clean_command("cargo");
    cmd.current_dir(root)
        .env("PATH", path_with(&tools.join("bin")))
        .env("CARGO_TARGET_DIR", work.join("build"))
        .args(["+nightly", "fuzz", "run", "--fuzz-dir", "fuzz"])
        // Safe Rust: panics and overflow checks are what the fuzzer looks
        // for; no sanitizer keeps the build and the runs fast.
        .args(["--sanitizer", "none", "--debug-assertions"])
        .args(dev.then_some("--dev"))
        .arg(target)
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-rss_limit_mb=2048")
        .arg("-timeout=10");
    run_checked(&mut cmd, "cargo fuzz run").with_context(|| {
        format!(
            "a crash leaves its input in {}: reproduce it with `cargo +nightly fuzz run --fuzz-dir fuzz {target} <file>` and make it a regression test",
            artifacts.display()
        )
    })
}

/// `PATH` with `dir` first.
fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut paths: Vec<PathBuf> = vec![dir.to_path_buf()];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).unwrap_or_default()
}
