//! What the tests and the demo need on the machine, installed when missing.

use std::process::{Command, ExitStatus};

use anyhow::{bail, Context};

/// Debian packages the end-to-end tests and the demo run: real curl, real
/// httpbin (behind gunicorn), real dnsmasq, iproute2 and nsenter for the
/// namespaces, nftables for the pod network's masquerade, openssl for test
/// certificates.
pub const PACKAGES: &[&str] = &[
    "curl",
    "python3-httpbin",
    "gunicorn",
    "dnsmasq-base",
    "iproute2",
    "util-linux",
    "nftables",
    "openssl",
];

/// Installs whichever of `packages` is missing (apt-get; needs root).
pub fn ensure_packages(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    require_root("installing packages")?;
    eprintln!("xtask: installing {}", missing.join(" "));
    run("apt-get", &["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&missing);
    let status = Command::new("apt-get")
        .args(&args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("apt-get")?;
    if !status.success() {
        bail!("could not install {}: apt-get failed", missing.join(" "));
    }
    Ok(())
}

/// Fails unless running as root: eBPF and network namespaces need it.
pub fn require_root(why: &str) -> anyhow::Result<()> {
    let out = Command::new("id").arg("-u").output().context("id -u")?;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        bail!("{why} needs root (eBPF programs, network namespaces): run as root, e.g. `sudo -E cargo xtask …`");
    }
    Ok(())
}

/// Runs a command that must succeed.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

/// Runs `cargo ARGS` from the workspace root; it must succeed.
pub fn cargo(args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<()> {
    let status = cargo_status(args, envs)?;
    if !status.success() {
        bail!("`cargo {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

/// Runs `cargo ARGS` from the workspace root (the cargo that started this
/// task, when there is one) and returns how it ended.
pub fn cargo_status(args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<ExitStatus> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    // `cargo run` hands this process its package's CARGO_MANIFEST_DIR,
    // CARGO_PKG_*, ...; build scripts (ring's) track some of them, so passing
    // them on made every nested build dirty against a plain `cargo build`.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_package_variable) {
            cmd.env_remove(name);
        }
    }
    cmd.args(args)
        .envs(envs.iter().copied())
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("cannot run {cargo}"))
}

/// A variable cargo sets for one package's build or run, not for the user.
fn is_package_variable(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_MANIFEST_")
        || matches!(
            name,
            "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
        )
}

/// The workspace's root folder.
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::is_package_variable;

    #[test]
    fn nested_cargo_drops_the_package_variables_but_keeps_the_users() {
        for set_by_cargo_run in ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME", "CARGO_CRATE_NAME"] {
            assert!(is_package_variable(set_by_cargo_run), "{set_by_cargo_run}");
        }
        for the_users in ["CARGO_HOME", "CARGO_TARGET_DIR", "CARGO", "RUSTFLAGS"] {
            assert!(!is_package_variable(the_users), "{the_users}");
        }
    }
}
