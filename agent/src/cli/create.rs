//! `egret create namespace NAME`: kubectl's imperative namespace creation,
//! written to the config folder as a Namespace manifest.

use std::path::Path;

use anyhow::bail;

use crate::config::kinds;
use crate::config::object::DEFAULT_NAMESPACE;
use crate::config::parse::parse_text;
use crate::config::store::Store;
use crate::config::ConfigError;

/// Arguments of `egret create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// What to create.
    #[command(subcommand)]
    pub what: CreateKind,
}

/// Objects `egret create` makes.
#[derive(Debug, clap::Subcommand)]
pub enum CreateKind {
    /// A namespace.
    #[command(alias = "ns")]
    Namespace {
        /// Its name.
        name: String,
    },
}

/// Runs `egret create` against the folder `config_dir`.
pub fn run(config_dir: &Path, args: CreateArgs) -> anyhow::Result<()> {
    let CreateKind::Namespace { name } = args.what;
    let text = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n");
    let object = match parse_text(&text, "<create>", DEFAULT_NAMESPACE)?
        .into_iter()
        .flat_map(|d| d.objects)
        .next()
    {
        Some(Ok(o)) => o,
        Some(Err(rejected)) => bail!(
            "{}",
            rejected
                .errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
        None => bail!("invalid namespace name \"{name}\""),
    };
    let store = Store::new(config_dir);
    if store.load()?.objects.contains_key(&object.key()) {
        let info = kinds::by_kind("Namespace").map_or("namespaces".into(), |k| k.resource());
        return Err(ConfigError::AlreadyExists {
            resource: info,
            name,
        }
        .into());
    }
    for (o, outcome) in store.apply(vec![object])? {
        println!("{} {outcome}", o.kubectl_ref());
    }
    Ok(())
}
