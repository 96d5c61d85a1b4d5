//! `cargo xtask build-ebpf`: provisions what the kernel programs need on a
//! fresh machine (idempotently), then builds them.
//!
//! Steps, as in the project's TOOLCHAIN notes: nightly `rust-src` (for
//! `-Z build-std=core`); `bpf-linker` built against the nightly toolchain's
//! own LLVM and installed under `target/tools`; then the `egret-ebpf` crate
//! for `bpfel-unknown-none` into `target/ebpf`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::prereq::workspace_root;

/// The toolchain the kernel crate needs (`-Z build-std`).
const NIGHTLY: &str = "nightly";
/// The kernel target.
const TARGET: &str = "bpfel-unknown-none";
/// Cargo feature of bpf-linker matching the nightly toolchain's LLVM.
const LINKER_LLVM_FEATURE: &str = "llvm-22";
/// Prefix and suffix of the nightly toolchain's LLVM shared library name
/// (e.g. `libLLVM.so.22.1-rust-1.97.0-nightly`); globbed, not hard-coded.
const LIBLLVM_PREFIX: &str = "libLLVM.so.22";
const LIBLLVM_SUFFIX: &str = "-nightly";

/// Environment a parent cargo (`cargo xtask` is `cargo run`) may leave that
/// would steer the nested builds to the wrong toolchain or target dir.
const SCRUBBED_ENV: &[&str] = &[
    "RUSTC",
    "RUSTDOC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTUP_TOOLCHAIN",
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
];

/// Runs every step and returns the path of the built eBPF object.
pub fn run() -> Result<PathBuf> {
    let root = workspace_root();
    ensure_rust_src()?;
    let tools = root.join("target/tools");
    ensure_bpf_linker(&tools)?;
    build_programs(&root, &tools)
}

/// `<workspace>/target/ebpf/bpfel-unknown-none/release/egret-ebpf`: where
/// the agent's build script looks for the object.
pub fn object_path(root: &Path) -> PathBuf {
    root.join("target/ebpf")
        .join(TARGET)
        .join("release/egret-ebpf")
}

/// A command with the parent cargo's steering variables removed.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd
}

pub fn run_checked(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("{what}: could not start {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{what} failed ({status}): {cmd:?}");
    }
    Ok(())
}

fn output_checked(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: could not start {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The nightly toolchain's sysroot; the clearest place to fail when nightly
/// itself is missing.
fn nightly_sysroot() -> Result<PathBuf> {
    let sysroot = output_checked(
        clean_command("rustc").args([&format!("+{NIGHTLY}"), "--print", "sysroot"]),
        "finding the nightly toolchain",
    )
    .with_context(|| {
        format!(
            "the eBPF programs need the `{NIGHTLY}` Rust toolchain (rustup toolchain install {NIGHTLY})"
        )
    })?;
    Ok(PathBuf::from(sysroot))
}

/// Step 1: nightly `rust-src`, skipped when the library sources are there.
fn ensure_rust_src() -> Result<()> {
    let sysroot = nightly_sysroot()?;
    if sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
        return Ok(());
    }
    eprintln!("xtask: adding rust-src to the {NIGHTLY} toolchain");
    run_checked(
        clean_command("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]),
        "rustup component add rust-src",
    )
    .context("`-Z build-std=core` needs the nightly rust-src component")
}

/// Step 2: bpf-linker under `tools/bin`, built against nightly's LLVM;
/// skipped when already installed.
fn ensure_bpf_linker(tools: &Path) -> Result<()> {
    if tools.join("bin/bpf-linker").is_file() {
        return Ok(());
    }
    let nightly_lib = nightly_sysroot()?.join("lib");
    let libllvm = find_libllvm(&nightly_lib)?;
    // bpf-linker's build finds LLVM as `$LLVM_PREFIX/lib/libLLVM.so`.
    let llvm_prefix = tools.join("llvm");
    let llvm_lib = llvm_prefix.join("lib");
    std::fs::create_dir_all(&llvm_lib)
        .with_context(|| format!("creating {}", llvm_lib.display()))?;
    let link = llvm_lib.join("libLLVM.so");
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(&link).with_context(|| format!("replacing {}", link.display()))?;
    }
    std::os::unix::fs::symlink(&libllvm, &link)
        .with_context(|| format!("linking {} to {}", link.display(), libllvm.display()))?;
    eprintln!(
        "xtask: installing bpf-linker into {} against {}",
        tools.display(),
        libllvm.display()
    );
    run_checked(
        clean_command("cargo")
            .args(["install", "bpf-linker", "--root"])
            .arg(tools)
            .args(["--no-default-features", "--features", LINKER_LLVM_FEATURE])
            .env("LLVM_PREFIX", &llvm_prefix),
        "cargo install bpf-linker",
    )
    .context("bpf-linker is needed to link the eBPF programs (it needs crates.io and the nightly toolchain's libLLVM)")
}

/// The nightly toolchain's `libLLVM.so.22*-nightly`.
fn find_libllvm(nightly_lib: &Path) -> Result<PathBuf> {
    let entries = std::fs::read_dir(nightly_lib)
        .with_context(|| format!("reading {}", nightly_lib.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(LIBLLVM_PREFIX) && n.ends_with(LIBLLVM_SUFFIX))
        })
        .collect();
    found.sort();
    found.pop().with_context(|| {
        format!(
            "no {LIBLLVM_PREFIX}*{LIBLLVM_SUFFIX} in {}: bpf-linker ({LINKER_LLVM_FEATURE}) needs the nightly toolchain's LLVM 22",
            nightly_lib.display()
        )
    })
}

/// Step 3: the kernel crate, with `tools/bin` first on PATH for the linker.
fn build_programs(root: &Path, tools: &Path) -> Result<PathBuf> {
    let mut path = OsString::from(tools.join("bin"));
    if let Some(old) = std::env::var_os("PATH") {
        path.push(":");
        path.push(old);
    }
    run_checked(
        clean_command("cargo")
            .current_dir(root.join("ebpf/egret-ebpf"))
            .args([
                &format!("+{NIGHTLY}"),
                "build",
                "--locked",
                "-Z",
                "build-std=core",
                "--target",
                TARGET,
                "--release",
                "--target-dir",
            ])
            .arg(root.join("target/ebpf"))
            .env("PATH", path),
        "building the eBPF programs",
    )?;
    let object = object_path(root);
    if !object.is_file() {
        bail!(
            "the eBPF build succeeded but {} is missing",
            object.display()
        );
    }
    Ok(object)
}
