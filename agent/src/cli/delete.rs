//! `egret delete KIND NAME… [-n NS]` or `egret delete -f FILE`: remove objects
//! from the config folder. Deleting a Namespace deletes what is in it.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::config::kinds;
use crate::config::object::ObjectKey;
use crate::config::store::Store;
use crate::config::ConfigError;

/// Arguments of `egret delete`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Resource type (serviceentry, se, gateway, gtw, namespace, ns…) or TYPE/NAME.
    pub kind: Option<String>,
    /// Object names.
    pub names: Vec<String>,
    /// Namespace (default `default`).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Delete the objects named in these manifests (`-` for stdin).
    #[arg(short = 'f', long = "filename", conflicts_with = "kind")]
    pub filename: Vec<PathBuf>,
    /// Succeed when an object is not there.
    #[arg(long)]
    pub ignore_not_found: bool,
}

/// Runs `egret delete` against the folder `config_dir`.
pub fn run(config_dir: &Path, args: DeleteArgs) -> anyhow::Result<()> {
    let keys = targets(&args)?;
    let store = Store::new(config_dir);
    let mut errors = Vec::new();
    for key in keys {
        match store.delete(&key) {
            Ok(_) => {
                let kind = kinds::by_kind(key.kind)
                    .map_or_else(|| key.kind.to_string(), |k| k.qualified_kind());
                println!("{kind} \"{}\" deleted", key.name);
            }
            Err(ConfigError::NotFound { .. }) if args.ignore_not_found => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(())
}

/// The objects the arguments name.
fn targets(args: &DeleteArgs) -> anyhow::Result<Vec<ObjectKey>> {
    if !args.filename.is_empty() {
        let objects = super::apply::read_manifests(&args.filename, args.namespace.as_deref())?;
        return Ok(objects.iter().map(|o| o.key()).collect());
    }
    let Some(kind) = args.kind.as_deref() else {
        bail!("You must provide one or more resources by argument or filename.");
    };
    let (kind, mut names) = match kind.split_once('/') {
        Some((k, n)) => (k, vec![n.to_string()]),
        None => (kind, Vec::new()),
    };
    names.extend(args.names.iter().cloned());
    if names.is_empty() {
        bail!("resource(s) were provided, but no name was specified");
    }
    let info = kinds::resolve(kind)?;
    Ok(names
        .iter()
        .map(|n| kinds::key_for(info, args.namespace.as_deref(), n))
        .collect())
}
