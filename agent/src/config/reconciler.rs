//! Folder changes -> objects in force -> snapshot, by increments: only the
//! files that changed are parsed, only the objects they name are resolved,
//! only their addresses and status files are touched. The compile itself
//! runs over all objects (it is linear and cheap next to the rest).
//!
//! Last good, durable, fail-closed: every accepted version is kept on disk
//! ([`LastGood`]); an object whose source is refused keeps its last good
//! version — from memory while the agent runs, from disk after a restart
//! (a file too broken to name its objects is matched to them through the
//! source recorded with each version). One refused with no last good
//! version is [`Unaccepted`]: left out, or stood in for by a fail-closed
//! stand-in when its kind has one. What was refused, and what runs
//! instead, is logged and written for `egret get` / `egret status`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::allocate::{AllocKey, Allocator};
use super::compile::{compile_with, wanted_addresses, wanted_by};
use super::error::ConfigError;
use super::folder::{Changes, Folder, Held};
use super::last_good::LastGood;
use super::object::{Object, ObjectKey};
use super::refused::{self, InForce, Refused};
use super::snapshot::{NamespaceInfo, Snapshot, Waypoint, WaypointRef};
use super::status::{self, StatusWriter};
use super::unaccepted::{has_stand_in, Unaccepted};
use super::version::Version;

/// Turns the folder's content into snapshots, remembering the last good
/// version of every object.
#[derive(Debug)]
pub struct Reconciler {
    folder: Folder,
    allocator: Allocator,
    status: StatusWriter,
    state_dir: PathBuf,
    last_good: LastGood,
    in_force: BTreeMap<ObjectKey, Arc<Version>>,
    /// Refused objects with no last good version.
    unaccepted: BTreeMap<ObjectKey, Arc<Unaccepted>>,
    /// Every refused object and what runs instead.
    refused: BTreeMap<ObjectKey, Refused>,
    /// `refused` changed since it was last written.
    refused_dirty: bool,
    /// Error lines logged per file, so each is logged once while it lasts.
    logged: HashMap<PathBuf, BTreeSet<String>>,
    /// Duplicate-definition warnings logged per object.
    warned: HashMap<ObjectKey, BTreeSet<String>>,
    /// What status depends on beyond the object itself: when it moves,
    /// every status is rendered again.
    bindings: Option<(
        HashMap<String, NamespaceInfo>,
        HashMap<WaypointRef, Waypoint>,
    )>,
    generation: u64,
}

impl Reconciler {
    /// A reconciler for `config_dir`, keeping its state in `state_dir`.
    pub fn new(config_dir: &Path, state_dir: &Path) -> Result<Self, ConfigError> {
        std::fs::create_dir_all(state_dir).map_err(|e| ConfigError::io(state_dir, e))?;
        let (last_good, corrupt) = LastGood::open(state_dir);
        for c in corrupt {
            tracing::error!("{c}");
        }
        Ok(Reconciler {
            folder: Folder::new(config_dir),
            allocator: Allocator::load(&state_dir.join("addresses.json"))?,
            status: StatusWriter::new(state_dir),
            state_dir: state_dir.to_path_buf(),
            last_good,
            in_force: BTreeMap::new(),
            unaccepted: BTreeMap::new(),
            refused: BTreeMap::new(),
            // Written at the first reload, even when empty.
            refused_dirty: true,
            logged: HashMap::new(),
            warned: HashMap::new(),
            bindings: None,
            generation: 0,
        })
    }

    /// The objects in force (typed view only: `raw` and `text` stay in the files).
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.in_force.values().map(|v| &v.object)
    }

    /// Refused objects with no last good version (their stand-ins are in
    /// the snapshot when their kind has one).
    pub fn unaccepted(&self) -> impl Iterator<Item = &Unaccepted> {
        self.unaccepted.values().map(|u| &**u)
    }

    /// Every refused object and what runs instead.
    pub fn refused(&self) -> impl Iterator<Item = &Refused> {
        self.refused.values()
    }

    /// Rescans the whole folder (files whose `stat` is unchanged are not
    /// read) and writes status. Returns a new snapshot when the objects in
    /// force changed (always on the first call), `None` when nothing did.
    pub fn reload(&mut self) -> Result<Option<Snapshot>, ConfigError> {
        let snapshot = self.rescan()?;
        self.write_status()?;
        Ok(snapshot)
    }

    /// Like [`Reconciler::reload`], leaving what is to be written queued
    /// for [`Reconciler::write_status`], so the snapshot can go out first.
    pub fn rescan(&mut self) -> Result<Option<Snapshot>, ConfigError> {
        let mut changes = self.folder.rescan()?;
        if self.generation == 0 {
            self.match_last_good(&mut changes);
        }
        self.settle(changes)
    }

    /// At start: a stored version whose object no file names is either in
    /// a file too broken to name it (then it is held invalid, and its last
    /// good version stays) or gone (deleted while the agent was stopped).
    fn match_last_good(&mut self, changes: &mut Changes) {
        let unnamed: Vec<(ObjectKey, PathBuf)> = self
            .last_good
            .keys()
            .filter(|k| self.folder.files_naming(k).is_empty())
            .filter_map(|k| Some((k.clone(), PathBuf::from(&self.last_good.get(k)?.source))))
            .collect();
        for (key, source) in unnamed {
            if self.folder.is_broken(&source) {
                self.folder.recover(&source, key.clone());
                changes.keys.insert(key);
            } else {
                self.last_good.remove(&key);
            }
        }
    }

    /// Re-reads only `paths` (named by file events). Status is left queued
    /// for [`Reconciler::write_status`], so the snapshot can go out first.
    pub fn reload_paths(
        &mut self,
        paths: impl IntoIterator<Item = PathBuf>,
    ) -> Result<Option<Snapshot>, ConfigError> {
        if self.generation == 0 {
            return self.reload();
        }
        let changes = self.folder.refresh(paths);
        self.settle(changes)
    }

    /// Writes what the last reload queued: status files, last good
    /// versions, the refused list.
    pub fn write_status(&mut self) -> Result<(), ConfigError> {
        self.status.flush()?;
        self.last_good.flush()?;
        if self.refused_dirty {
            let list: Vec<Refused> = self.refused.values().cloned().collect();
            refused::write(&self.state_dir, &list)?;
            self.refused_dirty = false;
        }
        Ok(())
    }

    /// Resolves the objects `changes` names, then allocates, compiles and
    /// queues status when anything in force changed.
    fn settle(&mut self, changes: Changes) -> Result<Option<Snapshot>, ConfigError> {
        let started = Instant::now();
        let first = self.generation == 0;
        let mut changed: Vec<(ObjectKey, Option<Arc<Version>>)> = Vec::new();
        let mut stand_ins_changed = false;
        let accepted_now = status::rfc3339(SystemTime::now());
        for key in &changes.keys {
            let (next, unaccepted) = match self.folder.held(key) {
                Held::Valid {
                    version,
                    file,
                    shadowed,
                } => {
                    let lines = shadowed
                        .iter()
                        .map(|loser| {
                            format!(
                                "{key} is defined in both {} and {}; using {} (newer)",
                                loser.display(),
                                file.display(),
                                file.display()
                            )
                        })
                        .collect();
                    let source = file.display().to_string();
                    self.last_good
                        .save(&version.object, version.digest, &source, &accepted_now);
                    self.warn_once(key, lines);
                    self.set_refused(key, None);
                    (Some(version), None)
                }
                Held::Invalid { spec } => {
                    let spec = spec.clone();
                    self.warn_once(key, BTreeSet::new());
                    self.refuse(key, spec)
                }
                Held::Absent => {
                    self.warned.remove(key);
                    self.last_good.remove(key);
                    self.set_refused(key, None);
                    (None, None)
                }
            };
            let before = match unaccepted {
                Some(u) => self.unaccepted.insert(key.clone(), Arc::new(u)),
                None => self.unaccepted.remove(key),
            };
            let after = self.unaccepted.get(key);
            stand_ins_changed |= before.map(|u| u.digest()) != after.map(|u| u.digest());
            let old = match &next {
                Some(v) => self.in_force.insert(key.clone(), v.clone()),
                None => self.in_force.remove(key),
            };
            if old.as_ref().map(|v| v.digest) != next.as_ref().map(|v| v.digest) {
                changed.push((key.clone(), old));
            }
        }
        self.log_problems(&changes);
        if !first && changed.is_empty() && !stand_ins_changed {
            return Ok(None);
        }
        let resolved = started.elapsed();

        let allocated = if first {
            // Also releases what addresses.json holds for objects gone while stopped.
            self.allocator
                .reconcile(&wanted_addresses(self.objects()))?;
            true
        } else {
            let (release, want) = self.address_changes(&changed);
            self.allocator.update(&release, &want)?
        };
        if allocated {
            self.allocator.save()?;
        }
        let t = Instant::now();
        let unaccepted = self.unaccepted.values().map(|u| &**u);
        let mut snapshot = compile_with(self.objects(), unaccepted, self.allocator.assigned());
        let compiled = t.elapsed();
        self.generation += 1;
        snapshot.generation = self.generation;
        self.queue_status(&snapshot, &changed);
        tracing::debug!(
            generation = self.generation,
            files = changes.files.len(),
            keys = changes.keys.len(),
            changed = changed.len(),
            resolve_us = resolved.as_micros() as u64,
            compile_us = compiled.as_micros() as u64,
            total_us = started.elapsed().as_micros() as u64,
            "config settled"
        );
        Ok(Some(snapshot))
    }

    /// Addresses to release and to want for the objects that changed.
    fn address_changes(
        &self,
        changed: &[(ObjectKey, Option<Arc<Version>>)],
    ) -> (Vec<AllocKey>, Vec<AllocKey>) {
        let mut release = Vec::new();
        let mut want = Vec::new();
        for (key, old) in changed {
            let before = old.as_ref().map_or_else(Vec::new, |v| wanted_by(&v.object));
            let after = self
                .in_force
                .get(key)
                .map_or_else(Vec::new, |v| wanted_by(&v.object));
            release.extend(before.into_iter().filter(|k| !after.contains(k)));
            want.extend(after);
        }
        (release, want)
    }

    /// Renders the status of what changed; of everything when the
    /// namespaces or waypoints (which every binding depends on) moved.
    fn queue_status(&mut self, snapshot: &Snapshot, changed: &[(ObjectKey, Option<Arc<Version>>)]) {
        let now = status::rfc3339(SystemTime::now());
        let bindings = (snapshot.namespaces.clone(), snapshot.waypoints.clone());
        let all = self.bindings.as_ref() != Some(&bindings);
        self.bindings = Some(bindings);
        let assigned = self.allocator.assigned();
        if all {
            let rendered = status::render(self.objects(), snapshot, assigned, &now);
            self.status.stage_all(rendered);
            return;
        }
        for (key, _) in changed {
            let rendered = self
                .in_force
                .get(key)
                .and_then(|v| status::render_one(&v.object, snapshot, assigned, &now));
            self.status.stage(key.file_name(), rendered);
        }
    }

    /// What stays in force for `key`, whose source is refused: its last
    /// good version from memory, else from disk (after a restart), else a
    /// fail-closed stand-in when its kind has one, else nothing.
    fn refuse(
        &mut self,
        key: &ObjectKey,
        spec: serde_yaml::Value,
    ) -> (Option<Arc<Version>>, Option<Unaccepted>) {
        let errors = self.problems_of(key);
        let kept = match self.in_force.get(key) {
            Some(v) => Some(v.clone()),
            None => self.restore(key),
        };
        let (next, unaccepted, in_force) = match kept {
            Some(version) => {
                let stored = self.last_good.get(key);
                let in_force = InForce::LastGood {
                    accepted: stored.map_or_else(String::new, |s| s.accepted.clone()),
                    source: stored.map_or_else(String::new, |s| s.source.clone()),
                };
                (Some(version), None, in_force)
            }
            None if has_stand_in(key.kind) => {
                let unaccepted = Unaccepted {
                    key: key.clone(),
                    spec,
                };
                (None, Some(unaccepted), InForce::FailClosed)
            }
            None => (None, None, InForce::Nothing),
        };
        let since = self
            .refused
            .get(key)
            .map_or_else(|| status::rfc3339(SystemTime::now()), |r| r.since.clone());
        self.set_refused(key, Some(Refused::new(key, errors, in_force, since)));
        (next, unaccepted)
    }

    /// The last good version of `key` read back from disk; a corrupt one is
    /// reported and counts as none.
    fn restore(&self, key: &ObjectKey) -> Option<Arc<Version>> {
        match self.last_good.load(key) {
            Ok(Some(object)) => Some(Arc::new(Version::new(object))),
            Ok(None) => None,
            Err(corrupt) => {
                tracing::error!("{corrupt}");
                None
            }
        }
    }

    /// Every problem the files naming `key` report about it (or about
    /// themselves, when they cannot be parsed).
    fn problems_of(&self, key: &ObjectKey) -> Vec<String> {
        let mut lines: Vec<String> = self
            .folder
            .files_naming(key)
            .iter()
            .flat_map(|f| self.folder.problems(f))
            .filter(|p| p.key.as_ref().is_none_or(|k| k == key))
            .map(|p| p.message.clone())
            .collect();
        lines.dedup();
        lines
    }

    fn set_refused(&mut self, key: &ObjectKey, report: Option<Refused>) {
        let changed = match report {
            Some(r) => self.refused.insert(key.clone(), r.clone()).as_ref() != Some(&r),
            None => self.refused.remove(key).is_some(),
        };
        self.refused_dirty |= changed;
    }

    /// Logs each file's problems once while they last, with their fate.
    fn log_problems(&mut self, changes: &Changes) {
        let mut files: BTreeSet<&Path> = changes.files.iter().map(PathBuf::as_path).collect();
        // A problem's fate may change with another file (its valid copy went).
        for key in &changes.keys {
            files.extend(self.folder.files_naming(key).iter().map(PathBuf::as_path));
        }
        for file in files {
            let problems = self.folder.problems(file);
            if problems.is_empty() {
                self.logged.remove(file);
                continue;
            }
            let mut lines = BTreeSet::new();
            let before = self.logged.get(file);
            for p in problems {
                let fate = match &p.key {
                    Some(k) => self
                        .refused
                        .get(k)
                        .map_or_else(|| "it is not in force".into(), |r| r.in_force.describe()),
                    None => "its objects keep their last good versions".into(),
                };
                let line = format!("{}; {fate}", p.message);
                if !before.is_some_and(|b| b.contains(&line)) {
                    match &p.key {
                        Some(k) => tracing::error!(
                            file = %file.display(),
                            kind = k.kind,
                            namespace = %k.namespace,
                            name = %k.name,
                            "{line}"
                        ),
                        None => tracing::error!(file = %file.display(), "{line}"),
                    }
                }
                lines.insert(line);
            }
            self.logged.insert(file.to_path_buf(), lines);
        }
    }

    /// Logs duplicate-definition warnings for `key` that are new.
    fn warn_once(&mut self, key: &ObjectKey, lines: BTreeSet<String>) {
        let before = self.warned.remove(key).unwrap_or_default();
        for line in lines.difference(&before) {
            tracing::warn!("{line}");
        }
        if !lines.is_empty() {
            self.warned.insert(key.clone(), lines);
        }
    }
}

#[cfg(test)]
mod tests;
