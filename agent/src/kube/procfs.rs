//! Finding a pod's network namespace from the host's `/proc`: a process
//! whose cgroup path names the pod's UID (kubelet puts every container of
//! a pod under `pod<uid>`) and whose network namespace is not the host's
//! (hostNetwork pods are never enrolled). The host's namespace is the
//! agent's own: it runs with hostNetwork and hostPID, so `<proc>/self` is
//! the agent (pid 1 may be unreadable under some container runtimes).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::error::KubeError;

/// A pod's network namespace, as one of its processes sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodNetns {
    /// The process found (the lowest pid: usually the sandbox's pause).
    pub pid: u32,
    /// `<proc>/<pid>/ns/net`.
    pub path: PathBuf,
}

/// Whether cgroup path `path` lies under pod `uid`'s cgroup, for both
/// kubelet drivers: cgroupfs `/kubepods/burstable/pod<uid>/…` and systemd
/// `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid
/// with '_' for '-'>.slice/…`.
pub fn cgroup_matches(path: &str, uid: &str) -> bool {
    let uid = uid.to_ascii_lowercase();
    let dashed = format!("pod{uid}");
    let underscored = format!("pod{}", uid.replace('-', "_"));
    path.split('/').any(|segment| {
        let segment = segment.strip_suffix(".slice").unwrap_or(segment);
        segment == dashed
            || segment == underscored
            || segment.ends_with(&format!("-{underscored}"))
            || segment.ends_with(&format!("-{dashed}"))
    })
}

/// The network namespace of pod `uid`, if one of its processes runs yet.
/// `proc_root` is the host's `/proc` (the agent runs with hostPID).
pub fn find_pod_netns(proc_root: &Path, uid: &str) -> Result<Option<PodNetns>, KubeError> {
    let host = proc_root.join("self/ns/net");
    let host_ns = std::fs::metadata(&host).map_err(|source| KubeError::Proc {
        what: format!("stat {}", host.display()),
        source,
    })?;
    let entries = std::fs::read_dir(proc_root).map_err(|source| KubeError::Proc {
        what: format!("list {}", proc_root.display()),
        source,
    })?;
    let mut pids: Vec<u32> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let dir = proc_root.join(pid.to_string());
        // Processes come and go while we read: skip any that vanished.
        let Ok(cgroups) = std::fs::read_to_string(dir.join("cgroup")) else {
            continue;
        };
        let in_pod = cgroups
            .lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .any(|p| cgroup_matches(p, uid));
        if !in_pod {
            continue;
        }
        let path = dir.join("ns/net");
        let Ok(ns) = std::fs::metadata(&path) else {
            continue;
        };
        if ns.dev() != host_ns.dev() || ns.ino() != host_ns.ino() {
            return Ok(Some(PodNetns { pid, path }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "5d6b8a4e-1c2f-4d0e-9a1b-2f3c4d5e6f70";

    #[test]
    fn systemd_driver_paths() {
        let cases = [
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5d6b8a4e_1c2f_4d0e_9a1b_2f3c4d5e6f70.slice/cri-containerd-0123abcd.scope",
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod5d6b8a4e_1c2f_4d0e_9a1b_2f3c4d5e6f70.slice",
            "/kubepods.slice/kubepods-pod5d6b8a4e_1c2f_4d0e_9a1b_2f3c4d5e6f70.slice/crio-99.scope",
        ];
        for path in cases {
            assert!(cgroup_matches(path, UID), "{path}");
            assert!(cgroup_matches(path, &UID.to_ascii_uppercase()), "{path}");
        }
    }

    #[test]
    fn cgroupfs_driver_paths() {
        for path in [
            "/kubepods/burstable/pod5d6b8a4e-1c2f-4d0e-9a1b-2f3c4d5e6f70/0123abcd",
            "/kubepods/pod5d6b8a4e-1c2f-4d0e-9a1b-2f3c4d5e6f70/0123abcd",
            "/kubepods/besteffort/pod5d6b8a4e-1c2f-4d0e-9a1b-2f3c4d5e6f70",
        ] {
            assert!(cgroup_matches(path, UID), "{path}");
        }
    }

    #[test]
    fn other_pods_and_prefixes_do_not_match() {
        for path in [
            "/kubepods/burstable/pod5d6b8a4e-1c2f-4d0e-9a1b-2f3c4d5e6f71/x",
            "/kubepods/burstable/pod5d6b8a4e-1c2f-4d0e-9a1b-2f3c4d5e6f7/x",
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5d6b8a4e_1c2f_4d0e_9a1b_2f3c4d5e6f700.slice",
            "/system.slice/containerd.service",
            "/",
        ] {
            assert!(!cgroup_matches(path, UID), "{path}");
        }
    }

    #[test]
    fn finds_a_process_of_the_pod_outside_the_host_netns() {
        // A fake /proc: self (the agent, host netns), 7 (the pod, in the host netns: a
        // hostNetwork pod), 9 (the pod, its own netns). Namespaces are
        // stand-in files; only their identity (dev, inode) matters.
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let ns_dir = root.join("ns-files");
        std::fs::create_dir_all(&ns_dir).unwrap();
        std::fs::write(ns_dir.join("host"), "").unwrap();
        std::fs::write(ns_dir.join("pod"), "").unwrap();
        let proc = |pid: u32, cgroup: &str, ns: &str| {
            let d = root.join(pid.to_string());
            std::fs::create_dir_all(d.join("ns")).unwrap();
            std::fs::write(d.join("cgroup"), cgroup).unwrap();
            std::os::unix::fs::symlink(ns_dir.join(ns), d.join("ns/net")).unwrap();
        };
        let pod_cgroup = format!("0::/kubepods/besteffort/pod{UID}/abc\n");
        let me = root.join("self/ns");
        std::fs::create_dir_all(&me).unwrap();
        std::os::unix::fs::symlink(ns_dir.join("host"), me.join("net")).unwrap();
        proc(1, "0::/init.scope\n", "host");
        proc(7, &pod_cgroup, "host");
        assert_eq!(find_pod_netns(root, UID).unwrap(), None);
        proc(9, &pod_cgroup, "pod");
        let found = find_pod_netns(root, UID).unwrap().unwrap();
        assert_eq!(found.pid, 9);
        assert_eq!(found.path, root.join("9/ns/net"));
        assert_eq!(find_pod_netns(root, "0000").unwrap(), None);
    }
}
