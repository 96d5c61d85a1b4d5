//! The capabilities an `egret exec` workload runs with: those a pod gets by
//! default from the container runtime (containerd's and CRI-O's defaults,
//! which Kubernetes uses), less `CAP_MKNOD` (a pod also has a device
//! cgroup; an `egret exec` workload has the host's /dev), plus what the
//! user adds with `--cap-add`.
//!
//! Not in the set, among others: `CAP_NET_ADMIN` (socket marks, routes),
//! `CAP_SYS_ADMIN` (entering other namespaces, mounts), `CAP_SYS_PTRACE`,
//! `CAP_BPF`, `CAP_PERFMON`, `CAP_SYS_MODULE`.

/// Every capability by its kernel number (`linux/capability.h`).
pub const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A pod's default set, less MKNOD (see the module doc).
pub const DEFAULT: [&str; 13] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// The number of a capability named `NAME`, `CAP_NAME` or `name`.
pub fn number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    NAMES.iter().position(|n| *n == bare).map(|i| i as u32)
}

/// The bit set of [`DEFAULT`] plus `added` (`ALL` adds every capability).
pub fn workload_set(added: &[String]) -> Result<u64, String> {
    let mut set = DEFAULT
        .iter()
        .map(|n| 1u64 << number(n).expect("known name"))
        .fold(0, |a, b| a | b);
    for name in added {
        if name.eq_ignore_ascii_case("ALL") {
            set = u64::MAX;
            continue;
        }
        let n = number(name).ok_or_else(|| format!("unknown capability {name:?}"))?;
        set |= 1 << n;
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_set_is_a_pods_without_dangerous_ones() {
        let set = workload_set(&[]).unwrap();
        for kept in ["NET_RAW", "NET_BIND_SERVICE", "CHOWN", "KILL", "SETUID"] {
            assert_ne!(set & (1 << number(kept).unwrap()), 0, "{kept}");
        }
        for dropped in [
            "NET_ADMIN",
            "SYS_ADMIN",
            "SYS_PTRACE",
            "BPF",
            "PERFMON",
            "MKNOD",
            "SYS_MODULE",
        ] {
            assert_eq!(set & (1 << number(dropped).unwrap()), 0, "{dropped}");
        }
        assert_eq!(number("CAP_NET_ADMIN"), Some(12));
        assert_eq!(number("bpf"), Some(39));
        assert_eq!(number("sys_admin"), Some(21));
    }

    #[test]
    fn cap_add() {
        let set = workload_set(&["CAP_NET_ADMIN".into()]).unwrap();
        assert_ne!(set & (1 << 12), 0);
        assert_eq!(workload_set(&["ALL".into()]).unwrap(), u64::MAX);
        assert!(workload_set(&["FLY".into()]).is_err());
    }
}
