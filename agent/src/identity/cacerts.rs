//! Istio's plug-in CA format, one cluster CA for every agent and waypoint:
//! the `cacerts` Secret (or a folder holding it), with `ca-cert.pem` (the
//! signing certificate, often an intermediate), `ca-key.pem`,
//! `root-cert.pem` (the roots peers trust) and `cert-chain.pem` (sent after
//! every issued leaf: the signing certificate and any intermediates up to
//! the root). As in Istio, an empty `root-cert.pem` means the signing
//! certificate is the root (the shape of Istio's own self-signed
//! `istio-ca-secret`). egret's own cluster CA, when no `cacerts` is given,
//! is kept in the same format.

use std::collections::BTreeMap;
use std::path::Path;

use rustls::pki_types::CertificateDer;

use super::error::IdentityError;
use super::signer::CaSigner;

/// The signing certificate.
pub const CA_CERT: &str = "ca-cert.pem";
/// Its private key.
pub const CA_KEY: &str = "ca-key.pem";
/// The roots.
pub const ROOT_CERT: &str = "root-cert.pem";
/// Certificates sent after each leaf.
pub const CERT_CHAIN: &str = "cert-chain.pem";

/// The four files' contents.
#[derive(Clone, PartialEq, Eq)]
pub struct CaCerts {
    /// `ca-cert.pem`.
    pub ca_cert: Vec<u8>,
    /// `ca-key.pem`.
    pub ca_key: Vec<u8>,
    /// `root-cert.pem` (may be empty: `ca-cert.pem` is the root).
    pub root_cert: Vec<u8>,
    /// `cert-chain.pem` (may be empty).
    pub cert_chain: Vec<u8>,
}

impl std::fmt::Debug for CaCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("CaCerts").finish_non_exhaustive()
    }
}

impl CaCerts {
    /// From a Secret's decoded values (or any name -> bytes map).
    /// `origin` names it in errors.
    pub fn from_values(
        values: &BTreeMap<String, Vec<u8>>,
        origin: &str,
    ) -> Result<Self, IdentityError> {
        let required = |key: &str| {
            values
                .get(key)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| IdentityError::CaCertificate {
                    origin: origin.to_string(),
                    reason: format!("{key} is missing"),
                })
        };
        let optional = |key: &str| values.get(key).cloned().unwrap_or_default();
        Ok(CaCerts {
            ca_cert: required(CA_CERT)?,
            ca_key: required(CA_KEY)?,
            root_cert: optional(ROOT_CERT),
            cert_chain: optional(CERT_CHAIN),
        })
    }

    /// From a folder holding the four files (a mounted `cacerts` Secret).
    pub fn read_dir(dir: &Path) -> Result<Self, IdentityError> {
        let mut values = BTreeMap::new();
        for name in [CA_CERT, CA_KEY, ROOT_CERT, CERT_CHAIN] {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    values.insert(name.to_string(), bytes);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(IdentityError::Io {
                        action: "reading",
                        path,
                        source,
                    })
                }
            }
        }
        Self::from_values(&values, &format!("CA files in {}", dir.display()))
    }

    /// A new self-signed root as a CA of its own (root = signing cert).
    pub fn generate() -> Result<Self, IdentityError> {
        let (cert, key) = super::ca::new_root().map_err(|source| IdentityError::Ca {
            dir: "(new cluster CA)".into(),
            source,
        })?;
        Ok(CaCerts {
            ca_cert: cert.clone().into_bytes(),
            ca_key: key.into_bytes(),
            root_cert: cert.into_bytes(),
            cert_chain: Vec::new(),
        })
    }

    /// The four files by name, as a Secret's `data` holds them.
    pub fn values(&self) -> BTreeMap<String, Vec<u8>> {
        [
            (CA_CERT, &self.ca_cert),
            (CA_KEY, &self.ca_key),
            (ROOT_CERT, &self.root_cert),
            (CERT_CHAIN, &self.cert_chain),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
    }

    /// The signer these files make, checked as Istio checks plugged-in
    /// certificates: the key is the certificate's, and what it signs
    /// verifies against the roots through the chain.
    pub fn signer(&self, origin: &str) -> Result<CaSigner, IdentityError> {
        let bad = |reason: String| IdentityError::CaCertificate {
            origin: origin.to_string(),
            reason,
        };
        let ca_cert = certs(&self.ca_cert, CA_CERT, origin)?
            .into_iter()
            .next()
            .ok_or_else(|| bad(format!("{CA_CERT} holds no certificate")))?;
        let key = super::ca_key::parse(&self.ca_key).map_err(|e| bad(format!("{CA_KEY}: {e}")))?;
        let mut roots = certs(&self.root_cert, ROOT_CERT, origin)?;
        if roots.is_empty() {
            roots.push(ca_cert.clone());
        }
        let mut chain = certs(&self.cert_chain, CERT_CHAIN, origin)?;
        if chain.is_empty() && !roots.contains(&ca_cert) {
            // An intermediate with no chain given: peers need it to reach the root.
            chain.push(ca_cert.clone());
        }
        CaSigner::new(origin, ca_cert, key, chain, roots)
    }
}

fn certs(
    pem: &[u8],
    name: &str,
    origin: &str,
) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| IdentityError::CaCertificate {
            origin: origin.to_string(),
            reason: format!("{name}: {e}"),
        })
}

#[cfg(test)]
mod tests;
