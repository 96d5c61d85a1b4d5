//! `v1` Secret: key material a DestinationRule's `credentialName` names
//! (single-host mode applies it like any other manifest). Its content sits
//! at the object's top level (`data`, `stringData`, `type`), which the
//! parser hands over as this kind's spec.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;
use serde_yaml::Value;

use super::{typed_content, Kind, KindInfo};
use crate::config::object::{FieldError, ObjectMeta};
use crate::config::snapshot::TlsSecret;

/// Top-level fields of a Secret that form its content.
pub const CONTENT_FIELDS: &[&str] = &["type", "data", "stringData", "immutable"];

/// Keys holding the client certificate chain, in the order Istio reads them.
const CERT_KEYS: &[&str] = &["cert", "tls.crt"];
/// Keys holding the client private key.
const KEY_KEYS: &[&str] = &["key", "tls.key"];
/// Keys holding trusted roots.
const CA_KEYS: &[&str] = &["cacert", "ca.crt"];

/// Secret content, as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secret {
    /// `type` (`Opaque` when unset).
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// `data`: base64 values.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// `stringData`: plain values (win over `data` for the same key).
    #[serde(default)]
    pub string_data: BTreeMap<String, String>,
    /// `immutable`, accepted.
    #[serde(default)]
    pub immutable: Option<bool>,
}

impl Secret {
    /// Every key's decoded value (validated, so `data` decodes).
    pub fn values(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out: BTreeMap<String, Vec<u8>> = self
            .data
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), decode(v).ok()?)))
            .collect();
        for (k, v) in &self.string_data {
            out.insert(k.clone(), v.clone().into_bytes());
        }
        out
    }

    /// The TLS material in it, by Istio's key names.
    pub fn tls(&self) -> TlsSecret {
        let values = self.values();
        let first = |keys: &[&str]| keys.iter().find_map(|k| values.get(*k).cloned());
        TlsSecret {
            cert: first(CERT_KEYS),
            key: first(KEY_KEYS),
            ca: first(CA_KEYS),
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for (field, map) in [("data", &self.data), ("stringData", &self.string_data)] {
            for key in map.keys() {
                let ok = !key.is_empty()
                    && key.len() <= 253
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !ok {
                    errors.push(FieldError::new(
                        format!("{field}[{key}]"),
                        "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                    ));
                }
            }
        }
        for (key, value) in &self.data {
            if let Err(e) = decode(value) {
                errors.push(FieldError::new(
                    format!("data[{key}]"),
                    format!("illegal base64 data: {e}"),
                ));
            }
        }
        if !errors.is_empty() {
            return errors;
        }
        let values = self.values();
        if self.type_.as_deref() == Some("kubernetes.io/tls") {
            for key in ["tls.crt", "tls.key"] {
                if !values.contains_key(key) {
                    errors.push(FieldError::new(format!("data[{key}]"), "Required value"));
                }
            }
        }
        // Key material is checked here so a bad Secret is refused at apply
        // and the last good one stays in force.
        for (key, value) in &values {
            let problem = if CERT_KEYS.contains(&key.as_str()) || CA_KEYS.contains(&key.as_str()) {
                pem_certificates_problem(value)
            } else if KEY_KEYS.contains(&key.as_str()) {
                pem_key_problem(value)
            } else {
                None
            };
            if let Some(reason) = problem {
                errors.push(FieldError::new(format!("data[{key}]"), reason));
            }
        }
        errors
    }
}

fn decode(value: &str) -> Result<Vec<u8>, base64::DecodeError> {
    // kubectl output may wrap long values.
    let compact: String = value.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(compact)
}

/// Why `pem` is not a PEM certificate list, if it is not.
pub fn pem_certificates_problem(pem: &[u8]) -> Option<String> {
    let mut reader = pem;
    let mut count = 0;
    for item in rustls_pemfile::certs(&mut reader) {
        match item {
            Ok(_) => count += 1,
            Err(e) => return Some(format!("not a PEM certificate list: {e}")),
        }
    }
    (count == 0).then(|| "no PEM certificate (BEGIN CERTIFICATE) found".to_string())
}

/// Why `pem` is not a PEM private key, if it is not.
pub fn pem_key_problem(pem: &[u8]) -> Option<String> {
    let mut reader = pem;
    match rustls_pemfile::private_key(&mut reader) {
        Ok(Some(_)) => None,
        Ok(None) => Some("no PEM private key (BEGIN PRIVATE KEY) found".to_string()),
        Err(e) => Some(format!("not a PEM private key: {e}")),
    }
}

impl Kind for Secret {
    const INFO: &'static KindInfo = &KindInfo {
        kind: "Secret",
        group: "",
        versions: &["v1"],
        plural: "secrets",
        short_names: &[],
        namespaced: true,
    };

    fn parse(spec: &Value, _meta: &ObjectMeta) -> Result<Self, Vec<FieldError>> {
        let secret: Secret = typed_content(spec)?;
        let errors = secret.validate();
        if errors.is_empty() {
            Ok(secret)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::manifests::objects;
    use crate::config::kinds::Spec;
    use crate::config::parse::tests::errors_of;

    fn test_pem() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn secret(body: &str) -> String {
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: client-cred\n  namespace: istio-egress\n{body}")
    }

    fn parsed(body: &str) -> Secret {
        let objs = objects(&secret(body));
        let Spec::Secret(s) = &objs[0].spec else {
            panic!("not a Secret")
        };
        s.clone()
    }

    #[test]
    fn istio_and_kubernetes_key_names() {
        let (cert, key) = test_pem();
        let istio = format!(
            "data:\n  cert: {}\n  key: {}\n  cacert: {}\n",
            b64(&cert),
            b64(&key),
            b64(&cert)
        );
        let tls = parsed(&istio).tls();
        assert_eq!(tls.cert.as_deref(), Some(cert.as_bytes()));
        assert_eq!(tls.key.as_deref(), Some(key.as_bytes()));
        assert_eq!(tls.ca.as_deref(), Some(cert.as_bytes()));

        let indent = |s: &str| s.replace('\n', "\n    ");
        let kube = format!(
            "type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n    {}\n  tls.key: |\n    {}\n",
            indent(&cert),
            indent(&key)
        );
        let tls = parsed(&kube).tls();
        assert!(tls.cert.is_some() && tls.key.is_some() && tls.ca.is_none());
    }

    #[test]
    fn validation_errors() {
        let (cert, _) = test_pem();
        let p = "Secret istio-egress/client-cred: ";
        let cases = [
            (
                "data:\n  cert: '%%%'\n".to_string(),
                "data[cert]: illegal base64 data",
            ),
            (
                format!("data:\n  key: {}\n", b64(&cert)),
                "data[key]: no PEM private key",
            ),
            (
                format!("data:\n  cacert: {}\n", b64("hello")),
                "data[cacert]: no PEM certificate",
            ),
            (
                "type: kubernetes.io/tls\ndata: {}\n".to_string(),
                "data[tls.crt]: Required value",
            ),
            (
                "data:\n  'a b': eA==\n".to_string(),
                "data[a b]: a valid config key",
            ),
            (
                "stringDatum: {}\n".to_string(),
                "stringDatum: unknown field",
            ),
        ];
        for (body, want) in cases {
            let got = errors_of(&secret(&body));
            let want = format!("{p}{want}");
            assert!(
                got.iter().any(|e| e.starts_with(&want)),
                "want {want:?}\n got {got:?}"
            );
        }
    }

    #[test]
    fn opaque_secrets_with_other_keys_are_accepted() {
        assert_eq!(
            errors_of(&secret("type: Opaque\ndata:\n  password: aHVudGVyMg==\n")),
            Vec::<String>::new()
        );
        assert_eq!(
            parsed("data:\n  password: aHVudGVyMg==\n").values()["password"],
            b"hunter2"
        );
    }
}
