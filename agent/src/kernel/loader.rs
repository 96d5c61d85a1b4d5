//! Loading the kernel programs with their maps pinned, and putting them in
//! force at the cgroup v2 root: attached (and the link pinned) the first
//! time, swapped in place of the running ones (`BPF_LINK_UPDATE`) when an
//! earlier agent of the same instance left its links pinned.

use std::borrow::Cow;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use aya::programs::links::FdLink;
use aya::programs::{CgroupAttachMode, CgroupSkbAttachType, Program};
use aya::{Ebpf, EbpfLoader};

use super::bpf_sys;
use super::cgroup::cgroup2_root;
use super::error::KernelError;
use super::pins::PinDir;

/// Every program, in the order they are put in force. The packet and socket
/// programs come before the connect hooks, so that by the time a workload
/// can be refused at connect, its sockets are already being tracked.
pub const PROGRAMS: [&str; 10] = [
    "egret_sock_create",
    "egret_sock_release",
    "egret_egress",
    "egret_sockops",
    "egret_recvmsg4",
    "egret_recvmsg6",
    "egret_sendmsg4",
    "egret_sendmsg6",
    "egret_connect4",
    "egret_connect6",
];
/// With bpf_link (kernel 5.7+) cgroup attachment is always multi-attach
/// (other agents, tests, other tools keep theirs); the kernel rejects the
/// BPF_F_ALLOW_MULTI flag that `AllowMultiple` would pass, so `Single`
/// (flags 0) is the multi-attach mode here.
const ATTACH_MODE: CgroupAttachMode = CgroupAttachMode::Single;
/// aya-log's level switch in the object; records above it are not even
/// formatted in the kernel.
const LOG_LEVEL_GLOBAL: &str = "AYA_LOG_LEVEL";

/// How a program was put in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Attached afresh, its link pinned.
    Attached,
    /// Swapped in place of the program behind an existing pinned link.
    Swapped,
}

/// Loads the object (embedded, or `object`) into the kernel, its maps
/// pinned under `pins` (reused when a compatible set is already there).
/// Nothing is attached yet: see [`put_in_force`].
pub fn load(object: Option<&Path>, pins: &PinDir) -> Result<Ebpf, KernelError> {
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
    pins.create()?;
    // `log::LevelFilter` and aya-log's levels share numbering (Off = 0 …
    // Trace = 5); take whatever the agent's logger lets through.
    let level = log::max_level() as usize as u8;
    let mut ebpf = EbpfLoader::new()
        .override_global(LOG_LEVEL_GLOBAL, &level, false)
        .default_map_pin_directory(pins.maps())
        .load(&bytes)
        .map_err(|e| KernelError::Load(Box::new(e)))?;
    for name in PROGRAMS {
        load_program(program(&mut ebpf, name)?, name)?;
    }
    Ok(ebpf)
}

/// Puts every program in force at the cgroup v2 root: a program with a
/// pinned link replaces the one behind it atomically; one without is
/// attached and its link pinned. Links of programs this object no longer
/// has are removed.
pub fn put_in_force(
    ebpf: &mut Ebpf,
    pins: &PinDir,
) -> Result<Vec<(&'static str, Placement)>, KernelError> {
    let root = cgroup2_root()?;
    let cgroup = File::open(&root).map_err(|source| KernelError::Io {
        what: format!("opening the cgroup v2 root {}", root.display()),
        source,
    })?;
    let mut placed = Vec::new();
    for name in PROGRAMS {
        let prog = program(ebpf, name)?;
        let path = pins.link(name);
        let placement = match bpf_sys::obj_get(&path) {
            Ok(link) => {
                let fd = prog.fd().map_err(KernelError::program(name))?;
                bpf_sys::link_update(&link, fd.as_fd()).map_err(|source| KernelError::Io {
                    what: format!("swap {name} behind its pinned link {}", path.display()),
                    source,
                })?;
                Placement::Swapped
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let link = attach(prog, name, &cgroup)?;
                link.pin(&path).map_err(|e| KernelError::Io {
                    what: format!("pin the link of {name} at {}", path.display()),
                    source: std::io::Error::other(e.to_string()),
                })?;
                Placement::Attached
            }
            Err(source) => {
                return Err(KernelError::Io {
                    what: format!("open the pinned link {}", path.display()),
                    source,
                })
            }
        };
        placed.push((name, placement));
    }
    remove_unknown_links(pins)?;
    Ok(placed)
}

fn load_program(prog: &mut Program, name: &'static str) -> Result<(), KernelError> {
    let err = KernelError::program;
    match prog {
        Program::CgroupSockAddr(p) => p.load().map_err(err(name)),
        Program::SockOps(p) => p.load().map_err(err(name)),
        Program::CgroupSock(p) => p.load().map_err(err(name)),
        Program::CgroupSkb(p) => p.load().map_err(err(name)),
        _ => Err(KernelError::Missing {
            kind: "program of a known type",
            name,
        }),
    }
}

/// Attaches `prog` at `cgroup` and hands its link over (not detached when
/// the program handle goes).
fn attach(prog: &mut Program, name: &'static str, cgroup: &File) -> Result<FdLink, KernelError> {
    let err = KernelError::program;
    let link_err = |e: aya::programs::links::LinkError| KernelError::Io {
        what: format!("take the link of {name}"),
        source: std::io::Error::other(e.to_string()),
    };
    match prog {
        Program::CgroupSockAddr(p) => {
            let id = p.attach(cgroup, ATTACH_MODE).map_err(err(name))?;
            FdLink::try_from(p.take_link(id).map_err(err(name))?).map_err(link_err)
        }
        Program::SockOps(p) => {
            let id = p.attach(cgroup, ATTACH_MODE).map_err(err(name))?;
            FdLink::try_from(p.take_link(id).map_err(err(name))?).map_err(link_err)
        }
        Program::CgroupSock(p) => {
            let id = p.attach(cgroup, ATTACH_MODE).map_err(err(name))?;
            FdLink::try_from(p.take_link(id).map_err(err(name))?).map_err(link_err)
        }
        Program::CgroupSkb(p) => {
            let id = p
                .attach(cgroup, CgroupSkbAttachType::Egress, ATTACH_MODE)
                .map_err(err(name))?;
            FdLink::try_from(p.take_link(id).map_err(err(name))?).map_err(link_err)
        }
        _ => Err(KernelError::Missing {
            kind: "program of a known type",
            name,
        }),
    }
}

/// Unpins (and so detaches) links of programs not in [`PROGRAMS`].
fn remove_unknown_links(pins: &PinDir) -> Result<(), KernelError> {
    let Ok(entries) = std::fs::read_dir(pins.links()) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let known = entry
            .file_name()
            .to_str()
            .is_some_and(|n| PROGRAMS.contains(&n));
        if !known {
            std::fs::remove_file(entry.path()).map_err(|source| KernelError::Io {
                what: format!("unpin the stale link {}", entry.path().display()),
                source,
            })?;
        }
    }
    Ok(())
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Program, KernelError> {
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
