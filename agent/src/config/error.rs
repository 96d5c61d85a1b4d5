//! Errors of the config module: every message names the file or the object
//! (kind/namespace/name) and the field, so a user can fix the manifest.

use std::path::PathBuf;

/// Something wrong with a manifest, the folder, or the agent's state.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The text is not YAML (or JSON).
    #[error("{file}: line {line}: YAML syntax error: {reason}")]
    Yaml {
        file: String,
        line: usize,
        reason: String,
    },
    /// A document without the parts every object needs.
    #[error("{file}: document {document}: {reason}")]
    Envelope {
        file: String,
        document: usize,
        reason: String,
    },
    /// A kind egret does not know.
    #[error("{file}: no matches for kind \"{kind}\" in version \"{api_version}\" (supported kinds: {supported})")]
    UnknownKind {
        file: String,
        kind: String,
        api_version: String,
        supported: String,
    },
    /// A field of a known object is wrong: `ServiceEntry ns/name: spec.x: reason`.
    #[error("{object}: {field}: {reason}")]
    Invalid {
        object: String,
        field: String,
        reason: String,
    },
    /// A resource type name kubectl would not recognise either.
    #[error("the server doesn't have a resource type \"{0}\"")]
    UnknownResourceType(String),
    /// The object is not in the folder.
    #[error("Error from server (NotFound): {resource} \"{name}\" not found")]
    NotFound { resource: String, name: String },
    /// The object already exists (`create`).
    #[error("Error from server (AlreadyExists): {resource} \"{name}\" already exists")]
    AlreadyExists { resource: String, name: String },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file of the agent's own state could not be read back.
    #[error("{}: {reason}", path.display())]
    State { path: PathBuf, reason: String },
    /// Address auto-allocation failed.
    #[error(transparent)]
    Alloc(#[from] super::allocate::AllocError),
    /// The folder watcher could not be set up.
    #[error("watching {}: {source}", path.display())]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
}

impl ConfigError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ConfigError::Io {
            path: path.into(),
            source,
        }
    }
}
