//! The single-host CA: a root key made once in `<state>/ca/`, issuing
//! short-lived leaf certificates for workload and waypoint identities.
//! Copying the folder to another host (or passing its `root-cert.pem` as
//! `--ca-bundle`) makes both trust the same root.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::credential::Credential;
use super::error::IdentityError;
use super::spiffe::Identity;

/// Root certificate file inside the CA folder (the trust bundle).
pub const ROOT_CERT_FILE: &str = "root-cert.pem";
/// Root key file inside the CA folder (mode 0600).
pub const ROOT_KEY_FILE: &str = "root-key.pem";
/// Lifetime of issued leaf certificates (Istio's default workload TTL).
pub const LEAF_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Leaves start a little in the past so peers with a skewed clock accept them.
const BACKDATE: Duration = Duration::from_secs(60);
/// The root is long-lived; rotating it means replacing the folder.
const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Organization of the root's subject. Its common name is derived from the
/// key: a root rebuilt from the stored key has the stored root's subject, and
/// two hosts' CAs never share one (which would confuse chain building).
const ROOT_ORG: &str = "egret";

/// The CA of one host.
pub struct LocalCa {
    dir: PathBuf,
    root_der: CertificateDer<'static>,
    issuer: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").field("dir", &self.dir).finish()
    }
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
        let key = KeyPair::from_pem(&key_pem).map_err(|source| IdentityError::Ca {
            dir: dir.to_path_buf(),
            source,
        })?;
        let root_der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .next()
            .and_then(Result::ok)
            .ok_or_else(|| IdentityError::Pem {
                path: cert_path.clone(),
                reason: "no certificate".into(),
            })?;
        // rcgen signs with a Certificate value; the one rebuilt here has the
        // stored root's subject and key, which is all a leaf's chain needs.
        let issuer = root_params(&key, SystemTime::now())
            .self_signed(&key)
            .map_err(|source| IdentityError::Ca {
                dir: dir.to_path_buf(),
                source,
            })?;
        Ok(LocalCa {
            dir: dir.to_path_buf(),
            root_der,
            issuer,
            key,
        })
    }

    /// The root certificate: the trust bundle of everything this CA issues.
    pub fn root(&self) -> &CertificateDer<'static> {
        &self.root_der
    }

    /// The folder the CA lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fresh leaf for `identity`, valid from now for `lifetime`.
    pub fn issue(
        &self,
        identity: &Identity,
        lifetime: Duration,
    ) -> Result<Credential, IdentityError> {
        let now = SystemTime::now();
        self.issue_between(identity, now - BACKDATE, now + lifetime)
    }

    /// A leaf for `identity` valid in `[not_before, not_after]` (tests use a
    /// past window to make expired certificates).
    pub fn issue_between(
        &self,
        identity: &Identity,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Credential, IdentityError> {
        let (cert, key) = self.sign(identity, not_before, not_after)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Credential::new(
            identity.clone(),
            vec![cert.der().clone()],
            key_der,
            not_before,
            not_after,
        )
    }

    /// A leaf as PEM files hold it: `(certificate, private key)`, for
    /// `--cert-chain`/`--key` of a host that does not keep the CA key.
    pub fn issue_pem(
        &self,
        identity: &Identity,
        lifetime: Duration,
    ) -> Result<(String, String), IdentityError> {
        let now = SystemTime::now();
        let (cert, key) = self.sign(identity, now - BACKDATE, now + lifetime)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    fn sign(
        &self,
        identity: &Identity,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<(rcgen::Certificate, KeyPair), IdentityError> {
        let fail = |source| IdentityError::Issue {
            identity: identity.clone(),
            source,
        };
        let uri = rcgen::Ia5String::try_from(identity.to_string()).map_err(fail)?;
        let mut params = CertificateParams::default();
        // Istio's workload certificates have an empty subject: the URI SAN
        // is the identity.
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params.serial_number = Some(random_serial());
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().map_err(fail)?;
        let cert = params
            .signed_by(&key, &self.issuer, &self.key)
            .map_err(fail)?;
        Ok((cert, key))
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
    let key = KeyPair::generate().map_err(ca_err)?;
    let cert = root_params(&key, SystemTime::now())
        .self_signed(&key)
        .map_err(ca_err)?;
    write_private(&dir.join(ROOT_KEY_FILE), &key.serialize_pem())?;
    write_private(&dir.join(ROOT_CERT_FILE), &cert.pem())?;
    tracing::info!(dir = %dir.display(), "created the local CA");
    Ok(())
}

fn root_params(key: &KeyPair, now: SystemTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ROOT_ORG);
    dn.push(
        DnType::CommonName,
        format!("egret local CA {:016x}", fnv1a(key.public_key_raw())),
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

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive and non-zero as RFC 5280 wants.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
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
    use crate::identity::spiffe::identities_in;

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
        let leaf = ca.issue(&id("a"), LEAF_LIFETIME).unwrap();
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
        let leaf = ca.issue(&id("a"), LEAF_LIFETIME).unwrap();
        assert!(!leaf.needs_refresh(SystemTime::now()));
        assert!(leaf.needs_refresh(SystemTime::now() + LEAF_LIFETIME / 2 + BACKDATE));
    }
}
