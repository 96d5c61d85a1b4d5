//! Certificates from files (`--cert-chain`, `--key`, `--ca-bundle`), as
//! cert-manager or istiod's file mounts provide them; re-read when any of the
//! three changes.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustls::pki_types::CertificateDer;

use super::credential::Credential;
use super::error::IdentityError;
use super::spiffe::identities_in;

/// Where the three files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    /// PEM chain, leaf first.
    pub cert_chain: PathBuf,
    /// PEM private key of the leaf.
    pub key: PathBuf,
    /// PEM roots peers' certificates must chain to.
    pub ca_bundle: PathBuf,
}

/// What the files held at one moment.
#[derive(Debug)]
pub struct LoadedFiles {
    /// The leaf and its key.
    pub credential: Credential,
    /// The trust bundle.
    pub roots: Vec<CertificateDer<'static>>,
    /// Modification times when read, to notice a rotation.
    pub stamp: FilesStamp,
}

/// Modification times of the three files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilesStamp([Option<SystemTime>; 3]);

impl CertFiles {
    /// The files' modification times now.
    pub fn stamp(&self) -> FilesStamp {
        let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        FilesStamp([
            mtime(&self.cert_chain),
            mtime(&self.key),
            mtime(&self.ca_bundle),
        ])
    }

    /// Reads and checks all three files.
    pub fn load(&self) -> Result<LoadedFiles, IdentityError> {
        let stamp = self.stamp();
        let chain = certs(&self.cert_chain)?;
        let roots = certs(&self.ca_bundle)?;
        let key_pem = read(&self.key)?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .ok()
            .flatten()
            .ok_or_else(|| IdentityError::Pem {
                path: self.key.clone(),
                reason: "no private key".into(),
            })?;
        let leaf = &chain[0];
        let identity = identities_in(leaf)
            .ok()
            .and_then(|ids| ids.into_iter().next())
            .ok_or_else(|| IdentityError::Pem {
                path: self.cert_chain.clone(),
                reason: "the leaf certificate has no spiffe:// URI SAN".into(),
            })?;
        let (not_before, not_after) = validity(leaf).ok_or_else(|| IdentityError::Pem {
            path: self.cert_chain.clone(),
            reason: "unreadable validity".into(),
        })?;
        let credential = Credential::new(identity, chain, key, not_before, not_after)?;
        Ok(LoadedFiles {
            credential,
            roots,
            stamp,
        })
    }
}

/// Validity window of a DER certificate.
pub fn validity(cert: &CertificateDer<'_>) -> Option<(SystemTime, SystemTime)> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let at = |t: x509_parser::time::ASN1Time| {
        let secs = u64::try_from(t.timestamp()).ok()?;
        Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
    };
    Some((
        at(parsed.validity().not_before)?,
        at(parsed.validity().not_after)?,
    ))
}

fn read(path: &Path) -> Result<Vec<u8>, IdentityError> {
    std::fs::read(path).map_err(|source| IdentityError::Io {
        action: "reading",
        path: path.to_path_buf(),
        source,
    })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let pem = read(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| IdentityError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(IdentityError::Pem {
            path: path.to_path_buf(),
            reason: "no certificate".into(),
        });
    }
    Ok(certs)
}
