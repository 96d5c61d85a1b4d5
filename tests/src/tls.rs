//! A test certificate authority: a CA, server and client certificates it
//! signs, written as PEM files for gunicorn, the agent and DestinationRules.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A CA whose certificate and key live in memory; leaf files go to `dir`.
pub struct TestCa {
    cert: Certificate,
    key: KeyPair,
    dir: PathBuf,
    name: String,
}

/// A certificate and key written to disk.
#[derive(Clone, Debug)]
pub struct LeafFiles {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA called `name`, writing its files under `dir`.
    pub fn new(dir: &Path, name: &str) -> anyhow::Result<TestCa> {
        std::fs::create_dir_all(dir)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        let ca = TestCa {
            cert,
            key,
            dir: dir.to_path_buf(),
            name: name.to_string(),
        };
        std::fs::write(ca.cert_path(), ca.cert.pem())
            .with_context(|| format!("writing {}", ca.cert_path().display()))?;
        Ok(ca)
    }

    /// The CA certificate's PEM file.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA's private key, PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A server certificate for `names` (DNS names or IPs), files `<label>.pem`/`<label>-key.pem`.
    pub fn server(&self, label: &str, names: &[&str]) -> anyhow::Result<LeafFiles> {
        self.leaf(label, names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate with CN/SAN `name`.
    pub fn client(&self, label: &str, name: &str) -> anyhow::Result<LeafFiles> {
        self.leaf(label, &[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(
        &self,
        label: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> anyhow::Result<LeafFiles> {
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or(label));
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        let files = LeafFiles {
            cert: self.dir.join(format!("{label}.pem")),
            key: self.dir.join(format!("{label}-key.pem")),
        };
        std::fs::write(&files.cert, cert.pem())?;
        std::fs::write(&files.key, key.serialize_pem())?;
        Ok(files)
    }
}
