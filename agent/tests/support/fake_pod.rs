//! A pod as kubelet and the container runtime would leave it, made by a
//! test: a network namespace (only `lo`) and a process inside it, placed in
//! a cgroup named as kubelet names a pod's
//! (`kubepods.slice/kubepods-pod<uid>.slice` under the cgroup v2 root).
//! Everything is removed on drop.
#![allow(dead_code)]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use egret::kernel::{cgroup2_root, netns_cookie_of};

/// What kubelet and the runtime would have made for one pod; removed on
/// drop, also when an assertion fails.
pub struct FakePod {
    netns: String,
    cgroup: PathBuf,
    made_kubepods: Option<PathBuf>,
    process: Child,
}

impl FakePod {
    /// Starts pod `uid`'s process in a new namespace `egret-<tag>-<pid>`.
    pub fn start(uid: &str, tag: &str) -> FakePod {
        let netns = format!("egret-{tag}-{}", std::process::id());
        // A leftover of a crashed run with the same pid, if any.
        let _ = Command::new("ip")
            .args(["netns", "del", &netns])
            .stderr(Stdio::null())
            .status();
        run("ip", &["netns", "add", &netns]);
        run("ip", &["-n", &netns, "link", "set", "lo", "up"]);
        let root = cgroup2_root().expect("a cgroup v2 mount");
        let kubepods = root.join("kubepods.slice");
        let made_kubepods = (!kubepods.exists()).then(|| kubepods.clone());
        let cgroup = kubepods.join(format!("kubepods-pod{}.slice", uid.replace('-', "_")));
        std::fs::create_dir_all(&cgroup)
            .unwrap_or_else(|e| panic!("create {}: {e}", cgroup.display()));
        // The shell joins the pod's cgroup, then becomes the pod's process
        // inside its namespace (`ip netns exec` execs, keeping the pid).
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec ip netns exec {netns} sleep 3600",
            cgroup.display()
        );
        let process = Command::new("sh").args(["-c", &script]).spawn().unwrap();
        FakePod {
            netns,
            cgroup,
            made_kubepods,
            process,
        }
    }

    /// The network namespace's name (`ip netns`).
    pub fn netns_name(&self) -> &str {
        &self.netns
    }

    /// The namespace's bind mount.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.netns)
    }

    /// Runs `f` on a thread inside the pod's namespace.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let ns = File::open(self.path()).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on this thread only, with a valid netns fd.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// The namespace's cookie.
    pub fn cookie(&self) -> u64 {
        self.run_in(|| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            netns_cookie_of(s.as_fd()).unwrap()
        })
    }

    /// Whether something listens on 127.0.0.1:`port` in the pod.
    pub fn listening(&self, port: u16) -> bool {
        self.run_in(|| {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        })
    }

    /// Waits until the pod's process sits in its own namespace.
    pub fn wait_ready(&self) {
        let ours = std::fs::metadata(self.path()).unwrap();
        for _ in 0..100 {
            let ns = std::fs::metadata(format!("/proc/{}/ns/net", self.process.id()));
            if ns.is_ok_and(|m| {
                use std::os::unix::fs::MetadataExt;
                m.ino() == std::os::unix::fs::MetadataExt::ino(&ours)
            }) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the pod's process never entered its namespace");
    }
}

impl Drop for FakePod {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir(&self.cgroup);
        if let Some(k) = &self.made_kubepods {
            let _ = std::fs::remove_dir(k);
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

pub fn run(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd).args(args).status().unwrap();
    assert!(status.success(), "{cmd} {args:?}: {status}");
}
