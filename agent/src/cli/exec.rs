//! `egret exec -n NS [--service-account SA] -- CMD…`: runs CMD as a mesh
//! workload, in its own network namespace and cgroup, like a pod on a node.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};

use crate::control::{ControlClient, Request, Response};

/// Arguments of `egret exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Namespace of the workload (enrolled when it carries istio.io/dataplane-mode=ambient).
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Service account the workload runs as (its SPIFFE identity).
    #[arg(
        long = "service-account",
        visible_alias = "sa",
        default_value = "default"
    )]
    pub service_account: String,
    /// Workload name shown in access logs (default: `<service account>-<id>`).
    #[arg(long)]
    pub name: Option<String>,
    /// Give the workload a capability beyond a pod's default set
    /// (`NET_ADMIN`, `SYS_PTRACE`, … or `ALL`; repeatable). By default it
    /// runs with the set a pod gets (no NET_ADMIN, SYS_ADMIN, BPF, …).
    #[arg(long = "cap-add", value_name = "CAPABILITY")]
    pub cap_add: Vec<String>,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Runs the command; the exit code is the command's (128+N when killed by
/// signal N). The workload is torn down by the agent when this process's
/// control connection closes, however it ends.
pub fn run(config_dir: &Path, state_dir: &Path, args: ExecArgs) -> anyhow::Result<ExitCode> {
    let caps = crate::workload::caps::workload_set(&args.cap_add).map_err(anyhow::Error::msg)?;
    let mut client = ControlClient::connect(config_dir, state_dir)?;
    let request = Request::CreateWorkload {
        namespace: args.namespace.clone(),
        service_account: args.service_account.clone(),
        name: args.name.clone(),
    };
    let Response::Workload(workload) = client.call(&request)? else {
        bail!("agent answered the workload request with something else");
    };
    let entry = Entry::open(
        &workload.netns,
        &workload.cgroup,
        &workload.resolv_conf,
        config_dir,
        caps,
    )?;
    let mut command = Command::new(&args.command[0]);
    command.args(&args.command[1..]);
    // SAFETY: the closure only makes raw system calls on values prepared
    // before fork (no allocation, no locks).
    unsafe {
        command.pre_exec(move || entry.enter());
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {:?}", args.command[0]))?;
    // The terminal's Ctrl-C reaches the command; we wait to report its status.
    // SAFETY: setting a signal disposition to SIG_IGN.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
    let status = child.wait().context("waiting for the command")?;
    // Wait for the teardown so nothing of the workload outlives this command.
    release(client, config_dir, state_dir, workload.id);
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        _ => 1,
    };
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Asks the agent to tear the workload down. The agent that made it may
/// have been restarted meanwhile (the connection is then gone): the one
/// running now took the workload over and releases it on request. With no
/// agent at all, the next one removes it when it starts.
fn release(mut client: ControlClient, config_dir: &Path, state_dir: &Path, id: u64) {
    let request = Request::ReleaseWorkload { id };
    if client.call(&request).is_ok() {
        return;
    }
    drop(client);
    let again = ControlClient::connect(config_dir, state_dir).and_then(|mut c| c.call(&request));
    if let Err(e) = again {
        eprintln!("egret: workload teardown not confirmed: {e}");
    }
}

/// Paths a workload sees read-only in its mount namespace: what the agent
/// runs on (manifests and state), its kernel objects and the cgroup tree
/// (the workload could otherwise rewrite policy or move itself).
const READ_ONLY: [&str; 2] = ["/sys/fs/bpf", "/sys/fs/cgroup"];

/// Everything the child needs to become the workload, opened before fork
/// (between fork and exec only raw system calls on these run).
struct Entry {
    netns: File,
    cgroup_procs: File,
    resolv_conf: CString,
    target: CString,
    root: CString,
    read_only: Vec<CString>,
    /// Capabilities to keep (bit N = capability N).
    caps: u64,
    /// Highest capability number the kernel knows.
    last_cap: u32,
}

impl Entry {
    fn open(
        netns: &Path,
        cgroup: &Path,
        resolv_conf: &Path,
        config_dir: &Path,
        caps: u64,
    ) -> anyhow::Result<Self> {
        let cstr =
            |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).context("path with NUL");
        let config_dir = std::fs::canonicalize(config_dir)
            .with_context(|| format!("resolve {}", config_dir.display()))?;
        let mut read_only = vec![cstr(&config_dir)?];
        for path in READ_ONLY {
            if Path::new(path).exists() {
                read_only.push(CString::new(path)?);
            }
        }
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
        Ok(Entry {
            netns: File::open(netns).with_context(|| format!("open {}", netns.display()))?,
            cgroup_procs: OpenOptions::new()
                .write(true)
                .open(cgroup.join("cgroup.procs"))
                .with_context(|| format!("open {}/cgroup.procs", cgroup.display()))?,
            resolv_conf: cstr(resolv_conf)?,
            target: CString::new("/etc/resolv.conf")?,
            root: CString::new("/")?,
            read_only,
            caps,
            last_cap,
        })
    }

    /// In the child, between fork and exec: join the cgroup and the network
    /// namespace, and see the workload's resolv.conf in a private mount
    /// namespace.
    fn enter(&self) -> std::io::Result<()> {
        let check = |rc: libc::c_int| {
            if rc < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        // SAFETY: raw syscalls on fds and C strings owned by `self`.
        unsafe {
            check(
                libc::write(self.cgroup_procs.as_raw_fd(), b"0".as_ptr().cast(), 1) as libc::c_int,
            )?;
            check(libc::setns(self.netns.as_raw_fd(), libc::CLONE_NEWNET))?;
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                std::ptr::null(),
                self.root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                self.resolv_conf.as_ptr(),
                self.target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ))?;
            for path in &self.read_only {
                check(libc::mount(
                    path.as_ptr(),
                    path.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ))?;
                check(libc::mount(
                    std::ptr::null(),
                    path.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                    std::ptr::null(),
                ))?;
            }
        }
        self.drop_capabilities()
    }

    /// Leaves the child only `self.caps`: bounding set (what exec can ever
    /// grant, setuid binaries included), then permitted, effective and
    /// inheritable; ambient cleared. Last: it needs CAP_SYS_ADMIN above.
    fn drop_capabilities(&self) -> std::io::Result<()> {
        let check = |rc: libc::c_int| {
            if rc < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        for cap in 0..=self.last_cap.min(63) {
            if self.caps & (1u64 << cap) == 0 {
                // SAFETY: prctl with integer arguments.
                check(unsafe {
                    libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0)
                })?;
            }
        }
        // SAFETY: as above.
        check(unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            )
        })?;
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
        let header = Header {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let word = |shift: u32| {
            let bits = (self.caps >> shift) as u32;
            Data {
                effective: bits,
                permitted: bits,
                inheritable: bits,
            }
        };
        let data = [word(0), word(32)];
        // SAFETY: capset reads the header and two data words.
        check(unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) as libc::c_int })
    }
}
