//! Finding the cgroup v2 root the programs attach to.

use std::path::PathBuf;

use super::error::KernelError;

/// The mount point of the cgroup v2 hierarchy (`/sys/fs/cgroup`, or
/// `/sys/fs/cgroup/unified` on hybrid hosts), from `/proc/self/mountinfo`.
pub fn cgroup2_root() -> Result<PathBuf, KernelError> {
    let table =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| KernelError::Io {
            what: "reading /proc/self/mountinfo".into(),
            source,
        })?;
    find_cgroup2(&table).ok_or(KernelError::NoCgroup2)
}

/// The first cgroup2 mount of the hierarchy's root in a mountinfo table.
fn find_cgroup2(table: &str) -> Option<PathBuf> {
    table.lines().find_map(|line| {
        // "<id> <parent> <dev> <root> <mountpoint> <opts> [optional…] - <fstype> <source> <superopts>"
        let (mount, fs) = line.split_once(" - ")?;
        if fs.split(' ').next()? != "cgroup2" {
            return None;
        }
        let mut fields = mount.split(' ');
        let root = fields.nth(3)?;
        let mountpoint = fields.next()?;
        // A bind mount of a sub-cgroup is not the root of the hierarchy.
        (root == "/").then(|| PathBuf::from(unescape(mountpoint)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hybrid_unified_mount() {
        let table = "\
25 30 0:23 / /sys rw,nosuid shared:7 - sysfs sysfs rw
31 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
32 31 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
33 31 0:28 / /sys/fs/cgroup/cpu rw shared:11 - cgroup cgroup rw,cpu
";
        assert_eq!(
            find_cgroup2(table),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn skips_sub_cgroup_bind_mounts_and_unescapes() {
        let table = "\
40 30 0:27 /kubepods /mnt/pod rw - cgroup2 cgroup2 rw
41 30 0:27 / /mnt/cg\\040root rw - cgroup2 cgroup2 rw
";
        assert_eq!(find_cgroup2(table), Some(PathBuf::from("/mnt/cg root")));
    }

    #[test]
    fn none_without_cgroup2() {
        assert_eq!(
            find_cgroup2("25 30 0:23 / /sys rw - sysfs sysfs rw\n"),
            None
        );
    }
}
