//! The folder of manifests: read every `*.yaml`/`*.yml` (multi-document),
//! apply objects to one file each, delete them wherever they live.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_yaml::Value;

use super::atomic;
use super::error::ConfigError;
use super::object::{Object, ObjectKey, DEFAULT_NAMESPACE};
use super::parse::{parse_text, Document};

/// An object found in the folder, and where.
#[derive(Clone, Debug)]
pub struct Stored {
    /// The object.
    pub object: Object,
    /// The file holding it.
    pub file: PathBuf,
    /// That file's modification time (used for `AGE` and to break ties).
    pub modified: SystemTime,
}

/// A problem with one file, or one object in it.
#[derive(Debug)]
pub struct LoadError {
    /// The file.
    pub file: PathBuf,
    /// The object, when it could be named.
    pub key: Option<ObjectKey>,
    /// What is wrong.
    pub error: ConfigError,
}

/// Everything read from the folder.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Valid objects; when one is in several files the newest file wins.
    pub objects: BTreeMap<ObjectKey, Stored>,
    /// Invalid files and objects.
    pub errors: Vec<LoadError>,
    /// Non-fatal findings (an object defined twice).
    pub warnings: Vec<String>,
    /// Files that could not be parsed at all (YAML syntax).
    pub broken_files: Vec<PathBuf>,
    /// Every key named in each file, valid or not.
    pub file_keys: HashMap<PathBuf, Vec<ObjectKey>>,
    documents: HashMap<PathBuf, Vec<Document>>,
}

impl Loaded {
    /// Keys whose objects are in the folder but invalid.
    pub fn rejected_keys(&self) -> impl Iterator<Item = &ObjectKey> {
        self.errors.iter().filter_map(|e| e.key.as_ref())
    }

    /// Valid objects of `kind` (in `namespace` when given), in key order.
    pub fn list<'a>(
        &'a self,
        kind: &'a str,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Stored> + 'a {
        self.objects.values().filter(move |s| {
            s.object.info.kind == kind && namespace.is_none_or(|n| s.object.namespace() == n)
        })
    }

    fn files_holding(&self, key: &ObjectKey) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .file_keys
            .iter()
            .filter(|(_, keys)| keys.contains(key))
            .map(|(f, _)| f.clone())
            .collect();
        files.sort();
        files
    }
}

/// What `apply` did to one object (kubectl's words).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// It was not there.
    Created,
    /// It was there with different content.
    Configured,
    /// It was there with the same content.
    Unchanged,
}

impl fmt::Display for ApplyOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApplyOutcome::Created => "created",
            ApplyOutcome::Configured => "configured",
            ApplyOutcome::Unchanged => "unchanged",
        })
    }
}

/// A folder of manifests.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

/// Whether the loader reads this folder entry.
pub fn is_manifest(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    !name.starts_with('.') && path.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

impl Store {
    /// The folder at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Store { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads every manifest file. Only a folder that cannot be listed is an
    /// error; bad files and objects are reported in [`Loaded::errors`].
    pub fn load(&self) -> Result<Loaded, ConfigError> {
        self.load_where(|_| true)
    }

    /// Like [`Store::load`], but parses only files that can hold an object
    /// named one of `names`: a name appears verbatim in the text unless
    /// escaped, so files with neither the name nor a `\` are skipped. What
    /// keeps `apply`, `get` and `delete` of one object fast in a folder of
    /// thousands.
    pub fn load_named(&self, names: &[&str]) -> Result<Loaded, ConfigError> {
        self.load_where(|text| text.contains('\\') || names.iter().any(|n| text.contains(n)))
    }

    fn load_where(&self, wanted: impl Fn(&str) -> bool) -> Result<Loaded, ConfigError> {
        let mut loaded = Loaded::default();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(loaded),
            Err(e) => return Err(ConfigError::io(&self.dir, e)),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| is_manifest(p) && p.is_file())
            .collect();
        files.sort();
        for file in files {
            // A file removed between listing and reading is simply gone.
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            if !wanted(&text) {
                continue;
            }
            let modified = std::fs::metadata(&file)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            self.load_file(&mut loaded, file, &text, modified);
        }
        Ok(loaded)
    }

    fn load_file(&self, loaded: &mut Loaded, file: PathBuf, text: &str, modified: SystemTime) {
        let label = file.display().to_string();
        let mut documents = match parse_text(text, &label, DEFAULT_NAMESPACE) {
            Ok(d) => d,
            Err(error) => {
                loaded.broken_files.push(file.clone());
                loaded.errors.push(LoadError {
                    file,
                    key: None,
                    error,
                });
                return;
            }
        };
        let mut keys = Vec::new();
        for doc in &mut documents {
            for result in &mut doc.objects {
                match result {
                    Ok(object) => {
                        let key = object.key();
                        keys.push(key.clone());
                        let stored = Stored {
                            object: object.clone(),
                            file: file.clone(),
                            modified,
                        };
                        insert_newest(loaded, key, stored);
                    }
                    Err(rejected) => {
                        keys.extend(rejected.key.clone());
                        // The documents are kept only to rewrite files; the errors move out.
                        for error in std::mem::take(&mut rejected.errors) {
                            loaded.errors.push(LoadError {
                                file: file.clone(),
                                key: rejected.key.clone(),
                                error,
                            });
                        }
                    }
                }
            }
        }
        loaded.file_keys.insert(file.clone(), keys);
        loaded.documents.insert(file, documents);
    }

    /// Stores valid objects, each in `<kind>.<ns>.<name>.yaml`, replacing the
    /// same object wherever it was. Returns kubectl's line for each.
    pub fn apply(&self, objects: Vec<Object>) -> Result<Vec<(Object, ApplyOutcome)>, ConfigError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| ConfigError::io(&self.dir, e))?;
        let names: Vec<String> = objects.iter().map(|o| o.name().to_string()).collect();
        let named =
            |from: usize| -> Vec<&str> { names[from..].iter().map(String::as_str).collect() };
        let mut loaded = self.load_named(&named(0))?;
        let mut out = Vec::new();
        for (i, object) in objects.into_iter().enumerate() {
            let key = object.key();
            let target = self.dir.join(key.file_name());
            let holders = loaded.files_holding(&key);
            let outcome = match loaded.objects.get(&key) {
                None => ApplyOutcome::Created,
                Some(s) if s.object.raw == object.raw && holders == [s.file.clone()] => {
                    ApplyOutcome::Unchanged
                }
                Some(_) => ApplyOutcome::Configured,
            };
            if outcome != ApplyOutcome::Unchanged {
                let mut text = object.text.clone();
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                // New file first, old copies after: a watcher never sees the object gone.
                atomic::write(&target, text.as_bytes())?;
                for file in holders.iter().filter(|f| **f != target) {
                    remove_from_file(&loaded, file, &key)?;
                }
                // Later objects of this same call see this one's new home.
                if i + 1 < names.len() {
                    loaded = self.load_named(&named(i + 1))?;
                }
            }
            out.push((object, outcome));
        }
        Ok(out)
    }

    /// The object `key`, or kubectl's NotFound.
    pub fn get(&self, key: &ObjectKey) -> Result<Stored, ConfigError> {
        let loaded = self.load_named(&[&key.name])?;
        loaded
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| not_found(key))
    }

    /// Removes `key` from every file holding it (valid or not). Deleting a
    /// Namespace also deletes the objects in it. Returns what was removed.
    pub fn delete(&self, key: &ObjectKey) -> Result<Vec<ObjectKey>, ConfigError> {
        // A Namespace takes every object in it: only then is all read.
        let loaded = if key.kind == "Namespace" {
            self.load()?
        } else {
            self.load_named(&[&key.name])?
        };
        let mut doomed = vec![key.clone()];
        if key.kind == "Namespace" {
            let mut inside: Vec<ObjectKey> = loaded
                .file_keys
                .values()
                .flatten()
                .filter(|k| k.namespace == key.name)
                .cloned()
                .collect();
            inside.sort();
            inside.dedup();
            doomed.extend(inside);
        }
        if loaded.files_holding(key).is_empty() {
            return Err(not_found(key));
        }
        for k in &doomed {
            // Each removal rewrites files; reload so the next sees them as they are.
            let loaded = self.load_named(&[&k.name])?;
            for file in loaded.files_holding(k) {
                remove_from_file(&loaded, &file, k)?;
            }
        }
        Ok(doomed)
    }
}

/// kubectl's NotFound for `key`.
pub fn not_found(key: &ObjectKey) -> ConfigError {
    let resource = super::kinds::by_kind(key.kind)
        .map(|k| k.resource())
        .unwrap_or_else(|| key.kind.to_ascii_lowercase());
    ConfigError::NotFound {
        resource,
        name: key.name.clone(),
    }
}

fn insert_newest(loaded: &mut Loaded, key: ObjectKey, stored: Stored) {
    if let Some(old) = loaded.objects.get(&key) {
        if old.file != stored.file {
            let (winner, loser) = if stored.modified >= old.modified {
                (&stored.file, &old.file)
            } else {
                (&old.file, &stored.file)
            };
            loaded.warnings.push(format!(
                "{key} is defined in both {} and {}; using {} (newer)",
                loser.display(),
                winner.display(),
                winner.display()
            ));
        }
        if stored.modified < old.modified {
            return;
        }
    }
    loaded.objects.insert(key, stored);
}

/// Rewrites `file` without `key`'s documents (or list items); removes the
/// file when nothing is left.
fn remove_from_file(loaded: &Loaded, file: &Path, key: &ObjectKey) -> Result<(), ConfigError> {
    let Some(documents) = loaded.documents.get(file) else {
        return Ok(());
    };
    let mut kept = Vec::new();
    for doc in documents {
        let names_key = |r: &Result<Object, super::parse::Rejected>| match r {
            Ok(o) => o.key() == *key,
            Err(rej) => rej.key.as_ref() == Some(key),
        };
        if !doc.objects.iter().any(names_key) {
            kept.push(doc.text.clone());
        } else if doc.objects.len() > 1 {
            // A `kind: List`: keep its other items.
            if let Some(text) = list_without(doc, &names_key) {
                kept.push(text);
            }
        }
    }
    if kept.is_empty() {
        return match std::fs::remove_file(file) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ConfigError::io(file, e)),
        };
    }
    let mut text = String::new();
    for (i, doc) in kept.iter().enumerate() {
        if i > 0 {
            text.push_str("---\n");
        }
        text.push_str(doc);
        if !doc.ends_with('\n') {
            text.push('\n');
        }
    }
    atomic::write(file, text.as_bytes())
}

fn list_without(
    doc: &Document,
    drop: &dyn Fn(&Result<Object, super::parse::Rejected>) -> bool,
) -> Option<String> {
    let mut value: Value = serde_yaml::from_str(&doc.text).ok()?;
    let items = value.get_mut("items")?.as_sequence_mut()?;
    let mut i = 0;
    items.retain(|_| {
        let keep = !doc.objects.get(i).is_some_and(drop);
        i += 1;
        keep
    });
    if items.is_empty() {
        return None;
    }
    serde_yaml::to_string(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::manifests::{objects, EGRESS_NAMESPACE, GATEWAY, SERVICE_ENTRY};

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn se_key() -> ObjectKey {
        ObjectKey::new("ServiceEntry", "istio-egress", "httpbin.org")
    }

    #[test]
    fn apply_created_unchanged_configured_then_delete() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let outcomes = |objs: Vec<Object>| -> Vec<String> {
            store
                .apply(objs)
                .unwrap()
                .iter()
                .map(|(o, out)| format!("{} {out}", o.kubectl_ref()))
                .collect()
        };
        assert_eq!(
            outcomes(objects(&format!(
                "{EGRESS_NAMESPACE}---\n{GATEWAY}---\n{SERVICE_ENTRY}"
            ))),
            [
                "namespace/istio-egress created",
                "gateway.gateway.networking.k8s.io/egress-waypoint created",
                "serviceentry.networking.istio.io/httpbin.org created",
            ]
        );
        assert_eq!(
            files(tmp.path()),
            [
                "gateway.istio-egress.egress-waypoint.yaml",
                "namespace.istio-egress.yaml",
                "serviceentry.istio-egress.httpbin.org.yaml",
            ]
        );
        assert_eq!(
            outcomes(objects(SERVICE_ENTRY)),
            ["serviceentry.networking.istio.io/httpbin.org unchanged"]
        );
        let changed = SERVICE_ENTRY.replace("number: 80", "number: 8080");
        assert_eq!(
            outcomes(objects(&changed)),
            ["serviceentry.networking.istio.io/httpbin.org configured"]
        );
        assert_eq!(
            std::fs::read_to_string(
                tmp.path()
                    .join("serviceentry.istio-egress.httpbin.org.yaml")
            )
            .unwrap(),
            changed
        );
        assert_eq!(store.delete(&se_key()).unwrap(), [se_key()]);
        let err = store.delete(&se_key()).unwrap_err().to_string();
        assert_eq!(
            err,
            "Error from server (NotFound): serviceentries.networking.istio.io \"httpbin.org\" not found"
        );
        assert!(store.get(&se_key()).is_err());
    }

    #[test]
    fn apply_moves_object_out_of_a_hand_written_multi_doc_file() {
        let tmp = tempfile::tempdir().unwrap();
        let hand = tmp.path().join("mine.yaml");
        std::fs::write(&hand, format!("# my setup\n{GATEWAY}---\n{SERVICE_ENTRY}")).unwrap();
        let store = Store::new(tmp.path());
        let changed = SERVICE_ENTRY.replace("resolution: DNS", "resolution: DNS_ROUND_ROBIN");
        let out = store.apply(objects(&changed)).unwrap();
        assert_eq!(out[0].1, ApplyOutcome::Configured);
        let rest = std::fs::read_to_string(&hand).unwrap();
        assert_eq!(rest, format!("# my setup\n{GATEWAY}"));
        let loaded = store.load().unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(loaded.objects.len(), 2);
        assert_eq!(loaded.objects[&se_key()].object.text, changed);
        // Deleting the last object of a hand-written file removes the file.
        store
            .delete(&ObjectKey::new(
                "Gateway",
                "istio-egress",
                "egress-waypoint",
            ))
            .unwrap();
        assert!(!hand.exists());
    }

    #[test]
    fn apply_replaces_the_same_object_in_a_file_of_its_own() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("se.yml"), SERVICE_ENTRY).unwrap();
        let store = Store::new(tmp.path());
        store
            .apply(objects(&SERVICE_ENTRY.replace("number: 80", "number: 81")))
            .unwrap();
        assert_eq!(
            files(tmp.path()),
            ["serviceentry.istio-egress.httpbin.org.yaml"]
        );
    }

    #[test]
    fn newest_duplicate_wins_with_a_warning() {
        let tmp = tempfile::tempdir().unwrap();
        let old = tmp.path().join("b-old.yaml");
        let new = tmp.path().join("a-new.yaml");
        std::fs::write(&old, SERVICE_ENTRY).unwrap();
        std::fs::write(&new, SERVICE_ENTRY.replace("number: 80", "number: 81")).unwrap();
        let past = SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(past)
            .unwrap();
        let loaded = Store::new(tmp.path()).load().unwrap();
        assert_eq!(loaded.objects[&se_key()].file, new);
        assert_eq!(loaded.warnings.len(), 1);
        assert!(
            loaded.warnings[0].contains("a-new.yaml") && loaded.warnings[0].contains("b-old.yaml")
        );
    }

    #[test]
    fn loader_ignores_dot_entries_and_other_extensions() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(".hidden.yaml"), SERVICE_ENTRY).unwrap();
        std::fs::write(tmp.path().join("notes.txt"), "not yaml: [").unwrap();
        std::fs::create_dir(tmp.path().join(".egret")).unwrap();
        std::fs::write(tmp.path().join("bad.yaml"), "a: [").unwrap();
        let loaded = Store::new(tmp.path()).load().unwrap();
        assert!(loaded.objects.is_empty());
        assert_eq!(loaded.broken_files, [tmp.path().join("bad.yaml")]);
        assert!(loaded.errors[0]
            .error
            .to_string()
            .contains("bad.yaml: line 1: YAML syntax error"));
    }

    #[test]
    fn named_load_skips_only_files_that_cannot_hold_the_name() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("se.yaml"), SERVICE_ENTRY).unwrap();
        std::fs::write(tmp.path().join("gw.yaml"), GATEWAY).unwrap();
        // An escaped name does not appear verbatim: the file is still read.
        let escaped = SERVICE_ENTRY
            .replace("httpbin.org", "other.org")
            .replace("name: other.org", "name: \"httpbin\\x2eorg\"");
        std::fs::write(tmp.path().join("escaped.yaml"), escaped).unwrap();
        let store = Store::new(tmp.path());
        let loaded = store.load_named(&["httpbin.org"]).unwrap();
        let mut files: Vec<_> = loaded.file_keys.keys().cloned().collect();
        files.sort();
        assert_eq!(
            files,
            [tmp.path().join("escaped.yaml"), tmp.path().join("se.yaml")]
        );
        assert!(
            loaded.warnings[0].contains("escaped.yaml"),
            "{:?}",
            loaded.warnings
        );
        assert_eq!(store.get(&se_key()).unwrap().object.name(), "httpbin.org");
    }

    #[test]
    fn deleting_a_namespace_deletes_its_objects() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let other = SERVICE_ENTRY.replace("namespace: istio-egress", "namespace: other");
        store
            .apply(objects(&format!(
                "{EGRESS_NAMESPACE}---\n{GATEWAY}---\n{SERVICE_ENTRY}---\n{other}"
            )))
            .unwrap();
        let gone = store
            .delete(&ObjectKey::new("Namespace", "", "istio-egress"))
            .unwrap();
        assert_eq!(gone.len(), 3);
        assert_eq!(files(tmp.path()), ["serviceentry.other.httpbin.org.yaml"]);
    }
}
