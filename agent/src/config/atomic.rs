//! Atomic file writes: a reader (or the folder watcher) sees the old file or
//! the new one, never half of one.

use std::io::Write;
use std::path::Path;

use super::error::ConfigError;

/// Writes `contents` to `path` via a hidden temporary file in the same folder
/// and a rename. Hidden so the folder loader never reads it.
pub fn write(path: &Path, contents: &[u8]) -> Result<(), ConfigError> {
    write_with(path, contents, true)
}

/// Like [`write`] without the fsync: for derived files the agent rebuilds
/// at every start (status), where thousands of syncs would cost seconds.
pub fn write_unsynced(path: &Path, contents: &[u8]) -> Result<(), ConfigError> {
    write_with(path, contents, false)
}

fn write_with(path: &Path, contents: &[u8], sync: bool) -> Result<(), ConfigError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| ConfigError::io(dir, e))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        if sync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(ConfigError::io(path, e));
    }
    Ok(())
}

/// Writes only when the file's bytes differ; returns whether it wrote.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> Result<bool, ConfigError> {
    if std::fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(false);
    }
    write(path, contents)?;
    Ok(true)
}
