//! rustls configurations for HBONE: TLS 1.3 only, ALPN `h2`, certificates
//! from the [`IdentityStore`], peers checked by [`super::verify`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig};

use super::error::IdentityError;
use super::spiffe::{identities_in, Identity};
use super::store::IdentityStore;
use super::verify::{SpiffeServerVerifier, TrustDomainVerifier};

/// The only application protocol HBONE speaks.
pub const ALPN_H2: &[u8] = b"h2";

/// The crypto provider every HBONE config uses (ring), passed explicitly so
/// no process-wide default is needed.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server configs per presented identity, rebuilt when the bundle changes.
#[derive(Debug)]
pub struct ServerTls {
    store: Arc<IdentityStore>,
    cache: Mutex<HashMap<Identity, (u64, Arc<ServerConfig>)>>,
}

impl ServerTls {
    /// Server configs over `store`.
    pub fn new(store: Arc<IdentityStore>) -> Self {
        ServerTls {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The store the certificates come from.
    pub fn store(&self) -> &Arc<IdentityStore> {
        &self.store
    }

    /// The config for a server presenting `identity`: client certificate
    /// required, chaining to the bundle, of the store's trust domain.
    pub fn config(&self, identity: &Identity) -> Result<Arc<ServerConfig>, IdentityError> {
        let bundle = self.store.bundle();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((generation, config)) = cache.get(identity) {
            if *generation == bundle.generation {
                return Ok(config.clone());
            }
        }
        // Fail now, not in the middle of a handshake, when no certificate
        // can be had.
        self.store.credential(identity)?;
        let provider = provider();
        let verifier =
            TrustDomainVerifier::new(bundle.roots, self.store.trust_domain(), provider.clone())
                .map_err(|e| IdentityError::Bundle(e.to_string()))?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|source| IdentityError::Tls {
                what: format!("server {identity}"),
                source,
            })?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(StoreResolver {
                store: self.store.clone(),
                identity: identity.clone(),
            }));
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        let config = Arc::new(config);
        cache.insert(identity.clone(), (bundle.generation, config.clone()));
        Ok(config)
    }
}

/// Asks the store at every handshake, so a renewed certificate is used as
/// soon as it exists.
#[derive(Debug)]
struct StoreResolver {
    store: Arc<IdentityStore>,
    identity: Identity,
}

impl ResolvesServerCert for StoreResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match self.store.credential(&self.identity) {
            Ok(c) => Some(c.certified.clone()),
            Err(e) => {
                tracing::error!(identity = %self.identity, error = %e, "no certificate to present");
                None
            }
        }
    }
}

/// The config for one client connection: presents `source`'s certificate
/// and accepts only a server presenting one of `expected`.
pub fn client_config(
    store: &IdentityStore,
    source: &Identity,
    expected: Vec<Identity>,
) -> Result<Arc<ClientConfig>, IdentityError> {
    let credential = store.credential(source)?;
    let provider = provider();
    let verifier = SpiffeServerVerifier::new(store.bundle().roots, expected, &provider);
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|source_err| IdentityError::Tls {
            what: format!("client {source}"),
            source: source_err,
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(FixedClientCert(credential.certified.clone())));
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// Always presents one certificate.
#[derive(Debug)]
struct FixedClientCert(Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for FixedClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The verified peer's SPIFFE identity in `trust_domain` (the first one, as
/// ztunnel takes it), from the certificates the handshake accepted.
pub fn peer_identity(
    peer_certs: Option<&[CertificateDer<'_>]>,
    trust_domain: &str,
) -> Option<Identity> {
    let leaf = peer_certs?.first()?;
    identities_in(leaf)
        .ok()?
        .into_iter()
        .find(|id| id.trust_domain == trust_domain)
}
