//! The last good version of every object, on disk: each accepted version is
//! written to `<state>/last-good/<kind>.<ns>.<name>.yaml`, so that after a
//! restart an object whose source is now invalid runs on the version
//! accepted before, as it did while the agent ran. Writes are atomic and
//! durable, batched: temporary files, one `syncfs`, renames, the folder
//! synced. A file is the manifest as accepted under a one-line header with
//! its checksum; a corrupt file is reported and counts as no last good
//! version, never as a reason to stop. Opening checks headers and checksums
//! only; a version is parsed when it is needed (its source is refused).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::object::{Object, ObjectKey, DEFAULT_NAMESPACE};
use super::parse::parse_text;
use super::version::digest;

/// The folder under the agent's state folder.
pub const LAST_GOOD_DIR: &str = "last-good";
/// First line of every file, before the header's JSON.
const HEADER_PREFIX: &str = "# egret last good version: ";

/// What a file says about the version it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    kind: String,
    namespace: String,
    name: String,
    /// Where it was read from (a manifest file, or the Kubernetes API).
    source: String,
    /// When it was accepted (RFC 3339).
    accepted: String,
    /// [`digest`] of the document, as the reconcilers compare versions.
    digest: String,
    /// SHA-256 of the text below the header.
    sha256: String,
}

/// What is known about a stored version without reading it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredVersion {
    /// Where it was read from.
    pub source: String,
    /// When it was accepted (RFC 3339).
    pub accepted: String,
    /// The document's digest.
    pub digest: u128,
}

/// A stored version that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: corrupt last good version ({reason}); ignored", path.display())]
pub struct Corrupt {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// The store: an index of what is on disk, and writes not yet flushed.
#[derive(Debug)]
pub struct LastGood {
    dir: PathBuf,
    index: HashMap<ObjectKey, StoredVersion>,
    /// Writes (`Some`) and removals (`None`) for the next flush.
    pending: BTreeMap<ObjectKey, Option<String>>,
}

impl LastGood {
    /// Opens the store of `state_dir`, indexing every usable file; the
    /// corrupt ones are returned for the caller to report.
    pub fn open(state_dir: &Path) -> (Self, Vec<Corrupt>) {
        let dir = state_dir.join(LAST_GOOD_DIR);
        let mut store = LastGood {
            dir,
            index: HashMap::new(),
            pending: BTreeMap::new(),
        };
        let mut corrupt = Vec::new();
        let Ok(entries) = std::fs::read_dir(&store.dir) else {
            return (store, corrupt);
        };
        for path in entries.flatten().map(|e| e.path()) {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let name = name.unwrap_or_default();
            if name.starts_with('.') {
                // A temporary file of a write that never finished.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let sealed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|contents| {
                    unseal(&path, &contents).map(|(key, header, _)| (key, header))
                });
            match sealed {
                Ok((key, header)) => {
                    let stored = StoredVersion {
                        source: header.source,
                        accepted: header.accepted,
                        digest: u128::from_str_radix(&header.digest, 16).unwrap_or(0),
                    };
                    store.index.insert(key, stored);
                }
                Err(reason) => corrupt.push(Corrupt { path, reason }),
            }
        }
        (store, corrupt)
    }

    /// What is stored for `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<&StoredVersion> {
        self.index.get(key)
    }

    /// Every key with a stored version.
    pub fn keys(&self) -> impl Iterator<Item = &ObjectKey> {
        self.index.keys()
    }

    /// Queues `object` (which must still hold its text) as the last good
    /// version of its key, accepted `accepted` from `source`; nothing is
    /// queued when the same document is stored already.
    pub fn save(&mut self, object: &Object, object_digest: u128, source: &str, accepted: &str) {
        let key = object.key();
        if self
            .index
            .get(&key)
            .is_some_and(|s| s.digest == object_digest)
        {
            return;
        }
        let header = Header {
            kind: key.kind.to_string(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            source: source.to_string(),
            accepted: accepted.to_string(),
            digest: format!("{object_digest:032x}"),
            sha256: sha256(&object.text),
        };
        let header_json = serde_json::to_string(&header).unwrap_or_default();
        let mut contents = format!("{HEADER_PREFIX}{header_json}\n");
        contents.push_str(&object.text);
        self.index.insert(
            key.clone(),
            StoredVersion {
                source: header.source,
                accepted: header.accepted,
                digest: object_digest,
            },
        );
        self.pending.insert(key, Some(contents));
    }

    /// Queues the removal of `key`'s stored version (the object is gone).
    pub fn remove(&mut self, key: &ObjectKey) {
        if self.index.remove(key).is_some() {
            self.pending.insert(key.clone(), None);
        }
    }

    /// The stored version of `key`, read and checked again.
    pub fn load(&self, key: &ObjectKey) -> Result<Option<Object>, Corrupt> {
        if !self.index.contains_key(key) {
            return Ok(None);
        }
        match self.pending.get(key) {
            Some(Some(contents)) => {
                let path = self.dir.join(key.file_name());
                checked(key, &path, parse(&path, contents)).map(Some)
            }
            _ => read_in(&self.dir, key),
        }
    }

    /// Writes what is queued: every new file durable before any is renamed
    /// into place, the folder synced after.
    pub fn flush(&mut self) -> Result<(), ConfigError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let dir = self.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| ConfigError::io(&dir, e))?;
        let mut staged = Vec::new();
        let result = (|| {
            for (key, contents) in &self.pending {
                if let Some(contents) = contents {
                    let path = dir.join(key.file_name());
                    let tmp = dir.join(format!(".{}.tmp", key.file_name()));
                    staged.push((tmp.clone(), path));
                    let mut f =
                        std::fs::File::create(&tmp).map_err(|e| ConfigError::io(&tmp, e))?;
                    f.write_all(contents.as_bytes())
                        .map_err(|e| ConfigError::io(&tmp, e))?;
                }
            }
            let folder = std::fs::File::open(&dir).map_err(|e| ConfigError::io(&dir, e))?;
            if !staged.is_empty() {
                // One sync for the whole batch instead of one per file.
                // SAFETY: syncfs on a descriptor this function owns.
                if unsafe { libc::syncfs(folder.as_raw_fd()) } != 0 {
                    return Err(ConfigError::io(&dir, std::io::Error::last_os_error()));
                }
            }
            for (tmp, path) in &staged {
                std::fs::rename(tmp, path).map_err(|e| ConfigError::io(path, e))?;
            }
            for (key, contents) in &self.pending {
                if contents.is_none() {
                    let path = dir.join(key.file_name());
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(ConfigError::io(&path, e)),
                    }
                }
            }
            folder.sync_all().map_err(|e| ConfigError::io(&dir, e))
        })();
        match result {
            Ok(()) => {
                self.pending.clear();
                Ok(())
            }
            Err(e) => {
                for (tmp, _) in &staged {
                    let _ = std::fs::remove_file(tmp);
                }
                Err(e)
            }
        }
    }
}

/// The version of `key` stored under `state_dir`, read and checked (also
/// for readers outside the agent: `egret get`); `None` when there is none.
pub fn read_stored(state_dir: &Path, key: &ObjectKey) -> Result<Option<Object>, Corrupt> {
    read_in(&state_dir.join(LAST_GOOD_DIR), key)
}

/// The version of `key` in the store folder `dir`.
fn read_in(dir: &Path, key: &ObjectKey) -> Result<Option<Object>, Corrupt> {
    let path = dir.join(key.file_name());
    if !path.exists() {
        return Ok(None);
    }
    checked(key, &path, read(&path)).map(Some)
}

/// The object of a file read for `key`, or why it cannot serve as `key`'s.
fn checked(
    key: &ObjectKey,
    path: &Path,
    read: Result<(ObjectKey, Header, Object), String>,
) -> Result<Object, Corrupt> {
    let corrupt = |reason| Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let (found, _, object) = read.map_err(corrupt)?;
    if found != *key {
        return Err(corrupt(format!("holds {found}, not {key}")));
    }
    Ok(object)
}

/// Reads and checks one file: its key, header and object.
fn read(path: &Path) -> Result<(ObjectKey, Header, Object), String> {
    let contents = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    parse(path, &contents)
}

/// Checks one file's contents: a sealed header (see [`unseal`]), and a
/// text holding exactly the valid object the header names.
fn parse(path: &Path, contents: &str) -> Result<(ObjectKey, Header, Object), String> {
    let (key, header, text) = unseal(path, contents)?;
    let label = path.display().to_string();
    let mut objects = parse_text(text, &label, DEFAULT_NAMESPACE)
        .map_err(|e| e.to_string())?
        .into_iter()
        .flat_map(|d| d.objects);
    let object = match (objects.next(), objects.next()) {
        (Some(Ok(object)), None) => object,
        (Some(Err(rejected)), None) => {
            let reasons: Vec<String> = rejected.errors.iter().map(|e| e.to_string()).collect();
            return Err(format!("no longer valid: {}", reasons.join("; ")));
        }
        _ => return Err("does not hold exactly one object".into()),
    };
    if object.key() != key {
        return Err(format!(
            "holds {}, but its header names {key}",
            object.key()
        ));
    }
    if format!("{:032x}", digest(&object.raw)) != header.digest {
        return Err("digest mismatch".into());
    }
    Ok((key, header, object))
}

/// The cheap checks, run on every file at start: a readable header naming
/// a known kind, a text whose checksum matches it, the file named after
/// the object. Returns the key, the header and the text.
fn unseal<'a>(path: &Path, contents: &'a str) -> Result<(ObjectKey, Header, &'a str), String> {
    let (first, text) = contents
        .split_once('\n')
        .ok_or_else(|| "no header line".to_string())?;
    let header: Header = first
        .strip_prefix(HEADER_PREFIX)
        .and_then(|json| serde_json::from_str(json).ok())
        .ok_or_else(|| "unreadable header line".to_string())?;
    if sha256(text) != header.sha256 {
        return Err("checksum mismatch: the file is truncated or was changed".into());
    }
    let info = super::kinds::by_kind(&header.kind)
        .ok_or_else(|| format!("unknown kind {:?}", header.kind))?;
    let key = ObjectKey::new(info.kind, header.namespace.clone(), header.name.clone());
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    if file_name.as_deref() != Some(key.file_name().as_str()) {
        return Err(format!("holds {key}, stored under another name"));
    }
    Ok((key, header, text))
}

/// Lowercase hex SHA-256 of `text`.
fn sha256(text: &str) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    hash.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::version::Version;
    use crate::testing::manifests::{objects, SERVICE_ENTRY};

    fn saved(dir: &Path) -> (LastGood, Object) {
        let (mut store, corrupt) = LastGood::open(dir);
        assert!(corrupt.is_empty());
        let object = objects(SERVICE_ENTRY).remove(0);
        let version = Version::new(object.clone());
        store.save(&version.object, version.digest, "se.yaml", "T0");
        store.flush().unwrap();
        (store, object)
    }

    #[test]
    fn a_saved_version_survives_reopening() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, object) = saved(tmp.path());
        let (store, corrupt) = LastGood::open(tmp.path());
        assert!(corrupt.is_empty());
        let key = object.key();
        let stored = store.get(&key).unwrap();
        assert_eq!(
            (stored.source.as_str(), stored.accepted.as_str()),
            ("se.yaml", "T0")
        );
        let loaded = store.load(&key).unwrap().unwrap();
        assert_eq!(loaded.raw, object.raw);
        assert_eq!(loaded.text, SERVICE_ENTRY);
        let path = tmp.path().join(LAST_GOOD_DIR).join(key.file_name());
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.starts_with(HEADER_PREFIX), "{text}");
        assert!(text.ends_with(SERVICE_ENTRY));
    }

    #[test]
    fn the_same_document_is_not_written_again_and_removal_deletes() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut store, object) = saved(tmp.path());
        let version = Version::new(object.clone());
        store.save(&version.object, version.digest, "other.yaml", "T1");
        assert!(store.pending.is_empty(), "unchanged document");
        store.remove(&object.key());
        store.flush().unwrap();
        let path = tmp
            .path()
            .join(LAST_GOOD_DIR)
            .join(object.key().file_name());
        assert!(!path.exists());
        assert!(LastGood::open(tmp.path()).0.get(&object.key()).is_none());
    }

    #[test]
    fn corrupt_files_are_reported_and_never_used() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, object) = saved(tmp.path());
        let dir = tmp.path().join(LAST_GOOD_DIR);
        let path = dir.join(object.key().file_name());
        let good = std::fs::read_to_string(&path).unwrap();
        let cases = [
            good[..good.len() - 20].to_string(),
            good.replace("number: 80", "number: 81"),
            String::new(),
            "\u{0}\u{1}garbage".to_string(),
            good.replacen("egret last good", "something", 1),
        ];
        for bad in cases {
            std::fs::write(&path, &bad).unwrap();
            std::fs::write(dir.join(".leftover.tmp"), "x").unwrap();
            let (store, corrupt) = LastGood::open(tmp.path());
            assert_eq!(corrupt.len(), 1, "{bad:?}");
            assert!(corrupt[0].to_string().contains("corrupt last good version"));
            assert!(store.get(&object.key()).is_none());
            assert!(!dir.join(".leftover.tmp").exists());
        }
        // A good file under the wrong name is refused too.
        std::fs::write(&path, "").unwrap();
        std::fs::write(dir.join("serviceentry.istio-egress.other.yaml"), &good).unwrap();
        let (_, corrupt) = LastGood::open(tmp.path());
        assert_eq!(corrupt.len(), 2);
    }
}
