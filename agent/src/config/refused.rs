//! What the agent refused and what runs in its place, kept in
//! `<state>/refused.yaml` for `egret get` and `egret status` (the log says
//! it as it happens): the last good version (from memory, or from disk
//! after a restart), a fail-closed stand-in, or nothing.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::atomic;
use super::error::ConfigError;
use super::object::ObjectKey;
use super::status::StatusCondition;

/// File name under the state folder.
pub const REFUSED_FILE: &str = "refused.yaml";

/// One refused object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refused {
    /// Kind.
    pub kind: String,
    /// Namespace (empty for cluster-scoped kinds).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Why its current source is refused (object, field, reason).
    pub errors: Vec<String>,
    /// Since when (RFC 3339).
    pub since: String,
    /// What is in force instead.
    pub in_force: InForce,
}

/// What is in force for a refused object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "what")]
pub enum InForce {
    /// Its last good version.
    LastGood {
        /// When that version was accepted (RFC 3339).
        accepted: String,
        /// Where it was read from.
        source: String,
    },
    /// No last good version: a stand-in that denies what it targets.
    FailClosed,
    /// No last good version: the object is not in force.
    Nothing,
}

impl InForce {
    /// How the log and `egret get` say it.
    pub fn describe(&self) -> String {
        match self {
            InForce::LastGood { accepted, source } => {
                format!("the last good version (accepted {accepted} from {source}) stays in force")
            }
            InForce::FailClosed => "no last good version: it denies every request and \
                                    connection to what it targets (fail closed)"
                .to_string(),
            InForce::Nothing => "no last good version: it is not in force".to_string(),
        }
    }
}

impl Refused {
    /// A report for `key`, refused since `since`.
    pub fn new(key: &ObjectKey, errors: Vec<String>, in_force: InForce, since: String) -> Self {
        Refused {
            kind: key.kind.to_string(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            errors,
            since,
            in_force,
        }
    }

    /// Whether this reports on `key`.
    pub fn is_for(&self, key: &ObjectKey) -> bool {
        self.kind == key.kind && self.namespace == key.namespace && self.name == key.name
    }

    /// The `Accepted: False` condition `egret get` shows on the object.
    pub fn condition(&self) -> StatusCondition {
        StatusCondition {
            last_transition_time: self.since.clone(),
            message: format!("{}; {}", self.errors.join("; "), self.in_force.describe()),
            reason: "Invalid".to_string(),
            status: "False".to_string(),
            type_: "Accepted".to_string(),
        }
    }
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(REFUSED_FILE)
}

/// Writes the list (atomically; not rewritten when unchanged).
pub fn write(state_dir: &Path, refused: &[Refused]) -> Result<(), ConfigError> {
    let text = serde_yaml::to_string(refused).unwrap_or_default();
    atomic::write_if_changed(&path(state_dir), text.as_bytes()).map(|_| ())
}

/// The list as last written (empty when there is none or it is unreadable).
pub fn read(state_dir: &Path) -> Vec<Refused> {
    std::fs::read_to_string(path(state_dir))
        .ok()
        .and_then(|t| serde_yaml::from_str(&t).ok())
        .unwrap_or_default()
}
