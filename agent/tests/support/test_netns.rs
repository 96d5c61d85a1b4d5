#![allow(dead_code)] // shared by several test binaries; each uses part of it
//! Network namespaces a privileged test makes for itself, deleted on drop
//! (also when an assertion fails). Sockets made in them stay there.

use std::fs::File;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::process::Command;

/// A namespace with `lo` up and nothing else: no route anywhere.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// `egret-<test>-<pid>-<tag>`, made fresh (a leftover of a crashed run
    /// with the same pid is removed first).
    pub fn new(test: &str, tag: &str) -> Netns {
        let name = format!("egret-{test}-{}-{tag}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Like [`Netns::new`], plus default routes (IPv4 and IPv6) through a
    /// veth whose peer, in the same namespace, stays down: what is sent
    /// "out" goes nowhere, and never leaves the machine.
    pub fn with_dead_end(test: &str, tag: &str) -> Netns {
        let ns = Netns::new(test, tag);
        for args in [
            &["link", "add", "d0", "type", "veth", "peer", "name", "d1"][..],
            &["link", "set", "d0", "up"],
            &["addr", "add", "198.51.100.1/24", "dev", "d0"],
            &["addr", "add", "2001:db8:1::1/64", "dev", "d0", "nodad"],
            &["route", "add", "default", "dev", "d0"],
            &["-6", "route", "add", "default", "dev", "d0"],
        ] {
            ns.ip(args);
        }
        ns
    }

    /// `ip -n <name> ARGS`.
    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full);
    }

    /// Runs `f` on a thread that has entered this namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = PathBuf::from("/var/run/netns").join(&self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns =
                    File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
                // SAFETY: setns on this thread only, with a valid netns fd.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(
                    rc,
                    0,
                    "setns {}: {}",
                    self.name,
                    std::io::Error::last_os_error()
                );
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// The namespace's cookie (`SO_NETNS_COOKIE` of a socket made in it).
    pub fn cookie(&self) -> u64 {
        self.run(|| {
            let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            egret::kernel::netns_cookie_of(s.as_fd()).unwrap()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run `ip` (iproute2): {e}"));
    assert!(status.success(), "ip {} failed: {status}", args.join(" "));
}
