//! Server certificate checks: the chain against the trusted roots (webpki),
//! and the name against a list where any one may match (DestinationRule
//! `subjectAltNames`), or nothing at all (`insecureSkipVerify`). Handshake
//! signatures are always checked.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

/// Verifies an upstream's certificate for a DestinationRule.
#[derive(Debug)]
pub struct UpstreamVerifier {
    /// `None`: insecureSkipVerify.
    chain: Option<Arc<WebPkiServerVerifier>>,
    /// Names the certificate must be valid for (any one).
    names: Vec<ServerName<'static>>,
    provider: Arc<CryptoProvider>,
}

impl UpstreamVerifier {
    /// Checks chains against `roots` and names against `names` (any one).
    pub fn new(
        roots: Arc<RootCertStore>,
        names: Vec<ServerName<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, rustls::server::VerifierBuilderError> {
        let chain = WebPkiServerVerifier::builder_with_provider(roots, provider.clone()).build()?;
        Ok(UpstreamVerifier {
            chain: Some(chain),
            names,
            provider,
        })
    }

    /// Accepts any certificate (still checks that the peer holds its key).
    pub fn insecure(provider: Arc<CryptoProvider>) -> Self {
        UpstreamVerifier {
            chain: None,
            names: Vec::new(),
            provider,
        }
    }
}

fn wrong_name(e: &Error) -> bool {
    matches!(
        e,
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    )
}

impl ServerCertVerifier for UpstreamVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        if self.names.is_empty() {
            return chain.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            );
        }
        let mut last = None;
        for name in &self.names {
            match chain.verify_server_cert(end_entity, intermediates, name, ocsp_response, now) {
                Ok(verified) => return Ok(verified),
                Err(e) if wrong_name(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(Error::InvalidCertificate(CertificateError::NotValidForName)))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
