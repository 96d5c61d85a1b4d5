//! `egret get KIND [NAME…] [-n NS | -A] [-o yaml|json|name]`: what is in the
//! config folder, with the status the agent wrote, like kubectl shows it.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::bail;
use serde_yaml::{Mapping, Value};

use crate::config::kinds::{self, KindInfo, Spec};
use crate::config::object::{ObjectKey, DEFAULT_NAMESPACE};
use crate::config::refused::{self, InForce, Refused};
use crate::config::store::{not_found, Loaded, Store, Stored};
use crate::config::{last_good, status};

/// Output formats of `egret get`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GetFormat {
    /// The objects as YAML, with status.
    Yaml,
    /// The objects as JSON, with status.
    Json,
    /// `kind.group/name` lines.
    Name,
}

/// Arguments of `egret get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// Resource type: serviceentry (se), gateway (gtw), namespace (ns)…; or TYPE/NAME.
    pub kind: String,
    /// Object names (every object of the type when none).
    pub names: Vec<String>,
    /// Namespace (default `default`).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Output format (a table when unset).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<GetFormat>,
}

/// What `egret get` prints.
#[derive(Debug, Default)]
struct Printed {
    stdout: String,
    stderr: String,
    /// NotFound errors (printed, then the command fails).
    missing: Vec<String>,
}

/// Runs `egret get` against the folder `config_dir`.
pub fn run(config_dir: &Path, args: GetArgs) -> anyhow::Result<()> {
    let printed = get(config_dir, &args)?;
    print!("{}", printed.stdout);
    eprint!("{}", printed.stderr);
    if !printed.missing.is_empty() {
        bail!("{}", printed.missing.join("\n"));
    }
    Ok(())
}

fn get(config_dir: &Path, args: &GetArgs) -> anyhow::Result<Printed> {
    let (kind, mut names) = match args.kind.split_once('/') {
        Some((k, n)) => (k.to_string(), vec![n.to_string()]),
        None => (args.kind.clone(), Vec::new()),
    };
    names.extend(args.names.iter().cloned());
    let info = kinds::resolve(&kind)?;
    let loaded = Store::new(config_dir).load()?;
    let state_dir = crate::config::state_dir(config_dir);
    let refused = refused::read(&state_dir);
    let held_back = last_good_in_force(&state_dir, &refused, &loaded);
    let namespace = args.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
    let scope =
        (info.namespaced && !(args.all_namespaces && names.is_empty())).then_some(namespace);
    let mut found: Vec<&Stored> = Vec::new();
    let mut out = Printed::default();
    if names.is_empty() {
        found.extend(loaded.list(info.kind, scope));
        found.extend(held_back.iter().filter(|s| {
            s.object.info.kind == info.kind && scope.is_none_or(|n| s.object.namespace() == n)
        }));
        found.sort_by_key(|s| s.object.key());
    } else {
        for name in &names {
            let key = kinds::key_for(info, Some(namespace), name);
            let held = held_back.iter().find(|s| s.object.key() == key);
            match loaded.objects.get(&key).or(held) {
                Some(s) => found.push(s),
                None => out
                    .missing
                    .push(match refused.iter().find(|r| r.is_for(&key)) {
                        Some(r) => format!(
                            "{key} is refused: {}; {}",
                            r.errors.join("; "),
                            r.in_force.describe()
                        ),
                        None => not_found(&key).to_string(),
                    }),
            }
        }
    }
    let single = names.len() == 1;
    match args.output {
        Some(GetFormat::Name) => {
            for s in &found {
                out.stdout
                    .push_str(&format!("{}\n", s.object.kubectl_ref()));
            }
        }
        Some(format @ (GetFormat::Yaml | GetFormat::Json)) if !found.is_empty() => {
            let values: Vec<Value> = found
                .iter()
                .map(|s| with_status(&state_dir, &refused, s))
                .collect();
            let value = if single {
                values.into_iter().next().unwrap_or(Value::Null)
            } else {
                list(values)
            };
            out.stdout = if format == GetFormat::Yaml {
                kubectl_quotes(&serde_yaml::to_string(&value)?)
            } else {
                serde_json::to_string_pretty(&value)? + "\n"
            };
        }
        Some(_) => {}
        None if found.is_empty() => {
            if out.missing.is_empty() {
                out.stderr = match scope {
                    Some(ns) => format!("No resources found in {ns} namespace.\n"),
                    None => "No resources found\n".to_string(),
                };
            }
        }
        None => {
            let with_ns = args.all_namespaces && info.namespaced;
            out.stdout = table(info, &found, &state_dir, with_ns, SystemTime::now());
        }
    }
    Ok(out)
}

/// kubectl (go-yaml) quotes ambiguous strings with `"`, serde_yaml with `'`:
/// print `status: "True"` as the user expects.
fn kubectl_quotes(yaml: &str) -> String {
    let re = regex::Regex::new(r#"(?m)(: |- )'([^'"\\]*)'$"#).expect("valid regex");
    re.replace_all(yaml, "$1\"$2\"").into_owned()
}

/// The last good versions the agent runs for refused objects whose source
/// in the folder is invalid (read from its state folder), as stored objects.
fn last_good_in_force(state_dir: &Path, refused: &[Refused], loaded: &Loaded) -> Vec<Stored> {
    refused
        .iter()
        .filter(|r| matches!(r.in_force, InForce::LastGood { .. }))
        .filter_map(|r| {
            let info = kinds::by_kind(&r.kind)?;
            let key = ObjectKey::new(info.kind, r.namespace.clone(), r.name.clone());
            if loaded.objects.contains_key(&key) {
                return None;
            }
            let object = last_good::read_stored(state_dir, &key).ok()??;
            let file = state_dir
                .join(last_good::LAST_GOOD_DIR)
                .join(key.file_name());
            let modified = std::fs::metadata(&file)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            Some(Stored {
                object,
                file,
                modified,
            })
        })
        .collect()
}

/// The stored object with `status` from the agent's state folder; a
/// refused object also gets an `Accepted: False` condition saying why and
/// what runs instead.
fn with_status(state_dir: &Path, refused: &[Refused], stored: &Stored) -> Value {
    let mut value = stored.object.raw.clone();
    let key = stored.object.key();
    let mut status = status::read(state_dir, &key);
    if let Some(r) = refused.iter().find(|r| r.is_for(&key)) {
        status
            .get_or_insert_with(Default::default)
            .conditions
            .push(r.condition());
    }
    if let (Some(map), Some(status)) = (value.as_mapping_mut(), status) {
        if let Ok(v) = serde_yaml::to_value(status) {
            map.insert(Value::from("status"), v);
        }
    }
    value
}

/// kubectl's wrapper for several objects.
fn list(items: Vec<Value>) -> Value {
    let mut meta = Mapping::new();
    meta.insert(Value::from("resourceVersion"), Value::from(""));
    let mut map = Mapping::new();
    map.insert(Value::from("apiVersion"), Value::from("v1"));
    map.insert(Value::from("items"), Value::Sequence(items));
    map.insert(Value::from("kind"), Value::from("List"));
    map.insert(Value::from("metadata"), Value::Mapping(meta));
    Value::Mapping(map)
}

/// kubectl's default table for the kind.
fn table(
    info: &KindInfo,
    found: &[&Stored],
    state_dir: &Path,
    with_ns: bool,
    now: SystemTime,
) -> String {
    let mut header: Vec<&str> = Vec::new();
    if with_ns {
        header.push("NAMESPACE");
    }
    header.push("NAME");
    header.extend(match info.kind {
        "ServiceEntry" => &["HOSTS", "LOCATION", "RESOLUTION", "AGE"][..],
        "Gateway" => &["CLASS", "ADDRESS", "PROGRAMMED", "AGE"][..],
        "DestinationRule" => &["HOST", "AGE"][..],
        "Secret" => &["TYPE", "DATA", "AGE"][..],
        "AuthorizationPolicy" => &["ACTION", "AGE"][..],
        "VirtualService" => &["HOSTS", "AGE"][..],
        "ConfigMap" => &["DATA", "AGE"][..],
        "Sidecar" => &["AGE"][..],
        _ => &["STATUS", "AGE"][..],
    });
    let mut rows = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    for s in found {
        let o = &s.object;
        let mut row = Vec::new();
        if with_ns {
            row.push(o.namespace().to_string());
        }
        row.push(o.name().to_string());
        match &o.spec {
            Spec::ServiceEntry(se) => {
                row.push(serde_json::to_string(&se.hosts).unwrap_or_default());
                row.push(se.location.clone().unwrap_or_default());
                row.push(se.resolution.clone().unwrap_or_default());
            }
            Spec::Gateway(gw) => {
                let programmed = status::read(state_dir, &o.key())
                    .and_then(|st| st.conditions.into_iter().find(|c| c.type_ == "Programmed"))
                    .map_or("Unknown".to_string(), |c| c.status);
                row.push(gw.gateway_class_name.clone());
                row.push(String::new());
                row.push(programmed);
            }
            Spec::Namespace(_) => row.push("Active".to_string()),
            Spec::DestinationRule(dr) => row.push(dr.host.clone()),
            Spec::Secret(secret) => {
                row.push(secret.type_.clone().unwrap_or_else(|| "Opaque".into()));
                row.push(secret.values().len().to_string());
            }
            Spec::AuthorizationPolicy(ap) => {
                row.push(ap.0.action.clone().unwrap_or_else(|| "ALLOW".into()))
            }
            Spec::VirtualService(vs) => {
                row.push(serde_json::to_string(&vs.0.hosts).unwrap_or_default())
            }
            Spec::ConfigMap(cm) => row.push((cm.data.len() + cm.binary_data.len()).to_string()),
            Spec::Sidecar(_) => {}
        }
        row.push(age(now.duration_since(s.modified).unwrap_or_default()));
        rows.push(row);
    }
    render(&rows)
}

/// Columns padded to their widest cell plus three spaces, as kubectl does.
fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   ", width = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// kubectl's short age: `45s`, `3m12s`, `25m`, `5h10m`, `3d4h`, `40d`.
fn age(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h, days) = (s / 60, s / 3600, s / 86_400);
    match s {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 => format!("{m}m{}s", s % 60),
        _ if h < 3 => format!("{m}m"),
        _ if h < 8 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if days < 8 => format!("{days}d{}h", h % 24),
        _ => format!("{days}d"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{apply, create, label};
    use crate::config::watch::Reconciler;

    fn args(kind: &str, names: &[&str], ns: Option<&str>, output: Option<GetFormat>) -> GetArgs {
        GetArgs {
            kind: kind.into(),
            names: names.iter().map(|n| n.to_string()).collect(),
            namespace: ns.map(str::to_string),
            all_namespaces: false,
            output,
        }
    }

    /// A policy whose file turned invalid while the agent was down: `get`
    /// shows the last good version in force, and why its source is refused.
    #[test]
    fn a_refused_object_shows_its_last_good_version_and_why() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("cfg");
        std::fs::create_dir_all(&cfg).unwrap();
        let state = crate::config::state_dir(&cfg);
        let policy = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: deny-post\n  namespace: istio-egress\nspec:\n  targetRefs:\n  - {kind: Gateway, group: gateway.networking.k8s.io, name: egress-waypoint}\n  action: DENY\n  rules:\n  - to:\n    - operation: {methods: [POST]}\n";
        let file = cfg.join("ap.yaml");
        std::fs::write(&file, policy).unwrap();
        Reconciler::new(&cfg, &state).unwrap().reload().unwrap();
        std::fs::write(&file, policy.replace("action: DENY", "action: DENIED")).unwrap();
        Reconciler::new(&cfg, &state).unwrap().reload().unwrap();

        let ap = |output| {
            get(
                &cfg,
                &args("ap", &["deny-post"], Some("istio-egress"), output),
            )
            .unwrap()
        };
        let v: Value = serde_yaml::from_str(&ap(Some(GetFormat::Yaml)).stdout).unwrap();
        assert_eq!(v["spec"]["action"], "DENY", "the version in force");
        let c = &v["status"]["conditions"][0];
        assert_eq!(
            (&c["type"], &c["status"]),
            (&"Accepted".into(), &"False".into())
        );
        let message = c["message"].as_str().unwrap();
        assert!(
            message.contains("spec.action: unknown action \"DENIED\""),
            "{message}"
        );
        assert!(
            message.contains("the last good version (accepted "),
            "{message}"
        );
        assert!(ap(None).stdout.contains("deny-post   DENY"));

        // With no last good version, `get` says what runs instead.
        std::fs::write(
            cfg.join("new.yaml"),
            policy
                .replace("deny-post", "new")
                .replace("action: DENY", "action: 7"),
        )
        .unwrap();
        Reconciler::new(&cfg, &state).unwrap().reload().unwrap();
        let out = get(&cfg, &args("ap", &["new"], Some("istio-egress"), None)).unwrap();
        assert!(
            out.missing[0].contains("is refused")
                && out.missing[0]
                    .contains("it denies every request and connection to what it targets"),
            "{:?}",
            out.missing
        );
    }

    /// The walkthrough's Steps 2-3 through the CLI, then what the user checks.
    #[test]
    fn walkthrough_step3_get_shows_status() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("cfg");
        create::run(
            &cfg,
            create::CreateArgs {
                what: create::CreateKind::Namespace {
                    name: "istio-egress".into(),
                },
            },
        )
        .unwrap();
        for l in [
            "istio.io/dataplane-mode=ambient",
            "istio.io/use-waypoint=egress-waypoint",
        ] {
            label::run(
                &cfg,
                label::LabelArgs {
                    kind: "ns".into(),
                    name: "istio-egress".into(),
                    labels: vec![l.into()],
                    overwrite: false,
                    namespace: None,
                },
            )
            .unwrap();
        }
        for (name, text) in [
            (
                "gw.yaml",
                include_str!("../config/testdata/step2-gateway.yaml"),
            ),
            (
                "se.yaml",
                include_str!("../config/testdata/step3-serviceentry.yaml"),
            ),
        ] {
            let file = tmp.path().join(name);
            std::fs::write(&file, text).unwrap();
            apply::run(
                &cfg,
                apply::ApplyArgs {
                    filename: vec![file],
                    namespace: None,
                },
            )
            .unwrap();
        }
        // The agent compiles the folder and writes status.
        let state = crate::config::state_dir(&cfg);
        Reconciler::new(&cfg, &state).unwrap().reload().unwrap();

        let out = get(
            &cfg,
            &args(
                "serviceentry",
                &["httpbin.org"],
                Some("istio-egress"),
                Some(GetFormat::Yaml),
            ),
        )
        .unwrap();
        let v: Value = serde_yaml::from_str(&out.stdout).unwrap();
        assert_eq!(v["spec"]["hosts"][0], "httpbin.org");
        let addrs = &v["status"]["addresses"];
        assert_eq!(addrs[0]["host"], "httpbin.org");
        assert_eq!(addrs[0]["value"], "240.240.0.2");
        assert_eq!(addrs[1]["value"], "2001:2::2");
        let c = &v["status"]["conditions"][0];
        assert_eq!(c["type"], "istio.io/WaypointBound");
        assert_eq!(c["status"], "True");
        assert!(
            out.stdout.contains("    status: \"True\"\n"),
            "{}",
            out.stdout
        );
        assert_eq!(c["reason"], "WaypointAccepted");
        assert_eq!(
            c["message"],
            "Successfully attached to waypoint istio-egress/egress-waypoint"
        );

        let table = get(&cfg, &args("se", &[], Some("istio-egress"), None)).unwrap();
        assert!(table.stdout.starts_with("NAME          HOSTS             LOCATION   RESOLUTION   AGE\nhttpbin.org   [\"httpbin.org\"]              DNS          "), "{}", table.stdout);
        let gw = get(&cfg, &args("gtw", &[], Some("istio-egress"), None)).unwrap();
        assert!(
            gw.stdout
                .contains("egress-waypoint   istio-waypoint             True"),
            "{}",
            gw.stdout
        );
        let missing = get(&cfg, &args("se", &["nope"], Some("istio-egress"), None)).unwrap();
        assert_eq!(
            missing.missing,
            ["Error from server (NotFound): serviceentries.networking.istio.io \"nope\" not found"]
        );
        let empty = get(&cfg, &args("se", &[], None, None)).unwrap();
        assert_eq!(empty.stderr, "No resources found in default namespace.\n");
        let ns = get(&cfg, &args("namespaces", &[], None, Some(GetFormat::Name))).unwrap();
        assert_eq!(ns.stdout, "namespace/istio-egress\n");
    }

    #[test]
    fn quotes_like_kubectl() {
        let cases = [
            ("status: 'True'\n", "status: \"True\"\n"),
            ("- '80'\n", "- \"80\"\n"),
            ("a: 'it''s'\n", "a: 'it''s'\n"),
            ("a: plain\n", "a: plain\n"),
        ];
        for (input, want) in cases {
            assert_eq!(kubectl_quotes(input), want);
        }
    }

    #[test]
    fn ages() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (192, "3m12s"),
            (1500, "25m"),
            (5 * 3600 + 600, "5h10m"),
            (30 * 3600, "30h"),
            (3 * 86_400 + 4 * 3600, "3d4h"),
            (40 * 86_400, "40d"),
        ];
        for (secs, want) in cases {
            assert_eq!(age(Duration::from_secs(secs)), want);
        }
    }

    #[test]
    fn table_columns_align() {
        let rows = vec![
            vec!["NAME".to_string(), "AGE".to_string()],
            vec!["httpbin.org".to_string(), "5s".to_string()],
        ];
        assert_eq!(render(&rows), "NAME          AGE\nhttpbin.org   5s\n");
    }
}
