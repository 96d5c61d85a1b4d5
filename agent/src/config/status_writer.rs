//! Status files kept in step with the objects: the writer remembers what it
//! wrote, so a change rewrites only the files whose status changed, and a
//! new snapshot can go out before the files are written.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::atomic;
use super::error::ConfigError;
use super::status::{status_dir, Status};

/// Writes `<state_dir>/status/*.yaml`, remembering each file's content.
#[derive(Debug)]
pub struct StatusWriter {
    dir: PathBuf,
    /// What each file holds, as far as this writer knows.
    written: HashMap<String, Status>,
    /// Changes not yet written: `None` removes the file.
    pending: BTreeMap<String, Option<Status>>,
    /// Also remove files on disk that no object renders (after a full render).
    sweep: bool,
}

impl StatusWriter {
    /// A writer for the status folder of `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        StatusWriter {
            dir: status_dir(state_dir),
            written: HashMap::new(),
            pending: BTreeMap::new(),
            sweep: false,
        }
    }

    /// Queues one object's status (`None`: it has none, or is gone).
    pub fn stage(&mut self, file_name: String, status: Option<Status>) {
        self.pending.insert(file_name, status);
    }

    /// Queues the status of every object: files of any other are removed.
    pub fn stage_all(&mut self, rendered: BTreeMap<String, Status>) {
        let stale: Vec<String> = self
            .written
            .keys()
            .filter(|n| !rendered.contains_key(*n))
            .cloned()
            .collect();
        for name in stale {
            self.pending.insert(name, None);
        }
        self.pending
            .extend(rendered.into_iter().map(|(n, s)| (n, Some(s))));
        self.sweep = true;
    }

    /// Writes what is queued. A condition whose status did not change keeps
    /// its old `lastTransitionTime`; a file whose status is unchanged is
    /// not touched.
    pub fn flush(&mut self) -> Result<(), ConfigError> {
        if self.pending.is_empty() && !self.sweep {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| ConfigError::io(&self.dir, e))?;
        for (name, status) in std::mem::take(&mut self.pending) {
            let path = self.dir.join(&name);
            let Some(mut status) = status else {
                self.written.remove(&name);
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(ConfigError::io(&path, e))
                    }
                    _ => {}
                }
                continue;
            };
            // Known: from memory. Unknown (first time since start): from disk.
            let known = self.written.get(&name).cloned();
            let old = known.clone().or_else(|| read_file(&path));
            if let Some(old) = &old {
                for c in &mut status.conditions {
                    if let Some(prev) = old
                        .conditions
                        .iter()
                        .find(|p| p.type_ == c.type_ && p.status == c.status)
                    {
                        c.last_transition_time = prev.last_transition_time.clone();
                    }
                }
            }
            if known.as_ref() != Some(&status) {
                let text = serde_yaml::to_string(&status).map_err(|e| ConfigError::State {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                // Rebuilt at every start: no fsync (10,000 of them cost seconds).
                if std::fs::read(&path).map_or(true, |b| b != text.as_bytes()) {
                    atomic::write_unsynced(&path, text.as_bytes())?;
                }
            }
            self.written.insert(name, status);
        }
        if std::mem::take(&mut self.sweep) {
            let entries =
                std::fs::read_dir(&self.dir).map_err(|e| ConfigError::io(&self.dir, e))?;
            for entry in entries.filter_map(Result::ok) {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".yaml")
                    && !name.starts_with('.')
                    && !self.written.contains_key(&name)
                {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Option<Status> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_yaml::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::status::{StatusCondition, WAYPOINT_BOUND};

    fn bound(ok: bool, now: &str) -> Status {
        Status {
            addresses: Vec::new(),
            conditions: vec![StatusCondition {
                last_transition_time: now.into(),
                message: String::new(),
                reason: "R".into(),
                status: if ok { "True" } else { "False" }.into(),
                type_: WAYPOINT_BOUND.into(),
            }],
        }
    }

    #[test]
    fn unchanged_status_is_not_rewritten() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = StatusWriter::new(tmp.path());
        w.stage("a.yaml".into(), Some(bound(true, "T0")));
        w.flush().unwrap();
        let file = status_dir(tmp.path()).join("a.yaml");
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let before = inode(&file);
        w.stage("a.yaml".into(), Some(bound(true, "T1")));
        w.flush().unwrap();
        assert_eq!(inode(&file), before, "same status: no write");
        w.stage("a.yaml".into(), Some(bound(false, "T2")));
        w.flush().unwrap();
        assert!(std::fs::read_to_string(&file).unwrap().contains("T2"));
        // A new writer (a restart) keeps the time from disk.
        let mut again = StatusWriter::new(tmp.path());
        again.stage("a.yaml".into(), Some(bound(false, "T3")));
        again.flush().unwrap();
        assert!(std::fs::read_to_string(&file).unwrap().contains("T2"));
        again.stage("a.yaml".into(), None);
        again.flush().unwrap();
        assert!(!file.exists());
    }
}
