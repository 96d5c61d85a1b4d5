//! `egret apply -f FILE|DIR|-`: validate every object, then store them all
//! in the config folder (nothing is stored when any object is bad).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::config::object::{Object, DEFAULT_NAMESPACE};
use crate::config::parse::parse_text;
use crate::config::store::Store;

/// Arguments of `egret apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Manifest file, folder of manifests, or `-` for standard input.
    #[arg(short = 'f', long = "filename", required = true)]
    pub filename: Vec<PathBuf>,
    /// Namespace for objects that name none (objects naming another are refused).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// Runs `egret apply` against the folder `config_dir`.
pub fn run(config_dir: &Path, args: ApplyArgs) -> anyhow::Result<()> {
    let objects = read_manifests(&args.filename, args.namespace.as_deref())?;
    if objects.is_empty() {
        bail!("no objects passed to apply");
    }
    let applied = Store::new(config_dir).apply(objects)?;
    for (object, outcome) in applied {
        println!("{} {outcome}", object.kubectl_ref());
    }
    Ok(())
}

/// Reads and validates every object in `paths` (files, folders of
/// `*.yaml|*.yml|*.json`, `-` for stdin). Any bad object fails the whole
/// read, with every problem listed.
pub fn read_manifests(paths: &[PathBuf], namespace: Option<&str>) -> anyhow::Result<Vec<Object>> {
    let mut sources = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading standard input")?;
            sources.push(("<stdin>".to_string(), text));
        } else if path.is_dir() {
            for file in manifest_files(path)? {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                sources.push((file.display().to_string(), text));
            }
        } else {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("the path \"{}\" cannot be read", path.display()))?;
            sources.push((path.display().to_string(), text));
        }
    }
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for (label, text) in sources {
        match parse_text(&text, &label, namespace.unwrap_or(DEFAULT_NAMESPACE)) {
            Err(e) => errors.push(e.to_string()),
            Ok(docs) => {
                for result in docs.into_iter().flat_map(|d| d.objects) {
                    match result {
                        Ok(o) => objects.push(o),
                        Err(rejected) => {
                            errors.extend(rejected.errors.iter().map(|e| e.to_string()))
                        }
                    }
                }
            }
        }
    }
    if let Some(ns) = namespace {
        for o in &objects {
            if o.info.namespaced && o.namespace() != ns {
                errors.push(format!(
                    "the namespace from the provided object \"{}\" does not match the namespace \"{ns}\". You must pass '--namespace={}' to perform this operation.",
                    o.namespace(),
                    o.namespace()
                ));
            }
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(objects)
}

/// Manifest files directly in `dir`, in name order (like kubectl without -R).
fn manifest_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATEWAY: &str = include_str!("../config/testdata/step2-gateway.yaml");
    const SERVICE_ENTRY: &str = include_str!("../config/testdata/step3-serviceentry.yaml");

    fn apply_text(dir: &Path, text: &str) -> anyhow::Result<()> {
        let file = dir.join("input.yaml.in");
        std::fs::write(&file, text)?;
        run(
            &dir.join("cfg"),
            ApplyArgs {
                filename: vec![file],
                namespace: None,
            },
        )
    }

    #[test]
    fn apply_walkthrough_then_reject_bad_batch_changing_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        apply_text(tmp.path(), GATEWAY).unwrap();
        apply_text(tmp.path(), SERVICE_ENTRY).unwrap();
        let cfg = tmp.path().join("cfg");
        let stored =
            std::fs::read_to_string(cfg.join("serviceentry.istio-egress.httpbin.org.yaml"))
                .unwrap();
        assert_eq!(stored, SERVICE_ENTRY);
        let list = || {
            let mut v: Vec<_> = std::fs::read_dir(&cfg)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            v.sort();
            v
        };
        let before = list();
        // One good object and one with a duplicate port: neither is stored.
        let bad = format!(
            "{}---\n{}",
            GATEWAY.replace("egress-waypoint", "other"),
            SERVICE_ENTRY.replace(
                "  resolution: DNS",
                "  - name: web\n    number: 80\n  resolution: DNS"
            )
        );
        let err = apply_text(tmp.path(), &bad).unwrap_err().to_string();
        assert!(
            err.contains(
                "ServiceEntry istio-egress/httpbin.org: spec.ports[1].number: duplicate port 80"
            ),
            "{err}"
        );
        let after = list();
        assert_eq!(before, after);
    }

    #[test]
    fn namespace_flag_mismatch_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("se.yaml");
        std::fs::write(&file, SERVICE_ENTRY).unwrap();
        let err = read_manifests(&[file], Some("other"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not match the namespace \"other\""),
            "{err}"
        );
    }
}
