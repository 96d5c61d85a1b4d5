//! Folder changes -> objects in force -> snapshot, by increments: only the
//! files that changed are parsed, only the objects they name are resolved,
//! only their addresses and status files are touched. The compile itself
//! runs over all objects (it is linear and cheap next to the rest).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::allocate::{AllocKey, Allocator};
use super::compile::{compile, wanted_addresses, wanted_by};
use super::error::ConfigError;
use super::folder::{Changes, Folder, Held};
use super::object::{Object, ObjectKey};
use super::snapshot::{NamespaceInfo, Snapshot, Waypoint, WaypointRef};
use super::status::{self, StatusWriter};
use super::version::Version;

/// Turns the folder's content into snapshots, remembering the last good
/// version of every object.
#[derive(Debug)]
pub struct Reconciler {
    folder: Folder,
    allocator: Allocator,
    status: StatusWriter,
    in_force: BTreeMap<ObjectKey, Arc<Version>>,
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
        Ok(Reconciler {
            folder: Folder::new(config_dir),
            allocator: Allocator::load(&state_dir.join("addresses.json"))?,
            status: StatusWriter::new(state_dir),
            in_force: BTreeMap::new(),
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

    /// Rescans the whole folder (files whose `stat` is unchanged are not
    /// read) and writes status. Returns a new snapshot when the objects in
    /// force changed (always on the first call), `None` when nothing did.
    pub fn reload(&mut self) -> Result<Option<Snapshot>, ConfigError> {
        let changes = self.folder.rescan()?;
        let snapshot = self.settle(changes)?;
        self.write_status()?;
        Ok(snapshot)
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

    /// Writes the status files queued by the last reload.
    pub fn write_status(&mut self) -> Result<(), ConfigError> {
        self.status.flush()
    }

    /// Resolves the objects `changes` names, then allocates, compiles and
    /// queues status when anything in force changed.
    fn settle(&mut self, changes: Changes) -> Result<Option<Snapshot>, ConfigError> {
        let started = Instant::now();
        let first = self.generation == 0;
        let mut changed: Vec<(ObjectKey, Option<Arc<Version>>)> = Vec::new();
        for key in &changes.keys {
            let next = match self.folder.held(key) {
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
                    self.warn_once(key, lines);
                    Some(version)
                }
                Held::Invalid => {
                    self.warn_once(key, BTreeSet::new());
                    self.in_force.get(key).cloned()
                }
                Held::Absent => {
                    self.warned.remove(key);
                    None
                }
            };
            let old = match &next {
                Some(v) => self.in_force.insert(key.clone(), v.clone()),
                None => self.in_force.remove(key),
            };
            if old.as_ref().map(|v| v.digest) != next.as_ref().map(|v| v.digest) {
                changed.push((key.clone(), old));
            }
        }
        self.log_problems(&changes);
        if !first && changed.is_empty() {
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
        let mut snapshot = compile(self.objects(), self.allocator.assigned());
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
                    Some(k) if self.in_force.contains_key(k) => {
                        "the last good version stays in force"
                    }
                    Some(_) => "it is not in force",
                    None => "its objects keep their last good versions",
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
#[path = "reconciler_tests.rs"]
mod tests;
