//! The cluster's CA, one trust domain for every node: Istio's plug-in
//! `cacerts` Secret when it exists; otherwise egret's own CA, created once
//! in a Secret of the same format by whichever agent gets there first (the
//! API's create is atomic: the others read what won). Every agent signs its
//! workloads' certificates with it; the waypoint controller signs the
//! waypoints'.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;

use super::error::KubeError;
use crate::identity::{CaCerts, CaSigner};

/// A Secret by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl std::str::FromStr for SecretRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (namespace, name) = crate::config::object::split_namespaced(text)?;
        Ok(SecretRef {
            namespace: namespace.into(),
            name: name.into(),
        })
    }
}

/// Where the cluster CA is looked for.
#[derive(Clone, Debug)]
pub struct CaSecrets {
    /// Istio's plug-in CA (`cacerts`), used when it exists.
    pub plugin: SecretRef,
    /// egret's own CA, created when neither exists.
    pub own: SecretRef,
}

/// The cluster CA as a signer, from the first Secret that exists; egret's
/// own is created when none does. A Secret that exists but cannot sign is
/// an error (never a fallback to another CA: peers would not trust it).
pub async fn load(client: &Client, secrets: &CaSecrets) -> Result<CaSigner, KubeError> {
    if let Some(values) = read(client, &secrets.plugin).await? {
        return signer(&values, &secrets.plugin, "plug-in CA");
    }
    if let Some(values) = read(client, &secrets.own).await? {
        return signer(&values, &secrets.own, "egret's cluster CA");
    }
    let fresh = CaCerts::generate()?;
    let api: Api<Secret> = Api::namespaced(client.clone(), &secrets.own.namespace);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secrets.own.name.clone()),
            namespace: Some(secrets.own.namespace.clone()),
            ..ObjectMeta::default()
        },
        data: Some(
            fresh
                .values()
                .into_iter()
                .map(|(k, v)| (k, ByteString(v)))
                .collect(),
        ),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(secret = %secrets.own, "created the cluster CA");
            signer(&fresh.values(), &secrets.own, "egret's cluster CA")
        }
        // Another agent created it first: use theirs.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let values = read(client, &secrets.own).await?.ok_or_else(|| {
                KubeError::ClusterCa(format!("Secret {} vanished after creation", secrets.own))
            })?;
            signer(&values, &secrets.own, "egret's cluster CA")
        }
        Err(e) => Err(KubeError::api(format!("create Secret {}", secrets.own))(e)),
    }
}

async fn read(
    client: &Client,
    at: &SecretRef,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, KubeError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &at.namespace);
    let secret = api
        .get_opt(&at.name)
        .await
        .map_err(KubeError::api(format!("get Secret {at}")))?;
    Ok(secret.map(|s| {
        let mut values: BTreeMap<String, Vec<u8>> = s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        for (k, v) in s.string_data.unwrap_or_default() {
            values.insert(k, v.into_bytes());
        }
        values
    }))
}

fn signer(
    values: &BTreeMap<String, Vec<u8>>,
    at: &SecretRef,
    what: &str,
) -> Result<CaSigner, KubeError> {
    let origin = format!("{what} in Secret {at}");
    let signer = CaCerts::from_values(values, &origin)?.signer(&origin)?;
    tracing::info!(ca = %origin, "identities signed by the cluster CA");
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_references_are_namespace_slash_name() {
        let r: SecretRef = "istio-system/cacerts".parse().unwrap();
        assert_eq!(r.to_string(), "istio-system/cacerts");
        for bad in ["cacerts", "/x", "x/", "a/b/c"] {
            assert!(bad.parse::<SecretRef>().is_err(), "{bad}");
        }
    }
}
