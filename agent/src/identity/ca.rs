//! The single-host CA: a root key made once in `<state>/ca/`, issuing
//! short-lived leaf certificates for workload and waypoint identities
//! through a [`CaSigner`]. Copying the folder to another host (or passing
//! its `root-cert.pem` as `--ca-bundle`) makes both trust the same root.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;

use super::error::IdentityError;
use super::signer::{CaSigner, BACKDATE};

pub use super::signer::LEAF_LIFETIME;

/// Root certificate file inside the CA folder (the trust bundle).
pub const ROOT_CERT_FILE: &str = "root-cert.pem";
/// Root key file inside the CA folder (mode 0600).
pub const ROOT_KEY_FILE: &str = "root-key.pem";
/// The root is long-lived; rotating it means replacing the folder.
const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Organization of the root's subject. Its common name is derived from the
/// key, so two hosts' (or clusters') CAs never share one, which would
/// confuse chain building.
const ROOT_ORG: &str = "egret";

/// The CA of one host.
#[derive(Debug)]
pub struct LocalCa {
    dir: PathBuf,
    signer: Arc<CaSigner>,
}

impl LocalCa {
    /// Loads the CA from `dir`, creating it on first use.
    pub fn load_or_create(dir: &Path) -> Result<Self, IdentityError> {
        let cert_path = dir.join(ROOT_CERT_FILE);
        let key_path = dir.join(ROOT_KEY_FILE);
        if !(cert_path.exists() && key_path.exists()) {
            create(dir)?;
        }
        let key_pem = read(&key_path)?;
        let cert_pem = read(&cert_path)?;
        let key =
            super::ca_key::parse(key_pem.as_bytes()).map_err(|reason| IdentityError::Pem {
                path: key_path.clone(),
                reason,
            })?;
        let root_der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .next()
            .and_then(Result::ok)
            .ok_or_else(|| IdentityError::Pem {
                path: cert_path.clone(),
                reason: "no certificate".into(),
            })?;
        let origin = format!("local CA in {}", dir.display());
        let signer = CaSigner::new(origin, root_der.clone(), key, Vec::new(), vec![root_der])?;
        Ok(LocalCa {
            dir: dir.to_path_buf(),
            signer: Arc::new(signer),
        })
    }

    /// The signer, for an [`super::IdentityStore`].
    pub fn signer(&self) -> Arc<CaSigner> {
        self.signer.clone()
    }

    /// The root certificate: the trust bundle of everything this CA issues.
    pub fn root(&self) -> &CertificateDer<'static> {
        &self.signer.roots()[0]
    }

    /// The folder the CA lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Writes a new root key and certificate; the key file first, each through a
/// temporary file, so a reader never sees half a CA.
fn create(dir: &Path) -> Result<(), IdentityError> {
    let ca_err = |source| IdentityError::Ca {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|source| IdentityError::Io {
        action: "creating",
        path: dir.to_path_buf(),
        source,
    })?;
    let (cert, key) = new_root().map_err(ca_err)?;
    write_private(&dir.join(ROOT_KEY_FILE), &key)?;
    write_private(&dir.join(ROOT_CERT_FILE), &cert)?;
    tracing::info!(dir = %dir.display(), "created the local CA");
    Ok(())
}

/// A new self-signed root: `(certificate PEM, private key PEM)`.
pub fn new_root() -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let cert = root_params(&key, SystemTime::now()).self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn root_params(key: &KeyPair, now: SystemTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ROOT_ORG);
    dn.push(
        DnType::CommonName,
        format!("egret CA {:016x}", fnv1a(key.public_key_raw())),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + ROOT_LIFETIME).into();
    params
}

/// FNV-1a: stable across builds, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn read(path: &Path) -> Result<String, IdentityError> {
    std::fs::read_to_string(path).map_err(|source| IdentityError::Io {
        action: "reading",
        path: path.to_path_buf(),
        source,
    })
}

fn write_private(path: &Path, text: &str) -> Result<(), IdentityError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io_err = |source| IdentityError::Io {
        action: "writing",
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err)?;
    file.write_all(text.as_bytes()).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::spiffe::{identities_in, Identity};

    fn id(sa: &str) -> Identity {
        Identity {
            trust_domain: "cluster.local".into(),
            namespace: "ns1".into(),
            service_account: sa.into(),
        }
    }

    #[test]
    fn created_once_and_reloaded_with_the_same_root() {
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::load_or_create(&dir.path().join("ca")).unwrap();
        let again = LocalCa::load_or_create(&dir.path().join("ca")).unwrap();
        assert_eq!(ca.root(), again.root());
        let mode = std::fs::metadata(dir.path().join("ca").join(ROOT_KEY_FILE))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }

    #[test]
    fn leaves_carry_the_identity_and_chain_to_the_root_after_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let root = LocalCa::load_or_create(dir.path()).unwrap().root().clone();
        // Issued by a CA loaded from disk, not the one that made the root.
        let ca = LocalCa::load_or_create(dir.path()).unwrap();
        let leaf = ca.signer().issue(&id("a"), LEAF_LIFETIME).unwrap();
        let der = &leaf.certified.cert[0];
        assert_eq!(identities_in(der).unwrap(), vec![id("a")]);

        let mut roots = rustls::RootCertStore::empty();
        roots.add(root).unwrap();
        let parsed = rustls::server::ParsedCertificate::try_from(der).unwrap();
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            &[],
            rustls::pki_types::UnixTime::now(),
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .all,
        )
        .unwrap();
    }

    #[test]
    fn renewal_is_due_at_half_life() {
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::load_or_create(dir.path()).unwrap();
        let leaf = ca.signer().issue(&id("a"), LEAF_LIFETIME).unwrap();
        assert!(!leaf.needs_refresh(SystemTime::now()));
        assert!(leaf.needs_refresh(SystemTime::now() + LEAF_LIFETIME / 2 + BACKDATE));
    }
}
