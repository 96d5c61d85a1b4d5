//! A file's content version as `stat` tells it, for everything egret
//! re-reads when it changes: manifests of the config folder, and the PEM
//! files DestinationRules name.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What `stat` says about a file's content version: any edit changes it
/// (a rename-over gives a new inode; an in-place write moves mtime and ctime).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileStamp {
    inode: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    /// The stamp of `meta`.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        FileStamp {
            inode: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// The stamp of `path` now; follows symlinks, so a Kubernetes-style
    /// `..data` swap counts.
    pub fn of_path(path: &Path) -> std::io::Result<Self> {
        Ok(Self::of(&std::fs::metadata(path)?))
    }
}

#[cfg(test)]
mod tests {
    use super::FileStamp;

    #[test]
    fn an_edit_or_a_swap_changes_the_stamp_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.pem");
        std::fs::write(&path, "one").unwrap();
        let first = FileStamp::of_path(&path).unwrap();
        assert_eq!(FileStamp::of_path(&path).unwrap(), first);
        // Same length, written over: a new size-equal content still counts.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&path, "two").unwrap();
        let second = FileStamp::of_path(&path).unwrap();
        assert_ne!(second, first);
        // Renamed over (a new inode).
        let next = dir.path().join("b.pem");
        std::fs::write(&next, "two").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_ne!(FileStamp::of_path(&path).unwrap(), second);
        assert!(FileStamp::of_path(&dir.path().join("missing")).is_err());
    }
}
