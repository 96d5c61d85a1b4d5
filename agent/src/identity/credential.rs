//! One certificate with its key, ready for rustls, and when to renew it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::error::IdentityError;
use super::spiffe::Identity;

/// A leaf certificate chain and its private key for one SPIFFE identity.
#[derive(Clone, Debug)]
pub struct Credential {
    /// The identity in the leaf's URI SAN.
    pub identity: Identity,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// The chain (leaf first) and signing key, as rustls presents them.
    pub certified: Arc<CertifiedKey>,
}

impl Credential {
    /// Wraps a leaf chain and its PKCS#8/SEC1/PKCS#1 key.
    pub fn new(
        identity: Identity,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Self, IdentityError> {
        let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|source| {
            IdentityError::Tls {
                what: format!("private key of {identity}"),
                source,
            }
        })?;
        Ok(Credential {
            identity,
            not_before,
            not_after,
            certified: Arc::new(CertifiedKey::new(chain, signing)),
        })
    }

    /// Half-way through its validity: time to get a new one (as ztunnel
    /// renews workload certificates).
    pub fn refresh_at(&self) -> SystemTime {
        let lifetime = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO);
        self.not_before + lifetime / 2
    }

    /// Whether it should be replaced at `now`.
    pub fn needs_refresh(&self, now: SystemTime) -> bool {
        now >= self.refresh_at()
    }
}
