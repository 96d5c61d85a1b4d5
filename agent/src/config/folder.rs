//! The folder as the agent keeps it in memory: each manifest file parsed
//! once and parsed again only when it changes (named by a file event, or
//! found changed by `stat` on a full rescan), with an index of the files
//! naming each object, so one edit costs one file, not the whole folder.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde_yaml::Value;

use super::error::ConfigError;
use super::file_stamp::FileStamp;
use super::object::{ObjectKey, DEFAULT_NAMESPACE};
use super::parse::parse_text;
use super::store::is_manifest;
use super::version::{digest, Version};

/// One object a file names: valid (`version`) or not.
#[derive(Debug)]
pub struct Named {
    /// Its identity.
    pub key: ObjectKey,
    /// The object, when the document is valid.
    pub version: Option<Arc<Version>>,
    /// The `spec` of an invalid document as written (`Null` when valid,
    /// or when the file no longer parses).
    pub spec: Value,
}

/// A problem found in a file: the object it concerns, when named.
#[derive(Debug)]
pub struct Problem {
    /// The object, when the document got far enough to name it.
    pub key: Option<ObjectKey>,
    /// What is wrong (names the file or kind/namespace/name and the field).
    pub message: String,
}

#[derive(Debug)]
struct CachedFile {
    stamp: FileStamp,
    content: u128,
    modified: SystemTime,
    named: Vec<Named>,
    problems: Vec<Problem>,
}

/// What one refresh touched.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Objects named (before or after) by a file that changed.
    pub keys: BTreeSet<ObjectKey>,
    /// Files that changed, appeared or went.
    pub files: BTreeSet<PathBuf>,
}

/// Which version of an object the folder holds.
#[derive(Debug)]
pub enum Held<'a> {
    /// A valid version, from the newest file holding one; `shadowed` are
    /// other files with a valid version too.
    Valid {
        version: Arc<Version>,
        file: &'a Path,
        shadowed: Vec<&'a Path>,
    },
    /// Files name it, but none validly (bad document, or a broken file
    /// that held it): its last good version should stay in force. `spec`
    /// is the invalid document's (`Null` when unknown).
    Invalid { spec: &'a Value },
    /// No file names it.
    Absent,
}

/// The in-memory folder.
#[derive(Debug)]
pub struct Folder {
    dir: PathBuf,
    files: HashMap<PathBuf, CachedFile>,
    holders: HashMap<ObjectKey, Vec<PathBuf>>,
}

impl Folder {
    /// An empty view of `dir`; call [`Folder::rescan`] to fill it.
    pub fn new(dir: &Path) -> Self {
        Folder {
            dir: dir.to_path_buf(),
            files: HashMap::new(),
            holders: HashMap::new(),
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Lists the folder and re-parses only files whose stamp changed;
    /// forgets files that are gone. The fallback when events were lost.
    pub fn rescan(&mut self) -> Result<Changes, ConfigError> {
        let mut changes = Changes::default();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => Some(e),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ConfigError::io(&self.dir, e)),
        };
        let mut seen = BTreeSet::new();
        for path in entries.into_iter().flatten().flatten().map(|e| e.path()) {
            if !is_manifest(&path) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let unchanged = self
                .files
                .get(&path)
                .is_some_and(|f| f.stamp == FileStamp::of(&meta));
            if !unchanged {
                self.load(&path, &mut changes);
            }
            seen.insert(path);
        }
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !seen.contains(*p))
            .cloned()
            .collect();
        for path in gone {
            self.forget(&path, &mut changes);
        }
        Ok(changes)
    }

    /// Re-reads exactly `paths` (from file events): parsed again when their
    /// bytes changed, forgotten when gone or no longer manifests.
    pub fn refresh(&mut self, paths: impl IntoIterator<Item = PathBuf>) -> Changes {
        let mut changes = Changes::default();
        for path in paths {
            self.load(&path, &mut changes);
        }
        changes
    }

    /// Which version of `key` the folder holds. Newest file wins (ties: the
    /// later path); within one file the later document wins.
    pub fn held(&self, key: &ObjectKey) -> Held<'_> {
        let Some(paths) = self.holders.get(key) else {
            return Held::Absent;
        };
        let mut valid: Vec<(SystemTime, &Path, &Arc<Version>)> = paths
            .iter()
            .filter_map(|p| {
                let file = self.files.get(p)?;
                let version = file
                    .named
                    .iter()
                    .rev()
                    .filter(|n| n.key == *key)
                    .find_map(|n| n.version.as_ref())?;
                Some((file.modified, p.as_path(), version))
            })
            .collect();
        valid.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        match valid.pop() {
            Some((_, file, version)) => Held::Valid {
                version: version.clone(),
                file,
                shadowed: valid.iter().map(|v| v.1).collect(),
            },
            None => {
                static UNKNOWN: Value = Value::Null;
                let spec = paths
                    .iter()
                    .filter_map(|p| self.files.get(p))
                    .flat_map(|f| f.named.iter().rev())
                    .find(|n| n.key == *key)
                    .map_or(&UNKNOWN, |n| &n.spec);
                Held::Invalid { spec }
            }
        }
    }

    /// Whether `file` is in the folder with a document that cannot even be
    /// named (a YAML syntax error, a missing `kind`…) and nothing valid.
    pub fn is_broken(&self, file: &Path) -> bool {
        self.files.get(file).is_some_and(|f| {
            f.problems.iter().any(|p| p.key.is_none())
                && f.named.iter().all(|n| n.version.is_none())
        })
    }

    /// Records that broken `file` held `key` (known from the last good
    /// version read from it before a restart): `key` is then held invalid,
    /// so its last good version stays in force until the file is fixed or
    /// removed.
    pub fn recover(&mut self, file: &Path, key: ObjectKey) {
        if !self.is_broken(file) {
            return;
        }
        let Some(cached) = self.files.get_mut(file) else {
            return;
        };
        if cached.named.iter().any(|n| n.key == key) {
            return;
        }
        cached.named.push(Named {
            key: key.clone(),
            version: None,
            spec: Value::Null,
        });
        self.holders
            .entry(key)
            .or_default()
            .push(file.to_path_buf());
    }

    /// The files naming `key`, valid or not.
    pub fn files_naming(&self, key: &ObjectKey) -> &[PathBuf] {
        self.holders.get(key).map_or(&[], Vec::as_slice)
    }

    /// The problems of `file` (empty when it is fine or unknown).
    pub fn problems(&self, file: &Path) -> &[Problem] {
        self.files.get(file).map_or(&[], |f| f.problems.as_slice())
    }

    /// Every object key some file names.
    pub fn keys(&self) -> impl Iterator<Item = &ObjectKey> {
        self.holders.keys()
    }

    /// Reads and, when its bytes changed, parses one file.
    fn load(&mut self, path: &Path, changes: &mut Changes) {
        let meta = std::fs::metadata(path).ok().filter(|m| m.is_file());
        let text = meta
            .as_ref()
            .filter(|_| is_manifest(path))
            .and_then(|_| std::fs::read_to_string(path).ok());
        let (Some(meta), Some(text)) = (meta, text) else {
            // Gone between the event and now, or never a manifest.
            self.forget(path, changes);
            return;
        };
        let stamp = FileStamp::of(&meta);
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let content = digest(&text);
        if let Some(cached) = self.files.get_mut(path) {
            if cached.content == content {
                cached.stamp = stamp;
                if cached.modified != modified {
                    // Same bytes, newer time: it may now win a duplicate.
                    cached.modified = modified;
                    changes
                        .keys
                        .extend(cached.named.iter().map(|n| n.key.clone()));
                }
                return;
            }
        }
        let (named, problems) =
            match parse_text(&text, &path.display().to_string(), DEFAULT_NAMESPACE) {
                Ok(documents) => parsed(documents),
                Err(e) => {
                    // A file that does not parse keeps naming what it named, so
                    // those objects keep their last good versions.
                    let kept = self.files.get(path).map_or_else(Vec::new, |f| {
                        f.named
                            .iter()
                            .map(|n| Named {
                                key: n.key.clone(),
                                version: None,
                                spec: Value::Null,
                            })
                            .collect()
                    });
                    let problem = Problem {
                        key: None,
                        message: e.to_string(),
                    };
                    (kept, vec![problem])
                }
            };
        self.forget(path, changes);
        for key in named.iter().map(|n| &n.key) {
            let holders = self.holders.entry(key.clone()).or_default();
            if !holders.iter().any(|p| p == path) {
                holders.push(path.to_path_buf());
            }
            changes.keys.insert(key.clone());
        }
        changes.files.insert(path.to_path_buf());
        self.files.insert(
            path.to_path_buf(),
            CachedFile {
                stamp,
                content,
                modified,
                named,
                problems,
            },
        );
    }

    /// Drops a file and its entries in the index.
    fn forget(&mut self, path: &Path, changes: &mut Changes) {
        let Some(old) = self.files.remove(path) else {
            return;
        };
        for n in &old.named {
            if let Some(holders) = self.holders.get_mut(&n.key) {
                holders.retain(|p| p != path);
                if holders.is_empty() {
                    self.holders.remove(&n.key);
                }
            }
            changes.keys.insert(n.key.clone());
        }
        changes.files.insert(path.to_path_buf());
    }
}

/// A parsed file's objects (valid ones slimmed to [`Version`]s) and problems.
fn parsed(documents: Vec<super::parse::Document>) -> (Vec<Named>, Vec<Problem>) {
    let mut named = Vec::new();
    let mut problems = Vec::new();
    for result in documents.into_iter().flat_map(|d| d.objects) {
        match result {
            Ok(object) => named.push(Named {
                key: object.key(),
                version: Some(Arc::new(Version::new(object))),
                spec: Value::Null,
            }),
            Err(rejected) => {
                problems.extend(rejected.errors.iter().map(|e| Problem {
                    key: rejected.key.clone(),
                    message: e.to_string(),
                }));
                if let Some(key) = rejected.key {
                    named.push(Named {
                        key,
                        version: None,
                        spec: *rejected.spec,
                    });
                }
            }
        }
    }
    (named, problems)
}
