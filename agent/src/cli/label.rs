//! `egret label KIND NAME key=value… key-… [--overwrite]`: kubectl's label
//! command on an object of the config folder.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::bail;
use serde_yaml::{Mapping, Value};

use crate::config::kinds;
use crate::config::parse::parse_object;
use crate::config::store::Store;

/// Arguments of `egret label`.
#[derive(Debug, clap::Args)]
pub struct LabelArgs {
    /// Resource type (namespace, ns, serviceentry, se, gateway…).
    pub kind: String,
    /// Object name.
    pub name: String,
    /// `key=value` to set, `key-` to remove.
    #[arg(required = true)]
    pub labels: Vec<String>,
    /// Replace a label that already has a different value.
    #[arg(long)]
    pub overwrite: bool,
    /// Namespace (default `default`).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// One requested change.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    Set(String, String),
    Remove(String),
}

fn parse_change(arg: &str) -> anyhow::Result<Change> {
    if let Some((k, v)) = arg.split_once('=') {
        if k.is_empty() {
            bail!("invalid label spec: {arg}");
        }
        return Ok(Change::Set(k.to_string(), v.to_string()));
    }
    match arg.strip_suffix('-') {
        Some(k) if !k.is_empty() => Ok(Change::Remove(k.to_string())),
        _ => bail!("invalid label spec: {arg}"),
    }
}

/// Applies changes to `labels` with kubectl's rules; returns whether anything changed.
fn change_labels(
    labels: &mut BTreeMap<String, String>,
    changes: &[Change],
    overwrite: bool,
) -> anyhow::Result<bool> {
    let mut changed = false;
    for change in changes {
        match change {
            Change::Set(k, v) => match labels.get(k) {
                Some(old) if old == v => {}
                Some(old) if !overwrite => {
                    bail!("'{k}' already has a value ({old}), and --overwrite is false")
                }
                _ => {
                    labels.insert(k.clone(), v.clone());
                    changed = true;
                }
            },
            Change::Remove(k) => {
                if labels.remove(k).is_some() {
                    changed = true;
                } else {
                    eprintln!("label \"{k}\" not found.");
                }
            }
        }
    }
    Ok(changed)
}

/// Runs `egret label` against the folder `config_dir`.
pub fn run(config_dir: &Path, args: LabelArgs) -> anyhow::Result<()> {
    let changes = args
        .labels
        .iter()
        .map(|a| parse_change(a))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let info = kinds::resolve(&args.kind)?;
    let key = kinds::key_for(info, args.namespace.as_deref(), &args.name);
    let store = Store::new(config_dir);
    let stored = store.get(&key)?;
    let mut labels = stored.object.meta.labels.clone();
    let reference = stored.object.kubectl_ref();
    if !change_labels(&mut labels, &changes, args.overwrite)? {
        println!("{reference} not labeled");
        return Ok(());
    }
    let mut raw = stored.object.raw.clone();
    set_labels(&mut raw, &labels);
    let text = serde_yaml::to_string(&raw)?;
    let namespace = stored.object.namespace().to_string();
    let object = parse_object(raw, text, &stored.file.display().to_string(), 1, &namespace)
        .map_err(|r| {
            anyhow::anyhow!(
                "{}",
                r.errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })?;
    store.apply(vec![object])?;
    println!("{reference} labeled");
    Ok(())
}

fn set_labels(raw: &mut Value, labels: &BTreeMap<String, String>) {
    let Some(map) = raw.as_mapping_mut() else {
        return;
    };
    let meta = map
        .entry(Value::from("metadata"))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    let Some(meta) = meta.as_mapping_mut() else {
        return;
    };
    if labels.is_empty() {
        meta.remove("labels");
        return;
    }
    let labels: Mapping = labels
        .iter()
        .map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str())))
        .collect();
    meta.insert(Value::from("labels"), Value::Mapping(labels));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// (existing labels, arguments, --overwrite, Ok((changed, result)) or Err(message)).
    type Case = (
        Vec<(&'static str, &'static str)>,
        Vec<&'static str>,
        bool,
        Result<(bool, Vec<(&'static str, &'static str)>), &'static str>,
    );

    #[test]
    fn kubectl_label_rules() {
        let cases: Vec<Case> = vec![
            (vec![], vec!["a=1"], false, Ok((true, vec![("a", "1")]))),
            (
                vec![("a", "1")],
                vec!["a=1"],
                false,
                Ok((false, vec![("a", "1")])),
            ),
            (
                vec![("a", "1")],
                vec!["a=2"],
                false,
                Err("'a' already has a value (1), and --overwrite is false"),
            ),
            (
                vec![("a", "1")],
                vec!["a=2"],
                true,
                Ok((true, vec![("a", "2")])),
            ),
            (
                vec![("a", "1"), ("b", "2")],
                vec!["a-"],
                false,
                Ok((true, vec![("b", "2")])),
            ),
            (vec![], vec!["a-"], false, Ok((false, vec![]))),
        ];
        for (existing, args, overwrite, want) in cases {
            let changes: Vec<Change> = args.iter().map(|a| parse_change(a).unwrap()).collect();
            let mut l = labels(&existing);
            let got = change_labels(&mut l, &changes, overwrite);
            match want {
                Ok((changed, result)) => {
                    assert_eq!(got.unwrap(), changed, "{args:?}");
                    assert_eq!(l, labels(&result), "{args:?}");
                }
                Err(msg) => assert!(got.unwrap_err().to_string().contains(msg), "{args:?}"),
            }
        }
        assert!(parse_change("=x").is_err());
        assert!(parse_change("-").is_err());
        assert!(parse_change("novalue").is_err());
    }
}
