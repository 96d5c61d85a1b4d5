//! egret's kernel programs loaded by the bench itself (through the agent's
//! own `Kernel` type), their maps filled to a size, and the kernel's
//! per-program run-time statistics.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context};
use egret::kernel::{netns_cookie_of, Kernel, PinDir};
use egret_common::{v4_mapped, ServiceKey, ENROLL_DNS, ENROLL_SERVICES};

/// Most entries `ENROLLED` can hold (its `max_entries` in the object).
pub const ENROLLED_MAX: usize = 65_536;

/// The bench's copy of the programs, attached at the cgroup v2 root; they
/// act only for namespaces this copy enrolls. Dropping it removes its
/// pinned objects (the programs detach).
pub struct BenchKernel {
    pub kernel: Kernel,
    pins: PinDir,
}

impl Drop for BenchKernel {
    fn drop(&mut self) {
        let _ = Kernel::remove_pinned(&self.pins);
    }
}

impl BenchKernel {
    /// Loads and attaches the object, pinned in a folder of the bench's own.
    pub fn load(object: &Path) -> anyhow::Result<BenchKernel> {
        let pins = pin_dir();
        let _ = Kernel::remove_pinned(&pins);
        let kernel =
            Kernel::load(Some(object), pins.clone()).context("loading egret's eBPF object")?;
        kernel
            .put_in_force()
            .context("attaching egret's eBPF programs")?;
        Ok(BenchKernel { kernel, pins })
    }

    /// Enrolls the namespace at `netns_path` (services and DNS).
    pub fn enroll(&self, netns_path: &str) -> anyhow::Result<u64> {
        let cookie = cookie_of(netns_path)?;
        self.kernel.enroll(cookie, ENROLL_SERVICES | ENROLL_DNS)?;
        Ok(cookie)
    }

    /// Makes SERVICES hold `vips` plus `extra` filler VIPs (port 80), and
    /// ENROLLED hold `keep` plus filler cookies up to `enrolled` entries.
    pub fn fill(
        &self,
        vips: &[[u8; 4]],
        extra: usize,
        keep: &[u64],
        enrolled: usize,
    ) -> anyhow::Result<()> {
        // The agent stores each VIP whole (port 0).
        let mut wanted: BTreeSet<IpAddr> = vips.iter().map(|v| IpAddr::from(*v)).collect();
        // Filler VIPs from 241.0.0.0/8 never collide with the bench's own.
        for i in 0..extra as u32 {
            let [_, b, c, d] = i.to_be_bytes();
            wanted.insert(IpAddr::from([241, b, c, d]));
        }
        self.kernel.sync_services(wanted)?;
        let current: BTreeSet<u64> = self
            .kernel
            .enrolled()?
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        // Filler cookies sit far above real ones (which count up from 1).
        let filler: BTreeSet<u64> = (0..enrolled.saturating_sub(keep.len()) as u64)
            .map(|i| (1 << 62) + i)
            .chain(keep.iter().copied())
            .collect();
        for c in current.difference(&filler) {
            self.kernel.unenroll(*c)?;
        }
        for c in filler.difference(&current) {
            self.kernel.enroll(*c, ENROLL_SERVICES | ENROLL_DNS)?;
        }
        Ok(())
    }
}

/// Where the bench's copy pins its objects.
fn pin_dir() -> PinDir {
    PinDir::new(format!("/sys/fs/bpf/egret/bench-{}", std::process::id()))
}

/// Where the bench's copy pins `ORIG_DST` (the capture listener consumes it).
pub fn orig_dst_pin() -> std::path::PathBuf {
    pin_dir().maps().join("ORIG_DST")
}

/// The SERVICES key of `addr:port`.
pub fn key(addr: [u8; 4], port: u16) -> ServiceKey {
    ServiceKey {
        addr: v4_mapped(addr),
        port,
        _pad: 0,
    }
}

/// The netns cookie of the namespace at `path`, read from a socket opened
/// inside it by a short-lived thread (setns affects only that thread).
fn cookie_of(path: &str) -> anyhow::Result<u64> {
    let path = path.to_string();
    std::thread::spawn(move || -> anyhow::Result<u64> {
        let ns = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
        // SAFETY: setns on this thread only, with an open netns fd.
        if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) } != 0 {
            bail!("setns {path}: {}", std::io::Error::last_os_error());
        }
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        Ok(netns_cookie_of(socket.as_fd())?)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("cookie thread panicked"))?
}

/// Turns on the kernel's per-program run-time statistics for as long as it
/// lives (BPF_ENABLE_STATS: the same switch as `sysctl
/// kernel.bpf_stats_enabled=1`, but it switches itself off when the fd
/// closes, even if the bench dies).
pub struct StatsOn(#[allow(dead_code)] OwnedFd);

impl StatsOn {
    /// Enables BPF_STATS_RUN_TIME.
    pub fn enable() -> anyhow::Result<StatsOn> {
        const BPF_ENABLE_STATS: libc::c_long = 32;
        let mut attr = [0u8; 128]; // union bpf_attr; enable_stats.type = BPF_STATS_RUN_TIME (0)
                                   // SAFETY: bpf(2) reads `size` bytes of attr.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_ENABLE_STATS,
                attr.as_mut_ptr(),
                attr.len(),
            )
        };
        if fd < 0 {
            bail!("BPF_ENABLE_STATS: {}", std::io::Error::last_os_error());
        }
        // SAFETY: the kernel returned a new fd we now own.
        Ok(StatsOn(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }
}

/// Run time and count of one program.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProgStats {
    pub run_time_ns: f64,
    pub run_cnt: f64,
}

/// The programs this process has loaded (prog ids from /proc/self/fdinfo).
pub fn own_program_ids() -> BTreeSet<u32> {
    let mut ids = BTreeSet::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/fdinfo") else {
        return ids;
    };
    for entry in dir.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        if let Some(id) = text
            .lines()
            .find_map(|l| l.strip_prefix("prog_id:"))
            .and_then(|v| v.trim().parse().ok())
        {
            ids.insert(id);
        }
    }
    ids
}

/// `bpftool prog show id N --json` for each id: name -> stats.
pub fn prog_stats(ids: &BTreeSet<u32>) -> anyhow::Result<BTreeMap<String, ProgStats>> {
    let mut out = BTreeMap::new();
    for id in ids {
        let o = std::process::Command::new("bpftool")
            .args(["prog", "show", "id", &id.to_string(), "--json"])
            .output()
            .context("bpftool")?;
        if !o.status.success() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
        let name = v["name"].as_str().unwrap_or_default().to_string();
        if !name.starts_with("egret_") {
            continue;
        }
        out.insert(
            name,
            ProgStats {
                run_time_ns: v["run_time_ns"].as_f64().unwrap_or(0.0),
                run_cnt: v["run_cnt"].as_f64().unwrap_or(0.0),
            },
        );
    }
    Ok(out)
}
