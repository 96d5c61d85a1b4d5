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
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Runs the command; the exit code is the command's (128+N when killed by
/// signal N). The workload is torn down by the agent when this process's
/// control connection closes, however it ends.
pub fn run(config_dir: &Path, state_dir: &Path, args: ExecArgs) -> anyhow::Result<ExitCode> {
    let mut client = ControlClient::connect(config_dir, state_dir)?;
    let request = Request::CreateWorkload {
        namespace: args.namespace.clone(),
        service_account: args.service_account.clone(),
        name: args.name.clone(),
    };
    let Response::Workload(workload) = client.call(&request)? else {
        bail!("agent answered the workload request with something else");
    };
    let entry = Entry::open(&workload.netns, &workload.cgroup, &workload.resolv_conf)?;
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
    if let Err(e) = client.call(&Request::ReleaseWorkload { id: workload.id }) {
        eprintln!("egret: workload teardown not confirmed: {e}");
    }
    drop(client);
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        _ => 1,
    };
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Everything the child needs to become the workload, opened before fork.
struct Entry {
    netns: File,
    cgroup_procs: File,
    resolv_conf: CString,
    target: CString,
    root: CString,
}

impl Entry {
    fn open(netns: &Path, cgroup: &Path, resolv_conf: &Path) -> anyhow::Result<Self> {
        let cstr =
            |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).context("path with NUL");
        Ok(Entry {
            netns: File::open(netns).with_context(|| format!("open {}", netns.display()))?,
            cgroup_procs: OpenOptions::new()
                .write(true)
                .open(cgroup.join("cgroup.procs"))
                .with_context(|| format!("open {}/cgroup.procs", cgroup.display()))?,
            resolv_conf: cstr(resolv_conf)?,
            target: CString::new("/etc/resolv.conf")?,
            root: CString::new("/")?,
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
        }
        Ok(())
    }
}
