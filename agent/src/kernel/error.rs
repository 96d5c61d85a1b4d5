//! Why loading the kernel programs or using their maps failed.

use std::path::PathBuf;

/// Errors of the `kernel` module.
#[derive(thiserror::Error, Debug)]
pub enum KernelError {
    /// No object was embedded at build time and none was given.
    #[error("egret was built without its eBPF programs: run `cargo xtask build-ebpf` and rebuild, or pass --bpf-object PATH")]
    NotEmbedded,
    /// The object file given with `--bpf-object` could not be read.
    #[error("cannot read the eBPF object {path}: {source}")]
    ReadObject {
        /// The file that was given.
        path: PathBuf,
        /// Why reading it failed.
        source: std::io::Error,
    },
    /// The kernel refused the object's maps or BTF.
    #[error("loading the eBPF object failed (egret needs root or CAP_BPF + CAP_NET_ADMIN + CAP_SYS_ADMIN): {}", chain(.0.as_ref()))]
    Load(#[source] Box<aya::EbpfError>),
    /// The object lacks a program or map this agent expects (wrong build).
    #[error(
        "the eBPF object has no {kind} named {name}: rebuild it with `cargo xtask build-ebpf`"
    )]
    Missing {
        /// "program" or "map".
        kind: &'static str,
        /// The expected name.
        name: &'static str,
    },
    /// The verifier rejected a program, or attaching it failed.
    #[error("eBPF program {name}: {}", chain(source.as_ref()))]
    Program {
        /// The program's function name.
        name: &'static str,
        /// What the kernel said (the verifier log for a rejected load).
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// A map could not be opened or an operation on it failed.
    #[error("eBPF map {name}: {}", chain(source.as_ref()))]
    Map {
        /// The map's name.
        name: &'static str,
        /// The failed operation.
        #[source]
        source: Box<aya::maps::MapError>,
    },
    /// No cgroup v2 hierarchy is mounted, so the programs cannot be attached.
    #[error("no cgroup v2 (cgroup2) mount in /proc/self/mountinfo: mount one (e.g. `mount -t cgroup2 none /sys/fs/cgroup`)")]
    NoCgroup2,
    /// Reading the mount table or opening the cgroup directory failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl KernelError {
    /// Wraps a map error with the map's name.
    pub(crate) fn map(name: &'static str) -> impl FnOnce(aya::maps::MapError) -> KernelError {
        move |source| KernelError::Map {
            name,
            source: Box::new(source),
        }
    }

    /// Wraps a program error with the program's name.
    pub(crate) fn program(
        name: &'static str,
    ) -> impl FnOnce(aya::programs::ProgramError) -> KernelError {
        move |source| KernelError::Program {
            name,
            source: Box::new(source),
        }
    }
}

/// An error and its causes on one line: aya's errors keep the OS error
/// (EPERM, EINVAL, …) in their source, which is what a user needs to see.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
