//! `egret cleanup`: removes every trace an agent instance leaves on
//! purpose when it stops with workloads still running (so that the kernel
//! keeps enforcing until the next agent takes over): the pinned programs
//! (they detach), maps, `egret exec` workloads (their processes are
//! killed), and the pod network.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::control::protocol::SOCKET_NAME;
use crate::kernel::{Kernel, PinDir};
use crate::workload::podnet;
use crate::workload::record::{remove_leftovers, workloads_dir, WorkloadRecord};

/// Arguments of `egret cleanup`.
#[derive(Debug, clap::Args)]
pub struct CleanupArgs {
    /// The agent's bpffs folder, when `egret run` was given `--bpf-pin-dir`.
    #[arg(long, env = "EGRET_BPF_PIN_DIR")]
    pub bpf_pin_dir: Option<PathBuf>,
    /// The bridge `egret run --bridge` used.
    #[arg(long, default_value = "egret0")]
    pub bridge: String,
}

/// Removes everything; refuses while an agent serves the folder.
pub fn run(config_dir: &Path, state_dir: &Path, args: CleanupArgs) -> anyhow::Result<()> {
    if std::os::unix::net::UnixStream::connect(state_dir.join(SOCKET_NAME)).is_ok() {
        bail!(
            "an egret agent is running on {}: stop it first",
            config_dir.display()
        );
    }
    let pins = match args.bpf_pin_dir {
        Some(dir) => PinDir::new(dir),
        None => PinDir::for_state_dir(state_dir),
    };
    for (record, dir) in WorkloadRecord::load_all(state_dir) {
        // Killed first: nothing of the workload runs uncaptured once the
        // programs detach below.
        remove_leftovers(&record, &dir);
        println!("workload {}/{} removed", record.namespace, record.name);
    }
    let _ = std::fs::remove_dir_all(workloads_dir(state_dir));
    Kernel::remove_pinned(&pins)?;
    println!(
        "kernel programs and maps in {} removed",
        pins.path().display()
    );
    podnet::remove(&args.bridge);
    Ok(())
}
