//! Where an agent instance keeps its kernel objects in bpffs, so they
//! outlive the process: the programs keep enforcing while no agent runs,
//! and the next agent takes them over.
//!
//! ```text
//! <pin dir>/links/<program>   one bpf_link per program (attached at the cgroup v2 root)
//! <pin dir>/v<MAPS_ABI>/<MAP> every map, by name
//! ```
//! One folder per instance (several agents, e.g. tests, run side by side).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use egret_common::MAPS_ABI;

use super::error::KernelError;

/// Where bpffs is mounted on every distribution egret supports.
pub const BPFFS: &str = "/sys/fs/bpf";
/// `statfs` magic of bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// Longest instance name taken from a path as is (bpffs names are ≤ 255).
const MAX_NAME: usize = 120;

/// The bpffs folder of one agent instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinDir(PathBuf);

impl PinDir {
    /// The folder at `path` (e.g. from `--bpf-pin-dir`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        PinDir(path.into())
    }

    /// The default folder of the agent whose state lives in `state_dir`:
    /// `/sys/fs/bpf/egret/<state dir, / and . as _>` (a hash when too long), the
    /// same across restarts and upgrades of that agent.
    pub fn for_state_dir(state_dir: &Path) -> Self {
        let absolute = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.into());
        PinDir(
            Path::new(BPFFS)
                .join("egret")
                .join(instance_name(&absolute)),
        )
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Maps of the current layout.
    pub fn maps(&self) -> PathBuf {
        self.0.join(format!("v{MAPS_ABI}"))
    }

    /// Links, one file per program.
    pub fn links(&self) -> PathBuf {
        self.0.join("links")
    }

    /// The pinned link of `program`.
    pub fn link(&self, program: &str) -> PathBuf {
        self.links().join(program)
    }

    /// Whether an agent left kernel objects here (links pinned).
    pub fn has_links(&self) -> bool {
        std::fs::read_dir(self.links()).is_ok_and(|mut d| d.next().is_some())
    }

    /// Map folders of other layouts, left by an older (or newer) agent.
    pub fn stale_map_dirs(&self) -> Vec<PathBuf> {
        let current = self.maps();
        std::fs::read_dir(&self.0)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p != &current
                    && p.file_name()
                        .is_some_and(|n| n.as_bytes().starts_with(b"v"))
            })
            .collect()
    }

    /// Creates the folders (bpffs mounted first when it is not).
    pub fn create(&self) -> Result<(), KernelError> {
        ensure_bpffs()?;
        for dir in [self.maps(), self.links()] {
            std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        }
        Ok(())
    }

    /// Removes every pinned object of the instance: links first (the
    /// programs detach), then the maps. Missing files are fine.
    pub fn remove_all(&self) -> Result<(), KernelError> {
        remove_tree(&self.links())?;
        let dirs: Vec<PathBuf> = std::fs::read_dir(&self.0)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        for dir in dirs {
            remove_tree(&dir)?;
        }
        match std::fs::remove_dir(&self.0) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io(format!("remove {}", self.0.display()))(e))
            }
            _ => Ok(()),
        }
    }
}

/// Removes the files of `dir` and `dir` itself (bpffs: one level deep).
pub fn remove_tree(dir: &Path) -> Result<(), KernelError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        std::fs::remove_file(&path).map_err(io(format!("unpin {}", path.display())))?;
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(io(format!("remove {}", dir.display()))(e))
        }
        _ => Ok(()),
    }
}

/// `etc_egret_config__egret` for `/etc/egret/config/.egret`.
fn instance_name(path: &Path) -> String {
    let text = path.to_string_lossy();
    let name: String = text
        .trim_start_matches('/')
        .chars()
        // bpffs refuses names with a dot (they are its own files').
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        return "root".into();
    }
    if name.len() <= MAX_NAME {
        return name;
    }
    // FNV-1a: stable across builds (std's hashers promise no such thing).
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}-{hash:016x}", &name[name.len() - 60..])
}

/// Mounts bpffs at `/sys/fs/bpf` unless one is there.
fn ensure_bpffs() -> Result<(), KernelError> {
    let target = CString::new(BPFFS).expect("no NUL");
    // SAFETY: statfs fills the struct it is given.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a valid out-pointer.
    if unsafe { libc::statfs(target.as_ptr(), &mut st) } == 0 && st.f_type as i64 == BPF_FS_MAGIC {
        return Ok(());
    }
    std::fs::create_dir_all(BPFFS).map_err(io(format!("create {BPFFS}")))?;
    let fstype = CString::new("bpf").expect("no NUL");
    // SAFETY: valid C strings; no data argument.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io(format!("mount bpffs at {BPFFS}"))(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> KernelError {
    move |source| KernelError::Io { what, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_are_readable_and_stable() {
        assert_eq!(
            instance_name(Path::new("/etc/egret/config/.egret")),
            "etc_egret_config__egret"
        );
        assert_eq!(instance_name(Path::new("/var/lib/egret")), "var_lib_egret");
        let long = format!("/tmp/{}", "a/".repeat(100));
        let name = instance_name(Path::new(&long));
        assert!(name.len() < 100, "{name}");
        assert_eq!(name, instance_name(Path::new(&long)));
        assert_ne!(name, instance_name(Path::new(&format!("{long}b"))));
    }

    #[test]
    fn layout() {
        let pins = PinDir::new("/sys/fs/bpf/egret/x");
        assert_eq!(
            pins.maps(),
            Path::new(&format!("/sys/fs/bpf/egret/x/v{MAPS_ABI}"))
        );
        assert_eq!(
            pins.link("egret_connect4"),
            Path::new("/sys/fs/bpf/egret/x/links/egret_connect4")
        );
    }
}
