//! Cluster config: manifests (a folder, or the Kubernetes API) compiled into
//! one immutable [`snapshot::Snapshot`].
//!
//! Flow for a folder: [`watch`] turns file events into changed paths,
//! [`folder`] re-reads only those ([`parse`] and [`kinds`] turn documents
//! into checked [`object::Object`]s, kept slim as [`version::Version`]s),
//! [`reconciler`] keeps the last good version of each (on disk too:
//! [`last_good`]; objects refused with none are [`unaccepted`], reported in
//! [`refused`]), [`allocate`] gives ServiceEntry hosts addresses,
//! [`compile`] builds the snapshot, [`status`] writes what `get` shows.
//! [`store`] is the CLI's side of the folder.

pub mod allocate;
mod atomic;
pub mod compile;
pub mod error;
pub mod file_stamp;
pub mod folder;
pub mod kinds;
pub mod last_good;
pub mod mesh;
pub mod object;
pub mod parse;
pub mod reconciler;
pub mod refused;
pub mod snapshot;
pub mod status;
mod status_writer;
pub mod store;
pub mod unaccepted;
pub mod version;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use compile::{compile, compile_with};
pub use error::ConfigError;

/// The agent's private state folder for a config folder: `<config_dir>/.egret`
/// (a dot entry, so the loader never reads it).
pub fn state_dir(config_dir: &Path) -> PathBuf {
    config_dir.join(".egret")
}

/// Loads and compiles `config_dir`, then watches it (inotify, debounced) and
/// publishes a new snapshot, generation + 1, on every change.
pub async fn start(
    config_dir: PathBuf,
    state_dir: PathBuf,
) -> Result<tokio::sync::watch::Receiver<Arc<snapshot::Snapshot>>, ConfigError> {
    watch::spawn(config_dir, state_dir)
}
