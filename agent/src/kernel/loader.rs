//! Loading the kernel programs and attaching them once at the cgroup v2 root.

use std::borrow::Cow;
use std::fs::File;
use std::path::Path;

use aya::programs::{CgroupAttachMode, CgroupSockAddr, SockOps};
use aya::{Ebpf, EbpfLoader};

use super::cgroup::cgroup2_root;
use super::error::KernelError;

/// The cgroup `sock_addr` programs: connect, unconnected UDP send, and the
/// receive hook that restores DNS replies' source.
const SOCK_ADDR_PROGRAMS: [&str; 6] = [
    "egret_connect4",
    "egret_connect6",
    "egret_sendmsg4",
    "egret_sendmsg6",
    "egret_recvmsg4",
    "egret_recvmsg6",
];
/// Files each captured TCP flow's original destination under its flow key.
const SOCK_OPS_PROGRAM: &str = "egret_sockops";
/// See the attach loop: with bpf_link this is multi-attach.
const ATTACH_MODE: CgroupAttachMode = CgroupAttachMode::Single;
/// aya-log's level switch in the object; records above it are not even
/// formatted in the kernel.
const LOG_LEVEL_GLOBAL: &str = "AYA_LOG_LEVEL";

/// Loads the object (embedded, or `object`) and attaches every program at
/// the cgroup v2 root. The links live in the returned `Ebpf`: dropping it
/// detaches them.
pub fn load_and_attach(object: Option<&Path>) -> Result<Ebpf, KernelError> {
    let bytes: Cow<'static, [u8]> = match object {
        Some(path) => {
            Cow::Owned(
                std::fs::read(path).map_err(|source| KernelError::ReadObject {
                    path: path.to_path_buf(),
                    source,
                })?,
            )
        }
        None => Cow::Borrowed(embedded()?),
    };
    // `log::LevelFilter` and aya-log's levels share numbering (Off = 0 …
    // Trace = 5); take whatever the agent's logger lets through.
    let level = log::max_level() as usize as u8;
    let mut ebpf = EbpfLoader::new()
        .override_global(LOG_LEVEL_GLOBAL, &level, false)
        .load(&bytes)
        .map_err(|e| KernelError::Load(Box::new(e)))?;

    let root = cgroup2_root()?;
    let cgroup = File::open(&root).map_err(|source| KernelError::Io {
        what: format!("opening the cgroup v2 root {}", root.display()),
        source,
    })?;
    // Other agents (and tests) attach their own copies at the same root; each
    // acts only for the namespaces in its own ENROLLED map. aya attaches with
    // a bpf_link (kernel 5.7+), which the kernel always treats as
    // multi-attach and which rejects the BPF_F_ALLOW_MULTI flag that
    // `AllowMultiple` would pass (EINVAL), so `Single` (flags 0) is the
    // multi-attach mode here.
    for name in SOCK_ADDR_PROGRAMS {
        let prog: &mut CgroupSockAddr = program(&mut ebpf, name)?
            .try_into()
            .map_err(KernelError::program(name))?;
        prog.load().map_err(KernelError::program(name))?;
        prog.attach(&cgroup, ATTACH_MODE)
            .map_err(KernelError::program(name))?;
    }
    let prog: &mut SockOps = program(&mut ebpf, SOCK_OPS_PROGRAM)?
        .try_into()
        .map_err(KernelError::program(SOCK_OPS_PROGRAM))?;
    prog.load()
        .map_err(KernelError::program(SOCK_OPS_PROGRAM))?;
    prog.attach(&cgroup, ATTACH_MODE)
        .map_err(KernelError::program(SOCK_OPS_PROGRAM))?;
    Ok(ebpf)
}

fn program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut aya::programs::Program, KernelError> {
    ebpf.program_mut(name).ok_or(KernelError::Missing {
        kind: "program",
        name,
    })
}

/// The object `cargo xtask build-ebpf` built, embedded by build.rs.
#[cfg(egret_bpf_embedded)]
fn embedded() -> Result<&'static [u8], KernelError> {
    Ok(aya::include_bytes_aligned!(env!("EGRET_BPF_EMBED_PATH")))
}

/// No object was built when the agent was compiled.
#[cfg(not(egret_bpf_embedded))]
fn embedded() -> Result<&'static [u8], KernelError> {
    Err(KernelError::NotEmbedded)
}
