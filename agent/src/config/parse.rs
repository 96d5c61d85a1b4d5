//! YAML text -> objects: multi-document files, comments, empty documents,
//! `kind: List`, each document checked on its own.

use serde_yaml::{Mapping, Value};

use super::error::ConfigError;
use super::kinds::{self, KindInfo};
use super::object::{Object, ObjectKey, ObjectMeta, DEFAULT_NAMESPACE};

/// Top-level fields an object may have.
const TOP_LEVEL: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];

/// One document of a file.
#[derive(Debug)]
pub struct Document {
    /// The document's text (without its `---` line).
    pub text: String,
    /// Objects in it (a `kind: List` holds several), each valid or not.
    pub objects: Vec<Result<Object, Rejected>>,
}

/// An object that failed validation.
#[derive(Debug)]
pub struct Rejected {
    /// Its identity, when the document got far enough to name it.
    pub key: Option<ObjectKey>,
    /// Every problem found.
    pub errors: Vec<ConfigError>,
}

/// Splits `text` at `---` lines and parses each document. A YAML syntax error
/// anywhere rejects the whole file (as kubectl does). `default_namespace` is
/// given to namespaced objects that name none.
pub fn parse_text(
    text: &str,
    file: &str,
    default_namespace: &str,
) -> Result<Vec<Document>, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let last_line = text.lines().count().max(1);
    let mut documents = Vec::new();
    let mut index = 0;
    for (start_line, chunk) in split_documents(text) {
        let value: Value = serde_yaml::from_str(&chunk).map_err(|e| ConfigError::Yaml {
            file: file.to_string(),
            // The parser may notice a problem at the end of input: name a real line.
            line: (start_line + e.location().map_or(1, |l| l.line()) - 1).min(last_line),
            reason: file_lines(&e.to_string(), start_line - 1),
        })?;
        if value.is_null() {
            continue;
        }
        index += 1;
        let objects = match list_items(&value) {
            Some(items) => items
                .iter()
                .map(|item| {
                    let text = serde_yaml::to_string(item).unwrap_or_default();
                    parse_object(item.clone(), text, file, index, default_namespace)
                })
                .collect(),
            None => vec![parse_object(
                value,
                chunk.clone(),
                file,
                index,
                default_namespace,
            )],
        };
        documents.push(Document {
            text: chunk,
            objects,
        });
    }
    Ok(documents)
}

/// The parser counts lines from the document's start; make them file lines.
fn file_lines(message: &str, offset: usize) -> String {
    let re = regex::Regex::new(r"line (\d+)").expect("valid regex");
    re.replace_all(message, |c: &regex::Captures| {
        let n: usize = c[1].parse().unwrap_or(0);
        format!("line {}", n + offset)
    })
    .into_owned()
}

/// `(first line number, text)` of every document; 1-based line numbers.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut start = 1;
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let is_separator =
            line.starts_with("---") && line[3..].chars().next().is_none_or(|c| c.is_whitespace());
        if is_separator {
            out.push((start, std::mem::take(&mut current)));
            let rest = &line[3..];
            if rest.trim().is_empty() {
                start = i + 2;
            } else {
                // `--- {…}` or `--- # comment`: the document starts on this line.
                start = i + 1;
                current.push_str(rest.trim_start());
                current.push('\n');
            }
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    out.push((start, current));
    out
}

/// The items of a `kind: List` (what `get -o yaml` prints for several objects).
fn list_items(value: &Value) -> Option<&Vec<Value>> {
    let map = value.as_mapping()?;
    if map.get("kind")?.as_str()? != "List" {
        return None;
    }
    map.get("items")?.as_sequence()
}

fn str_field<'a>(map: &'a Mapping, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Parses one object document.
pub fn parse_object(
    mut value: Value,
    text: String,
    file: &str,
    document: usize,
    default_namespace: &str,
) -> Result<Object, Rejected> {
    let envelope = |reason: String| Rejected {
        key: None,
        errors: vec![ConfigError::Envelope {
            file: file.to_string(),
            document,
            reason,
        }],
    };
    let Some(map) = value.as_mapping() else {
        return Err(envelope("expected an object (a YAML mapping)".into()));
    };
    let api_version = str_field(map, "apiVersion");
    let kind_name = str_field(map, "kind");
    let missing: Vec<&str> = [("apiVersion", api_version), ("kind", kind_name)]
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| *k)
        .collect();
    if !missing.is_empty() {
        return Err(envelope(format!("{} not set", missing.join(", "))));
    }
    let api_version = api_version.unwrap_or_default().to_string();
    let kind_name = kind_name.unwrap_or_default().to_string();
    let (api_version, kind_name) = (api_version.as_str(), kind_name.as_str());
    let Some(info) = kinds::by_kind(kind_name) else {
        return Err(Rejected {
            key: None,
            errors: vec![ConfigError::UnknownKind {
                file: file.to_string(),
                kind: kind_name.to_string(),
                api_version: api_version.to_string(),
                supported: kinds::supported(),
            }],
        });
    };
    let meta_value = map.get("metadata").cloned().unwrap_or(Value::Null);
    let mut meta: ObjectMeta = if meta_value.is_null() {
        ObjectMeta::default()
    } else {
        match serde_path_to_error::deserialize(&meta_value) {
            Ok(m) => m,
            Err(e) => {
                let path = e.path().to_string();
                return Err(envelope(format!("metadata.{path}: {}", e.into_inner())));
            }
        }
    };
    if meta.name.is_empty() {
        return Err(envelope(format!("{kind_name}: metadata.name not set")));
    }
    let namespace_given = meta.namespace.as_deref().is_some_and(|n| !n.is_empty());
    meta.namespace = if !info.namespaced {
        None
    } else if namespace_given {
        meta.namespace
    } else {
        Some(default_namespace.to_string())
    };
    let key = ObjectKey::new(
        info.kind,
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone(),
    );
    let object_name = key.to_string();
    let invalid = |field: String, reason: String| ConfigError::Invalid {
        object: object_name.clone(),
        field,
        reason,
    };
    let mut errors = Vec::new();
    for k in map.keys() {
        let name = k.as_str().unwrap_or("?");
        if !TOP_LEVEL.contains(&name) && !top_level_content(info).contains(&name) {
            errors.push(invalid(name.to_string(), "unknown field".into()));
        }
    }
    if !info.serves(api_version) {
        errors.push(invalid(
            "apiVersion".into(),
            format!(
                "no matches for kind \"{}\" in version \"{api_version}\" (served: {})",
                info.kind,
                info.api_versions().join(", ")
            ),
        ));
    }
    errors.extend(
        name_errors(info, &meta)
            .into_iter()
            .map(|(f, r)| invalid(f, r)),
    );
    let spec_value = match top_level_content(info) {
        [] => map.get("spec").cloned().unwrap_or(Value::Null),
        fields => content_spec(map, fields),
    };
    let spec = match kinds::parse_spec(info.kind, &spec_value, &meta) {
        Some(Ok(spec)) => Some(spec),
        Some(Err(field_errors)) => {
            errors.extend(field_errors.into_iter().map(|e| invalid(e.field, e.reason)));
            None
        }
        None => None,
    };
    let (Some(spec), true) = (spec, errors.is_empty()) else {
        return Err(Rejected {
            key: Some(key),
            errors,
        });
    };
    let mut text = text;
    if let Some(map) = value.as_mapping_mut() {
        map.remove("status");
        if info.namespaced && !namespace_given {
            // Stored files must name the namespace the object was applied to.
            set_namespace(map, meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE));
            text = serde_yaml::to_string(&value).unwrap_or(text);
        }
    }
    Ok(Object {
        info,
        api_version: api_version.to_string(),
        meta,
        spec,
        raw: value,
        text,
    })
}

/// Fields a kind keeps at the object's top level instead of under `spec`
/// (a core Secret's `data`…); they are handed to the kind as its spec.
fn top_level_content(info: &KindInfo) -> &'static [&'static str] {
    match info.kind {
        "Secret" => kinds::secret::CONTENT_FIELDS,
        "ConfigMap" => kinds::config_map::CONTENT_FIELDS,
        _ => &[],
    }
}

/// The mapping of `fields` present in `map`.
fn content_spec(map: &Mapping, fields: &[&str]) -> Value {
    let mut spec = Mapping::new();
    for field in fields {
        if let Some(v) = map.get(*field) {
            spec.insert(Value::from(*field), v.clone());
        }
    }
    Value::Mapping(spec)
}

fn set_namespace(map: &mut Mapping, namespace: &str) {
    let meta = map
        .entry(Value::from("metadata"))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if !meta.is_mapping() {
        *meta = Value::Mapping(Mapping::new());
    }
    if let Some(m) = meta.as_mapping_mut() {
        m.insert(Value::from("namespace"), Value::from(namespace));
    }
}

/// Kubernetes' naming rules: names are DNS subdomains, namespaces DNS labels.
fn name_errors(info: &KindInfo, meta: &ObjectMeta) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let subdomain = |s: &str| {
        s.len() <= 253
            && s.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    };
    let label = |s: &str| s.len() <= 63 && !s.contains('.') && subdomain(s);
    let name_ok = if info.namespaced {
        subdomain(&meta.name)
    } else {
        label(&meta.name)
    };
    if !name_ok {
        out.push((
            "metadata.name".to_string(),
            format!(
                "invalid name \"{}\": must be lowercase letters, digits, '-' and '.'",
                meta.name
            ),
        ));
    }
    if let Some(ns) = meta.namespace.as_deref() {
        if !label(ns) {
            out.push((
                "metadata.namespace".to_string(),
                format!("invalid namespace \"{ns}\": must be a lowercase DNS label"),
            ));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::kinds::Spec;

    /// Every error message from parsing `text` (a syntax error is one message).
    pub(crate) fn errors_of(text: &str) -> Vec<String> {
        match parse_text(text, "test.yaml", DEFAULT_NAMESPACE) {
            Err(e) => vec![e.to_string()],
            Ok(docs) => docs
                .into_iter()
                .flat_map(|d| d.objects)
                .filter_map(Result::err)
                .flat_map(|r| r.errors)
                .map(|e| e.to_string())
                .collect(),
        }
    }

    fn objects_of(text: &str) -> Vec<Object> {
        parse_text(text, "test.yaml", DEFAULT_NAMESPACE)
            .unwrap()
            .into_iter()
            .flat_map(|d| d.objects)
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn walkthrough_gateway() {
        let text = include_str!("testdata/step2-gateway.yaml");
        let objects = objects_of(text);
        assert_eq!(objects.len(), 1);
        let o = &objects[0];
        assert_eq!(
            o.key(),
            ObjectKey::new("Gateway", "istio-egress", "egress-waypoint")
        );
        let Spec::Gateway(gw) = &o.spec else {
            panic!("not a gateway")
        };
        assert!(gw.is_waypoint());
        assert_eq!(gw.listeners[0].port, 15008);
        assert_eq!(gw.listeners[0].protocol, "HBONE");
        // What the user wrote is kept byte for byte.
        assert_eq!(o.text, text);
    }

    #[test]
    fn walkthrough_service_entry_with_null_annotations() {
        let text = include_str!("testdata/step3-serviceentry.yaml");
        let objects = objects_of(text);
        let o = &objects[0];
        assert_eq!(
            o.key(),
            ObjectKey::new("ServiceEntry", "istio-egress", "httpbin.org")
        );
        assert!(o.meta.annotations.is_empty());
        assert_eq!(o.meta.labels["istio.io/use-waypoint"], "egress-waypoint");
        let Spec::ServiceEntry(se) = &o.spec else {
            panic!("not a service entry")
        };
        assert_eq!(se.hosts, ["httpbin.org"]);
        assert_eq!(se.resolution(), crate::config::snapshot::Resolution::Dns);
        assert_eq!(
            se.service_ports()[0].protocol,
            crate::config::snapshot::Protocol::Http
        );
        assert_eq!(o.text, text);
    }

    #[test]
    fn walkthrough_tls_origination_is_multi_document() {
        let docs = parse_text(
            include_str!("testdata/step4c-tls-origination.yaml"),
            "step4c.yaml",
            DEFAULT_NAMESPACE,
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        let se = docs[0].objects[0].as_ref().unwrap();
        let Spec::ServiceEntry(spec) = &se.spec else {
            panic!()
        };
        assert_eq!(spec.ports[0].target_port, Some(443));
        let dr = docs[1].objects[0].as_ref().unwrap();
        assert!(matches!(dr.spec, Spec::DestinationRule(_)));
    }

    #[test]
    fn documents_comments_and_empties() {
        let text = "# leading comment\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n# only a comment\n--- \napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n...\n";
        let names: Vec<String> = objects_of(text)
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn kind_list_is_expanded() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: b}\n";
        assert_eq!(objects_of(text).len(), 2);
    }

    #[test]
    fn default_namespace_is_written_into_the_object() {
        let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: w\nspec:\n  gatewayClassName: istio-waypoint\n";
        let o = &objects_of(text)[0];
        assert_eq!(o.namespace(), "default");
        assert!(o.text.contains("namespace: default"), "{}", o.text);
    }

    #[test]
    fn status_is_dropped_and_metadata_is_lenient() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  uid: x\n  creationTimestamp: null\n  labels:\nstatus:\n  phase: Active\n";
        let o = &objects_of(text)[0];
        assert!(o.raw.get("status").is_none());
        assert!(o.meta.labels.is_empty());
    }

    #[test]
    fn envelope_errors() {
        let cases = [
            ("kind: Namespace\nmetadata: {name: a}\n", "test.yaml: document 1: apiVersion not set"),
            ("apiVersion: v1\nmetadata: {name: a}\n", "test.yaml: document 1: kind not set"),
            ("apiVersion: v1\nkind: Namespace\n", "test.yaml: document 1: Namespace: metadata.name not set"),
            ("apiVersion: v1\nkind: Namespace\nmetadata:\n  labels: {a: 1}\n  name: x\n", "test.yaml: document 1: metadata.labels.a: invalid type"),
            ("- a\n- b\n", "test.yaml: document 1: expected an object"),
            ("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n", "test.yaml: no matches for kind \"Pod\" in version \"v1\" (supported kinds: Namespace, Gateway, ServiceEntry"),
            ("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: [b\n", "test.yaml: line 8: YAML syntax error"),
            ("apiVersion: networking.istio.io/v2\nkind: ServiceEntry\nmetadata: {name: s, namespace: n}\nspec: {hosts: [a.com]}\n", "ServiceEntry n/s: apiVersion: no matches for kind \"ServiceEntry\" in version \"networking.istio.io/v2\""),
            ("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nspek: {}\n", "Namespace a: spek: unknown field"),
            ("apiVersion: v1\nkind: Namespace\nmetadata: {name: Bad_Name}\n", "Namespace Bad_Name: metadata.name: invalid name"),
            ("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: w, namespace: n}\nspec:\n  listeners: []\n", "Gateway n/w: spec.gatewayClassName: Required value"),
            ("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: w, namespace: n}\nspec:\n  gatewayClassName: x\n  listners: []\n", "Gateway n/w: spec.listners: unknown field `listners`"),
        ];
        for (text, want) in cases {
            let got = errors_of(text);
            assert!(
                got.iter().any(|e| e.starts_with(want)),
                "want {want:?}\n got {got:?}"
            );
        }
    }
}
