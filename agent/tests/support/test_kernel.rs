#![allow(dead_code)] // shared by several test binaries; each uses part of it
//! egret's kernel programs for a privileged test: loaded, in force at the
//! cgroup v2 root, pinned in a bpffs folder of the test's own, and removed
//! (programs detached, maps gone) when the handle drops — also when an
//! assertion fails.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use egret::kernel::{Kernel, PinDir};

/// The programs in force, removed on drop.
pub struct TestKernel {
    pub kernel: std::sync::Arc<Kernel>,
    pub pins: PinDir,
}

impl std::ops::Deref for TestKernel {
    type Target = Kernel;
    fn deref(&self) -> &Kernel {
        &self.kernel
    }
}

impl Drop for TestKernel {
    fn drop(&mut self) {
        let _ = Kernel::remove_pinned(&self.pins);
    }
}

/// Removes a bpffs folder's pinned objects when dropped (tests that load
/// and drop several `Kernel`s on one folder).
pub struct PinsGuard(pub PinDir);

impl Drop for PinsGuard {
    fn drop(&mut self) {
        let _ = Kernel::remove_pinned(&self.0);
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A bpffs folder no other test (or test process) uses.
pub fn test_pins(tag: &str) -> PinDir {
    PinDir::new(format!(
        "/sys/fs/bpf/egret/test-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Loads the programs into `pins` (the built object, or `EGRET_BPF_OBJECT`)
/// without attaching them, or fails the test with what to do.
pub fn load_into(pins: &PinDir, test: &str) -> Kernel {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "{test} loads eBPF programs and creates network namespaces: run it as root"
    );
    let object = std::env::var_os("EGRET_BPF_OBJECT").map(PathBuf::from);
    Kernel::load(object.as_deref(), pins.clone()).unwrap_or_else(|e| {
        panic!("cannot load egret's eBPF programs (run `cargo xtask build-ebpf` first, or set EGRET_BPF_OBJECT): {e}")
    })
}

/// Loads the programs and puts them in force.
pub fn load_kernel(test: &str) -> TestKernel {
    let pins = test_pins(test);
    let _ = Kernel::remove_pinned(&pins);
    let kernel = load_into(&pins, test);
    kernel.put_in_force().expect("attach the programs");
    TestKernel {
        kernel: std::sync::Arc::new(kernel),
        pins,
    }
}
