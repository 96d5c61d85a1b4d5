//! Certificate checks of HBONE, as ztunnel makes them: both sides verify the
//! chain to the trust bundle with webpki; then the server wants a client
//! SPIFFE ID of its trust domain, and the client wants the server's URI SAN
//! to be one of the identities it expects. No DNS name is checked.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};

use super::spiffe::{identities_in, Identity};

/// Why a peer's certificate was refused after its chain verified.
#[derive(Debug, thiserror::Error)]
pub enum PeerCertError {
    /// The client's identities are all of other trust domains.
    #[error("client identities [{presented}] are not of trust domain {want}")]
    TrustDomain {
        /// The server's trust domain.
        want: String,
        /// What the certificate holds.
        presented: String,
    },
    /// The server is not who the client meant to reach.
    #[error("server identities [{presented}] are not the expected [{expected}]")]
    Identity {
        /// What the client expected.
        expected: String,
        /// What the certificate holds.
        presented: String,
    },
}

fn list(ids: &[Identity]) -> String {
    ids.iter()
        .map(Identity::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn refuse(e: PeerCertError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        Readable(e),
    ))))
}

/// rustls prints the inner error with `{:?}`; this makes that the message.
struct Readable(PeerCertError);

impl std::fmt::Debug for Readable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::fmt::Display for Readable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Readable {}

fn san_identities(cert: &CertificateDer<'_>) -> Result<Vec<Identity>, rustls::Error> {
    identities_in(cert)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))
}

/// Server side: webpki's client verification (chain, validity, client-auth
/// usage), then the trust domain of the client's SPIFFE ID.
#[derive(Debug)]
pub struct TrustDomainVerifier {
    base: Arc<dyn ClientCertVerifier>,
    trust_domain: String,
}

impl TrustDomainVerifier {
    /// Requires client certificates chaining to `roots` in `trust_domain`.
    pub fn new(
        roots: Arc<RootCertStore>,
        trust_domain: &str,
        provider: Arc<CryptoProvider>,
    ) -> Result<Arc<Self>, rustls::server::VerifierBuilderError> {
        let base =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider).build()?;
        Ok(Arc::new(TrustDomainVerifier {
            base,
            trust_domain: trust_domain.to_string(),
        }))
    }
}

impl ClientCertVerifier for TrustDomainVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.base.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .base
            .verify_client_cert(end_entity, intermediates, now)?;
        let ids = san_identities(end_entity)?;
        if !ids.iter().any(|id| id.trust_domain == self.trust_domain) {
            return Err(refuse(PeerCertError::TrustDomain {
                want: self.trust_domain.clone(),
                presented: list(&ids),
            }));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.base.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.base.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.base.supported_verify_schemes()
    }
}

/// Client side: chain to the bundle, then the server's URI SAN must be one
/// of `expected` (ztunnel's `IdentityVerifier`).
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    roots: Arc<RootCertStore>,
    expected: Vec<Identity>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl SpiffeServerVerifier {
    /// Accepts servers chaining to `roots` that present one of `expected`.
    pub fn new(
        roots: Arc<RootCertStore>,
        expected: Vec<Identity>,
        provider: &CryptoProvider,
    ) -> Arc<Self> {
        Arc::new(SpiffeServerVerifier {
            roots,
            expected,
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        let ids = san_identities(end_entity)?;
        if !ids.iter().any(|id| self.expected.contains(id)) {
            return Err(refuse(PeerCertError::Identity {
                expected: list(&self.expected),
                presented: list(&ids),
            }));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
