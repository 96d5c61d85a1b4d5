//! Signing workload and waypoint certificates with an existing CA: its
//! certificate (whoever made it: egret, Istio, openssl) and its key. The
//! leaf's issuer name and authority key identifier are taken from that
//! certificate, so a peer that builds the chain (webpki, ztunnel, openssl)
//! finds the issuer; a CA whose certificate cannot be reproduced that way is
//! refused when loaded, not at the first handshake.

use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
    SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};

use super::credential::Credential;
use super::error::IdentityError;
use super::spiffe::Identity;

/// Lifetime of issued leaf certificates (Istio's default workload TTL).
pub const LEAF_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Leaves start a little in the past so peers with a skewed clock accept them.
pub const BACKDATE: Duration = Duration::from_secs(60);

/// A CA that issues leaves: the signing certificate and key, the chain sent
/// after every leaf, and the roots peers trust.
pub struct CaSigner {
    origin: String,
    /// rcgen signs with a `Certificate` value: this one has the CA
    /// certificate's subject and subject key identifier, which is what a
    /// leaf's issuer and authority key identifier are made of.
    issuer: rcgen::Certificate,
    key: KeyPair,
    chain: Vec<CertificateDer<'static>>,
    roots: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for CaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaSigner")
            .field("origin", &self.origin)
            .finish()
    }
}

impl CaSigner {
    /// A signer for `ca_cert` with `key`. `chain`: certificates sent after
    /// each leaf (intermediates up to the root; empty when `ca_cert` is the
    /// root). `origin` names where the CA came from in errors. Checks that
    /// the key is the certificate's and that an issued leaf verifies against
    /// `roots` through `chain`.
    pub fn new(
        origin: impl Into<String>,
        ca_cert: CertificateDer<'static>,
        key: KeyPair,
        chain: Vec<CertificateDer<'static>>,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, IdentityError> {
        let origin = origin.into();
        let bad = |reason: String| IdentityError::CaCertificate {
            origin: origin.clone(),
            reason,
        };
        let (_, parsed) = x509_parser::parse_x509_certificate(ca_cert.as_ref())
            .map_err(|e| bad(format!("CA certificate is not valid X.509: {e}")))?;
        if parsed.tbs_certificate.subject_pki.raw != key.public_key_der().as_slice() {
            return Err(bad("the CA key is not the CA certificate's key".into()));
        }
        let issuer = CertificateParams::from_ca_cert_der(&ca_cert)
            .and_then(|p| p.self_signed(&key))
            .map_err(|e| bad(format!("CA certificate cannot be used to sign: {e}")))?;
        if roots.is_empty() {
            return Err(bad("no root certificate".into()));
        }
        let signer = CaSigner {
            origin,
            issuer,
            key,
            chain,
            roots,
        };
        signer.self_check(parsed.tbs_certificate.subject.as_raw())?;
        Ok(signer)
    }

    /// Issues one leaf and verifies it as a peer would.
    fn self_check(&self, ca_subject: &[u8]) -> Result<(), IdentityError> {
        let bad = |reason: String| IdentityError::CaCertificate {
            origin: self.origin.clone(),
            reason,
        };
        let probe = Identity {
            trust_domain: "egret.check".into(),
            namespace: "egret".into(),
            service_account: "self-check".into(),
        };
        let now = SystemTime::now();
        let (leaf, _) = self.sign(&probe, now - BACKDATE, now + BACKDATE)?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.der())
            .map_err(|e| bad(format!("issued certificate does not parse: {e}")))?;
        if parsed.tbs_certificate.issuer.as_raw() != ca_subject {
            return Err(bad(format!(
                "issued certificates would name issuer \"{}\", not the CA's subject \"{}\"",
                parsed.tbs_certificate.issuer, parsed.tbs_certificate.subject
            )));
        }
        let mut roots = rustls::RootCertStore::empty();
        for r in &self.roots {
            roots
                .add(r.clone())
                .map_err(|e| bad(format!("root certificate: {e}")))?;
        }
        let leaf_der = leaf.der().clone();
        let end_entity = rustls::server::ParsedCertificate::try_from(&leaf_der)
            .map_err(|e| bad(format!("issued certificate: {e}")))?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &end_entity,
            &roots,
            &self.chain,
            UnixTime::now(),
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .all,
        )
        .map_err(|e| {
            bad(format!(
                "issued certificates do not verify against the root through the chain: {e}"
            ))
        })
    }

    /// Where the CA came from (a folder, a Secret).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The roots peers' certificates must chain to.
    pub fn roots(&self) -> &[CertificateDer<'static>] {
        &self.roots
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
        let mut chain = vec![cert.der().clone()];
        chain.extend(self.chain.iter().cloned());
        Credential::new(identity.clone(), chain, key_der, not_before, not_after)
    }

    /// A leaf as PEM files hold it: `(certificate chain, private key)`, for
    /// a process that does not hold the CA key (`--cert-chain`/`--key`).
    pub fn issue_pem(
        &self,
        identity: &Identity,
        lifetime: Duration,
    ) -> Result<(String, String), IdentityError> {
        let now = SystemTime::now();
        let (cert, key) = self.sign(identity, now - BACKDATE, now + lifetime)?;
        let mut chain = cert.pem();
        for c in &self.chain {
            chain.push_str(&pem("CERTIFICATE", c.as_ref()));
        }
        Ok((chain, key.serialize_pem()))
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

/// PEM text of one DER block.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive and non-zero as RFC 5280 wants.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}
