//! Key material for one handshake: trusted roots and the client identity,
//! from files (re-read when they change, the last good version kept when a
//! change does not parse) or from a Secret in the snapshot.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::error::TlsError;
use crate::config::file_stamp::FileStamp;

/// PEM certificates, or why there are none.
pub fn parse_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut reader = pem;
    let certs = rustls_pemfile::certs(&mut reader)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate list: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate (BEGIN CERTIFICATE) found".to_string());
    }
    Ok(certs)
}

/// A PEM private key, or why there is none.
pub fn parse_private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    let mut reader = pem;
    rustls_pemfile::private_key(&mut reader)
        .map_err(|e| format!("not a PEM private key: {e}"))?
        .ok_or_else(|| "no PEM private key (BEGIN PRIVATE KEY) found".to_string())
}

/// The parsed content of one file, by kind.
#[derive(Clone, Debug)]
pub enum Pem {
    /// A certificate list.
    Certificates(Arc<Vec<CertificateDer<'static>>>),
    /// A private key.
    Key(Arc<PrivateKeyDer<'static>>),
}

/// Which content a file is expected to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PemKind {
    /// Certificates (a chain or roots).
    Certificates,
    /// A private key.
    Key,
}

#[derive(Debug)]
struct Cached {
    stamp: FileStamp,
    pem: Pem,
}

/// Files read on use: a file is parsed again only when its stamp changed;
/// when the new content does not parse, the last good content stays in use
/// and the error is logged once per change.
#[derive(Debug, Default)]
pub struct PemFiles {
    files: Mutex<HashMap<(PathBuf, PemKind), Cached>>,
    // Stamps whose content failed, so the error is logged once.
    failed: Mutex<HashMap<(PathBuf, PemKind), FileStamp>>,
}

impl PemFiles {
    /// The content of `path` (a `field` of DestinationRule `rule`).
    pub fn load(
        &self,
        rule: &str,
        field: &'static str,
        path: &Path,
        kind: PemKind,
    ) -> Result<Pem, TlsError> {
        let key = (path.to_path_buf(), kind);
        let read_error = |source| TlsError::ReadFile {
            rule: rule.to_string(),
            field,
            path: path.to_path_buf(),
            source,
        };
        let stamp = FileStamp::of_path(path);
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = match stamp {
            Ok(s) => s,
            Err(e) => {
                // A file that went away keeps serving its last content: a
                // secret rotation may remove and recreate it.
                if let Some(c) = files.get(&key) {
                    return Ok(c.pem.clone());
                }
                return Err(read_error(e));
            }
        };
        if let Some(c) = files.get(&key).filter(|c| c.stamp == stamp) {
            return Ok(c.pem.clone());
        }
        let parsed = std::fs::read(path).map_err(read_error).and_then(|bytes| {
            parse(&bytes, kind).map_err(|reason| TlsError::BadPem {
                rule: rule.to_string(),
                what: format!("{field} {}", path.display()),
                reason,
            })
        });
        match parsed {
            Ok(pem) => {
                if files.contains_key(&key) {
                    tracing::info!(path = %path.display(), rule, "reloaded changed TLS file");
                }
                files.insert(
                    key,
                    Cached {
                        stamp,
                        pem: pem.clone(),
                    },
                );
                Ok(pem)
            }
            Err(e) => {
                let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
                if failed.insert(key.clone(), stamp) != Some(stamp) {
                    tracing::error!(error = %e, keeping_previous = files.contains_key(&key), "TLS file rejected");
                }
                match files.get(&key) {
                    Some(c) => Ok(c.pem.clone()),
                    None => Err(e),
                }
            }
        }
    }

    /// The certificates in `path`.
    pub fn certificates(
        &self,
        rule: &str,
        field: &'static str,
        path: &Path,
    ) -> Result<Arc<Vec<CertificateDer<'static>>>, TlsError> {
        match self.load(rule, field, path, PemKind::Certificates)? {
            Pem::Certificates(c) => Ok(c),
            Pem::Key(_) => Err(kind_mix_up(rule, field, path)),
        }
    }

    /// The private key in `path`.
    pub fn key(
        &self,
        rule: &str,
        field: &'static str,
        path: &Path,
    ) -> Result<Arc<PrivateKeyDer<'static>>, TlsError> {
        match self.load(rule, field, path, PemKind::Key)? {
            Pem::Key(k) => Ok(k),
            Pem::Certificates(_) => Err(kind_mix_up(rule, field, path)),
        }
    }

    /// The current stamp of every file `paths` names, for cache keys.
    pub fn stamps(paths: &[&Path]) -> Vec<Option<FileStamp>> {
        paths.iter().map(|p| FileStamp::of_path(p).ok()).collect()
    }
}

/// Cache entries are keyed by kind, so this cannot happen; an error
/// beats a panic if it ever does.
fn kind_mix_up(rule: &str, field: &str, path: &Path) -> TlsError {
    TlsError::BadPem {
        rule: rule.to_string(),
        what: format!("{field} {}", path.display()),
        reason: "cached under the wrong kind".to_string(),
    }
}

fn parse(bytes: &[u8], kind: PemKind) -> Result<Pem, String> {
    Ok(match kind {
        PemKind::Certificates => Pem::Certificates(Arc::new(parse_certificates(bytes)?)),
        PemKind::Key => Pem::Key(Arc::new(parse_private_key(bytes)?)),
    })
}

/// A stable fingerprint of some bytes (Secret content in cache keys).
pub fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_cert() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec!["a.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem()
    }

    fn count(pem: Pem) -> usize {
        match pem {
            Pem::Certificates(c) => c.len(),
            Pem::Key(_) => panic!("not certificates"),
        }
    }

    #[test]
    fn reloads_on_change_and_keeps_last_good_on_bad_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, pem_cert()).unwrap();
        let files = PemFiles::default();
        let load = || files.load("ns/dr", "caCertificates", &path, PemKind::Certificates);
        assert_eq!(count(load().unwrap()), 1);

        // Two certificates now: the change is picked up on next use.
        std::fs::write(&path, format!("{}{}", pem_cert(), pem_cert())).unwrap();
        assert_eq!(count(load().unwrap()), 2);

        // Garbage: the last good content stays.
        std::fs::write(&path, "not a certificate at all, but longer").unwrap();
        assert_eq!(count(load().unwrap()), 2);
    }

    #[test]
    fn a_bad_file_never_loaded_is_an_error_naming_rule_field_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, pem_cert()).unwrap();
        let files = PemFiles::default();
        let err = files
            .load("istio-egress/dr", "privateKey", &path, PemKind::Key)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("DestinationRule istio-egress/dr: privateKey "),
            "{err}"
        );
        assert!(err.contains("key.pem: no PEM private key"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = files
            .load(
                "istio-egress/dr",
                "caCertificates",
                &missing,
                PemKind::Certificates,
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("reading caCertificates"), "{err}");
        assert!(err.contains("missing.pem"), "{err}");
    }
}
